"""ECS cloud disks: CreateDisk, DescribeDisks, Attach/Detach, Resize, ReInit, Reset, Modify*, Delete,
ReplaceSystemDisk."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from nubes import errors
from nubes.actions.common import (
    CLIENT_TOKEN,
    CREATION_FILTER,
    DRY_RUN,
    ENCRYPTED,
    PASSWORD_INHERIT,
    REGION_ID,
    RESOURCE_GROUP_ID,
    SECURITY_ENHANCEMENT_STRATEGY,
    TAGS,
    creation_window,
    tag_filter,
    tag_pairs,
    tag_set,
)
from nubes.actions.paging import page_of, page_params, token_params
from nubes.api.context import ActionContext
from nubes.api.params import Boolean, Integer, String, StringList, Struct
from nubes.api.registry import ActionTable
from nubes.clock import iso8601_seconds
from nubes.domain.common import Scope, check_description, check_name
from nubes.domain.disk_categories import limits
from nubes.domain.disks import DiskSpec
from nubes.domain.regions import require_region, zones_of
from nubes.domain.resource_groups import in_group
from nubes.domain.tags import tags_by_resource, where_tagged
from nubes.store.models import Disk

actions = ActionTable("ecs")

DISK_ID = String("DiskId", required=True, max_length=64)
CATEGORIES = ("cloud", "cloud_efficiency", "cloud_ssd", "cloud_essd", "cloud_auto", "cloud_essd_entry")
LEVELS = ("PL0", "PL1", "PL2", "PL3")
SPEC_CATEGORIES = CATEGORIES[1:]  # ModifyDiskSpec cannot turn a disk into a basic disk (cloud)


def _dry_run(p: dict[str, Any]) -> None:
    if p.get("DryRun"):
        raise errors.dry_run_operation()


@actions.define(
    "CreateDisk",
    [
        REGION_ID,
        String("ZoneId", max_length=64),
        String("DiskName", max_length=128),
        String("Description", max_length=256),
        Integer("Size", minimum=1),
        String("DiskCategory", max_length=32, default="cloud"),
        String("PerformanceLevel", max_length=8),
        String("SnapshotId", max_length=64),
        String("InstanceId", max_length=64),
        ENCRYPTED,
        Integer("ProvisionedIops", minimum=0),
        Boolean("BurstingEnabled"),
        String("MultiAttach", choices=("Disabled", "Enabled")),
        RESOURCE_GROUP_ID,
        TAGS,
        CLIENT_TOKEN,
    ],
    idempotent=True,
)
def create_disk(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Create a pay-as-you-go data disk: empty, or from a snapshot in constant time."""
    scope = ctx.scope(p["RegionId"])
    if p["MultiAttach"] == "Enabled":
        raise errors.invalid_parameter_multi_attach()
    if p["ZoneId"]:
        zones_of(require_region(ctx.services.catalog, p["RegionId"]), p["ZoneId"])
    spec = DiskSpec(
        zone_id=p["ZoneId"],
        category=p["DiskCategory"],
        size_gib=p["Size"],
        performance_level=p["PerformanceLevel"] or "",
        snapshot_id=p["SnapshotId"] or "",
        name=check_name("DiskName", p["DiskName"]),
        description=check_description(p["Description"]),
        instance_id=p["InstanceId"] or "",
        provisioned_iops=p["ProvisionedIops"] or 0,
        bursting_enabled=bool(p["BurstingEnabled"]),
        tags=tag_pairs(p),
        client_token=p["ClientToken"] or "",
        encrypted=p["Encrypted"],
        resource_group_id=p["ResourceGroupId"],
    )
    disk_id = ctx.services.disks.create(scope, spec)
    return {"DiskId": disk_id, "OrderId": ""}


