"""ECS DescribeAvailableResource: what can be created where, with its limits."""

from __future__ import annotations

from typing import Any

from nubes.actions.common import INSTANCE_CHARGE_TYPE, REGION_ID, SPOT_STRATEGY
from nubes.api.context import ActionContext
from nubes.api.params import Integer, Number, String
from nubes.api.registry import ActionTable
from nubes.catalog.model import Catalog, InstanceType, Region
from nubes.domain.disk_categories import CATEGORIES, DATA, SYSTEM, overall_range
from nubes.domain.regions import require_region, zones_of

actions = ActionTable("ecs")

DESTINATIONS = ("Zone", "IoOptimized", "InstanceType", "SystemDisk", "DataDisk", "Network", "ddh")


def _available(value: str, **extra: Any) -> dict[str, Any]:
    return {"Value": value, "Status": "Available", "StatusCategory": "WithStock", **extra}


def _offered(catalog: Catalog, region: Region, p: dict[str, Any]) -> bool:
    """Whether the filters that every zone answers alike leave anything: nubes offers I/O
    optimized, VPC-connected, pay-as-you-go instances and disks of the region's instance types."""
    if p["IoOptimized"] == "none" or p["NetworkCategory"] == "classic":
        return False
    if p["ResourceType"] in ("reservedinstance", "ddh"):
        return False
    return bool(_types(catalog, region, p))


def _types(catalog: Catalog, region: Region, p: dict[str, Any]) -> list[InstanceType]:
    """The region's instance types that InstanceType, Cores and Memory leave (all when none is
    given); every answer is narrowed by them, as ECS narrows its zones and resources."""
    types = catalog.types_in_region(region)
    if p["InstanceType"]:
        types = [t for t in types if t.type_id == p["InstanceType"]]
    if p["Cores"] is not None:
        types = [t for t in types if t.cpu == p["Cores"]]
    if p["Memory"] is not None:
        types = [t for t in types if t.memory_gib == p["Memory"]]
    return types


def _supported(catalog: Catalog, region: Region, zone_id: str, p: dict[str, Any]) -> list[dict[str, Any]]:
    destination = p["DestinationResource"]
    if not _offered(catalog, region, p):
        return []
    if destination == "Zone":
        return [_available(zone_id)]
    if destination == "IoOptimized":
        return [_available("optimized")]
    if destination == "Network":
        return [_available("vpc")]
    if destination == "ddh":
        return []
    if destination == "InstanceType":
        return [_available(t.type_id) for t in _types(catalog, region, p)]
    categories = [c for c in catalog.disk_categories(region) if c in CATEGORIES]
    disk_type = SYSTEM if destination == "SystemDisk" else DATA
    wanted = p["SystemDiskCategory"] if disk_type == SYSTEM else p["DataDiskCategory"]
    return [
        _available(name, Min=sizes.min_gib, Max=sizes.max_gib, Unit="GiB")
        for name in categories
        if not wanted or name == wanted
        for sizes in [overall_range(name, disk_type)]
    ]


@actions.define(
    "DescribeAvailableResource",
    [
        REGION_ID,
        String("DestinationResource", required=True, choices=DESTINATIONS),
        String("ZoneId", max_length=64),
        INSTANCE_CHARGE_TYPE,
        SPOT_STRATEGY,
        String("InstanceType", max_length=64),
        String("IoOptimized", choices=("none", "optimized"), default="optimized"),
        String("SystemDiskCategory", max_length=64),
        String("DataDiskCategory", max_length=64),
        String("NetworkCategory", choices=("vpc", "classic"), default="vpc"),
        Integer("Cores", minimum=1),
        Number("Memory", minimum=0),
        String("ResourceType", choices=("instance", "disk", "reservedinstance", "ddh"), default="instance"),
    ],
)
def describe_available_resource(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Per zone, the resources of one kind that can be created now."""
    catalog = ctx.services.catalog
    region = require_region(catalog, p["RegionId"])
    zones = []
    for zone in zones_of(region, p["ZoneId"]):
        supported = _supported(catalog, region, zone.zone_id, p)
        zones.append(
            {
                "RegionId": region.region_id,
                "ZoneId": zone.zone_id,
                "Status": "Available",
                "StatusCategory": "WithStock",
                "AvailableResources": {
                    "AvailableResource": [
                        {
                            "Type": p["DestinationResource"],
                            "SupportedResources": {"SupportedResource": supported},
                        }
                    ]
                },
            }
        )
    return {"AvailableZones": {"AvailableZone": zones}}
