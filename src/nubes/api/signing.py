"""The two request-signing schemes of the Alibaba Cloud RPC APIs, as pure functions.

Both sides use these: the server to verify, the nubes CLI and the benchmarks to sign.
v1: HMAC-SHA1 over the sorted, percent-encoded parameters (SignatureVersion=1.0).
v3: ACS3-HMAC-SHA256 over a canonical request, carried in the Authorization header."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

V3_ALGORITHM = "ACS3-HMAC-SHA256"
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()


def percent_encode(value: str) -> str:
    """RFC 3986 encoding as the clients sign: space is %20, '*' is %2A, '~' stays."""
    return quote(value, safe="-_.~")


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(pairs))


# ---- v1 (HMAC-SHA1) -------------------------------------------------------------------


def v1_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """All parameters except Signature, sorted by name; the method is the real HTTP method."""
    pairs = ((k, v) for k, v in params.items() if k != "Signature")
    return f"{method.upper()}&%2F&{percent_encode(canonical_query(pairs))}"


def v1_signature(secret: str, string_to_sign: str) -> str:
    digest = hmac.new((secret + "&").encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


# ---- v3 (ACS3-HMAC-SHA256) ---------------------------------------------------------------


@dataclass(frozen=True)
class V3Authorization:
    access_key_id: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_v3_authorization(header: str) -> V3Authorization | None:
    """Parse 'ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=a;b,Signature=hex'; None if malformed."""
    if not header.startswith(V3_ALGORITHM + " "):
        return None
    fields: dict[str, str] = {}
    for part in header[len(V3_ALGORITHM) + 1 :].split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            return None
        fields[name] = value
    try:
        credential = fields["Credential"]
        signed = fields["SignedHeaders"]
        signature = fields["Signature"]
    except KeyError:
        return None
    if not credential or not signed or not signature:
        return None
    return V3Authorization(credential, tuple(signed.split(";")), signature)


def v3_canonical_request(
    method: str,
    path: str,
    query_pairs: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: Iterable[str],
    payload_hash: str,
) -> str:
    names = list(signed_headers)
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in names)
    return "\n".join(
        [
            method.upper(),
            path or "/",
            canonical_query(query_pairs),
            canonical_headers,
            ";".join(names),
            payload_hash,
        ]
    )


def v3_string_to_sign(canonical_request: str) -> str:
    return f"{V3_ALGORITHM}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"


def v3_signature(secret: str, string_to_sign: str) -> str:
    return hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def signatures_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


# ---- client side ------------------------------------------------------------------------


def utc_timestamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_nonce() -> str:
    return uuid.uuid4().hex


def sign_v1(
    method: str,
    params: Mapping[str, str],
    access_key_id: str,
    secret: str,
    *,
    nonce: str | None = None,
    timestamp: str | None = None,
) -> dict[str, str]:
    """Return params completed with the v1 common parameters and their Signature."""
    signed = dict(params)
    signed.update(
        {
            "AccessKeyId": access_key_id,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "SignatureNonce": nonce or new_nonce(),
            "Timestamp": timestamp or utc_timestamp(),
        }
    )
    signed["Signature"] = v1_signature(secret, v1_string_to_sign(method, signed))
    return signed


def sign_v3(
    method: str,
    host: str,
    action: str,
    version: str,
    query: Mapping[str, str],
    access_key_id: str,
    secret: str,
    *,
    body: bytes = b"",
    nonce: str | None = None,
    timestamp: str | None = None,
) -> dict[str, str]:
    """Return the headers (Authorization included) of a v3-signed request."""
    headers = {
        "host": host,
        "x-acs-action": action,
        "x-acs-version": version,
        "x-acs-date": timestamp or utc_timestamp(),
        "x-acs-signature-nonce": nonce or new_nonce(),
        "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
    }
    names = sorted(headers)
    creq = v3_canonical_request(method, "/", query.items(), headers, names, headers["x-acs-content-sha256"])
    signature = v3_signature(secret, v3_string_to_sign(creq))
    headers["authorization"] = (
        f"{V3_ALGORITHM} Credential={access_key_id},SignedHeaders={';'.join(names)},Signature={signature}"
    )
    return headers
