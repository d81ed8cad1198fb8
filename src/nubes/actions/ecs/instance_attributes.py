"""ECS instance attributes that tools (Terraform's alicloud_instance) read and change beside
DescribeInstances: RAM roles, maintenance, private pools, renewal, automatic release."""

from __future__ import annotations

from typing import Any

from nubes import errors
from nubes.actions.common import REGION_ID
from nubes.actions.ecs.instances import INSTANCE_ID
from nubes.actions.paging import page_of, page_params
from nubes.api.context import ActionContext
from nubes.api.params import Boolean, Param, String, StringList, Struct, StructList
from nubes.api.registry import ActionTable
from nubes.domain.instance_attributes import DEFAULT_MAINTENANCE_ACTION, MAINTENANCE_ACTIONS, check_window
from nubes.store.models import Instance

actions = ActionTable("ecs")

RAM_ROLE_NAME = String("RamRoleName", max_length=64)


def _ids(name: str, required: bool = False) -> Param:
    """InstanceIds as a JSON array of up to 100 IDs (the actions that take it so)."""
    return StringList(name, json_array=True, required=required, max_items=100, item_max_length=64)


def _paged(
    ctx: ActionContext, p: dict[str, Any], ids: list[str], key: str, item: str, render: Any
) -> dict[str, Any]:
    """TotalCount, PageNumber, PageSize and one page of the scope's instances (of `ids` when given)."""
    page = page_of(p)
    total, found = ctx.services.attributes.page(ctx.scope(p["RegionId"]), ids, page.offset, page.size)
    return {
        "TotalCount": total,
        "PageNumber": page.number,
        "PageSize": page.size,
        key: {item: [render(i) for i in found]},
    }


# ---- RAM roles (nubes has none yet) -------------------------------------------------------------


