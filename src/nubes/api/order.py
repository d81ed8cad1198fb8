"""Responses in the field order ECS writes them.

Clients depend on it: footmark sets an Instance's attributes in response order, and reading an
empty PublicIpAddress before EipAddress is set sends its Instance into endless recursion. The
order is recorded, not guessed: catalog/data/response_order.json holds, per action and per element
path, the orders of the children of that element in answers recorded from ECS (apache-libcloud's
ECS test fixtures; scripts/gen_response_order.py derives it). Where an action has a recording, the
fields it names come first in that order, then the others as the handler wrote them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from itertools import pairwise
from typing import Any

Orders = Mapping[str, tuple[str, ...]]  # element path ("" the root, "Instances.Instance") -> names


@cache
def recorded(product: str) -> dict[str, dict[str, list[list[str]]]]:
    """Action -> element path -> the distinct orders recorded there (see the generator)."""
    text = resources.files("nubes.catalog").joinpath("data", "response_order.json").read_text("utf-8")
    data: dict[str, dict[str, dict[str, list[list[str]]]]] = json.loads(text)
    return data.get(product, {})


def merge(sequences: list[list[str]]) -> tuple[str, ...]:
    """One order agreeing with every sequence; names never recorded together keep the order in
    which the sequences first name them."""
    first: dict[str, int] = {}
    after: dict[str, set[str]] = {}
    for seq in sequences:
        for name in seq:
            first.setdefault(name, len(first))
            after.setdefault(name, set())
        for earlier, later in pairwise(seq):
            after[earlier].add(later)
    before = {name: sum(name in later for later in after.values()) for name in first}
    merged: list[str] = []
    ready = sorted((n for n, count in before.items() if not count), key=first.__getitem__)
    while ready:
        name = ready.pop(0)
        merged.append(name)
        for later in after[name]:
            before[later] -= 1
            if not before[later]:
                ready.append(later)
        ready.sort(key=first.__getitem__)
    if len(merged) != len(first):
        raise ValueError(f"the recorded orders contradict each other: {sequences}")
    return tuple(merged)


@cache
def orders_of(product: str, action: str, under: str = "") -> Orders:
    """The recorded order of every element of an action's answer that has one, by path; with
    `under`, of that element and what it holds, by their paths below it (so that a resource
    rendered alone keeps the order it has in the recorded list)."""
    paths = recorded(product).get(action, {})
    if not under:
        return {path: merge(seqs) for path, seqs in paths.items()}
    below = {
        path.removeprefix(under).removeprefix("."): seqs
        for path, seqs in paths.items()
        if path == under or path.startswith(under + ".")
    }
    return {path: merge(seqs) for path, seqs in below.items()}


def in_order(value: Any, orders: Orders, path: str = "") -> Any:
    """`value` with the dicts at the recorded paths in their recorded order (the names the
    recording lacks after those it has, as they were); lists' items share their list's path."""
    if not orders:
        return value
    if isinstance(value, list):
        return [in_order(item, orders, path) for item in value]
    if not isinstance(value, dict):
        return value
    order = orders.get(path, ())
    keys = [k for k in order if k in value] + [k for k in value if k not in order]
    out: dict[str, Any] = {}
    for key in keys:
        child = f"{path}.{key}" if path else key
        inside = any(p == child or p.startswith(child + ".") for p in orders)
        out[key] = in_order(value[key], orders, child) if inside else value[key]
    return out
