"""The keys of encrypted disks: one data key per account, made on first use, kept in the store
only wrapped (AES-256-GCM, bound to the account) under the server's master key.

The master key is 32 random bytes in a file of the data directory (0600, made on first use):
the store alone (a copy of the SQLite file, a PostgreSQL dump) holds no usable key. Every host
whose agent works on encrypted disks needs the same master key file. Only agents unwrap keys,
to hand them to their storage and compute drivers (qemu-img and QEMU get them through 0600
files or the QMP socket, never on a command line); the API process never needs them."""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.exc import IntegrityError

from nubes.clock import Clock
from nubes.store.db import Database
from nubes.store.models import AccountDiskKey

MASTER_KEY_FILE = "master.key"
_KEY_BYTES = 32
_NONCE_BYTES = 12


class MasterKey:
    """The server's master key, read from (or, the first time, written to) `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def _bytes(self) -> bytes:
        with self._lock:
            if self._key is None:
                self._key = self._load_or_make()
            return self._key

    def _load_or_make(self) -> bytes:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            key = self.path.read_bytes()
            if len(key) != _KEY_BYTES:
                raise RuntimeError(f"{self.path} is not a nubes master key ({len(key)} bytes)") from None
            return key
        key = secrets.token_bytes(_KEY_BYTES)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
        return key

    def wrap(self, account_id: int, data_key: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + AESGCM(self._bytes()).encrypt(nonce, data_key, _aad(account_id))

    def unwrap(self, account_id: int, wrapped: bytes) -> bytes:
        nonce, sealed = wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:]
        return AESGCM(self._bytes()).decrypt(nonce, sealed, _aad(account_id))


def _aad(account_id: int) -> bytes:
    """Binds a wrapped key to its account: a row copied to another account does not unwrap."""
    return f"nubes-disk-key:{account_id}".encode()


class DiskKeys:
    """The accounts' data keys, as LUKS passphrases (hex) for the drivers."""

    def __init__(self, db: Database, clock: Clock, master: MasterKey) -> None:
        self._db = db
        self._clock = clock
        self._master = master

    def key_of(self, account_id: int) -> str:
        """The account's key, made now if it has none (two agents racing: one row wins, both use it)."""
        for _ in range(2):
            with self._db.session() as s:
                row = s.get(AccountDiskKey, account_id)
                if row is not None:
                    return self._master.unwrap(account_id, row.wrapped_key).hex()
            try:
                with self._db.session() as s:
                    data_key = secrets.token_bytes(_KEY_BYTES)
                    wrapped = self._master.wrap(account_id, data_key)
                    s.add(
                        AccountDiskKey(
                            account_id=account_id, wrapped_key=wrapped, created_at=self._clock.now()
                        )
                    )
                return data_key.hex()
            except IntegrityError:
                continue  # made by another process meanwhile: read it
        raise RuntimeError(f"no disk key for account {account_id}")
