"""The region, zone and instance-type catalog: shipped as data, overridable by the operator.

`DATA_DIR/catalog/regions.json` or `DATA_DIR/catalog/instance_types.json`, when present,
replace the shipped file of the same name (same shape; see nubes/catalog/data)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

LANGUAGES = ("zh-CN", "en-US", "ja")
DEFAULT_LANGUAGE = "zh-CN"


class CatalogError(Exception):
    """The catalog data is malformed."""


@dataclass(frozen=True)
class Zone:
    zone_id: str
    names: dict[str, str]
    zone_type: str = "AvailabilityZone"

    def local_name(self, language: str) -> str:
        return _pick(self.names, language)


@dataclass(frozen=True)
class Region:
    region_id: str
    names: dict[str, str]
    endpoint: str
    vpc_endpoint: str
    zones: tuple[Zone, ...]
    families: tuple[str, ...]

    def local_name(self, language: str) -> str:
        return _pick(self.names, language)


@dataclass(frozen=True)
class InstanceType:
    """One instance type with every field DescribeInstanceTypes reports (ECS names)."""

    type_id: str
    family: str
    generation: str
    cpu: int
    memory_gib: float
    fields: dict[str, Any] = field(compare=False)


@dataclass(frozen=True)
class Family:
    family_id: str
    generation: str
    category: str
    disk_categories: tuple[str, ...]
    types: tuple[InstanceType, ...]


@dataclass(frozen=True)
class Catalog:
    regions: tuple[Region, ...]
    families: tuple[Family, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regions", {r.region_id: r for r in self.regions})
        object.__setattr__(self, "_families", {f.family_id: f for f in self.families})
        object.__setattr__(self, "_types", {t.type_id: t for f in self.families for t in f.types})

    def region(self, region_id: str) -> Region | None:
        regions: dict[str, Region] = getattr(self, "_regions")
        return regions.get(region_id)

    def family(self, family_id: str) -> Family | None:
        families: dict[str, Family] = getattr(self, "_families")
        return families.get(family_id)

    def instance_type(self, type_id: str) -> InstanceType | None:
        types: dict[str, InstanceType] = getattr(self, "_types")
        return types.get(type_id)

    def all_types(self) -> list[InstanceType]:
        return [t for f in self.families for t in f.types]

    def types_in_region(self, region: Region) -> list[InstanceType]:
        return [t for fid in region.families if (f := self.family(fid)) is not None for t in f.types]

    def disk_categories(self, region: Region) -> list[str]:
        seen: dict[str, None] = {}
        for fid in region.families:
            family = self.family(fid)
            for category in family.disk_categories if family else ():
                seen.setdefault(category, None)
        return list(seen)


def _pick(names: dict[str, str], language: str) -> str:
    return names.get(language) or names.get(DEFAULT_LANGUAGE) or next(iter(names.values()), "")


def load_catalog(data_dir: Path | None = None) -> Catalog:
    regions = _load("regions.json", data_dir)
    types = _load("instance_types.json", data_dir)
    try:
        return Catalog(
            regions=tuple(_region(r) for r in regions["regions"]),
            families=tuple(_family(f) for f in types["families"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CatalogError(f"malformed catalog data: {exc!r}") from exc


def _load(name: str, data_dir: Path | None) -> dict[str, Any]:
    override = data_dir / "catalog" / name if data_dir else None
    if override is not None and override.exists():
        text = override.read_text(encoding="utf-8")
    else:
        text = resources.files("nubes.catalog").joinpath("data", name).read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise CatalogError(f"{name} must hold a JSON object")
    return data


def _names(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        return {DEFAULT_LANGUAGE: value}
    return {str(k): str(v) for k, v in dict(value).items()}


def _region(raw: dict[str, Any]) -> Region:
    region_id = str(raw["RegionId"])
    return Region(
        region_id=region_id,
        names=_names(raw["LocalName"]),
        endpoint=str(raw.get("RegionEndpoint") or f"ecs.{region_id}.aliyuncs.com"),
        vpc_endpoint=str(raw.get("VpcEndpoint") or f"vpc.{region_id}.aliyuncs.com"),
        zones=tuple(
            Zone(str(z["ZoneId"]), _names(z["LocalName"]), str(z.get("ZoneType", "AvailabilityZone")))
            for z in raw["zones"]
        ),
        families=tuple(str(f) for f in raw.get("instance_type_families", ())),
    )


_FAMILY_FIELDS = (
    "InstanceCategory",
    "InstanceFamilyLevel",
    "CpuArchitecture",
    "PhysicalProcessorModel",
    "CpuSpeedFrequency",
    "CpuTurboFrequency",
    "NvmeSupport",
    "SupportedBootModes",
    "ThreadsPerCore",
)


def _family(raw: dict[str, Any]) -> Family:
    family_id = str(raw["InstanceTypeFamily"])
    generation = str(raw["Generation"])
    inherited = {k: raw[k] for k in _FAMILY_FIELDS if k in raw}
    types = []
    for t in raw["types"]:
        fields = {**inherited, **t, "InstanceTypeFamily": family_id}
        types.append(
            InstanceType(
                type_id=str(t["InstanceTypeId"]),
                family=family_id,
                generation=generation,
                cpu=int(t["CpuCoreCount"]),
                memory_gib=float(t["MemorySize"]),
                fields=fields,
            )
        )
    return Family(
        family_id=family_id,
        generation=generation,
        category=str(raw.get("InstanceCategory", "")),
        disk_categories=tuple(raw.get("DiskCategories", ())),
        types=tuple(types),
    )
