"""The rules of cloud disks and snapshots, through the official SDK against the emulator: the
status machines, every refusal with its ECS code and HTTP status, the Describe* filters,
idempotency, tags, account isolation and what happens to disks when their instance goes.

The fake drivers move transient statuses (Pending, Starting, Attaching, progressing...) on at
once, so a test that needs a resource to sit in one of them sets it in the store (`parked`),
where nothing moves it, and puts it back afterwards."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em

from nubes.store.db import Database
from nubes.store.models import Disk, Instance, Snapshot

from ..conftest import LiveServer, tea_ecs
from .test_disks_api import disk_of, wait_disk, wait_snapshot
from .test_instances_api import Lab, error_of
from .test_vpc_api import REGION, ZONE

OTHER_ZONE = "cn-hangzhou-b"


@pytest.fixture
def lab(live: LiveServer, fresh_key: tuple[str, str]) -> Lab:
    return Lab(live, fresh_key, "10.62.0.0/16")


@pytest.fixture
def ecs(live: LiveServer, fresh_key: tuple[str, str]) -> Any:
    """A client of a fresh account, for tests that need no instance."""
    return tea_ecs(live, fresh_key)


# ---- helpers -------------------------------------------------------------------------------


def expect(call: Callable[[], Any], code: str, status: int) -> None:
    error = error_of(call)
    assert (error.code, error.status_code) == (code, status), error.message


@contextmanager
def parked(live: LiveServer, model: Any, row_id: str, **fields: Any) -> Iterator[None]:
    """Give one row of the server's store these column values for the block, then the old ones."""
    db = Database(live.database_url)
    try:
        with db.session() as s:
            row = s.get(model, row_id)
            assert row is not None, row_id
            old = {name: getattr(row, name) for name in fields}
            for name, value in fields.items():
                setattr(row, name, value)
        try:
            yield
        finally:
            with db.session() as s:
                row = s.get(model, row_id)
                if row is not None:
                    for name, value in old.items():
                        setattr(row, name, value)
    finally:
        db.dispose()


def disks(client: Any, **filters: Any) -> Any:
    return client.describe_disks(em.DescribeDisksRequest(region_id=REGION, **filters)).body


def disk_ids(client: Any, **filters: Any) -> set[str]:
    return {d.disk_id for d in disks(client, page_size=100, **filters).disks.disk}


def snapshots(client: Any, **filters: Any) -> Any:
    return client.describe_snapshots(em.DescribeSnapshotsRequest(region_id=REGION, **filters)).body


def snapshot_ids(client: Any, **filters: Any) -> set[str]:
    return {s.snapshot_id for s in snapshots(client, page_size=100, **filters).snapshots.snapshot}


def new_disk(
    client: Any, zone: str = ZONE, size: int = 40, category: str = "cloud_essd", **fields: Any
) -> str:
    disk_id = str(
        client.create_disk(
            em.CreateDiskRequest(region_id=REGION, zone_id=zone, size=size, disk_category=category, **fields)
        ).body.disk_id
    )
    assert disk_id.startswith("d-")
    return disk_id


def available(client: Any, disk_id: str) -> str:
    deadline = time.monotonic() + 30
    while disk_of_client(client, disk_id).status != "Available" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert disk_of_client(client, disk_id).status == "Available"
    return disk_id


def disk_of_client(client: Any, disk_id: str) -> Any:
    found = disks(client, disk_ids=f'["{disk_id}"]')
    assert found.total_count == 1
    return found.disks.disk[0]


def running(lab: Lab, **fields: Any) -> str:
    [instance_id] = lab.run(**fields)
    assert lab.wait(instance_id, "Running") == "Running"
    return instance_id


def stopped(lab: Lab, instance_id: str) -> None:
    lab.ecs.stop_instance(em.StopInstanceRequest(instance_id=instance_id))
    assert lab.wait(instance_id, "Stopped") == "Stopped"


def attach(lab: Lab, disk_id: str, instance_id: str, **fields: Any) -> None:
    lab.ecs.attach_disk(em.AttachDiskRequest(disk_id=disk_id, instance_id=instance_id, **fields))
    assert wait_disk(lab, disk_id, "In_use") == "In_use"


def snapshot(lab: Lab, disk_id: str, **fields: Any) -> str:
    snapshot_id = str(
        lab.ecs.create_snapshot(em.CreateSnapshotRequest(disk_id=disk_id, **fields)).body.snapshot_id
    )
    assert snapshot_id.startswith("s-")
    assert wait_snapshot(lab, snapshot_id).status == "accomplished"
    return snapshot_id


def system_disk(lab: Lab, instance_id: str) -> str:
    [disk] = disks(lab.ecs, instance_id=instance_id, disk_type="system").disks.disk
    return str(disk.disk_id)


def gone(lab: Lab, instance_id: str) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = lab.ecs.describe_instances(
            em.DescribeInstancesRequest(region_id=REGION, instance_ids=f'["{instance_id}"]')
        ).body
        if found.total_count == 0:
            return True
        time.sleep(0.1)
    return False


# ---- not found -----------------------------------------------------------------------------


def test_unknown_disks_and_snapshots(ecs: Any) -> None:
    missing = "d-nothere0000000000"
    for call in (
        lambda: ecs.attach_disk(em.AttachDiskRequest(disk_id=missing, instance_id="i-nothere")),
        lambda: ecs.detach_disk(em.DetachDiskRequest(disk_id=missing, instance_id="i-nothere")),
        lambda: ecs.resize_disk(em.ResizeDiskRequest(disk_id=missing, new_size=100)),
        lambda: ecs.re_init_disk(em.ReInitDiskRequest(disk_id=missing)),
        lambda: ecs.reset_disk(em.ResetDiskRequest(disk_id=missing, snapshot_id="s-nothere")),
        lambda: ecs.modify_disk_attribute(
            em.ModifyDiskAttributeRequest(disk_id=missing, disk_name="renamed")
        ),
        lambda: ecs.modify_disk_spec(em.ModifyDiskSpecRequest(disk_id=missing, performance_level="PL2")),
        lambda: ecs.delete_disk(em.DeleteDiskRequest(disk_id=missing)),
        lambda: ecs.create_snapshot(em.CreateSnapshotRequest(disk_id=missing)),
    ):
        expect(call, "InvalidDiskId.NotFound", 404)
    assert disks(ecs, disk_ids=f'["{missing}"]').total_count == 0

    disk_id = available(ecs, new_disk(ecs))
    expect(
        lambda: ecs.attach_disk(em.AttachDiskRequest(disk_id=disk_id, instance_id="i-nothere")),
        "InvalidInstanceId.NotFound",
        404,
    )
    for call in (
        lambda: ecs.modify_snapshot_attribute(
            em.ModifySnapshotAttributeRequest(snapshot_id="s-nothere", snapshot_name="renamed")
        ),
        lambda: ecs.create_disk(
            em.CreateDiskRequest(region_id=REGION, zone_id=ZONE, snapshot_id="s-nothere")
        ),
        lambda: ecs.reset_disk(em.ResetDiskRequest(disk_id=disk_id, snapshot_id="s-nothere")),
    ):
        expect(call, "InvalidSnapshotId.NotFound", 404)
    # "If the specified snapshot ID does not exist, the request is ignored."
    ecs.delete_snapshot(em.DeleteSnapshotRequest(snapshot_id="s-nothere"))
    assert snapshots(ecs, snapshot_ids='["s-nothere"]').total_count == 0
    ecs.delete_disk(em.DeleteDiskRequest(disk_id=disk_id))


