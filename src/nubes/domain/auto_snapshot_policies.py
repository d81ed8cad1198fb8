"""Automatic snapshot policies: hours of the day and days of the week at which every disk the
policy is applied to gets a snapshot, kept for the policy's retention days.

Time zone: ECS reads TimePoints (and so the weekday they fall on) in UTC+8 (China Standard
Time): "The time must be in UTC+8. Unit: hours" in CreateAutoSnapshotPolicy,
ModifyAutoSnapshotPolicyEx and DescribeAutoSnapshotPolicyEx. nubes does the same, whatever the
host's zone: time point 1 on weekday 1 is Monday 01:00 UTC+8, i.e. Sunday 17:00 UTC.

Firing: `fire_due(now)` (called by the host agent on every pass, with the clock passed in)
looks for the latest scheduled hour in (last_fired_at or created_at, now]. If there is one, it
claims it with a compare-and-set on `last_fired_at` (so two agents, repeated calls or a
restart never fire a time point twice) and snapshots each applied disk once. Time points missed
while the server was down are caught up with one snapshot per disk, not one per missed hour
(they would be identical). As ECS does, a disk is skipped when its EnableAutoSnapshot attribute
is false, when its status does not allow CreateSnapshot, or while a snapshot of it is still being
made ("the new snapshot task is skipped"); when a disk has as many snapshots as it may keep, its
oldest deletable automatic snapshot makes room.

Retention: an automatic snapshot keeps the retention its policy had when it was made (ECS:
changing a policy's retention "will only affect new snapshots"). When it runs out, the snapshot
row is deleted directly, under DeleteSnapshot's rules without Force: automatic snapshots still
used by a custom image or by disks created from them, or still progressing, are kept."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, cast

from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.orm import Session

from nubes import errors, ids
from nubes.clock import Clock, as_utc
from nubes.domain import disk_states as ds
from nubes.domain.common import Scope, check_name, owned
from nubes.domain.jsonlists import decode_json_list
from nubes.domain.snapshot_usage import disks_using, forget_snapshot, images_using
from nubes.domain.snapshots import MAX_SNAPSHOTS_PER_DISK, PROGRESSING, Snapshots
from nubes.domain.tags import check_tags, drop_tags, tags_by_resource, where_tagged, write_tags
from nubes.errors import ApiError
from nubes.store.db import Database
from nubes.store.models import AutoSnapshotPolicy, Disk, Snapshot

log = logging.getLogger("nubes.domain.auto_snapshot_policies")

# ECS time points and weekdays are in UTC+8 (see the module docstring).
POLICY_TZ = timezone(timedelta(hours=8))
MAX_POLICIES = 100  # "up to 100 automatic snapshot policies per region for a single Alibaba Cloud account"
MAX_RETENTION_DAYS = 65536
MAX_COPY_RETENTION_DAYS = 65535
MAX_DISKS_PER_CALL = 1000
NORMAL = "Normal"
TAG_RESOURCE_TYPE = "snapshotpolicy"  # as in ECS's ARN acs:ecs:...:snapshotpolicy/sp-...
CREATES_SNAPSHOTS = ds.TRANSITIONS["CreateSnapshot"].allowed_from


# ---- validation (the codes of the ECS API reference) ----------------------------------------


def _invalid(what: str) -> ApiError:
    return errors.parameter_invalid(f"The specified {what} parameter is invalid.")


def _int_list(text: str, low: int, high: int, most: int, what: str) -> list[int]:
    """A JSON array of hours or weekdays (strings like "1" or numbers), sorted, without repeats."""
    decoded = decode_json_list(text)
    if decoded is None or not decoded or len(decoded) > most:
        raise _invalid(what)
    values = set()
    for item in decoded:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise _invalid(what)
        text_item = str(item).strip()
        if not text_item.isdigit() or not low <= int(text_item) <= high:
            raise _invalid(what)
        values.add(int(text_item))
    return sorted(values)


def parse_time_points(text: str) -> list[int]:
    """timePoints: a JSON array of up to 24 hours, 0-23 (UTC+8)."""
    return _int_list(text, 0, 23, 24, "TimePoints")


def parse_weekdays(text: str) -> list[int]:
    """repeatWeekdays: a JSON array of up to 7 days, 1 (Monday) - 7 (Sunday)."""
    return _int_list(text, 1, 7, 7, "RepeatWeekDays")


def check_retention(days: int) -> int:
    """retentionDays: -1 (kept until deleted) or 1-65536."""
    if days != -1 and not 1 <= days <= MAX_RETENTION_DAYS:
        raise _invalid("RetentionDays")
    return days


def check_copy_retention(days: int | None) -> int:
    if days is None:
        return -1
    if days != -1 and not 1 <= days <= MAX_COPY_RETENTION_DAYS:
        raise errors.invalid_parameter_copied_snapshots_retention_days()
    return days


def parse_disk_ids(text: str) -> list[str]:
    """diskIds: a JSON array of disk IDs."""
    decoded = decode_json_list(text)
    if (
        decoded is None
        or not decoded
        or len(decoded) > MAX_DISKS_PER_CALL
        or not all(isinstance(d, str) and 0 < len(d) <= 64 for d in decoded)
    ):
        raise errors.parameter_invalid("The specified DiskIds are invalid.")
    return list(dict.fromkeys(cast(list[str], decoded)))


def parse_copy_regions(text: str | None, known: Callable[[str], bool]) -> list[str]:
    """TargetCopyRegions: a JSON array with one region."""
    if not text:
        return []
    decoded = decode_json_list(text)
    if decoded is None or len(decoded) != 1 or not isinstance(decoded[0], str) or not known(decoded[0]):
        raise errors.invalid_parameter_target_copy_regions()
    return [decoded[0]]


def render_list(values: Iterable[int]) -> str:
    """["0","19"]: how DescribeAutoSnapshotPolicyEx shows TimePoints and RepeatWeekdays."""
    return json.dumps([str(v) for v in values], separators=(",", ":"))


# ---- the schedule (pure) ---------------------------------------------------------------------


def due_hours(
    time_points: Iterable[int], weekdays: Iterable[int], after: datetime, until: datetime
) -> list[datetime]:
    """The scheduled instants (UTC, on the hour) t with after < t <= until, oldest first.

    A time point h on weekday w means the hour h:00 in UTC+8 of a day that is weekday w in UTC+8."""
    hours, days = frozenset(time_points), frozenset(weekdays)
    after, until = as_utc(after), as_utc(until)
    t = after.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    found = []
    while t <= until:
        local = t.astimezone(POLICY_TZ)
        if local.hour in hours and local.isoweekday() in days:
            found.append(t)
        t += timedelta(hours=1)
    return found


def latest_due(
    time_points: Iterable[int], weekdays: Iterable[int], after: datetime, until: datetime
) -> datetime | None:
    """The most recent scheduled instant in (after, until], or None. The schedule repeats every
    week, so only the last week before `until` needs looking at."""
    after, until = as_utc(after), as_utc(until)
    hours = due_hours(time_points, weekdays, max(after, until - timedelta(days=7, hours=1)), until)
    return hours[-1] if hours else None


def auto_snapshot_name(moment: datetime, sequence: int) -> str:
    """auto_yyyyMMdd_N, the date in UTC+8, N counting the disk's automatic snapshots of that day."""
    return f"auto_{as_utc(moment).astimezone(POLICY_TZ):%Y%m%d}_{sequence}"