def render_disk(disk: Disk, tags: list[tuple[str, str]], default_group: str) -> dict[str, Any]:
    caps = limits(disk.category, disk.size_gib, disk.performance_level, disk.provisioned_iops)
    attached = iso8601_seconds(disk.attached_at) if disk.attached_at and disk.instance_id else ""
    attachments = (
        [{"InstanceId": disk.instance_id, "Device": disk.device, "AttachedTime": attached}]
        if disk.instance_id
        else []
    )
    return {
        "DiskId": disk.id,
        "DiskName": disk.name,
        "Description": disk.description,
        "RegionId": disk.region_id,
        "ZoneId": disk.zone_id,
        "Type": disk.disk_type,
        "Category": disk.category,
        "PerformanceLevel": disk.performance_level,
        "Size": disk.size_gib,
        "Status": disk.status,
        "InstanceId": disk.instance_id,
        "Device": disk.device,
        "ImageId": disk.image_id,
        "SourceSnapshotId": disk.source_snapshot_id,
        "SourceDiskId": "",  # a disk copied from another disk; nubes copies from snapshots only
        "DataSource": {"Type": "", "Id": ""},
        "ProductCode": "",  # Alibaba Cloud Marketplace images only
        "DeleteWithInstance": disk.delete_with_instance,
        "DeleteAutoSnapshot": disk.delete_auto_snapshot,
        "EnableAutoSnapshot": disk.enable_auto_snapshot,
        "EnableAutomatedSnapshotPolicy": bool(disk.auto_snapshot_policy_id),
        "AutoSnapshotPolicyId": disk.auto_snapshot_policy_id,
        "Portable": disk.disk_type == "data",
        "Encrypted": disk.encrypted,
        "KMSKeyId": "",  # nubes' own key, not a KMS one (docs/architecture.md)
        "DiskChargeType": "PostPaid",
        "CreationTime": iso8601_seconds(disk.created_at),
        "AttachedTime": attached,
        "DetachedTime": iso8601_seconds(disk.detached_at) if disk.detached_at else "",
        "ExpiredTime": "2999-09-08T16:00Z",
        "IOPS": caps.iops,
        "IOPSRead": caps.iops,
        "IOPSWrite": caps.iops,
        "Throughput": caps.throughput_mbps,
        "ThroughputRead": caps.throughput_mbps,
        "ThroughputWrite": caps.throughput_mbps,
        "ProvisionedIops": disk.provisioned_iops,
        "BurstingEnabled": disk.bursting_enabled,
        "MultiAttach": "Disabled",
        "SerialNumber": disk.id.removeprefix("d-")[:20],
        "BdfId": "",
        "StorageSetId": "",
        "StorageSetPartitionNumber": 0,
        "StorageClusterId": "",  # dedicated block storage clusters only
        "Placement": {"ZoneIds": ""},  # the zones of a regional disk; nubes' disks are zonal
        "ResourceGroupId": disk.resource_group_id or default_group,
        "OperationLocks": {"OperationLock": []},
        "Attachments": {"Attachment": attachments},
        "MountInstances": {"MountInstance": attachments},
        "MountInstanceNum": len(attachments),
        "Tags": tag_set(tags),
    }


