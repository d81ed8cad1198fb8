"""NAT gateway pages: the list (/nat-gateways) with Create (a vSwitch of a VPC) and Delete, and
a gateway's page (/nat-gateways/<id>): its EIPs (bind an Available one, unbind), its SNAT
entries and its forward (DNAT) entries, each with Create and Delete."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from nubes.client import ClientError
from nubes.console.forms import ID, choices, fields, render, rows, submit
from nubes.console.listing import listing
from nubes.console.routing import Ctx, Route, get, post
from nubes.console.web import Page


async def gateways(ctx: Ctx, _: re.Match[str] | None = None, refused: ClientError | None = None) -> Page:
    found = await listing(
        ctx,
        "/nat-gateways",
        "vpc",
        "DescribeNatGateways",
        ("NatGateways", "NatGateway"),
        RegionId=ctx.region_id,
    )
    vpcs, vswitches = await asyncio.gather(
        choices(ctx, "vpc", "DescribeVpcs", ("Vpcs", "Vpc"), RegionId=ctx.region_id),
        choices(ctx, "vpc", "DescribeVSwitches", ("VSwitches", "VSwitch"), RegionId=ctx.region_id),
    )
    return render(ctx, "nat_gateways.html", refused, found, vpcs=vpcs, vswitches=vswitches)


async def create(ctx: Ctx, _: re.Match[str]) -> Page:
    # A vSwitch of another VPC than the one chosen is the API's refusal, shown on the page.
    params = fields(ctx, "Name", "VpcId", "VSwitchId", "Description")
    return await submit(
        ctx,
        "/nat-gateways",
        lambda e: gateways(ctx, refused=e),
        "vpc",
        "CreateNatGateway",
        RegionId=ctx.region_id,
        **params,
    )


async def delete(ctx: Ctx, _: re.Match[str]) -> Page:
    params = fields(ctx, "NatGatewayId")
    if ctx.request.form.get("Force") == "true":
        params["Force"] = "true"
    return await submit(
        ctx,
        "/nat-gateways",
        lambda e: gateways(ctx, refused=e),
        "vpc",
        "DeleteNatGateway",
        RegionId=ctx.region_id,
        **params,
    )


async def gateway(ctx: Ctx, match: re.Match[str], refused: ClientError | None = None) -> Page:
    gateway_id = match["id"]
    region = ctx.region_id
    try:
        # The entries first: for an unknown gateway, or another account's, the API's NotFound.
        snat, dnat = await asyncio.gather(
            ctx.call(
                "vpc", "DescribeSnatTableEntries", RegionId=region, NatGatewayId=gateway_id, PageSize="50"
            ),
            ctx.call(
                "vpc", "DescribeForwardTableEntries", RegionId=region, NatGatewayId=gateway_id, PageSize="50"
            ),
        )
        [found] = rows(
            await ctx.call("vpc", "DescribeNatGateways", RegionId=region, NatGatewayId=gateway_id),
            "NatGateways",
            "NatGateway",
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
    status = (refused.http_status or 400) if refused else 200
    return ctx.render(
        "nat_gateway.html",
        error=refused,
        http_status=status,
        gateway=found,
        ips=rows(found, "IpLists", "IpList"),
        available=eips,
        vswitches=vswitches,
        snat=rows(snat, "SnatTableEntries", "SnatTableEntry"),
        dnat=rows(dnat, "ForwardTableEntries", "ForwardTableEntry"),
        snat_table=_first(found, "SnatTableIds", "SnatTableId"),
        forward_table=_first(found, "ForwardTableIds", "ForwardTableId"),
    )


def _first(gateway: dict[str, Any], outer: str, inner: str) -> str:
    tables = gateway.get(outer, {}).get(inner, [])
    return str(tables[0]) if tables else ""


# What each of the gateway page's forms calls, and the form fields it sends (API names).
ENTRY_ACTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "bind": ("AssociateEipAddress", ("AllocationId",)),
    "unbind": ("UnassociateEipAddress", ("AllocationId",)),
    "snat/create": (
        "CreateSnatEntry",
        ("SnatTableId", "SnatIp", "SourceVSwitchId", "SourceCIDR", "SnatEntryName"),
    ),
    "snat/delete": ("DeleteSnatEntry", ("SnatTableId", "SnatEntryId")),
    "dnat/create": (
        "CreateForwardEntry",
        (
            "ForwardTableId",
            "IpProtocol",
            "ExternalIp",
            "ExternalPort",
            "InternalIp",
            "InternalPort",
            "ForwardEntryName",
            "PortBreak",
        ),
    ),
    "dnat/delete": ("DeleteForwardEntry", ("ForwardTableId", "ForwardEntryId")),
}


async def entry_action(ctx: Ctx, match: re.Match[str]) -> Page:
    action, names = ENTRY_ACTIONS[match["action"]]
    params = fields(ctx, *names)
    if action.endswith("EipAddress"):  # the EIP's instance is this gateway
        params.update(InstanceId=match["id"], InstanceType="Nat")
    return await submit(
        ctx,
        f"/nat-gateways/{match['id']}",
        lambda e: gateway(ctx, match, e),
        "vpc",
        action,
        RegionId=ctx.region_id,
        **params,
    )


ROUTES: list[Route] = [
    get("/nat-gateways", gateways),
    post("/nat-gateways/create", create),
    post("/nat-gateways/delete", delete),
    get(f"/nat-gateways/(?P<id>{ID})", gateway),
    post(f"/nat-gateways/(?P<id>{ID})/(?P<action>{'|'.join(ENTRY_ACTIONS)})", entry_action),
]
