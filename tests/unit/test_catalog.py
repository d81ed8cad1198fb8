"""The shipped region/zone/instance-type catalog is consistent, and DATA_DIR/catalog overrides replace it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from nubes.catalog.model import LANGUAGES, Catalog, CatalogError, load_catalog

SHIPPED = load_catalog()


def duplicates(values: list[str]) -> list[str]:
    return sorted(v for v, n in Counter(values).items() if n > 1)


def write_override(data_dir: Path, name: str, content: Any) -> None:
    folder = data_dir / "catalog"
    folder.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    (folder / name).write_text(text, encoding="utf-8")


# ---- the shipped catalog -----------------------------------------------------------------


def test_catalog_is_not_trivially_small() -> None:
    assert len(SHIPPED.regions) >= 10 and len(SHIPPED.families) >= 5 and len(SHIPPED.all_types()) >= 50
    assert SHIPPED.region("cn-hangzhou") is not None


def test_every_region_has_zones_named_after_it() -> None:
    for region in SHIPPED.regions:
        assert region.zones, f"{region.region_id} has no zones"
        for zone in region.zones:
            # cn-hangzhou-b, ap-southeast-1a
            assert zone.zone_id.startswith(region.region_id), (region.region_id, zone.zone_id)
            assert len(zone.zone_id) > len(region.region_id), zone.zone_id
            assert zone.zone_type == "AvailabilityZone"


def test_no_duplicate_ids() -> None:
    assert duplicates([r.region_id for r in SHIPPED.regions]) == []
    assert duplicates([z.zone_id for r in SHIPPED.regions for z in r.zones]) == []
    assert duplicates([f.family_id for f in SHIPPED.families]) == []
    assert duplicates([t.type_id for t in SHIPPED.all_types()]) == []
    for region in SHIPPED.regions:
        assert duplicates(list(region.families)) == [], region.region_id


def test_every_family_offered_in_a_region_exists_in_instance_types() -> None:
    known = {f.family_id for f in SHIPPED.families}
    for region in SHIPPED.regions:
        assert region.families, f"{region.region_id} offers no instance families"
        missing = sorted(set(region.families) - known)
        assert missing == [], f"{region.region_id} offers unknown families {missing}"


def test_every_instance_type_has_cpus_and_memory() -> None:
    for itype in SHIPPED.all_types():
        assert itype.cpu > 0 and itype.fields["CpuCoreCount"] == itype.cpu, itype.type_id
        assert itype.memory_gib > 0 and float(itype.fields["MemorySize"]) == itype.memory_gib, itype.type_id


def test_instance_types_belong_to_their_family() -> None:
    for family in SHIPPED.families:
        assert family.types, f"{family.family_id} has no types"
        for itype in family.types:
            assert itype.family == family.family_id
            # ecs.g7.large, or ecs.t6-c1m2.large for the burstable/universal families
            assert itype.type_id.startswith((family.family_id + ".", family.family_id + "-")), itype.type_id
            assert itype.fields["InstanceTypeFamily"] == family.family_id


def test_regions_and_zones_are_named_in_every_language() -> None:
    for region in SHIPPED.regions:
        for language in LANGUAGES:
            assert region.local_name(language), (region.region_id, language)
            for zone in region.zones:
                assert zone.local_name(language), (zone.zone_id, language)


def test_lookups() -> None:
    large = SHIPPED.instance_type("ecs.g7.large")
    assert large is not None and (large.cpu, large.memory_gib, large.family) == (2, 8.0, "ecs.g7")
    assert SHIPPED.instance_type("ecs.nope.large") is None
    assert SHIPPED.region("xx-nowhere-1") is None
    hangzhou = SHIPPED.region("cn-hangzhou")
    assert hangzhou is not None
    assert hangzhou.local_name("en-US") == "China (Hangzhou)"
    assert hangzhou.local_name("fr-FR") == hangzhou.local_name("zh-CN")  # unknown languages fall back
    in_region = {t.type_id for t in SHIPPED.types_in_region(hangzhou)}
    assert "ecs.g7.large" in in_region
    assert in_region <= {t.type_id for t in SHIPPED.all_types()}
    assert "cloud_essd" in SHIPPED.disk_categories(hangzhou)


# ---- overrides in DATA_DIR/catalog -------------------------------------------------------

OVERRIDE_REGIONS = {
    "regions": [
        {
            "RegionId": "xx-lab-1",
            "LocalName": {"zh-CN": "实验室1", "en-US": "Lab 1"},
            "zones": [
                {"ZoneId": "xx-lab-1a", "LocalName": "Lab 1 A"},
                {"ZoneId": "xx-lab-1b", "LocalName": {"en-US": "Lab 1 B"}},
            ],
            "instance_type_families": ["ecs.g7"],
        }
    ]
}


def test_data_dir_without_overrides_loads_the_shipped_catalog(tmp_path: Path) -> None:
    loaded = load_catalog(tmp_path)
    assert [r.region_id for r in loaded.regions] == [r.region_id for r in SHIPPED.regions]
    assert len(loaded.all_types()) == len(SHIPPED.all_types())


def test_regions_override_replaces_the_shipped_regions(tmp_path: Path) -> None:
    write_override(tmp_path, "regions.json", OVERRIDE_REGIONS)
    loaded = load_catalog(tmp_path)
    assert [r.region_id for r in loaded.regions] == ["xx-lab-1"]
    assert loaded.region("cn-hangzhou") is None
    lab = loaded.region("xx-lab-1")
    assert lab is not None
    assert [z.zone_id for z in lab.zones] == ["xx-lab-1a", "xx-lab-1b"]
    assert lab.local_name("en-US") == "Lab 1" and lab.zones[0].local_name("ja") == "Lab 1 A"
    assert lab.endpoint == "ecs.xx-lab-1.aliyuncs.com" and lab.vpc_endpoint == "vpc.xx-lab-1.aliyuncs.com"
    # instance types were not overridden: still the shipped ones
    assert len(loaded.all_types()) == len(SHIPPED.all_types())
    assert {t.family for t in loaded.types_in_region(lab)} == {"ecs.g7"}


def test_instance_types_override_replaces_the_shipped_types(tmp_path: Path) -> None:
    write_override(
        tmp_path,
        "instance_types.json",
        {
            "families": [
                {
                    "InstanceTypeFamily": "ecs.lab1",
                    "Generation": "ecs-9",
                    "InstanceCategory": "General-purpose",
                    "DiskCategories": ["cloud_essd"],
                    "types": [{"InstanceTypeId": "ecs.lab1.tiny", "CpuCoreCount": 1, "MemorySize": 0.5}],
                }
            ]
        },
    )
    loaded = load_catalog(tmp_path)
    assert [t.type_id for t in loaded.all_types()] == ["ecs.lab1.tiny"]
    tiny = loaded.instance_type("ecs.lab1.tiny")
    assert tiny is not None and (tiny.cpu, tiny.memory_gib, tiny.generation) == (1, 0.5, "ecs-9")
    assert tiny.fields["InstanceCategory"] == "General-purpose"  # family fields are inherited
    assert [r.region_id for r in loaded.regions] == [r.region_id for r in SHIPPED.regions]


@pytest.mark.parametrize(
    "content",
    [
        {"regions": [{"RegionId": "xx-lab-1", "LocalName": "Lab"}]},  # no zones
        {"regions": [{"LocalName": "Lab", "zones": []}]},  # no RegionId
        {"no_regions": []},
        "[1, 2, 3]",
    ],
    ids=["no-zones", "no-region-id", "no-regions-key", "not-an-object"],
)
def test_malformed_override_is_a_catalog_error(tmp_path: Path, content: Any) -> None:
    write_override(tmp_path, "regions.json", content)
    with pytest.raises(CatalogError):
        load_catalog(tmp_path)


def test_catalog_indexes_follow_its_contents() -> None:
    catalog = Catalog(regions=SHIPPED.regions[:1], families=SHIPPED.families[:1])
    assert catalog.region(SHIPPED.regions[0].region_id) is SHIPPED.regions[0]
    assert catalog.region(SHIPPED.regions[1].region_id) is None
    assert catalog.family(SHIPPED.families[0].family_id) is SHIPPED.families[0]
    assert catalog.family(SHIPPED.families[1].family_id) is None
