#!/usr/bin/env python3
"""Generate the recorded field order of ECS responses from apache-libcloud's ECS test fixtures.

    PYTHONPATH=src python scripts/gen_response_order.py                 # rewrite the committed file
    PYTHONPATH=src python scripts/gen_response_order.py --fixtures DIR  # from another copy of them

The fixtures (libcloud/test/compute/fixtures/ecs/*.xml, Apache-2.0) are XML answers recorded from
ECS. They are read from the installed apache-libcloud (the `test` extra), or from DIR (for example
a checkout of github.com/apache/libcloud); nothing is fetched. tests/api/test_response_order.py
fails when the committed file differs from what the installed fixtures give. Only the ORDER of their elements
is kept, never their values, in src/nubes/catalog/data/response_order.json:

    {"ecs": {"<Action>": {"<path>": [[child, child, ...], ...]}}}

The action is the root element's name without "Response". A path names an element by the names
from the root down, dot-separated ("" is the root, "Instances.Instance.VpcAttributes"); the items
of a list share their path. For each element the sequence is its children's names in document
order, a repeated name counted where it first appears. Sequences of fewer than two names say
nothing about order and are left out, as is a sequence found inside another one of its path (in
the same relative order). What is left at a path are the distinct orders recorded there: they
agree, but each may lack names another has (one Disk has Tags, another ExpiredTime), so nothing
here says how two names never recorded together are ordered."""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "nubes" / "catalog" / "data" / "response_order.json"
FIXTURES = Path("test") / "compute" / "fixtures" / "ecs"

Orders = dict[str, dict[str, dict[str, list[list[str]]]]]


def installed_fixtures() -> Path:
    spec = importlib.util.find_spec("libcloud")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("apache-libcloud is not installed: give --fixtures DIR")
    return Path(next(iter(spec.submodule_search_locations))) / FIXTURES


def sequences(element: ET.Element, path: str, found: dict[str, list[list[str]]]) -> None:
    """Every element's children's names (first appearances, in order), by path, into `found`."""
    names: list[str] = []
    for child in element:
        if child.tag not in names:
            names.append(child.tag)
        sequences(child, f"{path}.{child.tag}" if path else child.tag, found)
    if len(names) > 1:
        found.setdefault(path, []).append(names)


def within(small: list[str], big: list[str]) -> bool:
    """Whether `small` is a subsequence of `big`."""
    rest = iter(big)
    return all(name in rest for name in small)


def generate(fixtures: Path) -> Orders:
    actions: dict[str, dict[str, list[list[str]]]] = {}
    files = sorted(fixtures.glob("*.xml"))
    if not files:
        raise SystemExit(f"no ECS fixtures in {fixtures}")
    for file in files:
        root = ET.parse(file).getroot()
        found = actions.setdefault(root.tag.removesuffix("Response"), {})
        sequences(root, "", found)
    orders: dict[str, dict[str, list[list[str]]]] = {}
    for action, paths in sorted(actions.items()):
        kept: dict[str, list[list[str]]] = {}
        for path, seqs in sorted(paths.items()):
            distinct: list[list[str]] = []
            for seq in sorted(seqs, key=len, reverse=True):  # the longest first: they absorb the rest
                if not any(within(seq, other) for other in distinct):
                    distinct.append(seq)
            kept[path] = distinct
        if kept:
            orders[action] = kept
    return {"ecs": orders}


# A list of names only (no list or object in it): a recorded sequence.
_SEQUENCE = re.compile(r"\[[^\[\]{}]*\]")


def render(orders: Orders) -> str:
    """Indented JSON with each recorded sequence on one line: a changed order is a one-line diff."""
    text = json.dumps(orders, ensure_ascii=False, indent=1)
    return _SEQUENCE.sub(lambda m: json.dumps(json.loads(m.group(0)), ensure_ascii=False), text) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", type=Path, help="the directory of libcloud's ECS fixtures")
    args = parser.parse_args()
    OUT.write_text(render(generate(args.fixtures or installed_fixtures())), encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
