"""Storage benchmark: how long snapshots and disks from snapshots take, and what a guest gets
out of a throttled cloud disk against the host's own file system. Every figure in one run.

(1) CreateSnapshot of a 20 GiB cloud_essd (PL1) data disk with 1, 4 and 8 GiB written, timed
    from the API call until DescribeSnapshots says `accomplished` (polled every 5 ms over one
    keep-alive connection), several trials each, p50/p90:
    * Available disk (no VM has it open): the data is written on the host with `qemu-io`
      (O_DIRECT, a byte pattern in 256 MiB requests) straight into the disk's top-layer file
      before the first snapshot; snapshots are taken in rounds (1, 4, 8 GiB, 1, 4, 8 GiB, ...);
    * disk attached (hot-plugged) to a RUNNING instance, so the snapshot is a live one through
      QMP: the data is written from inside the guest with `dd oflag=direct` right before that
      size's first snapshot (or with qemu-io before the attach: --live-fill host); then a write
      burst snapshotted at once, and the same after a host `sync` (twice each), to show
      what a live snapshot waits for (QEMU's flush of the old top layer).
    The target is constant in the data written, under 200 ms.
(2) CreateDisk from each size's first snapshot (the one that froze the data), timed until
    DescribeDisks says `Available`; the first new disk of each size is checked with qemu-io
    (the pattern below the written size, zeros above). Target: constant.
(3) fio, the very same binary on both sides (the host's /usr/bin/fio and the shared libraries
    `ldd` lists, copied into the Debian 12 guest under /opt/fio): sequential write, 1 MiB
    blocks, and 4 KiB random read, both O_DIRECT and libaio, on
    * a file of the host's file system, in the directory of nubes' disk layers;
    * a hot-plugged cloud_essd data disk of the guest (the raw /dev/vdX), at a PL1 size whose
      cap (QEMU throttle group: iops-total and bps-total from domain.disk_categories.limits)
      a TCG guest can reach, and at a size whose cap it cannot.
    Ratios guest/host and guest/cap (targets: >= 0.8 of the host where the cap allows, IOPS
    within 10 % of the cap).

Only software emulation (TCG) runs guests on these machines: the guest figures are TCG figures.
Nothing is asserted: the figures are measured and printed. Every wait is bounded. The server,
every QEMU, the server's network namespaces and dnsmasq daemons and the temporary directory are
removed at the end, on Ctrl-C, on SIGTERM or on error (common.py's `Bench.close`).

Run:  .venv/bin/python bench/storage.py [--trials 8] [--skip-guest] [--json FILE]
Needs root, qemu-system-x86, qemu-utils (qemu-img, qemu-io), iproute2, nftables, dnsmasq,
openssh-client, fio, the official SDKs and the Debian 12 image in /var/cache/nubes-test/images.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common import (
    DEFAULT_IMAGES_DIR,
    INSTANCE_TYPE,
    REGION,
    ZONE,
    Bench,
    NubesServer,
    alive,
    api_error_code,
    cpu_seconds,
    first_line,
    fmt_ms,
    fmt_num,
    interrupt_on_signals,
    machine_line,
    percentile,
    ratio,
    run,
    save_json,
    verdict_word,
    vm_machine_info,
    wait_for,
)

IMAGE_NAME = "debian-12"
IMAGE_FAMILY = "nubes:debian_12_x64"
CATEGORY = "cloud_essd"
LEVEL = "PL1"
VPC = ("10.243.0.0/16", "10.243.1.0/24")
GIB = 1024 ** 3
MIB = 1024 ** 2
PATTERN = 0x5A  # the byte qemu-io writes
FILL_CHUNK_MIB = 256
SNAPSHOT_TARGET_S = 0.200
RATIO_TARGET = 0.8
CAP_TOLERANCE = 0.10
GLIBC = ("libc.so.", "libm.so.", "libresolv.so.", "libpthread.so.", "libdl.so.", "librt.so.", "ld-linux", "linux-vdso")
GUEST_FIO = "/opt/fio"
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
    parser.add_argument("--trials", type=int, default=8,
                        help="CreateSnapshot and CreateDisk trials per size and case (default 8)")
    parser.add_argument("--written", default="1,4,8", help="GiB written into the disk before snapshotting (1,4,8)")
    parser.add_argument("--disk-size", dest="disk_gib", type=int, default=20,
                        help="size of the snapshotted cloud_essd disks, GiB (default 20)")
    parser.add_argument("--fio-disks", default="PL1:20,PL1:2000",
                        help="guest fio data disks as LEVEL:GiB,... (cloud_essd; default PL1:20,PL1:2000: a cap a "
                             "TCG guest reaches and one it does not)")
    parser.add_argument("--skip-guest", action="store_true",
                        help="no VM: only Available-disk snapshots, CreateDisk and the host's fio")
    parser.add_argument("--skip-snapshots", action="store_true", help="leave out (1) and (2)")
    parser.add_argument("--skip-fio", action="store_true", help="leave out (3)")
    parser.add_argument("--live-fill", choices=("guest", "host"), default="guest",
                        help="how the attached disks get their data: dd inside the guest (default) or qemu-io on the "
                             "host before the attach")
    parser.add_argument("--burst", dest="burst_mib", type=int, default=512,
                        help="live: MiB of the write burst snapshotted as left and after a host sync, twice each "
                             "(default 512; 0 = leave it out)")
    parser.add_argument("--fio-seconds", type=int, default=10, help="measured seconds per fio job (default 10)")
    parser.add_argument("--fio-ramp", type=int, default=2, help="unmeasured seconds before each fio job (default 2)")
    parser.add_argument("--fio-size", dest="fio_size_mib", type=int, default=1024,
                        help="MiB of the file/disk the fio jobs cover (default 1024)")
    parser.add_argument("--seq-iodepth", type=int, default=4, help="queue depth of the sequential write (default 4)")
    parser.add_argument("--rand-iodepth", type=int, default=32, help="queue depth of the random read (default 32)")
    parser.add_argument("--poll-interval", type=float, default=0.005,
                        help="pause between two status polls, seconds (default 0.005)")
    parser.add_argument("--call-timeout", type=float, default=60.0,
                        help="give up on one snapshot/disk trial after this long (default 60)")
    parser.add_argument("--boot-timeout", type=float, default=300.0,
                        help="give up on the instance's boot and first login after this long (default 300)")
    parser.add_argument("--json", dest="json_path", type=Path, help="also save the raw figures to this file")
    parser.add_argument("--images-dir", type=Path,
                        default=Path(os.environ.get("NUBES_IMAGES_DIR") or DEFAULT_IMAGES_DIR),
                        help=f"where the Debian image is built (default $NUBES_IMAGES_DIR or {DEFAULT_IMAGES_DIR})")
    args = parser.parse_args(argv)
    try:
        written = tuple(int(x) for x in args.written.split(","))
        fio_disks = tuple((level.strip().upper(), int(size)) for level, size in
                          (item.split(":") for item in args.fio_disks.split(",") if item))
    except ValueError:
        parser.error("--written takes GiB,GiB,... and --fio-disks LEVEL:GiB,...")
    if not 0 <= args.burst_mib <= 8192:
        parser.error("--burst must be in [0, 8192]")
    if not 1 <= args.trials <= 100:
        parser.error("--trials must be in [1, 100]")
    if not written or any(not 1 <= w < args.disk_gib for w in written):
        parser.error("--written: each size must be at least 1 and below --disk-size")
    if not 1 <= args.fio_seconds <= 300 or not 0 <= args.fio_ramp <= 60 or not 16 <= args.fio_size_mib <= 16384:
        parser.error("--fio-seconds in [1, 300], --fio-ramp in [0, 60], --fio-size in [16, 16384]")
    if not 0 <= args.poll_interval <= 1 or not 1 <= args.call_timeout <= 600 or not 30 <= args.boot_timeout <= 1800:
        parser.error("--poll-interval in [0, 1], --call-timeout in [1, 600], --boot-timeout in [30, 1800]")
    if args.skip_snapshots and args.skip_fio:
        parser.error("nothing to do: both parts skipped")
    return Options(args.trials, written, args.disk_gib, fio_disks, args.skip_guest, args.skip_snapshots, args.skip_fio,
                   args.live_fill, args.burst_mib, args.fio_seconds, args.fio_ramp, args.fio_size_mib, args.seq_iodepth,
                   args.rand_iodepth, args.poll_interval, args.call_timeout, args.boot_timeout, args.json_path,
                   args.images_dir)


# ---- small helpers --------------------------------------------------------------------------------


def dirty_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("Dirty:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def allocated_mib(path: Path) -> float:
    """What the qcow2 file holds on the host's file system."""
    try:
        return path.stat().st_blocks * 512 / MIB
    except OSError:
        return float("nan")


