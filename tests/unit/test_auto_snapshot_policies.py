"""Automatic snapshot policies: the schedule (UTC+8 time points and weekdays) as a pure function,
and fire_due against a real store with a clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from nubes.clock import ManualClock, as_utc
from nubes.domain import auto_snapshot_policies as asp
from nubes.domain import snapshots as snapshots_domain
from nubes.domain.accounts import Accounts
from nubes.domain.auto_snapshot_policies import (
    AutoSnapshotPolicies,
    auto_snapshot_name,
    check_retention,
    due_hours,
    latest_due,
    parse_disk_ids,
    parse_time_points,
    parse_weekdays,
)
from nubes.domain.common import Scope
from nubes.errors import ApiError
from nubes.store.db import Database
from nubes.store.models import Account, AutoSnapshotPolicy, Disk, Snapshot, StorageTask

EVERY_DAY = '["1","2","3","4","5","6","7"]'


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# ---- the schedule -------------------------------------------------------------------------------
# 2026-01-05 is a Monday.


def test_time_points_and_weekdays_are_utc_plus_8() -> None:
    # 01:00 on Monday in UTC+8 is 17:00 on Sunday in UTC
    assert due_hours([1], [1], at("2026-01-04T00:00"), at("2026-01-06T00:00")) == [at("2026-01-04T17:00")]
    # 10:00 UTC+8 is 02:00 UTC, the same day
    assert due_hours([10], [1], at("2026-01-05T00:00"), at("2026-01-06T00:00")) == [at("2026-01-05T02:00")]


def test_the_weekday_is_that_of_the_utc_plus_8_day() -> None:
    # 23:00 Sunday (7) and 00:00 Monday (1) in UTC+8 are 15:00 and 16:00 of the same UTC Sunday
    window = (at("2026-01-03T00:00"), at("2026-01-06T00:00"))
    assert due_hours([23], [7], *window) == [at("2026-01-04T15:00")]
    assert due_hours([0], [1], *window) == [at("2026-01-04T16:00")]
    assert due_hours([0], [7], *window) == [at("2026-01-03T16:00")]  # Sunday 00:00 UTC+8 = Saturday 16:00 UTC


def test_window_is_open_before_and_closed_after() -> None:
    slot = at("2026-01-05T02:00")
    assert due_hours([10], [1], slot - timedelta(seconds=1), slot) == [slot]
    assert due_hours([10], [1], slot, slot + timedelta(minutes=59)) == []
    assert due_hours([10], [1], slot - timedelta(hours=1), slot - timedelta(seconds=1)) == []
    assert due_hours([10], [1], slot, slot) == []


def test_a_week_holds_every_time_point_of_every_weekday() -> None:
    start = at("2026-01-05T00:00")
    hours = due_hours([0, 6, 12, 23], [1, 3, 5], start, start + timedelta(days=7))
    assert len(hours) == 12
    assert all(h.minute == 0 and h.second == 0 for h in hours)
    local = [h.astimezone(asp.POLICY_TZ) for h in hours]
    assert {d.isoweekday() for d in local} == {1, 3, 5}
    assert {d.hour for d in local} == {0, 6, 12, 23}


def test_latest_due_is_the_most_recent_slot_only() -> None:
    since = at("2026-01-01T00:00")
    now = at("2026-01-20T05:30")
    assert latest_due([10], [1, 2, 3, 4, 5, 6, 7], since, now) == at("2026-01-20T02:00")
    assert latest_due([10], [1], since, now) == at("2026-01-19T02:00")  # Monday the 19th
    assert latest_due([10], [1], at("2026-01-19T02:00"), now) is None
    # naive instants (as SQLite returns them) are UTC
    assert latest_due([10], [1], since.replace(tzinfo=None), now.replace(tzinfo=None)) == at(
        "2026-01-19T02:00"
    )


def test_parameters_are_checked_as_ecs_does() -> None:
    assert parse_time_points('["23", "0", "0", 5]') == [0, 5, 23]
    assert parse_weekdays('["7","1"]') == [1, 7]
    for bad in (
        '["24"]',
        "[]",
        '["-1"]',
        '["a"]',
        "1",
        "not json",
        "[true]",
        '["1.5"]',
        str(list(range(25))),
    ):
        with pytest.raises(ApiError) as error:
            parse_time_points(bad)
        assert (error.value.code, error.value.http_status) == ("ParameterInvalid", 403)
        assert "TimePoints" in error.value.message
    for bad in ('["0"]', '["8"]', "[]", '{"1": 1}'):
        with pytest.raises(ApiError) as error:
            parse_weekdays(bad)
        assert error.value.code == "ParameterInvalid" and "RepeatWeekDays" in error.value.message
    assert [check_retention(d) for d in (-1, 1, 65536)] == [-1, 1, 65536]
    for days in (0, -2, 65537):
        with pytest.raises(ApiError) as error:
            check_retention(days)
        assert error.value.code == "ParameterInvalid" and "RetentionDays" in error.value.message
    assert parse_disk_ids('["d-1", "d-2", "d-1"]') == ["d-1", "d-2"]
    for bad in ("d-1", "[]", "[1]", '[""]'):
        with pytest.raises(ApiError) as error:
            parse_disk_ids(bad)
        assert (error.value.code, error.value.message) == (
            "ParameterInvalid",
            "The specified DiskIds are invalid.",
        )


def test_auto_snapshot_names_use_the_utc_plus_8_date() -> None:
    assert auto_snapshot_name(at("2026-01-04T17:00"), 1) == "auto_20260105_1"
    assert auto_snapshot_name(at("2026-01-04T15:59"), 2) == "auto_20260104_2"


# ---- fire_due against a store --------------------------------------------------------------------


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = ManualClock(at("2026-01-01T00:00"))  # a Thursday
        self.db = Database(f"sqlite:///{tmp_path / 'nubes.db'}")
        self.db.migrate()
        self.policies = AutoSnapshotPolicies(self.db, self.clock)
        self.scope = self.account("owner")

    def account(self, name: str) -> Scope:
        Accounts(self.db, self.clock).create(name)
        with self.db.session() as s:
            account_id = s.scalar(select(Account.id).where(Account.name == name))
        assert account_id is not None
        return Scope(account_id, "cn-hangzhou")

    def disk(
        self, disk_id: str, status: str = "In_use", scope: Scope | None = None, enabled: bool = True
    ) -> str:
        scope = scope or self.scope
        with self.db.session() as s:
            s.add(
                Disk(
                    id=disk_id,
                    account_id=scope.account_id,
                    region_id=scope.region_id,
                    zone_id="cn-hangzhou-h",
                    instance_id="i-1" if status == "In_use" else "",
                    disk_type="data",
                    category="cloud_essd",
                    size_gib=20,
                    status=status,
                    host_id="h1",
                    created_at=self.clock.now(),
                    enable_auto_snapshot=enabled,
                )
            )
        return disk_id

    def auto_snapshots(self) -> list[Snapshot]:
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(Snapshot)
                    .where(Snapshot.auto_policy_id != "")
                    .order_by(Snapshot.created_at, Snapshot.disk_id)
                )
            )

    def settle(self) -> None:
        """What the agent does: the snapshots are made."""
        with self.db.session() as s:
            for snap in s.scalars(select(Snapshot).where(Snapshot.status == "progressing")):
                snap.status = "accomplished"
            for task in s.scalars(select(StorageTask)):
                s.delete(task)

    def advance_to(self, moment: str) -> datetime:
        self.clock.advance((at(moment) - self.clock.now()).total_seconds())
        now: datetime = self.clock.now()
        return now


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_a_policy_fires_once_at_its_time_point(world: World) -> None:
    # 10:00 UTC+8 every day = 02:00 UTC
    policy_id = world.policies.create(world.scope, "daily", '["10"]', EVERY_DAY, 2)
    disks = [
        world.disk("d-use"),
        world.disk("d-free", "Available"),
        world.disk("d-new", "Creating"),
        world.disk("d-off", enabled=False),
        world.disk("d-none"),
    ]
    world.policies.apply(world.scope, policy_id, '["d-use", "d-free", "d-new", "d-off"]')
    assert [v.disk_count for v in world.policies.describe(world.scope)] == [4]

    assert world.policies.fire_due(world.clock.now()) == []
    world.advance_to("2026-01-01T01:59:59")
    assert world.policies.fire_due(world.clock.now()) == []

    world.advance_to("2026-01-01T02:00:30")
    created = world.policies.fire_due(world.clock.now())
    assert len(created) == 2
    snaps = world.auto_snapshots()
    assert sorted(s.id for s in snaps) == sorted(created)
    assert [(s.disk_id, s.name, s.auto_policy_id, s.retention_days, s.status) for s in snaps] == [
        ("d-free", "auto_20260101_1", policy_id, 2, "progressing"),
        ("d-use", "auto_20260101_1", policy_id, 2, "progressing"),
    ]
    with world.db.session() as s:
        tasks = sorted((t.kind, t.disk_id, t.snapshot_id) for t in s.scalars(select(StorageTask)))
        policy = s.get(AutoSnapshotPolicy, policy_id)
        assert policy is not None and policy.last_fired_at is not None
        assert as_utc(policy.last_fired_at) == at("2026-01-01T02:00")
    assert tasks == sorted(("snapshot", s.disk_id, s.id) for s in snaps)
    assert disks[-1] not in {s.disk_id for s in snaps}

    # the same time point never fires again: repeated calls, a restarted service, later in the hour,
    # another agent that saw it due at the same moment (the claim on last_fired_at is a compare-and-set)
    assert world.policies.fire_due(world.clock.now()) == []
    assert world.policies._fire(policy_id, at("2026-01-01T02:00"), world.clock.now(), set()) == []
    assert AutoSnapshotPolicies(world.db, world.clock).fire_due(world.clock.now()) == []
    world.advance_to("2026-01-01T02:59:00")
    assert world.policies.fire_due(world.clock.now()) == []
    assert len(world.auto_snapshots()) == 2


def test_a_disk_still_being_snapshotted_skips_the_time_point(world: World) -> None:
    policy_id = world.policies.create(
        world.scope, "hourly", str([str(h) for h in range(24)]).replace("'", '"'), EVERY_DAY, -1
    )
    world.disk("d-1")
    world.policies.apply(world.scope, policy_id, '["d-1"]')
    world.advance_to("2026-01-01T00:30:00")
    assert world.policies.fire_due(world.clock.now()) == []  # 00:00 came before the policy
    world.advance_to("2026-01-01T01:00:10")
    assert len(world.policies.fire_due(world.clock.now())) == 1
    world.advance_to("2026-01-01T02:00:10")
    assert world.policies.fire_due(world.clock.now()) == []  # the first is still progressing
    world.settle()
    world.advance_to("2026-01-01T03:00:10")
    assert len(world.policies.fire_due(world.clock.now())) == 1
    assert [s.name for s in world.auto_snapshots()] == ["auto_20260101_1", "auto_20260101_2"]
    assert all(s.retention_days is None for s in world.auto_snapshots())  # -1: kept until deleted


def test_missed_time_points_are_caught_up_once(world: World) -> None:
    policy_id = world.policies.create(world.scope, "daily", '["10"]', EVERY_DAY, -1)
    world.disk("d-1")
    world.policies.apply(world.scope, policy_id, '["d-1"]')
    world.advance_to("2026-01-06T12:00")  # five days without a call (the server was down)
    assert len(world.policies.fire_due(world.clock.now())) == 1
    assert [s.name for s in world.auto_snapshots()] == ["auto_20260106_1"]
    world.settle()
    assert world.policies.fire_due(world.clock.now()) == []


def test_only_the_weekdays_of_the_policy_fire(world: World) -> None:
    # Monday and Wednesday at 08:00 UTC+8 (00:00 UTC)
    policy_id = world.policies.create(world.scope, "weekly", '["8"]', '["1", "3"]', -1)
    world.disk("d-1")
    world.policies.apply(world.scope, policy_id, '["d-1"]')
    fired = []
    for _ in range(14 * 24):
        world.clock.advance(3600)
        if world.policies.fire_due(world.clock.now()):
            fired.append(world.clock.now())
            world.settle()
    assert fired == [
        at("2026-01-05T00:00"),
        at("2026-01-07T00:00"),
        at("2026-01-12T00:00"),
        at("2026-01-14T00:00"),
    ]


def test_retention_deletes_old_automatic_snapshots_only(world: World) -> None:
    policy_id = world.policies.create(world.scope, "daily", '["10"]', EVERY_DAY, 2)
    world.disk("d-1")
    world.disk("d-2", "Available")
    world.disk("d-copy", "Available")
    world.policies.apply(world.scope, policy_id, '["d-1", "d-2"]')
    with world.db.session() as s:  # a manual snapshot with its own retention is not the policies' business
        s.add(
            Snapshot(
                id="s-manual",
                account_id=world.scope.account_id,
                region_id="cn-hangzhou",
                disk_id="d-1",
                disk_type="data",
                disk_category="cloud_essd",
                disk_size_gib=20,
                status="accomplished",
                retention_days=1,
                created_at=world.clock.now(),
            )
        )

    world.advance_to("2026-01-01T02:00:00")
    first = world.policies.fire_due(world.clock.now())
    world.settle()
    world.advance_to("2026-01-02T02:00:00")
    second = world.policies.fire_due(world.clock.now())
    world.settle()
    assert len(first) == len(second) == 2
    # a disk was made from one of the first snapshots: it stays (DeleteSnapshot without Force would refuse)
    with world.db.session() as s:
        copy = s.get(Disk, "d-copy")
        assert copy is not None
        copy.source_snapshot_id = first[0]

    world.advance_to("2026-01-03T01:59:59")
    assert world.policies.fire_due(world.clock.now()) == []
    assert {s.id for s in world.auto_snapshots()} == set(first + second)
    world.advance_to("2026-01-03T02:00:00")  # the first ones are two days old now
    third = world.policies.fire_due(world.clock.now())
    assert len(third) == 2
    assert {s.id for s in world.auto_snapshots()} == {first[0], *second, *third}
    with world.db.session() as s:
        # a manual snapshot's own RetentionDays (CreateSnapshot) releases it too, as ECS documents
        assert s.get(Snapshot, "s-manual") is None

    # a policy's new retention applies to the snapshots it makes from then on
    world.policies.modify(world.scope, policy_id, retention_days=30)
    world.settle()
    world.advance_to("2026-01-04T02:00:00")
    fourth = world.policies.fire_due(world.clock.now())
    assert {s.retention_days for s in world.auto_snapshots() if s.id in fourth} == {30}
    assert {s.id for s in world.auto_snapshots()} == {first[0], *third, *fourth}


def test_the_oldest_automatic_snapshot_makes_room_at_the_limit(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(asp, "MAX_SNAPSHOTS_PER_DISK", 2)
    monkeypatch.setattr(snapshots_domain, "MAX_SNAPSHOTS_PER_DISK", 2)
    policy_id = world.policies.create(world.scope, "daily", '["10"]', EVERY_DAY, -1)
    world.disk("d-1")
    world.policies.apply(world.scope, policy_id, '["d-1"]')
    made = []
    for day in ("01", "02", "03"):
        world.advance_to(f"2026-01-{day}T02:00:00")
        made += world.policies.fire_due(world.clock.now())
        world.settle()
    assert [s.id for s in world.auto_snapshots()] == made[1:]


def test_a_changed_schedule_does_not_fire_hours_gone_by(world: World) -> None:
    policy_id = world.policies.create(world.scope, "late", '["23"]', EVERY_DAY, -1)
    world.disk("d-1")
    world.policies.apply(world.scope, policy_id, '["d-1"]')
    world.advance_to("2026-01-01T10:00:00")  # 18:00 UTC+8
    world.policies.modify(world.scope, policy_id, time_points='["12"]')  # 12:00 UTC+8 went by 6 hours ago
    assert world.policies.fire_due(world.clock.now()) == []
    world.advance_to("2026-01-02T04:00:00")  # 12:00 UTC+8 the next day
    assert len(world.policies.fire_due(world.clock.now())) == 1


def test_cancelled_and_deleted_policies_stop_firing(world: World) -> None:
    policy_id = world.policies.create(world.scope, "daily", '["10"]', EVERY_DAY, -1)
    other_id = world.policies.create(world.scope, "other", '["10"]', EVERY_DAY, -1)
    world.disk("d-1")
    world.disk("d-2")
    world.policies.apply(world.scope, policy_id, '["d-1", "d-2"]')
    world.policies.cancel(world.scope, '["d-1"]')
    world.policies.cancel(world.scope, '["d-2"]', other_id)  # not d-2's policy: nothing changes
    world.advance_to("2026-01-01T02:00:00")
    assert [s.disk_id for s in world.auto_snapshots()] == [] and len(
        world.policies.fire_due(world.clock.now())
    ) == 1
    assert [s.disk_id for s in world.auto_snapshots()] == ["d-2"]

    world.policies.delete(world.scope, policy_id)
    with world.db.session() as s:
        assert {d.auto_snapshot_policy_id for d in s.scalars(select(Disk))} == {""}
    world.settle()
    world.advance_to("2026-01-02T02:00:00")
    assert world.policies.fire_due(world.clock.now()) == []
    assert [v.policy.id for v in world.policies.describe(world.scope)] == [other_id]


def test_apply_replaces_the_policy_of_a_disk_and_checks_ownership(world: World) -> None:
    first = world.policies.create(world.scope, "first", '["1"]', '["1"]', -1)
    second = world.policies.create(world.scope, "second", '["2"]', '["2"]', -1)
    world.disk("d-1")
    stranger = world.account("stranger")
    world.disk("d-theirs", scope=stranger)
    world.policies.apply(world.scope, first, '["d-1"]')
    world.policies.apply(world.scope, second, '["d-1"]')
    counts = {v.policy.id: v.disk_count for v in world.policies.describe(world.scope)}
    assert counts == {first: 0, second: 1}

    for scope, policy, disks, code, status in [
        (world.scope, first, '["d-theirs"]', "InvalidDiskId.NotFound", 404),
        (world.scope, first, '["d-1", "d-gone"]', "InvalidDiskId.NotFound", 404),
        (world.scope, "sp-nothere", '["d-1"]', "ParameterInvalid", 404),
        (stranger, first, '["d-theirs"]', "ParameterInvalid", 404),
        (Scope(world.scope.account_id, "cn-shanghai"), first, '["d-1"]', "ParameterInvalid", 404),
    ]:
        with pytest.raises(ApiError) as error:
            world.policies.apply(scope, policy, disks)
        assert (error.value.code, error.value.http_status) == (code, status)
    with pytest.raises(ApiError) as error:
        world.policies.modify(Scope(world.scope.account_id, "cn-shanghai"), first, name="x")
    assert error.value.message == "The specified automatic snapshot policy does not exist in the region."
    with pytest.raises(ApiError) as error:
        world.policies.delete(world.scope, "sp-nothere")
    assert error.value.message == "The specified automatic snapshot policy does not exist."
    # a failed apply changed nothing
    counts = {v.policy.id: v.disk_count for v in world.policies.describe(world.scope)}
    assert counts == {first: 0, second: 1}


def test_at_most_100_policies_per_region(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asp, "MAX_POLICIES", 3)
    for n in range(3):
        world.policies.create(world.scope, f"p{n}", '["1"]', '["1"]', -1)
    with pytest.raises(ApiError) as error:
        world.policies.create(world.scope, "p4", '["1"]', '["1"]', -1)
    assert (error.value.code, error.value.http_status) == ("AutoSnapshotPolicy.QuotaExceed", 403)
    world.policies.create(Scope(world.scope.account_id, "cn-shanghai"), "elsewhere", '["1"]', '["1"]', -1)
