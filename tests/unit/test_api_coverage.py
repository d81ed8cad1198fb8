"""docs/api-coverage.md is what scripts/gen_api_coverage.py makes now, and it accounts for every
documented parameter of every implemented action: honoured or refused, none left out."""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

from nubes.actions import all_tables
from nubes.api.registry import Registry
from nubes.api.unsupported import OWNER_PARAMS, declared_names
from nubes.catalog.official_api import official_actions

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_api_coverage.py"


@cache
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_api_coverage", SCRIPT)
    assert spec is not None and spec.loader is not None, f"{SCRIPT} is missing"
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_committed_coverage_table_is_current() -> None:
    committed = (ROOT / "docs" / "api-coverage.md").read_text(encoding="utf-8")
    assert committed == generator().render(), (
        "docs/api-coverage.md is stale: run PYTHONPATH=src python scripts/gen_api_coverage.py and commit it"
    )


def test_every_catalog_parameter_of_an_implemented_action_is_honoured_or_refused() -> None:
    unaccounted = []
    for spec in Registry(all_tables()).all():
        catalog = set(official_actions(spec.product)[spec.name]["request"]) - set(OWNER_PARAMS)
        declared = declared_names(spec.params)
        both = declared & spec.refused
        assert not both, f"{spec.name}: {sorted(both)} both honoured and refused"
        left = catalog - declared - spec.refused
        unaccounted += [f"{spec.product}:{spec.name} {name}" for name in sorted(left)]
    assert unaccounted == []


def test_the_table_names_refused_parameters_and_values() -> None:
    text = generator().render()
    run = next(line for line in text.splitlines() if line.startswith("| RunInstances |"))
    assert "`PasswordInherit` (refused: true)" in run
    assert "`SystemDisk.Encrypted`," in run.split("|")[2]  # honoured
    assert "`SystemDisk.KMSKeyId`" in run.split("|")[3]  # refused: nubes has no KMS
    assert "`HttpPutResponseHopLimit` (refused: >= 2)" in run
