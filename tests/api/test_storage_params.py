"""Every declared parameter of the storage actions is honoured, through the official SDK: the
Describe filters filter (creation times, KMS keys, resource groups, charge types, ...), the
settings take effect, and what nubes does not do is refused by name with nothing changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em

from ..conftest import LiveServer
from .test_custom_images_api import OTHER_REGION, image, wait_image
from .test_disks_api import disk_of, wait_disk, wait_snapshot
from .test_instances_api import Lab, error_of
from .test_vpc_api import REGION


@pytest.fixture
def lab(live: LiveServer, fresh_key: tuple[str, str]) -> Lab:
    return Lab(live, fresh_key, "10.63.0.0/16")


def zone_of(lab: Lab) -> str:
    return str(lab.ecs.describe_zones(em.DescribeZonesRequest(region_id=REGION)).body.zones.zone[0].zone_id)


def utc(delta: timedelta = timedelta()) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%MZ")


def new_disk(lab: Lab, category: str = "cloud_essd", size: int = 40) -> str:
    disk_id = str(
        lab.ecs.create_disk(
            em.CreateDiskRequest(region_id=REGION, zone_id=zone_of(lab), size=size, disk_category=category)
        ).body.disk_id
    )
    assert wait_disk(lab, disk_id, "Available") == "Available"
    return disk_id


def refused(call: Any, name: str) -> None:
    error = error_of(call)
    assert error.code == "InvalidParameter.NotSupported", (name, error.code, error.message)
    assert f'"{name}"' in error.message, error.message


def disk_ids(lab: Lab, **fields: Any) -> set[str]:
    request = em.DescribeDisksRequest(region_id=REGION, page_size=100)
    for name, value in fields.items():
        setattr(request, name, value)
    return {d.disk_id for d in lab.ecs.describe_disks(request).body.disks.disk}


def test_describe_disks_filters_filter(lab: Lab) -> None:
    first, second = new_disk(lab), new_disk(lab, "cloud_auto")
    both = {first, second}
    assert disk_ids(lab) == both
    kept = {
        "category": "all",
        "disk_charge_type": "PostPaid",
        "multi_attach": "Disabled",
        "enable_shared": False,
        "encrypted": False,
        "additional_attributes": ["IOPS"],
        "filter": [
            em.DescribeDisksRequestFilter(key="CreationStartTime", value=utc(-timedelta(hours=1))),
            em.DescribeDisksRequestFilter(key="CreationEndTime", value=utc(timedelta(hours=1))),
        ],
    }
    for name, value in kept.items():
        assert disk_ids(lab, **{name: value}) == both, name
    assert disk_ids(lab, category="cloud_auto") == {second}
    emptied = {
        "disk_charge_type": "PrePaid",
        "multi_attach": "Enabled",
        "enable_shared": True,
        "kmskey_id": "key-1",
        "lock_reason": "financial",
        "resource_group_id": "rg-1",
        "filter": [em.DescribeDisksRequestFilter(key="CreationStartTime", value=utc(timedelta(hours=1)))],
    }
    for name, value in emptied.items():
        assert disk_ids(lab, **{name: value}) == set(), name
    past = [em.DescribeDisksRequestFilter(key="CreationEndTime", value=utc(-timedelta(hours=1)))]
    assert disk_ids(lab, filter=past) == set()
    bad_key = error_of(
        lambda: disk_ids(lab, filter=[em.DescribeDisksRequestFilter(key="ExpiredStartTime", value=utc())])
    )
    assert bad_key.code == "InvalidFilterKey.NotFound"
    bad_time = error_of(
        lambda: disk_ids(
            lab, filter=[em.DescribeDisksRequestFilter(key="CreationEndTime", value="yesterday")]
        )
    )
    assert bad_time.code == "InvalidFilterValue"
    assert disk_of(lab, first).iops > 0


def test_disk_settings_take_effect_or_are_refused(lab: Lab) -> None:
    auto, essd = new_disk(lab, "cloud_auto"), new_disk(lab)
    lab.ecs.modify_disk_attribute(em.ModifyDiskAttributeRequest(disk_id=auto, bursting_enabled=True))
    assert disk_of(lab, auto).bursting_enabled is True
    lab.ecs.modify_disk_attribute(em.ModifyDiskAttributeRequest(disk_id=auto, bursting_enabled=False))
    assert disk_of(lab, auto).bursting_enabled is False
    not_auto = error_of(
        lambda: lab.ecs.modify_disk_attribute(
            em.ModifyDiskAttributeRequest(disk_id=essd, bursting_enabled=True)
        )
    )
    assert not_auto.code.startswith("BurstingEnabledForDiskCategory"), not_auto.code
    assert disk_of(lab, essd).bursting_enabled is False

    iops = error_of(
        lambda: lab.ecs.modify_disk_spec(em.ModifyDiskSpecRequest(disk_id=essd, provisioned_iops=1000))
    )
    assert iops.code.startswith("ProvisionedIopsForDiskCategory"), iops.code
    assert disk_of(lab, essd).provisioned_iops == 0
    lab.ecs.modify_disk_spec(em.ModifyDiskSpecRequest(disk_id=auto, provisioned_iops=1000))
    assert disk_of(lab, auto).provisioned_iops == 1000

    # ResizeDisk's ClientToken: the retry is answered as the first call, the disk grows once.
    for _ in range(2):
        lab.ecs.resize_disk(em.ResizeDiskRequest(disk_id=essd, new_size=50, client_token="grow-once"))
    assert disk_of(lab, essd).size == 50
    mismatch = error_of(
        lambda: lab.ecs.resize_disk(em.ResizeDiskRequest(disk_id=essd, new_size=60, client_token="grow-once"))
    )
    assert mismatch.code == "IdempotentParameterMismatch"
    assert disk_of(lab, essd).size == 50

    refused(
        lambda: lab.ecs.replace_system_disk(
            em.ReplaceSystemDiskRequest(instance_id="i-none", disk_id=essd, image_id=lab.image_id)
        ),
        "DiskId",
    )


def snapshot_ids(lab: Lab, **fields: Any) -> set[str]:
    request = em.DescribeSnapshotsRequest(region_id=REGION, page_size=100)
    for name, value in fields.items():
        setattr(request, name, value)
    return {s.snapshot_id for s in lab.ecs.describe_snapshots(request).body.snapshots.snapshot}


def test_snapshot_parameters(lab: Lab) -> None:
    first, second = new_disk(lab), new_disk(lab)
    refused(
        lambda: lab.ecs.create_snapshot(em.CreateSnapshotRequest(disk_id=first, category="flash")), "Category"
    )
    refused(
        lambda: lab.ecs.create_snapshot(
            em.CreateSnapshotRequest(disk_id=first, instant_access=True, instant_access_retention_days=3)
        ),
        "InstantAccessRetentionDays",
    )
    assert snapshot_ids(lab) == set()
    one = lab.ecs.create_snapshot(
        em.CreateSnapshotRequest(disk_id=first, category="Standard")
    ).body.snapshot_id
    two = lab.ecs.create_snapshot(em.CreateSnapshotRequest(disk_id=second)).body.snapshot_id
    link = wait_snapshot(lab, one).snapshot_link_id
    assert wait_snapshot(lab, two).status == "accomplished"
    both = {one, two}
    window = [
        em.DescribeSnapshotsRequestFilter(key="CreationStartTime", value=utc(-timedelta(hours=1))),
        em.DescribeSnapshotsRequestFilter(key="CreationEndTime", value=utc(timedelta(hours=1))),
    ]
    assert snapshot_ids(lab, category="Standard", filter=window) == both
    assert snapshot_ids(lab, snapshot_link_id=link) == {one}
    future = [em.DescribeSnapshotsRequestFilter(key="CreationStartTime", value=utc(timedelta(hours=1)))]
    for name, value in {
        "category": "flash",
        "kmskey_id": "key-1",
        "resource_group_id": "rg-1",
        "filter": future,
    }.items():
        assert snapshot_ids(lab, **{name: value}) == set(), name

    lab.ecs.modify_snapshot_attribute(em.ModifySnapshotAttributeRequest(snapshot_id=one, retention_days=7))
    assert wait_snapshot(lab, one).retention_days == 7


def test_image_filters_and_tags_at_creation(live: LiveServer, lab: Lab, tmp_path: Path) -> None:
    bucket = live.data_dir / "oss" / "params"
    bucket.mkdir(parents=True, exist_ok=True)
    source = bucket / "disk.raw"
    source.write_bytes(b"\0" * (1 << 20))
    imported = lab.ecs.import_image(
        em.ImportImageRequest(
            region_id=REGION,
            image_name="imported",
            disk_device_mapping=[em.ImportImageRequestDiskDeviceMapping(ossobject=str(source), format="RAW")],
            tag=[em.ImportImageRequestTag(key="team", value="storage")],
        )
    ).body.image_id
    assert wait_image(lab, imported).status == "Available"
    assert [(t.tag_key, t.tag_value) for t in image(lab, imported).tags.tag] == [("team", "storage")]
    copied = lab.ecs.copy_image(
        em.CopyImageRequest(
            region_id=REGION,
            image_id=imported,
            destination_region_id=OTHER_REGION,
            tag=[em.CopyImageRequestTag(key="copy", value="yes")],
        )
    ).body.image_id
    assert [(t.tag_key, t.tag_value) for t in image(lab, copied, OTHER_REGION).tags.tag] == [("copy", "yes")]
    bad_tag = error_of(
        lambda: lab.ecs.copy_image(
            em.CopyImageRequest(
                region_id=REGION, image_id=imported, tag=[em.CopyImageRequestTag(key="aliyun-x", value="v")]
            )
        )
    )
    assert bad_tag.code.startswith("InvalidTagKey"), bad_tag.code

    def images(**fields: Any) -> set[str]:
        request = em.DescribeImagesRequest(region_id=REGION, image_owner_alias="self", page_size=100)
        for name, value in fields.items():
            setattr(request, name, value)
        return {i.image_id for i in lab.ecs.describe_images(request).body.images.image}

    mine = image(lab, imported)
    assert mine.image_owner_id > 0
    assert images(image_owner_id=mine.image_owner_id) == {imported}
    assert images(image_owner_id=mine.image_owner_id + 1) == set()
    window = [
        em.DescribeImagesRequestFilter(key="CreationStartTime", value=utc(-timedelta(hours=1))),
        em.DescribeImagesRequestFilter(key="CreationEndTime", value=utc(timedelta(hours=1))),
    ]
    kept = {
        "filter": window,
        "is_support_cloudinit": True,
        "is_support_io_optimized": True,
        "show_expired": True,
        "action_type": "CreateEcs",
    }
    for name, value in kept.items():
        assert images(**{name: value}) == {imported}, name
    past = [em.DescribeImagesRequestFilter(key="CreationEndTime", value=utc(-timedelta(hours=1)))]
    emptied = {
        "filter": past,
        "is_support_cloudinit": False,
        "is_support_io_optimized": False,
        "resource_group_id": "rg-1",
    }
    for name, value in emptied.items():
        assert images(**{name: value}) == set(), name
    system = lab.ecs.describe_images(
        em.DescribeImagesRequest(region_id=REGION, image_owner_id=0, image_owner_alias="system")
    ).body.images.image
    assert system and all(i.image_owner_id == 0 for i in system)

    refused(
        lambda: lab.ecs.modify_image_attribute(
            em.ModifyImageAttributeRequest(region_id=REGION, image_id=imported, boot_mode="UEFI")
        ),
        "BootMode",
    )
    lab.ecs.modify_image_attribute(
        em.ModifyImageAttributeRequest(region_id=REGION, image_id=imported, boot_mode="BIOS")
    )
    assert image(lab, imported).boot_mode == "BIOS"


def test_tag_category_and_policy_resource_group(lab: Lab) -> None:
    disk_id = new_disk(lab)
    lab.ecs.tag_resources(
        em.TagResourcesRequest(
            region_id=REGION,
            resource_type="disk",
            resource_id=[disk_id],
            tag=[em.TagResourcesRequestTag(key="env", value="test")],
        )
    )

    def tags(category: str) -> list[str]:
        found = lab.ecs.describe_tags(em.DescribeTagsRequest(region_id=REGION, category=category)).body
        return [t.tag_key for t in found.tags.tag]

    assert tags("Custom") == ["env"]
    assert tags("System") == []

    policy = lab.ecs.create_auto_snapshot_policy(
        em.CreateAutoSnapshotPolicyRequest(
            region_id=REGION, time_points='["1"]', repeat_weekdays='["1"]', retention_days=7
        )
    ).body.auto_snapshot_policy_id

    def policies(**fields: Any) -> set[str]:
        request = em.DescribeAutoSnapshotPolicyExRequest(region_id=REGION)
        for name, value in fields.items():
            setattr(request, name, value)
        found = lab.ecs.describe_auto_snapshot_policy_ex(request).body
        return {p.auto_snapshot_policy_id for p in found.auto_snapshot_policies.auto_snapshot_policy}

    assert policies() == {policy}
    assert policies(resource_group_id="rg-1") == set()
