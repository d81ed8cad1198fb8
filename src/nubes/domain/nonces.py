"""SignatureNonce memory in the store: a nonce may be used once while its request can be valid.

Kept in the store, not in a process, so a replay is refused after a restart and by every API
process that shares the store. This runs on every request, so it holds one connection of its
own and speaks to it through the driver (one prepared statement and one commit: about 45 us
on SQLite, where a pooled SQLAlchemy round trip costs three to five times that)."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from nubes.store.db import Database

# Timestamps are accepted 15 minutes either side of the server clock, so a request stays
# replayable for up to 30 minutes: remember its nonce that long.
WINDOW = timedelta(minutes=30)
SWEEP_EVERY = timedelta(minutes=1)

_INSERT = ("INSERT INTO signature_nonces (digest, expires_at) VALUES ({p}, {p}) "
           "ON CONFLICT (digest) DO NOTHING RETURNING digest")
# Seen before: usable again only once its window has passed (the sweep may lag behind).
_RENEW = "UPDATE signature_nonces SET expires_at = {p} WHERE digest = {p} AND expires_at < {p} RETURNING digest"
_SWEEP = "DELETE FROM signature_nonces WHERE expires_at < {p}"


def nonce_digest(access_key_id: str, nonce: str) -> str:
    """Length-prefixed, so that key "ab" + nonce "c" and key "a" + nonce "bc" differ."""
    return hashlib.sha256(f"{len(access_key_id)}:{access_key_id}:{nonce}".encode()).hexdigest()


class SignatureNonces:
    def __init__(self, db: Database, window: timedelta = WINDOW) -> None:
        self._db = db
        self._window = window
        self._sqlite = db.is_sqlite
        marker = "?" if self._sqlite else "%s"
        self._insert, self._renew, self._sweep = (sql.format(p=marker) for sql in (_INSERT, _RENEW, _SWEEP))
        self._connection: Any = None  # the pool's proxy, kept for as long as this object lives
        self._next_sweep: datetime | None = None
        self._lock = threading.Lock()

    def use(self, access_key_id: str, nonce: str, now: datetime) -> bool:
        """Record the nonce; False if it was used within the window."""
        digest = nonce_digest(access_key_id, nonce)
        moment, expires_at = self._value(now), self._value(now + self._window)
        with self._lock:
            driver = self._driver()
            try:
                inserted: bool = len(driver.execute(self._insert, (digest, expires_at)).fetchall()) > 0
                if not inserted:
                    inserted = len(driver.execute(self._renew, (expires_at, digest, moment)).fetchall()) > 0
                if self._sweep_due(now):
                    driver.execute(self._sweep, (moment,))
                driver.commit()
            except BaseException:
                self._discard()
                raise
        return inserted

    def close(self) -> None:
        with self._lock:
            self._discard()

    def _driver(self) -> Any:
        if self._connection is None:
            self._connection = self._db.engine.raw_connection()
            if not self._sqlite:
                # A server restart keeps a nonce without waiting for the WAL flush; only an
                # operating-system crash could lose the last fraction of a second of them.
                with self._connection.driver_connection.cursor() as cursor:
                    cursor.execute("SET synchronous_commit = off")
                self._connection.driver_connection.commit()
        return self._connection.driver_connection

    def _discard(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.invalidate()
            finally:
                connection.close()

    def _value(self, moment: datetime) -> Any:
        """SQLite keeps DateTime columns as UTC text, in SQLAlchemy's format; PostgreSQL takes the datetime."""
        if self._sqlite:
            return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return moment

    def _sweep_due(self, now: datetime) -> bool:
        if self._next_sweep is not None and now < self._next_sweep:
            return False
        self._next_sweep = now + SWEEP_EVERY
        return True
