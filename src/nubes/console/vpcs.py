"""VPC pages: the list (/vpcs) with Create and Delete, and a VPC's page (/vpcs/<id>) with its
vSwitches, their Create (in a zone of DescribeZones) and Delete. Every form is a VPC API call."""

from __future__ import annotations

import re

from nubes.client import ClientError
from nubes.console.forms import ID, ListPage, choices, detail_form, kept, status_of
from nubes.console.listing import listing
from nubes.console.routing import Ctx, Route, get, post
from nubes.console.web import Page

VPCS = ListPage("/vpcs", "vpcs.html", "vpc", "DescribeVpcs", ("Vpcs", "Vpc"))


async def vpc(ctx: Ctx, match: re.Match[str], refused: ClientError | None = None) -> Page:
    vpc_id = match["id"]
    try:
        answer = await ctx.call("vpc", "DescribeVpcAttribute", RegionId=ctx.region_id, VpcId=vpc_id)
    except ClientError as error:
        return ctx.render("vpc.html", error=error, vpc=None)
    vswitches = await listing(
        ctx,
        f"/vpcs/{vpc_id}",
        "vpc",
        "DescribeVSwitches",
        ("VSwitches", "VSwitch"),
        RegionId=ctx.region_id,
        VpcId=vpc_id,
    )
    zones = await choices(ctx, "vpc", "DescribeZones", ("Zones", "Zone"), RegionId=ctx.region_id)
    return ctx.render(
        "vpc.html",
        error=refused or vswitches.error,
        http_status=status_of(refused),
        kept=kept(ctx, refused),
        vpc=answer,
        listing=vswitches,
        zones=[z["ZoneId"] for z in zones],
    )


ROUTES: list[Route] = [
    get("/vpcs", VPCS.show),
    post("/vpcs/create", VPCS.form("vpc", "CreateVpc", "VpcName", "CidrBlock", "Description")),
    post("/vpcs/delete", VPCS.form("vpc", "DeleteVpc", "VpcId", confirm="the deletion")),
    get(f"/vpcs/(?P<id>{ID})", vpc),
    post(
        f"/vpcs/(?P<id>{ID})/vswitches/create",
        detail_form(
            vpc, "/vpcs", "VpcId", "vpc", "CreateVSwitch", "VSwitchName", "ZoneId", "CidrBlock", "Description"
        ),
    ),
    post(
        f"/vpcs/(?P<id>{ID})/vswitches/delete",
        detail_form(vpc, "/vpcs", "", "vpc", "DeleteVSwitch", "VSwitchId", confirm="the deletion"),
    ),
]
