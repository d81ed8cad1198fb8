"""A compute driver without virtual machines: power states kept in memory.

For the emulator (`nubes server --driver fake`), for tests of the layers above and for scale
tests with thousands of instances. Power states move as they do on a real host (start ->
RUNNING, shutdown/destroy -> STOPPED, a crash -> CRASHED, a guest power-off -> STOPPED), the
same calls fail in the same cases as with the qemu driver (hot-plug into a VM that does not
run, detaching the system disk, running out of hot-plug ports), and nothing else happens:
no process, no disk I/O, no console but a few lines that say it is fake.

The VMs live on a `FakeHost`, which outlives driver objects: a new driver on the same host
finds them with `recover()`, as the qemu driver does after an agent restart. Operations
can take time (`FakeTimings`, spent through the injected `sleep`, so a test passes a fake
sleeper) and can be made to fail once (`FakeHost.inject_failure`). Test hooks on the host:
`crash`, `guest_power_off`, `pause`, `resume`, `set_acpi` (a guest that ignores the power
button)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nubes.drivers.compute.base import (
    ComputeCapabilities,
    ComputeDriver,
    ComputeError,
    DiskAttachment,
    PowerState,
    VmHandle,
    VmNotRunning,
    VmSpec,
)

FAKE_CONSOLE_BANNER = "[nubes fake compute driver] no virtual machine runs here; this console is simulated"
HOTPLUG_PORTS = 8  # as the qemu driver's default: free hot-plug slots beyond the data disks at start


@dataclass(frozen=True)
class FakeTimings:
    """Seconds each operation takes (spent through the driver's `sleep`). A shutdown whose
    `shutdown` time exceeds the caller's timeout returns False, as a slow guest would."""

    start: float = 0.0
    shutdown: float = 0.0
    destroy: float = 0.0
    reboot: float = 0.0
    attach: float = 0.0
    detach: float = 0.0


@dataclass
class FakeVm:
    spec: VmSpec
    handle: VmHandle
    power: PowerState = PowerState.RUNNING
    disks: dict[str, DiskAttachment] = field(default_factory=dict)  # data disks attached now
    ports: int = HOTPLUG_PORTS
    acpi: bool = True  # the guest reacts to the ACPI power button
    boots: int = 1


class FakeHost:
    """The fake machine: its VMs, their consoles, and one-shot failures to inject."""

    def __init__(self) -> None:
        self.vms: dict[str, FakeVm] = {}
        self.consoles: dict[str, bytearray] = {}
        self.lock = threading.RLock()
        self._next_pid = 10_000
        self._failures: list[tuple[str, str | None, Exception]] = []
        self.calls: list[tuple[str, str]] = []  # (operation, instance id), for assertions

    def new_pid(self) -> int:
        with self.lock:
            self._next_pid += 1
            return self._next_pid

    def inject_failure(self, operation: str, error: Exception, instance_id: str | None = None) -> None:
        """The next `operation` ("start", "shutdown", ...) on `instance_id` (or on any VM) raises `error`."""
        with self.lock:
            self._failures.append((operation, instance_id, error))

    def take_failure(self, operation: str, instance_id: str) -> Exception | None:
        with self.lock:
            for i, (op, iid, error) in enumerate(self._failures):
                if op == operation and iid in (None, instance_id):
                    del self._failures[i]
                    return error
        return None

    def say(self, instance_id: str, line: str) -> None:
        with self.lock:
            self.consoles.setdefault(instance_id, bytearray()).extend(f"[fake] {line}\n".encode())

    # ---- things that happen to a VM without the driver being asked -------------------------

    def _vm(self, instance_id: str) -> FakeVm:
        vm = self.vms.get(instance_id)
        if vm is None or vm.power not in (PowerState.RUNNING, PowerState.PAUSED):
            raise VmNotRunning(f"{instance_id} is not running")
        return vm

    def crash(self, instance_id: str) -> None:
        """The VM process dies (like kill -9 of QEMU): the driver reports CRASHED."""
        with self.lock:
            self._vm(instance_id).power = PowerState.CRASHED
            self.say(instance_id, "the VM process died")

    def guest_power_off(self, instance_id: str) -> None:
        """The guest powers itself off (`poweroff` inside): the driver reports STOPPED."""
        with self.lock:
            self._vm(instance_id).power = PowerState.STOPPED
            self.say(instance_id, "the guest powered off")

    def pause(self, instance_id: str) -> None:
        with self.lock:
            self._vm(instance_id).power = PowerState.PAUSED

    def resume(self, instance_id: str) -> None:
        with self.lock:
            self._vm(instance_id).power = PowerState.RUNNING

    def set_acpi(self, instance_id: str, responsive: bool) -> None:
        with self.lock:
            self._vm(instance_id).acpi = responsive


class FakeComputeDriver(ComputeDriver):
    capabilities = ComputeCapabilities(real_vms=False, accel="none", disk_hotplug=True)

    def __init__(self, host: FakeHost | None = None, timings: FakeTimings | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
                 state_dir: Path | None = None) -> None:
        self.host = host or FakeHost()
        self.timings = timings or FakeTimings()
        self._sleep = sleep
        self._clock = clock
        self._state_dir = state_dir or Path("/nonexistent/nubes-fake")

    def _spend(self, seconds: float) -> None:
        if seconds > 0:
            self._sleep(seconds)

    def _enter(self, operation: str, instance_id: str) -> None:
        self.host.calls.append((operation, instance_id))
        error = self.host.take_failure(operation, instance_id)
        if error is not None:
            raise error

    def _running(self, instance_id: str) -> FakeVm | None:
        vm = self.host.vms.get(instance_id)
        return vm if vm is not None and vm.power in (PowerState.RUNNING, PowerState.PAUSED) else None

    # ---- the contract ------------------------------------------------------------------------

    def start(self, spec: VmSpec) -> VmHandle:
        self._enter("start", spec.instance_id)
        with self.host.lock:
            vm = self._running(spec.instance_id)
            if vm is not None:
                return vm.handle
        if not spec.disks:
            raise ComputeError(f"{spec.instance_id}: a VM needs a system disk")
        self._spend(self.timings.start)
        with self.host.lock:
            vm = self._running(spec.instance_id)
            if vm is not None:  # another thread started it meanwhile
                return vm.handle
            d = self._state_dir / spec.instance_id
            handle = VmHandle(spec.instance_id, self.host.new_pid(), d / "qmp.sock", d / "serial.log", "none",
                              self._clock(), extra={"fake": "true"})
            previous = self.host.vms.get(spec.instance_id)
            self.host.vms[spec.instance_id] = FakeVm(
                spec, handle, disks={disk.disk_id: disk for disk in spec.disks[1:]},
                ports=len(spec.disks) - 1 + HOTPLUG_PORTS, boots=(previous.boots + 1) if previous else 1,
            )
            self.host.say(spec.instance_id, FAKE_CONSOLE_BANNER)
            self.host.say(spec.instance_id, f"boot {spec.instance_id}: {spec.vcpus} vCPU, {spec.memory_mib} MiB, "
                                            f"disks {', '.join(d.disk_id for d in spec.disks)}, "
                                            f"nics {', '.join(n.mac for n in spec.nics) or 'none'}")
            self.host.say(spec.instance_id, "guest up (simulated)")
            return handle

    def state(self, instance_id: str) -> PowerState:
        with self.host.lock:
            vm = self.host.vms.get(instance_id)
            return PowerState.STOPPED if vm is None else vm.power

    def shutdown(self, instance_id: str, timeout: float) -> bool:
        self._enter("shutdown", instance_id)
        with self.host.lock:
            vm = self._running(instance_id)
            if vm is None:
                if instance_id in self.host.vms:
                    self.host.vms[instance_id].power = PowerState.STOPPED
                return True
            acpi = vm.acpi and vm.power == PowerState.RUNNING
        if not acpi or self.timings.shutdown > timeout:
            self._spend(timeout)
            return False
        self._spend(self.timings.shutdown)
        with self.host.lock:
            vm.power = PowerState.STOPPED
            vm.disks.clear()
            self.host.say(instance_id, "ACPI power button: the guest powered off")
        return True

    def destroy(self, instance_id: str) -> None:
        self._enter("destroy", instance_id)
        if self._running(instance_id) is not None:
            self._spend(self.timings.destroy)
        with self.host.lock:
            vm = self.host.vms.get(instance_id)
            if vm is not None:
                if vm.power in (PowerState.RUNNING, PowerState.PAUSED):
                    self.host.say(instance_id, "destroyed (power cut)")
                vm.power = PowerState.STOPPED
                vm.disks.clear()

    def reboot(self, instance_id: str, force: bool) -> None:
        self._enter("reboot", instance_id)
        with self.host.lock:
            vm = self._running(instance_id)
            if vm is None:
                raise VmNotRunning(f"{instance_id} is not running")
            if not force and not vm.acpi:
                raise ComputeError(f"{instance_id}: the guest did not power off")
        self._spend(self.timings.reboot)
        with self.host.lock:
            vm.power = PowerState.RUNNING
            vm.boots += 1
            self.host.say(instance_id, "hard reset" if force else "ACPI power off, reset")
            self.host.say(instance_id, "guest up (simulated)")

    def recover(self) -> list[VmHandle]:
        with self.host.lock:
            return [vm.handle for iid, vm in sorted(self.host.vms.items())
                    if vm.power in (PowerState.RUNNING, PowerState.PAUSED)]

    def console_output(self, instance_id: str, max_bytes: int = 64 * 1024) -> bytes:
        with self.host.lock:
            data = self.host.consoles.get(instance_id, bytearray())
            return bytes(data[-max_bytes:]) if max_bytes > 0 else b""

    def attach_disk(self, instance_id: str, disk: DiskAttachment) -> None:
        self._enter("attach_disk", instance_id)
        with self.host.lock:
            vm = self._running(instance_id)
            if vm is None:
                raise VmNotRunning(f"{instance_id} is not running")
            if disk.disk_id == vm.spec.disks[0].disk_id or disk.disk_id in vm.disks:
                return
            if len(vm.disks) >= vm.ports:
                raise ComputeError(f"{instance_id}: no free hot-plug port (of {vm.ports})")
        self._spend(self.timings.attach)
        with self.host.lock:
            vm.disks[disk.disk_id] = disk
            self.host.say(instance_id, f"disk {disk.disk_id} plugged in")

    def detach_disk(self, instance_id: str, disk_id: str) -> None:
        self._enter("detach_disk", instance_id)
        with self.host.lock:
            vm = self._running(instance_id)
            if vm is None:
                return
            if disk_id == vm.spec.disks[0].disk_id:
                raise ComputeError(f"{instance_id}: {disk_id} is the system disk")
            if disk_id not in vm.disks:
                return
        self._spend(self.timings.detach)
        with self.host.lock:
            vm.disks.pop(disk_id, None)
            self.host.say(instance_id, f"disk {disk_id} unplugged")

    def snapshot_disk(self, instance_id: str, disk_id: str, current: Path, overlay: Path) -> None:
        self._enter("snapshot_disk", instance_id)
        with self.host.lock:
            if self._running(instance_id) is None:
                raise VmNotRunning(f"{instance_id} is not running")
            self.host.say(instance_id, f"disk {disk_id}: new top layer {overlay.name}")

    def resize_disk(self, instance_id: str, disk_id: str, current: Path, size_bytes: int) -> None:
        self._enter("resize_disk", instance_id)
        with self.host.lock:
            if self._running(instance_id) is None:
                raise VmNotRunning(f"{instance_id} is not running")
            self.host.say(instance_id, f"disk {disk_id} grown to {size_bytes} bytes")

    def stream_layer(self, instance_id: str, layer: Path, base: Path | None, backing_name: str | None,
                     timeout: float) -> None:
        self._enter("stream_layer", instance_id)
        with self.host.lock:
            if self._running(instance_id) is None:
                raise VmNotRunning(f"{instance_id} is not running")
            self.host.say(instance_id, f"layer {layer.name} streamed onto {base.name if base else 'nothing'}")

    def cleanup(self, instance_id: str) -> None:
        with self.host.lock:
            vm = self.host.vms.get(instance_id)
            if vm is not None and vm.power in (PowerState.RUNNING, PowerState.PAUSED):
                vm.power = PowerState.STOPPED
            self.host.vms.pop(instance_id, None)
            self.host.consoles.pop(instance_id, None)

    # ---- for tests ----------------------------------------------------------------------------

    def attached_disks(self, instance_id: str) -> list[str]:
        """The data disks the (fake) guest sees now."""
        with self.host.lock:
            vm = self._running(instance_id)
            return sorted(vm.disks) if vm is not None else []
