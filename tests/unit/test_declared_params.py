"""Every parameter a nubes action declares exists, under the same wire name, in the official API catalog.

The catalogs (shared/api/{ecs,vpc}_api_catalog.json, next to the checkout) list each action's request
parameters by wire name: "RegionId", "SystemDisk.Size", "Tag.N.Key", "InstanceIds" (a JSON array)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from nubes.actions import all_tables
from nubes.api.params import Integer, Param, String, StringList, Struct, StructList
from nubes.api.registry import ActionSpec

CATALOG_DIR = Path(__file__).resolve().parents[3] / "shared" / "api"
PRODUCTS = ("ecs", "vpc")

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
# and the reason. The strict xfail test below fails as soon as one is fixed; then remove it.
KNOWN_UNOFFICIAL: dict[tuple[str, str], tuple[frozenset[str], str]] = {}


@dataclass(frozen=True)
class WireName:
    """One flat wire name a declaration accepts, and the alternative a JSON-array list may use."""

    name: str
    kind: str
    json_alternative: str | None = None


def wire_names(param: Param, prefix: str = "") -> Iterator[WireName]:
    name = prefix + param.name
    if param.kind == "list":
        assert param.item is not None, f"list {name} has no item declaration"
        if param.item.kind == "struct":
            for field in param.item.fields:
                yield from wire_names(field, f"{name}.N.")
        else:
            yield WireName(f"{name}.N", param.item.kind, name if param.json_array else None)
    elif param.kind == "struct":
        for field in param.fields:
            yield from wire_names(field, f"{name}.")
    else:
        yield WireName(name, param.kind)


@cache
def official_catalog(product: str) -> dict[str, Any]:
    path = CATALOG_DIR / f"{product}_api_catalog.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def declared_actions() -> list[ActionSpec]:
    return [spec for table in all_tables() for spec in table.specs]


def catalog_entry(spec: ActionSpec) -> dict[str, Any]:
    entry = official_catalog(spec.product).get(spec.name)
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


pytestmark = pytest.mark.skipif(
    not CATALOG_DIR.is_dir(), reason=f"the official API catalogs are not checked out at {CATALOG_DIR}"
)


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


def known_bug_params() -> list[Any]:
    specs = {(s.product, s.name): s for s in declared_actions()}
    params = []
    for key, (_names, reason) in KNOWN_UNOFFICIAL.items():
        if key in specs:
            params.append(
                pytest.param(
                    specs[key], id=f"{key[0]}:{key[1]}", marks=pytest.mark.xfail(strict=True, reason=reason)
                )
            )
    return params


@pytest.mark.parametrize("spec", declared_actions(), ids=lambda s: f"{s.product}:{s.name}")
def test_declared_parameters_exist_in_the_official_catalog(spec: ActionSpec) -> None:
    known = KNOWN_UNOFFICIAL.get((spec.product, spec.name), (frozenset(), ""))[0]
    missing = [name for name in unofficial_names(spec) if name not in known]
    assert missing == [], (
        f"{spec.product}:{spec.name} declares parameters the official API does not have: {missing}"
    )


@pytest.mark.parametrize("spec", known_bug_params())
def test_known_unofficial_parameters_are_gone(spec: ActionSpec) -> None:
    assert unofficial_names(spec) == [], f"{spec.product}:{spec.name} still declares {unofficial_names(spec)}"


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
