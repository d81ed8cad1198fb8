"""The servers a benchmark run starts and the run itself, shared by the scripts in bench/:

- a server subprocess on a free port of 127.0.0.1 waited for until it answers (`ServerProcess`);
- a `nubes server` with a temporary data directory, its own network-namespace prefix, the official
  SDK clients and a raw v1-signed keep-alive client (`NubesServer`, `RawClient`);
- a run's temporary directory and the cleanup of everything the run created (`Bench`).

The helpers they use (processes, figures) are in common.py. bench/ is not a package: each script
runs as `python bench/<name>.py`, so this file is found next to it (sys.path[0]).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from common import (
    ECS_VERSION,
    INSTANCE_TYPE,
    LOCALHOST,
    NUBES_CLI,
    READY_TIMEOUT,
    REGION,
    STARTUP_TIMEOUT,
    STOP_TIMEOUT,
    VPC_VERSION,
    ZONE,
    api_error_code,
    cpu_seconds,
    free_port,
    list_netns,
    loadavg_text,
    processes_matching,
    run,
    signals_ignored,
    unique_netns_prefix,
    wait_for,
)

from nubes.api.signing import sign_v1

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

    def start(
        self,
        command: Callable[[int], list[str]],
        env: dict[str, str],
        log_path: Path,
        health_path: str | None = "/healthz",
        timeout: float = STARTUP_TIMEOUT,
    ) -> None:
        """Start `command(port)` and wait until GET `health_path` answers 200 (None: until the port
        accepts a connection); RuntimeError with the log's tail if it exits or is not ready in time."""
        self.port = free_port()
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                command(self.port),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
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
        query = {
            "Action": action,
            "Version": self.VERSIONS[product],
            "Format": "JSON",
            "RegionId": REGION,
            **params,
        }
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

    def __init__(
        self,
        root: Path,
        driver: str,
        prefix: str,
        images_dir: Path | None,
        flags: Sequence[str] = ("--no-build-images", "--throttle-rate", "0"),
        sdk_read_timeout_ms: int = 300000,
    ) -> None:
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
            return Config(
                access_key_id=self.key[0],
                access_key_secret=self.key[1],
                region_id=REGION,
                endpoint=self.endpoint,
                protocol="http",
                read_timeout=self.sdk_read_timeout_ms,
                connect_timeout=5000,
            )

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
        proc = subprocess.run(
            [*NUBES_CLI, "admin", *args, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            timeout=120,
            env=nubes_env(self.key),
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"nubes admin {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    # -- the store's host rows (the scheduler's capacity; there is no API or CLI for them) --

    def hosts(self) -> list[dict[str, Any]]:
        with sqlite3.connect(self.db_path, timeout=30) as conn:
            rows = conn.execute(
                "SELECT id, vcpus, memory_mib, cpu_overcommit, memory_overcommit, accel FROM hosts"
            ).fetchall()
        return [
            dict(zip(("id", "vcpus", "memory_mib", "cpu_overcommit", "memory_overcommit", "accel"), r))
            for r in rows
        ]

    def set_overcommit(self, host_id: str, cpu: float, memory: float) -> None:
        conn = sqlite3.connect(self.db_path, timeout=30)
        try:
            conn.execute(
                "UPDATE hosts SET cpu_overcommit = ?, memory_overcommit = ? WHERE id = ?",
                (cpu, memory, host_id),
            )
            conn.commit()
        finally:
            conn.close()

    # -- resources through the official SDKs --

    def create_vpc(self, cidr: str) -> str:
        from alibabacloud_vpc20160428 import models as vm

        vpc_id = str(self.vpc.create_vpc(vm.CreateVpcRequest(region_id=REGION, cidr_block=cidr)).body.vpc_id)
        wait_for(
            lambda: (
                self.vpc.describe_vpc_attribute(
                    vm.DescribeVpcAttributeRequest(region_id=REGION, vpc_id=vpc_id)
                ).body.status
                == "Available"
            ),
            f"VPC {vpc_id} Available",
            interval=0.1,
        )
        return vpc_id

    def create_vswitch(self, vpc_id: str, cidr: str) -> str:
        from alibabacloud_vpc20160428 import models as vm

        vswitch_id = str(
            self.vpc.create_vswitch(
                vm.CreateVSwitchRequest(region_id=REGION, vpc_id=vpc_id, zone_id=ZONE, cidr_block=cidr)
            ).body.v_switch_id
        )
        wait_for(
            lambda: (
                self.vpc.describe_vswitch_attributes(
                    vm.DescribeVSwitchAttributesRequest(region_id=REGION, v_switch_id=vswitch_id)
                ).body.status
                == "Available"
            ),
            f"vSwitch {vswitch_id} Available",
            interval=0.1,
        )
        return vswitch_id

    def network(self, vpc_cidr: str, vswitch_cidr: str) -> tuple[str, str, str]:
        """A VPC, a vSwitch in it and a security group: their ids."""
        from alibabacloud_ecs20140526 import models as em

        vpc_id = self.create_vpc(vpc_cidr)
        vswitch_id = self.create_vswitch(vpc_id, vswitch_cidr)
        group = self.ecs.create_security_group(
            em.CreateSecurityGroupRequest(region_id=REGION, vpc_id=vpc_id)
        ).body.security_group_id
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

        images = self.ecs.describe_images(
            em.DescribeImagesRequest(region_id=REGION, image_owner_alias="system", page_size=100)
        ).body.images.image
        for image in images:
            if image.image_family == family:
                return str(image.image_id)
        raise RuntimeError(f"no image of family {family} registered (is the {name} image built?)")

    def run_instances(
        self,
        image: str,
        vswitch: str,
        group: str,
        amount: int,
        name: str = "",
        tags: dict[str, str] | None = None,
    ) -> list[str]:
        from alibabacloud_ecs20140526 import models as em

        request = em.RunInstancesRequest(
            region_id=REGION,
            image_id=image,
            instance_type=INSTANCE_TYPE,
            v_switch_id=vswitch,
            security_group_id=group,
            amount=amount,
            instance_name=name or None,
            tag=[em.RunInstancesRequestTag(key=k, value=v) for k, v in (tags or {}).items()] or None,
        )
        return list(self.ecs.run_instances(request).body.instance_id_sets.instance_id_set)

    def delete_instances(self, ids: Sequence[str]) -> None:
        from alibabacloud_ecs20140526 import models as em

        for i in range(0, len(ids), 100):
            self.ecs.delete_instances(
                em.DeleteInstancesRequest(region_id=REGION, instance_id=list(ids[i : i + 100]), force=True)
            )


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
        return processes_matching(
            lambda argv: "qemu-system" in os.path.basename(argv[0]) and any(str(self.tmp) in a for a in argv)
        )

    def leftover_dnsmasq(self) -> list[int]:
        marker = f"--pid-file={self.tmp}/"
        return processes_matching(
            lambda argv: os.path.basename(argv[0]) == "dnsmasq" and any(a.startswith(marker) for a in argv)
        )

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

    def run(
        self, body: Callable[[], None], info: dict[str, Any], before_close: Callable[[], None] | None = None
    ) -> int:
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
        print(
            f"load average at end: {loadavg_text(info['loadavg_end'])}; total {info['seconds_total']:.0f} s"
        )

    def _kill(self, pids: list[int], what: str) -> None:
        for pid in pids:
            self.notes.append(f"{what} {pid} was left running; killed")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
