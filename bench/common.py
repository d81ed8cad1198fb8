"""What the benchmarks in bench/ share: one copy of each helper the scripts used to carry their own of.

- processes: running a command, waiting for a condition, reading /proc (command line, liveness, CPU
  time), SIGTERM/SIGINT turned into KeyboardInterrupt so that every script's cleanup runs;
- servers: a server subprocess on a free port of 127.0.0.1 waited for until it answers
  (`ServerProcess`), a `nubes server` with a temporary data directory, its own network-namespace
  prefix, the official SDK clients and a raw v1-signed client (`NubesServer`, `RawClient`), and a
  run's temporary directory with the cleanup of everything the run created (`Bench`);
- figures: percentiles (nearest rank with censored observations; interpolated), ratios and their
  verdicts, number formatting, machine information for the headers, the JSON file of raw figures.

bench/ is not a package: each script runs as `python bench/<name>.py`, so this file is found next to
it (sys.path[0]).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from nubes.api.signing import sign_v1

LOCALHOST = "127.0.0.1"  # the only address the benchmarks start servers on and send load to
REGION = "cn-hangzhou"
ZONE = "cn-hangzhou-h"
INSTANCE_TYPE = "ecs.t5-lc2m1.nano"  # the VM benchmarks' guest: 1 vCPU, 512 MiB (what TCG can carry)
GUEST_VCPUS = 1
GUEST_RAM_MIB = 512
DEFAULT_IMAGES_DIR = Path("/var/cache/nubes-test/images")
ECS_VERSION = "2014-05-26"
VPC_VERSION = "2016-04-28"
STARTUP_TIMEOUT = 60.0  # a server answering its health check
STOP_TIMEOUT = 20.0  # a server stopping on SIGTERM before it is killed
READY_TIMEOUT = 30.0  # a VPC/vSwitch Available, an address up, a vSwitch deleted
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
NUBES_CLI = [sys.executable, "-m", "nubes.cli.main"]


# ---- processes ----------------------------------------------------------------------------------


def run(argv: Sequence[str], *, timeout: float = 60, check: bool = True, input: str | None = None) -> str:
    """A command's stdout; RuntimeError with the end of its stderr when it fails (and `check`)."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, input=input,
                          check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def first_line(argv: Sequence[str]) -> str:
    """The first line a command prints (a tool's version for the header); "?" when it cannot run."""
    try:
        out = run(argv, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return out.strip().splitlines()[0] if out.strip() else "?"


def wait_for(check: Callable[[], Any], what: str, timeout: float = READY_TIMEOUT,
             interval: float = 0.05) -> Any:
    """Poll `check()` until it returns something truthy, and return that; RuntimeError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def interrupt(signum: int, frame: object) -> None:
    """Signal handler: SIGTERM (and SIGINT) end the run like Ctrl-C, through the script's cleanup."""
    raise KeyboardInterrupt


def interrupt_on_signals() -> None:
    # SIGINT explicitly too: a shell leaves it ignored for a job started in the background with `&`.
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """SIGINT and SIGTERM ignored meanwhile: a second Ctrl-C must not stop a cleanup half-way."""
    handlers = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def free_port(host: str = LOCALHOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def process_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [p.decode(errors="replace") for p in raw.split(b"\0") if p]


def alive(pid: int) -> bool:
    """Running (a zombie is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds; NaN when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return math.nan
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def processes_matching(match: Callable[[list[str]], bool]) -> list[int]:
    """The pids whose command line `match` accepts."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            argv = process_cmdline(int(entry))
            if argv and match(argv):
                found.append(int(entry))
    return found


def list_netns() -> list[str]:
    try:
        return sorted(os.listdir("/run/netns"))
    except FileNotFoundError:
        return []


def unique_netns_prefix(stem: str) -> str:
    """`stem<pid><hex>`, a prefix no network namespace has yet: what the run creates is found by it."""
    existing = list_netns()
    for _ in range(20):
        prefix = f"{stem}{os.getpid() % 100000}{secrets.token_hex(2)}"
        if not any(ns.startswith(prefix) for ns in existing):
            return prefix
    raise RuntimeError("could not find an unused network-namespace prefix")


def api_error_code(exc: BaseException) -> str:
    """The API error code of an official SDK's exception, else the exception's type."""
    code = getattr(exc, "code", None)
    if code:
        return str(code)
    data = getattr(exc, "data", None)
    if isinstance(data, dict) and data.get("Code"):
        return str(data["Code"])
    return type(exc).__name__


# ---- a server subprocess ------------------------------------------------------------------------


class ServerProcess:
    """One server subprocess on a free port of 127.0.0.1, its output in a log file, in a session of
    its own (Ctrl-C reaches only the script, which stops the server itself)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log_path: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, command: Callable[[int], list[str]], env: dict[str, str], log_path: Path,
              health_path: str | None = "/healthz", timeout: float = STARTUP_TIMEOUT) -> None:
        """Start `command(port)` and wait until GET `health_path` answers 200 (None: until the port
        accepts a connection); RuntimeError with the log's tail if it exits or is not ready in time."""
        self.port = free_port()
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(command(self.port), env=env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited during startup:\n{self.log_tail()}")
            if self.ready(health_path):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} was not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def ready(self, health_path: str | None) -> bool:
        if health_path is None:
            with contextlib.suppress(OSError), socket.create_connection((LOCALHOST, self.port), timeout=1):
                return True
            return False
        try:
            with urllib.request.urlopen(f"http://{self.endpoint}{health_path}", timeout=2) as reply:
                return bool(reply.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """SIGTERM, then SIGKILL after `timeout`; True when it had to be killed."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return False
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
            return False
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
            return True

    def cpu_seconds(self) -> float:
        """CPU time (user + system, all threads) the server process has used so far."""
        return math.nan if self.proc is None else cpu_seconds(self.proc.pid)

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is not None:
            with contextlib.suppress(OSError):
                return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no server log)"


# ---- nubes --------------------------------------------------------------------------------------


def nubes_env(key: tuple[str, str]) -> dict[str, str]:
    """This environment for a nubes process with the root AccessKey `key`, without what would point it
    at another store than the temporary one (NUBES_HOME, NUBES_DATABASE_URL)."""
    env = {k: v for k, v in os.environ.items() if k not in ("NUBES_HOME", "NUBES_DATABASE_URL")}
    env.update(NUBES_ACCESS_KEY_ID=key[0], NUBES_ACCESS_KEY_SECRET=key[1])
    return env


def v1_path(params: dict[str, str], key: tuple[str, str]) -> str:
    """`/?<query>` of a POST signed with signature v1 (HMAC-SHA1, parameters in the query), as
    aliyun-python-sdk-core sends it; a fresh nonce and timestamp each time."""
    return "/?" + urlencode(sign_v1("POST", params, key[0], key[1]), quote_via=quote)


class RawClient:
    """POST /?<v1-signed query> over one keep-alive HTTP/1.1 connection, no SDK parsing in the timings:
    call() returns (HTTP status, body bytes, seconds from writing the request to the last byte)."""

    VERSIONS: ClassVar[dict[str, str]] = {"ecs": ECS_VERSION, "vpc": VPC_VERSION}

    def __init__(self, endpoint: str, key: tuple[str, str]) -> None:
        host, _, port = endpoint.partition(":")
        self.host, self.port, self.key = host, int(port), key
        self.conn: http.client.HTTPConnection | None = None

    def call(self, action: str, params: dict[str, str], product: str = "ecs") -> tuple[int, bytes, float]:
        query = {"Action": action, "Version": self.VERSIONS[product], "Format": "JSON", "RegionId": REGION,
                 **params}
        path = v1_path(query, self.key)
        for attempt in range(2):  # once more on a connection the server closed meanwhile
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


class NubesServer:
    """`nubes server --driver DRIVER` on a free port with its data directory under `root`, its own
    network-namespace prefix and a random root AccessKey; the official SDK clients (`ecs`, `vpc`) and
    a RawClient (`raw`) once started."""

    def __init__(self, root: Path, driver: str, prefix: str, images_dir: Path | None,
                 flags: Sequence[str] = ("--no-build-images", "--throttle-rate", "0"),
                 sdk_read_timeout_ms: int = 300000) -> None:
        self.root = root
        self.driver = driver
        self.prefix = prefix
        self.images_dir = images_dir
        self.base_flags = list(flags)
        self.sdk_read_timeout_ms = sdk_read_timeout_ms
        self.data_dir = root / "data"
        self.log_path = root / "server.log"
        self.key = ("LTAIbenchlaunch" + secrets.token_hex(5), secrets.token_hex(15))
        self.process = ServerProcess(f"nubes server ({driver})")
        self.endpoint = ""
        self.flags: list[str] = []
        self.ecs: Any = None
        self.vpc: Any = None
        self.raw: RawClient | None = None

    def start(self, extra_flags: Sequence[str] = ()) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        env = nubes_env(self.key)
        if self.images_dir is not None:
            env["NUBES_IMAGES_DIR"] = str(self.images_dir)
        self.flags = ["--driver", self.driver, "--netns-prefix", self.prefix, *self.base_flags, *extra_flags]

        def command(port: int) -> list[str]:
            return [*NUBES_CLI, "server", "--port", str(port), "--data-dir", str(self.data_dir), *self.flags]

        self.process.start(command, env, self.log_path)
        self.endpoint = self.process.endpoint
        from alibabacloud_ecs20140526.client import Client as EcsClient
        from alibabacloud_tea_openapi.models import Config
        from alibabacloud_vpc20160428.client import Client as VpcClient

        def config() -> Any:
            return Config(access_key_id=self.key[0], access_key_secret=self.key[1], region_id=REGION,
                          endpoint=self.endpoint, protocol="http", read_timeout=self.sdk_read_timeout_ms,
                          connect_timeout=5000)

        self.ecs, self.vpc = EcsClient(config()), VpcClient(config())
        self.raw = RawClient(self.endpoint, self.key)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def db_path(self) -> Path:
        return self.data_dir / "nubes.db"

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines)

    def stop(self, notes: list[str]) -> None:
        if self.raw is not None:
            self.raw.close()
        if self.process.stop():
            notes.append(f"{self.driver} server did not stop on SIGTERM; killed")

    def admin(self, *args: str) -> str:
        """`nubes admin ARGS` on this server's data directory; its stdout."""
        proc = subprocess.run([*NUBES_CLI, "admin", *args, "--data-dir", str(self.data_dir)],
                              capture_output=True, text=True, timeout=120, env=nubes_env(self.key),
                              check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"nubes admin {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

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

    def create_vpc(self, cidr: str) -> str:
        from alibabacloud_vpc20160428 import models as vm

        vpc_id = str(self.vpc.create_vpc(vm.CreateVpcRequest(region_id=REGION, cidr_block=cidr)).body.vpc_id)
        wait_for(lambda: self.vpc.describe_vpc_attribute(vm.DescribeVpcAttributeRequest(
            region_id=REGION, vpc_id=vpc_id)).body.status == "Available", f"VPC {vpc_id} Available",
            interval=0.1)
        return vpc_id

    def create_vswitch(self, vpc_id: str, cidr: str) -> str:
        from alibabacloud_vpc20160428 import models as vm

        vswitch_id = str(self.vpc.create_vswitch(vm.CreateVSwitchRequest(
            region_id=REGION, vpc_id=vpc_id, zone_id=ZONE, cidr_block=cidr)).body.v_switch_id)
        wait_for(lambda: self.vpc.describe_vswitch_attributes(vm.DescribeVSwitchAttributesRequest(
            region_id=REGION, v_switch_id=vswitch_id)).body.status == "Available",
            f"vSwitch {vswitch_id} Available", interval=0.1)
        return vswitch_id

    def network(self, vpc_cidr: str, vswitch_cidr: str) -> tuple[str, str, str]:
        """A VPC, a vSwitch in it and a security group: their ids."""
        from alibabacloud_ecs20140526 import models as em

        vpc_id = self.create_vpc(vpc_cidr)
        vswitch_id = self.create_vswitch(vpc_id, vswitch_cidr)
        group = self.ecs.create_security_group(em.CreateSecurityGroupRequest(
            region_id=REGION, vpc_id=vpc_id)).body.security_group_id
        return vpc_id, vswitch_id, group

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

    def image_id(self, family: str, name: str) -> str:
        """The id of the system image of this family (`name`: what to build when it is missing)."""
        from alibabacloud_ecs20140526 import models as em

        images = self.ecs.describe_images(em.DescribeImagesRequest(
            region_id=REGION, image_owner_alias="system", page_size=100)).body.images.image
        for image in images:
            if image.image_family == family:
                return str(image.image_id)
        raise RuntimeError(f"no image of family {family} registered (is the {name} image built?)")

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
            self.ecs.delete_instances(em.DeleteInstancesRequest(
                region_id=REGION, instance_id=list(ids[i:i + 100]), force=True))


# ---- the run: its temporary directory, its servers, and the cleanup ---------------------------------


class Bench:
    """Everything a run creates under one temporary directory and one namespace prefix, and the
    removal of all of it (`close`). Subclasses stop their own processes first (`stop_own`)."""

    def __init__(self, tmp_prefix: str, netns_stem: str) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix))
        os.chmod(self.tmp, 0o755)  # dnsmasq (user nobody) must be able to read its hosts file
        self.prefix = unique_netns_prefix(netns_stem)
        self.servers: list[NubesServer] = []
        self.own_netns: list[str] = []  # made by the script itself: deleted without a note
        self.notes: list[str] = []
        self.t0 = time.monotonic()

    def server(self, driver: str, images_dir: Path | None, **kwargs: Any) -> NubesServer:
        """A started nubes server (`kwargs`: NubesServer's flags, sdk_read_timeout_ms)."""
        prefix = self.prefix if driver == "real" else self.prefix + "f"
        srv = NubesServer(self.tmp / driver, driver, prefix, images_dir, **kwargs)
        self.servers.append(srv)
        srv.start()
        return srv

    def stop_own(self) -> None:
        """Stop what the script itself started (before the servers are stopped)."""

    def leftover_qemu(self) -> list[int]:
        """QEMU processes whose command line names this run's temporary directory."""
        return processes_matching(lambda argv: "qemu-system" in os.path.basename(argv[0])
                                  and any(str(self.tmp) in a for a in argv))

    def leftover_dnsmasq(self) -> list[int]:
        marker = f"--pid-file={self.tmp}/"
        return processes_matching(lambda argv: os.path.basename(argv[0]) == "dnsmasq"
                                  and any(a.startswith(marker) for a in argv))

    def my_namespaces(self) -> list[str]:
        return [ns for ns in list_netns() if ns.startswith(self.prefix) or ns in self.own_netns]

    def close(self) -> None:
        """Remove everything, whatever state the run is in. Never raises."""
        self.stop_own()
        for srv in self.servers:
            try:
                srv.stop(self.notes)
            except Exception as exc:  # noqa: BLE001 - keep cleaning
                self.notes.append(f"stopping the {srv.driver} server: {exc}")
        # QEMUs the real server started are not its children (they outlive it by design): the
        # ones of this run are found by their command line, which names this run's directory.
        self._kill(self.leftover_qemu(), "QEMU")
        deadline = time.monotonic() + 10
        while self.leftover_qemu() and time.monotonic() < deadline:
            time.sleep(0.1)
        for srv in self.servers:
            run_dir = srv.data_dir / "run" / "network"
            if srv.driver == "real" and run_dir.is_dir():
                # The server's own driver removes its VPCs (dnsmasq, test hosts, VPC namespaces):
                # a stopped server leaves them in place by design, so they survive restarts.
                try:
                    from nubes.drivers.network.linux import LinuxNetworkDriver

                    LinuxNetworkDriver(run_dir, prefix=srv.prefix).sync([])
                except Exception as exc:  # noqa: BLE001 - the sweep below still runs
                    self.notes.append(f"network driver cleanup failed: {exc}")
        self._kill(self.leftover_dnsmasq(), "dnsmasq")
        for ns in self.my_namespaces():
            if ns not in self.own_netns:
                self.notes.append(f"namespace {ns} was left behind; deleted")
            run(["ip", "netns", "delete", ns], check=False)
        remaining = self.my_namespaces()
        if remaining:
            self.notes.append(f"could not delete namespaces: {', '.join(remaining)}")
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run(self, body: Callable[[], None], info: dict[str, Any],
            before_close: Callable[[], None] | None = None) -> int:
        """Run `body`, then `before_close` and close(), whatever happened, with SIGINT and SIGTERM
        ignored meanwhile; then note the load average and the run's duration in `info`. The exit
        status: 0, 130 (interrupted) or 2 (failed: the exception and the servers' log tails go to
        stderr)."""
        status = 0
        try:
            body()
        except KeyboardInterrupt:
            print("\ninterrupted; cleaning up", file=sys.stderr)
            status = 130
        except Exception as exc:  # noqa: BLE001 - report, clean up, exit non-zero
            traceback.print_exc()
            print(f"\n!!! benchmark aborted: {type(exc).__name__}: {exc}", file=sys.stderr)
            for srv in self.servers:
                print(f"--- {srv.driver} server log (tail) ---\n{srv.log_tail()}", file=sys.stderr)
            status = 2
        finally:
            with signals_ignored():
                try:
                    if before_close is not None:
                        before_close()
                finally:
                    self.close()
        info.update(loadavg_end=os.getloadavg(), seconds_total=time.monotonic() - self.t0)
        return status

    def print_footer(self, info: dict[str, Any], cleaned: str) -> None:
        """What the cleanup did (and had to do), the load average at the end and the run's duration."""
        notes = "" if not self.notes else "; notes: " + "; ".join(self.notes)
        print(f"\ncleanup: {cleaned}{notes}")
        print(f"load average at end: {loadavg_text(info['loadavg_end'])}; "
              f"total {info['seconds_total']:.0f} s")

    def _kill(self, pids: list[int], what: str) -> None:
        for pid in pids:
            self.notes.append(f"{what} {pid} was left running; killed")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# ---- options ------------------------------------------------------------------------------------


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="json_path", type=Path, help="also save the raw figures to this file")


def add_images_dir_option(parser: argparse.ArgumentParser, image: str) -> None:
    parser.add_argument("--images-dir", type=Path,
                        default=Path(os.environ.get("NUBES_IMAGES_DIR") or DEFAULT_IMAGES_DIR),
                        help=f"where the {image} image is built "
                             f"(default $NUBES_IMAGES_DIR or {DEFAULT_IMAGES_DIR})")


# ---- figures ------------------------------------------------------------------------------------


def nearest_rank(sorted_values: Sequence[float], censored: int, pct: float) -> float:
    """Nearest-rank percentile `pct` (0-100) of the ascending `sorted_values` plus `censored` more
    observations that count as +infinity (requests never answered): inf when the rank falls on one."""
    n = len(sorted_values) + censored
    if n == 0:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * n))
    return sorted_values[rank - 1] if rank <= len(sorted_values) else math.inf


