"""Who depends on a snapshot, and what goes with a released disk (no domain imports but the
tags': the disk and snapshot modules both use it)."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from nubes.domain.storage_tasks import enqueue
from nubes.domain.tags import drop_tags
from nubes.store.models import Disk, Image, Snapshot


def images_using(s: Session, snapshot_id: str) -> list[str]:
    """Custom images whose system or data disks are this snapshot."""
    found = []
    for image in s.scalars(
        select(Image).where(or_(Image.snapshot_id == snapshot_id, Image.disk_mappings.contains(snapshot_id)))
    ):
        if image.snapshot_id == snapshot_id or any(
            m.get("SnapshotId") == snapshot_id for m in json.loads(image.disk_mappings or "[]")
        ):
            found.append(image.id)
    return found


def disks_using(s: Session, snapshot_id: str) -> list[str]:
    return list(s.scalars(select(Disk.id).where(Disk.source_snapshot_id == snapshot_id)))


def forget_snapshot(s: Session, now: datetime, snapshot: Snapshot) -> None:
    """Delete a snapshot row and its tags; its frozen layer is then merged into the layer above
    it (a "merge" task of its disk keeps the disk's chain short) and collected."""
    drop_tags(s, snapshot.account_id, snapshot.region_id, "snapshot", snapshot.id)
    disk = s.get(Disk, snapshot.disk_id) if snapshot.disk_id else None
    if disk is not None and snapshot.layer:
        enqueue(s, now, "merge", disk, instance_id=disk.instance_id)
    s.delete(snapshot)


def release_disk(s: Session, disk: Disk) -> None:
    """Delete a disk row with its tags and, if it asks for it (DeleteAutoSnapshot), its automatic
    snapshots that no image or disk uses. Its layers go with the agent's next collection."""
    if disk.delete_auto_snapshot:
        for snapshot in s.scalars(
            select(Snapshot).where(
                Snapshot.disk_id == disk.id, Snapshot.auto_policy_id != "", Snapshot.status != "progressing"
            )
        ):
            if not images_using(s, snapshot.id) and not disks_using(s, snapshot.id):
                drop_tags(s, snapshot.account_id, snapshot.region_id, "snapshot", snapshot.id)
                s.delete(snapshot)
    drop_tags(s, disk.account_id, disk.region_id, "disk", disk.id)
    s.delete(disk)
