"""ECS images: DescribeImages, DescribeImageSupportInstanceTypes."""

from __future__ import annotations

import json
from typing import Any

from nubes import errors
from nubes.actions.common import (
    CLIENT_TOKEN,
    CREATION_FILTER,
    DRY_RUN,
    REGION_ID,
    RESOURCE_GROUP_ID,
    TAGS,
    creation_window,
    tag_pairs,
    tag_set,
    tagged,
)
from nubes.actions.paging import number_paged, page_params
from nubes.api.context import ActionContext
from nubes.api.params import Boolean, Integer, String, StringList, StructList
from nubes.api.registry import ActionTable
from nubes.clock import iso8601_seconds
from nubes.domain.common import check_description, check_name
from nubes.domain.images import STATUSES, launchable, owner_alias_for
from nubes.store.models import Image

actions = ActionTable("ecs")


# A mapping's import source: an imported image's mapping names its snapshot, not the bucket it was
# read from.
_NOT_IMPORTED = {"ImportOSSBucket": "", "ImportOSSObject": ""}


def _mappings(image: Image) -> list[dict[str, Any]]:
    system = {
        "Device": "/dev/xvda",
        "Size": str(image.size_gib),
        "SnapshotId": image.snapshot_id,
        "Type": "system",
        "Format": "qcow2",
        "Progress": f"{image.progress}%",
        "RemainTime": 0,
        "Encrypted": image.encrypted,
        **_NOT_IMPORTED,
    }
    data = [
        {
            "Device": str(m.get("Device", "")),
            "Size": str(m.get("Size", "")),
            "SnapshotId": str(m["SnapshotId"]),
            "Type": "data",
            "Format": "qcow2",
            "Progress": f"{image.progress}%",
            "RemainTime": 0,
            "Encrypted": bool(m.get("Encrypted", False)),
            **_NOT_IMPORTED,
        }
        for m in json.loads(image.disk_mappings or "[]")
    ]
    return [system, *data]


def render_image(
    image: Image,
    account_id: int = 0,
    tags: list[tuple[str, str]] | None = None,
    owner_id: int = 0,
    default_group: str = "",
) -> dict[str, Any]:
    """An image as the caller sees it: the resource group of their own images only (a system
    image, or one shared with them, is in none of theirs)."""
    own = image.account_id is not None and image.account_id == account_id
    return {
        "ImageId": image.id,
        "ImageName": image.name,
        "ImageFamily": image.family,
        "ImageVersion": "",
        "Description": image.description,
        "Size": image.size_gib,
        "ImageOwnerAlias": owner_alias_for(image, account_id),
        "ImageOwnerId": owner_id,  # the owner's account ID; 0 for nubes' system images
        "IsSupportIoOptimized": True,
        "IsSupportCloudinit": True,
        "OSName": image.os_name,
        "OSNameEn": image.os_name_en,
        "OSType": image.os_type,
        "Platform": image.platform,
        "Architecture": image.architecture,
        "BootMode": image.boot_mode,
        "Status": image.status,
        "Progress": f"{image.progress}%",
        "Usage": image.usage,
        "Usable": image.status == "Available",  # what Terraform's alicloud_image waits on
        "CreationTime": iso8601_seconds(image.created_at),
        "IsSubscribed": False,
        "IsCopied": False,
        "IsSelfShared": "",
        "IsPublic": image.owner_alias == "system",
        "ProductCode": "",
        "ResourceGroupId": (image.resource_group_id or default_group) if own else "",
        "LoginAsNonRootSupported": False,
        "Features": {
            "NvmeSupport": "unsupported",
            "ImdsSupport": "v2",  # the metadata service takes session tokens (HttpTokens=required)
            "CpuOnlineUpgrade": "unsupported",
            "CpuOnlineDowngrade": "unsupported",
            "MemoryOnlineUpgrade": "unsupported",
            "MemoryOnlineDowngrade": "unsupported",
        },
        "SecureBootOptions": {"SecureBootSupport": "unsupported"},
        "DetectionOptions": {"Status": "", "Items": {"Item": []}},  # nubes runs no image check
        "LicenseType": "",
        "SupplierName": "",  # Alibaba Cloud Marketplace images only
        "DiskDeviceMappings": {"DiskDeviceMapping": _mappings(image)},
        "Tags": tag_set(tags or []),
    }


