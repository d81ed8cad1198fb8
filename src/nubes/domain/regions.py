"""Rules about regions and zones, on top of the catalog."""

from __future__ import annotations

from nubes import errors
from nubes.catalog.model import Catalog, Region, Zone


def require_region(catalog: Catalog, region_id: str) -> Region:
    region = catalog.region(region_id)
    if region is None:
        raise errors.invalid_region_id_not_found(
            f"The specified RegionId {region_id!r} does not exist; DescribeRegions lists the valid ones."
        )
    return region


def zones_of(region: Region, zone_id: str | None) -> list[Zone]:
    """All zones of the region, or the one named; an unknown zone is InvalidZoneId.NotFound."""
    if not zone_id:
        return list(region.zones)
    for zone in region.zones:
        if zone.zone_id == zone_id:
            return [zone]
    raise errors.invalid_zone_id_not_found(
        f"The specified ZoneId {zone_id!r} does not exist in region {region.region_id}."
    )