def qemu_io(path: Path, commands: Sequence[str], *, flags: Sequence[str] = (), timeout: float = 900) -> str:
    argv = ["qemu-io", *flags, "-f", "qcow2"]
    for command in commands:
        argv += ["-c", command]
    out = run([*argv, str(path)], timeout=timeout)
    if "fail" in out.lower():
        raise RuntimeError(f"qemu-io on {path.name}: {out.strip()[-500:]}")
    return out


def fill(path: Path, gib: int) -> dict[str, float]:
    """Write `gib` GiB of the pattern at offset 0 of a qcow2 file no VM has open (O_DIRECT)."""
    chunks = gib * 1024 // FILL_CHUNK_MIB
    t0 = time.perf_counter()
    qemu_io(path, [f"write -q -P {PATTERN:#x} {i * FILL_CHUNK_MIB}M {FILL_CHUNK_MIB}M" for i in range(chunks)],
            flags=("-n", "-i", "native"))
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "mib_per_s": gib * 1024 / seconds, "allocated_mib": allocated_mib(path)}


def content_ok(path: Path, gib: int) -> bool:
    """The pattern in the last MiB below `gib` GiB, zeros in the MiB after it (read-only, shared)."""
    try:
        qemu_io(path, [f"read -q -P {PATTERN:#x} {gib * 1024 - 1}M 1M", f"read -q -P 0 {gib * 1024}M 1M"],
                flags=("-r", "-U"), timeout=60)
    except RuntimeError:
        return False
    return True


# ---- driving nubes ---------------------------------------------------------------------------------


