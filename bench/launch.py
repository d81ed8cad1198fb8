"""Launch benchmark: how long RunInstances takes to a booted guest, what a running instance costs
the host in memory, and how DescribeInstances copes with 10,000 instances. Every figure in one run.

(a) Launch time, side by side on the same machine, image and accelerator:
    * bare QEMU: `qemu-img create` an overlay of the tiny image, then `qemu-system-x86_64` started
      by hand (q35, TCG, 1 vCPU, 512 MiB, virtio disk and NIC, user-mode networking with a
      `guestfwd` of 100.100.100.200:80 to a small metadata server of this script), timed from
      the overlay's creation to the guest's ready marker `NUBES-READY` on its serial console;
    * nubes: RunInstances (official SDK, ecs.t5-lc2m1.nano = 1 vCPU, 512 MiB) against a live
      `nubes server --driver real`, timed from the call to the same marker in the instance's
      serial log (run/vms/<id>/serial.log), read directly; the moment DescribeInstances first
      says Running is reported too.
    Both sides boot the same kernel, initramfs and root image, get an address by DHCP and fetch
    their metadata over HTTP before printing the marker. Amount=1 (single trials) and Amount=10
    (one call; bare: ten QEMUs started back to back), p50/p90 over per-instance times, the ratio
    nubes/bare against the target 1.2. Where nubes' time goes is measured from files the server
    writes (overlay, instance directory, QEMU command line, QEMU's handle) and a 100 ms poll of
    DescribeInstances: API call, Pending work (disk overlay), network sync, QEMU start, guest boot.
    The target "under 1 s p50" is for a KVM host; this machine can only run TCG (software
    emulation), which the output says.
(b) Host memory per running tiny instance: RSS and PSS of each QEMU process, the guest RAM
    configured and the part of it the guest has touched (the RSS of QEMU's guest-RAM mapping,
    from /proc/<pid>/smaps), so RSS - touched RAM is QEMU's own memory (TCG translation cache,
    devices, libraries), plus the drop of MemAvailable per instance.
(c) With `nubes server --driver fake`: 10,000 instances created with RunInstances Amount=100,
    then DescribeInstances p50/p99 at PageSize 100 over random pages, without and with filters
    (InstanceName wildcard, Status, VSwitchId, Tag, all together), and NextToken/MaxResults walks.

Nothing is asserted: the figures are measured and printed. Every wait is bounded. The servers,
every QEMU, the metadata servers, the server's network namespaces and dnsmasq daemons and the
temporary directories are removed at the end, on Ctrl-C, on SIGTERM or on error.

Run:  .venv/bin/python bench/launch.py [--trials 5,2] [--skip-real] [--skip-fake] [--json FILE]
The real part needs root, qemu-system-x86, qemu-utils, socat, iproute2, nftables, dnsmasq and
the tiny image (built once into /var/cache/nubes-test/images, or --images-dir).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlencode

REGION = "cn-hangzhou"
ZONE = "cn-hangzhou-h"
INSTANCE_TYPE = "ecs.t5-lc2m1.nano"  # 1 vCPU, 512 MiB
GUEST_VCPUS = 1
GUEST_RAM_MIB = 512
SYSTEM_DISK_GIB = 20  # what nubes gives the tiny image by default (cloud_essd minimum); bare gets the same
IMAGE_NAME = "tiny"
IMAGE_FAMILY = "nubes:tiny_x64"
DEFAULT_IMAGES_DIR = Path("/var/cache/nubes-test/images")
MARKER = b"NUBES-READY"
METADATA_IP = "100.100.100.200"
TARGET_RATIO = 1.2
KVM_TARGET_P50 = 1.0  # seconds, on a KVM host
REAL_VPC = ("10.241.0.0/16", "10.241.1.0/24")
FAKE_VPC = ("10.242.0.0/16", "10.242.0.0/16")  # a /16 vSwitch: room for 10,000 addresses
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
READY_TIMEOUT = 30.0
GONE_TIMEOUT = 60.0
RUNNING_GRACE = 30.0  # after the last marker, how long DescribeInstances may take to say Running
WATCH_INTERVAL = 0.005  # file/serial poll of the launch trials
STATUS_INTERVAL = 0.1  # DescribeInstances poll of the launch trials
QUIET_IDLE = 0.85  # before a trial: wait (bounded) until the CPUs are this idle
QUIET_TIMEOUT = 20.0
ID_RE = re.compile(r"^i-[A-Za-z0-9]+$")


# ---- options --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    trials1: int
    trials10: int
    amount: int
    skip_real: bool
    skip_fake: bool
    json_path: Path | None
    images_dir: Path
    fake_instances: int
    requests: int
    deployed_requests: int
    settle: float
    boot_timeout: float
    warmup: bool
    seed: int


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--trials", default="5,2",
                        help="launch trials as N1,N10: N1 single launches and N10 batch launches per side "
                             "(bare QEMU and nubes alike; default 5,2)")
    parser.add_argument("--amount", type=int, default=10, help="the batch size of the batch trials (default 10)")
    parser.add_argument("--skip-real", action="store_true", help="skip (a) and (b): no root, no VMs")
    parser.add_argument("--skip-fake", action="store_true", help="skip (c)")
    parser.add_argument("--json", dest="json_path", type=Path, help="also save the raw figures to this file")
    parser.add_argument("--images-dir", type=Path,
                        default=Path(os.environ.get("NUBES_IMAGES_DIR") or DEFAULT_IMAGES_DIR),
                        help=f"where the tiny image is built (default $NUBES_IMAGES_DIR or {DEFAULT_IMAGES_DIR})")
    parser.add_argument("--fake-instances", type=int, default=10000, help="instances for (c) (default 10000)")
    parser.add_argument("--requests", type=int, default=200,
                        help="DescribeInstances requests per case in (c) (default 200)")
    parser.add_argument("--deployed-requests", type=int, default=30,
                        help="(c): requests per case while the server's host agent is busy (default 30; each "
                             "takes ~0.3 s there)")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="(c): seconds to watch the fake agent move instances to Running (default 10)")
    parser.add_argument("--boot-timeout", type=float, default=180.0,
                        help="give up on a launch trial after this many seconds (default 180)")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false",
                        help="skip the untimed warm-up launch of each side")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random page numbers in (c)")
    args = parser.parse_args(argv)
    try:
        parts = [int(x) for x in args.trials.split(",")]
    except ValueError:
        parser.error("--trials takes N1,N10, e.g. 5,2")
    if len(parts) == 1:
        parts.append(parts[0])
    if len(parts) != 2 or not all(0 <= n <= 50 for n in parts) or sum(parts) == 0:
        parser.error("--trials takes N1,N10 with 0 <= N <= 50, not both 0")
    if not 2 <= args.amount <= 100:
        parser.error("--amount must be in [2, 100]")
    if not 100 <= args.fake_instances <= 100000 or not 10 <= args.requests <= 10000:
        parser.error("--fake-instances must be in [100, 100000], --requests in [10, 10000]")
    if not 10 <= args.deployed_requests <= 10000:
        parser.error("--deployed-requests must be in [10, 10000]")
    if not 1 <= args.settle <= 600:
        parser.error("--settle must be in [1, 600]")
    if not 10 <= args.boot_timeout <= 1800:
        parser.error("--boot-timeout must be in [10, 1800]")
    if args.skip_real and args.skip_fake:
        parser.error("nothing to do: both parts skipped")
    return Options(parts[0], parts[1], args.amount, args.skip_real, args.skip_fake, args.json_path,
                   args.images_dir, args.fake_instances, args.requests, args.deployed_requests, args.settle, args.boot_timeout, args.warmup,
                   args.seed)


# ---- small helpers ----------------------------------------------------------------------------


def run(argv: Sequence[str], *, timeout: float = 60, check: bool = True) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def first_line(argv: Sequence[str]) -> str:
    try:
        out = run(argv, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return out.strip().splitlines()[0] if out.strip() else "?"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def list_netns() -> list[str]:
    try:
        return sorted(os.listdir("/run/netns"))
    except FileNotFoundError:
        return []


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    data = sorted(v for v in values if v is not None and not math.isnan(v))
    if not data:
        return float("nan")
    pos = (len(data) - 1) * q
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def median(values: Sequence[float | None]) -> float:
    data = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(data) if data else float("nan")


def wait_for(check: Callable[[], Any], what: str, timeout: float = READY_TIMEOUT, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def process_cmdline(pid: int) -> list[str]:
    try:
        return [p.decode(errors="replace") for p in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if p]
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mem_available_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


def cpu_idle_fraction(window: float = 0.5) -> float:
    def sample() -> tuple[int, int]:
        values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return values[3] + values[4], sum(values)
    idle0, total0 = sample()
    time.sleep(window)
    idle1, total1 = sample()
    return (idle1 - idle0) / max(1, total1 - total0)


class CpuWindow:
    """CPU time spent on the whole machine (every CPU, busy = not idle/iowait) and by this script
    between start and stop(), in seconds."""

    def __init__(self) -> None:
        self.busy0 = self._busy()
        self.own0 = self._own()

    @staticmethod
    def _busy() -> float:
        values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system

    def stop(self) -> tuple[float, float]:
        return self._busy() - self.busy0, self._own() - self.own0


def quiesce() -> float:
    """Wait (at most QUIET_TIMEOUT) until the machine is mostly idle; the idle fraction seen."""
    deadline = time.monotonic() + QUIET_TIMEOUT
    idle = cpu_idle_fraction()
    while idle < QUIET_IDLE and time.monotonic() < deadline:
        idle = cpu_idle_fraction()
    return idle


def fmt_s(value: float | None, width: int = 6) -> str:
    if value is None or math.isnan(value):
        return "-".rjust(width)
    return f"{value:{width}.2f}"


def fmt_ms(value: float | None, width: int = 7) -> str:
    if value is None or math.isnan(value):
        return "-".rjust(width)
    return f"{value * 1000:{width}.1f}"


def api_error_code(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    if code:
        return str(code)
    data = getattr(exc, "data", None)
    if isinstance(data, dict) and data.get("Code"):
        return str(data["Code"])
    return type(exc).__name__


# ---- a metadata service for the bare VMs --------------------------------------------------------


class MetadataServer:
    """ECS-style metadata for one bare guest on 127.0.0.1:<port> (QEMU's guestfwd reaches it
    through `socat`): the token endpoint, meta-data/instance-id and hostname; the rest is 404."""

    def __init__(self, instance_id: str) -> None:
        tree = {"meta-data/instance-id": instance_id, "meta-data/hostname": instance_id,
                "meta-data/": "instance-id\nhostname"}

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_PUT(self) -> None:
                if self.path.split("?")[0] == "/latest/api/token":
                    self._send(200, secrets.token_urlsafe(24))
                else:
                    self._send(404, "Not Found")

            def do_GET(self) -> None:
                value = tree.get(self.path.split("?")[0].removeprefix("/latest/"))
                self._send(200, value) if value is not None else self._send(404, "Not Found")

            def _send(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---- a raw signed API client (keep-alive, no SDK parsing in the timings) --------------------------


class RawClient:
    """POST /?<v1-signed query> over one keep-alive HTTP/1.1 connection, as aliyun-python-sdk-core
    signs; returns (HTTP status, body bytes, seconds from writing the request to the last byte)."""

    VERSIONS: ClassVar[dict[str, str]] = {"ecs": "2014-05-26", "vpc": "2016-04-28"}

    def __init__(self, endpoint: str, key: tuple[str, str]) -> None:
        host, _, port = endpoint.partition(":")
        self.host, self.port, self.key = host, int(port), key
        self.conn: http.client.HTTPConnection | None = None

    def call(self, action: str, params: dict[str, str], product: str = "ecs") -> tuple[int, bytes, float]:
        from nubes.api.signing import sign_v1

        query = {"Action": action, "Version": self.VERSIONS[product], "Format": "JSON", "RegionId": REGION, **params}
        path = "/?" + urlencode(sign_v1("POST", query, self.key[0], self.key[1]))
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            try:
                t0 = time.perf_counter()
                self.conn.request("POST", path, body=b"", headers={"Content-Length": "0"})
                response = self.conn.getresponse()
                body = response.read()
                return response.status, body, time.perf_counter() - t0
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def json(self, action: str, params: dict[str, str], product: str = "ecs") -> dict[str, Any]:
        status, body, _ = self.call(action, params, product)
        data: dict[str, Any] = json.loads(body)
        if status != 200:
            raise RuntimeError(f"{action}: HTTP {status} {data.get('Code')}: {data.get('Message')}")
        return data

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# ---- a nubes server ---------------------------------------------------------------------------


class NubesServer:
    def __init__(self, root: Path, driver: str, prefix: str, images_dir: Path | None) -> None:
        self.root = root
        self.driver = driver
        self.prefix = prefix
        self.images_dir = images_dir
        self.data_dir = root / "data"
        self.log_path = root / "server.log"
        self.key = ("LTAIbenchlaunch" + secrets.token_hex(5), secrets.token_hex(15))
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint = ""
        self.flags: list[str] = []
        self.ecs: Any = None
        self.vpc: Any = None
        self.raw: RawClient | None = None

    def start(self, extra_flags: Sequence[str] = ()) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("NUBES_HOME", "NUBES_DATABASE_URL")}
        env.update(NUBES_ACCESS_KEY_ID=self.key[0], NUBES_ACCESS_KEY_SECRET=self.key[1])
        if self.images_dir is not None:
            env["NUBES_IMAGES_DIR"] = str(self.images_dir)
        self.flags = ["--driver", self.driver, "--netns-prefix", self.prefix, "--no-build-images",
                      "--throttle-rate", "0", *extra_flags]
        argv = [sys.executable, "-m", "nubes.cli.main", "server", "--port", str(port),
                "--data-dir", str(self.data_dir), *self.flags]
        with open(self.log_path, "wb") as log_file:
            self.proc = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nubes server ({self.driver}) did not start:\n{self.log_tail()}") from None
                time.sleep(0.1)
        self.endpoint = f"127.0.0.1:{port}"
        from alibabacloud_ecs20140526.client import Client as EcsClient
        from alibabacloud_tea_openapi.models import Config
        from alibabacloud_vpc20160428.client import Client as VpcClient

        def config() -> Any:
            return Config(access_key_id=self.key[0], access_key_secret=self.key[1], region_id=REGION,
                          endpoint=self.endpoint, protocol="http", read_timeout=300000, connect_timeout=5000)

        self.ecs, self.vpc = EcsClient(config()), VpcClient(config())
        self.raw = RawClient(self.endpoint, self.key)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def db_path(self) -> Path:
        return self.data_dir / "nubes.db"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no server log)"

    def stop(self, notes: list[str]) -> None:
        if self.raw is not None:
            self.raw.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                notes.append(f"{self.driver} server did not stop on SIGTERM; killed")
                self.proc.kill()
                self.proc.wait(timeout=5)

    # -- the store's host rows (the scheduler's capacity; there is no API or CLI for them) --

    def hosts(self) -> list[dict[str, Any]]:
        with sqlite3.connect(self.db_path, timeout=30) as conn:
            rows = conn.execute("SELECT id, vcpus, memory_mib, cpu_overcommit, memory_overcommit, accel "
                                "FROM hosts").fetchall()
        return [dict(zip(("id", "vcpus", "memory_mib", "cpu_overcommit", "memory_overcommit", "accel"), r))
                for r in rows]

    def set_overcommit(self, host_id: str, cpu: float, memory: float) -> None:
        conn = sqlite3.connect(self.db_path, timeout=30)
        try:
            conn.execute("UPDATE hosts SET cpu_overcommit = ?, memory_overcommit = ? WHERE id = ?",
                         (cpu, memory, host_id))
            conn.commit()
        finally:
            conn.close()

    # -- resources through the official SDKs --

    def network(self, vpc_cidr: str, vswitch_cidr: str) -> tuple[str, str, str]:
        from alibabacloud_ecs20140526 import models as em
        from alibabacloud_vpc20160428 import models as vm

        vpc_id = self.vpc.create_vpc(vm.CreateVpcRequest(region_id=REGION, cidr_block=vpc_cidr)).body.vpc_id
        wait_for(lambda: self.vpc.describe_vpc_attribute(vm.DescribeVpcAttributeRequest(
            region_id=REGION, vpc_id=vpc_id)).body.status == "Available", f"VPC {vpc_id} Available", interval=0.1)
        vswitch_id = self.create_vswitch(vpc_id, vswitch_cidr)
        group = self.ecs.create_security_group(em.CreateSecurityGroupRequest(
            region_id=REGION, vpc_id=vpc_id)).body.security_group_id
        return vpc_id, vswitch_id, group

    def create_vswitch(self, vpc_id: str, cidr: str) -> str:
        from alibabacloud_vpc20160428 import models as vm

        vswitch_id = str(self.vpc.create_vswitch(vm.CreateVSwitchRequest(
            region_id=REGION, vpc_id=vpc_id, zone_id=ZONE, cidr_block=cidr)).body.v_switch_id)
        wait_for(lambda: self.vpc.describe_vswitch_attributes(vm.DescribeVSwitchAttributesRequest(
            region_id=REGION, v_switch_id=vswitch_id)).body.status == "Available",
            f"vSwitch {vswitch_id} Available", interval=0.1)
        return vswitch_id

    def delete_vswitch(self, vswitch_id: str, notes: list[str]) -> None:
        """DeleteVSwitch, retried while its interfaces are still being released (bounded)."""
        from alibabacloud_vpc20160428 import models as vm

        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                self.vpc.delete_vswitch(vm.DeleteVSwitchRequest(region_id=REGION, v_switch_id=vswitch_id))
                return
            except Exception as exc:  # noqa: BLE001
                if time.monotonic() > deadline:
                    notes.append(f"DeleteVSwitch {vswitch_id}: {api_error_code(exc)}")
                    return
                time.sleep(0.2)

    def image_id(self, family: str) -> str:
        from alibabacloud_ecs20140526 import models as em

        images = self.ecs.describe_images(em.DescribeImagesRequest(
            region_id=REGION, image_owner_alias="system", page_size=100)).body.images.image
        for image in images:
            if image.image_family == family:
                return str(image.image_id)
        raise RuntimeError(f"no image of family {family} registered (is the {IMAGE_NAME} image built?)")

    def run_instances(self, image: str, vswitch: str, group: str, amount: int, name: str = "",
                      tags: dict[str, str] | None = None) -> list[str]:
        from alibabacloud_ecs20140526 import models as em

        request = em.RunInstancesRequest(
            region_id=REGION, image_id=image, instance_type=INSTANCE_TYPE, v_switch_id=vswitch,
            security_group_id=group, amount=amount, instance_name=name or None,
            tag=[em.RunInstancesRequestTag(key=k, value=v) for k, v in (tags or {}).items()] or None)
        return list(self.ecs.run_instances(request).body.instance_id_sets.instance_id_set)

    def delete_instances(self, ids: Sequence[str]) -> None:
        from alibabacloud_ecs20140526 import models as em

        for i in range(0, len(ids), 100):
            self.ecs.delete_instances(em.DeleteInstancesRequest(region_id=REGION, instance_id=list(ids[i:i + 100]),
                                                                force=True))


# ---- watching launches --------------------------------------------------------------------------


class Watcher(threading.Thread):
    """Polls, every WATCH_INTERVAL, serial logs for the ready marker and (for nubes) the server's
    disk and VM directories for new entries; records when each was first seen (time.time())."""

    def __init__(self, data_dir: Path | None = None) -> None:
        super().__init__(name="launch-watcher", daemon=True)
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.serials: dict[str, Path] = {}
        self.offsets: dict[str, int] = {}
        self.tails: dict[str, bytes] = {}
        self.marker: dict[str, float] = {}
        self.disks_dir = data_dir / "disks" if data_dir else None
        self.vms_dir = data_dir / "run" / "vms" if data_dir else None
        self.disk_seen: dict[str, float] = {}
        self.vm_seen: dict[str, float] = {}
        self.old_disks = set(self._list(self.disks_dir))
        self.old_vms = set(self._list(self.vms_dir))
        self.errors: list[str] = []

    @staticmethod
    def _list(directory: Path | None) -> list[str]:
        if directory is None:
            return []
        try:
            return os.listdir(directory)
        except FileNotFoundError:
            return []

    def add_serial(self, key: str, path: Path) -> None:
        with self.lock:
            self.serials.setdefault(key, path)

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.poll()
            except Exception as exc:  # noqa: BLE001 - a poll error must not end the watch
                if len(self.errors) < 5:
                    self.errors.append(repr(exc))
            self.stop_event.wait(WATCH_INTERVAL)

    def poll(self) -> None:
        now = time.time()
        for name in self._list(self.disks_dir):
            if name.endswith(".qcow2") and name not in self.old_disks and name not in self.disk_seen:
                self.disk_seen[name] = now
        for name in self._list(self.vms_dir):
            if ID_RE.match(name) and name not in self.old_vms and name not in self.vm_seen:
                self.vm_seen[name] = now
                assert self.vms_dir is not None
                self.add_serial(name, self.vms_dir / name / "serial.log")
        with self.lock:
            pending = [(k, p) for k, p in self.serials.items() if k not in self.marker]
        for key, path in pending:
            try:
                with open(path, "rb") as f:
                    f.seek(self.offsets.get(key, 0))
                    chunk = f.read()
            except FileNotFoundError:
                continue
            if not chunk:
                continue
            self.offsets[key] = self.offsets.get(key, 0) + len(chunk)
            text = self.tails.get(key, b"") + chunk
            if MARKER in text:
                self.marker[key] = now
            self.tails[key] = text[-len(MARKER):]

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)


class StatusPoller(threading.Thread):
    """DescribeInstances for the given ids every STATUS_INTERVAL; first time each status was seen."""

    def __init__(self, endpoint: str, key: tuple[str, str], ids: Sequence[str]) -> None:
        super().__init__(name="launch-status", daemon=True)
        self.client = RawClient(endpoint, key)
        self.ids = list(ids)
        self.seen: dict[str, dict[str, float]] = {i: {} for i in ids}
        self.stop_event = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        params = {"InstanceIds": json.dumps(self.ids), "PageSize": "100"}
        try:
            while not self.stop_event.is_set():
                try:
                    data = self.client.json("DescribeInstances", params)
                    now = time.time()
                    for item in data["Instances"]["Instance"]:
                        self.seen.setdefault(item["InstanceId"], {}).setdefault(item["Status"], now)
                except Exception as exc:  # noqa: BLE001
                    if len(self.errors) < 5:
                        self.errors.append(repr(exc))
                if all("Running" in s for s in self.seen.values()):
                    break
                self.stop_event.wait(STATUS_INTERVAL)
        finally:
            self.client.close()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)


# ---- memory of a QEMU process ---------------------------------------------------------------------


def qemu_memory(pid: int, ram_mib: int) -> dict[str, float] | None:
    """RSS and PSS of the process (smaps_rollup) and of its guest-RAM mapping (the anonymous
    mapping exactly as large as the guest RAM), in MiB."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        smaps = Path(f"/proc/{pid}/smaps").read_text()
    except OSError:
        return None
    totals = {}
    for line in rollup.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("Rss:", "Pss:"):
            totals[parts[0][:-1]] = int(parts[1]) / 1024
    ram_rss = ram_pss = float("nan")
    header: list[str] = []
    size_kib = 0
    for line in smaps.splitlines():
        parts = line.split()
        if not parts:
            continue
        if re.match(r"^[0-9a-f]+-[0-9a-f]+$", parts[0]):
            header, size_kib = parts, 0
        elif parts[0] == "Size:":
            size_kib = int(parts[1])
        elif parts[0] == "Rss:" and size_kib == ram_mib * 1024 and len(header) == 5:
            ram_rss = int(parts[1]) / 1024
        elif parts[0] == "Pss:" and size_kib == ram_mib * 1024 and len(header) == 5:
            ram_pss = int(parts[1]) / 1024
    return {"rss": totals.get("Rss", float("nan")), "pss": totals.get("Pss", float("nan")),
            "ram_configured": float(ram_mib), "ram_touched": ram_rss, "ram_touched_pss": ram_pss}


