"""storage.py's (3): fio, the very same binary on the host and in the guest (the host's fio and the
shared libraries it needs copied in), or dd where fio cannot run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common import cpu_seconds, first_line, fmt_num, run
from servers import Bench
from storage_cloud import CATEGORY, MIB, Cloud, Guest

if TYPE_CHECKING:
    from storage_options import Options

GLIBC = (
    "libc.so.",
    "libm.so.",
    "libresolv.so.",
    "libpthread.so.",
    "libdl.so.",
    "librt.so.",
    "ld-linux",
    "linux-vdso",
)
GUEST_FIO = "/opt/fio"


# ---- (3) fio, host and guest --------------------------------------------------------------------------


def fio_argv(kind: str, target: str, size_mib: int, opts: Options) -> list[str]:
    """The fio job (the same on both sides); its JSON on stdout."""
    shape = {
        "seqwrite": ["--rw=write", "--bs=1M", f"--iodepth={opts.seq_iodepth}"],
        "randread": ["--rw=randread", "--bs=4k", f"--iodepth={opts.rand_iodepth}"],
    }[kind]
    return [
        f"--name={kind}",
        f"--filename={target}",
        *shape,
        "--direct=1",
        "--ioengine=libaio",
        f"--size={size_mib}M",
        "--time_based",
        f"--runtime={opts.fio_seconds}",
        f"--ramp_time={opts.fio_ramp}",
        "--randrepeat=0",
        "--norandommap",
        "--group_reporting",
        "--output-format=json",
    ]


def parse_fio(out: str) -> dict[str, float]:
    data = json.loads(out[out.index("{") :])
    job = data["jobs"][0]
    side = job["write"] if job["write"]["io_bytes"] else job["read"]
    clat = side.get("clat_ns", {}).get("percentile", {})
    return {
        "mib_per_s": side["bw_bytes"] / MIB,
        "iops": side["iops"],
        "io_mib": side["io_bytes"] / MIB,
        "clat_p50_us": clat.get("50.000000", float("nan")) / 1000,
        "clat_p99_us": clat.get("99.000000", float("nan")) / 1000,
    }


def fio_bundle(tmp: Path) -> tuple[Path, list[str]]:
    """A tar.gz of the host's fio and the shared libraries it needs (glibc left to the guest's own)."""
    fio = shutil.which("fio")
    if fio is None:
        raise RuntimeError("fio is not installed on the host (Debian package fio)")
    libs: list[tuple[str, str]] = []
    for line in run(["ldd", fio], timeout=30).splitlines():
        match = re.match(r"\s*(\S+) => (/\S+)", line)
        if match and not match.group(1).startswith(GLIBC):
            libs.append((match.group(1), os.path.realpath(match.group(2))))
    bundle = tmp / "fio.tar.gz"
    with tarfile.open(bundle, "w:gz", compresslevel=1) as tar:
        tar.add(os.path.realpath(fio), arcname="fio")
        for soname, path in libs:
            tar.add(path, arcname=f"lib/{soname}")
    return bundle, [soname for soname, _ in libs]


class FioRunner:
    """Runs a fio job on the host or in the guest; the guest gets the host's fio, or dd stands in."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.tool = "fio" if shutil.which("fio") else "dd"  # on both sides: dd when either cannot run fio
        self.note = (
            ""
            if self.tool == "fio"
            else (
                "fio is not installed on the host: dd measures the sequential "
                "write on both sides, no random read"
            )
        )

    def install(self, guest: Guest, tmp: Path, results: dict[str, Any]) -> None:
        if self.tool != "fio":
            return
        try:
            bundle, libs = fio_bundle(tmp)
            t0 = time.perf_counter()
            guest.sh(
                f"rm -rf {GUEST_FIO} && mkdir -p {GUEST_FIO} && tar -xzf - -C {GUEST_FIO}",
                stdin=bundle,
                timeout=600,
            )
            version = guest.sh(f"LD_LIBRARY_PATH={GUEST_FIO}/lib {GUEST_FIO}/fio --version").strip()
            seconds = time.perf_counter() - t0
            results["fio_bundle"] = {
                "mib": bundle.stat().st_size / MIB,
                "libraries": libs,
                "copy_seconds": seconds,
                "guest_version": version,
            }
            print(
                f"  fio     : host {first_line(['fio', '--version'])}; copied into the guest with {len(libs)} shared "
                f"libraries ({bundle.stat().st_size / MIB:.0f} MiB tar.gz, {seconds:.1f} s): {version}",
                flush=True,
            )
        except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
            self.tool = "dd"
            self.note = (
                f"fio could not run in the guest ({exc}): dd measures the sequential write on both sides, "
                "no random read"
            )
            results["fio_bundle"] = {"error": str(exc)}
            print(f"  !!! {self.note}", flush=True)

    def host(self, kind: str, target: Path, size_mib: int) -> dict[str, float]:
        if self.tool != "fio":
            return self._dd_host(kind, target, size_mib)
        out = run(
            ["fio", *fio_argv(kind, str(target), size_mib, self.opts)],
            timeout=self.opts.fio_seconds + self.opts.fio_ramp + 120,
        )
        return parse_fio(out)

    def guest(self, guest: Guest, kind: str, device: str, size_mib: int) -> dict[str, float]:
        if self.tool != "fio":
            return self._dd_guest(guest, kind, device, size_mib)
        argv = fio_argv(kind, device, size_mib, self.opts)
        out = guest.sh(
            f"LD_LIBRARY_PATH={GUEST_FIO}/lib {GUEST_FIO}/fio {shlex.join(argv)}",
            timeout=self.opts.fio_seconds + self.opts.fio_ramp + 180,
        )
        return parse_fio(out)

    # dd: the sequential write only, when fio cannot run in the guest (the host then uses dd too)
    @staticmethod
    def _dd_result(out: str, mib: int) -> dict[str, float]:
        match = re.search(r"copied, ([0-9.]+) s", out)
        seconds = float(match.group(1)) if match else float("nan")
        return {"mib_per_s": mib / seconds, "iops": mib / seconds, "io_mib": float(mib)}

    def _dd_host(self, kind: str, target: Path, size_mib: int) -> dict[str, float]:
        if kind != "seqwrite":
            return {}
        out = run(
            [
                "sh",
                "-c",
                f"dd if=/dev/zero of={shlex.quote(str(target))} bs=1M count={size_mib} oflag=direct 2>&1",
            ],
            timeout=600,
        )
        return self._dd_result(out, size_mib)

    def _dd_guest(self, guest: Guest, kind: str, device: str, size_mib: int) -> dict[str, float]:
        if kind != "seqwrite":
            return {}
        return self._dd_result(guest.dd_zero(device, size_mib)[1], size_mib)