class Cloud:
    """The server, a keep-alive signed client for the timed calls, and what the run created."""

    def __init__(self, srv: NubesServer, opts: Options) -> None:
        assert srv.raw is not None
        self.srv, self.raw, self.opts = srv, srv.raw, opts
        self.disks_dir = srv.data_dir / "disks"

    def call(self, action: str, params: dict[str, str]) -> dict[str, Any]:
        return self.raw.json(action, params)

    def layer(self, name: str) -> Path:
        return self.disks_dir / f"{name}.qcow2"

    def poll(self, action: str, params: dict[str, str], read: Callable[[dict[str, Any]], str], wanted: str,
             t0: float) -> tuple[float, int, str]:
        """Call `action` until read(answer) == wanted, pausing opts.poll_interval between calls;
        (seconds from t0 to the answer that said so, polls made, last value). NaN on a failure or
        after opts.call_timeout."""
        polls, value = 0, ""
        while True:
            status, body, _ = self.raw.call(action, params)
            now = time.perf_counter()
            polls += 1
            value = read(json.loads(body)) if status == 200 else f"HTTP {status}"
            if value == wanted:
                return now - t0, polls, value
            if value in ("failed", "Deleted") or value.startswith("HTTP") or now - t0 > self.opts.call_timeout:
                return float("nan"), polls, value
            time.sleep(self.opts.poll_interval)

    def disk_status(self, disk_id: str) -> str:
        disks = self.call("DescribeDisks", {"DiskIds": json.dumps([disk_id])})["Disks"]["Disk"]
        return str(disks[0]["Status"]) if disks else ""

    def describe_disk(self, disk_id: str) -> dict[str, Any]:
        disk: dict[str, Any] = self.call("DescribeDisks", {"DiskIds": json.dumps([disk_id])})["Disks"]["Disk"][0]
        return disk

    def create_disk(self, size_gib: int | None = None, snapshot_id: str = "", level: str = LEVEL) -> dict[str, Any]:
        """CreateDisk, timed until DescribeDisks says Available."""
        params = {"ZoneId": ZONE, "DiskCategory": CATEGORY, "PerformanceLevel": level}
        if size_gib:
            params["Size"] = str(size_gib)
        if snapshot_id:
            params["SnapshotId"] = snapshot_id
        t0 = time.perf_counter()
        disk_id = str(self.call("CreateDisk", params)["DiskId"])
        api = time.perf_counter() - t0
        seconds, polls, last = self.poll("DescribeDisks", {"DiskIds": json.dumps([disk_id])},
                                         lambda d: str(d["Disks"]["Disk"][0]["Status"]), "Available", t0)
        if math.isnan(seconds):
            raise RuntimeError(f"disk {disk_id} is {last}, not Available, {self.opts.call_timeout:.0f} s after "
                               "CreateDisk")
        return {"disk_id": disk_id, "seconds": seconds, "api_seconds": api, "polls": polls}

    def snapshot(self, disk_id: str) -> dict[str, Any]:
        """CreateSnapshot, timed until DescribeSnapshots says accomplished."""
        dirty = dirty_mib()
        t0 = time.perf_counter()
        snapshot_id = str(self.call("CreateSnapshot", {"DiskId": disk_id})["SnapshotId"])
        api = time.perf_counter() - t0
        seconds, polls, last = self.poll("DescribeSnapshots", {"SnapshotIds": json.dumps([snapshot_id])},
                                         lambda d: str(d["Snapshots"]["Snapshot"][0]["Status"]), "accomplished", t0)
        return {"snapshot_id": snapshot_id, "seconds": seconds, "api_seconds": api, "polls": polls, "last": last,
                "host_dirty_mib": dirty}

    def attach(self, disk_id: str, instance_id: str) -> None:
        self.call("AttachDisk", {"DiskId": disk_id, "InstanceId": instance_id})
        wait_for(lambda: self.disk_status(disk_id) == "In_use", f"{disk_id} In_use", self.opts.call_timeout, 0.1)


class Guest:
    """A running Debian instance and `nubes ssh` into it."""

    def __init__(self, cloud: Cloud, key_file: Path, instance_id: str) -> None:
        self.cloud, self.key_file, self.id = cloud, key_file, instance_id
        srv = cloud.srv
        self.env = {**os.environ, "NUBES_ENDPOINT": srv.endpoint, "NUBES_REGION": REGION,
                    "NUBES_ACCESS_KEY_ID": srv.key[0], "NUBES_ACCESS_KEY_SECRET": srv.key[1]}

    def _ssh(self, script: str, stdin: Path | None, timeout: float) -> subprocess.CompletedProcess[str]:
        # ssh hands the words to the remote shell joined: the script goes as one quoted word
        argv = [sys.executable, "-m", "nubes.cli.main", "ssh", "-i", str(self.key_file), self.id, "--",
                "sh", "-c", shlex.quote(script)]
        with open(stdin or os.devnull, "rb") as source:
            return subprocess.run(argv, stdin=source, capture_output=True, text=True, timeout=timeout, env=self.env,
                                  check=False)

    def sh(self, script: str, *, stdin: Path | None = None, timeout: float = 120) -> str:
        """Run a shell script in the guest; its stdout. 255 is ssh's own failure (sshd reloads once
        shortly after boot): retried, bounded."""
        for _ in range(10):
            done = self._ssh(script, stdin, timeout)
            if done.returncode != 255:
                break
            time.sleep(1)
        if done.returncode != 0:
            raise RuntimeError(f"{script[:200]!r} in {self.id} exited {done.returncode}: "
                               f"{(done.stderr or done.stdout).strip()[-800:]}")
        return done.stdout

    def wait_login(self, timeout: float) -> float:
        t0 = time.monotonic()
        wait_for(lambda: self._ssh("true", None, 30).returncode == 0, f"ssh into {self.id}", timeout, 2)
        return time.monotonic() - t0

    def device(self, disk_id: str) -> str:
        """/dev/vdX of the virtio disk whose serial is the disk id (no udev in the guest)."""
        serial = disk_id.removeprefix("d-")[:20]
        script = (f'for b in /sys/block/vd*; do [ "$(cat $b/serial 2>/dev/null)" = "{serial}" ] && '
                  "echo /dev/${b##*/}; done; true")
        found: str = wait_for(lambda: self.sh(script).strip(), f"{disk_id} in {self.id}", self.cloud.opts.call_timeout,
                              1)
        return found

    def dd_zero(self, device: str, mib: int) -> tuple[float, str]:
        """Write `mib` MiB of zeros at the start of a device, O_DIRECT, 1 MiB blocks: (seconds, dd's
        summary line). QEMU stores them as data (its detect-zeroes is off)."""
        t0 = time.perf_counter()
        out = self.sh(f"dd if=/dev/zero of={device} bs=1M count={mib} oflag=direct 2>&1", timeout=max(600, mib / 8))
        return time.perf_counter() - t0, out.strip().splitlines()[-1]

    def qemu_pid(self) -> int:
        handle = self.cloud.srv.data_dir / "run" / "vms" / self.id / "handle.json"
        return int(json.loads(handle.read_text())["pid"])


