"""The official ECS and VPC action catalogs: every action's wire parameters, their types and the
shape of its answer, as the official SDKs define them.

Generated from the installed SDK packages by scripts/gen_api_catalog.py into data/api/<product>.json
(and kept honest by tests/unit/test_api_catalog.py). The tests check nubes' declarations against
them; they are shipped with the package so that anything else (a coverage report) reads the same."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

PRODUCTS = ("ecs", "vpc")


@cache
def official_actions(product: str) -> dict[str, dict[str, Any]]:
    """Action name -> its catalog entry (method, style, request, request_types, response_shape, ...).

    A missing or malformed file raises: nothing that reads the catalog may quietly do without it."""
    if product not in PRODUCTS:
        raise ValueError(f"no official catalog for product {product!r}")
    text = resources.files("nubes.catalog").joinpath("data", "api", f"{product}.json").read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict) or not data:
        raise ValueError(f"the official {product} catalog must be a non-empty JSON object")
    return data
