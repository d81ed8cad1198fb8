"""Encrypted disks through the official SDK against the emulator (fake drivers): Encrypted=true is
honoured on CreateDisk and RunInstances, shown by the Describe actions and their Encrypted
filters, and carried by snapshots, the disks made from them and the images made of them;
KMSKeyId is refused (nubes has no KMS), and encrypted images are neither shared nor exported.
The real LUKS layers are in tests/unit/test_qcow2_encryption.py and tests/vm."""

from __future__ import annotations

from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em

from ..conftest import LiveServer
from .test_custom_images_api import wait_image
from .test_disks_api import disk_of, wait_disk, wait_snapshot
from .test_instances_api import Lab, error_of
from .test_vpc_api import REGION


@pytest.fixture
def lab(live: LiveServer, fresh_key: tuple[str, str]) -> Lab:
    return Lab(live, fresh_key, "10.67.0.0/16")


def zone_of(lab: Lab, instance_id: str) -> str:
    return str(
        lab.ecs.describe_instance_attribute(
            em.DescribeInstanceAttributeRequest(instance_id=instance_id)
        ).body.zone_id
    )


def disk_ids(lab: Lab, **filters: Any) -> set[str]:
    body = lab.ecs.describe_disks(em.DescribeDisksRequest(region_id=REGION, page_size=100, **filters)).body
    return {d.disk_id for d in body.disks.disk}


def snapshot_ids(lab: Lab, **filters: Any) -> set[str]:
    body = lab.ecs.describe_snapshots(
        em.DescribeSnapshotsRequest(region_id=REGION, page_size=100, **filters)
    ).body
    return {s.snapshot_id for s in body.snapshots.snapshot}


def test_encrypted_disks_snapshots_and_the_disks_made_of_them(lab: Lab) -> None:
    [instance_id] = lab.run()
    assert lab.wait(instance_id, "Running") == "Running"
    zone = zone_of(lab, instance_id)
    create = em.CreateDiskRequest(region_id=REGION, zone_id=zone, size=20, disk_category="cloud_essd")
    plain = lab.ecs.create_disk(create).body.disk_id
    create.encrypted = True
    secret = lab.ecs.create_disk(create).body.disk_id
    assert wait_disk(lab, secret, "Available") == "Available"
    assert wait_disk(lab, plain, "Available") == "Available"
    shown = disk_of(lab, secret)
    assert (shown.encrypted, shown.kmskey_id) == (True, "")
    assert disk_of(lab, plain).encrypted is False
    assert secret in disk_ids(lab, encrypted=True) and plain not in disk_ids(lab, encrypted=True)
    assert plain in disk_ids(lab, encrypted=False) and secret not in disk_ids(lab, encrypted=False)
    # hot-plugged into the running instance, then a snapshot of it: encrypted too
    lab.ecs.attach_disk(em.AttachDiskRequest(disk_id=secret, instance_id=instance_id))
    assert wait_disk(lab, secret, "In_use") == "In_use"
    snapshot_id = lab.ecs.create_snapshot(em.CreateSnapshotRequest(disk_id=secret)).body.snapshot_id
    snap = wait_snapshot(lab, snapshot_id)
    assert (snap.status, snap.encrypted, snap.kmskey_id) == ("accomplished", True, "")
    assert snapshot_id in snapshot_ids(lab, encrypted=True)
    assert snapshot_id not in snapshot_ids(lab, encrypted=False)
    # a disk from it is encrypted even when the request does not say so
    clone = lab.ecs.create_disk(
        em.CreateDiskRequest(
            region_id=REGION, zone_id=zone, snapshot_id=snapshot_id, disk_category="cloud_essd"
        )
    ).body.disk_id
    assert wait_disk(lab, clone, "Available") == "Available"
    assert disk_of(lab, clone).encrypted is True
    # ... and so is one made from it by RunInstances
    [other] = lab.run(
        data_disk=[em.RunInstancesRequestDataDisk(snapshot_id=snapshot_id, category="cloud_essd")]
    )
    assert lab.wait(other, "Running") == "Running"
    data = [
        d
        for d in lab.ecs.describe_disks(
            em.DescribeDisksRequest(region_id=REGION, instance_id=other)
        ).body.disks.disk
        if d.type == "data"
    ]
    assert [d.encrypted for d in data] == [True]