def launch_guest(bench: Bench, cloud: Cloud, results: dict[str, Any], guests: list[Guest]) -> Guest:
    from alibabacloud_ecs20140526 import models as em

    srv, opts = cloud.srv, cloud.opts
    _, vswitch, group = srv.network(*VPC)
    srv.ecs.authorize_security_group(em.AuthorizeSecurityGroupRequest(
        region_id=REGION, security_group_id=group, ip_protocol="tcp", port_range="22/22", source_cidr_ip="0.0.0.0/0"))
    private = srv.ecs.create_key_pair(em.CreateKeyPairRequest(region_id=REGION, key_pair_name="bench")).body
    key_file = bench.tmp / "bench.pem"
    key_file.write_text(private.private_key_body)
    key_file.chmod(0o600)
    t0 = time.monotonic()
    [instance_id] = srv.ecs.run_instances(em.RunInstancesRequest(
        region_id=REGION, image_id=srv.image_id(IMAGE_FAMILY, IMAGE_NAME), instance_type=INSTANCE_TYPE, v_switch_id=vswitch,
        security_group_id=group, key_pair_name="bench")).body.instance_id_sets.instance_id_set
    guest = Guest(cloud, key_file, str(instance_id))
    guests.append(guest)  # deleted at the end, whatever happens next
    wait_for(lambda: cloud.call("DescribeInstances", {"InstanceIds": json.dumps([guest.id])})
             ["Instances"]["Instance"][0]["Status"] == "Running", f"{guest.id} Running", opts.boot_timeout, 0.5)
    running = time.monotonic() - t0
    login = guest.wait_login(max(30.0, opts.boot_timeout - running)) + running
    results["guest"] = {"instance_id": guest.id, "instance_type": INSTANCE_TYPE, "running_s": running,
                        "login_s": login, "kernel": guest.sh("uname -r").strip()}
    print(f"  guest   : {guest.id} ({INSTANCE_TYPE}, {IMAGE_FAMILY}) Running after {running:.1f} s, ssh after "
          f"{login:.1f} s", flush=True)
    return guest


def delete_guest(bench: Bench, guest: Guest) -> None:
    """DeleteInstances (Force) and wait, bounded, until its QEMU is gone: the server's VMs outlive
    the server by design, and Bench.close() would have to kill it."""
    try:
        pid = guest.qemu_pid()
        guest.cloud.srv.delete_instances([guest.id])
    except Exception as exc:  # noqa: BLE001 - Bench.close() kills what is left
        bench.notes.append(f"DeleteInstances {guest.id}: {api_error_code(exc)}")
        return
    deadline = time.monotonic() + 60
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


# ---- (1) and (2): snapshots and disks from snapshots ----------------------------------------------------


def rounds(opts: Options, label: str, entries: dict[str, dict[str, Any]],
           trial: Callable[[int, dict[str, Any], int], dict[str, Any]]) -> None:
    """opts.trials rounds over the sizes (1, 4, 8, 1, 4, 8, ...): trial(GiB, entry, round) is
    appended to entry["trials"]; one line per round."""
    for k in range(opts.trials):
        line = []
        for gib, entry in entries.items():
            result = trial(int(gib), entry, k)
            entry["trials"].append(result)
            line.append(f"{gib} GiB {fmt_ms(result['seconds'], 1).strip()} ms")
            time.sleep(SETTLE)
        print(f"  {label}round {k + 1}/{opts.trials}: " + ", ".join(line), flush=True)