# ---- CreateDisk ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, code, status",
    [
        ({"disk_category": "cloud", "size": 4}, "InvalidDiskSize.NotSupported", 403),
        ({"disk_category": "cloud", "size": 2001}, "InvalidDiskSize.NotSupported", 403),
        ({"disk_category": "cloud_efficiency", "size": 19}, "InvalidDiskSize.NotSupported", 403),
        ({"disk_category": "cloud_ssd", "size": 32769}, "InvalidDiskSize.NotSupported", 403),
        ({"disk_category": "cloud_essd_entry", "size": 9}, "InvalidDiskSize.NotSupported", 403),
        (
            {"disk_category": "cloud_essd", "performance_level": "PL2", "size": 460},
            "OperationDenied.PerformanceLevelNotMatch",
            403,
        ),
        (
            {"disk_category": "cloud_essd", "performance_level": "PL3", "size": 1260},
            "OperationDenied.PerformanceLevelNotMatch",
            403,
        ),
        ({"disk_category": "cloud_essd", "size": 19}, "OperationDenied.PerformanceLevelNotMatch", 403),  # PL1
        ({"disk_category": "cloud_essd", "size": 65537}, "InvalidDiskSize.NotSupported", 403),
        ({"disk_category": "cloud_auto", "size": 65537}, "InvalidDataDiskSize.ValueNotSupported", 403),
        ({"disk_category": "cloud_magic", "size": 40}, "InvalidDiskCategory.ValueNotSupported", 400),
        (
            {"disk_category": "cloud_essd", "performance_level": "PL9", "size": 40},
            "InvalidPerformanceLevel.Malformed",
            400,
        ),
        (
            {"disk_category": "cloud_ssd", "performance_level": "PL1", "size": 40},
            "InvalidPerformanceLevel.Malformed",
            400,
        ),
        ({"disk_category": "cloud_essd", "size": 40, "zone_id": None}, "MissingParameter", 400),
        (
            {"disk_category": "cloud_essd", "size": 40, "instance_id": "i-any"},
            "InvalidParam.ZoneIdAndInstanceId.Conflict",
            403,
        ),
        (
            {"disk_category": "cloud_essd", "size": 40, "zone_id": "cn-hangzhou-zz"},
            "InvalidZoneId.NotFound",
            404,
        ),
        ({"disk_category": "cloud_essd"}, "MissingParameter", 400),  # neither Size nor SnapshotId
        (
            {"disk_category": "cloud_essd", "size": 40, "provisioned_iops": 1000},
            "ProvisionedIopsForDiskCategoryUnsupported",
            400,
        ),
        (
            {"disk_category": "cloud_essd", "size": 40, "disk_name": "1-starts-with-a-digit"},
            "InvalidDiskName.Malformed",
            400,
        ),
        (
            {"disk_category": "cloud_essd", "size": 40, "description": "http://x"},
            "InvalidDescription.Malformed",
            400,
        ),
    ],
)
def test_create_disk_refusals(ecs: Any, fields: dict[str, Any], code: str, status: int) -> None:
    request = em.CreateDiskRequest(region_id=REGION, zone_id=ZONE)
    for name, value in fields.items():
        setattr(request, name, value)
    expect(lambda: ecs.create_disk(request), code, status)
    assert disks(ecs).total_count == 0


def test_create_disk_size_bounds(ecs: Any) -> None:
    made = {
        new_disk(ecs, size=5, category="cloud"): ("cloud", "", 5),
        new_disk(ecs, size=2000, category="cloud"): ("cloud", "", 2000),
        new_disk(ecs, size=20, category="cloud_efficiency"): ("cloud_efficiency", "", 20),
        new_disk(ecs, size=1, category="cloud_essd", performance_level="PL0"): ("cloud_essd", "PL0", 1),
        new_disk(ecs, size=461, category="cloud_essd", performance_level="PL2"): ("cloud_essd", "PL2", 461),
        new_disk(ecs, size=1261, category="cloud_essd", performance_level="PL3"): ("cloud_essd", "PL3", 1261),
        new_disk(ecs, size=1, category="cloud_auto"): ("cloud_auto", "", 1),
        new_disk(ecs, size=10, category="cloud_essd_entry"): ("cloud_essd_entry", "", 10),
    }
    for disk_id in made:
        available(ecs, disk_id)
    # The largest ESSD is within its size bounds, but beyond the account's default disk capacity
    # quota (DescribeAccountAttributes: max-postpaid-yundisk-capacity), as on ECS.
    expect(lambda: new_disk(ecs, size=65536, category="cloud_essd"), "QuotaExceed.DiskCapacity", 400)
    listed = {
        d.disk_id: (d.category, d.performance_level or "", d.size)
        for d in disks(ecs, page_size=100).disks.disk
    }
    assert listed == made
    for disk_id in made:
        ecs.delete_disk(em.DeleteDiskRequest(disk_id=disk_id))
    assert disks(ecs).total_count == 0


def test_create_disk_client_token(ecs: Any) -> None:
    token = f"disk-{uuid.uuid4().hex}"
    first = new_disk(ecs, client_token=token)
    assert new_disk(ecs, client_token=token) == first
    expect(lambda: new_disk(ecs, size=50, client_token=token), "IdempotentParameterMismatch", 400)
    assert disk_ids(ecs) == {first}
    available(ecs, first)
    ecs.delete_disk(em.DeleteDiskRequest(disk_id=first))


# ---- the disk status machine ---------------------------------------------------------------


