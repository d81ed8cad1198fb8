"""VPC API: route tables and entries, vRouters."""

from __future__ import annotations

from typing import Any

from nubes import errors
from nubes.actions.common import CLIENT_TOKEN, DRY_RUN, REGION_ID, TAGS, tag_filter, tag_set
from nubes.actions.paging import NEXT_TOKEN, number_paged, page_params, token_page
from nubes.actions.vpc.vpcs import OPTIONAL_REGION_ID
from nubes.api.context import ActionContext
from nubes.api.params import Integer, String, StringList
from nubes.api.registry import ActionTable
from nubes.clock import iso8601_seconds
from nubes.domain.routes import RouteView

actions = ActionTable("vpc")


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
    """The route tables of the caller's VPCs: each VPC has one system table; Tag.N: the tables
    carrying every tag."""
    scope = ctx.scope(p["RegionId"])
    vpcs = ctx.services.vpcs.describe_vpcs(
        scope,
        [p["VpcId"]] if p["VpcId"] else None,
        resource_group_id=p["ResourceGroupId"],  # a system table is in its VPC's resource group
        route_table_tags=tag_filter(p),
    )
    switches = ctx.services.vpcs.vswitch_ids_by_vpc([v.id for v in vpcs])
    tags = ctx.services.tags.of(scope, "routetable", (v.route_table_id for v in vpcs))
    tables = []
    for vpc in vpcs:
        if p["RouterId"] and p["RouterId"] != vpc.vrouter_id:
            continue
        if p["RouteTableId"] and p["RouteTableId"] != vpc.route_table_id:
            continue
        if p["RouteTableType"] == "Custom" or p["RouterType"] == "VBR" or p["RouteTableName"]:
            continue
        tables.append(
            {
                "VpcId": vpc.id,
                "RouterId": vpc.vrouter_id,
                "RouterType": "VRouter",
                "RouteTableId": vpc.route_table_id,
                "RouteTableName": "",
                "RouteTableType": "System",
                "AssociateType": "VSwitch",
                "Description": "",
                "Status": "Available",
                "CreationTime": iso8601_seconds(vpc.created_at),
                "OwnerId": int(ctx.principal.uid),
                "ResourceGroupId": vpc.resource_group_id,
                "RoutePropagationEnable": True,
                "VSwitchIds": {"VSwitchId": switches[vpc.id]},
                "GatewayIds": {"GatewayIds": []},
                "Tags": tag_set(tags.get(vpc.route_table_id, []), vpc=True),
            }
        )
    body = number_paged(list(tables), p, "RouterTableList", "RouterTableListType")
    return body


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
    """Add a custom route whose next hop is an instance or a network interface of the VPC."""
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


@actions.define("DescribeVRouters", [REGION_ID, String("VRouterId", max_length=64), *page_params()])
def describe_vrouters(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The vRouter of each VPC."""
    vpcs = ctx.services.vpcs.describe_vpcs(ctx.scope(p["RegionId"]))
    routers: list[object] = [
        {
            "VRouterId": v.vrouter_id,
            "VpcId": v.id,
            "RegionId": v.region_id,
            "VRouterName": "",
            "Description": "",
            "CreationTime": iso8601_seconds(v.created_at),
            "RouteTableIds": {"RouteTableId": [v.route_table_id]},
        }
        for v in vpcs
        if not p["VRouterId"] or v.vrouter_id == p["VRouterId"]
    ]
    return number_paged(routers, p, "VRouters", "VRouter")
