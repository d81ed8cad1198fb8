"""ECS DescribeInstanceTypes and DescribeInstanceTypeFamilies."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from nubes.actions.common import REGION_ID
from nubes.actions.paging import token_page, token_params
from nubes.api.context import ActionContext
from nubes.api.params import Integer, Number, Param, String, StringList
from nubes.api.registry import ActionTable
from nubes.catalog.model import InstanceType
from nubes.domain.regions import require_region

actions = ActionTable("ecs")

# (parameter, instance-type field, comparison): one table drives every scalar filter.
_BOUNDS: list[tuple[str, str, Callable[[Any, Any], bool]]] = [
    ("MinimumCpuCoreCount", "CpuCoreCount", operator.ge),
    ("MaximumCpuCoreCount", "CpuCoreCount", operator.le),
    ("MinimumMemorySize", "MemorySize", operator.ge),
    ("MaximumMemorySize", "MemorySize", operator.le),
    ("MinimumGPUAmount", "GPUAmount", operator.ge),
    ("MaximumGPUAmount", "GPUAmount", operator.le),
    ("MinimumCpuSpeedFrequency", "CpuSpeedFrequency", operator.ge),
    ("MaximumCpuSpeedFrequency", "CpuSpeedFrequency", operator.le),
    ("MinimumCpuTurboFrequency", "CpuTurboFrequency", operator.ge),
    ("MaximumCpuTurboFrequency", "CpuTurboFrequency", operator.le),
    ("MinimumEniQuantity", "EniQuantity", operator.ge),
    ("MinimumEniPrivateIpAddressQuantity", "EniPrivateIpAddressQuantity", operator.ge),
    ("MinimumEniIpv6AddressQuantity", "EniIpv6AddressQuantity", operator.ge),
    ("MinimumInstanceBandwidthRx", "InstanceBandwidthRx", operator.ge),
    ("MinimumInstanceBandwidthTx", "InstanceBandwidthTx", operator.ge),
    ("MinimumInstancePpsRx", "InstancePpsRx", operator.ge),
    ("MinimumInstancePpsTx", "InstancePpsTx", operator.ge),
    ("MinimumBaselineCredit", "BaselineCredit", operator.ge),
    ("MinimumInitialCredit", "InitialCredit", operator.ge),
    ("MinimumDiskQuantity", "DiskQuantity", operator.ge),
    ("MinimumLocalStorageAmount", "LocalStorageAmount", operator.ge),
    ("MinimumLocalStorageCapacity", "LocalStorageCapacity", operator.ge),
    ("MinimumPrimaryEniQueueNumber", "PrimaryEniQueueNumber", operator.ge),
    ("MinimumSecondaryEniQueueNumber", "SecondaryEniQueueNumber", operator.ge),
    ("MinimumQueuePairNumber", "QueuePairNumber", operator.ge),
    ("MinimumEriQuantity", "EriQuantity", operator.ge),
]
_FLOAT_BOUNDS = {"MemorySize", "CpuSpeedFrequency", "CpuTurboFrequency"}

# (single-value parameter, list parameter, field): equality filters.
_MATCHES = [
    ("InstanceTypeFamily", "InstanceTypeFamilies", "InstanceTypeFamily"),
    ("InstanceCategory", "InstanceCategories", "InstanceCategory"),
    ("CpuArchitecture", "CpuArchitectures", "CpuArchitecture"),
    ("GPUSpec", "GpuSpecs", "GPUSpec"),
    ("LocalStorageCategory", "LocalStorageCategories", "LocalStorageCategory"),
    ("PhysicalProcessorModel", "PhysicalProcessorModels", "PhysicalProcessorModel"),
    (None, "InstanceTypes", "InstanceTypeId"),
]


def _bound_param(name: str, field: str) -> Param:
    if field in _FLOAT_BOUNDS:
        return Number(name, minimum=0)
    return Integer(name, minimum=0)


PARAMS: list[Param] = [
    *token_params(max_results=1600, default=1600),
    String("InstanceFamilyLevel", choices=("EntryLevel", "EnterpriseLevel", "CreditEntryLevel")),
    String("NvmeSupport", choices=("required", "supported", "unsupported")),
    # The attributes ECS adds to a type on request (network cards, encryption support, ...): nubes
    # renders every one of them always.
    StringList("AdditionalAttributes", max_items=10),
    *[_bound_param(name, field) for name, field, _ in _BOUNDS],
]
for single, plural, _field in _MATCHES:
    if single:
        PARAMS.append(String(single, max_length=128))
    PARAMS.append(StringList(plural, max_items=10))


Check = Callable[[dict[str, Any]], bool]


def _one_of(field: str, wanted: frozenset[Any]) -> Check:
    return lambda f: f.get(field) in wanted


def _bounded(field: str, compare: Callable[[Any, Any], bool], bound: Any) -> Check:
    return lambda f: bool(compare(f.get(field, 0), bound))


def _filters(p: dict[str, Any]) -> list[Check]:
    """The predicates a request asks for; an empty list matches every type."""
    checks: list[Check] = []
    for single, plural, field in _MATCHES:
        wanted = ([p[single]] if single and p[single] else []) + (p[plural] or [])
        if wanted:
            checks.append(_one_of(field, frozenset(wanted)))
    for name, field, compare in _BOUNDS:
        if p[name] is not None:
            checks.append(_bounded(field, compare, p[name]))
    for name in ("InstanceFamilyLevel", "NvmeSupport"):
        if p[name]:
            checks.append(_one_of(name, frozenset([p[name]])))
    return checks


# The order in which ECS lists an instance type's fields.
_FIELD_ORDER = [
    "InstanceTypeId",
    "InstanceTypeFamily",
    "InstanceCategory",
    "InstanceFamilyLevel",
    "CpuCoreCount",
    "MemorySize",
    "CpuArchitecture",
    "PhysicalProcessorModel",
    "CpuSpeedFrequency",
    "CpuTurboFrequency",
    "GPUAmount",
    "GPUSpec",
    "GPUMemorySize",
    "InstanceBandwidthRx",
    "InstanceBandwidthTx",
    "InstancePpsRx",
    "InstancePpsTx",
    "EniQuantity",
    "EniTotalQuantity",
    "EniPrivateIpAddressQuantity",
    "EniIpv6AddressQuantity",
    "EniTrunkSupported",
    "EriQuantity",
    "DiskQuantity",
    "LocalStorageAmount",
    "LocalStorageCapacity",
    "LocalStorageCategory",
    "PrimaryEniQueueNumber",
    "SecondaryEniQueueNumber",
    "MaximumQueueNumberPerEni",
    "TotalEniQueueQuantity",
    "QueuePairNumber",
    "BaselineCredit",
    "InitialCredit",
    "NvmeSupport",
    "JumboFrameSupport",
    "NetworkEncryptionSupport",
    "NetworkCardQuantity",
]


_RENDERED: dict[int, tuple[InstanceType, dict[str, Any]]] = {}


def render_type(t: InstanceType) -> dict[str, Any]:
    """Rendered once per catalog entry: the catalog does not change while the server runs."""
    cached = _RENDERED.get(id(t))
    if cached is not None and cached[0] is t:
        return cached[1]
    item = _render_type(t)
    _RENDERED[id(t)] = (t, item)
    return item


def _render_type(t: InstanceType) -> dict[str, Any]:
    f = t.fields
    item: dict[str, Any] = {name: f[name] for name in _FIELD_ORDER if name in f}
    item["InstanceTypeFamily"] = t.family
    item["CpuCoreCount"] = t.cpu
    item["MemorySize"] = t.memory_gib
    item.setdefault("EniTrunkSupported", item.get("EniQuantity", 0) >= 4)
    item.setdefault("EniTotalQuantity", item.get("EniQuantity", 0))
    threads = int(f.get("ThreadsPerCore", 2 if t.cpu > 1 else 1))
    item["CpuOptions"] = {
        "Core": max(1, t.cpu // threads),
        "ThreadsPerCore": threads,
        "HyperThreadingAdjustable": threads > 1,
        "CoreFactor": threads,
        "NestedVirtualizationSupport": "unsupported",
        "SupportedTopologyTypes": {"SupportedTopologyType": ["DiscreteCoreToHTMap"] if threads > 1 else []},
    }
    item["SupportedBootModes"] = {"SupportedBootMode": list(f.get("SupportedBootModes", ["BIOS"]))}
    item["EnhancedNetwork"] = {
        "SriovSupport": False,
        "RssSupport": True,
        "VfQueueNumberPerEni": 0,
        "ExpressSupport": False,
    }
    _network_defaults(item)
    item["Attributes"] = {"Attribute": []}
    item["Clock"] = {"PtpSupport": "unsupported"}
    item["SecurityOptions"] = {"SecureBootSupport": "unsupported"}  # nubes' guests boot without it
    return item


def _network_defaults(item: dict[str, Any]) -> None:
    """What the catalog leaves out of a type's networking: one network card, no jumbo frames, no
    encryption in transit, no bandwidth weighting (as ECS describes its older types)."""
    item.setdefault("JumboFrameSupport", False)
    item.setdefault("NetworkEncryptionSupport", False)
    item.setdefault("NetworkCardQuantity", 1)
    cards = range(int(item["NetworkCardQuantity"]))
    item["NetworkCards"] = {"NetworkCardInfo": [{"NetworkCardIndex": index} for index in cards]}
    item["NetworkInfo"] = {"BandwidthWeighting": {"WeightingInfos": {"WeightingInfo": []}}}


@actions.define("DescribeInstanceTypes", PARAMS)
def describe_instance_types(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The instance types of the catalog, filtered, NextToken-paged (MaxResults up to 1600)."""
    checks = _filters(p)
    # Filtered on the type as rendered: a filter compares with what the answer shows.
    matching = [t for t in ctx.services.catalog.all_types() if all(check(render_type(t)) for check in checks)]
    page, next_token = token_page(matching, p["NextToken"], p["MaxResults"])
    return {"NextToken": next_token, "InstanceTypes": {"InstanceType": [render_type(t) for t in page]}}


@actions.define("DescribeInstanceTypeFamilies", [REGION_ID, String("Generation", max_length=32)])
def describe_instance_type_families(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The instance families offered in a region, optionally of one generation."""
    catalog = ctx.services.catalog
    region = require_region(catalog, p["RegionId"])
    families = [f for fid in region.families if (f := catalog.family(fid)) is not None]
    if p["Generation"]:
        families = [f for f in families if f.generation == p["Generation"]]
    items = [{"InstanceTypeFamilyId": f.family_id, "Generation": f.generation} for f in families]
    return {"InstanceTypeFamilies": {"InstanceTypeFamily": items}}