def test_disk_status_machine_and_attach_detach_rules(lab: Lab) -> None:
    first = running(lab)
    second = running(lab)
    disk_id = lab.ecs.create_disk(
        em.CreateDiskRequest(region_id=REGION, zone_id=ZONE, size=40, disk_category="cloud_essd")
    ).body.disk_id
    assert disk_of(lab, disk_id).status in ("Creating", "Available")
    assert wait_disk(lab, disk_id, "Available") == "Available"
    fresh = disk_of(lab, disk_id)
    assert (fresh.instance_id, fresh.device, fresh.type, fresh.portable, fresh.delete_with_instance) == (
        "",
        "",
        "data",
        True,
        False,
    )
    assert fresh.attachments.attachment == [] and fresh.detached_time == ""

    elsewhere = available(lab.ecs, new_disk(lab.ecs, zone=OTHER_ZONE))
    expect(
        lambda: lab.ecs.attach_disk(em.AttachDiskRequest(disk_id=elsewhere, instance_id=first)),
        "ResourcesNotInSameZone",
        403,
    )
    expect(
        lambda: lab.ecs.detach_disk(em.DetachDiskRequest(disk_id=disk_id, instance_id=first)),
        "InvalidDisk.AlreadyDetached",
        404,
    )

    lab.ecs.attach_disk(em.AttachDiskRequest(disk_id=disk_id, instance_id=first))
    assert disk_of(lab, disk_id).status in ("Attaching", "In_use")
    assert wait_disk(lab, disk_id, "In_use") == "In_use"
    attached = disk_of(lab, disk_id)
    assert (attached.instance_id, attached.device, attached.delete_with_instance) == (
        first,
        "/dev/xvdb",
        False,
    )
    assert [a.instance_id for a in attached.attachments.attachment] == [first]
    assert attached.attached_time != ""

    expect(
        lambda: lab.ecs.attach_disk(em.AttachDiskRequest(disk_id=disk_id, instance_id=first)),
        "IncorrectDiskStatus",
        403,
    )
    expect(
        lambda: lab.ecs.attach_disk(em.AttachDiskRequest(disk_id=disk_id, instance_id=second)),
        "InvalidDisk.InUse",
        404,
    )
    expect(
        lambda: lab.ecs.detach_disk(em.DetachDiskRequest(disk_id=disk_id, instance_id=second)),
        "DependencyViolation",
        403,
    )
    expect(
        lambda: lab.ecs.detach_disk(em.DetachDiskRequest(disk_id=system_disk(lab, first), instance_id=first)),
        "DiskTypeViolation",
        403,
    )
    expect(lambda: lab.ecs.delete_disk(em.DeleteDiskRequest(disk_id=disk_id)), "IncorrectDiskStatus", 403)
    expect(
        lambda: lab.ecs.delete_disk(em.DeleteDiskRequest(disk_id=system_disk(lab, first))),
        "IncorrectDiskStatus",
        403,
    )

    lab.ecs.detach_disk(em.DetachDiskRequest(disk_id=disk_id, instance_id=first))
    assert disk_of(lab, disk_id).status in ("Detaching", "Available")
    assert wait_disk(lab, disk_id, "Available") == "Available"
    detached = disk_of(lab, disk_id)
    assert (detached.instance_id, detached.device, detached.attachments.attachment) == ("", "", [])
    assert detached.detached_time != ""

    # the disk goes to the other instance of the zone, then is released
    attach(lab, disk_id, second)
    assert disk_of(lab, disk_id).instance_id == second
    lab.ecs.detach_disk(em.DetachDiskRequest(disk_id=disk_id, instance_id=second))
    assert wait_disk(lab, disk_id, "Available") == "Available"
    for released in (disk_id, elsewhere):
        lab.ecs.delete_disk(em.DeleteDiskRequest(disk_id=released))
    assert disk_ids(lab.ecs, disk_type="data") == set()
    for instance_id in (first, second):
        lab.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))


@pytest.mark.parametrize("status", ["Creating", "Attaching", "Detaching", "ReIniting"])
def test_transient_disk_statuses_refuse_changes(live: LiveServer, lab: Lab, status: str) -> None:
    instance_id = running(lab)
    disk_id = available(lab.ecs, new_disk(lab.ecs))
    with parked(live, Disk, disk_id, status=status):
        assert disk_of(lab, disk_id).status == status
        for call in (
            lambda: lab.ecs.attach_disk(em.AttachDiskRequest(disk_id=disk_id, instance_id=instance_id)),
            lambda: lab.ecs.delete_disk(em.DeleteDiskRequest(disk_id=disk_id)),
            lambda: lab.ecs.resize_disk(em.ResizeDiskRequest(disk_id=disk_id, new_size=80)),
            lambda: lab.ecs.modify_disk_spec(
                em.ModifyDiskSpecRequest(disk_id=disk_id, performance_level="PL0")
            ),
            lambda: lab.ecs.create_snapshot(em.CreateSnapshotRequest(disk_id=disk_id)),
            lambda: lab.ecs.re_init_disk(em.ReInitDiskRequest(disk_id=disk_id)),
        ):
            expect(call, "IncorrectDiskStatus", 403)
        # attributes have no status requirement
        lab.ecs.modify_disk_attribute(em.ModifyDiskAttributeRequest(disk_id=disk_id, disk_name="still-there"))
    disk = disk_of(lab, disk_id)
    assert (disk.status, disk.size, disk.performance_level, disk.disk_name) == (
        "Available",
        40,
        "PL1",
        "still-there",
    )
    assert snapshots(lab.ecs, disk_id=disk_id).total_count == 0
    lab.ecs.delete_disk(em.DeleteDiskRequest(disk_id=disk_id))
    lab.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))


@pytest.mark.parametrize("status", ["Pending", "Starting", "Stopping"])
def test_attach_and_detach_need_a_running_or_stopped_instance(
    live: LiveServer, lab: Lab, status: str
) -> None:
    instance_id = running(lab)
    loose = available(lab.ecs, new_disk(lab.ecs))
    held = available(lab.ecs, new_disk(lab.ecs))
    attach(lab, held, instance_id)
    # off its host, the instance stays in `status`: no agent moves it on
    with parked(live, Instance, instance_id, status=status, host_id=None):
        assert lab.status(instance_id) == status
        expect(
            lambda: lab.ecs.attach_disk(em.AttachDiskRequest(disk_id=loose, instance_id=instance_id)),
            "IncorrectInstanceStatus",
            400,
        )
        expect(
            lambda: lab.ecs.detach_disk(em.DetachDiskRequest(disk_id=held, instance_id=instance_id)),
            "IncorrectInstanceStatus",
            403,
        )
    assert (disk_of(lab, loose).status, disk_of(lab, held).status) == ("Available", "In_use")
    lab.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))
    assert gone(lab, instance_id)
    assert wait_disk(lab, held, "Available") == "Available"
    for disk_id in (loose, held):
        lab.ecs.delete_disk(em.DeleteDiskRequest(disk_id=disk_id))


# ---- ResizeDisk ----------------------------------------------------------------------------


