"""Queueing work on disk files for the host agent, in the transaction that changes the store.

The API commits the new statuses and the task together, so nothing accepted is lost: the
agent does each task, then deletes it in the transaction that records its outcome."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from nubes.store.models import Disk, StorageTask

DISK_KINDS = ("create", "attach", "detach", "snapshot", "reset", "reinit", "resize", "delete", "merge")
IMAGE_KINDS = ("import", "export")


def enqueue(
    s: Session,
    now: datetime,
    kind: str,
    disk: Disk,
    *,
    instance_id: str = "",
    snapshot_id: str = "",
    size_gib: int = 0,
) -> None:
    assert kind in DISK_KINDS, kind
    s.add(
        StorageTask(
            kind=kind,
            disk_id=disk.id,
            instance_id=instance_id,
            snapshot_id=snapshot_id,
            size_gib=size_gib,
            host_id=disk.host_id,
            created_at=now,
        )
    )


def enqueue_image(
    s: Session,
    now: datetime,
    kind: str,
    image_id: str,
    host_id: str | None,
    args: dict[str, Any],
    snapshot_id: str = "",
) -> StorageTask:
    """A task on an image's files (keyed by the image id in `disk_id`)."""
    assert kind in IMAGE_KINDS, kind
    task = StorageTask(
        kind=kind,
        disk_id=image_id,
        instance_id="",
        snapshot_id=snapshot_id,
        size_gib=0,
        host_id=host_id,
        created_at=now,
        args=json.dumps(args),
    )
    s.add(task)
    s.flush()
    return task
