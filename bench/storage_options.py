"""bench/storage.py's targets and options (see its docstring for what they mean)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common import (
    add_images_dir_option,
    add_json_option,
)

SNAPSHOT_TARGET_S = 0.200
RATIO_TARGET = 0.8
CAP_TOLERANCE = 0.10
BURSTS = 2  # live: burst pairs (as left, after sync)
SETTLE = 0.2  # between trials: let the agent finish its bookkeeping (collect) before the next call


# ---- options --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    trials: int
    written_gib: tuple[int, ...]
    disk_gib: int
    fio_disks: tuple[tuple[str, int], ...]
    skip_guest: bool
    skip_snapshots: bool
    skip_fio: bool
    live_fill: str
    burst_mib: int
    fio_seconds: int
    fio_ramp: int
    fio_size_mib: int
    seq_iodepth: int
    rand_iodepth: int
    poll_interval: float
    call_timeout: float
    boot_timeout: float
    json_path: Path | None
    images_dir: Path


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--trials",
        type=int,
        default=8,
        help="CreateSnapshot and CreateDisk trials per size and case (default 8)",
    )
    parser.add_argument(
        "--written", default="1,4,8", help="GiB written into the disk before snapshotting (1,4,8)"
    )
    parser.add_argument(
        "--disk-size",
        dest="disk_gib",
        type=int,
        default=20,
        help="size of the snapshotted cloud_essd disks, GiB (default 20)",
    )
    parser.add_argument(
        "--fio-disks",
        default="PL1:20,PL1:2000",
        help="guest fio data disks as LEVEL:GiB,... (cloud_essd; default PL1:20,PL1:2000: a cap a "
        "TCG guest reaches and one it does not)",
    )
    parser.add_argument(
        "--skip-guest",
        action="store_true",
        help="no VM: only Available-disk snapshots, CreateDisk and the host's fio",
    )
    parser.add_argument("--skip-snapshots", action="store_true", help="leave out (1) and (2)")
    parser.add_argument("--skip-fio", action="store_true", help="leave out (3)")
    parser.add_argument(
        "--live-fill",
        choices=("guest", "host"),
        default="guest",
        help="how the attached disks get their data: dd inside the guest (default) or qemu-io on the "
        "host before the attach",
    )
    parser.add_argument(
        "--burst",
        dest="burst_mib",
        type=int,
        default=512,
        help="live: MiB of the write burst snapshotted as left and after a host sync, twice each "
        "(default 512; 0 = leave it out)",
    )
    parser.add_argument(
        "--fio-seconds", type=int, default=10, help="measured seconds per fio job (default 10)"
    )
    parser.add_argument(
        "--fio-ramp", type=int, default=2, help="unmeasured seconds before each fio job (default 2)"
    )
    parser.add_argument(
        "--fio-size",
        dest="fio_size_mib",
        type=int,
        default=1024,
        help="MiB of the file/disk the fio jobs cover (default 1024)",
    )
    parser.add_argument(
        "--seq-iodepth", type=int, default=4, help="queue depth of the sequential write (default 4)"
    )
    parser.add_argument(
        "--rand-iodepth", type=int, default=32, help="queue depth of the random read (default 32)"
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=0.005,
        help="pause between two status polls, seconds (default 0.005)",
    )
    parser.add_argument(
        "--call-timeout",
        type=float,
        default=60.0,
        help="give up on one snapshot/disk trial after this long (default 60)",
    )
    parser.add_argument(
        "--boot-timeout",
        type=float,
        default=300.0,
        help="give up on the instance's boot and first login after this long (default 300)",
    )
    add_json_option(parser)
    add_images_dir_option(parser, "Debian")
    args = parser.parse_args(argv)
    try:
        written = tuple(int(x) for x in args.written.split(","))
        fio_disks = tuple(
            (level.strip().upper(), int(size))
            for level, size in (item.split(":") for item in args.fio_disks.split(",") if item)
        )
    except ValueError:
        parser.error("--written takes GiB,GiB,... and --fio-disks LEVEL:GiB,...")
    if not 0 <= args.burst_mib <= 8192:
        parser.error("--burst must be in [0, 8192]")
    if not 1 <= args.trials <= 100:
        parser.error("--trials must be in [1, 100]")
    if not written or any(not 1 <= w < args.disk_gib for w in written):
        parser.error("--written: each size must be at least 1 and below --disk-size")
    if (
        not 1 <= args.fio_seconds <= 300
        or not 0 <= args.fio_ramp <= 60
        or not 16 <= args.fio_size_mib <= 16384
    ):
        parser.error("--fio-seconds in [1, 300], --fio-ramp in [0, 60], --fio-size in [16, 16384]")
    if (
        not 0 <= args.poll_interval <= 1
        or not 1 <= args.call_timeout <= 600
        or not 30 <= args.boot_timeout <= 1800
    ):
        parser.error("--poll-interval in [0, 1], --call-timeout in [1, 600], --boot-timeout in [30, 1800]")
    if args.skip_snapshots and args.skip_fio:
        parser.error("nothing to do: both parts skipped")
    return Options(
        args.trials,
        written,
        args.disk_gib,
        fio_disks,
        args.skip_guest,
        args.skip_snapshots,
        args.skip_fio,
        args.live_fill,
        args.burst_mib,
        args.fio_seconds,
        args.fio_ramp,
        args.fio_size_mib,
        args.seq_iodepth,
        args.rand_iodepth,
        args.poll_interval,
        args.call_timeout,
        args.boot_timeout,
        args.json_path,
        args.images_dir,
    )