def test_run_instances_takes_encrypted_system_and_data_disks(lab: Lab) -> None:
    [instance_id] = lab.run(
        system_disk=em.RunInstancesRequestSystemDisk(encrypted="true"),
        data_disk=[
            em.RunInstancesRequestDataDisk(size=20, category="cloud_essd", encrypted="true"),
            em.RunInstancesRequestDataDisk(size=20, category="cloud_essd", encrypted="false"),
        ],
    )
    assert lab.wait(instance_id, "Running") == "Running"
    disks = lab.ecs.describe_disks(
        em.DescribeDisksRequest(region_id=REGION, instance_id=instance_id)
    ).body.disks.disk
    assert sorted((d.type, d.encrypted) for d in disks) == [("data", False), ("data", True), ("system", True)]


def test_kms_key_ids_are_refused_and_change_nothing(lab: Lab) -> None:
    [instance_id] = lab.run()
    assert lab.wait(instance_id, "Running") == "Running"
    before = disk_ids(lab)
    refused = error_of(
        lambda: lab.ecs.create_disk(
            em.CreateDiskRequest(
                region_id=REGION,
                zone_id=zone_of(lab, instance_id),
                size=20,
                disk_category="cloud_essd",
                encrypted=True,
                kmskey_id="key-1",
            )
        )
    )
    assert refused.code == "InvalidParameter.NotSupported" and '"KMSKeyId"' in refused.message
    assert disk_ids(lab) == before


def test_images_of_encrypted_disks_are_encrypted_and_stay_with_their_owner(
    live: LiveServer, lab: Lab
) -> None:
    [source] = lab.run(
        system_disk=em.RunInstancesRequestSystemDisk(encrypted="true"),
        data_disk=[em.RunInstancesRequestDataDisk(size=20, category="cloud_essd", encrypted="true")],
    )
    assert lab.wait(source, "Running") == "Running"
    image_id = lab.ecs.create_image(em.CreateImageRequest(region_id=REGION, instance_id=source)).body.image_id
    made = wait_image(lab, image_id)
    assert made.status == "Available"
    assert [(m.type, m.encrypted) for m in made.disk_device_mappings.disk_device_mapping] == [
        ("system", True),
        ("data", True),
    ]
    # instances of it get encrypted disks
    [launched] = lab.run(image_id=image_id)
    assert lab.wait(launched, "Running") == "Running"
    disks = lab.ecs.describe_disks(
        em.DescribeDisksRequest(region_id=REGION, instance_id=launched)
    ).body.disks.disk
    assert {(d.type, d.encrypted) for d in disks} == {("system", True), ("data", True)}
    # never shared, never exported; a copy is encrypted as its source is
    share = error_of(
        lambda: lab.ecs.modify_image_share_permission(
            em.ModifyImageSharePermissionRequest(
                region_id=REGION, image_id=image_id, add_account=["1234567890123456"]
            )
        )
    )
    assert share.code == "OperationDenied.EncryptedImage"
    export = error_of(
        lambda: lab.ecs.export_image(
            em.ExportImageRequest(
                region_id=REGION, image_id=image_id, ossbucket="exports", image_format="raw"
            )
        )
    )
    assert export.code == "OperationDenied.EncryptedImage"
    copy_id = lab.ecs.copy_image(em.CopyImageRequest(region_id=REGION, image_id=image_id)).body.image_id
    copied = wait_image(lab, copy_id)
    assert [m.encrypted for m in copied.disk_device_mappings.disk_device_mapping] == [True, True]
    refused = error_of(
        lambda: lab.ecs.copy_image(em.CopyImageRequest(region_id=REGION, image_id=image_id, encrypted=True))
    )
    assert refused.code == "InvalidParameter.NotSupported"