# ---- the run: everything it creates, and the cleanup ----------------------------------------------


class Bench:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.tmp = Path(tempfile.mkdtemp(prefix="nubes-bench-launch-"))
        os.chmod(self.tmp, 0o755)  # dnsmasq (user nobody) must be able to read its hosts file
        self.prefix = self._unique_prefix()
        self.servers: list[NubesServer] = []
        self.bare: list[subprocess.Popen[bytes]] = []
        self.metadata: list[MetadataServer] = []
        self.notes: list[str] = []

    @staticmethod
    def _unique_prefix() -> str:
        existing = list_netns()
        for _ in range(20):
            prefix = f"nbl{os.getpid() % 100000}{secrets.token_hex(2)}"
            if not any(ns.startswith(prefix) for ns in existing):
                return prefix
        raise RuntimeError("could not find an unused network-namespace prefix")

    def server(self, driver: str, images_dir: Path | None) -> NubesServer:
        prefix = self.prefix if driver == "real" else self.prefix + "f"
        srv = NubesServer(self.tmp / driver, driver, prefix, images_dir)
        self.servers.append(srv)
        srv.start()
        return srv

    def leftover_qemu(self) -> list[int]:
        """QEMU processes whose command line names this run's temporary directory."""
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                argv = process_cmdline(int(entry))
                if argv and "qemu-system" in os.path.basename(argv[0]) and any(str(self.tmp) in a for a in argv):
                    found.append(int(entry))
        return found

    def leftover_dnsmasq(self) -> list[int]:
        marker = f"--pid-file={self.tmp}/"
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                argv = process_cmdline(int(entry))
                if argv and os.path.basename(argv[0]) == "dnsmasq" and any(a.startswith(marker) for a in argv):
                    found.append(int(entry))
        return found

    def close(self) -> None:
        """Remove everything, whatever state the run is in. Never raises."""
        for proc in self.bare:
            try:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            except Exception as exc:  # noqa: BLE001 - keep cleaning
                self.notes.append(f"bare QEMU {proc.pid}: {exc}")
        for md in self.metadata:
            try:
                md.close()
            except Exception as exc:  # noqa: BLE001
                self.notes.append(f"metadata server: {exc}")
        for srv in self.servers:
            try:
                srv.stop(self.notes)
            except Exception as exc:  # noqa: BLE001
                self.notes.append(f"stopping the {srv.driver} server: {exc}")
        # QEMUs the real server started are not its children (they outlive it by design): the
        # ones of this run are found by their command line, which names this run's directory.
        for pid in self.leftover_qemu():
            self.notes.append(f"QEMU {pid} was left running; killed")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while self.leftover_qemu() and time.monotonic() < deadline:
            time.sleep(0.1)
        for srv in self.servers:
            run_dir = srv.data_dir / "run" / "network"
            if srv.driver == "real" and run_dir.is_dir():
                try:
                    from nubes.drivers.network.linux import LinuxNetworkDriver

                    LinuxNetworkDriver(run_dir, prefix=srv.prefix).sync([])
                except Exception as exc:  # noqa: BLE001 - the sweep below still runs
                    self.notes.append(f"network driver cleanup failed: {exc}")
        for pid in self.leftover_dnsmasq():
            self.notes.append(f"dnsmasq {pid} was left running; killed")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for ns in self.my_namespaces():
            self.notes.append(f"namespace {ns} was left behind; deleted")
            run(["ip", "netns", "delete", ns], check=False)
        if self.my_namespaces():
            self.notes.append(f"could not delete namespaces: {', '.join(self.my_namespaces())}")
        shutil.rmtree(self.tmp, ignore_errors=True)

    def my_namespaces(self) -> list[str]:
        return [ns for ns in list_netns() if ns.startswith(self.prefix)]


