"""launch.py's (a) and (b), the apparatus and the nubes side: a watcher of serial logs and of the files
the server writes, a DescribeInstances poller, CPU and memory accounting, one RunInstances trial to the
guests' ready marker, and the cleanup registry of a launch run (`LaunchBench`). The bare-QEMU side is in
bare_qemu.py.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common import GUEST_RAM_MIB, alive, api_error_code, cpu_seconds, process_cmdline
from servers import Bench, NubesServer, RawClient

if TYPE_CHECKING:
    from bare_qemu import MetadataServer

IMAGE_NAME = "tiny"
IMAGE_FAMILY = "nubes:tiny_x64"
MARKER = b"NUBES-READY"
MARKER_LINE = re.compile(rb"NUBES-READY instance-id=(\S*)")
GONE_TIMEOUT = 60.0
RUNNING_GRACE = 30.0  # after the last marker, how long DescribeInstances may take to say Running
WATCH_INTERVAL = 0.005  # file/serial poll of the launch trials
STATUS_INTERVAL = 0.1  # DescribeInstances poll of the launch trials
QUIET_IDLE = 0.85  # before a trial: wait (bounded) until the CPUs are this idle
QUIET_TIMEOUT = 20.0
ID_RE = re.compile(r"^i-[A-Za-z0-9]+$")


# ---- the run: everything it creates, and the cleanup ----------------------------------------------


class LaunchBench(Bench):
    """servers.Bench plus the bare side's QEMUs and metadata servers, which go first."""

    def __init__(self, boot_timeout: float) -> None:
        super().__init__("nubes-bench-launch-", "nbl")
        self.boot_timeout = boot_timeout  # give up on one launch trial after this long
        self.bare: list[subprocess.Popen[bytes]] = []
        self.metadata: list[MetadataServer] = []

    def stop_own(self) -> None:
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


# ---- CPU and memory ------------------------------------------------------------------------------------


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


def memory_sample(
    pids: Sequence[int], mem_available_before_kib: int, count: int
) -> tuple[list[dict[str, float]], float]:
    """qemu_memory() of each QEMU (those still there), and the drop of MemAvailable since
    `mem_available_before_kib` per guest of the `count` launched, in MiB."""
    found = [mem for mem in (qemu_memory(pid, GUEST_RAM_MIB) for pid in pids) if mem is not None]
    return found, (mem_available_before_kib - mem_available_kib()) / 1024 / count


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
    return {
        "rss": totals.get("Rss", float("nan")),
        "pss": totals.get("Pss", float("nan")),
        "ram_configured": float(ram_mib),
        "ram_touched": ram_rss,
        "ram_touched_pss": ram_pss,
    }


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
            self.tails[key] = text[-len(MARKER) :]

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


def nubes_trial(
    bench: LaunchBench, srv: NubesServer, net: dict[str, str], amount: int, label: str
) -> NubesTrial:
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
        deadline = time.monotonic() + bench.boot_timeout
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
        trial.cpu = {
            "machine": busy,
            "qemu": qemu_cpu,
            "bench": own,
            "server": server_cpu,
            "other": busy - qemu_cpu - own - server_cpu,
        }
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
            bench.notes.append(
                f"nubes {label}: {len(missing)} instance(s) without a marker within "
                f"{bench.boot_timeout:.0f} s"
            )
        if poller.errors or watcher.errors:
            bench.notes.append(f"nubes {label}: poll errors {poller.errors + watcher.errors}")
        trial.memory, trial.mem_available_drop_mib = memory_sample(
            [pids[i] for i in ids if i in pids], mem_before, amount
        )
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


def delete_and_wait(bench: LaunchBench, srv: NubesServer, ids: list[str], pids: dict[str, int]) -> None:
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
            bench.notes.append(
                f"QEMU of {i} (pid {pid}) still ran {GONE_TIMEOUT:.0f} s after DeleteInstances; killed"
            )
            os.kill(pid, signal.SIGKILL)


def ensure_capacity(
    bench: LaunchBench, srv: NubesServer, needed_vcpus: int, needed_mib: int, probe: Callable[[], str | None]
) -> dict[str, Any]:
    """If the store's host cannot take `needed`, confirm with a real call (probe() returns the
    error code, None if it worked) and raise the host's overcommit in the store (there is no API
    or CLI for it). Returns what was found and done."""
    [host] = srv.hosts()
    cap_cpu = host["vcpus"] * host["cpu_overcommit"]
    cap_mem = host["memory_mib"] * host["memory_overcommit"]
    info: dict[str, Any] = {
        "host": host,
        "vcpu_slots": cap_cpu,
        "memory_mib_slots": cap_mem,
        "adjusted": False,
    }
    if cap_cpu >= needed_vcpus and cap_mem >= needed_mib:
        return info
    code = probe()
    info["probe_error"] = code
    cpu = max(host["cpu_overcommit"], math.ceil(needed_vcpus / host["vcpus"] * 10) / 10)
    mem = max(host["memory_overcommit"], math.ceil(needed_mib / host["memory_mib"] * 10) / 10)
    srv.set_overcommit(host["id"], cpu, mem)
    info.update(adjusted=True, cpu_overcommit=cpu, memory_overcommit=mem)
    return info
