"""Every filter of DescribeInstanceTypes filters: each Minimum*/Maximum* bound and each equality
filter, against the catalog, keeps exactly the types that pass it, and some but not all of them
where the catalog allows (so a filter that is dropped fails here)."""

from __future__ import annotations

import operator
import statistics
from types import SimpleNamespace
from typing import Any

import pytest

from nubes.actions.ecs.instance_types import _BOUNDS, _MATCHES, PARAMS, describe_instance_types, render_type
from nubes.api.params import parse_params
from nubes.catalog.model import load_catalog

CATALOG = load_catalog()
TYPES = [render_type(t) for t in CATALOG.all_types()]
EVERY = {t["InstanceTypeId"] for t in TYPES}


def _answer(raw: dict[str, str]) -> set[str]:
    ctx: Any = SimpleNamespace(services=SimpleNamespace(catalog=CATALOG))
    body = describe_instance_types(ctx, parse_params(PARAMS, raw))
    return {t["InstanceTypeId"] for t in body["InstanceTypes"]["InstanceType"]}


def _threshold(field: str) -> Any:
    """A bound that splits the catalog where its values differ (else one past them all)."""
    values = sorted({t[field] for t in TYPES})
    if len(values) == 1:
        return values[0] + 1
    return statistics.median_low(values[1:])


@pytest.mark.parametrize(("name", "field", "compare"), _BOUNDS, ids=[b[0] for b in _BOUNDS])
def test_each_bound_filters(name: str, field: str, compare: Any) -> None:
    bound = _threshold(field)
    expected = {t["InstanceTypeId"] for t in TYPES if compare(t[field], bound)}
    got = _answer({name: str(bound)})
    assert got == expected
    assert got != EVERY or compare is operator.le  # a dropped Minimum* would answer every type


@pytest.mark.parametrize(("single", "plural", "field"), _MATCHES, ids=[m[1] for m in _MATCHES])
def test_each_match_filters(single: str | None, plural: str, field: str) -> None:
    wanted = TYPES[len(TYPES) // 2][field]
    expected = {t["InstanceTypeId"] for t in TYPES if t[field] == wanted}
    assert _answer({f"{plural}.1": str(wanted)}) == expected
    if single:
        assert _answer({single: str(wanted)}) == expected
        assert _answer({single: "no-such-value"}) == set()


@pytest.mark.parametrize(
    ("name", "value"), [("InstanceFamilyLevel", "CreditEntryLevel"), ("NvmeSupport", "required")]
)
def test_level_and_nvme_filter(name: str, value: str) -> None:
    expected = {t["InstanceTypeId"] for t in TYPES if t[name] == value}
    assert expected and expected != EVERY
    assert _answer({name: value}) == expected


def test_maximum_bounds_exclude() -> None:
    assert _answer({"MaximumCpuCoreCount": "2"}) == {
        t["InstanceTypeId"] for t in TYPES if t["CpuCoreCount"] <= 2
    }
    assert _answer({"MaximumCpuCoreCount": "2"}) != EVERY
    assert _answer({"MaximumMemorySize": "0.5"}) == {
        t["InstanceTypeId"] for t in TYPES if t["MemorySize"] <= 0.5
    }