def snapshot_part(cloud: Cloud, guest: Guest | None, results: dict[str, Any]) -> None:
    opts = cloud.opts
    part: dict[str, Any] = {"available": {}, "live": {}, "create_disk": {}}
    results["snapshots"] = part
    print(f"\n(1) CreateSnapshot of a {opts.disk_gib} GiB {CATEGORY} {LEVEL} disk -> 'accomplished' "
          f"(DescribeSnapshots every {opts.poll_interval * 1000:g} ms)", flush=True)

    # Available disks: filled on the host, then snapshotted in rounds over the sizes.
    blank_create: list[float] = []
    for gib in opts.written_gib:
        made = cloud.create_disk(opts.disk_gib)
        blank_create.append(made["seconds"])
        path = cloud.layer(made["disk_id"])
        written = fill(path, gib)
        part["available"][str(gib)] = {"disk_id": made["disk_id"], "fill": written, "trials": []}
        print(f"  Available {made['disk_id']}: {gib} GiB written with qemu-io in {written['seconds']:.1f} s "
              f"({written['mib_per_s']:.0f} MiB/s), top layer holds {written['allocated_mib']:.0f} MiB", flush=True)
    part["create_blank_seconds"] = blank_create

    def snapshot_available(gib: int, entry: dict[str, Any], k: int) -> dict[str, Any]:
        return {**cloud.snapshot(entry["disk_id"]), "chain_depth": k}

    rounds(opts, "Available, ", part["available"], snapshot_available)

    # (2) disks from each size's first snapshot, in rounds too
    print(f"\n(2) CreateDisk from the snapshot -> 'Available' (DescribeDisks every {opts.poll_interval * 1000:g} ms)",
          flush=True)
    for gib in opts.written_gib:
        part["create_disk"][str(gib)] = {"snapshot_id": part["available"][str(gib)]["trials"][0]["snapshot_id"],
                                         "trials": []}

    def disk_from_snapshot(gib: int, entry: dict[str, Any], k: int) -> dict[str, Any]:
        made = cloud.create_disk(snapshot_id=entry["snapshot_id"])
        if k == 0:
            entry["content_ok"] = content_ok(cloud.layer(made["disk_id"]), gib)
        return made

    rounds(opts, "", part["create_disk"], disk_from_snapshot)
    checks = {gib: part["create_disk"][str(gib)].get("content_ok") for gib in opts.written_gib}
    print("  content of the first disk from each snapshot (qemu-io: pattern below the written size, zeros above): "
          + ", ".join(f"{gib} GiB {'ok' if ok else '!!! WRONG'}" for gib, ok in checks.items()), flush=True)

    if guest is None:
        return
    # Live: attached to the running instance, written, snapshotted through QMP.
    print(f"\n(1) live: disks attached to the RUNNING instance {guest.id}, data written "
          f"{'in the guest (dd oflag=direct, 1 MiB blocks)' if opts.live_fill == 'guest' else 'with qemu-io before the attach'}",
          flush=True)
    for gib in opts.written_gib:
        made = cloud.create_disk(opts.disk_gib)
        disk_id = made["disk_id"]
        live: dict[str, Any] = {"disk_id": disk_id, "trials": []}
        part["live"][str(gib)] = live
        if opts.live_fill == "host":
            live["fill"] = fill(cloud.layer(disk_id), gib)
        cloud.attach(disk_id, guest.id)
        device = guest.device(disk_id)
        if opts.live_fill == "guest":
            seconds, line = guest.dd_zero(device, gib * 1024)
            live["fill"] = {"seconds": seconds, "mib_per_s": gib * 1024 / seconds, "dd": line}
        live["fill"]["allocated_mib"] = allocated_mib(cloud.layer(disk_id))
        live["host_dirty_mib_before"] = dirty_mib()
        live["device"] = device
        for k in range(opts.trials):
            live["trials"].append({**cloud.snapshot(disk_id), "chain_depth": k})
            time.sleep(SETTLE)
        times = [t["seconds"] for t in live["trials"]]
        print(f"  {disk_id} ({device}): {gib} GiB written in {live['fill']['seconds']:.1f} s "
              f"({live['fill']['mib_per_s']:.0f} MiB/s), top layer {live['fill']['allocated_mib']:.0f} MiB, host "
              f"Dirty {live['host_dirty_mib_before']:.0f} MiB; snapshots: first {fmt_ms(times[0], 1).strip()} ms, "
              f"p50 {fmt_ms(percentile(times, .5), 1).strip()} ms, max {fmt_ms(max(times), 1).strip()} ms", flush=True)
    if opts.burst_mib:
        first = part["live"][str(opts.written_gib[0])]
        part["live_burst"] = live_burst(cloud, guest, first["disk_id"], first["device"])


def live_burst(cloud: Cloud, guest: Guest, disk_id: str, device: str) -> dict[str, Any]:
    """What a live snapshot waits for: the same write burst, snapshotted at once ("as left") and
    after a host-wide sync (the page cache of the disk's qcow2 file written back first), BURSTS
    times each, alternating."""
    mib = cloud.opts.burst_mib
    found: dict[str, Any] = {"disk_id": disk_id, "mib": mib, "as left": [], "after sync": []}
    for _ in range(BURSTS):
        for case in ("as left", "after sync"):
            seconds, _ = guest.dd_zero(device, mib)
            sync_s = float("nan")
            if case == "after sync":
                t0 = time.perf_counter()
                os.sync()
                sync_s = time.perf_counter() - t0
            found[case].append({**cloud.snapshot(disk_id), "dd_seconds": seconds, "sync_seconds": sync_s})
            time.sleep(SETTLE)
    print(f"  burst: {burst_line(found)}", flush=True)
    return found


def burst_line(found: dict[str, Any]) -> str:
    def case(trials: list[dict[str, Any]]) -> str:
        return (", ".join(fmt_ms(t["seconds"], 1).strip() for t in trials) + " ms (host Dirty "
                + ", ".join(f"{t['host_dirty_mib']:.0f}" for t in trials) + " MiB)")
    return (f"{found['mib']} MiB written by dd in the guest, then the snapshot at once: {case(found['as left'])}; "
            f"the same after a host `sync`: {case(found['after sync'])}")


# ---- (3) fio, host and guest --------------------------------------------------------------------------


def fio_argv(kind: str, target: str, size_mib: int, opts: Options) -> list[str]:
    """The fio job (the same on both sides); its JSON on stdout."""
    shape = {"seqwrite": ["--rw=write", "--bs=1M", f"--iodepth={opts.seq_iodepth}"],
             "randread": ["--rw=randread", "--bs=4k", f"--iodepth={opts.rand_iodepth}"]}[kind]
    return [f"--name={kind}", f"--filename={target}", *shape, "--direct=1", "--ioengine=libaio",
            f"--size={size_mib}M", "--time_based", f"--runtime={opts.fio_seconds}", f"--ramp_time={opts.fio_ramp}",
            "--randrepeat=0", "--norandommap", "--group_reporting", "--output-format=json"]


