"""ECS snapshots: CreateSnapshot, DescribeSnapshots, DeleteSnapshot, ModifySnapshotAttribute,
DescribeSnapshotsUsage."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from nubes import errors
from nubes.actions.common import (
    CLIENT_TOKEN,
    CREATION_FILTER,
    DRY_RUN,
    REGION_ID,
    RESOURCE_GROUP_ID,
    TAGS,
    creation_window,
    tag_filter,
    tag_pairs,
    tag_set,
)
from nubes.actions.paging import either_page, page_params, token_params
from nubes.api.context import ActionContext
from nubes.api.params import Boolean, Integer, String, StringList
from nubes.api.registry import ActionTable
from nubes.clock import iso8601_seconds
from nubes.domain.common import check_description, check_name
from nubes.domain.resource_groups import in_group
from nubes.domain.snapshot_usage import disks_using, images_using
from nubes.domain.tags import tags_by_resource, where_tagged
from nubes.store.models import Disk, Snapshot

actions = ActionTable("ecs")

SNAPSHOT_ID = String("SnapshotId", required=True, max_length=64)


@actions.define(
    "CreateSnapshot",
    [
        String("DiskId", required=True, max_length=64),
        String("SnapshotName", max_length=128),
        String("Description", max_length=256),
        Integer("RetentionDays", minimum=1, maximum=65536),
        String(
            "Category",
            choices=("Standard", "Flash", "standard", "flash"),
            unsupported_values=("Flash", "flash"),
            unsupported_because="snapshots are standard snapshots; InstantAccess makes them usable at once",
        ),
        Boolean("InstantAccess", default=False),
        Integer(
            "InstantAccessRetentionDays",
            minimum=1,
            maximum=65535,
            unsupported_from=1,
            unsupported_because="a snapshot's instant access lasts as long as the snapshot",
        ),
        RESOURCE_GROUP_ID,
        TAGS,
        CLIENT_TOKEN,
    ],
    idempotent=True,
)
def create_snapshot(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Snapshot a disk: instant and crash-consistent (the running VM's writes go to a new layer)."""
    tags = tag_pairs(p)
    snapshot_id = ctx.services.snapshots.create(
        ctx.principal.account_id,
        p["DiskId"],
        check_name("SnapshotName", p["SnapshotName"]),
        check_description(p["Description"]),
        p["RetentionDays"],
        tags,
        p["ClientToken"] or "",
        instant_access=p["InstantAccess"],
        resource_group_id=p["ResourceGroupId"],
    )
    return {"SnapshotId": snapshot_id}


def _usage(images: bool, disks: bool) -> str:
    return {(True, True): "image_disk", (True, False): "image", (False, True): "disk"}.get(
        (images, disks), "none"
    )


