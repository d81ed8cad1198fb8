"""ECS automatic snapshot policies: CreateAutoSnapshotPolicy, DescribeAutoSnapshotPolicyEx,
ModifyAutoSnapshotPolicyEx, DeleteAutoSnapshotPolicy, ApplyAutoSnapshotPolicy,
CancelAutoSnapshotPolicy. The policies fire from the host agent (AutoSnapshotPolicies.fire_due).

Most of these actions spell their parameters in lower camel case on the wire (regionId,
timePoints, diskIds, ...), as the official API does; DescribeAutoSnapshotPolicyEx does not."""

from __future__ import annotations

import json
from typing import Any

from nubes import errors
from nubes.actions.common import TAGS, tag_pairs, tag_set
from nubes.actions.paging import number_paged, page_params
from nubes.api.context import ActionContext
from nubes.api.params import Boolean, Integer, String
from nubes.api.registry import ActionTable
from nubes.clock import iso8601_seconds
from nubes.domain.auto_snapshot_policies import (
    PolicyView,
    check_copy_retention,
    parse_copy_regions,
    render_list,
)
from nubes.domain.common import Scope
from nubes.errors import ApiError

actions = ActionTable("ecs")

REGION = String("regionId", required=True, max_length=64)
POLICY_ID = String("autoSnapshotPolicyId", required=True, max_length=64)
NAME = String("autoSnapshotPolicyName", max_length=128)
TIME_POINTS = String("timePoints", max_length=1024)
WEEKDAYS = String("repeatWeekdays", max_length=256)
RETENTION = Integer("retentionDays")  # -1 or 1-65536, checked by the domain (ParameterInvalid)
DISK_IDS = String("diskIds", required=True)
CROSS_REGION = [
    Boolean("EnableCrossRegionCopy"),
    String("TargetCopyRegions", max_length=256),
    Integer("CopiedSnapshotsRetentionDays"),
]


def policy_scope(ctx: ActionContext, region_id: str) -> Scope:
    """The caller's scope; these actions call an unknown region ParameterInvalid (403)."""
    try:
        return ctx.scope(region_id)
    except ApiError as error:
        if error.code != "InvalidRegionId.NotFound":
            raise
        raise errors.parameter_invalid("The specified RegionId parameter is invalid.") from None


def copy_settings(ctx: ActionContext, p: dict[str, Any]) -> tuple[list[str] | None, int | None]:
    """(target regions, their retention) from the cross-region copy parameters, None where not given.
    nubes keeps them and shows them; it has no second region to copy to."""
    regions: list[str] | None = None
    if p["EnableCrossRegionCopy"] is False:
        regions = []
    elif p["TargetCopyRegions"] or p["EnableCrossRegionCopy"]:
        regions = parse_copy_regions(
            p["TargetCopyRegions"], lambda r: ctx.services.catalog.region(r) is not None
        )
    retention = p["CopiedSnapshotsRetentionDays"]
    return regions, (check_copy_retention(retention) if retention is not None else None)


