"""Queueing work on disk files for the host agent, in the transaction that changes the store.

The API commits the new statuses and the task together, so nothing accepted is lost: the
agent does each task, then deletes it in the transaction that records its outcome."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from nubes.store.models import Disk, StorageTask

KINDS = ("create", "attach", "detach", "snapshot", "reset", "reinit", "resize", "delete")


def enqueue(s: Session, now: datetime, kind: str, disk: Disk, *, instance_id: str = "", snapshot_id: str = "",
            size_gib: int = 0) -> None:
    assert kind in KINDS, kind
    s.add(StorageTask(kind=kind, disk_id=disk.id, instance_id=instance_id, snapshot_id=snapshot_id, size_gib=size_gib,
                      host_id=disk.host_id, created_at=now))
