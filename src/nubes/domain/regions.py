"""Rules about regions and zones, on top of the catalog."""

from __future__ import annotations

from nubes.api.errors import ApiError
from nubes.catalog.model import Catalog, Region, Zone


def require_region(catalog: Catalog, region_id: str) -> Region:
    region = catalog.region(region_id)
    if region is None:
        raise ApiError(
            "InvalidRegionId.NotFound",
            f"The specified RegionId {region_id!r} does not exist; DescribeRegions lists the valid ones.",
            404,
        )
    return region


def zones_of(region: Region, zone_id: str | None) -> list[Zone]:
    """All zones of the region, or the one named; an unknown zone is InvalidZoneId.NotFound."""
    if not zone_id:
        return list(region.zones)
    for zone in region.zones:
        if zone.zone_id == zone_id:
            return [zone]
    raise ApiError(
        "InvalidZoneId.NotFound",
        f"The specified ZoneId {zone_id!r} does not exist in region {region.region_id}.",
        404,
    )
