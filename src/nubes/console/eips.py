"""EIP pages (/eips): the list, Allocate (bandwidth, name), Associate an Available EIP with an
instance of the region (chosen among DescribeInstances), Unassociate and Release."""

from __future__ import annotations

import re

from nubes.client import ClientError
from nubes.console.forms import choices, fields, render, submit
from nubes.console.listing import listing
from nubes.console.routing import Ctx, Route, get, post
from nubes.console.web import Page


async def eips(ctx: Ctx, _: re.Match[str] | None = None, refused: ClientError | None = None) -> Page:
    found = await listing(
        ctx, "/eips", "vpc", "DescribeEipAddresses", ("EipAddresses", "EipAddress"), RegionId=ctx.region_id
    )
    instances = await choices(
        ctx, "ecs", "DescribeInstances", ("Instances", "Instance"), RegionId=ctx.region_id
    )
    return render(ctx, "eips.html", refused, found, instances=instances)


async def eip_action(ctx: Ctx, action: str, **params: str) -> Page:
    allocation = ctx.request.form.get("AllocationId", "")
    return await submit(
        ctx,
        "/eips",
        lambda e: eips(ctx, refused=e),
        "vpc",
        action,
        RegionId=ctx.region_id,
        AllocationId=allocation,
        **params,
    )


async def allocate(ctx: Ctx, _: re.Match[str]) -> Page:
    params = fields(ctx, "Bandwidth", "Name", "Description")
    return await submit(
        ctx,
        "/eips",
        lambda e: eips(ctx, refused=e),
        "vpc",
        "AllocateEipAddress",
        RegionId=ctx.region_id,
        **params,
    )


async def associate(ctx: Ctx, _: re.Match[str]) -> Page:
    return await eip_action(
        ctx, "AssociateEipAddress", InstanceType="EcsInstance", **fields(ctx, "InstanceId")
    )


async def unassociate(ctx: Ctx, _: re.Match[str]) -> Page:
    return await eip_action(ctx, "UnassociateEipAddress", **fields(ctx, "InstanceId", "InstanceType"))


async def release(ctx: Ctx, _: re.Match[str]) -> Page:
    return await eip_action(ctx, "ReleaseEipAddress")


ROUTES: list[Route] = [
    get("/eips", eips),
    post("/eips/allocate", allocate),
    post("/eips/associate", associate),
    post("/eips/unassociate", unassociate),
    post("/eips/release", release),
]