# ---- (a) bare QEMU ---------------------------------------------------------------------------------


@dataclass
class BareTrial:
    count: int
    t0: float
    per_vm: list[dict[str, float]] = field(default_factory=list)  # seconds from t0
    memory: list[dict[str, float]] = field(default_factory=list)
    mem_available_drop_mib: float = float("nan")
    idle_before: float = float("nan")
    no_metadata: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # CPU-seconds from t0 to the last marker


MARKER_LINE = re.compile(rb"NUBES-READY instance-id=(\S*)")


def got_metadata(serial: Path) -> bool | None:
    """Whether the marker line names an instance id (None: no marker). Without one, the guest did
    not reach the metadata service (no DHCP lease or no route) and printed the marker after its
    20 s metadata timeout."""
    try:
        match = MARKER_LINE.search(serial.read_bytes())
    except OSError:
        return None
    return None if match is None else bool(match.group(1))


def bare_command(manifest: Any, images_dir: Path, workdir: Path, disk: Path, md_port: int, index: int) -> list[str]:
    netdev = (f"user,id=n0,net=100.100.100.0/24,host=100.100.100.2,dhcpstart=100.100.100.15,"
              f"guestfwd=tcp:{METADATA_IP}:80-cmd:socat - TCP:127.0.0.1:{md_port}")
    return [
        "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-m", f"{GUEST_RAM_MIB}M", "-smp", str(GUEST_VCPUS),
        "-nodefaults", "-no-user-config", "-display", "none",
        "-kernel", str(manifest.path(images_dir, "kernel")), "-initrd", str(manifest.path(images_dir, "initrd")),
        "-append", manifest.cmdline,
        "-serial", f"file:{workdir / 'serial.log'}",
        "-drive", f"file={disk},if=none,id=sys,format=qcow2",
        "-device", "virtio-blk-pci,drive=sys,serial=systemdisk",
        "-netdev", netdev, "-device", f"virtio-net-pci,netdev=n0,mac=52:54:00:12:{index // 256:02x}:{index % 256:02x}",
    ]