@actions.define(
    "CreateAutoSnapshotPolicy",
    [
        REGION,
        NAME,
        String("timePoints", required=True, max_length=1024),
        String("repeatWeekdays", required=True, max_length=256),
        Integer("retentionDays", required=True),
        TAGS,
        String("AssociationType", choices=("AssociatedWithDisk",)),
        *CROSS_REGION,
    ],
)
def create_auto_snapshot_policy(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Create a policy: hours (UTC+8) and weekdays at which its disks get snapshots, and their retention."""
    scope = policy_scope(ctx, p["regionId"])
    regions, copy_retention = copy_settings(ctx, p)
    policy_id = ctx.services.auto_snapshot_policies.create(
        scope,
        p["autoSnapshotPolicyName"],
        p["timePoints"],
        p["repeatWeekdays"],
        p["retentionDays"],
        tag_pairs(p),
        regions or [],
        -1 if copy_retention is None else copy_retention,
    )
    return {"AutoSnapshotPolicyId": policy_id}


def render_policy(view: PolicyView) -> dict[str, Any]:
    policy = view.policy
    regions = json.loads(policy.copy_regions or "[]")
    return {
        "AutoSnapshotPolicyId": policy.id,
        "AutoSnapshotPolicyName": policy.name,
        "RegionId": policy.region_id,
        "TimePoints": render_list(json.loads(policy.time_points)),
        "RepeatWeekdays": render_list(json.loads(policy.repeat_weekdays)),
        "RetentionDays": policy.retention_days,
        "DiskNums": view.disk_count,
        "VolumeNums": 0,
        "Status": policy.status,
        "CreationTime": iso8601_seconds(policy.created_at),
        "Type": "Custom",
        "AssociationType": "AssociatedWithDisk",
        "ResourceGroupId": "",
        "EnableCrossRegionCopy": bool(regions),
        "TargetCopyRegions": json.dumps(regions) if regions else "",
        "CopiedSnapshotsRetentionDays": policy.copy_retention_days,
        "CopyEncryptionConfiguration": {"Encrypted": False, "KMSKeyId": ""},
        "Tags": tag_set(view.tags),
        "TargetTags": {"TargetTag": []},
    }


@actions.define(
    "DescribeAutoSnapshotPolicyEx",
    [
        String("RegionId", required=True, max_length=64),
        String("AutoSnapshotPolicyId", max_length=64),
        String("AutoSnapshotPolicyName", max_length=128),
        String("ResourceGroupId", max_length=64),
        TAGS,
        *page_params(max_size=100),
    ],
)
def describe_auto_snapshot_policy_ex(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The caller's automatic snapshot policies in a region, with how many disks each is applied to."""
    scope = ctx.scope(p["RegionId"])
    views = ctx.services.auto_snapshot_policies.describe(
        scope, p["AutoSnapshotPolicyId"], p["AutoSnapshotPolicyName"], tag_pairs(p)
    )
    if p["ResourceGroupId"]:
        views = []  # policies are in no resource group, as rendered: a group matches none
    items: list[object] = [render_policy(v) for v in views]
    return number_paged(items, p, "AutoSnapshotPolicies", "AutoSnapshotPolicy")


@actions.define(
    "ModifyAutoSnapshotPolicyEx", [REGION, POLICY_ID, NAME, TIME_POINTS, WEEKDAYS, RETENTION, *CROSS_REGION]
)
def modify_auto_snapshot_policy_ex(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Change a policy's name, schedule or retention; the disks it is applied to follow the new schedule."""
    scope = policy_scope(ctx, p["regionId"])
    regions, copy_retention = copy_settings(ctx, p)
    ctx.services.auto_snapshot_policies.modify(
        scope,
        p["autoSnapshotPolicyId"],
        p["autoSnapshotPolicyName"],
        p["timePoints"],
        p["repeatWeekdays"],
        p["retentionDays"],
        regions,
        copy_retention,
    )
    return {}


@actions.define("DeleteAutoSnapshotPolicy", [REGION, POLICY_ID])
def delete_auto_snapshot_policy(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Delete a policy; its disks stop getting automatic snapshots (the ones made are kept)."""
    ctx.services.auto_snapshot_policies.delete(policy_scope(ctx, p["regionId"]), p["autoSnapshotPolicyId"])
    return {}


@actions.define("ApplyAutoSnapshotPolicy", [REGION, POLICY_ID, DISK_IDS])
def apply_auto_snapshot_policy(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Apply a policy to disks (a JSON array of IDs), replacing the policy each had."""
    ctx.services.auto_snapshot_policies.apply(
        policy_scope(ctx, p["regionId"]), p["autoSnapshotPolicyId"], p["diskIds"]
    )
    return {}


@actions.define("CancelAutoSnapshotPolicy", [REGION, DISK_IDS, String("autoSnapshotPolicyId", max_length=64)])
def cancel_auto_snapshot_policy(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Take disks (a JSON array of IDs) off their automatic snapshot policy."""
    ctx.services.auto_snapshot_policies.cancel(
        policy_scope(ctx, p["regionId"]), p["diskIds"], p["autoSnapshotPolicyId"]
    )
    return {}
