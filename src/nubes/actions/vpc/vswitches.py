"""VPC API: CreateVSwitch, DeleteVSwitch, DescribeVSwitches, DescribeVSwitchAttributes, ModifyVSwitchAttribute."""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Any

from nubes import errors
from nubes.actions.common import (
    CLIENT_TOKEN,
    DRY_RUN,
    OPTIONAL_REGION_ID,
    TAGS,
    tag_filter,
    tag_pairs,
    tag_set,
)
from nubes.actions.paging import number_paged, page_params
from nubes.api.context import ActionContext
from nubes.api.params import Boolean, Integer, String
from nubes.api.registry import ActionTable
from nubes.clock import iso8601_seconds
from nubes.domain import cidr
from nubes.domain.common import Scope
from nubes.store.models import VSwitch

actions = ActionTable("vpc")

VSWITCH_ID = String("VSwitchId", required=True, max_length=64)


def vswitch_scope(ctx: ActionContext, region_id: str | None, vswitch_id: str) -> Scope:
    """The scope of an action whose RegionId is optional: the given region, else the vSwitch's."""
    return ctx.scope(region_id or ctx.services.vpcs.vswitch_region_of(ctx.principal.account_id, vswitch_id))


def render_vswitch(
    ctx: ActionContext,
    vswitch: VSwitch,
    used: int,
    route_table: tuple[str, str],
    tags: list[tuple[str, str]],
) -> dict[str, Any]:
    """`route_table`: the ID and type (System or Custom) of the table the vSwitch uses."""
    return {
        "VSwitchId": vswitch.id,
        "VpcId": vswitch.vpc_id,
        "Status": vswitch.status,
        "CidrBlock": vswitch.cidr,
        "Ipv6CidrBlock": "",
        "ZoneId": vswitch.zone_id,
        "AvailableIpAddressCount": cidr.available_count(IPv4Network(vswitch.cidr), used),
        "Description": vswitch.description,
        "VSwitchName": vswitch.name,
        "CreationTime": iso8601_seconds(vswitch.created_at),
        "IsDefault": False,
        "ResourceGroupId": "",
        "NetworkAclId": "",
        "OwnerId": int(ctx.principal.uid),
        "ShareType": "",
        "EnabledIpv6": False,
        "RouteTable": {"RouteTableId": route_table[0], "RouteTableType": route_table[1]},
        "Tags": tag_set(tags, vpc=True),
    }


