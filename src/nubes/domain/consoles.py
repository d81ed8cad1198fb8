"""Serial console output in the store: the host agent that runs an instance's VM records the
tail of its console there (nubes.agent.compute), and GetInstanceConsoleOutput reads it from
any API process, none of which has a compute driver (several hosts: the VM may run on another
machine)."""

from __future__ import annotations

from sqlalchemy import select

from nubes.clock import Clock
from nubes.store.db import Database
from nubes.store.models import ConsoleOutput, Instance

CONSOLE_TAIL = 64 * 1024  # bytes kept: the last 64 KiB of the console, as the API answers it


class ConsoleOutputs:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def tail(self, instance_id: str) -> bytes:
        """The console tail last recorded for the instance (b"" before its VM printed anything)."""
        with self._db.session() as s:
            output = s.scalar(select(ConsoleOutput.output).where(ConsoleOutput.instance_id == instance_id))
        return bytes(output) if output is not None else b""

    def record(self, instance_id: str, output: bytes) -> bool:
        """Record the tail of the instance's console (its last CONSOLE_TAIL bytes). False, and
        nothing recorded, when the instance is gone."""
        with self._db.session() as s:
            if s.get(Instance, instance_id) is None:
                return False
            row = s.get(ConsoleOutput, instance_id)
            if row is None:
                row = ConsoleOutput(instance_id=instance_id)
                s.add(row)
            row.output, row.updated_at = output[-CONSOLE_TAIL:], self._clock.now()
        return True
