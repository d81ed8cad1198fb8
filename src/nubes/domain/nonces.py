"""SignatureNonce memory in the store: a nonce may be used once while its request can be valid.

Kept in the store, not in a process, so a replay is refused after a restart and by every API
process that shares the store. This runs on every request, so it is as cheap as it can be: the
caller hands over every nonce it has at once (the API, all those of one turn of its event loop)
and they are written by one multi-row INSERT and one commit, on a connection of its own spoken
to through the driver; the table has a 16-byte key, epoch-second expiry, no secondary index,
and on SQLite no rowid, so an insert touches one B-tree."""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from nubes.store.db import Database

# Timestamps are accepted 15 minutes either side of the server clock, so a request stays
# replayable for up to 30 minutes: remember its nonce that long.
WINDOW = timedelta(minutes=30)
SWEEP_EVERY = timedelta(minutes=1)
GROUP_MAX = 256  # nonces in one statement at most

_INSERT = "INSERT INTO signature_nonces (digest, expires_at) VALUES {rows} ON CONFLICT (digest) DO NOTHING RETURNING digest"
# Seen before: usable again only once its window has passed (the sweep may lag behind).
_RENEW = (
    "UPDATE signature_nonces SET expires_at = {p} WHERE digest = {p} AND expires_at < {p} RETURNING digest"
)
_SWEEP = "DELETE FROM signature_nonces WHERE expires_at < {p}"


def nonce_digest(access_key_id: str, nonce: str) -> bytes:
    """Length-prefixed, so that key "ab" + nonce "c" and key "a" + nonce "bc" differ; half a
    SHA-256 is ample against collisions among the nonces of half an hour."""
    return hashlib.sha256(f"{len(access_key_id)}:{access_key_id}:{nonce}".encode()).digest()[:16]


@dataclass(frozen=True)
class NonceClaim:
    """A request's nonce, once its signature holds: to be recorded before the request acts."""

    access_key_id: str
    nonce: str
    now: datetime

    @cached_property
    def digest(self) -> bytes:
        return nonce_digest(self.access_key_id, self.nonce)


class SignatureNonces:
    def __init__(self, db: Database, window: timedelta = WINDOW) -> None:
        self._db = db
        self._window = window
        self._sqlite = db.is_sqlite
        self._marker = "?" if self._sqlite else "%s"
        self._renew, self._sweep = (sql.format(p=self._marker) for sql in (_RENEW, _SWEEP))
        self._connection: Any = None  # the driver's connection, used under the lock
        self._lock = threading.Lock()
        self._next_sweep: datetime | None = None

    def use(self, access_key_id: str, nonce: str, now: datetime) -> bool:
        """Record the nonce; False if it was used within the window."""
        return self.record([NonceClaim(access_key_id, nonce, now)])[0]

    def record(self, claims: Sequence[NonceClaim]) -> list[bool]:
        """Record the nonces in one commit; for each, False if it was used within the window
        (by an earlier request, or by an earlier claim of the same call)."""
        answers: list[bool] = []
        with self._lock:
            try:
                for start in range(0, len(claims), GROUP_MAX):
                    answers += self._record(claims[start : start + GROUP_MAX])
                if claims and self._sweep_due(claims[-1].now):
                    self._driver().execute(self._sweep, (self._value(claims[-1].now),))
                self._driver().commit()
            except Exception:
                self._discard()  # the next call starts on a fresh connection
                raise
        return answers

    def close(self) -> None:
        with self._lock:
            self._discard()

    def _record(self, claims: Sequence[NonceClaim]) -> list[bool]:
        driver = self._driver()
        rows: dict[bytes, NonceClaim] = {}
        for claim in claims:
            rows.setdefault(claim.digest, claim)  # a later claim of the same digest is a replay
        values: list[Any] = []
        for digest, claim in rows.items():
            values += (digest, self._value(claim.now + self._window))
        placeholders = ", ".join([f"({self._marker}, {self._marker})"] * len(rows))
        inserted = {
            bytes(row[0]) for row in driver.execute(_INSERT.format(rows=placeholders), values).fetchall()
        }
        fresh: set[bytes] = set()
        for digest, claim in rows.items():
            if digest in inserted or self._renewed(driver, claim):
                fresh.add(digest)
        answers = []
        for claim in claims:
            answers.append(claim.digest in fresh)
            fresh.discard(claim.digest)
        return answers

    def _renewed(self, driver: Any, claim: NonceClaim) -> bool:
        expires_at = self._value(claim.now + self._window)
        moment = self._value(claim.now)
        return len(driver.execute(self._renew, (expires_at, claim.digest, moment)).fetchall()) > 0

    def _driver(self) -> Any:
        if self._connection is None:
            pooled = self._db.engine.raw_connection()  # with the store's connect-time settings
            connection: Any = pooled.driver_connection
            pooled.detach()  # then its own, outside the pool the sessions share
            if not self._sqlite:
                # A server restart keeps a nonce without waiting for the WAL flush; only an
                # operating-system crash could lose the last fraction of a second of them.
                with connection.cursor() as cursor:
                    cursor.execute("SET synchronous_commit = off")
                connection.commit()
            self._connection = connection
        return self._connection

    def _discard(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    @staticmethod
    def _value(moment: datetime) -> int:
        return int(moment.timestamp())

    def _sweep_due(self, now: datetime) -> bool:
        if self._next_sweep is not None and now < self._next_sweep:
            return False
        self._next_sweep = now + SWEEP_EVERY
        return True