def bare_trial(bench: Bench, manifest: Any, images_dir: Path, count: int, label: str) -> BareTrial:
    idle = quiesce()
    watcher = Watcher()
    watcher.start()
    base = manifest.path(images_dir, "rootfs")
    vms: list[tuple[Path, MetadataServer, subprocess.Popen[bytes]]] = []
    mem_before = mem_available_kib()
    window = CpuWindow()
    trial = BareTrial(count, time.time(), idle_before=idle)
    try:
        for k in range(count):
            workdir = bench.tmp / "bare" / f"{label}-{k}"
            workdir.mkdir(parents=True)
            md = MetadataServer(f"i-bare{label}{k}")
            bench.metadata.append(md)
            t_start = time.time()
            disk = workdir / "disk.qcow2"
            run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(disk),
                 f"{SYSTEM_DISK_GIB}G"])
            t_overlay = time.time()
            with open(workdir / "qemu.err", "wb") as err:
                proc = subprocess.Popen(bare_command(manifest, images_dir, workdir, disk, md.port, k),
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                        start_new_session=True)
            t_popen = time.time()
            bench.bare.append(proc)
            watcher.add_serial(str(k), workdir / "serial.log")
            vms.append((workdir, md, proc))
            trial.per_vm.append({"start": t_start - trial.t0, "overlay": t_overlay - trial.t0,
                                 "qemu_exec": t_popen - trial.t0})
        deadline = time.monotonic() + bench.opts.boot_timeout
        while len(watcher.marker) < count and time.monotonic() < deadline:
            for workdir, _, proc in vms:
                if proc.poll() is not None:
                    raise RuntimeError(f"bare QEMU exited ({proc.returncode}): "
                                       f"{(workdir / 'qemu.err').read_text(errors='replace')[-1500:]}")
            time.sleep(0.05)
        busy, own = window.stop()
        qemu_cpu = sum(cpu_seconds(proc.pid) for _, _, proc in vms)
        trial.cpu = {"machine": busy, "qemu": qemu_cpu, "bench": own, "server": 0.0,
                     "other": busy - qemu_cpu - own}
        watcher.stop()
        for k, entry in enumerate(trial.per_vm):
            entry["marker"] = watcher.marker[str(k)] - trial.t0 if str(k) in watcher.marker else float("nan")
        if len(watcher.marker) < count:
            bench.notes.append(f"bare {label}: {count - len(watcher.marker)} VM(s) without a marker "
                               f"within {bench.opts.boot_timeout:.0f} s")
        trial.no_metadata = sum(got_metadata(w / "serial.log") is False for w, _, _ in vms)
        time.sleep(1.0)  # let the guests settle after the marker, then sample memory
        for _, _, proc in vms:
            mem = qemu_memory(proc.pid, GUEST_RAM_MIB)
            if mem is not None:
                trial.memory.append(mem)
        trial.mem_available_drop_mib = (mem_before - mem_available_kib()) / 1024 / count
    finally:
        watcher.stop()
        for workdir, md, proc in vms:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            bench.bare.remove(proc)
            md.close()
            bench.metadata.remove(md)
            shutil.rmtree(workdir, ignore_errors=True)
    return trial


# ---- (a) nubes --------------------------------------------------------------------------------------


@dataclass
class NubesTrial:
    amount: int
    t_call: float
    api_seconds: float = float("nan")
    per_instance: dict[str, dict[str, float]] = field(default_factory=dict)  # seconds from t_call
    memory: list[dict[str, float]] = field(default_factory=list)
    mem_available_drop_mib: float = float("nan")
    idle_before: float = float("nan")
    accel: str = ""
    vswitch: str = ""
    no_metadata: int = 0  # guests whose marker says they got no instance id (no network/metadata)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU-seconds from the call to the last marker


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _system_disk_file(vm_dir: Path) -> str | None:
    """The system disk's file name, from the QEMU command line the driver saved."""
    try:
        argv = json.loads((vm_dir / "cmdline").read_text())
    except (OSError, ValueError):
        return None
    for i, arg in enumerate(argv):
        if arg == "-blockdev" and i + 1 < len(argv):
            node = json.loads(argv[i + 1])
            while "file" in node and isinstance(node["file"], dict):
                node = node["file"]
            return os.path.basename(str(node.get("filename", "")))
    return None


def nubes_trial(bench: Bench, srv: NubesServer, net: dict[str, str], amount: int, label: str) -> NubesTrial:
    """One RunInstances call, on a vSwitch of its own (made before the clock starts, deleted after):
    a deleted instance's address is given to the next one, and the vSwitch's dnsmasq keeps the old
    lease for it, so a reused address gets no DHCP answer (see the README)."""
    vswitch = srv.create_vswitch(net["vpc"], f"10.241.{net_counter(net)}.0/24")
    idle = quiesce()
    vms_dir = srv.data_dir / "run" / "vms"
    watcher = Watcher(srv.data_dir)
    watcher.start()
    mem_before = mem_available_kib()
    trial = NubesTrial(amount, time.time(), idle_before=idle, vswitch=vswitch)
    ids: list[str] = []
    poller: StatusPoller | None = None
    pids: dict[str, int] = {}
    try:
        window = CpuWindow()
        server_cpu0 = cpu_seconds(srv.pid)
        trial.t_call = time.time()
        ids = srv.run_instances(net["image"], vswitch, net["group"], amount)
        t_return = time.time()
        trial.api_seconds = t_return - trial.t_call
        poller = StatusPoller(srv.endpoint, srv.key, ids)
        poller.start()
        deadline = time.monotonic() + bench.opts.boot_timeout
        while not all(i in watcher.marker for i in ids) and time.monotonic() < deadline:
            time.sleep(0.05)
        busy, own = window.stop()
        server_cpu = cpu_seconds(srv.pid) - server_cpu0
        for i in ids:
            try:
                pids[i] = int(json.loads((vms_dir / i / "handle.json").read_text())["pid"])
            except (OSError, ValueError, KeyError):
                pass
        qemu_cpu = sum(cpu_seconds(p) for p in pids.values())
        trial.cpu = {"machine": busy, "qemu": qemu_cpu, "bench": own, "server": server_cpu,
                     "other": busy - qemu_cpu - own - server_cpu}
        running_deadline = time.monotonic() + RUNNING_GRACE
        while poller.is_alive() and time.monotonic() < running_deadline:
            time.sleep(0.05)
        watcher.stop()
        poller.stop()
        for i in ids:
            handle = vms_dir / i / "handle.json"
            try:
                data = json.loads(handle.read_text())
                pids[i] = int(data["pid"])
                trial.accel = str(data.get("accel", ""))
            except (OSError, ValueError, KeyError):
                pass
        for i in ids:
            d = vms_dir / i
            disk = _system_disk_file(d)
            seen = poller.seen.get(i, {})

            def rel(t: float | None) -> float:
                return t - trial.t_call if t is not None else float("nan")

            trial.per_instance[i] = {
                "api_return": t_return - trial.t_call,
                "disk": rel(watcher.disk_seen.get(disk or "")),
                "vm_dir": rel(_mtime(d / "lock") or watcher.vm_seen.get(i)),
                "qemu_exec": rel(_mtime(d / "cmdline")),
                "qemu_up": rel(_mtime(d / "handle.json")),
                "marker": rel(watcher.marker.get(i)),
                "seen_pending": rel(seen.get("Pending")),
                "seen_starting": rel(seen.get("Starting")),
                "seen_running": rel(seen.get("Running")),
            }
        trial.no_metadata = sum(got_metadata(vms_dir / i / "serial.log") is False for i in ids)
        missing = [i for i in ids if i not in watcher.marker]
        if missing:
            bench.notes.append(f"nubes {label}: {len(missing)} instance(s) without a marker within "
                               f"{bench.opts.boot_timeout:.0f} s")
        if poller.errors or watcher.errors:
            bench.notes.append(f"nubes {label}: poll errors {poller.errors + watcher.errors}")
        for i in ids:
            if i in pids:
                mem = qemu_memory(pids[i], GUEST_RAM_MIB)
                if mem is not None:
                    trial.memory.append(mem)
        trial.mem_available_drop_mib = (mem_before - mem_available_kib()) / 1024 / amount
    finally:
        watcher.stop()
        if poller is not None:
            poller.stop()
        if ids:
            delete_and_wait(bench, srv, ids, pids)
        srv.delete_vswitch(vswitch, bench.notes)
    return trial


def cpu_note(cpu: dict[str, float], count: int) -> str:
    if not cpu:
        return "-"
    text = f"QEMU {cpu['qemu'] / count:.2f}/VM"
    if cpu.get("server"):
        text += f", server {cpu['server']:.2f}"
    return text + f", this script {cpu['bench']:.2f}, other {cpu['other']:.2f}"


def net_counter(net: dict[str, str]) -> int:
    """The next /24 of the benchmark VPC for a trial's vSwitch (1, 2, ...)."""
    value = int(net.get("next_subnet", "1"))
    net["next_subnet"] = str(value + 1)
    return value


def delete_and_wait(bench: Bench, srv: NubesServer, ids: list[str], pids: dict[str, int]) -> None:
    """DeleteInstances (Force), then wait until their QEMUs and VM directories are gone."""
    vms_dir = srv.data_dir / "run" / "vms"
    for i in ids:  # a QEMU started after the trial's last look at handle.json
        try:
            pids.setdefault(i, int(json.loads((vms_dir / i / "handle.json").read_text())["pid"]))
        except (OSError, ValueError, KeyError):
            pass
    try:
        srv.delete_instances(ids)
    except Exception as exc:  # noqa: BLE001 - the kill below still runs
        bench.notes.append(f"DeleteInstances failed: {api_error_code(exc)}: {exc}")
    deadline = time.monotonic() + GONE_TIMEOUT
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids.values()) and not any((vms_dir / i).exists() for i in ids):
            return
        time.sleep(0.1)
    for i, pid in pids.items():
        if alive(pid) and any(str(srv.data_dir) in a for a in process_cmdline(pid)):
            bench.notes.append(f"QEMU of {i} (pid {pid}) still ran {GONE_TIMEOUT:.0f} s after DeleteInstances; "
                               "killed")
            os.kill(pid, signal.SIGKILL)