def test_resize_rules(lab: Lab) -> None:
    instance_id = running(lab)
    disk_id = available(lab.ecs, new_disk(lab.ecs, size=40))

    def resize(size: int, **fields: Any) -> Any:
        return lab.ecs.resize_disk(em.ResizeDiskRequest(disk_id=disk_id, new_size=size, **fields))

    expect(lambda: resize(30), "InvalidDiskSize.TooSmall", 403)
    expect(lambda: resize(40), "InvalidDiskSize", 403)
    expect(lambda: resize(65537), "InvalidDiskSize.TooLarge", 403)
    expect(lambda: resize(50, type="sideways"), "InvalidParam.Type", 400)
    resize(50)
    grown = disk_of(lab, disk_id)
    assert (grown.size, grown.status, grown.iops) == (50, "Available", 1800 + 50 * 50)

    basic = available(lab.ecs, new_disk(lab.ecs, size=100, category="cloud"))
    expect(
        lambda: lab.ecs.resize_disk(em.ResizeDiskRequest(disk_id=basic, new_size=2001)),
        "InvalidDiskSize.TooLarge",
        403,
    )
    attach(lab, basic, instance_id)
    expect(
        lambda: lab.ecs.resize_disk(em.ResizeDiskRequest(disk_id=basic, new_size=200, type="online")),
        "InvalidDiskCategory.NotSupported",
        403,
    )

    attach(lab, disk_id, instance_id)
    resize(60, type="online")
    assert (disk_of(lab, disk_id).size, disk_of(lab, disk_id).status) == (60, "In_use")
    resize(70)  # offline: allowed while Running, effective at the next start
    assert disk_of(lab, disk_id).size == 70

    system = system_disk(lab, instance_id)
    expect(
        lambda: lab.ecs.resize_disk(em.ResizeDiskRequest(disk_id=system, new_size=2049)),
        "InvalidSystemDiskSize.ValueNotSupported",
        400,
    )
    stopped(lab, instance_id)
    expect(lambda: resize(80, type="online"), "InvalidInstanceStatus.NotRunning", 403)
    lab.ecs.resize_disk(em.ResizeDiskRequest(disk_id=system, new_size=2048))
    assert disk_of(lab, system).size == 2048
    assert disk_of(lab, disk_id).size == 70
    lab.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))
    assert gone(lab, instance_id)
    for disk in (disk_id, basic):
        assert wait_disk(lab, disk, "Available") == "Available"
        lab.ecs.delete_disk(em.DeleteDiskRequest(disk_id=disk))


# ---- ReInitDisk, ResetDisk -----------------------------------------------------------------


def test_reinit_rules(lab: Lab) -> None:
    instance_id = running(lab)
    source = available(lab.ecs, new_disk(lab.ecs))
    attach(lab, source, instance_id)
    snapshot_id = snapshot(lab, source, snapshot_name="base")
    copy = available(
        lab.ecs,
        str(
            lab.ecs.create_disk(
                em.CreateDiskRequest(
                    region_id=REGION, zone_id=ZONE, snapshot_id=snapshot_id, disk_category="cloud_essd"
                )
            ).body.disk_id
        ),
    )
    expect(lambda: lab.ecs.re_init_disk(em.ReInitDiskRequest(disk_id=copy)), "IncorrectDiskStatus", 403)
    attach(lab, copy, instance_id)
    expect(lambda: lab.ecs.re_init_disk(em.ReInitDiskRequest(disk_id=copy)), "IncorrectInstanceStatus", 403)
    expect(
        lambda: lab.ecs.re_init_disk(em.ReInitDiskRequest(disk_id=system_disk(lab, instance_id))),
        "IncorrectInstanceStatus",
        403,
    )

    stopped(lab, instance_id)
    for disk_id in (copy, system_disk(lab, instance_id)):
        lab.ecs.re_init_disk(em.ReInitDiskRequest(disk_id=disk_id))
        assert disk_of(lab, disk_id).status in ("ReIniting", "In_use")
        assert wait_disk(lab, disk_id, "In_use") == "In_use"

    # once its source snapshot is gone (forced), the disk cannot go back to it
    expect(
        lambda: lab.ecs.delete_snapshot(em.DeleteSnapshotRequest(snapshot_id=snapshot_id)),
        "SnapshotCreatedDisk",
        403,
    )
    lab.ecs.delete_snapshot(em.DeleteSnapshotRequest(snapshot_id=snapshot_id, force=True))
    expect(lambda: lab.ecs.re_init_disk(em.ReInitDiskRequest(disk_id=copy)), "InvalidSourceSnapshot", 403)
    assert disk_of(lab, copy).source_snapshot_id == snapshot_id
    lab.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))
    assert gone(lab, instance_id)
    for disk_id in (source, copy):
        assert wait_disk(lab, disk_id, "Available") == "Available"
        lab.ecs.delete_disk(em.DeleteDiskRequest(disk_id=disk_id))


def test_reset_and_snapshot_readiness(live: LiveServer, lab: Lab) -> None:
    instance_id = running(lab)
    mine, theirs = (available(lab.ecs, new_disk(lab.ecs)) for _ in range(2))
    attach(lab, mine, instance_id)
    attach(lab, theirs, instance_id)
    my_snapshot, their_snapshot = snapshot(lab, mine), snapshot(lab, theirs)

    expect(
        lambda: lab.ecs.reset_disk(em.ResetDiskRequest(disk_id=mine, snapshot_id=my_snapshot)),
        "IncorrectInstanceStatus",
        403,
    )
    stopped(lab, instance_id)
    expect(
        lambda: lab.ecs.reset_disk(em.ResetDiskRequest(disk_id=mine, snapshot_id=their_snapshot)),
        "InvalidParameter.Mismatch",
        403,
    )
    expect(
        lambda: lab.ecs.reset_disk(em.ResetDiskRequest(disk_id=mine, snapshot_id=my_snapshot, dry_run=True)),
        "DryRunOperation",
        400,
    )

    with parked(live, Snapshot, my_snapshot, status="progressing", progress=40):
        assert snapshot_ids(lab.ecs, status="progressing") == {my_snapshot}
        shown = snapshots(lab.ecs, snapshot_ids=f'["{my_snapshot}"]').snapshots.snapshot[0]
        assert (shown.progress, shown.available) == ("40%", False)
        expect(
            lambda: lab.ecs.reset_disk(em.ResetDiskRequest(disk_id=mine, snapshot_id=my_snapshot)),
            "InvalidSnapshotId.NotReady",
            403,
        )
        expect(
            lambda: lab.ecs.create_disk(
                em.CreateDiskRequest(
                    region_id=REGION, zone_id=ZONE, snapshot_id=my_snapshot, disk_category="cloud_essd"
                )
            ),
            "InvalidSnapshotId.NotReady",
            403,
        )
    assert disk_ids(lab.ecs, snapshot_id=my_snapshot) == set()

    lab.ecs.reset_disk(em.ResetDiskRequest(disk_id=mine, snapshot_id=my_snapshot))
    assert wait_disk(lab, mine, "In_use") == "In_use"  # no Resetting status
    # a disk made from a snapshot is at least as large as its source
    expect(
        lambda: lab.ecs.create_disk(
            em.CreateDiskRequest(
                region_id=REGION, zone_id=ZONE, snapshot_id=my_snapshot, size=39, disk_category="cloud_essd"
            )
        ),
        "InvalidDiskSize.TooSmall",
        403,
    )
    bigger = available(
        lab.ecs,
        str(
            lab.ecs.create_disk(
                em.CreateDiskRequest(
                    region_id=REGION,
                    zone_id=ZONE,
                    snapshot_id=my_snapshot,
                    size=60,
                    disk_category="cloud_essd",
                )
            ).body.disk_id
        ),
    )
    assert (disk_of(lab, bigger).size, disk_of(lab, bigger).source_snapshot_id) == (60, my_snapshot)
    assert disk_ids(lab.ecs, snapshot_id=my_snapshot) == {bigger}
    lab.ecs.delete_disk(em.DeleteDiskRequest(disk_id=bigger))
    lab.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))