@actions.define(
    "DescribeInstanceRamRole",
    [REGION_ID, _ids("InstanceIds"), RAM_ROLE_NAME, *page_params(max_size=50)],
)
def describe_instance_ram_role(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The RAM roles of instances: none, as nubes has no RAM roles yet."""
    if not p["InstanceIds"] and not p["RamRoleName"]:
        raise errors.missing_parameter("InstanceIds", message="Give InstanceIds, RamRoleName or both.")
    pairs = ctx.services.attributes.ram_roles(ctx.scope(p["RegionId"]), p["InstanceIds"] or [])
    return {
        "RegionId": p["RegionId"],
        "TotalCount": len(pairs),
        "InstanceRamRoleSets": {
            "InstanceRamRoleSet": [{"InstanceId": i, "RamRoleName": r} for i, r in pairs]
        },
    }


@actions.define(
    "AttachInstanceRamRole",
    [
        REGION_ID,
        _ids("InstanceIds", required=True),
        String("RamRoleName", required=True, max_length=64),
        String("Policy", max_length=1024),
    ],
)
def attach_instance_ram_role(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Refused (InvalidRamRole.NotFound): nubes has no RAM roles yet."""
    ctx.services.attributes.attach_ram_role(ctx.scope(p["RegionId"]), p["InstanceIds"], p["RamRoleName"])
    return {}  # not reached: the domain refuses every role


@actions.define("DetachInstanceRamRole", [REGION_ID, _ids("InstanceIds", required=True), RAM_ROLE_NAME])
def detach_instance_ram_role(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Refused (InvalidRamRole.NotFound): nubes has no RAM roles, so no instance has one."""
    ctx.services.attributes.attach_ram_role(ctx.scope(p["RegionId"]), p["InstanceIds"], p["RamRoleName"])
    return {}  # not reached


# ---- maintenance ------------------------------------------------------------------------------------


def _maintenance(i: Instance) -> dict[str, Any]:
    windows = (
        [{"StartTime": i.maintenance_start, "EndTime": i.maintenance_end}] if i.maintenance_start else []
    )
    return {
        "InstanceId": i.id,
        "MaintenanceWindows": {"MaintenanceWindow": windows},
        "ActionOnMaintenance": {
            "Value": i.maintenance_action,
            "DefaultValue": DEFAULT_MAINTENANCE_ACTION,
            "SupportedValues": {"SupportedValue": list(MAINTENANCE_ACTIONS)},
        },
        "NotifyOnMaintenance": i.maintenance_notify,
    }


@actions.define(
    "DescribeInstanceMaintenanceAttributes",
    [REGION_ID, StringList("InstanceId", max_items=100, item_max_length=64), *page_params(max_size=100)],
)
def describe_instance_maintenance_attributes(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The maintenance policy of instances: the window, the action when the host loses the VM
    (AutoRecover starts it again, Stop leaves it Stopped) and whether to notify first."""
    return _paged(
        ctx, p, p["InstanceId"] or [], "MaintenanceAttributes", "MaintenanceAttribute", _maintenance
    )


@actions.define(
    "ModifyInstanceMaintenanceAttributes",
    [
        REGION_ID,
        StringList("InstanceId", required=True, max_items=100, item_max_length=64),
        StructList(
            "MaintenanceWindow",
            [String("StartTime", max_length=8), String("EndTime", max_length=8)],
            max_items=1,
        ),
        String(
            "ActionOnMaintenance",
            choices=("Stop", "AutoRecover", "AutoRedeploy"),
            unsupported_values=("AutoRedeploy",),
            unsupported_because="it is for instances with local disks; nubes instances have cloud disks only",
        ),
        Boolean("NotifyOnMaintenance"),
    ],
)
def modify_instance_maintenance_attributes(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Change the maintenance policy of up to 100 instances."""
    windows = p["MaintenanceWindow"] or []
    window = check_window(windows[0].get("StartTime"), windows[0].get("EndTime")) if windows else None
    ctx.services.attributes.modify_maintenance(
        ctx.scope(p["RegionId"]), p["InstanceId"], window, p["ActionOnMaintenance"], p["NotifyOnMaintenance"]
    )
    return {}


# ---- private pools (nubes has none) -------------------------------------------------------------


@actions.define(
    "DescribeInstanceAttachmentAttributes", [REGION_ID, _ids("InstanceIds"), *page_params(max_size=100)]
)
def describe_instance_attachment_attributes(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The private pool each instance matches: none (nubes has no elasticity assurances or
    capacity reservations); the match mode is None, or Open when set so."""
    return _paged(
        ctx,
        p,
        p["InstanceIds"] or [],
        "Instances",
        "Instance",
        lambda i: {
            "InstanceId": i.id,
            "PrivatePoolOptionsMatchCriteria": i.private_pool_match,
            "PrivatePoolOptionsId": "",
        },
    )


_NO_POOLS = "nubes has no private pools (elasticity assurances or capacity reservations) to target"


@actions.define(
    "ModifyInstanceAttachmentAttributes",
    [
        REGION_ID,
        INSTANCE_ID,
        Struct(
            "PrivatePoolOptions",
            [
                String(
                    "MatchCriteria",
                    choices=("Open", "Target", "None"),
                    unsupported_values=("Target",),
                    unsupported_because=_NO_POOLS,
                ),
                String("Id", max_length=64),
            ],
        ),
    ],
)
def modify_instance_attachment_attributes(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Change the private pool match mode of an instance: None or Open (no pool can be targeted)."""
    options = p["PrivatePoolOptions"] or {}
    if not options.get("MatchCriteria"):
        raise errors.missing_parameter("PrivatePoolOptions.MatchCriteria")
    if options.get("Id"):
        raise errors.invalid_parameter_not_supported("PrivatePoolOptions.Id", _NO_POOLS + ".")
    ctx.services.attributes.modify_pool_match(
        ctx.scope(p["RegionId"]), p["InstanceId"], options["MatchCriteria"]
    )
    return {}


# ---- renewal and release -------------------------------------------------------------------------


@actions.define(
    "DescribeInstanceAutoRenewAttribute",
    [
        REGION_ID,
        String("InstanceId", max_length=100 * 65),
        String("RenewalStatus", choices=("AutoRenewal", "Normal", "NotRenewal", "RenewChange")),
        # typed strings in this action's API: whole numbers all the same
        String("PageNumber", pattern=r"[1-9]\d{0,5}", default="1"),
        String("PageSize", pattern=r"(100|[1-9]\d?)", default="10"),
    ],
)
def describe_instance_auto_renew_attribute(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The renewal of subscription instances: nubes has none (a pay-as-you-go instance named by
    InstanceId is ChargeTypeViolation, as in ECS)."""
    ids = [i.strip() for i in (p["InstanceId"] or "").split(",") if i.strip()]
    if not ids and not p["RenewalStatus"]:
        raise errors.missing_parameter("InstanceId", message="Give InstanceId, RenewalStatus or both.")
    if len(ids) > 100:
        raise errors.invalid_parameter("InstanceId", f"At most 100 instance IDs are allowed; got {len(ids)}.")
    ctx.services.attributes.renewals(ctx.scope(p["RegionId"]), ids)
    return {
        "TotalCount": 0,
        "PageNumber": int(p["PageNumber"]),
        "PageSize": int(p["PageSize"]),
        "InstanceRenewAttributes": {"InstanceRenewAttribute": []},
    }


@actions.define(
    "ModifyInstanceAutoReleaseTime", [REGION_ID, INSTANCE_ID, String("AutoReleaseTime", max_length=32)]
)
def modify_instance_auto_release_time(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Set when a pay-as-you-go instance is released (yyyy-MM-ddTHH:mm:ssZ, UTC, 30 minutes to
    3 years ahead); an empty time cancels it. The instance really is released then."""
    ctx.services.attributes.modify_auto_release_time(
        ctx.scope(p["RegionId"]), p["InstanceId"], p["AutoReleaseTime"]
    )
    return {}
