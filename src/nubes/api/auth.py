"""Who is calling: verify a v1 (HMAC-SHA1) or v3 (ACS3-HMAC-SHA256) signature.

The checks run in the order the errors are documented: missing pieces, timestamp,
AccessKey, signature, and last the nonce, so that a forged request cannot burn one."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from nubes import errors
from nubes.api import signing
from nubes.api.request import ApiRequest
from nubes.clock import Clock
from nubes.domain.accounts import KEY_ACTIVE, Accounts, KeyRecord, Principal
from nubes.domain.nonces import NonceClaim, SignatureNonces

MAX_SKEW = timedelta(minutes=15)


class Authenticator:
    def __init__(self, accounts: Accounts, clock: Clock, nonces: SignatureNonces) -> None:
        self._accounts = accounts
        self._clock = clock
        self.nonces = nonces  # the API records them in batches (api/nonce_batch.py)

    def authenticate(self, request: ApiRequest) -> Principal:
        principal, claim = self.verify(request)
        if not self.nonces.use(claim.access_key_id, claim.nonce, claim.now):
            raise errors.signature_nonce_used()
        return principal

    def verify(self, request: ApiRequest) -> tuple[Principal, NonceClaim]:
        """The caller, and its nonce to record before the request acts. The nonce is claimed
        only once the signature holds, so that a forged request cannot burn one."""
        authorization = request.headers.get("authorization", "")
        if authorization.startswith(signing.V3_ALGORITHM):
            return self._v3(request, authorization)
        return self._v1(request)

    def _v1(self, request: ApiRequest) -> tuple[Principal, NonceClaim]:
        params = request.params
        for name in ("AccessKeyId", "Signature", "SignatureMethod", "Timestamp", "SignatureNonce"):
            if not params.get(name):
                raise errors.missing_parameter(name, common=True)
        if params["SignatureMethod"] != "HMAC-SHA1":
            raise errors.invalid_parameter(
                "SignatureMethod", "Only HMAC-SHA1 is supported with signature v1."
            )
        if params.get("SignatureVersion", "1.0") != "1.0":
            raise errors.invalid_parameter("SignatureVersion", "Only 1.0 is supported.")
        self._check_timestamp(params["Timestamp"])
        key = self._key(params["AccessKeyId"])
        string_to_sign = signing.v1_string_to_sign(request.method, params)
        expected = signing.v1_signature(key.secret, string_to_sign)
        if not signing.signatures_equal(expected, params["Signature"]):
            raise errors.signature_does_not_match(string_to_sign)
        return key.principal, NonceClaim(key.access_key_id, params["SignatureNonce"], self._clock.now())

    def _v3(self, request: ApiRequest, authorization: str) -> tuple[Principal, NonceClaim]:
        auth = signing.parse_v3_authorization(authorization)
        if auth is None:
            raise errors.incomplete_signature(
                "The Authorization header must read "
                "'ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=<h1;h2>,Signature=<hex>'."
            )
        headers = request.headers
        for name in ("x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"):
            if not headers.get(name):
                raise errors.missing_parameter(name, common=True)
        self._check_timestamp(headers["x-acs-date"])
        key = self._key(auth.access_key_id)
        payload_hash = headers["x-acs-content-sha256"]
        canonical = signing.v3_canonical_request(
            request.method, request.path, request.query_pairs, headers, auth.signed_headers, payload_hash
        )
        string_to_sign = signing.v3_string_to_sign(canonical)
        expected = signing.v3_signature(key.secret, string_to_sign)
        if not signing.signatures_equal(expected, auth.signature):
            raise errors.signature_does_not_match(string_to_sign)
        if hashlib.sha256(request.body).hexdigest() != payload_hash.lower():
            raise errors.signature_does_not_match(
                message="The x-acs-content-sha256 header does not match the SHA-256 of the body."
            )
        return key.principal, NonceClaim(
            key.access_key_id, headers["x-acs-signature-nonce"], self._clock.now()
        )

    def _check_timestamp(self, value: str) -> None:
        moment = parse_timestamp(value)
        if moment is None:
            raise errors.invalid_time_stamp_format(value)
        if abs(self._clock.now() - moment) > MAX_SKEW:
            raise errors.invalid_time_stamp_expired(value)

    def _key(self, access_key_id: str) -> KeyRecord:
        if "\x00" in access_key_id or len(access_key_id) > 128:
            raise errors.invalid_access_key_id_not_found()  # no such key can exist; do not ask the store
        key = self._accounts.lookup_key(access_key_id)
        if key is None:
            raise errors.invalid_access_key_id_not_found()
        if key.status != KEY_ACTIVE:
            raise errors.invalid_access_key_id_inactive()
        return key


def parse_timestamp(value: str) -> datetime | None:
    """ISO 8601 with a time and a zone (2024-01-01T12:00:00Z); None otherwise."""
    if "T" not in value or len(value) > 40:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