@actions.define(
    "DescribeDisks",
    [
        REGION_ID,
        String("ZoneId", max_length=64),
        StringList("DiskIds", json_array=True, max_items=100, item_max_length=64),
        String("InstanceId", max_length=64),
        String("DiskType", choices=("all", "system", "data")),
        String("Category", max_length=32),
        String("Status", max_length=16),
        String("SnapshotId", max_length=64),
        String("DiskName", max_length=128),
        Boolean("Portable"),
        Boolean("DeleteWithInstance"),
        Boolean("DeleteAutoSnapshot"),
        Boolean("EnableAutoSnapshot"),
        Boolean("EnableAutomatedSnapshotPolicy"),
        String("AutoSnapshotPolicyId", max_length=64),
        String("PerformanceLevel", max_length=8),
        String("DiskChargeType", choices=("PrePaid", "PostPaid")),
        Boolean("Encrypted"),
        String("KMSKeyId", max_length=128),
        String("MultiAttach", choices=("Disabled", "Enabled", "LegacyShared")),
        Boolean("EnableShared"),
        String("LockReason", max_length=32),
        String("ResourceGroupId", max_length=64),
        # IOPS: the disks' IOPS limits, which nubes answers always.
        StringList("AdditionalAttributes", max_items=10, item_choices=("IOPS",)),
        CREATION_FILTER,
        TAGS,
        DRY_RUN,
        *page_params(max_size=100),
        *token_params(max_results=500),
    ],
)
def describe_disks(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The caller's disks in a region, filtered; both paging styles."""
    _dry_run(p)
    scope = ctx.scope(p["RegionId"])
    query = select(Disk).where(Disk.account_id == scope.account_id, Disk.region_id == scope.region_id)
    exact = {
        "ZoneId": Disk.zone_id,
        "InstanceId": Disk.instance_id,
        "Category": Disk.category,
        "Status": Disk.status,
        "SnapshotId": Disk.source_snapshot_id,
        "DiskName": Disk.name,
        "AutoSnapshotPolicyId": Disk.auto_snapshot_policy_id,
        "PerformanceLevel": Disk.performance_level,
        "DeleteWithInstance": Disk.delete_with_instance,
        "DeleteAutoSnapshot": Disk.delete_auto_snapshot,
        "EnableAutoSnapshot": Disk.enable_auto_snapshot,
    }
    for name, column in exact.items():
        if p[name] is not None and p[name] != "":
            if (name, p[name]) in (("Status", "All"), ("Category", "all")):
                continue
            query = query.where(column == p[name])
    if p["DiskIds"]:
        query = query.where(Disk.id.in_(p["DiskIds"]))
    if p["DiskType"] and p["DiskType"] != "all":
        query = query.where(Disk.disk_type == p["DiskType"])
    if p["Portable"] is not None:
        query = query.where((Disk.disk_type == "data") if p["Portable"] else (Disk.disk_type == "system"))
    if p["EnableAutomatedSnapshotPolicy"] is not None:
        query = query.where(
            (Disk.auto_snapshot_policy_id != "")
            if p["EnableAutomatedSnapshotPolicy"]
            else (Disk.auto_snapshot_policy_id == "")
        )
    if p["Encrypted"] is not None:
        query = query.where(Disk.encrypted == p["Encrypted"])
    # What every nubes disk is, as rendered: pay-as-you-go, under no KMS key (nubes keeps the keys),
    # attached to one instance at most, not shared block storage, never locked. A filter asking
    # for anything else matches no disk.
    if (
        p["DiskChargeType"] == "PrePaid"
        or p["KMSKeyId"]
        or p["MultiAttach"] in ("Enabled", "LegacyShared")
        or p["EnableShared"]
        or p["LockReason"]
    ):
        query = query.where(Disk.id.is_(None))
    default_group = ctx.services.resource_groups.default_id(scope.account_id)
    if p["ResourceGroupId"]:
        query = query.where(in_group(Disk.resource_group_id, p["ResourceGroupId"], default_group))
    query = creation_window(p).where(query, Disk.created_at)
    query = where_tagged(query, scope, "disk", Disk.id, tag_filter(p))
    page = page_of(p)
    with ctx.services.db.session() as s:  # a region may hold thousands of disks: only the page is read
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        ordered = query.order_by(Disk.created_at.desc(), Disk.id)
        chosen = list(s.scalars(ordered.offset(page.offset).limit(page.size)))
        tags = tags_by_resource(s, scope, "disk", (d.id for d in chosen))
    return {
        **page.fields(total, len(chosen)),
        "Disks": {"Disk": [render_disk(d, tags.get(d.id, []), default_group) for d in chosen]},
        "TotalCount": total,
    }


@actions.define(
    "AttachDisk",
    [
        DISK_ID,
        String("InstanceId", required=True, max_length=64),
        Boolean("DeleteWithInstance"),
        Boolean("Bootable", default=False),
        String("Password", max_length=64),
        String("KeyPairName", max_length=128),
    ],
)
def attach_disk(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Attach an Available disk to a Running (hot-plug) or Stopped instance."""
    ctx.services.disks.attach(
        ctx.principal.account_id,
        p["DiskId"],
        p["InstanceId"],
        p["DeleteWithInstance"],
        p["Bootable"],
        p["KeyPairName"],
        p["Password"],
    )
    return {}


@actions.define(
    "DetachDisk", [DISK_ID, String("InstanceId", required=True, max_length=64), Boolean("DeleteWithInstance")]
)
def detach_disk(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Detach a data disk (hot-unplug from a Running instance)."""
    ctx.services.disks.detach(ctx.principal.account_id, p["DiskId"], p["InstanceId"], p["DeleteWithInstance"])
    return {}


@actions.define(
    "ResizeDisk",
    [
        DISK_ID,
        Integer("NewSize", required=True, minimum=1),
        String("Type", max_length=16, default="offline"),
        CLIENT_TOKEN,
    ],
    idempotent=True,
)
def resize_disk(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Grow a disk: online in a running VM (the guest sees the new size at once), or offline."""
    if p["Type"] not in ("offline", "online"):
        raise errors.invalid_param_type(f"The specified type is not supported: {p['Type']!r}.")
    ctx.services.disks.resize(ctx.principal.account_id, p["DiskId"], p["NewSize"], p["Type"] == "online")
    return {"OrderId": ""}


@actions.define(
    "ReInitDisk",
    [
        DISK_ID,
        Boolean(
            "AutoStartInstance",
            default=False,
            unsupported_values=(True,),
            unsupported_because="start the instance with StartInstance once the disk is In_use",
        ),
        String("Password", max_length=64),
        String("KeyPairName", max_length=128),
        SECURITY_ENHANCEMENT_STRATEGY,
    ],
)
def reinit_disk(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Return a disk to its initial state: its image, its source snapshot, or empty; a system
    disk's new login (KeyPairName, Password) is taken by the guest on its next boot."""
    ctx.services.disks.reinit(ctx.principal.account_id, p["DiskId"], p["KeyPairName"], p["Password"])
    return {}


@actions.define("ResetDisk", [DISK_ID, String("SnapshotId", required=True, max_length=64), DRY_RUN])
def reset_disk(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Roll a disk back to one of its snapshots (its instance must be Stopped)."""
    _dry_run(p)
    ctx.services.disks.reset(ctx.principal.account_id, p["DiskId"], p["SnapshotId"])
    return {}


@actions.define(
    "ModifyDiskAttribute",
    [
        String("DiskId", max_length=64),
        StringList("DiskIds", max_items=100, item_max_length=64),
        String("DiskName", max_length=128),
        String("Description", max_length=256),
        Boolean("DeleteWithInstance"),
        Boolean("DeleteAutoSnapshot"),
        Boolean("EnableAutoSnapshot"),
        Boolean("BurstingEnabled"),
        String("RegionId", max_length=64),
    ],
)  # optional here, unlike most actions
def modify_disk_attribute(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Rename, describe, and set a disk's release and automatic snapshot behaviour."""
    disk_ids = ([p["DiskId"]] if p["DiskId"] else []) + list(p["DiskIds"] or [])
    if p["RegionId"]:
        ctx.scope(p["RegionId"])  # a region named must exist
    if not disk_ids:
        raise errors.missing_parameter(message="DiskId or DiskIds.N is mandatory for this action.")
    ctx.services.disks.modify_attribute(
        ctx.principal.account_id,
        disk_ids,
        check_name("DiskName", p["DiskName"]) if p["DiskName"] is not None else None,
        check_description(p["Description"]) if p["Description"] is not None else None,
        p["DeleteWithInstance"],
        p["DeleteAutoSnapshot"],
        p["EnableAutoSnapshot"],
        p["BurstingEnabled"],
    )
    return {}


@actions.define(
    "ModifyDiskSpec",
    [
        DISK_ID,
        String("DiskCategory", max_length=32),
        String("PerformanceLevel", max_length=8),
        Integer("ProvisionedIops", minimum=0),
        DRY_RUN,
    ],
)
def modify_disk_spec(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Change a disk's category or performance level (and so its IOPS and throughput limits)."""
    _dry_run(p)
    if not (p["DiskCategory"] or p["PerformanceLevel"] or p["ProvisionedIops"] is not None):
        raise errors.missing_parameter(message="Give DiskCategory, PerformanceLevel or ProvisionedIops.")
    if p["DiskCategory"] and p["DiskCategory"] not in SPEC_CATEGORIES:
        raise errors.invalid_disk_category_value_not_supported(
            'The specified parameter "DiskCategory" is not valid. Valid values: '
            f"{', '.join(SPEC_CATEGORIES)}; got {p['DiskCategory']!r}.",
        )
    if p["PerformanceLevel"] and p["PerformanceLevel"] not in LEVELS:
        raise errors.invalid_performance_level_malformed(
            f"The specified parameter PerformanceLevel is not valid. Valid values: {', '.join(LEVELS)}; "
            f"got {p['PerformanceLevel']!r}.",
        )
    ctx.services.disks.modify_spec(
        ctx.principal.account_id, p["DiskId"], p["DiskCategory"], p["PerformanceLevel"], p["ProvisionedIops"]
    )
    return {"OrderId": "", "TaskId": ""}


@actions.define("DeleteDisk", [DISK_ID])
def delete_disk(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Release an Available disk."""
    ctx.services.disks.delete(ctx.principal.account_id, p["DiskId"])
    return {}


@actions.define(
    "ReplaceSystemDisk",
    [
        String("InstanceId", required=True, max_length=64),
        String("ImageId", max_length=128),
        Struct("SystemDisk", [Integer("Size", minimum=1, maximum=2048)]),
        String("Password", max_length=64),
        PASSWORD_INHERIT,
        String("KeyPairName", max_length=128),
        # DiskId (a disk of the caller's to become the system disk, in place of ImageId) is not
        # declared: nubes makes the new system disk from an image only, so it is refused.
        SECURITY_ENHANCEMENT_STRATEGY,
        Boolean(
            "UseAdditionalService",
            unsupported_values=(False,),
            unsupported_because="guests always get nubes' own time and package sources",
        ),
        CLIENT_TOKEN,
    ],
)
def replace_system_disk(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Give a Stopped instance a new system disk from an image; the old one is released."""
    if not p["ImageId"]:
        raise errors.missing_parameter("ImageId", message="ImageId is mandatory for this action.")
    instance = ctx.services.instances.get(ctx.principal.account_id, p["InstanceId"])
    image = ctx.services.images.usable(
        Scope(ctx.principal.account_id, instance.region_id), p["ImageId"], None
    )
    disk_id = ctx.services.disks.replace_system_disk(
        ctx.principal.account_id,
        p["InstanceId"],
        image,
        (p["SystemDisk"] or {}).get("Size"),
        p["KeyPairName"],
        p["Password"],
    )
    return {"DiskId": disk_id}
