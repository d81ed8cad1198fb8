"""VPC API: route tables and entries, vRouters."""

from __future__ import annotations

from typing import Any

from nubes import errors
from nubes.actions.common import (
    CLIENT_TOKEN,
    DRY_RUN,
    OPTIONAL_REGION_ID,
    REGION_ID,
    TAGS,
    tag_filter,
    tag_pairs,
    tag_set,
)
from nubes.actions.paging import NEXT_TOKEN, number_paged, page_params, token_page
from nubes.api.context import ActionContext
from nubes.api.params import Integer, String, StringList
from nubes.api.registry import ActionTable
from nubes.clock import iso8601_seconds
from nubes.domain.common import Scope
from nubes.domain.route_tables import TableView
from nubes.domain.routes import RouteView

actions = ActionTable("vpc")


def _tables(ctx: ActionContext, scope: Scope, p: dict[str, Any], type_param: str) -> list[TableView]:
    """The scope's route tables, filtered by the parameters the two Describe actions share;
    every table is a vRouter's (RouterType VBR matches none); the system table has no name."""
    views = ctx.services.route_tables.tables(
        scope, p.get("VpcId"), p["ResourceGroupId"], tag_filter(p) if "Tag" in p else ()
    )
    routers = {p["RouterId"], p.get("VRouterId")} - {None, ""}
    return [
        v
        for v in views
        if all(v.vrouter_id == r for r in routers)
        and (not p["RouteTableId"] or v.route_table_id == p["RouteTableId"])
        and (not p["RouteTableName"] or v.name == p["RouteTableName"])
        and (not p[type_param] or v.table_type == p[type_param])
        and p["RouterType"] != "VBR"
    ]


