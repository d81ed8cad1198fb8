"""Accounts and their AccessKeys: who may call the API, and on whose resources."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from nubes import ids
from nubes.clock import Clock
from nubes.store.db import Database
from nubes.store.models import AccessKey, Account

ROOT_ACCOUNT = "root"
KEY_ACTIVE = "Active"
KEY_INACTIVE = "Inactive"


class AccountError(Exception):
    """A refused administrative change (duplicate name, unknown key, ...)."""


@dataclass(frozen=True)
class Principal:
    """The caller an AccessKey stands for."""

    account_id: int
    account_name: str
    uid: str


@dataclass(frozen=True)
class KeyRecord:
    access_key_id: str
    secret: str
    status: str
    account: str
    principal: Principal


@dataclass(frozen=True)
class AccountRecord:
    name: str
    uid: str
    status: str
    keys: int


_KEY_LOOKUP = (
    select(AccessKey.access_key_id, AccessKey.secret, AccessKey.status, Account.name, Account.id, Account.uid)
    .join(Account, AccessKey.account_id == Account.id)
    .where(AccessKey.access_key_id == bindparam("access_key_id"))
)


class Accounts:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def create(self, name: str) -> AccountRecord:
        if not name or len(name) > 64:
            raise AccountError("account names are 1 to 64 characters")
        with self._db.session() as s:
            if s.scalar(select(Account.id).where(Account.name == name)) is not None:
                raise AccountError(f"account {name!r} exists already")
            account = Account(
                name=name, uid=ids.new_account_uid(), status="Enabled", created_at=self._clock.now()
            )
            s.add(account)
            s.flush()
            return AccountRecord(account.name, account.uid, account.status, 0)

    def all(self) -> list[AccountRecord]:
        with self._db.session() as s:
            key_count = (
                select(func.count(AccessKey.id)).where(AccessKey.account_id == Account.id).scalar_subquery()
            )
            rows = s.execute(select(Account, key_count).order_by(Account.id)).all()
            return [AccountRecord(a.name, a.uid, a.status, n) for a, n in rows]

    def create_key(
        self, account: str, access_key_id: str | None = None, secret: str | None = None
    ) -> KeyRecord:
        with self._db.session() as s:
            owner = s.scalar(select(Account).where(Account.name == account))
            if owner is None:
                raise AccountError(f"no account named {account!r}")
            key_id = access_key_id or ids.new_access_key_id()
            if s.scalar(select(AccessKey.id).where(AccessKey.access_key_id == key_id)) is not None:
                raise AccountError(f"AccessKey {key_id} exists already")
            key = AccessKey(
                access_key_id=key_id,
                secret=secret or ids.new_access_key_secret(),
                account_id=owner.id,
                status=KEY_ACTIVE,
                created_at=self._clock.now(),
            )
            s.add(key)
            s.flush()
            return _key_record(key, owner)

    def list_keys(self, account: str) -> list[KeyRecord]:
        with self._db.session() as s:
            owner = s.scalar(select(Account).where(Account.name == account))
            if owner is None:
                raise AccountError(f"no account named {account!r}")
            return [_key_record(k, owner) for k in sorted(owner.keys, key=lambda k: k.id)]

    def set_key_status(self, account: str, access_key_id: str, status: str) -> None:
        with self._db.session() as s:
            key = self._owned_key(s, account, access_key_id)
            key.status = status

    def delete_key(self, account: str, access_key_id: str) -> None:
        with self._db.session() as s:
            s.delete(self._owned_key(s, account, access_key_id))

    def lookup_key(self, access_key_id: str) -> KeyRecord | None:
        """The key and the account it belongs to, for request authentication.

        This runs on every request: one prepared Core query on a pooled connection."""
        with self._db.engine.connect() as connection:
            row = connection.execute(_KEY_LOOKUP, {"access_key_id": access_key_id}).first()
        if row is None:
            return None
        key_id, secret, status, name, account_id, uid = row
        return KeyRecord(key_id, secret, status, name, Principal(account_id, name, uid))

    def ensure_root(self, access_key_id: str | None, secret: str | None) -> KeyRecord | None:
        """Create the root account on first start. Returns a key that was created now, else None.

        With an AccessKey pair given (NUBES_ACCESS_KEY_ID/SECRET), root holds exactly that pair."""
        with self._db.session() as s:
            root = s.scalar(select(Account).where(Account.name == ROOT_ACCOUNT))
        if root is None:
            self.create(ROOT_ACCOUNT)
        if access_key_id and secret:
            existing = self.lookup_key(access_key_id)
            if existing is None:
                return self.create_key(ROOT_ACCOUNT, access_key_id, secret)
            if existing.account != ROOT_ACCOUNT:
                raise AccountError(
                    f"AccessKey {access_key_id} belongs to account {existing.account!r}, not root"
                )
            with self._db.session() as s:
                key = self._owned_key(s, ROOT_ACCOUNT, access_key_id)
                key.secret, key.status = secret, KEY_ACTIVE
            return None
        if root is None:
            return self.create_key(ROOT_ACCOUNT)
        return None

    @staticmethod
    def _owned_key(s: Session, account: str, access_key_id: str) -> AccessKey:
        key = s.scalar(
            select(AccessKey)
            .join(Account, AccessKey.account_id == Account.id)
            .where(AccessKey.access_key_id == access_key_id, Account.name == account)
        )
        if key is None:
            raise AccountError(f"account {account!r} has no AccessKey {access_key_id}")
        return key


def _key_record(key: AccessKey, owner: Account) -> KeyRecord:
    return KeyRecord(
        key.access_key_id, key.secret, key.status, owner.name, Principal(owner.id, owner.name, owner.uid)
    )
