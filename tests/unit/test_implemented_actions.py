"""The catalog of implemented actions (src/nubes/catalog/data/api/implemented.json) is exactly what
scripts/gen_implemented_actions.py makes from the action declarations, and the API client CLI that
reads it stays on its side of the layers: nothing it imports reaches the server side."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from functools import cache
from importlib import resources
from pathlib import Path
from types import ModuleType

import pytest

from nubes.actions import all_tables
from nubes.catalog.official_api import PRODUCTS, implemented_actions, official_actions

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_implemented_actions.py"
SRC = ROOT / "src"

# What the API client must not import, directly or through anything it imports.
SERVER_SIDE = (
    "nubes.domain",
    "nubes.store",
    "nubes.drivers",
    "nubes.actions",
    "nubes.server",
    "nubes.agent",
    "nubes.services",
    "nubes.api.params",
    "nubes.api.registry",
    "nubes.api.app",
    "sqlalchemy",
)


@cache
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_implemented_actions", SCRIPT)
    assert spec is not None and spec.loader is not None, f"{SCRIPT} is missing"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_catalog_is_what_the_declarations_make() -> None:
    committed = (
        resources.files("nubes.catalog")
        .joinpath("data", "api", "implemented.json")
        .read_text(encoding="utf-8")
    )
    assert committed == generator().render(generator().generate()), (
        "implemented.json is stale: run PYTHONPATH=src python scripts/gen_implemented_actions.py and commit it"
    )


@pytest.mark.parametrize("product", PRODUCTS)
def test_it_lists_every_registered_action_with_its_summary(product: str) -> None:
    declared = {s.name: s.summary for t in all_tables() if t.product == product for s in t.specs}
    assert {name: a["summary"] for name, a in implemented_actions(product).items()} == declared


def test_flat_entries_of_nested_declarations() -> None:
    run = {p["name"]: p for p in implemented_actions("ecs")["RunInstances"]["params"]}
    assert run["RegionId"] == {"name": "RegionId", "kind": "string", "required": True}
    assert run["DataDisk.N.Size"]["kind"] == "integer" and run["DataDisk.N.Size"]["minimum"] == 1
    assert run["Amount"]["default"] == 1 and run["Amount"]["maximum"] == 100
    assert run["SecurityGroupIds.N"] == {"name": "SecurityGroupIds.N", "kind": "list"}
    assert run["InstanceChargeType"]["choices"] == ["PrePaid", "PostPaid"]
    keys = implemented_actions("ecs")["DeleteKeyPairs"]["params"]
    assert {"name": "KeyPairNames.N", "kind": "list", "json_array": True} in keys


@pytest.mark.parametrize("product", PRODUCTS)
def test_its_names_are_official_wire_names(product: str) -> None:
    official = official_actions(product)
    for name, action in implemented_actions(product).items():
        assert name in official, f"{product}:{name}"
        request = set(official[name]["request"])
        for p in action["params"]:
            json_name = p["name"].removesuffix(".N") if p.get("json_array") else None
            assert p["name"] in request or json_name in request, f"{product}:{name} {p['name']}"


# ---- the client CLI's imports ----------------------------------------------------------------


def module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(root: str) -> set[str]:
    """The nubes modules `root` imports, transitively, counting imports inside functions too (they
    run when the function does), and the packages they sit in."""
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        path = module_file(name)
        if name in seen or path is None:  # not a module: a name imported from one
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                todo += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    return seen


def test_the_client_cli_imports_nothing_of_the_server_side() -> None:
    modules = imported_modules("nubes.cli.client")
    assert {"nubes.client", "nubes.cli.profiles", "nubes.cli.wait", "nubes.catalog.official_api"} <= modules
    assert sorted(m for m in modules if m.startswith(SERVER_SIDE)) == []


def test_the_client_cli_loads_nothing_of_the_server_side_when_it_runs() -> None:
    """The same, as Python sees it: the action list and an action's help load none of it."""
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from nubes.cli.client import COMMANDS\n"
        "ecs = next(c for c in COMMANDS if c.name == 'ecs')\n"
        "for args in ([], ['RunInstances', '--help']):\n"
        "    assert CliRunner().invoke(ecs, args).exit_code == 0\n"
        f"print(sorted(m for m in sys.modules if m.startswith({SERVER_SIDE!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
