"""Snapshots of cloud disks: instant, crash-consistent, copy-on-write.

CreateSnapshot commits a `progressing` snapshot and a storage task; the agent freezes the
disk's top layer (a new empty overlay takes the writes, live through QMP when the VM runs)
and marks it `accomplished`. A snapshot's content is its frozen layer and the layers under
it, so disks made from it, resets to it and images made of it take constant time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nubes import errors, ids
from nubes.clock import Clock, as_utc
from nubes.domain import disk_states as ds
from nubes.domain.common import Scope
from nubes.domain.disks import owned_disk, owned_snapshot
from nubes.domain.resource_groups import group_for
from nubes.domain.snapshot_usage import disks_using, forget_snapshot, images_using
from nubes.domain.storage_tasks import enqueue
from nubes.domain.tags import check_tags, write_tags
from nubes.store.db import Database
from nubes.store.models import Disk, Snapshot

PROGRESSING, ACCOMPLISHED, FAILED = "progressing", "accomplished", "failed"
MAX_SNAPSHOTS_PER_DISK = 256  # ECS keeps up to 256 snapshots of a disk


class Snapshots:
    def __init__(self, db: Database, clock: Clock, notify: Callable[[str], None]) -> None:
        self._db = db
        self._clock = clock
        self._notify = notify

    def create(
        self,
        account_id: int,
        disk_id: str,
        name: str = "",
        description: str = "",
        retention_days: int | None = None,
        tags: tuple[tuple[str, str], ...] = (),
        client_token: str = "",
        auto_policy_id: str = "",
        instant_access: bool = False,
        resource_group_id: str = "",
    ) -> str:
        check_tags(tags)
        now = self._clock.now()
        with self._db.session() as s:
            snapshot = self.create_in(
                s,
                now,
                owned_disk(s, account_id, disk_id),
                name,
                description,
                retention_days,
                client_token,
                auto_policy_id,
                instant_access,
            )
            snapshot.resource_group_id = group_for(s, account_id, resource_group_id, self._clock)
            write_tags(s, Scope(account_id, snapshot.region_id), "snapshot", snapshot.id, tags, created=True)
            key_id = snapshot.id
            wake = snapshot_key(s, disk_id)
        self._notify(wake)
        return key_id

    def create_in(
        self,
        s: Session,
        now: datetime,
        disk: Disk,
        name: str = "",
        description: str = "",
        retention_days: int | None = None,
        client_token: str = "",
        auto_policy_id: str = "",
        instant_access: bool = False,
    ) -> Snapshot:
        """A snapshot of `disk` in the session `s` (CreateImage and policies use it too)."""
        ds.check("CreateSnapshot", disk.id, disk.status)
        count = s.scalar(select(func.count()).select_from(Snapshot).where(Snapshot.disk_id == disk.id)) or 0
        if count >= MAX_SNAPSHOTS_PER_DISK:
            raise errors.quota_exceed_snapshot(
                f"The disk {disk.id} has {count} snapshots, the most it can keep."
            )
        if name.startswith("auto") and not auto_policy_id:
            raise errors.invalid_snapshot_name_malformed()
        snapshot = Snapshot(
            id=ids.new_id("snapshot"),
            account_id=disk.account_id,
            region_id=disk.region_id,
            disk_id=disk.id,
            disk_type=disk.disk_type,
            disk_category=disk.category,
            disk_size_gib=disk.size_gib,
            source_image_id=disk.image_id,
            name=name,
            description=description,
            status=PROGRESSING,
            progress=0,
            layer="",
            auto_policy_id=auto_policy_id,
            retention_days=retention_days,
            instant_access=instant_access,
            client_token=client_token,
            encrypted=disk.encrypted,  # its layer is the disk's, under the disk's key
            host_id=disk.host_id,
            created_at=now,
        )
        s.add(snapshot)
        enqueue(s, now, "snapshot", disk, instance_id=disk.instance_id, snapshot_id=snapshot.id)
        return snapshot

    def delete(self, account_id: int, snapshot_id: str, force: bool) -> None:
        with self._db.session() as s:
            snapshot = s.get(Snapshot, snapshot_id)
            if snapshot is None or snapshot.account_id != account_id:
                return  # ECS ignores a snapshot that does not exist
            images = images_using(s, snapshot_id)
            if images:
                raise errors.snapshot_created_image(
                    f"The snapshot {snapshot_id} is used by the image(s) {', '.join(images)}; delete "
                    "them first.",
                )
            disks = disks_using(s, snapshot_id)
            if disks and not force:
                raise errors.snapshot_created_disk(
                    f"The snapshot {snapshot_id} was used to create the disk(s) {', '.join(disks)}; "
                    "set Force=true to delete it anyway.",
                )
            # a progressing snapshot is cancelled: its task finds no snapshot and does nothing
            # (or, if the disk already has its new top, records only that)
            forget_snapshot(s, self._clock.now(), snapshot)
            # its layer stays while disks still stand on it; the agent collects it after
            host = snapshot.host_id
        self._notify(f"gc:{host}")

    def modify(
        self,
        account_id: int,
        snapshot_id: str,
        name: str | None,
        description: str | None,
        disable_instant_access: bool = False,
        retention_days: int | None = None,
    ) -> None:
        """`retention_days` counts from the snapshot's creation, as CreateSnapshot's does: a
        retention that has already run out is refused (the snapshot would vanish at once)."""
        with self._db.session() as s:
            snapshot = owned_snapshot(s, account_id, snapshot_id)
            if retention_days is not None:
                if as_utc(snapshot.created_at) + timedelta(days=retention_days) <= self._clock.now():
                    raise errors.invalid_parameter(
                        "RetentionDays",
                        f"The snapshot {snapshot_id} was created more than {retention_days} days ago.",
                    )
                snapshot.retention_days = retention_days
            if name is not None:
                if name.startswith("auto"):
                    raise errors.invalid_snapshot_name_malformed()
                snapshot.name = name
            if description is not None:
                snapshot.description = description
            if disable_instant_access:
                snapshot.instant_access = False

    def usage(self, scope: Scope) -> tuple[int, int]:
        """(snapshot count, bytes the snapshots hold) in a region."""
        with self._db.session() as s:
            rows = list(
                s.execute(
                    select(func.count(), func.sum(Snapshot.disk_size_gib)).where(
                        Snapshot.account_id == scope.account_id, Snapshot.region_id == scope.region_id
                    )
                )
            )
        count, size = rows[0]
        return int(count or 0), int(size or 0) << 30


def snapshot_key(s: Session, disk_id: str) -> str:
    disk = s.get(Disk, disk_id)
    return (disk.instance_id or disk.id) if disk is not None else disk_id