# ---- snapshots -----------------------------------------------------------------------------


def test_snapshot_rules_filters_and_usage(live: LiveServer, lab: Lab) -> None:
    instance_id = running(lab)
    first, second = (available(lab.ecs, new_disk(lab.ecs, size=size)) for size in (40, 60))
    attach(lab, first, instance_id)
    attach(lab, second, instance_id)
    for name in ("auto1", "automatic", "1digit", "http://x"):
        expect(
            partial(lab.ecs.create_snapshot, em.CreateSnapshotRequest(disk_id=first, snapshot_name=name)),
            "InvalidSnapshotName.Malformed",
            400,
        )
    assert snapshots(lab.ecs).total_count == 0

    token = f"snap-{uuid.uuid4().hex}"
    one = lab.ecs.create_snapshot(
        em.CreateSnapshotRequest(disk_id=first, snapshot_name="one", client_token=token)
    ).body.snapshot_id
    assert (
        lab.ecs.create_snapshot(
            em.CreateSnapshotRequest(disk_id=first, snapshot_name="one", client_token=token)
        ).body.snapshot_id
        == one
    )
    expect(
        lambda: lab.ecs.create_snapshot(
            em.CreateSnapshotRequest(disk_id=second, snapshot_name="one", client_token=token)
        ),
        "IdempotentParameterMismatch",
        400,
    )
    shown = wait_snapshot(lab, one)
    assert (shown.status, shown.progress, shown.available, shown.snapshot_type, shown.usage) == (
        "accomplished",
        "100%",
        True,
        "user",
        "none",
    )
    assert (shown.source_disk_id, shown.source_disk_size, shown.source_disk_type, shown.snapshot_name) == (
        first,
        "40",
        "Data",
        "one",
    )
    two = snapshot(lab, second, snapshot_name="two")
    system = snapshot(lab, system_disk(lab, instance_id), snapshot_name="sys")
    assert snapshots(lab.ecs).total_count == 3

    lab.ecs.modify_snapshot_attribute(
        em.ModifySnapshotAttributeRequest(snapshot_id=one, snapshot_name="renamed", description="described")
    )
    expect(
        lambda: lab.ecs.modify_snapshot_attribute(
            em.ModifySnapshotAttributeRequest(snapshot_id=one, snapshot_name="auto-renamed")
        ),
        "InvalidSnapshotName.Malformed",
        400,
    )
    renamed = snapshots(lab.ecs, snapshot_ids=f'["{one}"]').snapshots.snapshot[0]
    assert (renamed.snapshot_name, renamed.description) == ("renamed", "described")

    copy = available(
        lab.ecs,
        str(
            lab.ecs.create_disk(
                em.CreateDiskRequest(
                    region_id=REGION, zone_id=ZONE, snapshot_id=two, disk_category="cloud_essd"
                )
            ).body.disk_id
        ),
    )

    assert snapshot_ids(lab.ecs, disk_id=first) == {one}
    assert snapshot_ids(lab.ecs, snapshot_name="renamed") == {one}
    assert snapshot_ids(lab.ecs, snapshot_type="user") == {one, two, system}
    assert snapshot_ids(lab.ecs, snapshot_type="auto") == set()
    assert snapshot_ids(lab.ecs, snapshot_type="all") == {one, two, system}
    assert snapshot_ids(lab.ecs, status="accomplished") == {one, two, system}
    assert snapshot_ids(lab.ecs, status="progressing") == set()
    assert snapshot_ids(lab.ecs, usage="disk") == {two}
    assert snapshot_ids(lab.ecs, usage="none") == {one, system}
    assert snapshot_ids(lab.ecs, source_disk_type="System") == {system}
    assert snapshot_ids(lab.ecs, instance_id=instance_id) == {one, two, system}
    assert snapshot_ids(lab.ecs, snapshot_ids=f'["{one}", "{two}"]') == {one, two}
    page = snapshots(lab.ecs, page_size=2, page_number=2)
    assert (page.total_count, len(page.snapshots.snapshot), page.page_number) == (3, 1, 2)
    by_token = snapshots(lab.ecs, max_results=10)
    assert (len(by_token.snapshots.snapshot), by_token.next_token) == (3, "")
    expect(lambda: snapshots(lab.ecs, dry_run=True), "DryRunOperation", 400)

    usage = lab.ecs.describe_snapshots_usage(em.DescribeSnapshotsUsageRequest(region_id=REGION)).body
    system_size = disk_of(lab, system_disk(lab, instance_id)).size
    assert (int(usage.snapshot_count), int(usage.snapshot_size)) == (3, (40 + 60 + system_size) << 30)

    with parked(live, Snapshot, one, status="failed"):
        assert snapshot_ids(lab.ecs, status="failed") == {one}
        assert snapshot_ids(lab.ecs, status="all") == {one, two, system}

    expect(
        lambda: lab.ecs.delete_snapshot(em.DeleteSnapshotRequest(snapshot_id=two)), "SnapshotCreatedDisk", 403
    )
    assert snapshot_ids(lab.ecs) == {one, two, system}
    lab.ecs.delete_snapshot(em.DeleteSnapshotRequest(snapshot_id=two, force=True))
    lab.ecs.delete_snapshot(em.DeleteSnapshotRequest(snapshot_id=one))
    assert snapshot_ids(lab.ecs) == {system}
    assert disk_of(lab, copy).status == "Available"  # the disk outlives the snapshot it was made from
    usage = lab.ecs.describe_snapshots_usage(em.DescribeSnapshotsUsageRequest(region_id=REGION)).body
    assert (int(usage.snapshot_count), int(usage.snapshot_size)) == (1, system_size << 30)
    lab.ecs.delete_disk(em.DeleteDiskRequest(disk_id=copy))
    lab.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))


# ---- DescribeDisks, ModifyDiskAttribute, ModifyDiskSpec ------------------------------------


