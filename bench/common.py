"""What the benchmarks in bench/ share: one copy of each helper the scripts used to carry their own of.

- processes: running a command, waiting for a condition, reading /proc (command line, liveness, CPU
  time), SIGTERM/SIGINT turned into KeyboardInterrupt so that every script's cleanup runs;
- figures: percentiles (nearest rank with censored observations; interpolated), ratios and their
  verdicts, number formatting, machine information for the headers, the JSON of raw figures.

The servers a run starts, their clients and the run's cleanup are in servers.py (`ServerProcess`,
`NubesServer`, `RawClient`, `Bench`).

bench/ is not a package: each script runs as `python bench/<name>.py`, so this file is found next to
it (sys.path[0]).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    proc = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, input=input, check=False
    )
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


def wait_for(
    check: Callable[[], Any], what: str, timeout: float = READY_TIMEOUT, interval: float = 0.05
) -> Any:
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


# ---- options ------------------------------------------------------------------------------------


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="json_path", type=Path, help="also save the raw figures to this file")


def add_images_dir_option(parser: argparse.ArgumentParser, image: str) -> None:
    parser.add_argument(
        "--images-dir",
        type=Path,
        default=Path(os.environ.get("NUBES_IMAGES_DIR") or DEFAULT_IMAGES_DIR),
        help=f"where the {image} image is built (default $NUBES_IMAGES_DIR or {DEFAULT_IMAGES_DIR})",
    )


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


def relative_error(measured: float | None, target: float | None) -> float:
    """measured / target - 1 (-0.04: 4 % short of the target); NaN when either is missing."""
    return ratio(measured, target) - 1


# A full-sized TCP segment on the wire beyond its payload (the MSS Linux reports, timestamps on):
# TCP header 20 + timestamp option 12, IPv4 header 20, Ethernet header 14 (what tc counts; no FCS).
TCP_IP_HEADER_BYTES = 52
ETHERNET_HEADER_BYTES = 14


def wire_bps(goodput_bps: float, mss: int) -> float:
    """The Ethernet-frame rate (what a tc shaper counts) that carries `goodput_bps` of TCP payload
    in full segments of `mss` bytes."""
    return goodput_bps * (mss + TCP_IP_HEADER_BYTES + ETHERNET_HEADER_BYTES) / mss


_TC_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def parse_tc_rate(text: str) -> float:
    """A rate as `tc` prints it (`500Mbit`, `10Kbit`, `96bit`, `1250Kbps` in bytes) in bit/s."""
    match = re.fullmatch(r"([0-9.]+)([kmgt]?)(i?)(bit|bps)", text.strip().lower())
    if not match:
        raise ValueError(f"not a tc rate: {text!r}")
    number, prefix, iec, unit = match.groups()
    scale = 1024 ** ("kmgt".index(prefix) + 1) if iec and prefix else _TC_UNITS[prefix]
    return float(number) * scale * (8 if unit == "bps" else 1)


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
        flags = next(
            (line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), ""
        )
    modules = ""
    with contextlib.suppress(OSError):
        modules = ",".join(
            sorted(
                {
                    line.split()[0]
                    for line in Path("/proc/modules").read_text().splitlines()
                    if line.startswith("kvm")
                }
            )
        )
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "kernel": platform.release(),
        "memory_mib": int(Path("/proc/meminfo").read_text().split()[1]) // 1024,
        "vmx_or_svm": (" vmx" in flags) or (" svm" in flags),
        "dev_kvm": kvm_state(),
        "kvm_modules": modules,
        "qemu": first_line(["qemu-system-x86_64", "--version"]),
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
    }


def nubes_source() -> str:
    """Where the nubes that runs is imported from (the server is started with the same Python), and
    its git commit, `+changes` when the work tree has uncommitted changes there."""
    import nubes

    src = Path(nubes.__file__).resolve().parent
    commit = first_line(["git", "-C", str(src), "rev-parse", "--short", "HEAD"])
    dirty = run(["git", "-C", str(src), "status", "--porcelain", "--", "."], check=False, timeout=20).strip()
    return f"{src} at {commit}{' +changes' if dirty else ''}"


def machine_line(info: dict[str, Any]) -> str:
    """The header's `machine :` line (memory when `info` has it)."""
    memory = f"{info['memory_mib']} MiB, " if "memory_mib" in info else ""
    return (
        f"  machine : {info['nproc']} CPUs ({info['cpu']}), {memory}kernel {info['kernel']}, "
        f"load average {loadavg_text(info['loadavg_start'])}"
    )


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