def ensure_capacity(bench: Bench, srv: NubesServer, needed_vcpus: int, needed_mib: int,
                    probe: Callable[[], str | None]) -> dict[str, Any]:
    """If the store's host cannot take `needed`, confirm with a real call (probe() returns the
    error code, None if it worked) and raise the host's overcommit in the store (there is no API
    or CLI for it). Returns what was found and done."""
    [host] = srv.hosts()
    cap_cpu = host["vcpus"] * host["cpu_overcommit"]
    cap_mem = host["memory_mib"] * host["memory_overcommit"]
    info: dict[str, Any] = {"host": host, "vcpu_slots": cap_cpu, "memory_mib_slots": cap_mem, "adjusted": False}
    if cap_cpu >= needed_vcpus and cap_mem >= needed_mib:
        return info
    code = probe()
    info["probe_error"] = code
    cpu = max(host["cpu_overcommit"], math.ceil(needed_vcpus / host["vcpus"] * 10) / 10)
    mem = max(host["memory_overcommit"], math.ceil(needed_mib / host["memory_mib"] * 10) / 10)
    srv.set_overcommit(host["id"], cpu, mem)
    info.update(adjusted=True, cpu_overcommit=cpu, memory_overcommit=mem)
    return info


# ---- (a)+(b) the real part ------------------------------------------------------------------------


def real_part(bench: Bench, opts: Options, results: dict[str, Any]) -> None:
    from nubes.guest.images import build_image, load_manifest

    manifest = load_manifest(opts.images_dir, IMAGE_NAME)
    if manifest is None:
        print(f"  building the {IMAGE_NAME} image into {opts.images_dir} (once; this takes minutes) ...", flush=True)
        manifest = build_image(IMAGE_NAME, opts.images_dir)
    srv = bench.server("real", opts.images_dir)
    vpc_id, vswitch, group = srv.network(*REAL_VPC)  # this vSwitch (x.x.1.0/24) only for the capacity probe
    net = {"vpc": vpc_id, "vswitch": vswitch, "group": group, "image": srv.image_id(IMAGE_FAMILY),
           "next_subnet": "2"}
    real: dict[str, Any] = {"server_flags": srv.flags, "image": asdict(manifest), "bare": [], "nubes": []}
    results["real"] = real
    print(f"  nubes   : nubes server {' '.join(srv.flags)} (SQLite store in a temporary directory)")
    print(f"  image   : {manifest.image_id} (kernel {manifest.kernel_version}), marker {MARKER.decode()} on ttyS0; "
          f"{INSTANCE_TYPE} = {GUEST_VCPUS} vCPU, {GUEST_RAM_MIB} MiB; system disk {SYSTEM_DISK_GIB} GiB overlay")
    sample = bare_command(manifest, opts.images_dir, Path("<dir>"), Path("<dir>/disk.qcow2"), 0, 0)
    print(f"  bare    : qemu-img create -f qcow2 -b <rootfs> <dir>/disk.qcow2 {SYSTEM_DISK_GIB}G; "
          f"{' '.join(a if ' ' not in a else repr(a) for a in sample)}")
    print("            (metadata: a Python HTTP server of this script on 127.0.0.1, reached through guestfwd+socat)")

    # Amount=N of a 1-vCPU type needs N vCPU slots on this host (vCPUs x the store's overcommit).
    def probe() -> str | None:
        try:
            ids = srv.run_instances(net["image"], vswitch, group, opts.amount)
        except Exception as exc:  # noqa: BLE001
            return f"{api_error_code(exc)}: {getattr(exc, 'message', exc)}"
        delete_and_wait(bench, srv, ids, {})
        return None

    capacity = ensure_capacity(bench, srv, opts.amount * GUEST_VCPUS, opts.amount * GUEST_RAM_MIB, probe)
    real["capacity"] = capacity
    host = capacity["host"]
    line = (f"  host    : {host['vcpus']} vCPUs x {host['cpu_overcommit']:g} overcommit = {capacity['vcpu_slots']:g} "
            f"vCPU slots, {host['memory_mib']} MiB x {host['memory_overcommit']:g}")
    if capacity["adjusted"]:
        line += (f"; RunInstances Amount={opts.amount} was refused ({capacity['probe_error']}) -> raised the "
                 f"host's cpu_overcommit to {capacity['cpu_overcommit']:g} in the store (no API/CLI for it)")
    print(line, flush=True)
    print()

    if opts.warmup:
        t = bare_trial(bench, manifest, opts.images_dir, 1, "warm")
        n = nubes_trial(bench, srv, net, 1, "warm-up")
        real["warmup"] = {"bare": asdict(t), "nubes": asdict(n)}
        first = next(iter(n.per_instance.values()), {})
        flags = "".join(f" !!! {side} guest got no metadata" for side, x in (("bare", t), ("nubes", n))
                        if x.no_metadata)
        print(f"  warm-up (not counted): bare {fmt_s(t.per_vm[0]['marker'], 5)} s, nubes "
              f"{fmt_s(first.get('marker'), 5)} s (the first launch also decides the accelerator by a trial "
              f"boot; nubes chose {n.accel or '?'}){flags}", flush=True)
    accel_cache = srv.data_dir / "run" / "vms" / "accel.json"
    if accel_cache.exists():
        real["accel_verdict"] = json.loads(accel_cache.read_text())

    plan = [(1, i) for i in range(opts.trials1)] + [(opts.amount, i) for i in range(opts.trials10)]
    for amount, i in plan:
        total = opts.trials1 if amount == 1 else opts.trials10
        label = f"{'x1' if amount == 1 else f'x{amount}'}-{i + 1}"
        order = ("bare", "nubes") if i % 2 == 0 else ("nubes", "bare")  # alternate who goes first
        figures: dict[str, str] = {}
        cpu_notes: dict[str, str] = {}
        for side in order:
            if side == "bare":
                bt = bare_trial(bench, manifest, opts.images_dir, amount, label)
                real["bare"].append(asdict(bt))
                figures["bare"] = f"p50 {fmt_s(median([v['marker'] for v in bt.per_vm]), 5)} s"
                cpu_notes["bare"] = cpu_note(bt.cpu, amount)
                if amount > 1:
                    figures["bare"] += f", last {fmt_s(max(v['marker'] for v in bt.per_vm), 5)} s"
                if bt.no_metadata:
                    figures["bare"] += f" !!! {bt.no_metadata} guest(s) got no metadata"
            else:
                nt = nubes_trial(bench, srv, net, amount, label)
                real["nubes"].append(asdict(nt))
                cpu_notes["nubes"] = cpu_note(nt.cpu, amount)
                marks = [v["marker"] for v in nt.per_instance.values()]
                figures["nubes"] = (f"p50 {fmt_s(median(marks), 5)} s"
                                    + (f", last {fmt_s(max(marks), 5)} s" if amount > 1 else "")
                                    + f" (Running seen p50 "
                                      f"{fmt_s(median([v['seen_running'] for v in nt.per_instance.values()]), 5)} s)"
                                    + (f" !!! {nt.no_metadata} guest(s) got no metadata" if nt.no_metadata else ""))
        print(f"  Amount={amount:<3} trial {i + 1}/{total}: bare {figures['bare']}  |  nubes {figures['nubes']}",
              flush=True)
        print(f"      CPU-s to the last marker: bare {cpu_notes['bare']}  |  nubes {cpu_notes['nubes']}", flush=True)


# ---- (c) the fake part -----------------------------------------------------------------------------


def describe_cases(vswitch: str) -> list[tuple[str, dict[str, str], bool]]:
    tag = {"Tag.1.Key": "bench-group", "Tag.1.Value": "g3"}
    return [
        ("no filter", {}, True),
        ("InstanceName=bench-00* (wildcard)", {"InstanceName": "bench-00*"}, True),
        ("Status=Running", {"Status": "Running"}, True),
        ("VSwitchId", {"VSwitchId": vswitch}, True),
        ("Tag bench-group=g3", tag, True),
        ("InstanceName + VSwitchId + Tag", {"InstanceName": "bench-00*", "VSwitchId": vswitch, **tag}, True),
        ("NextToken walk, no filter", {}, False),
        ("NextToken walk, Tag bench-group=g3", tag, False),
    ]


def describe_phase(srv: NubesServer, vswitch: str, requests: int, rng: random.Random, title: str) -> list[dict[str, Any]]:
    raw = srv.raw
    assert raw is not None
    print(f"\n  DescribeInstances -- {title}: PageSize=100 at random PageNumber (or MaxResults=100 following "
          f"NextToken), {requests} requests per case; raw keep-alive HTTP, v1 signature, latency = request "
          "written -> last byte read", flush=True)
    print("    case                                  style       matches  reqs   p50 ms   p99 ms   max ms"
          "  KiB/resp  srv cpu%  errors", flush=True)
    rows = []
    for name, params, page_style in describe_cases(vswitch):
        matches = int(raw.json("DescribeInstances", {**params, "PageSize": "1"})["TotalCount"])
        pages = max(1, math.ceil(matches / 100))
        numbers = [rng.randint(1, pages) for _ in range(requests)] if page_style else []
        row = measure_describe(raw, srv.pid, name, params, matches, numbers, page_style, requests)
        rows.append(row)
        print_describe_row(row)
    return rows