@actions.define(
    "DescribeRouteTableList",
    [
        REGION_ID,
        String("VpcId", max_length=64),
        String("RouterId", max_length=64),
        String("RouterType", choices=("VRouter", "VBR")),
        String("RouteTableId", max_length=64),
        String("RouteTableName", max_length=128),
        String("RouteTableType", choices=("System", "Custom")),
        String("ResourceGroupId", max_length=64),
        TAGS,
        *page_params(),
    ],
)
def describe_route_table_list(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The route tables of the caller's VPCs, system and custom, with the vSwitches that use
    each; Tag.N: the tables carrying every tag."""
    scope = ctx.scope(p["RegionId"])
    views = _tables(ctx, scope, p, "RouteTableType")
    tags = ctx.services.tags.of(scope, "routetable", (v.route_table_id for v in views))
    tables: list[object] = [
        {
            "VpcId": v.vpc_id,
            "RouterId": v.vrouter_id,
            "RouterType": "VRouter",
            "RouteTableId": v.route_table_id,
            "RouteTableName": v.name,
            "RouteTableType": v.table_type,
            "AssociateType": "VSwitch",
            "Description": v.description,
            "Status": v.status,
            "CreationTime": iso8601_seconds(v.created_at),
            "OwnerId": int(ctx.principal.uid),
            "ResourceGroupId": v.resource_group_id,
            "RoutePropagationEnable": True,
            "VSwitchIds": {"VSwitchId": list(v.vswitch_ids)},
            "GatewayIds": {"GatewayIds": []},
            "Tags": tag_set(tags.get(v.route_table_id, []), vpc=True),
        }
        for v in views
    ]
    return number_paged(tables, p, "RouterTableList", "RouterTableListType")


@actions.define(
    "DescribeRouteTables",
    [
        REGION_ID,
        String("RouterId", max_length=64),
        String("RouterType", choices=("VRouter", "VBR")),
        String("VRouterId", max_length=64),
        String("RouteTableId", max_length=64),
        String("RouteTableName", max_length=128),
        String("Type", choices=("System", "Custom")),
        String("ResourceGroupId", max_length=64),
        *page_params(),
    ],
)
def describe_route_tables(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The older listing of route tables, each with its entries."""
    scope = ctx.scope(p["RegionId"])
    tables: list[object] = []
    for v in _tables(ctx, scope, p, "Type"):
        entries = ctx.services.routes.entries(scope, v.route_table_id)
        tables.append(
            {
                "RouteTableId": v.route_table_id,
                "RouteTableType": v.table_type,
                "VRouterId": v.vrouter_id,
                "Status": v.status,
                "CreationTime": iso8601_seconds(v.created_at),
                "ResourceGroupId": v.resource_group_id,
                "VSwitchIds": {"VSwitchId": list(v.vswitch_ids)},
                "RouteEntrys": {
                    "RouteEntry": [
                        {
                            "RouteTableId": e.route_table_id,
                            "RouteEntryId": e.route_entry_id,
                            "RouteEntryName": e.name,
                            "DestinationCidrBlock": e.destination,
                            "Type": e.entry_type,
                            "Status": e.status,
                            "Description": e.description,
                            "NextHopType": e.next_hop_type,
                            "InstanceId": e.next_hop_id if e.entry_type == "Custom" else "",
                            "NextHops": {"NextHop": []},
                        }
                        for e in entries
                    ]
                },
            }
        )
    return number_paged(tables, p, "RouteTables", "RouteTable")


@actions.define(
    "CreateRouteTable",
    [
        REGION_ID,
        String("VpcId", required=True, max_length=64),
        String("RouteTableName", max_length=128),
        String("Description", max_length=256),
        # a table of vSwitches; gateway tables (Gateway) have no gateway to serve here
        String("AssociateType", choices=("VSwitch",), default="VSwitch"),
        CLIENT_TOKEN,
        TAGS,
    ],
    idempotent=True,
)
def create_route_table(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """A custom route table of the VPC, associated with no vSwitch yet, with its Tag.N."""
    table_id = ctx.services.route_tables.create(
        ctx.scope(p["RegionId"]), p["VpcId"], p["RouteTableName"], p["Description"], tag_pairs(p)
    )
    return {"RouteTableId": table_id}


@actions.define("DeleteRouteTable", [REGION_ID, String("RouteTableId", required=True, max_length=64)])
def delete_route_table(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Delete a custom route table no vSwitch uses and without custom entries."""
    ctx.services.route_tables.delete(ctx.scope(p["RegionId"]), p["RouteTableId"])
    return {}


@actions.define(
    "ModifyRouteTableAttributes",
    [
        REGION_ID,
        String("RouteTableId", required=True, max_length=64),
        String("RouteTableName", max_length=128),
        String("Description", max_length=256),
    ],
)
def modify_route_table_attributes(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Rename or describe a custom route table."""
    ctx.services.route_tables.modify(
        ctx.scope(p["RegionId"]), p["RouteTableId"], p["RouteTableName"], p["Description"]
    )
    return {}


_ASSOCIATION = [
    REGION_ID,
    String("RouteTableId", required=True, max_length=64),
    String("VSwitchId", required=True, max_length=64),
    CLIENT_TOKEN,
]


@actions.define("AssociateRouteTable", _ASSOCIATION, idempotent=True)
def associate_route_table(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Make a custom table the vSwitch's (it leaves its VPC's system table)."""
    ctx.services.route_tables.associate(ctx.scope(p["RegionId"]), p["RouteTableId"], p["VSwitchId"])
    return {}


@actions.define("UnassociateRouteTable", _ASSOCIATION, idempotent=True)
def unassociate_route_table(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Give the vSwitch back to its VPC's system table."""
    ctx.services.route_tables.unassociate(ctx.scope(p["RegionId"]), p["RouteTableId"], p["VSwitchId"])
    return {}


@actions.define(
    "DescribeRouteEntryList",
    [
        REGION_ID,
        String("RouteTableId", required=True, max_length=64),
        String("RouteEntryId", max_length=64),
        String("RouteEntryName", max_length=128),
        String("RouteEntryType", choices=("System", "Custom", "BGP")),
        String("DestinationCidrBlock", max_length=64),
        String("NextHopId", max_length=64),
        String("NextHopType", max_length=64),
        String("IpVersion", choices=("IPv4", "IPv6")),
        StringList("DestCidrBlockList", max_items=20, item_max_length=64),
        String("ServiceType", max_length=16),
        Integer("MaxResult", minimum=20, maximum=100, default=50),
        NEXT_TOKEN,
    ],
)
def describe_route_entry_list(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The entries of a route table: system routes of the vSwitches, then custom ones.
    DestCidrBlockList.N: the entries to one of these destinations; no entry is hosted by a
    transit router, so ServiceType (TR) matches none, and none is IPv6."""
    views = ctx.services.routes.entries(ctx.scope(p["RegionId"]), p["RouteTableId"])
    fields = {
        "RouteEntryId": "route_entry_id",
        "RouteEntryName": "name",
        "RouteEntryType": "entry_type",
        "DestinationCidrBlock": "destination",
        "NextHopId": "next_hop_id",
        "NextHopType": "next_hop_type",
    }
    for name, attribute in fields.items():
        if p[name]:
            views = [v for v in views if getattr(v, attribute) == p[name]]
    if p["DestCidrBlockList"]:
        views = [v for v in views if v.destination in p["DestCidrBlockList"]]
    if p["IpVersion"] == "IPv6" or p["ServiceType"]:
        views = []
    page, next_token = token_page(views, p["NextToken"], p["MaxResult"])
    entries = [
        {
            "RouteTableId": v.route_table_id,
            "RouteEntryId": v.route_entry_id,
            "RouteEntryName": v.name,
            "DestinationCidrBlock": v.destination,
            "Type": v.entry_type,
            "Status": v.status,
            "Description": v.description,
            "IpVersion": "IPv4",
            "Origin": "",
            "ServiceType": "",
            "GmtModified": "",
            "NextHops": {"NextHop": [_next_hop(v)]},
        }
        for v in page
    ]
    return {"NextToken": next_token, "TotalCount": len(views), "RouteEntrys": {"RouteEntry": entries}}


def _next_hop(v: RouteView) -> dict[str, Any]:
    """A route's one next hop: a custom route's is its instance, a system route's the vSwitch it
    reaches (no ID, as ECS writes it). Hops to other regions or products do not exist here, so
    their region and related instance are empty."""
    custom = v.entry_type == "Custom"
    return {
        "NextHopType": v.next_hop_type,
        "NextHopId": v.next_hop_id if custom else "",
        "Enabled": 1,
        "Weight": 100 if custom else 0,
        "NextHopRegionId": "",
        "NextHopRelatedInfo": {"InstanceId": "", "InstanceType": "", "RegionId": ""},
    }


@actions.define(
    "CreateRouteEntry",
    [
        OPTIONAL_REGION_ID,  # the route table's region
        String("RouteTableId", required=True, max_length=64),
        String("DestinationCidrBlock", required=True, max_length=64),
        String("NextHopType", default="Instance", max_length=64),
        String("NextHopId", max_length=64),
        String("RouteEntryName", max_length=128),
        String("Description", max_length=256),
        CLIENT_TOKEN,
        DRY_RUN,
    ],
    idempotent=True,
)
def create_route_entry(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Add a custom route whose next hop is an instance, a network interface or a NAT gateway of
    the VPC."""
    routes = ctx.services.routes
    region_id = p["RegionId"] or routes.table_region(ctx.principal.account_id, p["RouteTableId"])
    entry_id = routes.create(
        ctx.scope(region_id),
        p["RouteTableId"],
        p["DestinationCidrBlock"],
        p["NextHopType"],
        p["NextHopId"],
        p["RouteEntryName"],
        p["Description"],
        dry_run=p["DryRun"],
    )
    return {"RouteEntryId": entry_id}


@actions.define(
    "DeleteRouteEntry",
    [
        OPTIONAL_REGION_ID,  # the route's region
        String("RouteEntryId", max_length=64),
        String("RouteTableId", max_length=64),
        String("DestinationCidrBlock", max_length=64),
        String("NextHopId", max_length=64),
        DRY_RUN,
    ],
)
def delete_route_entry(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Remove a custom route, by its ID or by table and destination."""
    routes, account_id = ctx.services.routes, ctx.principal.account_id
    region_id = p["RegionId"]
    if not region_id and p["RouteEntryId"]:
        region_id = routes.entry_region(account_id, p["RouteEntryId"])
    elif not region_id and p["RouteTableId"]:
        region_id = routes.table_region(account_id, p["RouteTableId"])
    elif not region_id:
        raise errors.missing_parameter(
            message="Give RouteEntryId, or RouteTableId with DestinationCidrBlock."
        )
    routes.delete(
        ctx.scope(region_id),
        p["RouteEntryId"],
        p["RouteTableId"],
        p["DestinationCidrBlock"],
        p["NextHopId"],
        dry_run=p["DryRun"],
    )
    return {}


@actions.define(
    "ModifyRouteEntry",
    [
        REGION_ID,
        String("RouteEntryId", max_length=64),
        String("RouteTableId", max_length=64),
        String("DestinationCidrBlock", max_length=64),
        String("RouteEntryName", max_length=128),
        String("Description", max_length=256),
        String("NewNextHopType", max_length=64),
        String("NewNextHopId", max_length=64),
        DRY_RUN,  # (the unit of work rolls back: app._run)
    ],
)
def modify_route_entry(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Rename or describe a custom route, or move it to another next hop of its VPC; the route
    is named by its ID, or by its table and destination."""
    ctx.services.routes.modify(
        ctx.scope(p["RegionId"]),
        p["RouteEntryId"],
        p["RouteTableId"],
        p["DestinationCidrBlock"],
        p["RouteEntryName"],
        p["Description"],
        p["NewNextHopType"],
        p["NewNextHopId"],
    )
    return {}


@actions.define("DescribeVRouters", [REGION_ID, String("VRouterId", max_length=64), *page_params()])
def describe_vrouters(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The vRouter of each VPC, with its route tables (system, then custom)."""
    scope = ctx.scope(p["RegionId"])
    vpcs = ctx.services.vpcs.describe_vpcs(scope)
    tables: dict[str, list[str]] = {}
    for table in ctx.services.route_tables.tables(scope):
        tables.setdefault(table.vpc_id, []).append(table.route_table_id)
    routers: list[object] = [
        {
            "VRouterId": v.vrouter_id,
            "VpcId": v.id,
            "RegionId": v.region_id,
            "VRouterName": "",
            "Description": "",
            "CreationTime": iso8601_seconds(v.created_at),
            "RouteTableIds": {"RouteTableId": tables.get(v.id, [v.route_table_id])},
        }
        for v in vpcs
        if not p["VRouterId"] or v.vrouter_id == p["VRouterId"]
    ]
    return number_paged(routers, p, "VRouters", "VRouter")
