"""SSH key pairs: per account and region; the private key is handed out once and never kept."""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from nubes import errors
from nubes.clock import Clock
from nubes.domain.common import Scope
from nubes.domain.quotas import Quotas
from nubes.domain.resource_groups import group_for
from nubes.domain.tags import drop_tags
from nubes.errors import ApiError
from nubes.store.db import Database
from nubes.store.models import KeyPair

_NAME = re.compile(r"[A-Za-z\u4e00-\u9fa5][A-Za-z0-9\u4e00-\u9fa5:_.-]{1,127}")
_SUPPORTED_KEY_TYPES = (
    "ssh-rsa",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
)


@dataclass(frozen=True)
class KeyPairView:
    name: str
    fingerprint: str
    public_key: str
    resource_group_id: str
    created_at: datetime


def fingerprint(public_key: str) -> str:
    """MD5 of the key blob, colon-separated hex (RFC 4716), as ECS reports it."""
    blob = base64.b64decode(public_key.split()[1])
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def check_name(name: str) -> None:
    if not _NAME.fullmatch(name) or name.startswith(("http://", "https://")):
        raise errors.invalid_key_pair_name_malformed()


def normalise_public_key(body: str) -> str:
    """Validate an OpenSSH public key ('ssh-rsa AAAA... comment') and return 'type blob'."""
    parts = body.strip().split()
    if len(parts) < 2 or parts[0] not in _SUPPORTED_KEY_TYPES:
        raise _bad_public_key()
    try:
        blob = base64.b64decode(parts[1], validate=True)
        serialization.load_ssh_public_key(f"{parts[0]} {parts[1]}".encode())
    except (binascii.Error, ValueError, TypeError):
        raise _bad_public_key() from None
    if not blob:
        raise _bad_public_key()
    return f"{parts[0]} {parts[1]}"


def _bad_public_key() -> ApiError:
    return errors.invalid_public_key_body_malformed()


def generate_rsa_key_pair() -> tuple[str, str]:
    """A new 2048-bit RSA key: (PKCS#1 PEM private key, OpenSSH public key)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return pem, public.decode()


class KeyPairs:
    def __init__(self, db: Database, clock: Clock, quotas: Quotas) -> None:
        self._db = db
        self._clock = clock
        self._quotas = quotas

    def create(self, scope: Scope, name: str, resource_group_id: str) -> tuple[KeyPairView, str]:
        check_name(name)
        private_pem, public_key = generate_rsa_key_pair()
        view = self._insert(scope, name, public_key, resource_group_id)
        return view, private_pem

    def import_(self, scope: Scope, name: str, public_key_body: str, resource_group_id: str) -> KeyPairView:
        check_name(name)
        return self._insert(scope, name, normalise_public_key(public_key_body), resource_group_id)

    def _insert(self, scope: Scope, name: str, public_key: str, resource_group_id: str) -> KeyPairView:
        with self._db.session() as s:
            exists = s.scalar(select(KeyPair.id).where(*_in_scope(scope), KeyPair.name == name))
            if exists is not None:
                raise errors.key_pair_already_exist(f"The key pair {name!r} already exists.")
            count = s.scalar(select(func.count(KeyPair.id)).where(*_in_scope(scope))) or 0
            if count >= self._quotas.max_key_pairs:
                raise errors.quota_exceed_key_pair(
                    f"The key pair quota of {self._quotas.max_key_pairs} is reached."
                )
            row = KeyPair(
                account_id=scope.account_id,
                region_id=scope.region_id,
                name=name,
                fingerprint=fingerprint(public_key),
                public_key=public_key,
                resource_group_id=group_for(s, scope.account_id, resource_group_id, self._clock),
                created_at=self._clock.now(),
            )
            s.add(row)
            s.flush()
            return _view(row)

    def describe(
        self,
        scope: Scope,
        name_pattern: str | None,
        fingerprint_filter: str | None,
        resource_group_id: str | None,
    ) -> list[KeyPairView]:
        with self._db.session() as s:
            query = (
                select(KeyPair)
                .where(*_in_scope(scope))
                .order_by(KeyPair.created_at.desc(), KeyPair.id.desc())
            )
            if fingerprint_filter:
                query = query.where(KeyPair.fingerprint == fingerprint_filter)
            if resource_group_id:
                query = query.where(KeyPair.resource_group_id == resource_group_id)
            if name_pattern and "*" not in name_pattern:
                query = query.where(KeyPair.name == name_pattern)
            rows = [_view(r) for r in s.scalars(query)]
        if name_pattern and "*" in name_pattern:
            rows = [r for r in rows if fnmatch.fnmatchcase(r.name, name_pattern)]
        return rows

    def delete(self, scope: Scope, names: list[str]) -> None:
        """Delete the named key pairs; names that do not exist are an error, and nothing is deleted."""
        with self._db.session() as s:
            rows = list(s.scalars(select(KeyPair).where(*_in_scope(scope), KeyPair.name.in_(names))))
            missing = sorted(set(names) - {r.name for r in rows})
            if missing:
                raise errors.invalid_key_pair_name_not_found(
                    f"The specified key pair does not exist: {', '.join(missing)}."
                )
            for row in rows:
                drop_tags(s, row.account_id, row.region_id, "keypair", row.name)
                s.delete(row)


def owned_key_pair(s: Session, scope: Scope, name: str) -> KeyPair:
    """The caller's key pair of this name. Key pairs are named per account and region, so a name
    is only ever looked up with its owner: another account's `shared` is answered as no key pair."""
    row = s.scalar(select(KeyPair).where(*_in_scope(scope), KeyPair.name == name))
    if row is None:
        raise errors.invalid_key_pair_name_not_found(f"The key pair {name!r} does not exist.")
    return row


def _in_scope(scope: Scope) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return (KeyPair.account_id == scope.account_id, KeyPair.region_id == scope.region_id)


def _view(row: KeyPair) -> KeyPairView:
    return KeyPairView(row.name, row.fingerprint, row.public_key, row.resource_group_id, row.created_at)
