"""Cloud disks and snapshots through the official SDK against the emulator (fake compute and
storage): the status machine, attach/detach, snapshots, resets, error codes. Real files and
VMs are in tests/vm."""

from __future__ import annotations

import time
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em

from ..conftest import LiveServer
from .test_instances_api import Lab, error_of
from .test_vpc_api import REGION


@pytest.fixture
def lab(live: LiveServer, fresh_key: tuple[str, str]) -> Lab:
    return Lab(live, fresh_key, "10.61.0.0/16")


def disk_of(lab: Lab, disk_id: str) -> Any:
    disks = lab.ecs.describe_disks(em.DescribeDisksRequest(region_id=REGION, disk_ids=f'["{disk_id}"]')).body
    assert disks.total_count == 1
    return disks.disks.disk[0]


def wait_disk(lab: Lab, disk_id: str, status: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    current = disk_of(lab, disk_id).status
    while current != status and time.monotonic() < deadline:
        time.sleep(0.05)
        current = disk_of(lab, disk_id).status
    return str(current)


def wait_snapshot(lab: Lab, snapshot_id: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        snap = lab.ecs.describe_snapshots(
            em.DescribeSnapshotsRequest(region_id=REGION, snapshot_ids=f'["{snapshot_id}"]')
        ).body.snapshots.snapshot[0]
        if snap.status != "progressing" or time.monotonic() > deadline:
            return snap
        time.sleep(0.05)


def test_disk_lifecycle_attach_snapshot_reset_detach_delete(lab: Lab) -> None:
    [instance_id] = lab.run()
    assert lab.wait(instance_id, "Running") == "Running"
    zone = lab.ecs.describe_instance_attribute(
        em.DescribeInstanceAttributeRequest(instance_id=instance_id)
    ).body.zone_id
    disk_id = lab.ecs.create_disk(
        em.CreateDiskRequest(
            region_id=REGION, zone_id=zone, size=40, disk_category="cloud_essd", disk_name="data-1"
        )
    ).body.disk_id
    assert wait_disk(lab, disk_id, "Available") == "Available"
    disk = disk_of(lab, disk_id)
    assert (disk.category, disk.performance_level, disk.size, disk.type) == ("cloud_essd", "PL1", 40, "data")
    assert disk.iops == min(1800 + 50 * 40, 50000) and disk.throughput == min(120 + 40 // 2, 350)

    lab.ecs.attach_disk(em.AttachDiskRequest(disk_id=disk_id, instance_id=instance_id))
    assert wait_disk(lab, disk_id, "In_use") == "In_use"
    disk = disk_of(lab, disk_id)
    assert disk.instance_id == instance_id and disk.device == "/dev/xvdb"
    again = error_of(
        lambda: lab.ecs.attach_disk(em.AttachDiskRequest(disk_id=disk_id, instance_id=instance_id))
    )
    assert again.code.startswith("IncorrectDiskStatus")

    snapshot_id = lab.ecs.create_snapshot(
        em.CreateSnapshotRequest(disk_id=disk_id, snapshot_name="snap-1")
    ).body.snapshot_id
    snap = wait_snapshot(lab, snapshot_id)
    assert (snap.status, snap.progress, snap.source_disk_id, snap.source_disk_type) == (
        "accomplished",
        "100%",
        disk_id,
        "Data",
    )

    # ResetDisk needs the instance stopped
    busy = error_of(lambda: lab.ecs.reset_disk(em.ResetDiskRequest(disk_id=disk_id, snapshot_id=snapshot_id)))
    assert busy.code == "IncorrectInstanceStatus"
    lab.ecs.stop_instance(em.StopInstanceRequest(instance_id=instance_id))
    assert lab.wait(instance_id, "Stopped") == "Stopped"
    lab.ecs.reset_disk(em.ResetDiskRequest(disk_id=disk_id, snapshot_id=snapshot_id))

    # a disk from the snapshot
    copy_id = lab.ecs.create_disk(
        em.CreateDiskRequest(
            region_id=REGION, zone_id=zone, snapshot_id=snapshot_id, disk_category="cloud_essd"
        )
    ).body.disk_id
    assert wait_disk(lab, copy_id, "Available") == "Available"
    copy = disk_of(lab, copy_id)
    assert (copy.source_snapshot_id, copy.size) == (snapshot_id, 40)
    used = error_of(lambda: lab.ecs.delete_snapshot(em.DeleteSnapshotRequest(snapshot_id=snapshot_id)))
    assert used.code == "SnapshotCreatedDisk"

    in_use = error_of(lambda: lab.ecs.delete_disk(em.DeleteDiskRequest(disk_id=disk_id)))
    assert in_use.code == "IncorrectDiskStatus"
    lab.ecs.detach_disk(em.DetachDiskRequest(disk_id=disk_id, instance_id=instance_id))
    assert wait_disk(lab, disk_id, "Available") == "Available"
    assert disk_of(lab, disk_id).instance_id == ""
    lab.ecs.delete_disk(em.DeleteDiskRequest(disk_id=disk_id))
    gone = error_of(lambda: lab.ecs.delete_disk(em.DeleteDiskRequest(disk_id=disk_id)))
    assert gone.code == "InvalidDiskId.NotFound"
    lab.ecs.delete_snapshot(em.DeleteSnapshotRequest(snapshot_id=snapshot_id, force=True))
    assert (
        lab.ecs.describe_snapshots(
            em.DescribeSnapshotsRequest(region_id=REGION, snapshot_ids=f'["{snapshot_id}"]')
        ).body.total_count
        == 0
    )
