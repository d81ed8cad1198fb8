"""What the storage and image pages' action forms share: one API call that redirects (303) on
success and re-renders the page with the refusal otherwise, the choices their selects offer
(zones, instances, disks, snapshots), and the lists a form carries as numbered fields.

A form posts a list as numbered fields (`disk.1`, `disk.2`, ...), one checkbox each, because
the request's form keeps only the first value of a repeated name."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from nubes.client import ClientError
from nubes.console.routing import Ctx
from nubes.console.web import PREFIX, Page, redirect

# What an ID in a path may be: the API answers NotFound for a well-formed unknown one.
RESOURCE_ID = r"[A-Za-z0-9._-]{1,128}"
MAX_CHOICES = "100"  # the largest page DescribeInstances/DescribeDisks/DescribeSnapshots give

Refused = Callable[[ClientError], Awaitable[Page]]


async def attempt(ctx: Ctx, done: str, refused: Refused, product: str, action: str, **params: str) -> Page:
    """Call `action`; on success go to `done`, on a refusal show it on the page `refused` renders."""
    try:
        await ctx.call(product, action, **params)
    except ClientError as error:
        return await refused(error)
    return redirect(done)


async def create(
    ctx: Ctx, refused: Refused, path: str, id_field: str, product: str, action: str, **params: str
) -> Page:
    """Call a Create* `action`; on success go to the new resource's page (`path`/<its ID>)."""
    try:
        answer = await ctx.call(product, action, **params)
    except ClientError as error:
        return await refused(error)
    return redirect(f"{PREFIX}{path}/{answer[id_field]}")


def numbered(form: dict[str, str], prefix: str) -> list[str]:
    """The values of the fields `prefix.1`, `prefix.2`, ... that are well-formed IDs, in order."""
    pattern = re.compile(rf"{re.escape(prefix)}\.(\d+)")
    found = sorted((int(m[1]), v) for k, v in form.items() if (m := pattern.fullmatch(k)) and v)
    return [v for _, v in found if re.fullmatch(RESOURCE_ID, v)]


def json_list(values: list[str]) -> str:
    """["a","b"]: how some actions take a list in one parameter (diskIds, timePoints, ...)."""
    return json.dumps(values)


def words(text: str) -> list[str]:
    """The items of a comma- or space-separated field (account IDs)."""
    return [w for w in re.split(r"[\s,]+", text.strip()) if w]


def refusal(code: str, message: str, status: int = 400) -> ClientError:
    """A refusal of the console's own (a missing confirmation), shown as the API's are."""
    return ClientError(code, message, status)


async def zones(ctx: Ctx) -> tuple[list[str], list[str]]:
    """The region's zones, and the disk categories they sell (in the order the API lists them)."""
    answer = await ctx.call("ecs", "DescribeZones", RegionId=ctx.region_id)
    zone_ids: list[str] = []
    categories: dict[str, None] = {}
    for zone in answer.get("Zones", {}).get("Zone", []):
        zone_ids.append(str(zone.get("ZoneId", "")))
        for category in zone.get("AvailableDiskCategories", {}).get("DiskCategories", []):
            categories.setdefault(str(category))
    return zone_ids, list(categories)


async def instances(ctx: Ctx, **filters: str) -> list[dict[str, Any]]:
    answer = await ctx.call(
        "ecs", "DescribeInstances", RegionId=ctx.region_id, PageSize=MAX_CHOICES, **filters
    )
    return [
        {
            "id": i.get("InstanceId", ""),
            "name": i.get("InstanceName", ""),
            "zone": i.get("ZoneId", ""),
            "status": i.get("Status", ""),
        }
        for i in answer.get("Instances", {}).get("Instance", [])
    ]


async def disks(ctx: Ctx, **filters: str) -> list[dict[str, Any]]:
    answer = await ctx.call("ecs", "DescribeDisks", RegionId=ctx.region_id, PageSize=MAX_CHOICES, **filters)
    return list(answer.get("Disks", {}).get("Disk", []))


async def snapshots(ctx: Ctx, **filters: str) -> list[dict[str, Any]]:
    answer = await ctx.call(
        "ecs", "DescribeSnapshots", RegionId=ctx.region_id, PageSize=MAX_CHOICES, **filters
    )
    return list(answer.get("Snapshots", {}).get("Snapshot", []))


def picked(item: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """A row for a template: each of its names given the API field it shows ("" when absent)."""
    return {name: item.get(api_name, "") for name, api_name in names.items()}


def percent(progress: object) -> int:
    """A Progress as the API gives it ("40%") as a number for a <progress> bar."""
    try:
        return max(0, min(100, int(str(progress).rstrip("%") or 0)))
    except ValueError:
        return 0
