"""storage.py's access to nubes and the guest: the disk files on the host (qemu-io), the timed calls
over one keep-alive signed connection (`Cloud`), and a running Debian instance reached with `nubes ssh`
(`Guest`).
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common import INSTANCE_TYPE, REGION, ZONE, alive, api_error_code, run, wait_for
from servers import Bench, NubesServer

if TYPE_CHECKING:
    from storage_options import Options

IMAGE_NAME = "debian-12"
IMAGE_FAMILY = "nubes:debian_12_x64"
CATEGORY = "cloud_essd"
LEVEL = "PL1"
VPC = ("10.243.0.0/16", "10.243.1.0/24")
MIB = 1024**2
PATTERN = 0x5A  # the byte qemu-io writes
FILL_CHUNK_MIB = 256


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
    qemu_io(
        path,
        [f"write -q -P {PATTERN:#x} {i * FILL_CHUNK_MIB}M {FILL_CHUNK_MIB}M" for i in range(chunks)],
        flags=("-n", "-i", "native"),
    )
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "mib_per_s": gib * 1024 / seconds, "allocated_mib": allocated_mib(path)}


def content_ok(path: Path, gib: int) -> bool:
    """The pattern in the last MiB below `gib` GiB, zeros in the MiB after it (read-only, shared)."""
    try:
        qemu_io(
            path,
            [f"read -q -P {PATTERN:#x} {gib * 1024 - 1}M 1M", f"read -q -P 0 {gib * 1024}M 1M"],
            flags=("-r", "-U"),
            timeout=60,
        )
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

    def poll(
        self,
        action: str,
        params: dict[str, str],
        read: Callable[[dict[str, Any]], str],
        wanted: str,
        t0: float,
    ) -> tuple[float, int, str]:
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
            if (
                value in ("failed", "Deleted")
                or value.startswith("HTTP")
                or now - t0 > self.opts.call_timeout
            ):
                return float("nan"), polls, value
            time.sleep(self.opts.poll_interval)

    def disk_status(self, disk_id: str) -> str:
        disks = self.call("DescribeDisks", {"DiskIds": json.dumps([disk_id])})["Disks"]["Disk"]
        return str(disks[0]["Status"]) if disks else ""

    def describe_disk(self, disk_id: str) -> dict[str, Any]:
        disk: dict[str, Any] = self.call("DescribeDisks", {"DiskIds": json.dumps([disk_id])})["Disks"][
            "Disk"
        ][0]
        return disk

    def create_disk(
        self, size_gib: int | None = None, snapshot_id: str = "", level: str = LEVEL
    ) -> dict[str, Any]:
        """CreateDisk, timed until DescribeDisks says Available."""
        params = {"ZoneId": ZONE, "DiskCategory": CATEGORY, "PerformanceLevel": level}
        if size_gib:
            params["Size"] = str(size_gib)
        if snapshot_id:
            params["SnapshotId"] = snapshot_id
        t0 = time.perf_counter()
        disk_id = str(self.call("CreateDisk", params)["DiskId"])
        api = time.perf_counter() - t0
        seconds, polls, last = self.poll(
            "DescribeDisks",
            {"DiskIds": json.dumps([disk_id])},
            lambda d: str(d["Disks"]["Disk"][0]["Status"]),
            "Available",
            t0,
        )
        if math.isnan(seconds):
            raise RuntimeError(
                f"disk {disk_id} is {last}, not Available, {self.opts.call_timeout:.0f} s after CreateDisk"
            )
        return {"disk_id": disk_id, "seconds": seconds, "api_seconds": api, "polls": polls}

    def snapshot(self, disk_id: str) -> dict[str, Any]:
        """CreateSnapshot, timed until DescribeSnapshots says accomplished."""
        dirty = dirty_mib()
        t0 = time.perf_counter()
        snapshot_id = str(self.call("CreateSnapshot", {"DiskId": disk_id})["SnapshotId"])
        api = time.perf_counter() - t0
        seconds, polls, last = self.poll(
            "DescribeSnapshots",
            {"SnapshotIds": json.dumps([snapshot_id])},
            lambda d: str(d["Snapshots"]["Snapshot"][0]["Status"]),
            "accomplished",
            t0,
        )
        return {
            "snapshot_id": snapshot_id,
            "seconds": seconds,
            "api_seconds": api,
            "polls": polls,
            "last": last,
            "host_dirty_mib": dirty,
        }

    def attach(self, disk_id: str, instance_id: str) -> None:
        self.call("AttachDisk", {"DiskId": disk_id, "InstanceId": instance_id})
        wait_for(
            lambda: self.disk_status(disk_id) == "In_use", f"{disk_id} In_use", self.opts.call_timeout, 0.1
        )


class Guest:
    """A running Debian instance and `nubes ssh` into it."""

    def __init__(self, cloud: Cloud, key_file: Path, instance_id: str) -> None:
        self.cloud, self.key_file, self.id = cloud, key_file, instance_id
        srv = cloud.srv
        self.env = {
            **os.environ,
            "NUBES_ENDPOINT": srv.endpoint,
            "NUBES_REGION": REGION,
            "NUBES_ACCESS_KEY_ID": srv.key[0],
            "NUBES_ACCESS_KEY_SECRET": srv.key[1],
        }

    def _ssh(self, script: str, stdin: Path | None, timeout: float) -> subprocess.CompletedProcess[str]:
        # ssh hands the words to the remote shell joined: the script goes as one quoted word
        argv = [
            sys.executable,
            "-m",
            "nubes.cli.main",
            "ssh",
            "-i",
            str(self.key_file),
            self.id,
            "--",
            "sh",
            "-c",
            shlex.quote(script),
        ]
        with open(stdin or os.devnull, "rb") as source:
            return subprocess.run(
                argv, stdin=source, capture_output=True, text=True, timeout=timeout, env=self.env, check=False
            )

    def sh(self, script: str, *, stdin: Path | None = None, timeout: float = 120) -> str:
        """Run a shell script in the guest; its stdout. 255 is ssh's own failure (sshd reloads once
        shortly after boot): retried, bounded."""
        for _ in range(10):
            done = self._ssh(script, stdin, timeout)
            if done.returncode != 255:
                break
            time.sleep(1)
        if done.returncode != 0:
            raise RuntimeError(
                f"{script[:200]!r} in {self.id} exited {done.returncode}: "
                f"{(done.stderr or done.stdout).strip()[-800:]}"
            )
        return done.stdout

    def wait_login(self, timeout: float) -> float:
        t0 = time.monotonic()
        wait_for(lambda: self._ssh("true", None, 30).returncode == 0, f"ssh into {self.id}", timeout, 2)
        return time.monotonic() - t0

    def device(self, disk_id: str) -> str:
        """/dev/vdX of the virtio disk whose serial is the disk id (no udev in the guest)."""
        serial = disk_id.removeprefix("d-")[:20]
        script = (
            f'for b in /sys/block/vd*; do [ "$(cat $b/serial 2>/dev/null)" = "{serial}" ] && '
            "echo /dev/${b##*/}; done; true"
        )
        found: str = wait_for(
            lambda: self.sh(script).strip(), f"{disk_id} in {self.id}", self.cloud.opts.call_timeout, 1
        )
        return found

    def dd_zero(self, device: str, mib: int) -> tuple[float, str]:
        """Write `mib` MiB of zeros at the start of a device, O_DIRECT, 1 MiB blocks: (seconds, dd's
        summary line). QEMU stores them as data (its detect-zeroes is off)."""
        t0 = time.perf_counter()
        out = self.sh(
            f"dd if=/dev/zero of={device} bs=1M count={mib} oflag=direct 2>&1", timeout=max(600, mib / 8)
        )
        return time.perf_counter() - t0, out.strip().splitlines()[-1]

    def qemu_pid(self) -> int:
        handle = self.cloud.srv.data_dir / "run" / "vms" / self.id / "handle.json"
        return int(json.loads(handle.read_text())["pid"])


def launch_guest(bench: Bench, cloud: Cloud, results: dict[str, Any], guests: list[Guest]) -> Guest:
    from alibabacloud_ecs20140526 import models as em

    srv, opts = cloud.srv, cloud.opts
    _, vswitch, group = srv.network(*VPC)
    srv.ecs.authorize_security_group(
        em.AuthorizeSecurityGroupRequest(
            region_id=REGION,
            security_group_id=group,
            ip_protocol="tcp",
            port_range="22/22",
            source_cidr_ip="0.0.0.0/0",
        )
    )
    private = srv.ecs.create_key_pair(em.CreateKeyPairRequest(region_id=REGION, key_pair_name="bench")).body
    key_file = bench.tmp / "bench.pem"
    key_file.write_text(private.private_key_body)
    key_file.chmod(0o600)
    t0 = time.monotonic()
    [instance_id] = srv.ecs.run_instances(
        em.RunInstancesRequest(
            region_id=REGION,
            image_id=srv.image_id(IMAGE_FAMILY, IMAGE_NAME),
            instance_type=INSTANCE_TYPE,
            v_switch_id=vswitch,
            security_group_id=group,
            key_pair_name="bench",
        )
    ).body.instance_id_sets.instance_id_set
    guest = Guest(cloud, key_file, str(instance_id))
    guests.append(guest)  # deleted at the end, whatever happens next
    wait_for(
        lambda: (
            cloud.call("DescribeInstances", {"InstanceIds": json.dumps([guest.id])})["Instances"]["Instance"][
                0
            ]["Status"]
            == "Running"
        ),
        f"{guest.id} Running",
        opts.boot_timeout,
        0.5,
    )
    running = time.monotonic() - t0
    login = guest.wait_login(max(30.0, opts.boot_timeout - running)) + running
    results["guest"] = {
        "instance_id": guest.id,
        "instance_type": INSTANCE_TYPE,
        "running_s": running,
        "login_s": login,
        "kernel": guest.sh("uname -r").strip(),
    }
    print(
        f"  guest   : {guest.id} ({INSTANCE_TYPE}, {IMAGE_FAMILY}) Running after {running:.1f} s, ssh after "
        f"{login:.1f} s",
        flush=True,
    )
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