def test_describe_disks_filters(lab: Lab) -> None:
    instance_id = running(lab, data_disk=[em.RunInstancesRequestDataDisk(size=30, category="cloud_essd")])
    system = system_disk(lab, instance_id)
    [launched] = disk_ids(lab.ecs, instance_id=instance_id, disk_type="data")
    loose = available(
        lab.ecs,
        new_disk(
            lab.ecs,
            size=30,
            category="cloud_ssd",
            disk_name="loose",
            tag=[em.CreateDiskRequestTag(key="env", value="prod")],
        ),
    )
    extra = available(lab.ecs, new_disk(lab.ecs, size=50, category="cloud_efficiency"))
    attach(lab, extra, instance_id)
    everything = {system, launched, loose, extra}

    assert disk_ids(lab.ecs) == everything
    assert disk_ids(lab.ecs, disk_type="all") == everything
    assert disk_ids(lab.ecs, disk_type="system") == {system}
    assert disk_ids(lab.ecs, disk_type="data") == {launched, loose, extra}
    assert disk_ids(lab.ecs, status="Available") == {loose}
    assert disk_ids(lab.ecs, status="In_use") == {system, launched, extra}
    assert disk_ids(lab.ecs, status="All") == everything
    assert disk_ids(lab.ecs, instance_id=instance_id) == {system, launched, extra}
    assert disk_ids(lab.ecs, category="cloud_ssd") == {loose}
    assert disk_ids(lab.ecs, category="cloud_essd", performance_level="PL1") == {system, launched}
    assert disk_ids(lab.ecs, disk_ids=f'["{loose}", "{extra}", "d-nothere"]') == {loose, extra}
    assert disk_ids(lab.ecs, zone_id=ZONE) == everything
    assert disk_ids(lab.ecs, zone_id=OTHER_ZONE) == set()
    assert disk_ids(lab.ecs, portable=False) == {system}
    assert disk_ids(lab.ecs, delete_with_instance=True) == {system, launched}
    assert disk_ids(lab.ecs, disk_name="loose") == {loose}
    assert disk_ids(lab.ecs, tag=[em.DescribeDisksRequestTag(key="env", value="prod")]) == {loose}
    assert disk_ids(lab.ecs, tag=[em.DescribeDisksRequestTag(key="env")]) == {loose}
    assert disk_ids(lab.ecs, tag=[em.DescribeDisksRequestTag(key="env", value="dev")]) == set()
    tags = disk_of(lab, loose).tags.tag
    assert [(t.tag_key, t.tag_value) for t in tags] == [("env", "prod")]
    expect(lambda: disks(lab.ecs, dry_run=True), "DryRunOperation", 400)

    page = disks(lab.ecs, page_size=3, page_number=2)
    assert (page.total_count, len(page.disks.disk), page.page_number, page.page_size) == (4, 1, 2, 3)
    first = disks(lab.ecs, max_results=3)
    second = disks(lab.ecs, max_results=3, next_token=first.next_token)
    assert first.next_token != "" and second.next_token == ""
    assert [d.disk_id for d in first.disks.disk + second.disks.disk] == [
        d.disk_id for d in disks(lab.ecs, page_size=100).disks.disk
    ]
    assert len({d.disk_id for d in first.disks.disk + second.disks.disk}) == 4
    lab.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))
    assert gone(lab, instance_id)
    lab.ecs.delete_disk(em.DeleteDiskRequest(disk_id=loose))


def test_modify_disk_attribute(ecs: Any) -> None:
    first, second = available(ecs, new_disk(ecs)), available(ecs, new_disk(ecs))
    ecs.modify_disk_attribute(
        em.ModifyDiskAttributeRequest(
            disk_id=first,
            disk_name="renamed",
            description="described",
            delete_with_instance=True,
            delete_auto_snapshot=False,
            enable_auto_snapshot=False,
        )
    )
    disk = disk_of_client(ecs, first)
    assert (
        disk.disk_name,
        disk.description,
        disk.delete_with_instance,
        disk.delete_auto_snapshot,
        disk.enable_auto_snapshot,
    ) == ("renamed", "described", True, False, False)
    assert disk_ids(ecs, disk_name="renamed") == {first}
    assert disk_ids(ecs, delete_with_instance=True) == {first}

    ecs.modify_disk_attribute(
        em.ModifyDiskAttributeRequest(region_id=REGION, disk_ids=[first, second], description="both")
    )
    assert {disk_of_client(ecs, d).description for d in (first, second)} == {"both"}
    assert disk_of_client(ecs, first).disk_name == "renamed"

    expect(
        lambda: ecs.modify_disk_attribute(em.ModifyDiskAttributeRequest(disk_id=first, disk_name="-bad")),
        "InvalidDiskName.Malformed",
        400,
    )
    malformed = error_of(
        lambda: ecs.modify_disk_attribute(
            em.ModifyDiskAttributeRequest(disk_id=first, description="https://x")
        )
    )
    assert malformed.code == "InvalidDescription.Malformed" and malformed.status_code in (400, 404)
    expect(
        lambda: ecs.modify_disk_attribute(em.ModifyDiskAttributeRequest(disk_name="nothing")),
        "MissingParameter",
        400,
    )
    expect(
        lambda: ecs.modify_disk_attribute(
            em.ModifyDiskAttributeRequest(region_id=REGION, disk_ids=[second, "d-nothere"], disk_name="half")
        ),
        "InvalidDiskId.NotFound",
        404,
    )
    assert disk_of_client(ecs, second).disk_name == ""  # all or nothing
    for disk_id in (first, second):
        ecs.delete_disk(em.DeleteDiskRequest(disk_id=disk_id))


def test_modify_disk_spec_changes_performance(ecs: Any) -> None:
    disk_id = available(ecs, new_disk(ecs, size=1000))
    disk = disk_of_client(ecs, disk_id)
    assert (disk.performance_level, disk.iops, disk.throughput) == ("PL1", 50000, 350)

    ecs.modify_disk_spec(em.ModifyDiskSpecRequest(disk_id=disk_id, performance_level="PL2"))
    disk = disk_of_client(ecs, disk_id)
    assert (disk.performance_level, disk.iops, disk.throughput, disk.status) == (
        "PL2",
        1800 + 50 * 1000,
        120 + 1000 // 2,
        "Available",
    )
    assert (disk.iopsread, disk.iopswrite) == (disk.iops, disk.iops)

    expect(
        lambda: ecs.modify_disk_spec(em.ModifyDiskSpecRequest(disk_id=disk_id, performance_level="PL3")),
        "OperationDenied.PerformanceLevelNotMatch",
        403,
    )
    expect(
        lambda: ecs.modify_disk_spec(em.ModifyDiskSpecRequest(disk_id=disk_id, performance_level="PL9")),
        "InvalidPerformanceLevel.Malformed",
        400,
    )
    expect(
        lambda: ecs.modify_disk_spec(em.ModifyDiskSpecRequest(disk_id=disk_id, disk_category="cloud_magic")),
        "InvalidDiskCategory.ValueNotSupported",
        400,
    )
    expect(lambda: ecs.modify_disk_spec(em.ModifyDiskSpecRequest(disk_id=disk_id)), "MissingParameter", 400)
    expect(
        lambda: ecs.modify_disk_spec(
            em.ModifyDiskSpecRequest(disk_id=disk_id, performance_level="PL0", dry_run=True)
        ),
        "DryRunOperation",
        400,
    )
    assert disk_of_client(ecs, disk_id).performance_level == "PL2"

    ecs.modify_disk_spec(em.ModifyDiskSpecRequest(disk_id=disk_id, disk_category="cloud_ssd"))
    disk = disk_of_client(ecs, disk_id)
    assert (disk.category, disk.performance_level, disk.iops, disk.throughput) == (
        "cloud_ssd",
        "",
        25000,
        300,
    )
    assert disk_ids(ecs, category="cloud_ssd") == {disk_id}
    ecs.delete_disk(em.DeleteDiskRequest(disk_id=disk_id))


