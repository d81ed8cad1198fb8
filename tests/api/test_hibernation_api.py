"""Hibernation through the official SDK against the emulator (fake compute): HibernationOptions at
creation and in DescribeInstances, StopInstance Hibernate=true, its errors, and what a
hibernated (Stopped) instance may not do. Real VMs: tests/vm/test_hibernate_vm.py."""

from __future__ import annotations

import time

import pytest
from alibabacloud_ecs20140526 import models as em

from ..conftest import LiveServer
from .test_instances_api import Lab, error_of
from .test_vpc_api import REGION


@pytest.fixture
def lab(live: LiveServer, fresh_key: tuple[str, str]) -> Lab:
    return Lab(live, fresh_key, "10.61.0.0/16")


def configured(lab: Lab, instance_id: str) -> bool:
    [instance] = lab.ecs.describe_instances(
        em.DescribeInstancesRequest(region_id=REGION, instance_ids=f'["{instance_id}"]')
    ).body.instances.instance
    return bool(instance.hibernation_options.configured)


def disk_status(lab: Lab, disk_id: str) -> str:
    [disk] = lab.ecs.describe_disks(
        em.DescribeDisksRequest(region_id=REGION, disk_ids=f'["{disk_id}"]')
    ).body.disks.disk
    return str(disk.status)


def test_hibernate_and_start(lab: Lab) -> None:
    [instance_id] = lab.run(hibernation_options=em.RunInstancesRequestHibernationOptions(configured=True))
    [plain] = lab.run()
    assert (configured(lab, instance_id), configured(lab, plain)) == (True, False)
    assert lab.wait(instance_id, "Running") == "Running"
    assert lab.wait(plain, "Running") == "Running"

    refused = error_of(
        lambda: lab.ecs.stop_instance(em.StopInstanceRequest(instance_id=plain, hibernate=True))
    )
    assert (refused.code, refused.status_code) == ("InvalidOperation.HibernateNotConfigured", 403)
    assert lab.status(plain) == "Running"

    dry = error_of(
        lambda: lab.ecs.stop_instance(
            em.StopInstanceRequest(instance_id=instance_id, hibernate=True, dry_run=True)
        )
    )
    assert dry.code == "DryRunOperation"
    assert lab.status(instance_id) == "Running"

    lab.ecs.stop_instance(em.StopInstanceRequest(instance_id=instance_id, hibernate=True))
    assert lab.wait(instance_id, "Stopped") == "Stopped"  # ECS shows a hibernated instance Stopped
    again = error_of(
        lambda: lab.ecs.stop_instance(em.StopInstanceRequest(instance_id=instance_id, hibernate=True))
    )
    assert again.code == "IncorrectInstanceStatus"

    # its devices stay as they were saved
    spec = error_of(
        lambda: lab.ecs.modify_instance_spec(
            em.ModifyInstanceSpecRequest(instance_id=instance_id, instance_type="ecs.g7.xlarge")
        )
    )
    assert (spec.code, spec.status_code) == ("IncorrectInstanceStatus", 403)
    [system_disk] = lab.ecs.describe_disks(
        em.DescribeDisksRequest(region_id=REGION, instance_id=instance_id)
    ).body.disks.disk
    resize = error_of(
        lambda: lab.ecs.resize_disk(em.ResizeDiskRequest(disk_id=system_disk.disk_id, new_size=80))
    )
    assert resize.code == "IncorrectInstanceStatus"
    zone = lab.ecs.describe_instance_attribute(
        em.DescribeInstanceAttributeRequest(instance_id=instance_id)
    ).body.zone_id
    disk_id = lab.ecs.create_disk(
        em.CreateDiskRequest(region_id=REGION, zone_id=zone, size=20, disk_category="cloud_essd")
    ).body.disk_id
    deadline = time.monotonic() + 30
    while disk_status(lab, disk_id) != "Available" and time.monotonic() < deadline:
        time.sleep(0.1)
    attach = error_of(
        lambda: lab.ecs.attach_disk(em.AttachDiskRequest(disk_id=disk_id, instance_id=instance_id))
    )
    assert attach.code == "IncorrectInstanceStatus"
    # a snapshot changes nothing the VM sees: allowed
    lab.ecs.create_snapshot(em.CreateSnapshotRequest(disk_id=system_disk.disk_id))

    lab.ecs.start_instance(em.StartInstanceRequest(instance_id=instance_id))
    assert lab.wait(instance_id, "Running") == "Running"
    lab.ecs.resize_disk(em.ResizeDiskRequest(disk_id=system_disk.disk_id, new_size=80))  # allowed again
    for each in (instance_id, plain):
        lab.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=each, force=True))


def test_a_hibernated_instance_can_be_deleted(lab: Lab) -> None:
    [instance_id] = lab.run(hibernation_options=em.RunInstancesRequestHibernationOptions(configured=True))
    assert lab.wait(instance_id, "Running") == "Running"
    lab.ecs.stop_instance(em.StopInstanceRequest(instance_id=instance_id, hibernate=True))
    assert lab.wait(instance_id, "Stopped") == "Stopped"
    lab.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id))
    gone = error_of(lambda: lab.status(instance_id))
    assert gone.code == "InvalidInstanceId.NotFound"
