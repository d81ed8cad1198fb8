"""Shared fixtures: a live `nubes server` per store backend, and the official clients pointed at it.

Backends: SQLite always; PostgreSQL when NUBES_TEST_POSTGRES_URL names a server (.ci/run
starts one). Under CI a missing PostgreSQL is a failure, not a skip."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.browser_support import chromium, page, playwright  # noqa: F401 - the browser tests' fixtures

ROOT_KEY_ID = "LTAItestroot0000000001"
ROOT_SECRET = "testRootSecret0000000000000001"
PG_ENV = "NUBES_TEST_POSTGRES_URL"
# The shared emulator's public range (benchmarking space, never routed): EIPs and public IPs.
LIVE_PUBLIC_CIDR = "198.18.0.0/16"


@dataclass
class LiveServer:
    endpoint: str
    port: int
    data_dir: Path
    database_url: str
    backend: str
    process: subprocess.Popen[bytes]
    log_path: Path
    args: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # whatever a test wants to carry along
    extra_accounts: dict[str, tuple[str, str]] = field(default_factory=dict)
    store: Any = None  # the tests' own connection to the server's store, opened on first use

    def nubes(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the nubes CLI against this server's store and endpoint."""
        full_env = {**os.environ, "NUBES_HOME": str(self.data_dir), **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "nubes.cli.main", *args],
            capture_output=True,
            text=True,
            env=full_env,
            check=check,
            timeout=120,
        )

    def admin_store_args(self) -> list[str]:
        return ["--data-dir", str(self.data_dir), "--database-url", self.database_url]

    def create_account(self, name: str) -> tuple[str, str]:
        """A new account and its AccessKey pair, written to the store as `nubes admin account
        create` writes them (test_accounts_isolation.py runs that command itself), without
        starting a CLI process for each of the hundreds of tests that want an account."""
        from nubes.clock import SystemClock
        from nubes.domain.accounts import Accounts
        from nubes.store.db import Database

        if self.store is None:
            self.store = Database(self.database_url)
        accounts = Accounts(self.store, SystemClock())
        accounts.create(name)
        key = accounts.create_key(name)
        pair = (key.access_key_id, key.secret)
        self.extra_accounts[name] = pair
        return pair

    def create_resource_group(self, key: tuple[str, str], name: str) -> str:
        """Another resource group of the account of `key` (nubes has no API that makes one)."""
        from nubes.clock import SystemClock
        from nubes.domain.accounts import Accounts
        from nubes.domain.resource_group_members import ResourceGroups
        from nubes.store.db import Database

        if self.store is None:
            self.store = Database(self.database_url)
        found = Accounts(self.store, SystemClock()).lookup_key(key[0])
        assert found is not None
        return ResourceGroups(self.store, SystemClock()).create(found.principal.account_id, name)

    @property
    def netns_prefix(self) -> str:
        return self.args[self.args.index("--netns-prefix") + 1]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _postgres_database() -> str | None:
    admin_url = os.environ.get(PG_ENV)
    if not admin_url:
        return None
    import psycopg

    name = f"nubes_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


_SERVERS_STARTED = 0


def unique_prefix() -> str:
    """A network-namespace prefix no other server on this host uses (servers remove what
    carries their prefix and is not in their store)."""
    global _SERVERS_STARTED
    _SERVERS_STARTED += 1
    return f"nt{os.getpid() % 100000}x{_SERVERS_STARTED}"