def percentile(values: Sequence[float | None], q: float) -> float:
    """Quantile `q` (0-1) by linear interpolation between closest ranks (numpy's default); None and
    NaN (a failed trial) are left out."""
    data = sorted(v for v in values if v is not None and not math.isnan(v))
    if not data:
        return math.nan
    pos = (len(data) - 1) * q
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def median(values: Sequence[float | None]) -> float:
    """The median, None and NaN left out; NaN when nothing is left."""
    data = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(data) if data else math.nan


def ratio(a: float | None, b: float | None) -> float:
    """a / b; NaN when either is missing or NaN, or b is zero."""
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return math.nan
    return a / b


@dataclass(frozen=True)
class Ratio:
    """A ratio as printed: `1.23x`, `456x`; with a bound when one side was censored."""

    value: float
    bound: str = ""  # "": measured; ">": the true ratio is above `value`; "<": below it

    def __str__(self) -> str:
        if math.isnan(self.value):
            return "n/a"
        return f"{self.bound}{self.value:.0f}x" if self.value >= 100 else f"{self.bound}{self.value:.3g}x"


def verdict_word(met: bool) -> str:
    return "met" if met else "NOT met"


def fmt_num(value: float | None, width: int = 7, digits: int = 0) -> str:
    """A number right-aligned in `width`, or `-` for a missing figure (None, NaN)."""
    if value is None or math.isnan(value):
        return "-".rjust(width)
    return f"{value:{width}.{digits}f}"


