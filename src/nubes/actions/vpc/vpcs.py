"""VPC API: CreateVpc, DeleteVpc, DescribeVpcs, DescribeVpcAttribute, ModifyVpcAttribute."""

from __future__ import annotations

from typing import Any

from nubes import errors
from nubes.actions.common import (
    CLIENT_TOKEN,
    DRY_RUN,
    OPTIONAL_REGION_ID,
    REGION_ID,
    RESOURCE_GROUP_ID,
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
from nubes.domain.common import Scope
from nubes.store.models import Vpc

actions = ActionTable("vpc")

VPC_ID = String("VpcId", required=True, max_length=64)


def render_vpc(
    ctx: ActionContext, vpc: Vpc, vswitch_ids: list[str], tags: list[tuple[str, str]]
) -> dict[str, Any]:
    return {
        "VpcId": vpc.id,
        "RegionId": vpc.region_id,
        "Status": vpc.status,
        "VpcName": vpc.name,
        "CreationTime": iso8601_seconds(vpc.created_at),
        "CidrBlock": vpc.cidr,
        "Ipv6CidrBlock": "",
        "Ipv6CidrBlocks": {"Ipv6CidrBlock": []},
        "VRouterId": vpc.vrouter_id,
        "Description": vpc.description,
        "IsDefault": vpc.is_default,
        "ResourceGroupId": vpc.resource_group_id,
        "OwnerId": int(ctx.principal.uid),
        "EnabledIpv6": False,
        "DnsHostnameStatus": "DISABLED",
        "CenStatus": "",
        "DhcpOptionsSetId": "",
        "DhcpOptionsSetStatus": "",
        "VSwitchIds": {"VSwitchId": vswitch_ids},
        "RouterTableIds": {"RouterTableIds": [vpc.route_table_id]},
        "NatGatewayIds": {"NatGatewayIds": []},
        "SecondaryCidrBlocks": {"SecondaryCidrBlock": []},
        "UserCidrs": {"UserCidr": []},
        "Tags": tag_set(tags, vpc=True),
    }


@actions.define(
    "CreateVpc",
    [
        REGION_ID,
        String("CidrBlock", max_length=64),
        String("VpcName", max_length=128),
        String("Description", max_length=256),
        RESOURCE_GROUP_ID,
        CLIENT_TOKEN,
        DRY_RUN,
        Boolean(
            "EnableIpv6",
            default=False,
            unsupported_values=(True,),
            unsupported_because="VPCs have IPv4 addresses only",
        ),
        TAGS,
    ],
    idempotent=True,
)
def create_vpc(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Create a VPC (172.16.0.0/12 unless CidrBlock says otherwise), with its Tag.N; Pending
    until the host has built it."""
    vpc = ctx.services.vpcs.create_vpc(
        ctx.scope(p["RegionId"]),
        p["CidrBlock"],
        p["VpcName"],
        p["Description"],
        p["ResourceGroupId"],
        p["DryRun"],
        tag_pairs(p),
    )
    return {
        "VpcId": vpc.id,
        "VRouterId": vpc.vrouter_id,
        "RouteTableId": vpc.route_table_id,
        "ResourceGroupId": vpc.resource_group_id,
    }


def vpc_scope(ctx: ActionContext, region_id: str | None, vpc_id: str) -> Scope:
    """The scope of an action whose RegionId is optional: the given region, else the VPC's."""
    return ctx.scope(region_id or ctx.services.vpcs.region_of(ctx.principal.account_id, vpc_id))


@actions.define(
    "DeleteVpc",
    [
        OPTIONAL_REGION_ID,
        VPC_ID,
        DRY_RUN,
        CLIENT_TOKEN,
        # ECS: forcing deletes the VPC's IPv4 and IPv6 gateways and the routes to them, which
        # nubes never has; vSwitches, security groups and other routes still stand in the way.
        Boolean("ForceDelete", default=False),
    ],
    idempotent=True,
)
def delete_vpc(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Delete an empty VPC (no vSwitches, security groups or custom routes left)."""
    ctx.services.vpcs.delete_vpc(vpc_scope(ctx, p["RegionId"], p["VpcId"]), p["VpcId"], p["DryRun"])
    return {}


@actions.define(
    "DescribeVpcs",
    [
        REGION_ID,
        String("VpcId", max_length=1024),
        String("VpcName", max_length=128),
        Boolean("IsDefault"),
        String("ResourceGroupId", max_length=64),
        String("DhcpOptionsSetId", max_length=64),
        Boolean("EnableIpv6"),
        Integer("VpcOwnerId", minimum=0),
        TAGS,
        DRY_RUN,
        *page_params(),
    ],
)
def describe_vpcs(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The caller's VPCs in a region; VpcId takes up to 20 IDs separated by commas; Tag.N: the
    VPCs carrying every tag. No VPC has a DHCP options set or IPv6 (DhcpOptionsSetId and
    EnableIpv6=true match none), and each is owned by the caller (VpcOwnerId: the caller's UID)."""
    scope = ctx.scope(p["RegionId"])
    vpc_ids = [v.strip() for v in p["VpcId"].split(",") if v.strip()] if p["VpcId"] else None
    vpcs = ctx.services.vpcs.describe_vpcs(
        scope, vpc_ids, p["VpcName"], p["IsDefault"], p["ResourceGroupId"], tag_filter(p)
    )
    if (
        p["DhcpOptionsSetId"]
        or p["EnableIpv6"]
        or (p["VpcOwnerId"] is not None and str(p["VpcOwnerId"]) != ctx.principal.uid)
    ):
        vpcs = []
    switches = ctx.services.vpcs.vswitch_ids_by_vpc([v.id for v in vpcs])
    tags = ctx.services.tags.of(scope, "vpc", (v.id for v in vpcs))
    items: list[object] = [render_vpc(ctx, v, switches[v.id], tags.get(v.id, [])) for v in vpcs]
    return number_paged(items, p, "Vpcs", "Vpc")


@actions.define("DescribeVpcAttribute", [REGION_ID, VPC_ID, DRY_RUN, Boolean("IsDefault")])
def describe_vpc_attribute(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """One VPC in detail; IsDefault, when given, must say whether it is the region's default VPC
    (else the VPC is not found)."""
    scope = ctx.scope(p["RegionId"])
    vpc = ctx.services.vpcs.get_vpc(scope, p["VpcId"])
    if p["IsDefault"] is not None and p["IsDefault"] != vpc.is_default:
        raise errors.invalid_id_not_found("Vpc", p["VpcId"])
    tags = ctx.services.tags.of(scope, "vpc", [vpc.id]).get(vpc.id, [])
    body = render_vpc(ctx, vpc, ctx.services.vpcs.vswitch_ids_by_vpc([vpc.id])[vpc.id], tags)
    body.update(
        {
            "ClassicLinkEnabled": False,
            "SupportIpv4Gateway": False,
            "Ipv4GatewayId": "",
            "AssociatedCens": {"AssociatedCen": []},
            "CloudResources": {"CloudResourceSetType": []},
            "AssociatedPropagationSources": {"AssociatedPropagationSources": []},  # (the SDK's name twice)
        }
    )
    return body


@actions.define(
    "ModifyVpcAttribute",
    [
        OPTIONAL_REGION_ID,
        VPC_ID,
        String("VpcName", max_length=128),
        String("Description", max_length=256),
        String("CidrBlock", max_length=64),
    ],
)
def modify_vpc_attribute(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Rename a VPC or change its description (CidrBlock: only to the one it has)."""
    scope = vpc_scope(ctx, p["RegionId"], p["VpcId"])
    if p["CidrBlock"]:
        vpc = ctx.services.vpcs.get_vpc(scope, p["VpcId"])
        if p["CidrBlock"] != vpc.cidr:
            raise errors.operation_unsupported_cidr_block()
    ctx.services.vpcs.modify_vpc(scope, p["VpcId"], p["VpcName"], p["Description"])
    return {}
