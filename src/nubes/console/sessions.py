"""Console sessions: kept in this process's memory, keyed by a random id, so the AccessKey secret
never goes to the browser (its cookie holds the session id only).

Sessions end when the server restarts, at sign out, after `idle_seconds` without a request (as
the ECS console signs an idle user out) and SESSION_SECONDS after sign-in whatever happens: a
restart signs everybody out, by design, since nothing about a session is written to disk."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SESSION_SECONDS = 8 * 3600
IDLE_SECONDS = 1800.0
MAX_SESSIONS = 10_000


@dataclass
class Session:
    session_id: str
    access_key_id: str
    access_key_secret: str
    region_id: str
    expires: float  # on the monotonic clock: sign-in + SESSION_SECONDS
    last_seen: float = 0.0
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    regions: list[str] = field(default_factory=list)


class Sessions:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        seconds: int = SESSION_SECONDS,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.clock = clock
        self.seconds = seconds
        self.idle_seconds = idle_seconds
        self._sessions: dict[str, Session] = {}

    def create(self, access_key_id: str, secret: str, region_id: str, regions: list[str]) -> Session:
        now = self.clock()
        for sid in [sid for sid, s in self._sessions.items() if not self._alive(s, now)]:
            del self._sessions[sid]
        if len(self._sessions) >= MAX_SESSIONS:
            del self._sessions[min(self._sessions, key=lambda sid: self._sessions[sid].expires)]
        session = Session(
            secrets.token_urlsafe(32), access_key_id, secret, region_id, now + self.seconds, now
        )
        session.regions = regions
        self._sessions[session.session_id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        now = self.clock()
        if session is None or not self._alive(session, now):
            self._sessions.pop(session_id, None)
            return None
        session.last_seen = now
        return session

    def _alive(self, session: Session, now: float) -> bool:
        return now < session.expires and now - session.last_seen < self.idle_seconds

    def end(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)
