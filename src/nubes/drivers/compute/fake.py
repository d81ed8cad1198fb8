"""A compute driver without virtual machines: power states kept in memory.

For the emulator (`nubes server --driver fake`), for tests of the layers above and for scale
tests with thousands of instances. Power states move as they do on a real host (start ->
RUNNING, shutdown/destroy -> STOPPED, a crash -> CRASHED, a guest power-off -> STOPPED), the
same calls fail in the same cases as with the qemu driver (hot-plug into a VM that does not
run, detaching the system disk, running out of hot-plug ports), and nothing else happens:
no process, no disk I/O, no console but a few lines that say it is fake.

The VMs live on a `FakeHost`, which outlives driver objects: a new driver on the same host
finds them with `recover()`, as the qemu driver does after an agent restart. A host with a
`state_dir` (the emulator) also keeps each VM in a small JSON file there, as QEMU keeps
running beside a restarted server: a new process finds its VMs as they were, even after
kill -9; after a reboot of the machine (another boot id) the VMs that ran are CRASHED, as
the qemu driver reports a VM that should run and has no process. Operations
can take time (`FakeTimings`, spent through the injected `sleep`, so a test passes a fake
sleeper) and can be made to fail once (`FakeHost.inject_failure`). Test hooks on the host:
`crash`, `guest_power_off`, `pause`, `resume`, `set_acpi` (a guest that ignores the power
button). Hibernation keeps a pretend memory image (a flag of the VM): `restore` continues the
same guest (its `boots` count does not move) and refuses other devices than those saved, as
QEMU refuses a migration stream for other devices. What differs from the qemu driver is declared in `capabilities`: no tap is opened, no
guest reports ready, and a VM changes only through the driver's calls (and those hooks)."""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nubes.drivers import statefile
from nubes.drivers.compute import png
from nubes.drivers.compute.base import (
    BlockCounters,
    Boot,
    ComputeCapabilities,
    ComputeDriver,
    ComputeError,
    DiskAttachment,
    NicAttachment,
    PowerState,
    VmHandle,
    VmNotRunning,
    VmSpec,
    VmStats,
)

CONSOLE_KEPT = 64 * 1024  # bytes of a fake console kept across restarts
FAKE_CONSOLE_BANNER = "[nubes fake compute driver] no virtual machine runs here; this console is simulated"
HOTPLUG_PORTS = 8  # as the qemu driver's default: free hot-plug slots beyond the data disks at start


# The fake VMs' synthetic load: the share of each vCPU busy is one of these, picked by the instance ID.
FAKE_LOADS = (0.05, 0.10, 0.15, 0.20, 0.25)
# Per disk, per second: bytes read, bytes written, read and write operations; 500 us per operation.
FAKE_DISK_RATES = (64 * 1024, 32 * 1024, 8, 4)
FAKE_OP_NS = 500_000


def fake_load(instance_id: str) -> float:
    return FAKE_LOADS[zlib.crc32(instance_id.encode()) % len(FAKE_LOADS)]


def fake_block_counters(elapsed: float) -> BlockCounters:
    rb, wb, ro, wo = (int(rate * elapsed) for rate in FAKE_DISK_RATES)
    return BlockCounters(rb, wb, ro, wo, ro * FAKE_OP_NS, wo * FAKE_OP_NS)


def _fake_screen(width: int = 720, height: int = 400) -> bytes:
    bar = bytes((0x55, 0x55, 0x55)) * width * 16
    return png.encode_rgb(width, height, bar + bytes(3 * width * (height - 16)))


FAKE_SCREEN = _fake_screen()


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
    nics: dict[str, NicAttachment] = field(default_factory=dict)  # port id -> NIC, in plug order
    image: bool = False  # a (pretend) memory image is kept: hibernated, `restore` continues it


