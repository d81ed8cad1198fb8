#!/usr/bin/env python3
"""Generate the catalog of the actions nubes implements, from their declarations.

    PYTHONPATH=src python scripts/gen_implemented_actions.py           # rewrite src/nubes/catalog/data/api/implemented.json
    PYTHONPATH=src python scripts/gen_implemented_actions.py --check   # exit 1 if the committed file is stale

The official catalogs next to it (ecs.json, vpc.json) list every action of the official API; this
one says which of them nubes implements, with each action's summary (the first line of its
handler's docstring) and the parameters it declares, as flat wire names (`RegionId`,
`SystemDisk.Size`, `DataDisk.N.Size`, `SecurityGroupIds.N`) with what nubes checks of them: kind,
required, default, choices, range; a list of plain values is one `Name.N` entry of kind "list",
with json_array when a JSON array in `Name` is accepted too.

It is what the API client (`nubes ecs|vpc`) knows of the actions without importing the server
side: the action list and `nubes ecs Action --help` come from it. tests/unit/test_implemented_actions.py
keeps it equal to what the declarations make.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from nubes.actions import all_tables
from nubes.api.params import Param

OUT = Path(__file__).resolve().parents[1] / "src" / "nubes" / "catalog" / "data" / "api" / "implemented.json"


def flat_params(param: Param, prefix: str = "") -> list[dict[str, Any]]:
    """One entry per flat wire name a declaration accepts, in declaration order."""
    name = prefix + param.name
    if param.kind == "list" and param.item is not None:
        if param.item.kind == "struct":
            return [entry for f in param.item.fields for entry in flat_params(f, f"{name}.N.")]
        entry: dict[str, Any] = {"name": f"{name}.N", "kind": "list"}
        if param.json_array:
            entry["json_array"] = True
        return [entry]
    if param.kind == "struct":
        return [entry for f in param.fields for entry in flat_params(f, f"{name}.")]
    entry = {"name": name, "kind": param.kind}
    if param.required:
        entry["required"] = True
    if param.default is not None:
        entry["default"] = param.default
    if param.choices:
        entry["choices"] = list(param.choices)
    if param.minimum is not None:
        entry["minimum"] = param.minimum
    if param.maximum is not None:
        entry["maximum"] = param.maximum
    return [entry]


def generate() -> dict[str, dict[str, dict[str, Any]]]:
    """product -> action name -> {"summary", "params"}, actions sorted by name."""
    specs = sorted((s for t in all_tables() for s in t.specs), key=lambda s: (s.product, s.name))
    catalog: dict[str, dict[str, dict[str, Any]]] = {}
    for spec in specs:
        catalog.setdefault(spec.product, {})[spec.name] = {
            "summary": spec.summary,
            "params": [entry for p in spec.params for entry in flat_params(p)],
        }
    return catalog


def render(catalog: dict[str, dict[str, dict[str, Any]]]) -> str:
    """JSON with one line per parameter: small, and a changed declaration is a one-line diff."""

    def dump(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    lines = ["{"]
    for i, (product, actions) in enumerate(catalog.items()):
        lines.append(f" {dump(product)}: {{")
        for j, (name, action) in enumerate(actions.items()):
            lines.append(f"  {dump(name)}: {{")
            lines.append(f'   "summary": {dump(action["summary"])},')
            params = action["params"]
            if params:
                lines.append('   "params": [')
                lines += [f"    {dump(p)}{',' if k < len(params) - 1 else ''}" for k, p in enumerate(params)]
                lines.append("   ]")
            else:
                lines.append('   "params": []')
            lines.append(f"  }}{',' if j < len(actions) - 1 else ''}")
        lines.append(f" }}{',' if i < len(catalog) - 1 else ''}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file is stale")
    args = parser.parse_args()
    text = render(generate())
    if args.check:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is stale: run PYTHONPATH=src python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
