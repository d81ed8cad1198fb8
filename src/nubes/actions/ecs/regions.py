"""ECS DescribeRegions and DescribeZones."""

from __future__ import annotations

from typing import Any

from nubes.actions.common import ACCEPT_LANGUAGE, INSTANCE_CHARGE_TYPE, REGION_ID, SPOT_STRATEGY
from nubes.api.context import ActionContext
from nubes.api.params import Boolean, String
from nubes.api.registry import ActionTable
from nubes.domain.regions import require_region

actions = ActionTable("ecs")

RESOURCE_CREATION = ["VSwitch", "IoOptimized", "Instance", "Disk", "DedicatedHost"]
# DescribeRegions' ResourceType: every region offers instances and disks; none offers reserved
# instances, storage capacity units or elasticity assurances ("demand"), so those list no region.
OFFERED_EVERYWHERE = ("instance", "disk")


@actions.define(
    "DescribeRegions",
    [
        ACCEPT_LANGUAGE,
        INSTANCE_CHARGE_TYPE,
        String(
            "ResourceType",
            choices=("instance", "disk", "reservedinstance", "scu", "demand"),
            default="instance",
        ),
    ],
)
def describe_regions(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The regions this nubes offers, with their ECS endpoints."""
    language = p["AcceptLanguage"]
    regions = [
        {
            "RegionId": r.region_id,
            "LocalName": r.local_name(language),
            "RegionEndpoint": r.endpoint,
            "Status": "available",
        }
        for r in ctx.services.catalog.regions
        if p["ResourceType"] in OFFERED_EVERYWHERE
    ]
    return {"Regions": {"Region": regions}}


@actions.define(
    "DescribeZones",
    [REGION_ID, ACCEPT_LANGUAGE, INSTANCE_CHARGE_TYPE, SPOT_STRATEGY, Boolean("Verbose", default=True)],
)
def describe_zones(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The zones of a region and what can be created in each."""
    catalog = ctx.services.catalog
    region = require_region(catalog, p["RegionId"])
    types = [t.type_id for t in catalog.types_in_region(region)]
    disks = catalog.disk_categories(region)
    families = list(region.families)
    generations = sorted({f.generation for fid in families if (f := catalog.family(fid)) is not None})
    zones = []
    for zone in region.zones:
        item: dict[str, Any] = {
            "ZoneId": zone.zone_id,
            "LocalName": zone.local_name(p["AcceptLanguage"]),
            "ZoneType": zone.zone_type,
            "AvailableResourceCreation": {"ResourceTypes": RESOURCE_CREATION},
            "AvailableDiskCategories": {"DiskCategories": disks},
            "AvailableVolumeCategories": {"VolumeCategories": disks},
            "AvailableDedicatedHostTypes": {"DedicatedHostType": []},
            "DedicatedHostGenerations": {"DedicatedHostGeneration": []},
        }
        if p["Verbose"]:
            item["AvailableInstanceTypes"] = {"InstanceTypes": types}
            item["AvailableResources"] = {
                "ResourcesInfo": [
                    {
                        "IoOptimized": True,
                        "InstanceGenerations": {"supportedInstanceGeneration": generations},
                        "InstanceTypeFamilies": {"supportedInstanceTypeFamily": families},
                        "InstanceTypes": {"supportedInstanceType": types},
                        "NetworkTypes": {"supportedNetworkCategory": ["vpc"]},
                        "SystemDiskCategories": {"supportedSystemDiskCategory": disks},
                        "DataDiskCategories": {"supportedDataDiskCategory": disks},
                    }
                ]
            }
        zones.append(item)
    return {"Zones": {"Zone": zones}}