def fio_part(cloud: Cloud, guest: Guest | None, bench: Bench, results: dict[str, Any]) -> None:
    from nubes.domain.disk_categories import limits

    opts = cloud.opts
    part: dict[str, Any] = {"host": {}, "guest": []}
    results["fio"] = part
    runner = FioRunner(opts)
    print(
        f"\n(3) fio: sequential write (1 MiB, iodepth {opts.seq_iodepth}) and random read (4 KiB, iodepth "
        f"{opts.rand_iodepth}), O_DIRECT, libaio, {opts.fio_size_mib} MiB region, {opts.fio_ramp} s ramp + "
        f"{opts.fio_seconds} s",
        flush=True,
    )
    if guest is not None:
        runner.install(guest, bench.tmp, part)
    host_file = cloud.disks_dir / "bench-fio-host.dat"
    try:
        for kind in ("seqwrite", "randread"):
            part["host"][kind] = runner.host(kind, host_file, opts.fio_size_mib)
    finally:
        host_file.unlink(missing_ok=True)
    h = part["host"]
    print(
        f"  host file in {cloud.disks_dir}: seq write {fmt_num(h['seqwrite'].get('mib_per_s'), 1).strip()} MiB/s, "
        f"random read {fmt_num(h.get('randread', {}).get('iops'), 1).strip()} IOPS",
        flush=True,
    )
    part["tool"] = runner.tool
    part["note"] = runner.note
    if guest is None:
        return
    pid = guest.qemu_pid()
    for level, size in opts.fio_disks:
        caps = limits(CATEGORY, size, level)
        made = cloud.create_disk(size, level=level)
        disk_id = made["disk_id"]
        cloud.attach(disk_id, guest.id)
        device = guest.device(disk_id)
        api = cloud.describe_disk(disk_id)
        row: dict[str, Any] = {
            "disk_id": disk_id,
            "level": level,
            "size_gib": size,
            "device": device,
            "cap_iops": caps.iops,
            "cap_mib_per_s": caps.throughput_mbps,
            "api_iops": api.get("IOPS"),
            "api_throughput": api.get("Throughput"),
        }
        for kind in ("seqwrite", "randread"):
            region = opts.fio_size_mib
            if kind == "randread" and row.get("seqwrite"):
                # read only what the write covered: an unwritten qcow2 cluster reads as zeros without I/O
                region = max(16, min(region, int(row["seqwrite"]["io_mib"])))
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            figures = runner.guest(guest, kind, device, region)
            if figures:
                figures["qemu_cpu_percent"] = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0) * 100
                figures["region_mib"] = region
            row[kind] = figures
        part["guest"].append(row)
        print(
            f"  guest {disk_id} {device} ({CATEGORY} {level} {size} GiB, cap {caps.iops} IOPS / "
            f"{caps.throughput_mbps} MB/s): seq write {fmt_num(row['seqwrite'].get('mib_per_s'), 1).strip()} MiB/s, "
            f"random read {fmt_num(row['randread'].get('iops'), 1).strip()} IOPS",
            flush=True,
        )