def parse_fio(out: str) -> dict[str, float]:
    data = json.loads(out[out.index("{"):])
    job = data["jobs"][0]
    side = job["write"] if job["write"]["io_bytes"] else job["read"]
    clat = side.get("clat_ns", {}).get("percentile", {})
    return {"mib_per_s": side["bw_bytes"] / MIB, "iops": side["iops"], "io_mib": side["io_bytes"] / MIB,
            "clat_p50_us": clat.get("50.000000", float("nan")) / 1000,
            "clat_p99_us": clat.get("99.000000", float("nan")) / 1000}


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
        self.note = "" if self.tool == "fio" else "fio is not installed on the host: dd measures the sequential " \
                                                 "write on both sides, no random read"

    def install(self, guest: Guest, tmp: Path, results: dict[str, Any]) -> None:
        if self.tool != "fio":
            return
        try:
            bundle, libs = fio_bundle(tmp)
            t0 = time.perf_counter()
            guest.sh(f"rm -rf {GUEST_FIO} && mkdir -p {GUEST_FIO} && tar -xzf - -C {GUEST_FIO}", stdin=bundle,
                     timeout=600)
            version = guest.sh(f"LD_LIBRARY_PATH={GUEST_FIO}/lib {GUEST_FIO}/fio --version").strip()
            seconds = time.perf_counter() - t0
            results["fio_bundle"] = {"mib": bundle.stat().st_size / MIB, "libraries": libs, "copy_seconds": seconds,
                                     "guest_version": version}
            print(f"  fio     : host {first_line(['fio', '--version'])}; copied into the guest with {len(libs)} shared "
                  f"libraries ({bundle.stat().st_size / MIB:.0f} MiB tar.gz, {seconds:.1f} s): {version}", flush=True)
        except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
            self.tool = "dd"
            self.note = (f"fio could not run in the guest ({exc}): dd measures the sequential write on both sides, "
                         "no random read")
            results["fio_bundle"] = {"error": str(exc)}
            print(f"  !!! {self.note}", flush=True)

    def host(self, kind: str, target: Path, size_mib: int) -> dict[str, float]:
        if self.tool != "fio":
            return self._dd_host(kind, target, size_mib)
        out = run(["fio", *fio_argv(kind, str(target), size_mib, self.opts)],
                  timeout=self.opts.fio_seconds + self.opts.fio_ramp + 120)
        return parse_fio(out)

    def guest(self, guest: Guest, kind: str, device: str, size_mib: int) -> dict[str, float]:
        if self.tool != "fio":
            return self._dd_guest(guest, kind, device, size_mib)
        argv = fio_argv(kind, device, size_mib, self.opts)
        out = guest.sh(f"LD_LIBRARY_PATH={GUEST_FIO}/lib {GUEST_FIO}/fio {shlex.join(argv)}",
                       timeout=self.opts.fio_seconds + self.opts.fio_ramp + 180)
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
        out = run(["sh", "-c", f"dd if=/dev/zero of={shlex.quote(str(target))} bs=1M count={size_mib} oflag=direct 2>&1"],
                  timeout=600)
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
    print(f"\n(3) fio: sequential write (1 MiB, iodepth {opts.seq_iodepth}) and random read (4 KiB, iodepth "
          f"{opts.rand_iodepth}), O_DIRECT, libaio, {opts.fio_size_mib} MiB region, {opts.fio_ramp} s ramp + "
          f"{opts.fio_seconds} s", flush=True)
    if guest is not None:
        runner.install(guest, bench.tmp, part)
    host_file = cloud.disks_dir / "bench-fio-host.dat"
    try:
        for kind in ("seqwrite", "randread"):
            part["host"][kind] = runner.host(kind, host_file, opts.fio_size_mib)
    finally:
        host_file.unlink(missing_ok=True)
    h = part["host"]
    print(f"  host file in {cloud.disks_dir}: seq write {fmt_num(h['seqwrite'].get('mib_per_s'), 1).strip()} MiB/s, "
          f"random read {fmt_num(h.get('randread', {}).get('iops'), 1).strip()} IOPS", flush=True)
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
        row: dict[str, Any] = {"disk_id": disk_id, "level": level, "size_gib": size, "device": device,
                               "cap_iops": caps.iops, "cap_mib_per_s": caps.throughput_mbps,
                               "api_iops": api.get("IOPS"), "api_throughput": api.get("Throughput")}
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
        print(f"  guest {disk_id} {device} ({CATEGORY} {level} {size} GiB, cap {caps.iops} IOPS / "
              f"{caps.throughput_mbps} MB/s): seq write {fmt_num(row['seqwrite'].get('mib_per_s'), 1).strip()} MiB/s, "
              f"random read {fmt_num(row['randread'].get('iops'), 1).strip()} IOPS", flush=True)


# ---- summary --------------------------------------------------------------------------------------------


def stats(values: Sequence[float]) -> dict[str, float]:
    good = [v for v in values if not math.isnan(v)]
    return {"n": len(good), "failed": len(values) - len(good), "first": values[0] if values else float("nan"),
            "p50": percentile(good, .5), "p90": percentile(good, .9), "min": min(good, default=float("nan")),
            "max": max(good, default=float("nan"))}


def summarize(results: dict[str, Any], opts: Options) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    snaps = results.get("snapshots")
    if snaps:
        for case in ("available", "live", "create_disk"):
            rows = {}
            for gib, entry in snaps[case].items():
                if not entry["trials"]:  # an interrupted or failed run
                    continue
                rows[gib] = stats([t["seconds"] for t in entry["trials"]])
                rows[gib]["api_p50"] = percentile([t["api_seconds"] for t in entry["trials"]], .5)
                rows[gib]["polls_p50"] = percentile([t["polls"] for t in entry["trials"]], .5)
                rows[gib]["dirty_first"] = entry["trials"][0].get("host_dirty_mib", float("nan"))
            if rows:
                summary[case] = rows
    fio = results.get("fio")
    if fio:
        host = fio["host"]
        fio_rows = []
        for row in fio["guest"]:
            seq, rnd = row.get("seqwrite", {}), row.get("randread", {})
            host_seq, host_iops = host.get("seqwrite", {}).get("mib_per_s"), host.get("randread", {}).get("iops")
            reachable_seq = min(host_seq or float("nan"), row["cap_mib_per_s"])
            reachable_iops = min(host_iops or float("nan"), row["cap_iops"])
            fio_rows.append({
                "disk": f"{row['level']} {row['size_gib']} GiB", "cap_iops": row["cap_iops"],
                "cap_mib_per_s": row["cap_mib_per_s"],
                "seq_mib_per_s": seq.get("mib_per_s"), "seq_ratio_host": ratio(seq.get("mib_per_s"), host_seq),
                "seq_ratio_reachable": ratio(seq.get("mib_per_s"), reachable_seq),
                "seq_ratio_cap": ratio(seq.get("mib_per_s"), row["cap_mib_per_s"]),
                "rand_iops": rnd.get("iops"), "rand_ratio_host": ratio(rnd.get("iops"), host_iops),
                "rand_ratio_reachable": ratio(rnd.get("iops"), reachable_iops),
                "rand_ratio_cap": ratio(rnd.get("iops"), row["cap_iops"]),
                "qemu_cpu_seq": seq.get("qemu_cpu_percent"), "qemu_cpu_rand": rnd.get("qemu_cpu_percent"),
            })
        summary["fio"] = fio_rows
    return summary


