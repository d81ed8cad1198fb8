#!/usr/bin/env python3
"""Kill -9 an emulator-mode nubes server at seeded random points under a mixed load, and check
after every restart what must survive (see tests/crash/campaign.py). Prints the figures and every
violation; exits 1 on any violation. The same seed runs the same load and kill points.

    PYTHONPATH=src .venv/bin/python scripts/crash.py --seed 7 --kill-points 100
    ... --database-url postgresql://postgres@127.0.0.1:55432/postgres   (a fresh database is made on it)"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]  # the shared core lives in tests/crash

from tests.crash.campaign import run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="the run's seed (default: a random one, printed)"
    )
    parser.add_argument("--kill-points", type=int, default=100, help="how many times to kill -9 the server")
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server to use (a fresh database is created on it); default SQLite",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the data dir and server logs (path printed)"
    )
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    print(f"crash: seed {seed}, {args.kill_points} kill points", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"nubes-crash-{seed}-"))
    report = run(
        seed,
        args.kill_points,
        workdir,
        args.database_url,
        progress=lambda line: print(f"  {line}", flush=True),
    )
    for violation in report.violations:
        print(f"  {violation}")
    print(report.summary())
    if args.keep or report.violations:
        print(f"data dir and server logs: {workdir}")
    else:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