def start_server(
    tmp: Path, database_url: str | None, backend: str, extra_args: list[str] | None = None
) -> LiveServer:
    port = free_port()
    data_dir = tmp / "data"
    log_path = tmp / "server.log"
    env = {**os.environ, "NUBES_ACCESS_KEY_ID": ROOT_KEY_ID, "NUBES_ACCESS_KEY_SECRET": ROOT_SECRET}
    args = [
        sys.executable,
        "-m",
        "nubes.cli.main",
        "server",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    if database_url:
        args += ["--database-url", database_url]
    args += extra_args or []
    if "--netns-prefix" not in args:
        args += ["--netns-prefix", unique_prefix()]
    if "--driver" not in args:
        args += ["--driver", "fake"]
    with open(log_path, "wb") as log_file:  # the server writes to its own copy of the descriptor
        process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    _wait_healthy(port, process, log_path)
    url = database_url or f"sqlite:///{data_dir / 'nubes.db'}"
    return LiveServer(f"127.0.0.1:{port}", port, data_dir, url, backend, process, log_path, args)


def _wait_healthy(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(
                    f"nubes server did not start:\n{log_path.read_text(errors='replace')}"
                ) from None
            time.sleep(0.1)


def stop_server(server: LiveServer) -> None:
    if server.store is not None:
        server.store.dispose()
        server.store = None
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()


def restart_server(server: LiveServer, *, kill: bool = False) -> None:
    """Stop the server (SIGTERM, or SIGKILL with `kill`) and start it again on the same port,
    data dir and store; `server.process` is the new process."""
    if kill:
        server.process.kill()
        server.process.wait(timeout=15)
    else:
        stop_server(server)
    env = {**os.environ, "NUBES_ACCESS_KEY_ID": ROOT_KEY_ID, "NUBES_ACCESS_KEY_SECRET": ROOT_SECRET}
    with open(server.log_path, "ab") as log_file:
        server.process = subprocess.Popen(server.args, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    _wait_healthy(server.port, server.process, server.log_path)


def backends() -> list[Any]:
    return ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session", params=backends())
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    backend = request.param
    database_url = None
    if backend == "postgres":
        database_url = _postgres_database()
        if database_url is None:
            if os.environ.get("CI"):
                pytest.fail(f"{PG_ENV} is not set: CI must test the PostgreSQL store")
            pytest.skip(f"{PG_ENV} not set (run the tests through ./nubes-dev test to get PostgreSQL)")
    server = start_server(
        tmp_path_factory.mktemp(f"live-{backend}"),
        database_url,
        backend,
        ["--throttle-rate", "0", "--public-cidr", LIVE_PUBLIC_CIDR],
    )
    yield server
    stop_server(server)


# ---- official clients --------------------------------------------------------------------


def tea_ecs(server: LiveServer, key: tuple[str, str] = (ROOT_KEY_ID, ROOT_SECRET), **config: Any) -> Any:
    from alibabacloud_ecs20140526.client import Client
    from alibabacloud_tea_openapi.models import Config

    return Client(
        Config(
            access_key_id=key[0],
            access_key_secret=key[1],
            region_id="cn-hangzhou",
            endpoint=server.endpoint,
            protocol="http",
            **config,
        )
    )


def tea_vpc(server: LiveServer, key: tuple[str, str] = (ROOT_KEY_ID, ROOT_SECRET), **config: Any) -> Any:
    from alibabacloud_tea_openapi.models import Config
    from alibabacloud_vpc20160428.client import Client

    return Client(
        Config(
            access_key_id=key[0],
            access_key_secret=key[1],
            region_id="cn-hangzhou",
            endpoint=server.endpoint,
            protocol="http",
            **config,
        )
    )


def acs_client(
    server: LiveServer, key: tuple[str, str] = (ROOT_KEY_ID, ROOT_SECRET), region: str = "cn-hangzhou"
) -> Any:
    from aliyunsdkcore.client import AcsClient

    client = AcsClient(key[0], key[1], region, auto_retry=False)
    client.add_endpoint(region, "Ecs", server.endpoint)
    client.add_endpoint(region, "Vpc", server.endpoint)
    return client


@pytest.fixture
def fresh_key(live: LiveServer) -> tuple[str, str]:
    """A new account of its own for one test (quotas and listings start empty)."""
    return live.create_account(f"t-{uuid.uuid4().hex[:12]}")


# ---- parallel runs (pytest-xdist, --dist loadgroup) ----------------------------------------

# Tests that build host networks share the host's nftables and sysctls: they run on one worker,
# in order. Tests that boot VMs are CPU-bound under software emulation: they run on two
# workers at most, split so that each carries about half of the boot time (Debian guests are
# the long ones), and the image builds they share are done by the first to ask.
_VM_GROUPS = {"test_disks_vm.py": "guests-1", "test_qemu_driver.py": "guests-1"}


def _serial_group(item: pytest.Item) -> str | None:
    if item.get_closest_marker("vm") is not None:
        return _VM_GROUPS.get(item.path.name, "guests-2")
    if item.get_closest_marker("net") is not None:
        return "host-network"
    if item.get_closest_marker("browser") is not None:
        return "browser"  # one Chromium and one console server for them all
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group the serial tests, and put them first: xdist hands out work in collection order,
    so the long VM groups start at once and the other tests fill the CPUs around them, rather
    than the VM groups running alone at the end."""
    groups = {}
    for item in items:
        group = _serial_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
        groups[item.nodeid] = group
    rank = {"guests-1": 0, "guests-2": 1, "host-network": 2}
    items.sort(key=lambda item: rank.get(groups[item.nodeid] or "", 3))  # stable: order kept within


# ---- VM boot times, printed at the end of the run (tests/vm/conftest.py measures them) ---------

VM_TIMINGS_KEY = "nubes_vm_timings"
_vm_builds: dict[str, float] = {}
_vm_boots: dict[str, list[float]] = {}


def merge_vm_timings(measured: dict[str, Any]) -> None:
    _vm_builds.update(measured["builds"])
    for label, values in measured["boots"].items():
        _vm_boots.setdefault(label, []).extend(values)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist, on the controller: a worker is done; keep the boot times it measured."""
    measured = getattr(node, "workeroutput", {}).get(VM_TIMINGS_KEY)
    if measured:
        merge_vm_timings(measured)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _vm_builds and not _vm_boots:
        return
    terminalreporter.section("VM boot times")
    for name, seconds in _vm_builds.items():
        terminalreporter.write_line(f"image {name}: build_image took {seconds:.1f} s")
    for label, values in _vm_boots.items():
        shown = ", ".join(f"{v:.2f}" for v in values)
        terminalreporter.write_line(f"{label}: median {statistics.median(values):.2f} s ({shown})")
