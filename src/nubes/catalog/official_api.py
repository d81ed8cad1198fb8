"""The official ECS and VPC action catalogs: every action's wire parameters, their types and the
shape of its answer, as the official SDKs define them; and the catalog of the actions nubes implements.

The official ones are generated from the installed SDK packages by scripts/gen_api_catalog.py into
data/api/<product>.json (and kept honest by tests/unit/test_api_catalog.py). The tests check nubes'
declarations against them; they are shipped with the package so that anything else (a coverage
report) reads the same.

data/api/implemented.json is generated from nubes' own action declarations by
scripts/gen_implemented_actions.py (kept equal to them by tests/unit/test_implemented_actions.py):
which actions nubes implements, and the parameters each takes. It is what the API client (the
`nubes ecs|vpc` commands) knows of the actions without importing the server side."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

PRODUCTS = ("ecs", "vpc")


def _read(name: str) -> dict[str, Any]:
    """A JSON object from data/api; a missing or malformed file raises: nothing that reads the
    catalogs may quietly do without them."""
    text = resources.files("nubes.catalog").joinpath("data", "api", name).read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict) or not data:
        raise ValueError(f"the catalog {name} must be a non-empty JSON object")
    return data


def _check_product(product: str) -> None:
    if product not in PRODUCTS:
        raise ValueError(f"no official catalog for product {product!r}")


@cache
def official_actions(product: str) -> dict[str, dict[str, Any]]:
    """Action name -> its catalog entry (method, style, request, request_types, response_shape, ...)."""
    _check_product(product)
    return _read(f"{product}.json")


@cache
def implemented_actions(product: str) -> dict[str, dict[str, Any]]:
    """Action name -> {"summary": str, "params": [{"name", "kind", ...}]} for the actions nubes
    implements, by name. Each param is one flat wire name (`DataDisk.N.Size`), with its kind and,
    where declared, required, default, choices, minimum, maximum; a list of plain values is one
    `Name.N` entry of kind "list" (json_array: a JSON array in `Name` is accepted too)."""
    _check_product(product)
    actions: dict[str, dict[str, Any]] = _read("implemented.json")[product]
    return actions