class FakeHost:
    """The fake machine: its VMs, their consoles, and one-shot failures to inject."""

    def __init__(self, state_dir: Path | None = None, boot_id: str | None = None) -> None:
        self.vms: dict[str, FakeVm] = {}
        self.consoles: dict[str, bytearray] = {}
        self.lock = threading.RLock()
        self._next_pid = 10_000
        self._failures: list[tuple[str, str | None, Exception]] = []
        self.calls: list[tuple[str, str]] = []  # (operation, instance id), for assertions
        self.vnc_passwords: dict[str, str] = {}  # the password each VM's (absent) VNC server has
        self._state_dir = state_dir
        self._boot_id = boot_id if boot_id is not None else _boot_id()
        if state_dir is not None:
            self._load(state_dir)

    # ---- kept in the state directory -----------------------------------------------------------

    def _load(self, state_dir: Path) -> None:
        for instance_id, record in statefile.read_all(state_dir).items():
            try:
                vm, console = _vm_from(record)
            except (KeyError, TypeError, ValueError):
                continue  # not a VM record of this driver
            if record.get("boot_id") != self._boot_id and vm.power in (PowerState.RUNNING, PowerState.PAUSED):
                vm.power = PowerState.CRASHED  # the machine rebooted under it
                vm.disks.clear()
            self.vms[instance_id] = vm
            self.consoles[instance_id] = bytearray(console)
            self._next_pid = max(self._next_pid, vm.handle.pid)

    def save(self, instance_id: str) -> None:
        """Write the VM's record (or remove it once the VM is gone); call with the lock held."""
        if self._state_dir is None:
            return
        path = self._state_dir / f"{instance_id}.json"
        vm = self.vms.get(instance_id)
        if vm is None:
            statefile.remove(path)
            return
        console = bytes(self.consoles.get(instance_id, b""))[-CONSOLE_KEPT:]
        statefile.write_json(
            path, {**_vm_record(vm), "console": console.decode(errors="replace"), "boot_id": self._boot_id}
        )

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
            self.save(instance_id)

    def guest_power_off(self, instance_id: str) -> None:
        """The guest powers itself off (`poweroff` inside): the driver reports STOPPED."""
        with self.lock:
            self._vm(instance_id).power = PowerState.STOPPED
            self.say(instance_id, "the guest powered off")
            self.save(instance_id)

    def pause(self, instance_id: str) -> None:
        with self.lock:
            self._vm(instance_id).power = PowerState.PAUSED
            self.save(instance_id)

    def resume(self, instance_id: str) -> None:
        with self.lock:
            self._vm(instance_id).power = PowerState.RUNNING
            self.save(instance_id)

    def set_acpi(self, instance_id: str, responsive: bool) -> None:
        with self.lock:
            self._vm(instance_id).acpi = responsive
            self.save(instance_id)


