"""EIP pages (/eips): the list, Allocate (bandwidth, name), Associate an Available EIP with an
instance of the region (chosen among DescribeInstances), Unassociate and Release."""

from __future__ import annotations

from typing import Any

from nubes.console.forms import ListPage, choices
from nubes.console.routing import Ctx, Route, get, post


async def instance_choices(ctx: Ctx) -> dict[str, Any]:
    return {
        "instances": await choices(
            ctx, "ecs", "DescribeInstances", ("Instances", "Instance"), RegionId=ctx.region_id
        )
    }


EIPS = ListPage(
    "/eips", "eips.html", "vpc", "DescribeEipAddresses", ("EipAddresses", "EipAddress"), instance_choices
)

ROUTES: list[Route] = [
    get("/eips", EIPS.show),
    post("/eips/allocate", EIPS.form("vpc", "AllocateEipAddress", "Bandwidth", "Name", "Description")),
    post(
        "/eips/associate",
        EIPS.form("vpc", "AssociateEipAddress", "AllocationId", "InstanceId", InstanceType="EcsInstance"),
    ),
    post(
        "/eips/unassociate",
        EIPS.form("vpc", "UnassociateEipAddress", "AllocationId", "InstanceId", "InstanceType"),
    ),
    post("/eips/release", EIPS.form("vpc", "ReleaseEipAddress", "AllocationId", confirm="the release")),
]