def fake_part(bench: Bench, opts: Options, results: dict[str, Any]) -> None:
    from alibabacloud_ecs20140526 import models as em

    srv = bench.server("fake", None)
    _, vswitch, group = srv.network(*FAKE_VPC)
    image = srv.image_id(IMAGE_FAMILY)
    fake: dict[str, Any] = {"server_flags": srv.flags, "vswitch_cidr": FAKE_VPC[1]}
    results["fake"] = fake
    print(f"\n(c) fake driver: nubes server {' '.join(srv.flags)}; VPC {FAKE_VPC[0]}, vSwitch {FAKE_VPC[1]}", flush=True)
    [host] = srv.hosts()
    fake["host_before"] = host
    slots = host["vcpus"] * host["cpu_overcommit"]
    print(f"  emulator host: {host['vcpus']} vCPUs x {host['cpu_overcommit']:g} = {slots:g} vCPU slots, "
          f"{host['memory_mib']} MiB x {host['memory_overcommit']:g}; {opts.fake_instances} x {INSTANCE_TYPE} "
          f"need {opts.fake_instances * GUEST_VCPUS} vCPUs, {opts.fake_instances * GUEST_RAM_MIB} MiB", flush=True)

    calls: list[float] = []
    created = 0
    batch = 0
    no_stock: dict[str, Any] | None = None
    internal_errors: list[dict[str, Any]] = []
    cpu0, t_create0 = cpu_seconds(srv.pid), time.perf_counter()
    attempts = 0
    while created < opts.fake_instances and attempts < opts.fake_instances // 100 + 20:  # bounded
        attempts += 1
        amount = min(100, opts.fake_instances - created)
        log_offset = srv.log_path.stat().st_size
        t0 = time.perf_counter()
        try:
            ids = srv.run_instances(image, vswitch, group, amount, name=f"bench-{batch:03d}-[1,3]",
                                    tags={"bench-group": f"g{batch % 10}"})
        except Exception as exc:
            code = api_error_code(exc)
            if code == "InternalError" and len(internal_errors) < 10:
                # nubes answers 500 when a random MAC collides with an existing one (the whole batch
                # is rolled back); the server log says which constraint failed. Try the batch again.
                with open(srv.log_path, "rb") as log_file:
                    log_file.seek(log_offset)
                    found = re.findall(rb"^\S*(?:Error|Exception)\b.*$", log_file.read(), re.MULTILINE)
                cause = found[-1].decode(errors="replace")[:160] if found else "?"
                internal_errors.append({"after_instances": created, "cause": cause})
                print(f"  RunInstances #{batch + 1} answered InternalError (HTTP 500) after {created} instances; "
                      f"server log: {cause}; the batch is sent again", flush=True)
                continue
            if code != "OperationDenied.NoStock" or no_stock is not None:
                raise
            no_stock = {"after_instances": created, "call_seconds": time.perf_counter() - t0,
                        "message": str(getattr(exc, "message", exc))[:300]}
            print(f"  RunInstances #{batch + 1} answered OperationDenied.NoStock after {created} instances: "
                  f"{no_stock['message']}", flush=True)
            need_cpu = opts.fake_instances * GUEST_VCPUS
            need_mem = opts.fake_instances * GUEST_RAM_MIB
            cpu = max(host["cpu_overcommit"], math.ceil(need_cpu / host["vcpus"]))
            mem = max(host["memory_overcommit"], math.ceil(need_mem / host["memory_mib"] * 10) / 10)
            srv.set_overcommit(host["id"], cpu, mem)
            no_stock.update(cpu_overcommit=cpu, memory_overcommit=mem)
            print(f"  -> raised the emulator host's overcommit in the store to cpu {cpu:g}, memory {mem:g} "
                  "(no API/CLI for it) and went on", flush=True)
            continue
        calls.append(time.perf_counter() - t0)
        created += len(ids)
        batch += 1
        if batch % 20 == 0:
            print(f"  ... {created} instances, last call {calls[-1] * 1000:.0f} ms", flush=True)
    create_seconds = sum(calls)
    create_cpu = cpu_seconds(srv.pid) - cpu0
    wall = time.perf_counter() - t_create0
    fake["no_stock"] = no_stock
    fake["internal_errors"] = internal_errors
    fake["create"] = {"instances": created, "calls": len(calls), "call_seconds": calls,
                      "seconds_in_calls": create_seconds, "wall_seconds": wall, "server_cpu_seconds": create_cpu}
    print(f"  created {created} instances in {len(calls)} calls: {create_seconds:.1f} s in RunInstances "
          f"= {created / create_seconds:.0f} instances/s; per call p50 {fmt_ms(percentile(calls, .5), 1).strip()} ms, "
          f"p99 {fmt_ms(percentile(calls, .99), 1).strip()} ms, first {fmt_ms(calls[0], 1).strip()} ms, "
          f"last {fmt_ms(calls[-1], 1).strip()} ms", flush=True)

    raw = srv.raw
    assert raw is not None

    def statuses() -> dict[str, int]:
        assert raw is not None
        return {st: int(raw.json("DescribeInstances", {"Status": st, "PageSize": "1"})["TotalCount"])
                for st in ("Pending", "Starting", "Running")}

    # The fake agent moves instances Pending -> Starting -> Running; how fast, with this many?
    first = statuses()
    c0, t0 = cpu_seconds(srv.pid), time.perf_counter()
    time.sleep(opts.settle)
    later = statuses()
    span = time.perf_counter() - t0
    agent_cpu = (cpu_seconds(srv.pid) - c0) / span
    fake["agent"] = {"statuses_at_end_of_create": first, "statuses_after_settle": later, "settle_seconds": span,
                     "running_per_second": (later["Running"] - first["Running"]) / span,
                     "server_cpu_percent_without_api_traffic": agent_cpu * 100}
    print(f"  statuses when the last RunInstances returned: {first}; {span:.0f} s later, with no API traffic: "
          f"{later} -> {fake['agent']['running_per_second']:.1f} instances/s reach Running; server CPU "
          f"{agent_cpu * 100:.0f}% of one core", flush=True)

    rng = random.Random(opts.seed)
    fake["describe"] = describe_phase(srv, vswitch, opts.deployed_requests, rng,
                                      "as deployed (the server's host agent busy with the instances)")
    fake["agent"]["statuses_after_describe"] = statuses()
    print(f"  statuses after these requests: {fake['agent']['statuses_after_describe']}", flush=True)

    # The same store, served by a server whose host agent has no instance to look after: the server
    # restarted under another --host-id (the instances stay placed on the first host, which nothing
    # now walks). What is left is the API and the store.
    srv.stop(bench.notes)
    srv.start(extra_flags=["--host-id", "bench-idle-host"])
    raw = srv.raw
    assert raw is not None
    time.sleep(1.0)
    c0, t0 = cpu_seconds(srv.pid), time.perf_counter()
    time.sleep(10.0)  # the network agent's full sync runs every 10 s: one is in this window
    idle = (cpu_seconds(srv.pid) - c0) / (time.perf_counter() - t0)
    fake["api_alone_server_cpu_idle_percent"] = idle * 100
    fake["describe_api_alone"] = describe_phase(
        srv, vswitch, opts.requests, rng,
        f"API alone (server restarted with --host-id bench-idle-host: its agent has no instances; idle CPU "
        f"{idle * 100:.0f}%)")

    # what a user of the official SDK sees (client-side parsing included), API alone
    sdk_lat = []
    for _ in range(20):
        page = rng.randint(1, max(1, math.ceil(created / 100)))
        t0 = time.perf_counter()
        body = srv.ecs.describe_instances(em.DescribeInstancesRequest(region_id=REGION, page_size=100,
                                                                      page_number=page)).body
        sdk_lat.append(time.perf_counter() - t0)
        if len(body.instances.instance) != min(100, created - (page - 1) * 100):
            bench.notes.append(f"SDK DescribeInstances page {page}: {len(body.instances.instance)} items")
    fake["sdk_no_filter"] = {"n": len(sdk_lat), "p50": percentile(sdk_lat, .5), "p99": percentile(sdk_lat, .99)}
    print(f"  through the official SDK (alibabacloud_ecs20140526, parsing included), API alone, no filter, 20 requests:"
          f" p50 {fmt_ms(percentile(sdk_lat, .5), 1).strip()} ms, max {fmt_ms(max(sdk_lat), 1).strip()} ms", flush=True)

    # RunInstances Amount=100 once more, with no agent competing (it does not walk these either)
    more = []
    for k in range(3):
        t0 = time.perf_counter()
        try:
            srv.run_instances(image, vswitch, group, 100, name=f"extra-{k}-[1,3]")
        except Exception as exc:  # noqa: BLE001
            bench.notes.append(f"extra RunInstances: {api_error_code(exc)}")
            continue
        more.append(time.perf_counter() - t0)
    fake["create_api_alone"] = more
    if more:
        print(f"  RunInstances Amount=100 at {created}+ instances, API alone: "
              + ", ".join(f"{x * 1000:.0f} ms" for x in more), flush=True)


def measure_describe(raw: RawClient, server_pid: int, name: str, params: dict[str, str], matches: int,
                     numbers: list[int], page_style: bool, requests: int) -> dict[str, Any]:
    """Each answer is checked against its own TotalCount (statuses may move during the run)."""
    lat: list[float] = []
    sizes: list[int] = []
    errors: list[str] = []
    totals: set[int] = set()
    first_last: dict[str, list[float]] = {"first": [], "last": []}
    for page in (numbers[:3] if page_style else []) + [1]:  # warm-up, not counted
        raw.call("DescribeInstances", {**params, "PageSize": "100", "PageNumber": str(page)})
    c0, t0 = cpu_seconds(server_pid), time.perf_counter()
    if page_style:
        for page in numbers:
            status, body, seconds = raw.call("DescribeInstances",
                                             {**params, "PageSize": "100", "PageNumber": str(page)})
            lat.append(seconds)
            sizes.append(len(body))
            if status != 200:
                errors.append(f"HTTP {status}: {body[:200]!r}")
                continue
            data = json.loads(body)
            got, count = len(data["Instances"]["Instance"]), int(data["TotalCount"])
            totals.add(count)
            if got != max(0, min(100, count - (page - 1) * 100)):
                errors.append(f"page {page}: {got} items with TotalCount {count}")
    else:
        token = ""
        walks = 0
        seen = 0
        for _ in range(requests):
            p = {**params, "MaxResults": "100"}
            if token:
                p["NextToken"] = token
            status, body, seconds = raw.call("DescribeInstances", p)
            lat.append(seconds)
            sizes.append(len(body))
            if status != 200:
                errors.append(f"HTTP {status}: {body[:200]!r}")
                break
            data = json.loads(body)
            totals.add(int(data["TotalCount"]))
            if not token:
                first_last["first"].append(seconds)
            elif not data["NextToken"]:
                first_last["last"].append(seconds)
            seen += len(data["Instances"]["Instance"])
            token = data["NextToken"]
            if not token:
                walks += 1
                if seen != int(data["TotalCount"]):
                    errors.append(f"walk {walks} saw {seen} instances, TotalCount {data['TotalCount']}")
                seen = 0
    wall = time.perf_counter() - t0
    cpu = cpu_seconds(server_pid) - c0
    row = {"case": name, "style": "PageNumber" if page_style else "NextToken", "matches": matches,
           "totals_seen": sorted(totals)[:5], "requests": len(lat), "p50": percentile(lat, .5),
           "p99": percentile(lat, .99), "max": max(lat), "kib_per_response": statistics.mean(sizes) / 1024,
           "errors": errors[:5], "error_count": len(errors), "server_cpu_percent": cpu / wall * 100,
           "latencies": lat}
    if not page_style:
        row["first_page_p50"] = percentile(first_last["first"], .5)
        row["last_page_p50"] = percentile(first_last["last"], .5)
    return row