@actions.define(
    "DescribeSnapshots",
    [
        REGION_ID,
        String("InstanceId", max_length=64),
        String("DiskId", max_length=64),
        StringList("SnapshotIds", json_array=True, max_items=100, item_max_length=64),
        String("SnapshotName", max_length=128),
        String("Status", choices=("progressing", "accomplished", "failed", "all")),
        String("SnapshotType", choices=("auto", "user", "all")),
        String("SourceDiskType", max_length=16),
        String("Usage", choices=("image", "disk", "image_disk", "none")),
        String("Category", choices=("Standard", "Flash", "standard", "flash", "archive")),
        String("SnapshotLinkId", max_length=64),
        Boolean("Encrypted"),
        String("KMSKeyId", max_length=128),
        String("ResourceGroupId", max_length=64),
        TAGS,
        DRY_RUN,
        CREATION_FILTER,
        *page_params(max_size=100),
        *token_params(max_results=100, min_results=10),
    ],
)
def describe_snapshots(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The caller's snapshots in a region, filtered; both paging styles."""
    if p["DryRun"]:
        raise errors.dry_run_operation()
    scope = ctx.scope(p["RegionId"])
    query = select(Snapshot).where(
        Snapshot.account_id == scope.account_id, Snapshot.region_id == scope.region_id
    )
    if p["DiskId"]:
        query = query.where(Snapshot.disk_id == p["DiskId"])
    if p["SnapshotIds"]:
        query = query.where(Snapshot.id.in_(p["SnapshotIds"]))
    if p["SnapshotName"]:
        query = query.where(Snapshot.name == p["SnapshotName"])
    if p["Status"] and p["Status"] != "all":
        query = query.where(Snapshot.status == p["Status"])
    if p["SnapshotType"] == "auto":
        query = query.where(Snapshot.auto_policy_id != "")
    elif p["SnapshotType"] == "user":
        query = query.where(Snapshot.auto_policy_id == "")
    if p["SourceDiskType"]:
        query = query.where(Snapshot.disk_type == p["SourceDiskType"].lower())
    if p["Encrypted"] is not None:
        query = query.where(Snapshot.encrypted == p["Encrypted"])
    if p["SnapshotLinkId"]:  # a disk's snapshot chain, named after the disk (see render_snapshot)
        query = query.where(Snapshot.disk_id == "d-" + p["SnapshotLinkId"].removeprefix("sl-"))
    # Every nubes snapshot is, as rendered: a standard snapshot, under no KMS key (nubes keeps the
    # keys). A filter asking for anything else matches none.
    if (p["Category"] and p["Category"].lower() != "standard") or p["KMSKeyId"]:
        query = query.where(Snapshot.id.is_(None))
    default_group = ctx.services.resource_groups.default_id(scope.account_id)
    if p["ResourceGroupId"]:
        query = query.where(in_group(Snapshot.resource_group_id, p["ResourceGroupId"], default_group))
    if p["InstanceId"]:
        query = query.where(Snapshot.disk_id.in_(select(Disk.id).where(Disk.instance_id == p["InstanceId"])))
    query = creation_window(p).where(query, Snapshot.created_at)
    query = where_tagged(query, scope, "snapshot", Snapshot.id, tag_filter(p))
    with ctx.services.db.session() as s:
        snapshots = list(s.scalars(query.order_by(Snapshot.created_at.desc(), Snapshot.id)))
        tags = tags_by_resource(s, scope, "snapshot", (sn.id for sn in snapshots))
        usage = {sn.id: _usage(bool(images_using(s, sn.id)), bool(disks_using(s, sn.id))) for sn in snapshots}
    if p["Usage"]:
        snapshots = [sn for sn in snapshots if usage[sn.id] == p["Usage"]]
    items = [render_snapshot(sn, usage[sn.id], tags.get(sn.id, []), default_group) for sn in snapshots]
    body = either_page(items, p, "Snapshots", "Snapshot")
    body["TotalCount"] = len(items)
    return body


def render_snapshot(
    sn: Snapshot, usage: str, tags: list[tuple[str, str]], default_group: str
) -> dict[str, Any]:
    return {
        "SnapshotId": sn.id,
        "SnapshotName": sn.name,
        "Description": sn.description,
        "RegionId": sn.region_id,
        "SourceRegionId": "",
        "SourceSnapshotId": "",
        "SourceDiskId": sn.disk_id,
        "SourceDiskType": sn.disk_type.capitalize(),
        "SourceDiskSize": str(sn.disk_size_gib),
        "SourceStorageType": "disk",
        "Status": sn.status,
        "Progress": f"{sn.progress}%",
        "RemainTime": 0 if sn.status != "progressing" else 1,
        "CreationTime": iso8601_seconds(sn.created_at),
        "LastModifiedTime": iso8601_seconds(sn.completed_at or sn.created_at),
        "RetentionDays": sn.retention_days or 0,
        "SnapshotType": "auto" if sn.auto_policy_id else "user",
        "Usage": usage,
        "Available": sn.status == "accomplished",
        "InstantAccess": sn.instant_access,
        "InstantAccessRetentionDays": 0,
        "Category": "standard",
        "Encrypted": sn.encrypted,
        "KMSKeyId": "",  # nubes' own key, not a KMS one (docs/architecture.md)
        "ProductCode": "",
        "ResourceGroupId": sn.resource_group_id or default_group,
        "SnapshotSN": sn.id.removeprefix("s-"),
        "SnapshotLinkId": f"sl-{sn.disk_id.removeprefix('d-')}",
        "FullSnapshotSizeInBytes": sn.disk_size_gib << 30,
        "Tags": tag_set(tags),
    }


@actions.define("DeleteSnapshot", [SNAPSHOT_ID, Boolean("Force", default=False)])
def delete_snapshot(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Delete a snapshot (refused while an image uses it; disks made from it need Force)."""
    ctx.services.snapshots.delete(ctx.principal.account_id, p["SnapshotId"], p["Force"])
    return {}


@actions.define(
    "ModifySnapshotAttribute",
    [
        SNAPSHOT_ID,
        String("SnapshotName", max_length=128),
        String("Description", max_length=256),
        Boolean("DisableInstantAccess", default=False),
        Integer("RetentionDays", minimum=1, maximum=65536),
    ],
)
def modify_snapshot_attribute(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Rename or describe a snapshot, end its instant access, or set how long it is kept."""
    ctx.services.snapshots.modify(
        ctx.principal.account_id,
        p["SnapshotId"],
        check_name("SnapshotName", p["SnapshotName"]) if p["SnapshotName"] is not None else None,
        check_description(p["Description"]) if p["Description"] is not None else None,
        p["DisableInstantAccess"],
        p["RetentionDays"],
    )
    return {}


@actions.define("DescribeSnapshotsUsage", [REGION_ID])
def describe_snapshots_usage(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """How many snapshots the caller has in a region and how much they hold."""
    count, size = ctx.services.snapshots.usage(ctx.scope(p["RegionId"]))
    return {"SnapshotCount": count, "SnapshotSize": size}