def verdict_ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    return verdict_word(value < SNAPSHOT_TARGET_S)


def print_summary(results: dict[str, Any], summary: dict[str, Any], opts: Options) -> None:
    titles = {"available": "(1) CreateSnapshot, Available disk (no VM)",
              "live": f"(1) CreateSnapshot, disk of a RUNNING instance (live, QMP; data written "
                      f"{'by dd in the guest' if opts.live_fill == 'guest' else 'by qemu-io before the attach'})",
              "create_disk": "(2) CreateDisk from the snapshot -> Available"}
    for case, title in titles.items():
        rows = summary.get(case)
        if not rows:
            continue
        print(f"\n{title}, ms from the API call ({opts.disk_gib} GiB {CATEGORY} {LEVEL}; p50/p90 interpolated)")
        print("    written   n   first     p50     p90     min     max   call p50  polls p50"
              + ("  Dirty@first   p50 < 200 ms" if case != "create_disk" else ""))
        for gib, s in rows.items():
            flags = f" {fmt_num(s['dirty_first'], 8)} MiB   {verdict_ms(s['p50'])}" if case != "create_disk" else ""
            if case != "create_disk" and s["max"] >= SNAPSHOT_TARGET_S:
                flags += f"  !!! max {fmt_ms(s['max'], 1).strip()} ms"
            if s["failed"]:
                flags += f"  !!! {s['failed']} trial(s) failed or timed out"
            print(f"    {gib:>3} GiB {s['n']:>4} {fmt_ms(s['first'])} {fmt_ms(s['p50'])} {fmt_ms(s['p90'])} {fmt_ms(s['min'])} "
                  f"{fmt_ms(s['max'])} {fmt_ms(s['api_p50'], 10)} {s['polls_p50']:10.0f}{flags}")
        sizes = list(rows)
        if len(sizes) > 1:
            lo, hi = rows[sizes[0]], rows[sizes[-1]]
            print(f"    ratio {sizes[-1]} GiB / {sizes[0]} GiB: p50 {ratio(hi['p50'], lo['p50']):.2f}x, p90 "
                  f"{ratio(hi['p90'], lo['p90']):.2f}x, first {ratio(hi['first'], lo['first']):.2f}x (target: "
                  "constant, 1.0x)")
        burst = (results.get("snapshots") or {}).get("live_burst")
        if case == "live" and burst:
            print(f"    burst: {burst_line(burst)}")
            print("    A live snapshot waits for QEMU's blockdev-snapshot-sync, which drains the disk and flushes the old "
                  "top layer (bdrv_flush = fdatasync of a qcow2 file opened with the host's page cache): what the host "
                  "has not written back yet (Dirty) adds to its time, the GiB the disk holds do not; the guest's I/O "
                  "to that disk waits meanwhile. The kernel writes back a file dirty for 30 s, so a long fill ends "
                  "with little dirty data and a short one with much.")
    snaps = results.get("snapshots")
    if snaps:
        blank = snaps.get("create_blank_seconds", [])
        if blank:
            print(f"    (for scale: CreateDisk of a blank {opts.disk_gib} GiB disk -> Available, p50 "
                  f"{fmt_ms(percentile(blank, .5), 1).strip()} ms over {len(blank)})")
        print("    'first' = the trial right after the data was written (the data in the disk's top layer); each later "
              "trial snapshots a disk whose chain is one layer deeper. Dirty@first = the host's dirty page cache "
              "(/proc/meminfo Dirty: the whole machine's, other files' too) just before the first trial. The time is taken when the first answer "
              f"saying so arrives; resolution: the {opts.poll_interval * 1000:g} ms pause plus one DescribeSnapshots/"
              "DescribeDisks call (see 'polls p50').")
    rows = summary.get("fio")
    fio = results.get("fio")
    if fio:
        host = fio["host"]
        tool = fio.get("tool", "fio")
        print(f"\n(3) Guest data disk against a file of the host ({tool}, the same binary on both sides; TCG guest, "
              f"1 vCPU)")
        hs, hr = host.get("seqwrite", {}), host.get("randread", {})
        print(f"    host file            seq write {fmt_num(hs.get('mib_per_s'), 8, 1)} MiB/s     random read "
              f"{fmt_num(hr.get('iops'), 9)} IOPS (clat p50 {fmt_num(hr.get('clat_p50_us'), 1, 0)} us)")
        if rows:
            print("    guest disk           cap MB/s  seq MiB/s  /host  /min(host,cap)  /cap  | cap IOPS  rand IOPS  "
                  "/host  /min(host,cap)  /cap   QEMU CPU% seq/rand")
            for r in rows:
                seq_ok = r["seq_ratio_reachable"] >= RATIO_TARGET
                iops_ok = abs(r["rand_ratio_cap"] - 1) <= CAP_TOLERANCE
                print(f"    {r['disk']:<20} {r['cap_mib_per_s']:8d} {fmt_num(r['seq_mib_per_s'], 10, 1)} "
                      f"{fmt_num(r['seq_ratio_host'], 6, 2)} {fmt_num(r['seq_ratio_reachable'], 15, 2)} "
                      f"{fmt_num(r['seq_ratio_cap'], 5, 2)}  | {r['cap_iops']:8d} {fmt_num(r['rand_iops'], 10)} "
                      f"{fmt_num(r['rand_ratio_host'], 6, 2)} {fmt_num(r['rand_ratio_reachable'], 15, 2)} "
                      f"{fmt_num(r['rand_ratio_cap'], 5, 2)}   {fmt_num(r['qemu_cpu_seq'], 5)}/{fmt_num(r['qemu_cpu_rand'], 0)}")
                print(f"    {'':<20} targets: seq >= {RATIO_TARGET} of min(host, cap): "
                      f"{verdict_word(seq_ok)}; IOPS within {CAP_TOLERANCE:.0%} of the cap: "
                      f"{verdict_word(iops_ok)}")
        if fio.get("note"):
            print(f"    !!! {fio['note']}")
        print("    cap = the throttle group nubes gives the disk (limits(): iops-total, bps-total; MB = MiB). "
              "/min(host,cap) is the figure the >= 0.8 target is read against: the cap, where it is below the host. "
              "The guest's O_DIRECT reaches QEMU, whose qcow2 file is opened with the host's page cache "
              "(cache=writeback), while the host's fio bypasses it: the random reads of the guest come from the "
              "host's page cache. QEMU CPU% = the instance's QEMU process (all threads), % of one core: near "
              "100 % per vCPU thread means TCG was the limit.")


