"""A VM's directory (state_dir/<instance_id>/): its files, written atomically, and the processes
they name (a pid with another start time is another process)."""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

HANDLE_FILE = "handle.json"
INTENT_FILE = "intent"
PID_FILE = "qemu.pid"
QMP_FILE = "qmp.sock"
VNC_FILE = "vnc.sock"  # the VM's VNC server (a unix socket: reachable from outside its netns)
SERIAL_FILE = "serial.log"
ERR_FILE = "qemu.err"
CMDLINE_FILE = "cmdline"
DISKS_FILE = "disks.json"
LOCK_FILE = "lock"
MEMORY_FILE = "memory.img"  # the memory image of a hibernated VM (see hibernation.py)
PARTIAL_SUFFIX = ".partial"  # the image while it is written; renamed once complete


# ---- processes -------------------------------------------------------------------------------


def process_start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks since boot): a pid with another
    start time is another process. None if the process is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if not fields or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def process_cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [p.decode(errors="replace") for p in f.read().split(b"\0") if p]
    except OSError:
        return []


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@dataclass
class Runtime:
    """disks.json: the system disk, which root port each data disk occupies now, and the NICs the
    VM has now by port ID, in plug order, with their root port (-1: on the root bus)."""

    system: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    port_count: int = 0
    nics: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class VmPaths:
    dir: Path
    qmp_socket: Path
    serial_log: Path
    pidfile: Path
    vnc_socket: Path

    @classmethod
    def under(
        cls, instance_dir: Path, qmp_socket: Path | None = None, vnc_socket: Path | None = None
    ) -> VmPaths:
        return cls(
            instance_dir,
            qmp_socket or instance_dir / QMP_FILE,
            instance_dir / SERIAL_FILE,
            instance_dir / PID_FILE,
            vnc_socket or instance_dir / VNC_FILE,
        )
