"""VPC pages: the list (/vpcs) with Create and Delete, and a VPC's page (/vpcs/<id>) with its
vSwitches, their Create (in a zone of DescribeZones) and Delete. Every form is a VPC API call."""

from __future__ import annotations

import re

from nubes.client import ClientError
from nubes.console.forms import ID, choices, fields, render, submit
from nubes.console.listing import listing
from nubes.console.routing import Ctx, Route, get, post
from nubes.console.web import Page


async def vpcs(ctx: Ctx, _: re.Match[str] | None = None, refused: ClientError | None = None) -> Page:
    found = await listing(ctx, "/vpcs", "vpc", "DescribeVpcs", ("Vpcs", "Vpc"), RegionId=ctx.region_id)
    return render(ctx, "vpcs.html", refused, found)


async def create(ctx: Ctx, _: re.Match[str]) -> Page:
    params = fields(ctx, "VpcName", "CidrBlock", "Description")
    return await submit(
        ctx, "/vpcs", lambda e: vpcs(ctx, refused=e), "vpc", "CreateVpc", RegionId=ctx.region_id, **params
    )


async def delete(ctx: Ctx, _: re.Match[str]) -> Page:
    vpc_id = ctx.request.form.get("VpcId", "")
    return await submit(
        ctx, "/vpcs", lambda e: vpcs(ctx, refused=e), "vpc", "DeleteVpc", RegionId=ctx.region_id, VpcId=vpc_id
    )


async def vpc(ctx: Ctx, match: re.Match[str], refused: ClientError | None = None) -> Page:
    vpc_id = match["id"]
    try:
        answer = await ctx.call("vpc", "DescribeVpcAttribute", RegionId=ctx.region_id, VpcId=vpc_id)
    except ClientError as error:
        return ctx.render("vpc.html", error=error, vpc=None)
    found = await listing(
        ctx,
        f"/vpcs/{vpc_id}",
        "vpc",
        "DescribeVSwitches",
        ("VSwitches", "VSwitch"),
        RegionId=ctx.region_id,
        VpcId=vpc_id,
    )
    zones = await choices(ctx, "vpc", "DescribeZones", ("Zones", "Zone"), RegionId=ctx.region_id)
    return render(ctx, "vpc.html", refused, found, vpc=answer, zones=[z["ZoneId"] for z in zones])


async def create_vswitch(ctx: Ctx, match: re.Match[str]) -> Page:
    params = fields(ctx, "VSwitchName", "ZoneId", "CidrBlock", "Description")
    return await submit(
        ctx,
        f"/vpcs/{match['id']}",
        lambda e: vpc(ctx, match, e),
        "vpc",
        "CreateVSwitch",
        RegionId=ctx.region_id,
        VpcId=match["id"],
        **params,
    )


async def delete_vswitch(ctx: Ctx, match: re.Match[str]) -> Page:
    vswitch_id = ctx.request.form.get("VSwitchId", "")
    return await submit(
        ctx,
        f"/vpcs/{match['id']}",
        lambda e: vpc(ctx, match, e),
        "vpc",
        "DeleteVSwitch",
        RegionId=ctx.region_id,
        VSwitchId=vswitch_id,
    )


ROUTES: list[Route] = [
    get("/vpcs", vpcs),
    post("/vpcs/create", create),
    post("/vpcs/delete", delete),
    get(f"/vpcs/(?P<id>{ID})", vpc),
    post(f"/vpcs/(?P<id>{ID})/vswitches/create", create_vswitch),
    post(f"/vpcs/(?P<id>{ID})/vswitches/delete", delete_vswitch),
]