class FakeComputeDriver(ComputeDriver):
    # No guest runs, so none powers off or reports ready; a VM changes only through the driver's
    # calls (the host's test hooks stand in for a guest or a crash) and across a reboot of the host.
    capabilities = ComputeCapabilities(
        name="fake",
        accel="none",
        disk_hotplug=True,
        changes_by_itself=False,
        opens_taps=False,
        reports_ready=False,
        nic_hotplug=True,
    )

    def __init__(
        self,
        host: FakeHost | None = None,
        timings: FakeTimings | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        state_dir: Path | None = None,
    ) -> None:
        # a host of its own keeps its VMs in state_dir when one is given (the emulator)
        self.host = host or FakeHost(state_dir)
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
            handle = VmHandle(
                spec.instance_id,
                self.host.new_pid(),
                d / "qmp.sock",
                d / "serial.log",
                "none",
                self._clock(),
                extra={"fake": "true"},
            )
            previous = self.host.vms.get(spec.instance_id)
            self.host.vms[spec.instance_id] = FakeVm(
                spec,
                handle,
                disks={disk.disk_id: disk for disk in spec.disks[1:]},
                ports=len(spec.disks) - 1 + HOTPLUG_PORTS,
                boots=(previous.boots + 1) if previous else 1,
                nics={nic.port_id: nic for nic in spec.nics},
            )
            self.host.say(spec.instance_id, FAKE_CONSOLE_BANNER)
            self.host.say(
                spec.instance_id,
                f"boot {spec.instance_id}: {spec.vcpus} vCPU, {spec.memory_mib} MiB, "
                f"disks {', '.join(d.disk_id for d in spec.disks)}, "
                f"nics {', '.join(n.mac for n in spec.nics) or 'none'}",
            )
            self.host.say(spec.instance_id, "guest up (simulated)")
            self.host.save(spec.instance_id)
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
                    self.host.save(instance_id)
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
            self.host.save(instance_id)
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
                self.host.save(instance_id)

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
            self.host.save(instance_id)

    def recover(self) -> list[VmHandle]:
        with self.host.lock:
            return [
                vm.handle
                for iid, vm in sorted(self.host.vms.items())
                if vm.power in (PowerState.RUNNING, PowerState.PAUSED)
            ]

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
            self.host.save(instance_id)

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
            self.host.save(instance_id)

    def attach_nic(self, instance_id: str, nic: NicAttachment) -> None:
        self._enter("attach_nic", instance_id)
        with self.host.lock:
            vm = self._running(instance_id)
            if vm is None:
                raise VmNotRunning(f"{instance_id} is not running")
            if nic.port_id in vm.nics:
                return
            vm.nics[nic.port_id] = nic
            self.host.say(instance_id, f"nic {nic.mac} plugged in")
            self.host.save(instance_id)

    def detach_nic(self, instance_id: str, port_id: str) -> None:
        self._enter("detach_nic", instance_id)
        with self.host.lock:
            vm = self._running(instance_id)
            if vm is None or port_id not in vm.nics:
                return
            nic = vm.nics.pop(port_id)
            self.host.say(instance_id, f"nic {nic.mac} unplugged")
            self.host.save(instance_id)

    def nics(self, instance_id: str) -> list[str]:
        with self.host.lock:
            vm = self._running(instance_id)
            return list(vm.nics) if vm is not None else []

    def snapshot_disk(
        self, instance_id: str, disk_id: str, current: Path, overlay: Path, encrypted: bool = False
    ) -> None:
        self._enter("snapshot_disk", instance_id)
        with self.host.lock:
            if self._running(instance_id) is None:
                raise VmNotRunning(f"{instance_id} is not running")
            self.host.say(instance_id, f"disk {disk_id}: new top layer {overlay.name}")
            self.host.save(instance_id)

    def resize_disk(self, instance_id: str, disk_id: str, current: Path, size_bytes: int) -> None:
        self._enter("resize_disk", instance_id)
        with self.host.lock:
            if self._running(instance_id) is None:
                raise VmNotRunning(f"{instance_id} is not running")
            self.host.say(instance_id, f"disk {disk_id} grown to {size_bytes} bytes")
            self.host.save(instance_id)

    def stream_layer(
        self, instance_id: str, layer: Path, base: Path | None, backing_name: str | None, timeout: float
    ) -> None:
        self._enter("stream_layer", instance_id)
        with self.host.lock:
            if self._running(instance_id) is None:
                raise VmNotRunning(f"{instance_id} is not running")
            self.host.say(instance_id, f"layer {layer.name} streamed onto {base.name if base else 'nothing'}")
            self.host.save(instance_id)

    def hibernate(self, instance_id: str, timeout: float) -> None:
        self._enter("hibernate", instance_id)
        with self.host.lock:
            vm = self._running(instance_id)
            if vm is None:
                raise VmNotRunning(f"{instance_id} is not running")
            vm.power, vm.image = PowerState.STOPPED, True
            self.host.say(instance_id, "memory saved; the VM stopped (hibernated)")
            self.host.save(instance_id)

    def hibernated(self, instance_id: str) -> bool:
        with self.host.lock:
            vm = self.host.vms.get(instance_id)
            return vm is not None and vm.image and vm.power not in (PowerState.RUNNING, PowerState.PAUSED)

    def restore(self, spec: VmSpec) -> VmHandle:
        self._enter("restore", spec.instance_id)
        with self.host.lock:
            vm = self._running(spec.instance_id)
            if vm is not None:
                return vm.handle
            vm = self.host.vms.get(spec.instance_id)
            if vm is None or not vm.image:
                raise ComputeError(f"{spec.instance_id}: no memory image to restore")
            saved = ([d.disk_id for d in vm.spec.disks[:1]] + sorted(vm.disks), list(vm.nics))
            wanted = (
                [d.disk_id for d in spec.disks[:1]] + sorted(d.disk_id for d in spec.disks[1:]),
                [n.port_id for n in spec.nics],
            )
            if saved != wanted:  # as QEMU refuses a migration stream for other devices
                raise ComputeError(
                    f"{spec.instance_id}: the devices differ from the saved ones: {saved} != {wanted}"
                )
        self._spend(self.timings.start)
        with self.host.lock:
            # a new process, the same guest: `boots` does not change
            vm.handle = VmHandle(
                spec.instance_id,
                self.host.new_pid(),
                vm.handle.qmp_socket,
                vm.handle.serial_log,
                "none",
                self._clock(),
                extra={"fake": "true"},
            )
            vm.power, vm.image = PowerState.RUNNING, False
            self.host.say(spec.instance_id, "memory restored; the guest continues (simulated)")
            self.host.save(spec.instance_id)
            return vm.handle

    def discard_image(self, instance_id: str) -> None:
        with self.host.lock:
            vm = self.host.vms.get(instance_id)
            if vm is not None and vm.image:
                vm.image = False
                self.host.save(instance_id)

    def cleanup(self, instance_id: str) -> None:
        with self.host.lock:
            vm = self.host.vms.get(instance_id)
            if vm is not None and vm.power in (PowerState.RUNNING, PowerState.PAUSED):
                vm.power = PowerState.STOPPED
            self.host.vms.pop(instance_id, None)
            self.host.consoles.pop(instance_id, None)
            self.host.save(instance_id)

    def stats(self, instance_id: str) -> VmStats | None:
        """Synthetic counters that grow steadily from the VM's start, at rates fixed per instance
        (FAKE_LOADS: a share of each vCPU busy) and per disk (FAKE_DISK_RATES), as functions of the
        driver's clock: deterministic, so tests can check what the API makes of them."""
        with self.host.lock:
            vm = self._running(instance_id)
            if vm is None:
                return None
            elapsed = max(0.0, self._clock() - vm.handle.started_at)
            disks = [d.disk_id for d in vm.spec.disks[:1]] + sorted(vm.disks)
            return VmStats(
                cpu_seconds=elapsed * vm.spec.vcpus * fake_load(instance_id),
                started_at=vm.handle.started_at,
                disks={disk_id: fake_block_counters(elapsed) for disk_id in disks},
            )

    def screenshot(self, instance_id: str, wake_up: bool = False) -> bytes:
        """A PNG the size of a VGA text screen (720x400): black, with a grey bar at the top
        that stands for the console banner."""
        self._enter("screenshot", instance_id)
        with self.host.lock:
            if self._running(instance_id) is None:
                raise VmNotRunning(f"{instance_id} is not running")
        return FAKE_SCREEN

    def vnc_display(self, instance_id: str, password: str) -> str:
        """No VNC server: the address says so (the API's proxy serves a fake screen for it)."""
        self._enter("vnc_display", instance_id)
        with self.host.lock:
            if self._running(instance_id) is None:
                raise VmNotRunning(f"{instance_id} is not running")
            self.host.vnc_passwords[instance_id] = password
        return f"fake:{instance_id}"

    # ---- for tests ----------------------------------------------------------------------------

    def attached_disks(self, instance_id: str) -> list[str]:
        """The data disks the (fake) guest sees now."""
        with self.host.lock:
            vm = self._running(instance_id)
            return sorted(vm.disks) if vm is not None else []


