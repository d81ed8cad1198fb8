"""NAT gateway pages: the list (/nat-gateways) with Create (a vSwitch of a VPC) and Delete, and
a gateway's page (/nat-gateways/<id>): its EIPs (bind an Available one, unbind), its SNAT
entries and its forward (DNAT) entries, each with Create and Delete."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from nubes.client import ClientError
from nubes.console.forms import ID, ListPage, choices, detail_form, kept, rows, status_of
from nubes.console.routing import Ctx, Route, get, post
from nubes.console.web import Page

BASE = "/nat-gateways"
# DescribeSnatTableEntries and DescribeForwardTableEntries give 50 at the most in one page.
ENTRIES_SHOWN = "50"


async def network_choices(ctx: Ctx) -> dict[str, Any]:
    # A vSwitch of another VPC than the one chosen is the API's refusal, shown on the page.
    vpcs, vswitches = await asyncio.gather(
        choices(ctx, "vpc", "DescribeVpcs", ("Vpcs", "Vpc"), RegionId=ctx.region_id),
        choices(ctx, "vpc", "DescribeVSwitches", ("VSwitches", "VSwitch"), RegionId=ctx.region_id),
    )
    return {"vpcs": vpcs, "vswitches": vswitches}


GATEWAYS = ListPage(
    BASE, "nat_gateways.html", "vpc", "DescribeNatGateways", ("NatGateways", "NatGateway"), network_choices
)


async def gateway(ctx: Ctx, match: re.Match[str], refused: ClientError | None = None) -> Page:
    gateway_id, region = match["id"], ctx.region_id
    of_gateway = {"RegionId": region, "NatGatewayId": gateway_id}
    try:
        # The entries first: for an unknown gateway, or another account's, the API's NotFound.
        snat, dnat = await asyncio.gather(
            ctx.call("vpc", "DescribeSnatTableEntries", PageSize=ENTRIES_SHOWN, **of_gateway),
            ctx.call("vpc", "DescribeForwardTableEntries", PageSize=ENTRIES_SHOWN, **of_gateway),
        )
        [found] = rows(
            await ctx.call("vpc", "DescribeNatGateways", **of_gateway), "NatGateways", "NatGateway"
        )
    except ClientError as error:
        return ctx.render("nat_gateway.html", error=error, gateway=None)
    vswitches, eips = await asyncio.gather(
        choices(
            ctx, "vpc", "DescribeVSwitches", ("VSwitches", "VSwitch"), RegionId=region, VpcId=found["VpcId"]
        ),
        choices(
            ctx,
            "vpc",
            "DescribeEipAddresses",
            ("EipAddresses", "EipAddress"),
            RegionId=region,
            Status="Available",
        ),
    )
    return ctx.render(
        "nat_gateway.html",
        error=refused,
        http_status=status_of(refused),
        kept=kept(ctx, refused),
        gateway=found,
        ips=rows(found, "IpLists", "IpList"),
        available=eips,
        vswitches=vswitches,
        snat=rows(snat, "SnatTableEntries", "SnatTableEntry"),
        dnat=rows(dnat, "ForwardTableEntries", "ForwardTableEntry"),
        snat_table=_first(found, "SnatTableIds", "SnatTableId"),
        forward_table=_first(found, "ForwardTableIds", "ForwardTableId"),
    )


def _first(found: dict[str, Any], outer: str, inner: str) -> str:
    tables = rows(found, outer, inner)
    return str(tables[0]) if tables else ""


def _form(path: str, action: str, *names: str, bind: bool = False) -> Route:
    """A form of the gateway's page; an EIP's (bind) names the gateway as its instance."""
    handler = (
        detail_form(gateway, BASE, "InstanceId", "vpc", action, *names, InstanceType="Nat")
        if bind
        else detail_form(gateway, BASE, "", "vpc", action, *names)
    )
    return post(f"{BASE}/(?P<id>{ID})/{path}", handler)


ROUTES: list[Route] = [
    get(BASE, GATEWAYS.show),
    post(
        f"{BASE}/create",
        GATEWAYS.form("vpc", "CreateNatGateway", "Name", "VpcId", "VSwitchId", "Description"),
    ),
    post(
        f"{BASE}/delete",
        GATEWAYS.form("vpc", "DeleteNatGateway", "NatGatewayId", "Force", confirm="the deletion"),
    ),
    get(f"{BASE}/(?P<id>{ID})", gateway),
    _form("bind", "AssociateEipAddress", "AllocationId", bind=True),
    _form("unbind", "UnassociateEipAddress", "AllocationId", bind=True),
    _form(
        "snat/create",
        "CreateSnatEntry",
        "SnatTableId",
        "SnatIp",
        "SourceVSwitchId",
        "SourceCIDR",
        "SnatEntryName",
    ),
    _form("snat/delete", "DeleteSnatEntry", "SnatTableId", "SnatEntryId"),
    _form(
        "dnat/create",
        "CreateForwardEntry",
        "ForwardTableId",
        "IpProtocol",
        "ExternalIp",
        "ExternalPort",
        "InternalIp",
        "InternalPort",
        "ForwardEntryName",
        "PortBreak",
    ),
    _form("dnat/delete", "DeleteForwardEntry", "ForwardTableId", "ForwardEntryId"),
]
