"""Automatic snapshot policies through the official SDK against the emulator: create, describe
(paging, tags), modify, apply, cancel, delete, and the error codes of the ECS API reference.
Their firing at time points is in tests/unit/test_auto_snapshot_policies.py (a clock the test moves)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em

from ..conftest import LiveServer, tea_ecs
from .test_instances_api import error_of
from .test_vpc_api import REGION

ZONE = "cn-hangzhou-h"


@pytest.fixture
def ecs(live: LiveServer, fresh_key: tuple[str, str]) -> Any:
    return tea_ecs(live, fresh_key)


def create(
    ecs: Any,
    name: str = "nightly",
    time_points: str = '["0", "23"]',
    weekdays: str = '["1", "7"]',
    retention: int = 7,
    **fields: Any,
) -> str:
    request = em.CreateAutoSnapshotPolicyRequest(
        region_id=REGION,
        auto_snapshot_policy_name=name,
        time_points=time_points,
        repeat_weekdays=weekdays,
        retention_days=retention,
        **fields,
    )
    return str(ecs.create_auto_snapshot_policy(request).body.auto_snapshot_policy_id)


def describe(ecs: Any, **fields: Any) -> Any:
    return ecs.describe_auto_snapshot_policy_ex(
        em.DescribeAutoSnapshotPolicyExRequest(region_id=REGION, **fields)
    ).body


def policy_of(ecs: Any, policy_id: str) -> Any:
    body = describe(ecs, auto_snapshot_policy_id=policy_id)
    assert body.total_count == 1
    return body.auto_snapshot_policies.auto_snapshot_policy[0]


def new_disk(ecs: Any) -> str:
    return str(
        ecs.create_disk(
            em.CreateDiskRequest(region_id=REGION, zone_id=ZONE, size=20, disk_category="cloud_essd")
        ).body.disk_id
    )


def disk_policy(ecs: Any, disk_id: str) -> tuple[str, bool]:
    disk = ecs.describe_disks(
        em.DescribeDisksRequest(region_id=REGION, disk_ids=f'["{disk_id}"]')
    ).body.disks.disk[0]
    return disk.auto_snapshot_policy_id, disk.enable_automated_snapshot_policy


def test_policy_lifecycle(ecs: Any) -> None:
    policy_id = create(ecs, tag=[em.CreateAutoSnapshotPolicyRequestTag(key="env", value="test")])
    assert policy_id.startswith("sp-")
    policy = policy_of(ecs, policy_id)
    assert (
        policy.auto_snapshot_policy_name,
        policy.time_points,
        policy.repeat_weekdays,
        policy.retention_days,
        policy.disk_nums,
        policy.volume_nums,
        policy.status,
        policy.region_id,
        policy.type,
    ) == ("nightly", '["0","23"]', '["1","7"]', 7, 0, 0, "Normal", REGION, "Custom")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", policy.creation_time)
    assert [(t.tag_key, t.tag_value) for t in policy.tags.tag] == [("env", "test")]
    assert policy.enable_cross_region_copy is False

    disks = [new_disk(ecs), new_disk(ecs)]
    ecs.apply_auto_snapshot_policy(
        em.ApplyAutoSnapshotPolicyRequest(
            region_id=REGION, auto_snapshot_policy_id=policy_id, disk_ids=f'["{disks[0]}", "{disks[1]}"]'
        )
    )
    assert policy_of(ecs, policy_id).disk_nums == 2
    assert disk_policy(ecs, disks[0]) == (policy_id, True)

    ecs.modify_auto_snapshot_policy_ex(
        em.ModifyAutoSnapshotPolicyExRequest(
            region_id=REGION,
            auto_snapshot_policy_id=policy_id,
            auto_snapshot_policy_name="hourly",
            time_points=str([str(h) for h in range(24)]).replace("'", '"'),
            retention_days=-1,
        )
    )
    policy = policy_of(ecs, policy_id)
    assert (
        policy.auto_snapshot_policy_name,
        policy.time_points,
        policy.repeat_weekdays,
        policy.retention_days,
    ) == ("hourly", '["' + '","'.join(str(h) for h in range(24)) + '"]', '["1","7"]', -1)

    # a disk has one policy: applying another one replaces it
    other_id = create(ecs, name="other")
    ecs.apply_auto_snapshot_policy(
        em.ApplyAutoSnapshotPolicyRequest(
            region_id=REGION, auto_snapshot_policy_id=other_id, disk_ids=f'["{disks[1]}"]'
        )
    )
    assert (policy_of(ecs, policy_id).disk_nums, policy_of(ecs, other_id).disk_nums) == (1, 1)
    ecs.cancel_auto_snapshot_policy(
        em.CancelAutoSnapshotPolicyRequest(region_id=REGION, disk_ids=f'["{disks[1]}"]')
    )
    assert policy_of(ecs, other_id).disk_nums == 0
    assert disk_policy(ecs, disks[1]) == ("", False)

    ecs.delete_auto_snapshot_policy(
        em.DeleteAutoSnapshotPolicyRequest(region_id=REGION, auto_snapshot_policy_id=policy_id)
    )
    assert disk_policy(ecs, disks[0]) == ("", False)
    assert [p.auto_snapshot_policy_id for p in describe(ecs).auto_snapshot_policies.auto_snapshot_policy] == [
        other_id
    ]
    gone = error_of(
        lambda: ecs.delete_auto_snapshot_policy(
            em.DeleteAutoSnapshotPolicyRequest(region_id=REGION, auto_snapshot_policy_id=policy_id)
        )
    )
    assert (gone.code, gone.status_code) == ("ParameterInvalid", 404)
    assert "does not exist" in gone.message


def test_describe_pages_and_filters(ecs: Any) -> None:
    ids = [
        create(ecs, name=f"p{n}", tag=[em.CreateAutoSnapshotPolicyRequestTag(key="n", value=str(n))])
        for n in range(3)
    ]
    first = describe(ecs, page_size=2)
    second = describe(ecs, page_size=2, page_number=2)
    assert (first.total_count, first.page_number, first.page_size) == (3, 1, 2)
    listed = [
        p.auto_snapshot_policy_id
        for page in (first, second)
        for p in page.auto_snapshot_policies.auto_snapshot_policy
    ]
    assert sorted(listed) == sorted(ids)
    by_tag = describe(ecs, tag=[em.DescribeAutoSnapshotPolicyExRequestTag(key="n", value="1")])
    assert [p.auto_snapshot_policy_id for p in by_tag.auto_snapshot_policies.auto_snapshot_policy] == [ids[1]]
    by_name = describe(ecs, auto_snapshot_policy_name="p2")
    assert [p.auto_snapshot_policy_id for p in by_name.auto_snapshot_policies.auto_snapshot_policy] == [
        ids[2]
    ]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"time_points": '["24"]'}, "The specified TimePoints parameter is invalid."),
        ({"time_points": "[]"}, "The specified TimePoints parameter is invalid."),
        ({"time_points": "1,2"}, "The specified TimePoints parameter is invalid."),
        ({"weekdays": '["0"]'}, "The specified RepeatWeekDays parameter is invalid."),
        ({"weekdays": '["1", "8"]'}, "The specified RepeatWeekDays parameter is invalid."),
        ({"retention": 0}, "The specified RetentionDays parameter is invalid."),
        ({"retention": 65537}, "The specified RetentionDays parameter is invalid."),
    ],
)
def test_create_refuses_a_malformed_schedule(ecs: Any, fields: dict[str, Any], message: str) -> None:
    error = error_of(lambda: create(ecs, **fields))
    assert (error.code, error.status_code) == ("ParameterInvalid", 403)
    assert message in error.message


def test_errors_of_apply_cancel_and_regions(ecs: Any, live: LiveServer) -> None:
    policy_id = create(ecs)
    disk_id = new_disk(ecs)
    missing = error_of(
        lambda: ecs.apply_auto_snapshot_policy(
            em.ApplyAutoSnapshotPolicyRequest(
                region_id=REGION, auto_snapshot_policy_id=policy_id, disk_ids=f'["{disk_id}", "d-nothere"]'
            )
        )
    )
    assert (missing.code, missing.status_code) == ("InvalidDiskId.NotFound", 404)
    assert disk_policy(ecs, disk_id) == ("", False)  # nothing was applied
    malformed = error_of(
        lambda: ecs.apply_auto_snapshot_policy(
            em.ApplyAutoSnapshotPolicyRequest(
                region_id=REGION, auto_snapshot_policy_id=policy_id, disk_ids=disk_id
            )
        )
    )
    assert (malformed.code, malformed.status_code) == ("ParameterInvalid", 403)
    assert "The specified DiskIds are invalid." in malformed.message
    no_policy = error_of(
        lambda: ecs.apply_auto_snapshot_policy(
            em.ApplyAutoSnapshotPolicyRequest(
                region_id=REGION, auto_snapshot_policy_id="sp-nothere", disk_ids=f'["{disk_id}"]'
            )
        )
    )
    assert (no_policy.code, no_policy.status_code) == ("ParameterInvalid", 404)
    elsewhere = error_of(
        lambda: ecs.modify_auto_snapshot_policy_ex(
            em.ModifyAutoSnapshotPolicyExRequest(
                region_id="cn-shanghai", auto_snapshot_policy_id=policy_id, auto_snapshot_policy_name="x"
            )
        )
    )
    assert (elsewhere.code, elsewhere.status_code) == ("ParameterInvalid", 404)
    assert "The specified automatic snapshot policy does not exist in the region." in elsewhere.message
    no_region = error_of(
        lambda: ecs.delete_auto_snapshot_policy(
            em.DeleteAutoSnapshotPolicyRequest(region_id="xx-nowhere-1", auto_snapshot_policy_id=policy_id)
        )
    )
    assert (no_region.code, no_region.status_code) == ("ParameterInvalid", 403)
    assert "The specified RegionId parameter is invalid." in no_region.message
    cancel_missing = error_of(
        lambda: ecs.cancel_auto_snapshot_policy(
            em.CancelAutoSnapshotPolicyRequest(region_id=REGION, disk_ids='["d-nothere"]')
        )
    )
    assert (cancel_missing.code, cancel_missing.status_code) == ("InvalidDiskId.NotFound", 404)

    # another account sees neither the policy nor the disk
    stranger = tea_ecs(live, live.create_account(f"asp-{uuid.uuid4().hex[:10]}"))
    assert describe(stranger).total_count == 0
    foreign = error_of(
        lambda: stranger.apply_auto_snapshot_policy(
            em.ApplyAutoSnapshotPolicyRequest(
                region_id=REGION, auto_snapshot_policy_id=policy_id, disk_ids=f'["{disk_id}"]'
            )
        )
    )
    assert (foreign.code, foreign.status_code) == ("ParameterInvalid", 404)
    theirs = create(stranger)
    foreign_disk = error_of(
        lambda: stranger.apply_auto_snapshot_policy(
            em.ApplyAutoSnapshotPolicyRequest(
                region_id=REGION, auto_snapshot_policy_id=theirs, disk_ids=f'["{disk_id}"]'
            )
        )
    )
    assert (foreign_disk.code, foreign_disk.status_code) == ("InvalidDiskId.NotFound", 404)