# ---- tags ----------------------------------------------------------------------------------


def test_tags_on_disks_and_snapshots(lab: Lab) -> None:
    instance_id = running(lab)
    disk_id = available(lab.ecs, new_disk(lab.ecs, tag=[em.CreateDiskRequestTag(key="team", value="a")]))
    attach(lab, disk_id, instance_id)
    snapshot_id = str(
        lab.ecs.create_snapshot(
            em.CreateSnapshotRequest(
                disk_id=disk_id, tag=[em.CreateSnapshotRequestTag(key="team", value="b")]
            )
        ).body.snapshot_id
    )
    wait_snapshot(lab, snapshot_id)

    def listed(kind: str, **filters: Any) -> set[tuple[str, str, str, str]]:
        rows = lab.ecs.list_tag_resources(
            em.ListTagResourcesRequest(region_id=REGION, resource_type=kind, **filters)
        ).body
        return {
            (t.resource_id, t.resource_type, t.tag_key, t.tag_value) for t in rows.tag_resources.tag_resource
        }

    for kind, resource_id in (("disk", disk_id), ("snapshot", snapshot_id)):
        lab.ecs.tag_resources(
            em.TagResourcesRequest(
                region_id=REGION,
                resource_type=kind,
                resource_id=[resource_id],
                tag=[em.TagResourcesRequestTag(key="env", value="prod")],
            )
        )
    assert listed("disk", resource_id=[disk_id]) == {
        (disk_id, "disk", "team", "a"),
        (disk_id, "disk", "env", "prod"),
    }
    assert listed("snapshot", resource_id=[snapshot_id]) == {
        (snapshot_id, "snapshot", "team", "b"),
        (snapshot_id, "snapshot", "env", "prod"),
    }
    assert {row[0] for row in listed("disk", tag=[em.ListTagResourcesRequestTag(key="team", value="a")])} == {
        disk_id
    }
    assert listed("snapshot", tag=[em.ListTagResourcesRequestTag(key="team", value="a")]) == set()
    assert disk_ids(lab.ecs, tag=[em.DescribeDisksRequestTag(key="env", value="prod")]) == {disk_id}
    assert snapshot_ids(lab.ecs, tag=[em.DescribeSnapshotsRequestTag(key="team", value="b")]) == {snapshot_id}
    shown = snapshots(lab.ecs, snapshot_ids=f'["{snapshot_id}"]').snapshots.snapshot[0]
    assert {(t.tag_key, t.tag_value) for t in shown.tags.tag} == {("team", "b"), ("env", "prod")}

    lab.ecs.untag_resources(
        em.UntagResourcesRequest(
            region_id=REGION, resource_type="disk", resource_id=[disk_id], tag_key=["env"]
        )
    )
    assert listed("disk", resource_id=[disk_id]) == {(disk_id, "disk", "team", "a")}
    assert disk_ids(lab.ecs, tag=[em.DescribeDisksRequestTag(key="env")]) == set()
    for kind, resource_id in (("disk", snapshot_id), ("snapshot", disk_id), ("disk", "d-nothere")):
        expect(
            partial(
                lab.ecs.tag_resources,
                em.TagResourcesRequest(
                    region_id=REGION,
                    resource_type=kind,
                    resource_id=[resource_id],
                    tag=[em.TagResourcesRequestTag(key="k", value="v")],
                ),
            ),
            "InvalidResourceId.NotFound",
            404,
        )

    lab.ecs.delete_snapshot(em.DeleteSnapshotRequest(snapshot_id=snapshot_id))
    assert listed("snapshot", resource_id=[snapshot_id]) == set()
    lab.ecs.detach_disk(em.DetachDiskRequest(disk_id=disk_id, instance_id=instance_id))
    assert wait_disk(lab, disk_id, "Available") == "Available"
    lab.ecs.delete_disk(em.DeleteDiskRequest(disk_id=disk_id))
    assert listed("disk", resource_id=[disk_id]) == set()
    lab.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))


# ---- accounts ------------------------------------------------------------------------------


