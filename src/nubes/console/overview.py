"""The Overview page: the region's instances by status and its other resources, counted."""

from __future__ import annotations

import asyncio
import re

from nubes.client import ClientError
from nubes.console.routing import Ctx, get
from nubes.console.web import Page

INSTANCE_STATUSES = ("Pending", "Starting", "Running", "Stopping", "Stopped")


async def total(ctx: Ctx, product: str, action: str, **params: str) -> int:
    answer = await ctx.call(product, action, RegionId=ctx.region_id, PageSize="1", **params)
    return int(answer.get("TotalCount", 0))


async def overview(ctx: Ctx, _: re.Match[str]) -> Page:
    try:
        totals = await asyncio.gather(
            *(total(ctx, "ecs", "DescribeInstances", Status=s) for s in INSTANCE_STATUSES),
            total(ctx, "ecs", "DescribeDisks"),
            total(ctx, "ecs", "DescribeSnapshots"),
            total(ctx, "ecs", "DescribeImages", ImageOwnerAlias="self"),
            total(ctx, "vpc", "DescribeVpcs"),
            total(ctx, "ecs", "DescribeSecurityGroups"),
        )
    except ClientError as error:
        return ctx.render("overview.html", error=error, http_status=200, instances={}, counts={})
    n = len(INSTANCE_STATUSES)
    instances = dict(zip(INSTANCE_STATUSES, totals[:n]))
    names = ("Disks", "Snapshots", "Custom images", "VPCs", "Security groups")
    counts = dict(zip(names, totals[n:]))
    return ctx.render("overview.html", instances=instances, counts=counts)


ROUTES = [get("/", overview)]
