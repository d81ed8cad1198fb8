"""Every parameter a nubes action declares exists, under the same wire name, in the official API catalog.

The catalogs (src/nubes/catalog/data/api/{ecs,vpc}.json, generated from the official SDKs by
scripts/gen_api_catalog.py) list each action's request parameters by wire name: "RegionId",
"SystemDisk.Size", "Tag.N.Key", "InstanceIds" (a JSON array)."""

from __future__ import annotations

from typing import Any

import pytest

from nubes.actions import all_tables
from nubes.api.params import Integer, String, StringList, Struct, StructList, WireName, wire_names
from nubes.api.registry import ActionSpec
from nubes.catalog.official_api import PRODUCTS, official_actions

# Declared scalar kinds and the catalog types they may stand for.
COMPATIBLE_TYPES = {
    "integer": {"integer"},
    "number": {"number", "integer"},
    "boolean": {"boolean"},
}

# Where the catalog itself is inconsistent: (product, action, wire name) whose catalog type is not
# to be trusted. Permissions.N.DestGroupOwnerId is "integer" in every security-group rule action
# but RevokeSecurityGroupEgress, where the SDK model types it str (it carries the same account ID).
CATALOG_TYPE_QUIRKS = {("ecs", "RevokeSecurityGroupEgress", "Permissions.N.DestGroupOwnerId")}

# Declared names the official API does not have: known bugs, each (product, action) with the names
# and the reason. test_known_unofficial_parameters_are_still_declared fails as soon as one is fixed;
# then remove it.
KNOWN_UNOFFICIAL: dict[tuple[str, str], tuple[frozenset[str], str]] = {}


def declared_actions() -> list[ActionSpec]:
    return [spec for table in all_tables() for spec in table.specs]


def catalog_entry(spec: ActionSpec) -> dict[str, Any]:
    entry = official_actions(spec.product).get(spec.name)
    assert entry is not None, (
        f"{spec.product}:{spec.name} is not an action of the official {spec.product} API"
    )
    return dict(entry)


def matched_name(wire: WireName, request: set[str]) -> str | None:
    if wire.name in request:
        return wire.name
    if wire.json_alternative is not None and wire.json_alternative in request:
        return wire.json_alternative
    return None


def test_there_are_actions_of_both_products() -> None:
    assert {spec.product for spec in declared_actions()} == set(PRODUCTS)


def test_wire_names_of_nested_declarations() -> None:
    nested = StructList("NetworkInterface", [String("VSwitchId"), StringList("SecurityGroupIds")])
    assert [w.name for w in wire_names(nested)] == [
        "NetworkInterface.N.VSwitchId",
        "NetworkInterface.N.SecurityGroupIds.N",
    ]
    assert [w.name for w in wire_names(Struct("SystemDisk", [Integer("Size")]))] == ["SystemDisk.Size"]
    assert list(wire_names(StringList("InstanceIds", json_array=True))) == [
        WireName("InstanceIds.N", "string", "InstanceIds")
    ]


def unofficial_names(spec: ActionSpec) -> list[str]:
    """Declared wire names the official catalog does not list for the action."""
    request = set(catalog_entry(spec)["request"])
    return [w.name for p in spec.params for w in wire_names(p) if matched_name(w, request) is None]


@pytest.mark.parametrize("spec", declared_actions(), ids=lambda s: f"{s.product}:{s.name}")
def test_declared_parameters_exist_in_the_official_catalog(spec: ActionSpec) -> None:
    known = KNOWN_UNOFFICIAL.get((spec.product, spec.name), (frozenset(), ""))[0]
    missing = [name for name in unofficial_names(spec) if name not in known]
    assert missing == [], (
        f"{spec.product}:{spec.name} declares parameters the official API does not have: {missing}"
    )


def test_known_unofficial_parameters_are_still_declared() -> None:
    """Each known bug is still there; once fixed, its KNOWN_UNOFFICIAL entry must go. (One plain test
    rather than a strict xfail per entry: with no known bugs that would be an empty, skipped set.)"""
    specs = {(s.product, s.name): s for s in declared_actions()}
    fixed = []
    for key, (names, _reason) in KNOWN_UNOFFICIAL.items():
        assert key in specs, f"KNOWN_UNOFFICIAL names {key[0]}:{key[1]}, which nubes does not declare"
        gone = sorted(names - set(unofficial_names(specs[key])))
        if gone:
            fixed.append(f"{key[0]}:{key[1]} {gone}")
    assert fixed == [], f"fixed, remove from KNOWN_UNOFFICIAL: {fixed}"


@pytest.mark.parametrize("spec", declared_actions(), ids=lambda s: f"{s.product}:{s.name}")
def test_declared_parameters_are_declared_once(spec: ActionSpec) -> None:
    names = [w.name for p in spec.params for w in wire_names(p)]
    assert len(names) == len(set(names)), f"{spec.product}:{spec.name} declares a parameter twice"


@pytest.mark.parametrize("spec", declared_actions(), ids=lambda s: f"{s.product}:{s.name}")
def test_declared_numeric_and_boolean_types_match_the_catalog(spec: ActionSpec) -> None:
    entry = catalog_entry(spec)
    request = set(entry["request"])
    types: dict[str, str] = entry.get("request_types", {})
    wrong = []
    for param in spec.params:
        for wire in wire_names(param):
            name = matched_name(wire, request)
            allowed = COMPATIBLE_TYPES.get(wire.kind)
            if name is None or allowed is None or name not in types:
                continue
            if (spec.product, spec.name, name) in CATALOG_TYPE_QUIRKS:
                continue
            if types[name] not in allowed:
                wrong.append(f"{name}: declared {wire.kind}, catalog {types[name]}")
    assert wrong == [], f"{spec.product}:{spec.name}: {wrong}"


@pytest.mark.parametrize("spec", declared_actions(), ids=lambda s: f"{s.product}:{s.name}")
def test_every_action_the_catalog_gives_dry_run_declares_it(spec: ActionSpec) -> None:
    """A DryRun that is not declared would be an unknown parameter; declared, the API layer runs
    the action in a unit of work that never commits (api/app.py), so it changes nothing."""
    documented = "DryRun" in catalog_entry(spec)["request"]
    declared = any(param.name == "DryRun" for param in spec.params)
    assert declared == documented