@actions.define(
    "CreateVSwitch",
    [
        OPTIONAL_REGION_ID,  # the region follows from the VPC
        String("VpcId", required=True, max_length=64),
        String("ZoneId", required=True, max_length=64),
        String("CidrBlock", required=True, max_length=64),
        String("VSwitchName", max_length=128),
        String("Description", max_length=256),
        CLIENT_TOKEN,
        TAGS,
    ],
    idempotent=True,
)
def create_vswitch(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Create a vSwitch in a zone, inside its VPC's CIDR block and beside its siblings, with its Tag.N."""
    region_id = p["RegionId"] or ctx.services.vpcs.region_of(ctx.principal.account_id, p["VpcId"])
    vswitch = ctx.services.vpcs.create_vswitch(
        ctx.scope(region_id),
        p["VpcId"],
        p["ZoneId"],
        p["CidrBlock"],
        p["VSwitchName"],
        p["Description"],
        tag_pairs(p),
    )
    return {"VSwitchId": vswitch.id}


@actions.define("DeleteVSwitch", [OPTIONAL_REGION_ID, VSWITCH_ID, DRY_RUN])
def delete_vswitch(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Delete a vSwitch no interface or instance uses."""
    ctx.services.vpcs.delete_vswitch(
        vswitch_scope(ctx, p["RegionId"], p["VSwitchId"]), p["VSwitchId"], dry_run=p["DryRun"]
    )
    return {}


def _route_tables(ctx: ActionContext, vswitch_ids: list[str]) -> dict[str, tuple[str, str]]:
    """The route table each vSwitch uses: its custom one, else its VPC's system table."""
    return ctx.services.route_tables.of_vswitches(vswitch_ids) if vswitch_ids else {}


@actions.define(
    "DescribeVSwitches",
    [
        OPTIONAL_REGION_ID,  # RegionId or VpcId, at least one
        String("VpcId", max_length=64),
        String("VSwitchId", max_length=1024),
        String("ZoneId", max_length=64),
        String("VSwitchName", max_length=128),
        Boolean("IsDefault"),
        String("ResourceGroupId", max_length=64),
        String("RouteTableId", max_length=64),
        Boolean("EnableIpv6"),
        Integer("VSwitchOwnerId", minimum=0),
        TAGS,
        DRY_RUN,
        *page_params(),
    ],
)
def describe_vswitches(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The caller's vSwitches in a region (RegionId, else the VpcId's); VSwitchId takes IDs
    separated by commas; Tag.N: the vSwitches carrying every tag. No vSwitch is a default one, has
    IPv6 or a resource group (IsDefault=true, EnableIpv6=true and ResourceGroupId match none),
    and each is owned by the caller (VSwitchOwnerId: the caller's UID)."""
    if not p["RegionId"] and not p["VpcId"]:
        raise errors.missing_parameter("RegionId", message="Give RegionId or VpcId.")
    region_id = p["RegionId"] or ctx.services.vpcs.region_of(ctx.principal.account_id, p["VpcId"])
    scope = ctx.scope(region_id)
    ids = [v.strip() for v in p["VSwitchId"].split(",") if v.strip()] if p["VSwitchId"] else None
    rows = ctx.services.vpcs.describe_vswitches(
        scope, p["VpcId"], ids, p["ZoneId"], p["VSwitchName"], tag_filter(p)
    )
    if (
        p["IsDefault"]
        or p["EnableIpv6"]
        or p["ResourceGroupId"]  # vSwitches are in no resource group (ResourceGroupId "")
        or (p["VSwitchOwnerId"] is not None and str(p["VSwitchOwnerId"]) != ctx.principal.uid)
    ):
        rows = []
    tables = _route_tables(ctx, [v.id for v, _ in rows])
    if p["RouteTableId"]:
        rows = [(v, n) for v, n in rows if tables[v.id][0] == p["RouteTableId"]]
    tags = ctx.services.tags.of(scope, "vswitch", (v.id for v, _ in rows))
    items: list[object] = [render_vswitch(ctx, v, n, tables[v.id], tags.get(v.id, [])) for v, n in rows]
    return number_paged(items, p, "VSwitches", "VSwitch")


@actions.define("DescribeVSwitchAttributes", [OPTIONAL_REGION_ID, VSWITCH_ID, DRY_RUN])
def describe_vswitch_attributes(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """One vSwitch in detail."""
    scope = vswitch_scope(ctx, p["RegionId"], p["VSwitchId"])
    rows = ctx.services.vpcs.describe_vswitches(scope, vswitch_ids=[p["VSwitchId"]])
    if not rows:
        ctx.services.vpcs.get_vswitch(scope, p["VSwitchId"])  # raises InvalidVSwitchId.NotFound
    vswitch, used = rows[0]
    return render_vswitch(
        ctx,
        vswitch,
        used,
        _route_tables(ctx, [vswitch.id])[vswitch.id],
        ctx.services.tags.of(scope, "vswitch", [vswitch.id]).get(vswitch.id, []),
    )


@actions.define(
    "ModifyVSwitchAttribute",
    [
        OPTIONAL_REGION_ID,
        VSWITCH_ID,
        String("VSwitchName", max_length=128),
        String("Description", max_length=256),
    ],
)
def modify_vswitch_attribute(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Rename a vSwitch or change its description."""
    ctx.services.vpcs.modify_vswitch(
        vswitch_scope(ctx, p["RegionId"], p["VSwitchId"]), p["VSwitchId"], p["VSwitchName"], p["Description"]
    )
    return {}
