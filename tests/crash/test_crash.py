"""Done when: kill -9 at 20 seeded random points under a mixed load loses no acknowledged create,
revives no acknowledged delete, makes no duplicate on a ClientToken retry (acknowledged or in flight
at the kill), leaves nothing in a passing status past the bound, and never answers 5xx (see
tests/crash/campaign.py). Runs in about a minute on two cores; scripts/crash.py runs 100 and more.

The seed is fixed so that CI is repeatable; NUBES_CRASH_SEED picks another. A failure prints the
seed and how to reproduce it with the script."""

from __future__ import annotations

import os
from pathlib import Path

from .campaign import run

SEED = int(os.environ.get("NUBES_CRASH_SEED", "20240905"))
KILL_POINTS = 20


def test_kill_nine_under_load_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    report = run(SEED, KILL_POINTS, tmp_path)
    print(report.summary())
    assert not report.violations, report.summary()