def print_describe_row(row: dict[str, Any]) -> None:
    extra = ""
    if row["style"] == "NextToken":
        extra = (f"  (first page p50 {fmt_ms(row['first_page_p50'], 1).strip()} ms, last page p50 "
                 f"{fmt_ms(row['last_page_p50'], 1).strip()} ms)")
    moved = " (moving)" if len(row["totals_seen"]) > 1 else ""
    err = f"{row['error_count']}  !!! {row['errors'][0]}" if row["errors"] else ""
    print(f"    {row['case']:<37} {row['style']:<10} {row['matches']:>8} {row['requests']:>5} {fmt_ms(row['p50'], 8)} "
          f"{fmt_ms(row['p99'], 8)} {fmt_ms(row['max'], 8)} {row['kib_per_response']:9.1f} "
          f"{row['server_cpu_percent']:9.0f}  {err}{moved}{extra}", flush=True)


# ---- summary -----------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    model = "?"
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    except OSError:
        pass
    kvm = "absent"
    if os.path.exists("/dev/kvm"):
        try:
            fd = os.open("/dev/kvm", os.O_RDWR)
            os.close(fd)
            kvm = "opens"
        except OSError:
            kvm = "does not open"
    modules = ""
    try:
        modules = ",".join(sorted({line.split()[0] for line in Path("/proc/modules").read_text().splitlines()
                                   if line.startswith("kvm")}))
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
        "memory_mib": int(Path("/proc/meminfo").read_text().split()[1]) // 1024,
        "vmx_or_svm": (" vmx" in flags) or (" svm" in flags), "dev_kvm": kvm, "kvm_modules": modules,
        "qemu": first_line(["qemu-system-x86_64", "--version"]), "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
    }


def print_header(info: dict[str, Any], opts: Options) -> None:
    print("nubes launch benchmark")
    print(f"  machine : {info['nproc']} CPUs ({info['cpu']}), {info['memory_mib']} MiB, kernel {info['kernel']}, "
          f"load average {' '.join(f'{x:.2f}' for x in info['loadavg_start'])}")
    print(f"  accel   : TCG (software emulation) on both sides. /dev/kvm {info['dev_kvm']}"
          f"{' (' + info['kvm_modules'] + ')' if info['kvm_modules'] else ''}, CPU flags "
          f"{'with' if info['vmx_or_svm'] else 'without'} vmx/svm: KVM cannot run a Debian guest here "
          "(see /work/shared/HOST_NOTES.md), so the KVM target (p50 < 1 s) cannot be measured on this machine.")
    print(f"  tools   : {info['qemu']}; python {info['python']}")
    parts = []
    if not opts.skip_real:
        parts.append(f"(a)+(b) warm-up {'1+1' if opts.warmup else 'none'}, then {opts.trials1} x Amount=1 and "
                     f"{opts.trials10} x Amount={opts.amount} per side, alternating")
    if not opts.skip_fake:
        parts.append(f"(c) {opts.fake_instances} fake instances, DescribeInstances {opts.deployed_requests} per case "
                     f"with the host agent busy, {opts.requests} per case API alone")
    print(f"  plan    : {'; '.join(parts)}", flush=True)


STAGES = [  # (key, label): a timeline per instance, seconds from the RunInstances call
    ("api_return", "RunInstances answered (API call)"),
    ("disk", "system disk overlay created (Pending work)"),
    ("vm_dir", "boot step began, network synced (Starting)"),
    ("qemu_exec", "QEMU exec'd (command line written)"),
    ("qemu_up", "QEMU up (daemonized, devices set up)"),
    ("marker", "guest printed NUBES-READY (guest boot)"),
    ("seen_running", "DescribeInstances says Running"),
]


def summarize_real(real: dict[str, Any], opts: Options) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for amount in (1, opts.amount):
        bare = [vm for t in real["bare"] if t["count"] == amount for vm in t["per_vm"]]
        nubes = [v for t in real["nubes"] if t["amount"] == amount for v in t["per_instance"].values()]
        if not bare or not nubes:
            continue
        b = [v["marker"] for v in bare]
        n = [v["marker"] for v in nubes]
        r = [v["seen_running"] for v in nubes]
        s = {
            "bare_n": len(b), "bare_p50": percentile(b, .5), "bare_p90": percentile(b, .9),
            "bare_min": min(b), "bare_max": max(b),
            "nubes_n": len(n), "nubes_p50": percentile(n, .5), "nubes_p90": percentile(n, .9),
            "nubes_min": min(n), "nubes_max": max(n),
            "running_p50": percentile(r, .5), "running_p90": percentile(r, .9),
            "bare_boot_p50": percentile([v["marker"] - v["qemu_exec"] for v in bare], .5),
            "bare_overlay_p50": percentile([v["overlay"] - v["start"] for v in bare], .5),
            "bare_exec_p50": percentile([v["qemu_exec"] for v in bare], .5),
            "timeline": {k: percentile([v[k] for v in nubes], .5) for k, _ in STAGES},
            "stages": {},
        }
        s["ratio_p50"] = s["nubes_p50"] / s["bare_p50"]
        s["ratio_p90"] = s["nubes_p90"] / s["bare_p90"]
        previous = None
        for key, _ in STAGES:
            if previous is None:
                s["stages"][key] = percentile([v[key] for v in nubes], .5)
            else:
                s["stages"][key] = percentile([v[key] - v[previous] for v in nubes], .5)
            previous = key
        s["nubes_boot_p50"] = percentile([v["marker"] - v["qemu_exec"] for v in nubes], .5)
        for side, key, size in (("bare", "bare", "count"), ("nubes", "nubes", "amount")):
            trials = [t for t in real[key] if t[size] == amount and t["cpu"]]
            s[f"cpu_{side}"] = {k: median([t["cpu"][k] / amount for t in trials])
                                for k in ("qemu", "server", "bench", "other", "machine")}
        s["seen_starting_p50"] = percentile([v["seen_starting"] for v in nubes], .5)
        summary[str(amount)] = s
    mem: dict[str, Any] = {}
    for side, key in (("nubes", "nubes"), ("bare", "bare")):
        samples = [m for t in real[key] for m in t["memory"]]
        drops = [t["mem_available_drop_mib"] for t in real[key] if (t.get("amount") or t.get("count")) == opts.amount]
        if samples:
            mem[side] = {k: percentile([m[k] for m in samples], .5) for k in samples[0]}
            mem[side]["n"] = len(samples)
            mem[side]["mem_available_drop_per_vm"] = median(drops)
    summary["memory"] = mem
    summary["no_metadata_bare"] = sum(t["no_metadata"] for t in real["bare"])
    summary["no_metadata_nubes"] = sum(t["no_metadata"] for t in real["nubes"])
    return summary


