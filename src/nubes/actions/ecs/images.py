"""ECS images: DescribeImages, DescribeImageSupportInstanceTypes."""

from __future__ import annotations

from typing import Any

from nubes.actions.common import DRY_RUN, REGION_ID
from nubes.api.context import ActionContext
from nubes.api.params import Boolean, Integer, String, StructList
from nubes.api.registry import ActionTable
from nubes.clock import iso8601_seconds
from nubes.domain.images import STATUSES
from nubes.store.models import Image

actions = ActionTable("ecs")


def render_image(image: Image) -> dict[str, Any]:
    return {
        "ImageId": image.id,
        "ImageName": image.name,
        "ImageFamily": image.family,
        "ImageVersion": "",
        "Description": image.description,
        "Size": image.size_gib,
        "ImageOwnerAlias": image.owner_alias,
        "ImageOwnerId": 0,
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
        "CreationTime": iso8601_seconds(image.created_at),
        "IsSubscribed": False,
        "IsCopied": False,
        "IsSelfShared": "",
        "IsPublic": image.owner_alias == "system",
        "ProductCode": "",
        "ResourceGroupId": "",
        "LoginAsNonRootSupported": False,
        "Features": {"NvmeSupport": "unsupported"},
        "DiskDeviceMappings": {
            "DiskDeviceMapping": [
                {"Device": "/dev/xvda", "Size": str(image.size_gib), "SnapshotId": "", "Type": "system",
                 "Format": "qcow2", "Progress": "100%", "RemainTime": 0}
            ]
        },
        "Tags": {"Tag": []},
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
        String("ActionType", max_length=32),
        Boolean("IsSupportIoOptimized"),
        Boolean("IsSupportCloudinit"),
        Boolean("IsPublic"),
        Boolean("ShowExpired"),
        String("ResourceGroupId", max_length=64),
        StructList("Filter", [String("Key", max_length=64), String("Value", max_length=128)], max_items=10),
        DRY_RUN,
        Integer("PageNumber", minimum=1, default=1),
        Integer("PageSize", minimum=1, maximum=100, default=10),
    ],
)
def describe_images(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Images the caller can use in a region: nubes' system images and their own."""
    images = ctx.services.images.visible(ctx.scope(p["RegionId"]), p["ImageOwnerAlias"])
    statuses = {s.strip() for s in p["Status"].split(",") if s.strip()}
    unknown = statuses - set(STATUSES)
    if unknown:
        from nubes.api.errors import invalid_parameter

        raise invalid_parameter("Status", f"Valid values: {', '.join(STATUSES)}.")
    images = [i for i in images if i.status in statuses]
    if p["ImageId"]:
        wanted = {i.strip() for i in p["ImageId"].split(",")}
        images = [i for i in images if i.id in wanted]
    checks = {"ImageName": "name", "ImageFamily": "family", "OSType": "os_type", "Architecture": "architecture",
              "Usage": "usage"}
    for param, attribute in checks.items():
        if p[param]:
            images = [i for i in images if getattr(i, attribute) == p[param]]
    if p["InstanceType"] and ctx.services.catalog.instance_type(p["InstanceType"]) is None:
        images = []
    if p["SnapshotId"] or p["IsPublic"] is False:
        images = [i for i in images if i.owner_alias != "system"] if p["IsPublic"] is False else []
    start = (p["PageNumber"] - 1) * p["PageSize"]
    return {
        "RegionId": p["RegionId"],
        "TotalCount": len(images),
        "PageNumber": p["PageNumber"],
        "PageSize": p["PageSize"],
        "Images": {"Image": [render_image(i) for i in images[start : start + p["PageSize"]]]},
    }


@actions.define(
    "DescribeImageSupportInstanceTypes",
    [REGION_ID, String("ImageId", max_length=128), String("ActionType", max_length=32),
     StructList("Filter", [String("Key", max_length=64), String("Value", max_length=128)], max_items=10)],
)
def describe_image_support_instance_types(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The instance types an image can launch on: every type of the region for nubes' images."""
    scope = ctx.scope(p["RegionId"])
    image_id = p["ImageId"] or next((f.get("Value") for f in p["Filter"] or [] if f.get("Key") == "imageId"), None)
    if image_id:
        ctx.services.images.usable(scope, image_id, None)
    region = ctx.services.catalog.region(scope.region_id)
    types = ctx.services.catalog.types_in_region(region) if region else []
    return {
        "RegionId": scope.region_id,
        "ImageId": image_id or "",
        "InstanceTypes": {
            "InstanceType": [
                {"InstanceTypeId": t.type_id, "InstanceTypeFamily": t.family, "CpuCoreCount": t.cpu,
                 "MemorySize": t.memory_gib}
                for t in types
            ]
        },
    }