# ---- the service -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyView:
    policy: AutoSnapshotPolicy
    disk_count: int
    tags: list[tuple[str, str]]


def _not_found(in_region: bool) -> ApiError:
    where = " in the region" if in_region else ""
    return errors.parameter_invalid(
        f"The specified automatic snapshot policy does not exist{where}.",
        http_status=404,
    )


def _fired_or_created(policy: AutoSnapshotPolicy) -> datetime:
    """Where the search for a due time point starts: nothing at or before it fires."""
    created = as_utc(policy.created_at)
    return created if policy.last_fired_at is None else max(created, as_utc(policy.last_fired_at))


def _deletable(s: Session, snapshot: Snapshot) -> bool:
    """DeleteSnapshot without Force would delete it."""
    return (
        snapshot.status != PROGRESSING
        and not images_using(s, snapshot.id)
        and not disks_using(s, snapshot.id)
    )


class AutoSnapshotPolicies:
    def __init__(self, db: Database, clock: Clock, notify: Callable[[str], None] | None = None) -> None:
        self._db = db
        self._clock = clock
        self._notify: Callable[[str], None] = notify or (lambda _key: None)
        self._snapshots = Snapshots(db, clock, self._notify)

    # ---- API ---------------------------------------------------------------------------------

    def get(self, s: Session, scope: Scope, policy_id: str) -> AutoSnapshotPolicy:
        policy = owned(
            s, AutoSnapshotPolicy, scope.account_id, policy_id, lambda _: _not_found(in_region=False)
        )
        if policy.region_id != scope.region_id:
            raise _not_found(in_region=True)
        return policy

    def create(
        self,
        scope: Scope,
        name: str | None,
        time_points: str,
        weekdays: str,
        retention_days: int,
        tags: Sequence[tuple[str, str]] = (),
        copy_regions: Sequence[str] = (),
        copy_retention_days: int = -1,
    ) -> str:
        hours, days = parse_time_points(time_points), parse_weekdays(weekdays)
        check_retention(retention_days)
        policy_name = check_name("AutoSnapshotPolicyName", name)
        check_tags(tags)
        with self._db.session() as s:
            count = (
                s.scalar(
                    select(func.count(AutoSnapshotPolicy.id)).where(
                        AutoSnapshotPolicy.account_id == scope.account_id,
                        AutoSnapshotPolicy.region_id == scope.region_id,
                    )
                )
                or 0
            )
            if count >= MAX_POLICIES:
                raise errors.auto_snapshot_policy_quota_exceed()
            policy = AutoSnapshotPolicy(
                id=ids.new_id("auto_snapshot_policy"),
                account_id=scope.account_id,
                region_id=scope.region_id,
                name=policy_name,
                time_points=json.dumps(hours),
                repeat_weekdays=json.dumps(days),
                retention_days=retention_days,
                copy_regions=json.dumps(list(copy_regions)),
                copy_retention_days=copy_retention_days,
                status=NORMAL,
                created_at=self._clock.now(),
                last_fired_at=None,
            )
            s.add(policy)
            write_tags(s, scope, TAG_RESOURCE_TYPE, policy.id, tags, created=True)
            return policy.id

    def describe(
        self,
        scope: Scope,
        policy_id: str | None = None,
        name: str | None = None,
        tags: Sequence[tuple[str, str | None]] = (),
    ) -> list[PolicyView]:
        with self._db.session() as s:
            query = select(AutoSnapshotPolicy).where(
                AutoSnapshotPolicy.account_id == scope.account_id,
                AutoSnapshotPolicy.region_id == scope.region_id,
            )
            if policy_id:
                query = query.where(AutoSnapshotPolicy.id == policy_id)
            if name:
                query = query.where(AutoSnapshotPolicy.name == name)
            query = where_tagged(query, scope, TAG_RESOURCE_TYPE, AutoSnapshotPolicy.id, tags)
            policies = list(
                s.scalars(query.order_by(AutoSnapshotPolicy.created_at.desc(), AutoSnapshotPolicy.id))
            )
            policy_ids = [p.id for p in policies]
            counts: dict[str, int] = {
                policy: int(n)
                for policy, n in s.execute(
                    select(Disk.auto_snapshot_policy_id, func.count())
                    .where(Disk.auto_snapshot_policy_id.in_(policy_ids))
                    .group_by(Disk.auto_snapshot_policy_id)
                )
            }
            tag_rows = tags_by_resource(s, scope, TAG_RESOURCE_TYPE, policy_ids)
            return [PolicyView(p, counts.get(p.id, 0), tag_rows.get(p.id, [])) for p in policies]

    def modify(
        self,
        scope: Scope,
        policy_id: str,
        name: str | None = None,
        time_points: str | None = None,
        weekdays: str | None = None,
        retention_days: int | None = None,
        copy_regions: list[str] | None = None,
        copy_retention_days: int | None = None,
    ) -> None:
        hours = parse_time_points(time_points) if time_points is not None else None
        days = parse_weekdays(weekdays) if weekdays is not None else None
        if retention_days is not None:
            check_retention(retention_days)
        policy_name = check_name("AutoSnapshotPolicyName", name) if name is not None else None
        now = self._clock.now()
        with self._db.session() as s:
            policy = self.get(s, scope, policy_id)
            if policy_name:
                policy.name = policy_name
            if hours is not None or days is not None:
                if hours is not None:
                    policy.time_points = json.dumps(hours)
                if days is not None:
                    policy.repeat_weekdays = json.dumps(days)
                # The new schedule applies from the next time point on: hours that went by before
                # the change do not fire now.
                start = now.replace(minute=0, second=0, microsecond=0)
                if policy.last_fired_at is None or as_utc(policy.last_fired_at) < start:
                    policy.last_fired_at = start
            if retention_days is not None:
                policy.retention_days = retention_days  # new snapshots only
            if copy_regions is not None:
                policy.copy_regions = json.dumps(copy_regions)
            if copy_retention_days is not None:
                policy.copy_retention_days = copy_retention_days

    def delete(self, scope: Scope, policy_id: str) -> None:
        """Delete a policy; the disks it was applied to no longer follow any."""
        with self._db.session() as s:
            policy = self.get(s, scope, policy_id)
            s.execute(
                update(Disk)
                .where(Disk.auto_snapshot_policy_id == policy.id)
                .values(auto_snapshot_policy_id="")
            )
            drop_tags(s, policy.account_id, policy.region_id, TAG_RESOURCE_TYPE, policy.id)
            s.delete(policy)

    def _disks(self, s: Session, scope: Scope, disk_ids: list[str]) -> list[Disk]:
        disks = []
        for disk_id in disk_ids:
            disks.append(
                owned(
                    s,
                    Disk,
                    scope,
                    disk_id,
                    lambda missing: errors.invalid_disk_id_not_found(
                        f"The specified disk {missing!r} does not exist in the region."
                    ),
                )
            )
        return disks

    def apply(self, scope: Scope, policy_id: str, disk_ids_json: str) -> None:
        """Apply the policy to disks; a disk has one policy, so this replaces the one it had."""
        disk_ids = parse_disk_ids(disk_ids_json)
        with self._db.session() as s:
            policy = self.get(s, scope, policy_id)
            for disk in self._disks(s, scope, disk_ids):
                disk.auto_snapshot_policy_id = policy.id

    def cancel(self, scope: Scope, disk_ids_json: str, policy_id: str | None = None) -> None:
        """The disks no longer follow their policy (only `policy_id`'s, when given)."""
        disk_ids = parse_disk_ids(disk_ids_json)
        with self._db.session() as s:
            if policy_id:
                self.get(s, scope, policy_id)
            for disk in self._disks(s, scope, disk_ids):
                if not policy_id or disk.auto_snapshot_policy_id == policy_id:
                    disk.auto_snapshot_policy_id = ""

    # ---- the schedule ------------------------------------------------------------------------

    def fire_due(self, now: datetime) -> list[str]:
        """Snapshot the disks of every policy whose time point has come since it last fired, and
        delete the automatic snapshots past their retention. Returns the new snapshots' IDs."""
        now = as_utc(now)
        with self._db.session() as s:
            applied = select(Disk.auto_snapshot_policy_id).where(Disk.auto_snapshot_policy_id != "")
            candidates = [
                (
                    p.id,
                    latest_due(
                        json.loads(p.time_points), json.loads(p.repeat_weekdays), _fired_or_created(p), now
                    ),
                )
                for p in s.scalars(
                    select(AutoSnapshotPolicy).where(
                        AutoSnapshotPolicy.status == NORMAL, AutoSnapshotPolicy.id.in_(applied)
                    )
                )
            ]
        created: list[str] = []
        wake: set[str] = set()
        for policy_id, slot in candidates:
            if slot is not None:
                try:
                    created += self._fire(policy_id, slot, now, wake)
                except Exception:
                    log.exception("automatic snapshot policy %s failed to fire for %s", policy_id, slot)
        wake |= self.release_expired(now)
        for key in sorted(wake):
            self._notify(key)
        return created

    def _fire(self, policy_id: str, slot: datetime, now: datetime, wake: set[str]) -> list[str]:
        created = []
        with self._db.session() as s:
            claimed = cast(
                CursorResult[Any],
                s.execute(
                    update(AutoSnapshotPolicy)
                    .where(
                        AutoSnapshotPolicy.id == policy_id,
                        or_(
                            AutoSnapshotPolicy.last_fired_at.is_(None),
                            AutoSnapshotPolicy.last_fired_at < slot,
                        ),
                    )
                    .values(last_fired_at=slot)
                    .execution_options(synchronize_session=False)
                ),
            )
            if claimed.rowcount != 1:
                return []  # another agent fired it, or it is gone
            policy = s.get(AutoSnapshotPolicy, policy_id)
            assert policy is not None
            retention = policy.retention_days if policy.retention_days > 0 else None
            disks = list(
                s.scalars(select(Disk).where(Disk.auto_snapshot_policy_id == policy_id).order_by(Disk.id))
            )
            for disk in disks:
                if not disk.enable_auto_snapshot or disk.status not in CREATES_SNAPSHOTS:
                    continue
                if (
                    s.scalar(
                        select(Snapshot.id)
                        .where(Snapshot.disk_id == disk.id, Snapshot.status == PROGRESSING)
                        .limit(1)
                    )
                    is not None
                ):
                    continue  # ECS skips a time point while the disk's previous snapshot is being made
                if not self._make_room(s, now, disk, wake):
                    log.warning(
                        "disk %s keeps %d snapshots, none of them deletable: automatic snapshot skipped",
                        disk.id,
                        MAX_SNAPSHOTS_PER_DISK,
                    )
                    continue
                name = auto_snapshot_name(slot, self._sequence(s, disk.id, slot))
                try:
                    snapshot = self._snapshots.create_in(s, now, disk, name, "", retention, "", policy_id)
                except ApiError as error:
                    log.warning("automatic snapshot of disk %s skipped: %s", disk.id, error)
                    continue
                s.flush()
                created.append(snapshot.id)
                wake.add(disk.instance_id or disk.id)
        return created

    @staticmethod
    def _sequence(s: Session, disk_id: str, slot: datetime) -> int:
        prefix = auto_snapshot_name(slot, 0)[:-1]
        same_day = (
            s.scalar(
                select(func.count())
                .select_from(Snapshot)
                .where(
                    Snapshot.disk_id == disk_id,
                    Snapshot.auto_policy_id != "",
                    Snapshot.name.startswith(prefix),
                )
            )
            or 0
        )
        return int(same_day) + 1

    @staticmethod
    def _make_room(s: Session, now: datetime, disk: Disk, wake: set[str]) -> bool:
        """At the snapshot limit of the disk, delete its oldest deletable automatic snapshot
        (as ECS does); False if there is no room and none can go."""
        count = s.scalar(select(func.count()).select_from(Snapshot).where(Snapshot.disk_id == disk.id)) or 0
        if count < MAX_SNAPSHOTS_PER_DISK:
            return True
        for oldest in s.scalars(
            select(Snapshot)
            .where(Snapshot.disk_id == disk.id, Snapshot.auto_policy_id != "")
            .order_by(Snapshot.created_at, Snapshot.id)
        ):
            if _deletable(s, oldest):
                forget_snapshot(s, now, oldest)
                s.flush()
                wake.add(f"gc:{oldest.host_id}")
                return True
        return False

    def release_expired(self, now: datetime) -> set[str]:
        """Delete the snapshots whose retention has run out: automatic ones by their policy's
        RetentionDays, manual ones by CreateSnapshot's (unless an image or a disk still uses
        them); returns the agent keys to wake."""
        now = as_utc(now)
        wake: set[str] = set()
        with self._db.session() as s:
            for snapshot in s.scalars(
                select(Snapshot).where(Snapshot.retention_days.is_not(None), Snapshot.retention_days > 0)
            ):
                days = snapshot.retention_days or 0
                if as_utc(snapshot.created_at) + timedelta(days=days) > now or not _deletable(s, snapshot):
                    continue
                forget_snapshot(s, now, snapshot)
                wake.add(f"gc:{snapshot.host_id}")
        return wake
