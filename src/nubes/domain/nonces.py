"""SignatureNonce memory in the store: a nonce may be used once while its request can be valid.

Kept in the store, not in a process, so a replay is refused after a restart and by every API
process that shares the store. This runs on every request, so it holds one connection of its
own and speaks to it through the driver (one prepared statement and one commit), and the table
is as small as it can be: a 16-byte key, epoch-second expiry, no secondary index, and on SQLite
no rowid, so an insert touches one B-tree (bench: about 60 us a nonce on SQLite, against 170 us
with a hex key, a rowid table and an expiry index)."""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from nubes.store.db import Database

# Timestamps are accepted 15 minutes either side of the server clock, so a request stays
# replayable for up to 30 minutes: remember its nonce that long.
WINDOW = timedelta(minutes=30)
SWEEP_EVERY = timedelta(minutes=1)
GROUP_MAX = 256  # nonces in one commit at most
WRITER_IDLE = 2.0  # seconds without a nonce after which the writer thread and its connection go

_INSERT = (
    "INSERT INTO signature_nonces (digest, expires_at) VALUES ({p}, {p}) "
    "ON CONFLICT (digest) DO NOTHING RETURNING digest"
)
# Seen before: usable again only once its window has passed (the sweep may lag behind).
_RENEW = (
    "UPDATE signature_nonces SET expires_at = {p} WHERE digest = {p} AND expires_at < {p} RETURNING digest"
)
_SWEEP = "DELETE FROM signature_nonces WHERE expires_at < {p}"


def nonce_digest(access_key_id: str, nonce: str) -> bytes:
    """Length-prefixed, so that key "ab" + nonce "c" and key "a" + nonce "bc" differ; half a
    SHA-256 is ample against collisions among the nonces of half an hour."""
    return hashlib.sha256(f"{len(access_key_id)}:{access_key_id}:{nonce}".encode()).digest()[:16]


class SignatureNonces:
    """Records nonces on a writer thread of its own, in groups: every nonce submitted while a
    commit runs goes into the next one, so under load a commit serves many requests and the
    API's event loop never waits on the disk. A request goes on only once its nonce has
    committed: a replay is refused by every process and after any restart."""

    def __init__(self, db: Database, window: timedelta = WINDOW) -> None:
        self._db = db
        self._window = window
        self._sqlite = db.is_sqlite
        marker = "?" if self._sqlite else "%s"
        self._insert, self._renew, self._sweep = (sql.format(p=marker) for sql in (_INSERT, _RENEW, _SWEEP))
        self._connection: Any = None  # the driver's connection, the writer thread's alone
        self._next_sweep: datetime | None = None
        self._queue: queue.SimpleQueue[_Claim | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._start = threading.Lock()

    def use(self, access_key_id: str, nonce: str, now: datetime) -> bool:
        """Record the nonce; False if it was used within the window."""
        return self.submit(access_key_id, nonce, now).result()

    def submit(self, access_key_id: str, nonce: str, now: datetime) -> Future[bool]:
        """Record the nonce; the future says, once committed, whether it was fresh."""
        claim = _Claim(nonce_digest(access_key_id, nonce), now, Future())
        with self._start:  # the writer leaves when idle, under this lock, so no claim is stranded
            if self._writer is None:
                self._writer = threading.Thread(target=self._write, name="nubes-nonces", daemon=True)
                self._writer.start()
            self._queue.put(claim)
        return claim.fresh

    def close(self) -> None:
        with self._start:
            writer, self._writer = self._writer, None
            if writer is not None:
                self._queue.put(None)
        if writer is not None:
            writer.join()
        self._discard()

    def _write(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=WRITER_IDLE)
            except queue.Empty:
                with self._start:
                    if not self._queue.empty():
                        continue
                    self._writer = None
                self._discard()
                return
            if first is None:
                return
            group = [first]
            while len(group) < GROUP_MAX:
                try:
                    claim = self._queue.get_nowait()
                except queue.Empty:
                    break
                if claim is None:
                    self._queue.put(None)  # stop after this group
                    break
                group.append(claim)
            try:
                answers = self._record(group)
            except Exception as failure:  # noqa: BLE001 - each request answers it (500); the writer goes on
                self._discard()
                for claim in group:
                    claim.fresh.set_exception(failure)
                continue
            for claim, fresh in zip(group, answers, strict=True):
                claim.fresh.set_result(fresh)

    def _record(self, group: list[_Claim]) -> list[bool]:
        driver = self._driver()
        answers = []
        for claim in group:
            moment, expires_at = self._value(claim.now), self._value(claim.now + self._window)
            fresh = len(driver.execute(self._insert, (claim.digest, expires_at)).fetchall()) > 0
            if not fresh:
                fresh = len(driver.execute(self._renew, (expires_at, claim.digest, moment)).fetchall()) > 0
            answers.append(fresh)
        if self._sweep_due(group[-1].now):
            driver.execute(self._sweep, (self._value(group[-1].now),))
        driver.commit()
        return answers

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


@dataclass(frozen=True)
class _Claim:
    digest: bytes
    now: datetime
    fresh: Future[bool]
