"""Engine, sessions and migrations for the store: SQLite (WAL) embedded, or PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")


@dataclass
class _Unit:
    """The one session of a unit of work, and what waits for its commit."""

    session: Session
    after_commit: list[Callable[[], None]] = field(default_factory=list)


def normalise_url(url: str) -> str:
    """Accept postgresql:// and postgres:// and use the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Database:
    """One engine and its session factory. Passed in, never imported as a global."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict[str, Any] = {"future": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            path = self.url.removeprefix("sqlite:///")
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Per thread and per asyncio task: agents in other threads never join a request's unit.
        self._unit: ContextVar[_Unit | None] = ContextVar(f"nubes-unit-{id(self)}", default=None)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back if it raises. Inside
        `unit_of_work` it is the unit's session instead, flushed when the block ends and
        committed (or rolled back) with everything else the unit does."""
        unit = self._unit.get()
        if unit is not None:
            yield unit.session
            unit.session.flush()
            return
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """One transaction for everything the block does through `session()`, so that an action's
        effects and its ClientToken commit together or not at all. Callbacks registered with
        `after_commit` run once it has committed (never if it rolls back)."""
        if self._unit.get() is not None:
            raise RuntimeError("units of work do not nest")
        unit = _Unit(self._sessions())
        token = self._unit.set(unit)
        try:
            yield unit.session
            unit.session.commit()
        except BaseException:
            unit.session.rollback()
            raise
        finally:
            self._unit.reset(token)
            unit.session.close()
        for callback in unit.after_commit:
            callback()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` when the current unit of work has committed; at once outside one.
        Agents told about a change must find it in the store when they look."""
        unit = self._unit.get()
        if unit is None:
            callback()
        else:
            unit.after_commit.append(callback)

    def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic)."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        if self.is_sqlite:
            path = self.url.removeprefix("sqlite:///")
            if os.path.exists(path):
                os.chmod(path, 0o600)

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