@actions.define(
    "DescribeImages",
    [
        REGION_ID,
        String("ImageId", max_length=4096),
        String("ImageName", max_length=128),
        String("ImageFamily", max_length=128),
        String("ImageOwnerAlias", max_length=64),
        Integer("ImageOwnerId", minimum=0),
        String("OSType", choices=("linux", "windows")),
        String("Architecture", choices=("i386", "x86_64", "arm64")),
        String("Status", max_length=128, default="Available"),
        String("Usage", choices=("instance", "none")),
        String("InstanceType", max_length=64),
        String("SnapshotId", max_length=64),
        Boolean("IsSupportIoOptimized"),
        Boolean("IsSupportCloudinit"),
        Boolean("IsPublic"),
        # Expired images are subscription images that ran out; nubes has none, so both values
        # answer the same images.
        Boolean("ShowExpired", default=False),
        # The images usable in the scenario: to create instances, or to replace a system disk
        # (the same images in nubes: those an instance can be launched from now).
        String("ActionType", choices=("CreateEcs", "ChangeOS")),
        String("ResourceGroupId", max_length=64),
        CREATION_FILTER,
        TAGS,
        DRY_RUN,
        *page_params(max_size=100),
    ],
)
def describe_images(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Images the caller can use in a region: nubes' system images and their own (Tag.N: those
    carrying every tag)."""
    images = ctx.services.images.visible(ctx.scope(p["RegionId"]), p["ImageOwnerAlias"], p["ImageOwnerId"])
    statuses = {s.strip() for s in p["Status"].split(",") if s.strip()}
    if "ALL" in {status.upper() for status in statuses}:  # as ECS takes it, and Terraform sends it
        statuses = set(STATUSES)
    unknown = statuses - set(STATUSES)
    if unknown:
        raise errors.invalid_parameter("Status", f"Valid values: {', '.join(STATUSES)}.")
    images = [i for i in images if i.status in statuses]
    if p["ImageId"]:
        wanted = {i.strip() for i in p["ImageId"].split(",")}
        images = [i for i in images if i.id in wanted]
    checks = {
        "ImageName": "name",
        "ImageFamily": "family",
        "OSType": "os_type",
        "Architecture": "architecture",
        "Usage": "usage",
    }
    for param, attribute in checks.items():
        if p[param]:
            images = [i for i in images if getattr(i, attribute) == p[param]]
    if p["InstanceType"] and ctx.services.catalog.instance_type(p["InstanceType"]) is None:
        images = []
    if p["SnapshotId"]:
        images = [i for i in images if i.snapshot_id == p["SnapshotId"]]
    if p["IsPublic"] is not None:
        images = [i for i in images if (i.owner_alias == "system") == p["IsPublic"]]
    # Every nubes image supports I/O optimized instances and cloud-init, as rendered: a filter
    # asking for anything else matches none.
    if p["IsSupportIoOptimized"] is False or p["IsSupportCloudinit"] is False:
        images = []
    default_group = ctx.services.resource_groups.default_id(ctx.principal.account_id)
    if p["ResourceGroupId"]:  # the caller's own images in the group ("": the default group)
        images = [
            i
            for i in images
            if i.account_id == ctx.principal.account_id
            and (i.resource_group_id or default_group) == p["ResourceGroupId"]
        ]
    if p["ActionType"]:
        images = [i for i in images if launchable(i)]
    window = creation_window(p)
    images = [i for i in images if window.holds(i.created_at)]
    scope = ctx.scope(p["RegionId"])
    images = tagged(ctx, scope, "image", images, lambda i: i.id, p)
    tags = ctx.services.tags.of(scope, "image", (i.id for i in images))
    owners = ctx.services.images.owner_ids(images)
    return {
        "RegionId": p["RegionId"],
        **number_paged(
            images,
            p,
            "Images",
            "Image",
            lambda i: render_image(
                i, ctx.principal.account_id, tags.get(i.id), owners.get(i.account_id or 0, 0), default_group
            ),
        ),
    }


@actions.define(
    "DescribeImageSupportInstanceTypes",
    [
        REGION_ID,
        String("ImageId", max_length=128),
        StructList(
            "Filter", [String("Key", choices=("imageId",)), String("Value", max_length=128)], max_items=10
        ),
    ],
)
def describe_image_support_instance_types(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The instance types an image can launch on: every type of the region for nubes' images."""
    scope = ctx.scope(p["RegionId"])
    image_id = p["ImageId"] or next(
        (f.get("Value") for f in p["Filter"] or [] if f.get("Key") == "imageId"), None
    )
    if image_id:  # a system image being built launches (its instances wait), so it answers too
        ctx.services.images.usable(scope, image_id, None, building_ok=True)
    region = ctx.services.catalog.region(scope.region_id)
    types = ctx.services.catalog.types_in_region(region) if region else []
    return {
        "RegionId": scope.region_id,
        "ImageId": image_id or "",
        "InstanceTypes": {
            "InstanceType": [
                {
                    "InstanceTypeId": t.type_id,
                    "InstanceTypeFamily": t.family,
                    "CpuCoreCount": t.cpu,
                    "MemorySize": t.memory_gib,
                }
                for t in types
            ]
        },
    }