# ---- VM records (JSON) -------------------------------------------------------------------------------


def _boot_id() -> str:
    """This boot of the machine: VMs saved under another one did not survive a reboot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def _disk_record(disk: DiskAttachment) -> dict[str, Any]:
    return {
        "disk_id": disk.disk_id,
        "path": str(disk.path),
        "read_only": disk.read_only,
        "iops": disk.iops,
        "bps": disk.bps,
    }


def _disk_from(record: dict[str, Any]) -> DiskAttachment:
    return DiskAttachment(
        str(record["disk_id"]),
        Path(record["path"]),
        bool(record["read_only"]),
        int(record["iops"]),
        int(record["bps"]),
    )


def _nic_record(nic: NicAttachment) -> dict[str, str]:
    return {"port_id": nic.port_id, "mac": nic.mac, "tap": nic.tap}


def _nic_from(record: dict[str, Any]) -> NicAttachment:
    return NicAttachment(str(record["port_id"]), str(record["mac"]), str(record["tap"]))


def _vm_record(vm: FakeVm) -> dict[str, Any]:
    spec, handle = vm.spec, vm.handle
    return {
        "spec": {
            "instance_id": spec.instance_id,
            "vcpus": spec.vcpus,
            "memory_mib": spec.memory_mib,
            "boot": {
                "kernel": str(spec.boot.kernel),
                "initrd": str(spec.boot.initrd),
                "cmdline": spec.boot.cmdline,
            },
            "disks": [_disk_record(d) for d in spec.disks],
            "nics": [_nic_record(n) for n in spec.nics],
            "netns": spec.netns,
            "hostname": spec.hostname,
        },
        "handle": {
            "pid": handle.pid,
            "qmp_socket": str(handle.qmp_socket),
            "serial_log": str(handle.serial_log),
            "accel": handle.accel,
            "started_at": handle.started_at,
            "extra": handle.extra,
        },
        "power": vm.power.value,
        "disks": [_disk_record(d) for d in vm.disks.values()],
        "ports": vm.ports,
        "acpi": vm.acpi,
        "boots": vm.boots,
        "nics": [_nic_record(n) for n in vm.nics.values()],
        "image": vm.image,
    }


def _vm_from(record: dict[str, Any]) -> tuple[FakeVm, bytes]:
    s, h = record["spec"], record["handle"]
    spec = VmSpec(
        instance_id=str(s["instance_id"]),
        vcpus=int(s["vcpus"]),
        memory_mib=int(s["memory_mib"]),
        boot=Boot(Path(s["boot"]["kernel"]), Path(s["boot"]["initrd"]), str(s["boot"]["cmdline"])),
        disks=tuple(_disk_from(d) for d in s["disks"]),
        nics=tuple(_nic_from(n) for n in s["nics"]),
        netns=s["netns"],
        hostname=str(s["hostname"]),
    )
    handle = VmHandle(
        spec.instance_id,
        int(h["pid"]),
        Path(h["qmp_socket"]),
        Path(h["serial_log"]),
        str(h["accel"]),
        float(h["started_at"]),
        {str(k): str(v) for k, v in dict(h["extra"]).items()},
    )
    disks = {d.disk_id: d for d in (_disk_from(r) for r in record["disks"])}
    vm = FakeVm(
        spec,
        handle,
        PowerState(record["power"]),
        disks,
        int(record["ports"]),
        bool(record["acpi"]),
        int(record["boots"]),
        # (a record written before NICs were hot-pluggable: the VM has the NICs it started with)
        {n.port_id: n for n in (_nic_from(r) for r in record.get("nics", s["nics"]))},
        bool(record.get("image", False)),
    )
    return vm, str(record.get("console", "")).encode()
