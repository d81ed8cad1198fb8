"""Custom images through the official SDK against the emulator: CreateImage from an instance
(with its data disks) and from a snapshot, launching from them, CopyImage, sharing,
ImportImage/ExportImage, DeleteImage and the errors. Real files are in tests/vm."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em

from ..conftest import LiveServer
from .test_disks_api import disk_of, wait_snapshot
from .test_instances_api import Lab, error_of
from .test_vpc_api import REGION

OTHER_REGION = "cn-shanghai"


@pytest.fixture
def lab(live: LiveServer, fresh_key: tuple[str, str]) -> Lab:
    return Lab(live, fresh_key, "10.62.0.0/16")


def image(lab: Lab, image_id: str, region: str = REGION) -> Any:
    found = lab.ecs.describe_images(
        em.DescribeImagesRequest(
            region_id=region, image_id=image_id, status="Creating,Available,CreateFailed"
        )
    ).body.images.image
    return found[0] if found else None


def wait_image(lab: Lab, image_id: str, region: str = REGION, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    current = image(lab, image_id, region)
    while current is not None and current.status == "Creating" and time.monotonic() < deadline:
        time.sleep(0.05)
        current = image(lab, image_id, region)
    return current


def test_image_from_instance_carries_data_disks_and_launches(lab: Lab) -> None:
    data = em.RunInstancesRequestDataDisk(size=30, category="cloud_essd")
    [source] = lab.run(data_disk=[data])
    assert lab.wait(source, "Running") == "Running"
    image_id = lab.ecs.create_image(
        em.CreateImageRequest(region_id=REGION, instance_id=source, image_name="golden")
    ).body.image_id
    made = wait_image(lab, image_id)
    assert (made.status, made.image_owner_alias, made.image_name) == ("Available", "self", "golden")
    mappings = made.disk_device_mappings.disk_device_mapping
    assert [m.type for m in mappings] == ["system", "data"]
    assert all(m.snapshot_id.startswith("s-") for m in mappings)
    snapshots = lab.ecs.describe_snapshots(em.DescribeSnapshotsRequest(region_id=REGION, usage="image")).body
    assert {s.snapshot_id for s in snapshots.snapshots.snapshot} == {m.snapshot_id for m in mappings}
    used = error_of(
        lambda: lab.ecs.delete_snapshot(em.DeleteSnapshotRequest(snapshot_id=mappings[0].snapshot_id))
    )
    assert used.code == "SnapshotCreatedImage"

    # an instance from the image gets the data disk too, made from the image's data snapshot
    [copy] = lab.run(image_id=image_id)
    assert lab.wait(copy, "Running") == "Running"
    disks = lab.ecs.describe_disks(
        em.DescribeDisksRequest(region_id=REGION, instance_id=copy)
    ).body.disks.disk
    by_type = {d.type: d for d in disks}
    assert by_type["system"].image_id == image_id
    assert (by_type["data"].source_snapshot_id, by_type["data"].size) == (mappings[1].snapshot_id, 30)

    # a name is unique per region; an image in use needs Force to go
    taken = error_of(
        lambda: lab.ecs.create_image(
            em.CreateImageRequest(region_id=REGION, instance_id=source, image_name="golden")
        )
    )
    assert taken.code == "InvalidImageName.Duplicated"
    in_use = error_of(
        lambda: lab.ecs.delete_image(em.DeleteImageRequest(region_id=REGION, image_id=image_id))
    )
    assert in_use.code == "InvalidImageId.InUse"
    lab.ecs.delete_image(em.DeleteImageRequest(region_id=REGION, image_id=image_id, force=True))
    assert image(lab, image_id) is None
    lab.ecs.delete_snapshot(
        em.DeleteSnapshotRequest(snapshot_id=mappings[0].snapshot_id)
    )  # free once the image is gone


def test_image_from_snapshot_copy_and_modify(lab: Lab) -> None:
    [source] = lab.run()
    assert lab.wait(source, "Running") == "Running"
    system = lab.ecs.describe_disks(
        em.DescribeDisksRequest(region_id=REGION, instance_id=source, disk_type="system")
    ).body.disks.disk[0]
    snapshot_id = lab.ecs.create_snapshot(em.CreateSnapshotRequest(disk_id=system.disk_id)).body.snapshot_id
    assert wait_snapshot(lab, snapshot_id).status == "accomplished"
    image_id = lab.ecs.create_image(
        em.CreateImageRequest(region_id=REGION, snapshot_id=snapshot_id)
    ).body.image_id
    assert wait_image(lab, image_id).status == "Available"

    lab.ecs.modify_image_attribute(
        em.ModifyImageAttributeRequest(
            region_id=REGION, image_id=image_id, image_name="renamed", description="d"
        )
    )
    assert (image(lab, image_id).image_name, image(lab, image_id).description) == ("renamed", "d")
    copied = lab.ecs.copy_image(
        em.CopyImageRequest(region_id=REGION, image_id=image_id, destination_region_id=OTHER_REGION)
    ).body.image_id
    there = image(lab, copied, OTHER_REGION)
    assert (there.status, there.image_name) == ("Available", "renamed")
    assert image(lab, copied) is None  # not in the source region

    data = lab.ecs.create_disk(
        em.CreateDiskRequest(region_id=REGION, zone_id=system.zone_id, size=20, disk_category="cloud_essd")
    ).body.disk_id
    deadline = time.monotonic() + 10
    while disk_of(lab, data).status != "Available" and time.monotonic() < deadline:
        time.sleep(0.05)
    data_snapshot = lab.ecs.create_snapshot(em.CreateSnapshotRequest(disk_id=data)).body.snapshot_id
    assert wait_snapshot(lab, data_snapshot).status == "accomplished"
    not_system = error_of(
        lambda: lab.ecs.create_image(em.CreateImageRequest(region_id=REGION, snapshot_id=data_snapshot))
    )
    assert not_system.code == "InvalidParameter.SnapshotId"
    missing = error_of(lambda: lab.ecs.create_image(em.CreateImageRequest(region_id=REGION)))
    assert missing.code == "MissingParameter"


def test_share_image_with_another_account(live: LiveServer, lab: Lab) -> None:
    [source] = lab.run()
    assert lab.wait(source, "Running") == "Running"
    image_id = lab.ecs.create_image(em.CreateImageRequest(region_id=REGION, instance_id=source)).body.image_id
    assert wait_image(lab, image_id).status == "Available"
    other_key = live.create_account(f"share-{time.monotonic_ns()}")
    other = Lab(live, other_key, "10.63.0.0/16")
    name = next(n for n, k in live.extra_accounts.items() if k == other_key)
    listing = live.nubes("admin", "account", "list", *live.admin_store_args()).stdout
    other_uid = next(re.findall(r"\b\d{16}\b", line)[0] for line in listing.splitlines() if name in line)
    assert image(other, image_id) is None
    unknown = error_of(
        lambda: lab.ecs.modify_image_share_permission(
            em.ModifyImageSharePermissionRequest(
                region_id=REGION, image_id=image_id, add_account=["1234567890123456"]
            )
        )
    )
    assert unknown.code == "InvalidAccount.NotFound"
    lab.ecs.modify_image_share_permission(
        em.ModifyImageSharePermissionRequest(region_id=REGION, image_id=image_id, add_account=[other_uid])
    )
    shares = lab.ecs.describe_image_share_permission(
        em.DescribeImageSharePermissionRequest(region_id=REGION, image_id=image_id)
    ).body
    assert [a.aliyun_id for a in shares.accounts.account] == [other_uid]
    seen = image(other, image_id)
    assert seen is not None and seen.image_owner_alias == "others"
    [launched] = other.run(image_id=image_id)
    assert other.wait(launched, "Running") == "Running"
    # the other account cannot change or delete it
    foreign = error_of(
        lambda: other.ecs.modify_image_attribute(
            em.ModifyImageAttributeRequest(region_id=REGION, image_id=image_id, image_name="mine")
        )
    )
    assert foreign.code == "InvalidImageId.NotFound"
    lab.ecs.modify_image_share_permission(
        em.ModifyImageSharePermissionRequest(region_id=REGION, image_id=image_id, remove_account=[other_uid])
    )
    assert image(other, image_id) is None


def test_import_and_export(live: LiveServer, lab: Lab, tmp_path: Path) -> None:
    bucket = live.data_dir / "oss" / "imports"
    bucket.mkdir(parents=True, exist_ok=True)
    source = bucket / "disk.raw"
    source.write_bytes(b"\0" * (1 << 20))
    image_id = lab.ecs.import_image(
        em.ImportImageRequest(
            region_id=REGION,
            image_name="imported",
            disk_device_mapping=[em.ImportImageRequestDiskDeviceMapping(ossobject=str(source), format="RAW")],
        )
    ).body.image_id
    imported = wait_image(lab, image_id)
    assert imported.status == "Available"
    assert imported.disk_device_mappings.disk_device_mapping[0].snapshot_id.startswith("s-")
    task = lab.ecs.export_image(
        em.ExportImageRequest(region_id=REGION, image_id=image_id, ossbucket="exports", image_format="qcow2")
    ).body.task_id
    assert task
    not_loopback = error_of(
        lambda: lab.ecs.import_image(
            em.ImportImageRequest(
                region_id=REGION,
                disk_device_mapping=[
                    em.ImportImageRequestDiskDeviceMapping(
                        ossobject="http://198.51.100.7/disk.qcow2", format="qcow2"
                    )
                ],
            )
        )
    )
    assert not_loopback.code == "InvalidOSSObject.NotLoopback"
    absent = error_of(
        lambda: lab.ecs.import_image(
            em.ImportImageRequest(
                region_id=REGION,
                disk_device_mapping=[
                    em.ImportImageRequestDiskDeviceMapping(
                        ossobject=str(bucket / "nope.qcow2"), format="qcow2"
                    )
                ],
            )
        )
    )
    assert absent.code == "InvalidOSSObject.NotFound"
    # the API runs as root: only the buckets' directory is readable and writable through it
    outside = tmp_path / "secret.raw"
    outside.write_bytes(b"\0" * 512)
    for path in (str(outside), str(bucket / ".." / ".." / ".." / outside.name), "/etc/shadow"):
        forbidden = error_of(
            lambda path=path: lab.ecs.import_image(
                em.ImportImageRequest(
                    region_id=REGION,
                    disk_device_mapping=[
                        em.ImportImageRequestDiskDeviceMapping(ossobject=path, format="raw")
                    ],
                )
            )
        )
        assert forbidden.code == "InvalidOSSObject.Forbidden"
    by_bucket = lab.ecs.import_image(
        em.ImportImageRequest(
            region_id=REGION,
            disk_device_mapping=[
                em.ImportImageRequestDiskDeviceMapping(
                    ossbucket="imports", ossobject="disk.raw", format="raw"
                )
            ],
        )
    ).body.image_id
    assert wait_image(lab, by_bucket).status == "Available"
    for bucket_name, key in (("/etc", "shadow"), ("imports", "../../x"), ("Bad_Bucket", "x")):
        bad = error_of(
            lambda b=bucket_name, k=key: lab.ecs.export_image(
                em.ExportImageRequest(
                    region_id=REGION, image_id=image_id, ossbucket=b, ossprefix=k, image_format="raw"
                )
            )
        )
        assert bad.code in ("InvalidOSSBucket.Malformed", "InvalidOSSObject.Malformed")
    bad_format = error_of(
        lambda: lab.ecs.import_image(
            em.ImportImageRequest(
                region_id=REGION,
                disk_device_mapping=[
                    em.ImportImageRequestDiskDeviceMapping(ossobject=str(source), format="vmdk")
                ],
            )
        )
    )
    assert bad_format.code == "InvalidParameter.Format"