def test_other_accounts_cannot_see_or_touch_disks_and_snapshots(live: LiveServer, lab: Lab) -> None:
    instance_id = running(lab)
    disk_id = available(lab.ecs, new_disk(lab.ecs, disk_name="mine"))
    attach(lab, disk_id, instance_id)
    snapshot_id = snapshot(lab, disk_id, snapshot_name="mine")
    other = tea_ecs(live, live.create_account(f"disk-other-{uuid.uuid4().hex[:12]}"))

    assert disks(other).total_count == 0
    assert disks(other, disk_ids=f'["{disk_id}"]').total_count == 0
    assert disks(other, instance_id=instance_id).total_count == 0
    assert snapshots(other).total_count == 0
    assert snapshots(other, snapshot_ids=f'["{snapshot_id}"]').total_count == 0
    assert snapshots(other, disk_id=disk_id).total_count == 0
    usage = other.describe_snapshots_usage(em.DescribeSnapshotsUsageRequest(region_id=REGION)).body
    assert (int(usage.snapshot_count), int(usage.snapshot_size)) == (0, 0)
    for call in (
        lambda: other.detach_disk(em.DetachDiskRequest(disk_id=disk_id, instance_id=instance_id)),
        lambda: other.resize_disk(em.ResizeDiskRequest(disk_id=disk_id, new_size=100)),
        lambda: other.re_init_disk(em.ReInitDiskRequest(disk_id=disk_id)),
        lambda: other.reset_disk(em.ResetDiskRequest(disk_id=disk_id, snapshot_id=snapshot_id)),
        lambda: other.modify_disk_attribute(
            em.ModifyDiskAttributeRequest(disk_id=disk_id, disk_name="theirs")
        ),
        lambda: other.modify_disk_spec(em.ModifyDiskSpecRequest(disk_id=disk_id, performance_level="PL0")),
        lambda: other.delete_disk(em.DeleteDiskRequest(disk_id=disk_id)),
        lambda: other.create_snapshot(em.CreateSnapshotRequest(disk_id=disk_id)),
        lambda: other.attach_disk(em.AttachDiskRequest(disk_id=disk_id, instance_id=instance_id)),
    ):
        expect(call, "InvalidDiskId.NotFound", 404)
    for call in (
        lambda: other.modify_snapshot_attribute(
            em.ModifySnapshotAttributeRequest(snapshot_id=snapshot_id, snapshot_name="theirs")
        ),
        lambda: other.create_disk(
            em.CreateDiskRequest(
                region_id=REGION, zone_id=ZONE, snapshot_id=snapshot_id, disk_category="cloud_essd"
            )
        ),
    ):
        expect(call, "InvalidSnapshotId.NotFound", 404)
    for kind, resource_id in (("disk", disk_id), ("snapshot", snapshot_id)):
        expect(
            partial(
                other.tag_resources,
                em.TagResourcesRequest(
                    region_id=REGION,
                    resource_type=kind,
                    resource_id=[resource_id],
                    tag=[em.TagResourcesRequestTag(key="k", value="v")],
                ),
            ),
            "InvalidResourceId.NotFound",
            404,
        )
        rows = other.list_tag_resources(
            em.ListTagResourcesRequest(region_id=REGION, resource_type=kind, resource_id=[resource_id])
        ).body
        assert rows.tag_resources.tag_resource == []
    # their own disk cannot go onto my instance, nor an instance of theirs get my disk
    theirs = available(other, new_disk(other))
    expect(
        lambda: other.attach_disk(em.AttachDiskRequest(disk_id=theirs, instance_id=instance_id)),
        "InvalidInstanceId.NotFound",
        404,
    )
    expect(
        lambda: other.create_disk(
            em.CreateDiskRequest(
                region_id=REGION, instance_id=instance_id, size=40, disk_category="cloud_essd"
            )
        ),
        "InvalidInstanceId.NotFound",
        404,
    )
    # a snapshot of someone else "does not exist", and DeleteSnapshot ignores it
    other.delete_snapshot(em.DeleteSnapshotRequest(snapshot_id=snapshot_id, force=True))

    assert snapshot_ids(lab.ecs) == {snapshot_id}
    mine = disk_of(lab, disk_id)
    assert (mine.disk_name, mine.status, mine.size, mine.instance_id) == ("mine", "In_use", 40, instance_id)
    assert disk_ids(other) == {theirs}
    assert theirs not in disk_ids(lab.ecs)
    other.delete_disk(em.DeleteDiskRequest(disk_id=theirs))
    lab.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))


# ---- disks and the deletion of their instance ----------------------------------------------


def test_disks_go_or_stay_with_their_instance(lab: Lab) -> None:
    instance_id = running(
        lab,
        data_disk=[
            em.RunInstancesRequestDataDisk(size=30, category="cloud_essd", disk_name="goes"),
            em.RunInstancesRequestDataDisk(
                size=30, category="cloud_essd", disk_name="stays", delete_with_instance=False
            ),
        ],
    )
    launched = {d.disk_name: d for d in disks(lab.ecs, instance_id=instance_id, disk_type="data").disks.disk}
    assert {name: d.delete_with_instance for name, d in launched.items()} == {"goes": True, "stays": False}
    system = system_disk(lab, instance_id)
    assert disk_of(lab, system).delete_with_instance is True

    kept = available(lab.ecs, new_disk(lab.ecs, disk_name="kept"))
    attach(lab, kept, instance_id)  # AttachDisk: DeleteWithInstance defaults to false
    released = available(lab.ecs, new_disk(lab.ecs, disk_name="released"))
    attach(lab, released, instance_id, delete_with_instance=True)
    flipped = available(lab.ecs, new_disk(lab.ecs, disk_name="flipped"))
    attach(lab, flipped, instance_id)
    lab.ecs.modify_disk_attribute(em.ModifyDiskAttributeRequest(disk_id=flipped, delete_with_instance=True))
    assert disk_ids(lab.ecs, instance_id=instance_id, delete_with_instance=True) == {
        system,
        launched["goes"].disk_id,
        released,
        flipped,
    }

    stopped(lab, instance_id)
    lab.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id))
    assert gone(lab, instance_id)
    # the instance is hidden at once; the agent then releases or detaches its disks
    expected = {launched["stays"].disk_id, kept}
    deadline = time.monotonic() + 30
    while disk_ids(lab.ecs) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    left = {d.disk_id: d for d in disks(lab.ecs, page_size=100).disks.disk}
    assert set(left) == expected
    for disk in left.values():
        assert (disk.status, disk.instance_id, disk.device) == ("Available", "", "")
    for disk_id in left:
        lab.ecs.delete_disk(em.DeleteDiskRequest(disk_id=disk_id))
    assert disks(lab.ecs).total_count == 0


def test_deleting_a_progressing_snapshot_cancels_it(live: LiveServer, lab: Lab) -> None:
    disk_id = available(lab.ecs, new_disk(lab.ecs))
    snapshot_id = snapshot(lab, disk_id)
    with parked(live, Snapshot, snapshot_id, status="progressing", progress=10):
        lab.ecs.delete_snapshot(em.DeleteSnapshotRequest(snapshot_id=snapshot_id))
    assert snapshot_ids(lab.ecs, disk_id=disk_id) == set()
    # the disk goes on as before, and takes new snapshots
    assert disk_of_client(lab.ecs, disk_id).status == "Available"
    assert snapshot_ids(lab.ecs, snapshot_ids=f'["{snapshot(lab, disk_id)}"]')


def test_a_disk_is_not_deleted_while_a_snapshot_of_it_is_progressing(live: LiveServer, lab: Lab) -> None:
    """As ECS (DiskCreatingSnapshot): the snapshot would otherwise never be taken and stay
    progressing for ever."""
    disk_id = available(lab.ecs, new_disk(lab.ecs))
    snapshot_id = snapshot(lab, disk_id)
    with parked(live, Snapshot, snapshot_id, status="progressing", progress=10):
        expect(
            lambda: lab.ecs.delete_disk(em.DeleteDiskRequest(disk_id=disk_id)), "DiskCreatingSnapshot", 403
        )
    lab.ecs.delete_disk(em.DeleteDiskRequest(disk_id=disk_id))
    assert disk_ids(lab.ecs, disk_ids=f'["{disk_id}"]') == set()
    assert snapshot_ids(lab.ecs, snapshot_ids=f'["{snapshot_id}"]') == {snapshot_id}  # manual snapshots stay
