"""What the monitoring sampler and GetInstanceScreenshot read of a running VM: the QEMU
process's CPU time, its disks' I/O counters and a picture of its display.

* CPU time: utime + stime of the whole QEMU process from /proc/<pid>/stat. Under TCG the vCPU
  threads do nearly all of it (the I/O thread's share is small); the sampler divides it by the
  instance's vCPUs and the time between two samples, as ECS's CPU figure is a share of them.
* Disks: QMP `query-blockstats` of the virtio-blk devices, mapped back to disk IDs by the
  devices' ids (`vd-<disk id>`, or its hash: the runtime file lists the disks).
* Screenshot: QMP `screendump` with `format: png` (QEMU 7.1 and newer, built with libpng);
  else the PPM it writes by default, converted by nubes.drivers.compute.png. The VM has a
  standard VGA device for this (cmdline.py): it shows SeaBIOS and the kernel's VGA console.

None of these takes the VM's lock: a sample must not wait for a slow hot-unplug. QMP serves one
client at a time, so a sample may wait up to the QMP timeout behind another operation; it then
reports the CPU time alone."""

from __future__ import annotations

import os
import tempfile
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path

from nubes.drivers.compute import png
from nubes.drivers.compute.base import BlockCounters, ComputeError, VmNotRunning, VmStats
from nubes.drivers.compute.qemu.blockops import VmAccess
from nubes.drivers.compute.qemu.cmdline import disk_device_id
from nubes.drivers.compute.qemu.qmp import QmpClient, QmpCommandError, QmpError
from nubes.drivers.compute.qemu.vmdir import VmPaths

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process in seconds (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rfind(b")") + 2 :].split()  # the command name may hold spaces
    try:
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of stat(5)
    except (IndexError, ValueError):
        return None


def block_counters(stats: Sequence[object], disk_ids: list[str]) -> dict[str, BlockCounters]:
    """query-blockstats' answer as counters by disk ID (devices of other disks left out)."""
    by_device = {disk_device_id(d): d for d in disk_ids}
    found: dict[str, BlockCounters] = {}
    for entry in stats:
        if not isinstance(entry, dict):
            continue
        qdev = str(entry.get("qdev", ""))  # /machine/peripheral/<id>/virtio-backend
        parts = qdev.split("/")
        device = parts[3] if len(parts) > 3 and parts[2] == "peripheral" else str(entry.get("device", ""))
        disk_id = by_device.get(device)
        s = entry.get("stats")
        if disk_id is None or not isinstance(s, dict):
            continue
        found[disk_id] = BlockCounters(
            read_bytes=int(s.get("rd_bytes", 0)),
            write_bytes=int(s.get("wr_bytes", 0)),
            read_ops=int(s.get("rd_operations", 0)),
            write_ops=int(s.get("wr_operations", 0)),
            read_ns=int(s.get("rd_total_time_ns", 0)),
            write_ns=int(s.get("wr_total_time_ns", 0)),
        )
    return found


class MonitorOperations(VmAccess):
    """The driver's looks at running VMs for monitoring and screenshots, and their VNC server."""

    @abstractmethod
    def paths(self, instance_id: str) -> VmPaths: ...

    def stats(self, instance_id: str) -> VmStats | None:
        if not self._known(instance_id):
            return None
        handle = self._find(instance_id)
        if handle is None:
            return None
        cpu = process_cpu_seconds(handle.pid)
        if cpu is None:
            return None
        runtime = self._load_runtime(instance_id)
        disk_ids = [d for d in [runtime.system, *runtime.ports] if d]
        disks: dict[str, BlockCounters] = {}
        try:
            with self._qmp(handle) as q:
                disks = block_counters(list(q.execute("query-blockstats")), disk_ids)
        except (QmpError, TypeError, ValueError):
            pass  # busy or going: the CPU time alone this time
        return VmStats(cpu_seconds=cpu, started_at=handle.started_at, disks=disks)

    def screenshot(self, instance_id: str, wake_up: bool = False) -> bytes:
        if not self._known(instance_id):
            raise VmNotRunning(f"{instance_id} is not running")
        handle = self._find(instance_id)
        if handle is None:
            raise VmNotRunning(f"{instance_id} is not running")
        with tempfile.TemporaryDirectory(prefix="nubes-shot-") as tmp:
            target = Path(tmp) / "screen"
            try:
                with self._qmp(handle) as q:
                    if wake_up:
                        q.execute("send-key", {"keys": [{"type": "qcode", "data": "shift"}]})
                    return _screendump(q, target)
            except QmpError as exc:
                raise ComputeError(f"{instance_id}: screendump failed: {exc}") from exc

    def vnc_display(self, instance_id: str, password: str) -> str:
        if not self._known(instance_id):
            raise VmNotRunning(f"{instance_id} is not running")
        handle = self._find(instance_id)
        if handle is None:
            raise VmNotRunning(f"{instance_id} is not running")
        socket = self.paths(instance_id).vnc_socket
        if not socket.exists():  # a VM started before nubes gave VMs a VNC server
            raise ComputeError(f"{instance_id}: the VM has no VNC server (restart the instance)")
        try:
            with self._qmp(handle) as q:
                q.execute("set_password", {"protocol": "vnc", "password": password})
                q.execute("expire_password", {"protocol": "vnc", "time": "never"})
        except QmpError as exc:
            raise ComputeError(f"{instance_id}: set_password failed: {exc}") from exc
        return f"unix:{socket}"


def _screendump(q: QmpClient, target: Path) -> bytes:
    try:
        q.execute("screendump", {"filename": str(target), "format": "png"})
        return target.read_bytes()
    except QmpCommandError as exc:
        if "format" not in exc.desc and "png" not in exc.desc.lower():
            raise  # not a QEMU without PNG support (no display, ...)
    q.execute("screendump", {"filename": str(target)})  # PPM
    return png.ppm_to_png(target.read_bytes())