IMAGE_ID = String("ImageId", required=True, max_length=128)


# nubes runs x86_64 guests that boot with BIOS.
ARCHITECTURE = String(
    "Architecture",
    choices=("i386", "x86_64", "arm64"),
    unsupported_values=("i386", "arm64"),
    unsupported_because="nubes runs x86_64 guests only",
)
BOOT_MODE = String(
    "BootMode",
    choices=("BIOS", "UEFI", "UEFI-Preferred"),
    unsupported_values=("UEFI", "UEFI-Preferred"),
    unsupported_because="nubes guests boot with BIOS",
)


@actions.define(
    "CreateImage",
    [
        REGION_ID,
        String("InstanceId", max_length=64),
        String("SnapshotId", max_length=64),
        String("ImageName", max_length=128),
        String("Description", max_length=256),
        String("ImageFamily", max_length=128),
        ARCHITECTURE,
        BOOT_MODE,
        StructList(
            "DiskDeviceMapping",
            [
                String("SnapshotId", max_length=64),
                String(
                    "DiskType",
                    choices=("system", "data"),
                    unsupported_values=("data",),
                    unsupported_because="custom images hold a system disk only",
                ),
            ],
            max_items=17,
        ),
        RESOURCE_GROUP_ID,
        TAGS,
        CLIENT_TOKEN,
        DRY_RUN,
    ],
    idempotent=True,
)
def create_image(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """A custom image of an instance (a snapshot of each of its disks) or of a system disk snapshot."""
    scope = ctx.scope(p["RegionId"])
    snapshot_id = p["SnapshotId"] or next(
        (
            m.get("SnapshotId")
            for m in p["DiskDeviceMapping"] or []
            if m.get("DiskType", "system") == "system" and m.get("SnapshotId")
        ),
        None,
    )
    tags = tag_pairs(p)
    image_id = ctx.services.custom_images.create(
        scope,
        p["InstanceId"],
        snapshot_id,
        check_name("ImageName", p["ImageName"]),
        check_description(p["Description"]),
        p["ImageFamily"] or "",
        tags,
        p["ClientToken"] or "",
        p["ResourceGroupId"],
    )
    return {"ImageId": image_id}


@actions.define("DeleteImage", [REGION_ID, IMAGE_ID, Boolean("Force", default=False), DRY_RUN])
def delete_image(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Delete a custom image (its snapshots stay; instances using it need Force)."""
    ctx.scope(p["RegionId"])
    ctx.services.custom_images.delete(ctx.principal.account_id, p["ImageId"], p["Force"])
    return {}


@actions.define(
    "ModifyImageAttribute",
    [
        REGION_ID,
        IMAGE_ID,
        String("ImageName", max_length=128),
        String("Description", max_length=256),
        String("ImageFamily", max_length=128),
        String("Status", choices=("Available", "Deprecated")),
        BOOT_MODE,  # BIOS, the only one: an image boots as it did
        DRY_RUN,
    ],
)
def modify_image_attribute(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Rename, describe, re-family or deprecate a custom image."""
    ctx.scope(p["RegionId"])
    ctx.services.custom_images.modify(
        ctx.principal.account_id,
        p["ImageId"],
        check_name("ImageName", p["ImageName"]) if p["ImageName"] is not None else None,
        check_description(p["Description"]) if p["Description"] is not None else None,
        p["ImageFamily"],
        p["Status"],
    )
    return {}


@actions.define(
    "ModifyImageSharePermission",
    [
        REGION_ID,
        IMAGE_ID,
        StringList("AddAccount", max_items=10, item_max_length=32),
        StringList("RemoveAccount", max_items=10, item_max_length=32),
        Boolean("IsPublic"),
        DRY_RUN,
    ],
)
def modify_image_share_permission(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Share a custom image with other accounts (by account ID), or stop sharing it."""
    ctx.scope(p["RegionId"])
    if p["IsPublic"]:
        raise errors.invalid_parameter_is_public()
    ctx.services.custom_images.share(
        ctx.principal.account_id, p["ImageId"], list(p["AddAccount"] or []), list(p["RemoveAccount"] or [])
    )
    return {}


@actions.define("DescribeImageSharePermission", [REGION_ID, IMAGE_ID, *page_params(max_size=100)])
def describe_image_share_permission(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The accounts a custom image is shared with."""
    ctx.scope(p["RegionId"])
    uids = ctx.services.custom_images.shared_with(ctx.principal.account_id, p["ImageId"])
    return {
        "RegionId": p["RegionId"],
        "ImageId": p["ImageId"],
        "ShareGroups": {"ShareGroup": []},
        **number_paged(uids, p, "Accounts", "Account", lambda uid: {"AliyunId": uid, "SharedTime": ""}),
    }


@actions.define(
    "ImportImage",
    [
        REGION_ID,
        String("ImageName", max_length=128),
        String("Description", max_length=256),
        ARCHITECTURE,
        String(
            "OSType",
            choices=("linux", "windows"),
            unsupported_values=("windows",),
            unsupported_because="imported images boot with nubes' Linux kernel",
        ),
        BOOT_MODE,
        DRY_RUN,
        StructList(
            "DiskDeviceMapping",
            [
                String("Format", max_length=16),
                String("OSSBucket", max_length=1024),
                String("OSSObject", max_length=2048),
                Integer("DiskImageSize", minimum=1),
            ],
            max_items=17,
        ),
        RESOURCE_GROUP_ID,
        TAGS,
        CLIENT_TOKEN,
    ],
    idempotent=True,
)
def import_image(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Import a qcow2, raw or VHD system disk image: from a bucket (the host directory DATA_DIR/oss/<bucket>), a host
    path inside it, or an HTTP URL on 127.0.0.1. It boots with nubes' Debian kernel."""
    scope = ctx.scope(p["RegionId"])
    if p["DryRun"]:
        raise errors.dry_run_operation()
    mappings = p["DiskDeviceMapping"] or []
    if not mappings or not mappings[0].get("OSSObject"):
        raise errors.missing_parameter(message="DiskDeviceMapping.1.OSSObject is mandatory for this action.")
    if len(mappings) > 1:
        raise errors.invalid_parameter_disk_device_mapping()
    mapping = mappings[0]
    obj, bucket = str(mapping["OSSObject"]), str(mapping.get("OSSBucket") or "")
    if obj.startswith(("http://", "https://")) or (not bucket and obj.startswith("/")):
        source = obj
    else:
        source = str(ctx.services.custom_images.bucket_path(bucket, obj))
    boot = ctx.services.images.usable(scope, None, "nubes:debian_12_x64")
    image_id, task_id = ctx.services.custom_images.import_image(
        scope,
        source,
        str(mapping.get("Format") or "qcow2"),
        check_name("ImageName", p["ImageName"]),
        check_description(p["Description"]),
        boot,
        mapping.get("DiskImageSize"),
        tag_pairs(p),
        p["ResourceGroupId"],
    )
    return {"ImageId": image_id, "RegionId": scope.region_id, "TaskId": task_id}


@actions.define(
    "ExportImage",
    [
        REGION_ID,
        IMAGE_ID,
        String("OSSBucket", required=True, max_length=1024),
        String("OSSPrefix", max_length=256),
        String("ImageFormat", max_length=16),
        DRY_RUN,
    ],
)
def export_image(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Write a custom image's system disk to <bucket>/<prefix><ImageId>_system.<format> (raw by default)."""
    scope = ctx.scope(p["RegionId"])
    if p["DryRun"]:
        raise errors.dry_run_operation()
    task_id = ctx.services.custom_images.export_image(
        scope,
        p["ImageId"],
        p["OSSBucket"],
        p["OSSPrefix"] or "",
        p["ImageFormat"] or "raw",
    )
    return {"RegionId": scope.region_id, "TaskId": task_id}


@actions.define(
    "CopyImage",
    [
        REGION_ID,
        IMAGE_ID,
        String("DestinationRegionId", max_length=64),
        String("DestinationImageName", max_length=128),
        String("DestinationDescription", max_length=256),
        Boolean(
            "Encrypted",
            default=False,
            unsupported_values=(True,),
            unsupported_because="a copy shares its source's layers: it is encrypted exactly when its source is",
        ),
        RESOURCE_GROUP_ID,
        TAGS,
        DRY_RUN,
        CLIENT_TOKEN,
    ],
    idempotent=True,
)
def copy_image(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Copy a custom image to another region (or the same one): constant time, layers are shared."""
    scope = ctx.scope(p["RegionId"])
    destination = ctx.scope(p["DestinationRegionId"] or p["RegionId"])
    if p["DryRun"]:
        raise errors.dry_run_operation()
    image_id = ctx.services.custom_images.copy_image(
        scope.account_id,
        p["ImageId"],
        destination.region_id,
        check_name("ImageName", p["DestinationImageName"]),
        check_description(p["DestinationDescription"]),
        tag_pairs(p),
        p["ResourceGroupId"],
    )
    return {"ImageId": image_id}
