"""Time, passed in so that tests can move it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything nubes stores is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso8601(moment: datetime) -> str:
    """ECS renders times as 2024-01-01T12:00Z (minutes, UTC)."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%MZ")


def iso8601_seconds(moment: datetime) -> str:
    """The VPC API renders times with seconds: 2024-01-01T12:00:00Z."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")
