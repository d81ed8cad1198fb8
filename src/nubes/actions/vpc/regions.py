"""VPC DescribeRegions and DescribeZones (2016-04-28)."""

from __future__ import annotations

from typing import Any

from nubes.actions.common import ACCEPT_LANGUAGE, REGION_ID
from nubes.api.context import ActionContext
from nubes.api.params import String
from nubes.api.registry import ActionTable
from nubes.domain.regions import require_region

actions = ActionTable("vpc")


@actions.define("DescribeRegions", [ACCEPT_LANGUAGE])
def describe_regions(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The regions, with their VPC endpoints."""
    regions = [
        {
            "RegionId": r.region_id,
            "LocalName": r.local_name(p["AcceptLanguage"]),
            "RegionEndpoint": r.vpc_endpoint,
        }
        for r in ctx.services.catalog.regions
    ]
    return {"Regions": {"Region": regions}}


@actions.define(
    "DescribeZones", [REGION_ID, ACCEPT_LANGUAGE, String("ZoneType", choices=("AvailabilityZone",))]
)
def describe_zones(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The zones of a region."""
    region = require_region(ctx.services.catalog, p["RegionId"])
    zones = [
        {"ZoneId": z.zone_id, "LocalName": z.local_name(p["AcceptLanguage"]), "ZoneType": z.zone_type}
        for z in region.zones
        if not p["ZoneType"] or z.zone_type == p["ZoneType"]
    ]
    return {"Zones": {"Zone": zones}}