def fmt_s(seconds: float | None, width: int = 6) -> str:
    return fmt_num(seconds, width, 2)


def fmt_ms(seconds: float | None, width: int = 7) -> str:
    """Seconds printed as milliseconds, one decimal."""
    return fmt_num(None if seconds is None else seconds * 1000, width, 1)


# ---- machine information and the raw figures ------------------------------------------------------


def cpu_model(default: str = "?") -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return default


def loadavg_text(values: Sequence[float] | None = None) -> str:
    return " ".join(f"{x:.2f}" for x in (os.getloadavg() if values is None else values))


def kvm_state() -> str:
    """Whether /dev/kvm exists and opens (it may open on a host that still cannot run a guest)."""
    if not os.path.exists("/dev/kvm"):
        return "absent"
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError:
        return "does not open"
    return "opens"


def vm_machine_info() -> dict[str, Any]:
    """What the VM benchmarks' headers print and their JSON keeps: CPUs, memory, KVM, QEMU."""
    flags = ""
    with contextlib.suppress(OSError):
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), "")
    modules = ""
    with contextlib.suppress(OSError):
        modules = ",".join(sorted({line.split()[0] for line in Path("/proc/modules").read_text().splitlines()
                                   if line.startswith("kvm")}))
    return {
        "nproc": os.cpu_count(), "cpu": cpu_model(), "kernel": platform.release(),
        "memory_mib": int(Path("/proc/meminfo").read_text().split()[1]) // 1024,
        "vmx_or_svm": (" vmx" in flags) or (" svm" in flags), "dev_kvm": kvm_state(), "kvm_modules": modules,
        "qemu": first_line(["qemu-system-x86_64", "--version"]), "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
    }


def machine_line(info: dict[str, Any]) -> str:
    """The header's `machine :` line (memory when `info` has it)."""
    memory = f"{info['memory_mib']} MiB, " if "memory_mib" in info else ""
    return (f"  machine : {info['nproc']} CPUs ({info['cpu']}), {memory}kernel {info['kernel']}, "
            f"load average {loadavg_text(info['loadavg_start'])}")


def finite_or_text(value: Any) -> Any:
    """JSON has no Infinity or NaN: write those as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: finite_or_text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_text(v) for v in value]
    return value


def save_json(path: Path, payload: dict[str, Any]) -> None:
    """The raw figures, as strict JSON (NaN and inf as strings); says where they went."""
    path.write_text(json.dumps(finite_or_text(payload), indent=2, default=str) + "\n")
    print(f"raw figures saved to {path}")