def print_header(info: dict[str, Any], opts: Options) -> None:
    print("nubes storage benchmark")
    print(machine_line(info))
    print(f"  accel   : TCG only (software emulation; /dev/kvm {info['dev_kvm']}): every guest figure is a TCG "
          "figure, the host figures are native")
    print(f"  tools   : {info['qemu']}; {first_line(['qemu-img', '--version'])}; "
          f"{first_line(['fio', '--version']) if shutil.which('fio') else 'no fio'}")
    parts = []
    if not opts.skip_snapshots:
        parts.append(f"(1)+(2) {opts.trials} trials x {','.join(map(str, opts.written_gib))} GiB written, Available"
                     + ("" if opts.skip_guest else " and live"))
    if not opts.skip_fio:
        parts.append("(3) host file" + ("" if opts.skip_guest else " vs guest "
                                        + ", ".join(f"{lv} {sz} GiB" for lv, sz in opts.fio_disks)))
    print(f"  plan    : {'; '.join(parts)}", flush=True)


TOOLS = {"qemu-system-x86_64": "qemu-system-x86", "qemu-img": "qemu-utils", "qemu-io": "qemu-utils",
         "ip": "iproute2", "nft": "nftables", "dnsmasq": "dnsmasq-base", "ssh": "openssh-client"}


def preflight(opts: Options) -> None:
    """Exit 2, saying what is missing, when the run cannot work; fio alone is optional (dd then)."""
    from importlib.util import find_spec

    problems = [] if os.geteuid() == 0 else ["needs root (network namespaces, taps, nubes ssh)"]
    packages = sorted({package for tool, package in TOOLS.items() if shutil.which(tool) is None})
    if packages:
        problems.append(f"missing Debian packages: {' '.join(packages)}")
    if not all(find_spec(sdk) for sdk in ("alibabacloud_ecs20140526", "alibabacloud_vpc20160428")):
        problems.append("the official SDKs are missing: pip install -e '.[test]'")
    if problems:
        print("bench/storage.py: " + "; ".join(problems), file=sys.stderr)
        raise SystemExit(2)
    if shutil.which("fio") is None and not opts.skip_fio:
        print("bench/storage.py: fio is not installed (Debian package fio): dd stands in, sequential write only",
              file=sys.stderr)


def run_parts(bench: Bench, opts: Options, results: dict[str, Any], guests: list[Guest]) -> None:
    from nubes.guest.images import build_image, load_manifest

    print_header(results["machine"], opts)
    if load_manifest(opts.images_dir, IMAGE_NAME) is None and not opts.skip_guest:
        print(f"  building the {IMAGE_NAME} image into {opts.images_dir} (once; this takes minutes) ...", flush=True)
        build_image(IMAGE_NAME, opts.images_dir)
    srv = bench.server("real", opts.images_dir)
    results["server_flags"] = srv.flags
    print(f"  nubes   : nubes server {' '.join(srv.flags)} (SQLite store, data in {srv.data_dir})", flush=True)
    cloud = Cloud(srv, opts)
    guest = None if opts.skip_guest else launch_guest(bench, cloud, results, guests)
    if not opts.skip_snapshots:
        snapshot_part(cloud, guest, results)
    if not opts.skip_fio:
        fio_part(cloud, guest, bench, results)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_options(argv)
    preflight(opts)
    interrupt_on_signals()
    bench = Bench("nubes-bench-storage-", "nbl")
    results: dict[str, Any] = {"machine": vm_machine_info()}
    guests: list[Guest] = []
    t_run = time.monotonic()

    def delete_guests() -> None:  # before Bench.close: the server's VMs outlive it by design
        for guest in guests:
            delete_guest(bench, guest)

    status = bench.run(lambda: run_parts(bench, opts, results, guests), before_close=delete_guests)
    info = results["machine"]
    info.update(loadavg_end=os.getloadavg(), seconds_total=time.monotonic() - t_run)
    results["summary"] = summarize(results, opts)
    if status != 130 and results["summary"]:
        print("\n================ Summary ================" + ("" if status == 0 else " (partial: the run failed)"))
        print_summary(results, results["summary"], opts)
    bench.print_footer(info, f"{'instance deleted, ' if guests else ''}server stopped, {bench.prefix}* namespaces "
                             "removed, temporary files deleted")
    if opts.json_path:
        options = {**asdict(opts), "json_path": str(opts.json_path), "images_dir": str(opts.images_dir)}
        save_json(opts.json_path, {"options": options, "status": status, **results})
    return status


if __name__ == "__main__":
    sys.exit(main())