def print_real_summary(summary: dict[str, Any], opts: Options, accel: str) -> None:
    print("\n(a) Launch to the guest's ready marker, seconds (TCG; per-instance times; p50/p90 interpolated)")
    print("    side                                                   n     p50     p90     min     max")
    for amount in (1, opts.amount):
        s = summary.get(str(amount))
        if s is None:
            continue
        bare_label = "bare QEMU, 1 VM" if amount == 1 else f"bare QEMU, {amount} started back to back"
        print(f"    {bare_label:<52} {s['bare_n']:>4} {fmt_s(s['bare_p50'], 7)} {fmt_s(s['bare_p90'], 7)} "
              f"{fmt_s(s['bare_min'], 7)} {fmt_s(s['bare_max'], 7)}")
        print(f"    {'nubes RunInstances Amount=' + str(amount) + ' -> marker':<52} {s['nubes_n']:>4} "
              f"{fmt_s(s['nubes_p50'], 7)} {fmt_s(s['nubes_p90'], 7)} {fmt_s(s['nubes_min'], 7)} "
              f"{fmt_s(s['nubes_max'], 7)}")
        print(f"    {'nubes RunInstances Amount=' + str(amount) + ' -> Running (API)':<52} {s['nubes_n']:>4} "
              f"{fmt_s(s['running_p50'], 7)} {fmt_s(s['running_p90'], 7)}")
        for q in ("p50", "p90"):
            ratio = s[f"ratio_{q}"]
            verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
            print(f"    ratio nubes/bare {q} (marker), Amount={amount:<3}{'':<24} {ratio:7.2f}x   "
                  f"target <= {TARGET_RATIO}x: {verdict}")
        print()
    for side, key in (("bare", "no_metadata_bare"), ("nubes", "no_metadata_nubes")):
        if summary.get(key):
            print(f"    !!! {summary[key]} {side} guest(s) printed the marker without an instance id (no network or "
                  "metadata; they waited 20 s for it): their times are in the figures above")
    print(f"    Both sides: TCG (nubes' accelerator: {accel or '?'}). The KVM target -- RunInstances to the marker "
          f"under {KVM_TARGET_P50:g} s p50 -- needs a KVM host; only TCG can be measured here: NOT measured.")
    print("    bare = qemu-img overlay + QEMU started by hand (slirp NIC + guestfwd metadata); nubes = the "
          "RunInstances call to the marker in run/vms/<id>/serial.log (tap on a vSwitch bridge, dnsmasq DHCP, "
          "nubes' metadata service).")

    print("\n    Where nubes' time goes: median per instance, seconds")
    head = "    stage (timeline from the RunInstances call)            "
    print(head + "".join(f"  Amount={a:<3} (+step)" for a in (1, opts.amount) if str(a) in summary))
    for key, label in STAGES:
        cells = ""
        for amount in (1, opts.amount):
            s = summary.get(str(amount))
            if s is None:
                continue
            cells += f"  {fmt_s(s['timeline'][key], 7)} (+{fmt_s(s['stages'][key], 5).strip()})"
            cells = cells.ljust(len(cells) + max(0, 21 - len(f"{fmt_s(s['timeline'][key], 7)} (+{fmt_s(s['stages'][key], 5).strip()})")))
        print(f"    {label:<55}{cells}")
    for amount in (1, opts.amount):
        s = summary.get(str(amount))
        if s is None:
            continue
        print(f"    Amount={amount}: guest boot (QEMU exec -> marker) nubes {fmt_s(s['nubes_boot_p50'], 5).strip()} s "
              f"vs bare {fmt_s(s['bare_boot_p50'], 5).strip()} s; control plane before QEMU exec: nubes "
              f"{fmt_s(s['timeline']['qemu_exec'], 5).strip()} s vs bare {fmt_s(s['bare_exec_p50'], 5).strip()} s "
              f"(overlay {fmt_s(s['bare_overlay_p50'], 5).strip()} s); DescribeInstances first said Starting at "
              f"{fmt_s(s['seen_starting_p50'], 5).strip()} s")
    print("    CPU-seconds per instance from the start to the last marker (medians over trials; 'other' = the whole"
          " machine minus the QEMUs, the server and this script: qemu-img, socat, dnsmasq, ip, and anything else"
          " running on the machine):")
    for amount in (1, opts.amount):
        s = summary.get(str(amount))
        if s is None:
            continue
        for side in ("bare", "nubes"):
            c = s[f"cpu_{side}"]
            print(f"      Amount={amount:<3} {side:<6} QEMU {c['qemu']:5.2f}  server {c['server']:5.2f}  this script "
                  f"{c['bench']:5.2f}  other {c['other']:5.2f}  machine total {c['machine']:5.2f}")
    print("    (file times: overlay first seen by a 5 ms poll; instance dir = its lock file's mtime; QEMU exec = "
          "mtime of run/vms/<id>/cmdline; QEMU up = mtime of handle.json; statuses by a 100 ms DescribeInstances poll)")

    mem = summary.get("memory", {})
    if mem:
        print(f"\n(b) Host memory per running tiny instance (guest RAM {GUEST_RAM_MIB} MiB), MiB, median over the QEMU "
              f"processes sampled once the guests were up")
        print("    side       n     RSS     PSS   RAM touched   RSS-RAM cfg   PSS-RAM cfg   RSS-touched   PSS-touched"
              "   MemAvailable drop/VM")
        for side in ("nubes", "bare"):
            m = mem.get(side)
            if not m:
                continue
            print(f"    {side:<8} {m['n']:>3} {m['rss']:7.1f} {m['pss']:7.1f} {m['ram_touched']:13.1f} "
                  f"{m['rss'] - m['ram_configured']:13.1f} {m['pss'] - m['ram_configured']:13.1f} "
                  f"{m['rss'] - m['ram_touched']:13.1f} {m['pss'] - m['ram_touched_pss']:13.1f} "
                  f"{m['mem_available_drop_per_vm']:22.1f}")
        print("    RSS-RAM cfg is negative while the guest has not touched all its RAM, so it bounds nothing; the\n"
              "    overhead beyond guest RAM is RSS minus the resident part of the guest-RAM mapping (RSS-touched):\n"
              "    QEMU's own memory -- TCG translation cache (nubes: tb-size=64 MiB; bare: QEMU's default 1 GiB, both\n"
              "    touched only in part), the kernel/initrd images QEMU keeps, devices, libraries. PSS-touched shares\n"
              "    the pages common to all QEMUs (binary, libraries, the same kernel file). MemAvailable drop/VM is\n"
              f"    system-wide over the Amount={opts.amount} trials (includes page cache and everything else).")


def print_fake_summary(fake: dict[str, Any], opts: Options) -> None:
    create = fake.get("create")
    if not create:
        return
    print(f"\n(c) Fake driver: {create['instances']} instances in {create['calls']} RunInstances calls (Amount<=100): "
          f"{create['instances'] / create['seconds_in_calls']:.0f} instances/s in the calls "
          f"({create['seconds_in_calls']:.1f} s; server CPU {create['server_cpu_seconds']:.1f} s)")
    if fake.get("no_stock"):
        ns = fake["no_stock"]
        print(f"    OperationDenied.NoStock after {ns['after_instances']} instances: the emulator host offers "
              f"{fake['host_before']['vcpus']} vCPUs x {fake['host_before']['cpu_overcommit']:g} = "
              f"{fake['host_before']['vcpus'] * fake['host_before']['cpu_overcommit']:g} vCPU slots; the run raised its "
              f"overcommit in the store to cpu {ns['cpu_overcommit']:g} / memory {ns['memory_overcommit']:g}")
    for err in fake.get("internal_errors", []):
        print(f"    !!! RunInstances failed with InternalError (HTTP 500) after {err['after_instances']} instances: "
              f"{err['cause']} (a random MAC collided; the batch was sent again)")
    agent = fake.get("agent")
    if agent:
        print(f"    the fake host agent: {agent['statuses_at_end_of_create']} when the last RunInstances returned, "
              f"{agent['statuses_after_settle']} {agent['settle_seconds']:.0f} s later "
              f"({agent['running_per_second']:.1f} instances/s reach Running, server CPU "
              f"{agent['server_cpu_percent_without_api_traffic']:.0f}% of one core without API traffic), "
              f"{agent.get('statuses_after_describe')} after the 'as deployed' requests")
    both = {row["case"] + " [" + row["style"] + "]": [row] for row in fake.get("describe", [])}
    for row in fake.get("describe_api_alone", []):
        both.setdefault(row["case"] + " [" + row["style"] + "]", [None]).append(row)
    dn = max((r["requests"] for r in fake.get("describe", [])), default=0)
    an = max((r["requests"] for r in fake.get("describe_api_alone", [])), default=0)
    print(f"    DescribeInstances, PageSize/MaxResults 100, ms  as deployed (n={dn}): p50  p99 | API alone (n={an}): "
          "p50  p99   matches")
    for name, rows in both.items():
        a = rows[0]
        b = rows[1] if len(rows) > 1 else None
        bad = any(r is not None and r["error_count"] for r in rows)
        some = a if a is not None else b
        assert some is not None
        print(f"    {name:<50} {fmt_ms(a['p50'] if a else None, 8)} {fmt_ms(a['p99'] if a else None, 8)} | "
              f"{fmt_ms(b['p50'] if b else None, 8)} {fmt_ms(b['p99'] if b else None, 8)}   "
              f"{some['matches']:>7}{'  !!! errors' if bad else ''}")
    if fake.get("create_api_alone"):
        print(f"    RunInstances Amount=100 at {create['instances']}+ instances with no agent competing: p50 "
              f"{fmt_ms(percentile(fake['create_api_alone'], .5), 1).strip()} ms (while creating: p50 "
              f"{fmt_ms(percentile(create['call_seconds'], .5), 1).strip()} ms, last "
              f"{fmt_ms(create['call_seconds'][-1], 1).strip()} ms)")
    if "api_alone_server_cpu_idle_percent" in fake:
        print(f"    server CPU without API traffic: {fake['agent']['server_cpu_percent_without_api_traffic']:.0f}% as "
              f"deployed, {fake['api_alone_server_cpu_idle_percent']:.0f}% with no instances on its host")
    sdk = fake.get("sdk_no_filter")
    if sdk:
        print(f"    official SDK, no filter, API alone (client parsing included): p50 {fmt_ms(sdk['p50'], 1).strip()} ms "
              f"over {sdk['n']}")


# ---- main ---------------------------------------------------------------------------------------------


def preflight(opts: Options) -> None:
    problems = []
    if not opts.skip_real:
        if os.geteuid() != 0:
            problems.append("the real part needs root (network namespaces, taps; use --skip-real)")
        tools = ["qemu-system-x86_64", "qemu-img", "socat", "ip", "nft", "dnsmasq"]
        missing = [t for t in tools if shutil.which(t) is None]
        if missing:
            problems.append(f"missing tools: {', '.join(missing)} (Debian: qemu-system-x86 qemu-utils socat "
                            "iproute2 nftables dnsmasq-base)")
    try:
        import alibabacloud_ecs20140526  # noqa: F401
        import alibabacloud_vpc20160428  # noqa: F401
    except ImportError:
        problems.append("the official SDKs are missing: pip install -e '.[test]'")
    if problems:
        print("bench/launch.py: " + "; ".join(problems), file=sys.stderr)
        raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_options(argv)
    preflight(opts)
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    info = machine_info()
    bench = Bench(opts)
    results: dict[str, Any] = {"machine": info}
    status = 0
    t_run = time.monotonic()
    try:
        print_header(info, opts)
        if not opts.skip_real:
            real_part(bench, opts, results)
        if not opts.skip_fake:
            fake_part(bench, opts, results)
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        status = 130
    except Exception as exc:  # noqa: BLE001 - report, clean up, exit non-zero
        import traceback

        traceback.print_exc()
        print(f"\n!!! benchmark aborted: {type(exc).__name__}: {exc}", file=sys.stderr)
        for srv in bench.servers:
            print(f"--- {srv.driver} server log (tail) ---\n{srv.log_tail()}", file=sys.stderr)
        status = 2
    finally:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            bench.close()
        finally:
            signal.signal(signal.SIGINT, previous)
    info["loadavg_end"] = os.getloadavg()
    info["seconds_total"] = time.monotonic() - t_run
    if status == 0:
        print("\n================ Summary ================")
        if "real" in results:
            results["real"]["summary"] = summarize_real(results["real"], opts)
            accel = next((t["accel"] for t in results["real"]["nubes"] if t["accel"]), "")
            print_real_summary(results["real"]["summary"], opts, accel)
        if "fake" in results:
            print_fake_summary(results["fake"], opts)
    print(f"\ncleanup: servers stopped, VMs killed, {bench.prefix}* namespaces removed, temporary files deleted"
          + ("" if not bench.notes else "; notes: " + "; ".join(bench.notes)))
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in info['loadavg_end'])}; "
          f"total {info['seconds_total']:.0f} s")
    if opts.json_path and status == 0:
        payload = {"options": {**asdict(opts), "json_path": str(opts.json_path), "images_dir": str(opts.images_dir)},
                   **results}
        opts.json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        print(f"raw figures saved to {opts.json_path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
