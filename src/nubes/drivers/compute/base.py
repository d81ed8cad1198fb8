"""The compute driver contract: run, inspect and stop one virtual machine per instance.

The agent decides what should run; the driver makes it so and reports what is. Every
method is idempotent: starting a VM that runs returns its handle, destroying one that is
gone succeeds. A VM outlives the agent: after an agent restart `recover()` finds the VMs
that still run (from their persisted handles) instead of starting second copies.

What differs between drivers is declared in `capabilities` (a `ComputeCapabilities`); the
agent reads those and never asks which driver it has. A fake driver keeps every other part
of this contract: the same calls succeed and fail in the same cases."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path


class PowerState(enum.Enum):
    RUNNING = "running"  # the VM process runs and the guest CPU is not paused
    PAUSED = "paused"
    STOPPED = "stopped"  # no VM process (never started, shut down, or destroyed)
    CRASHED = "crashed"  # the process died without a shutdown being asked for


@dataclass(frozen=True)
class Boot:
    """Direct kernel boot: nubes' images carry their kernel and initramfs beside the disk."""

    kernel: Path  # an uncompressed vmlinux with a PVH note boots fastest under TCG
    initrd: Path
    cmdline: str


@dataclass(frozen=True)
class DiskAttachment:
    disk_id: str  # also the virtio serial, so the guest finds it in /dev/disk/by-id
    path: Path  # qcow2
    read_only: bool = False
    # Block throttling (QEMU throttle group); 0 = unlimited. The storage issue fills these in.
    iops: int = 0
    bps: int = 0
    # An encrypted disk: the key of its LUKS layers (handed to QEMU as a secret object through a
    # file or QMP, never on a command line) and those layers' files, top first (`path` first);
    # the layers under them are not encrypted and QEMU opens them by the names in the headers.
    key: str = field(default="", repr=False)
    encrypted_layers: tuple[Path, ...] = ()


@dataclass(frozen=True)
class NicAttachment:
    port_id: str
    mac: str
    tap: str  # a persistent tap in `netns`, made by the network driver


@dataclass(frozen=True)
class VmSpec:
    instance_id: str
    vcpus: int
    memory_mib: int
    boot: Boot
    disks: tuple[DiskAttachment, ...]  # the first is the system disk
    nics: tuple[NicAttachment, ...] = ()
    netns: str | None = None  # the VPC namespace the VM process runs in (its taps live there)
    hostname: str = ""


@dataclass
class VmHandle:
    """What the agent persists per running VM to find it again after a restart."""

    instance_id: str
    pid: int
    qmp_socket: Path
    serial_log: Path
    accel: str  # "kvm" | "tcg"
    started_at: float  # time.time() when the process started
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BlockCounters:
    """One disk's I/O since its VM started (QEMU's query-blockstats): monotonic counters."""

    read_bytes: int = 0
    write_bytes: int = 0
    read_ops: int = 0
    write_ops: int = 0
    read_ns: int = 0  # time the read operations took, summed
    write_ns: int = 0


@dataclass(frozen=True)
class VmStats:
    """A running VM's counters at one moment, for the monitoring sampler (nubes.agent.monitor):
    the CPU time its process has used since it started (all vCPUs together, in seconds), and
    each disk's I/O by disk ID. Monotonic while the same VM runs; they start again from zero
    with a new VM process (the sampler sees `started_at` change)."""

    cpu_seconds: float
    started_at: float  # the VmHandle's: tells one VM process from the next
    disks: dict[str, BlockCounters] = field(default_factory=dict)


# The line a guest prints on its serial console once it is up (nubes' images print
# `NUBES-READY instance-id=<id>` after reading the metadata service): see `reports_ready`.
READY_MARKER = "NUBES-READY"


@dataclass(frozen=True)
class ComputeCapabilities:
    """What differs between compute drivers, for the agent to read instead of asking which
    driver it has."""

    name: str  # recorded as the host's compute driver in the store: "qemu", "fake"
    accel: str  # the accelerator this host uses: "kvm" or "tcg" ("none": no VM runs)
    disk_hotplug: bool  # attach_disk/detach_disk work on a running VM
    # A running VM can change by itself (its guest powers off, its process dies): the agent polls
    # `state` of every VM that should run. False: a VM changes only through this driver's calls,
    # and across a reboot of the host (which the agent's first pass after its start looks at).
    changes_by_itself: bool
    # `start` opens the taps of the VM's NICs by name (`NicAttachment.tap`), so the network
    # driver must have made them before. False: the taps are only recorded.
    opens_taps: bool
    # The guest prints READY_MARKER on the serial console once it is up, which is when the agent
    # calls it Running. False: there is no guest to wait for; it is up as soon as the VM runs.
    reports_ready: bool
    # attach_nic/detach_nic work on a running VM. False: a NIC attached to a running instance
    # appears at its next start (and one detached stays in the VM until it stops).
    nic_hotplug: bool = False


class ComputeError(RuntimeError):
    """A driver operation failed (QEMU refused to start, the guest did not release a disk, ...)."""


class VmNotRunning(ComputeError):
    """The operation needs a running VM (attach a disk, reboot) and there is none."""


class ComputeDriver(ABC):
    capabilities: ComputeCapabilities

    @abstractmethod
    def start(self, spec: VmSpec) -> VmHandle:
        """Start the VM (or return the handle of the one already running for this instance)."""

    @abstractmethod
    def state(self, instance_id: str) -> PowerState:
        """The VM's power state as the host sees it now."""

    @abstractmethod
    def shutdown(self, instance_id: str, timeout: float) -> bool:
        """Ask the guest to power off (ACPI); True if it did within `timeout`. Does not force."""

    @abstractmethod
    def destroy(self, instance_id: str) -> None:
        """Stop the VM at once (like pulling the plug); succeeds if it is not running."""

    @abstractmethod
    def reboot(self, instance_id: str, force: bool) -> None:
        """Reboot: ACPI reboot request (guest-driven), or a hard reset when `force`."""

    @abstractmethod
    def recover(self) -> list[VmHandle]:
        """The VMs of this driver that still run (e.g. after an agent restart)."""

    @abstractmethod
    def console_output(self, instance_id: str, max_bytes: int = 64 * 1024) -> bytes:
        """The tail of the VM's serial console log (the last `max_bytes`; b"" when there is
        none). It outlives the VM's process until `cleanup`. Only the host's agent reads it: it
        records the tail in the store, where the API reads it."""

    @abstractmethod
    def attach_disk(self, instance_id: str, disk: DiskAttachment) -> None:
        """Hot-plug a disk into a running VM."""

    @abstractmethod
    def detach_disk(self, instance_id: str, disk_id: str) -> None:
        """Hot-unplug a disk from a running VM."""

    @abstractmethod
    def attach_nic(self, instance_id: str, nic: NicAttachment) -> None:
        """Hot-plug a NIC into a running VM (its tap, when `opens_taps`, made before by the
        network driver); the VM records it, so `nics` still lists it after an agent restart.
        Attached already: succeeds. VmNotRunning when no VM runs."""

    @abstractmethod
    def detach_nic(self, instance_id: str, port_id: str) -> None:
        """Hot-unplug a NIC from a running VM; returns once the guest has released it (raises
        ComputeError when it did not in time: ask again). Not attached, or no VM: succeeds."""

    @abstractmethod
    def nics(self, instance_id: str) -> list[str]:
        """The port IDs of the NICs the running VM has now (from its start and hot-plugged), in
        the order they were plugged in; [] when no VM runs."""

    @abstractmethod
    def snapshot_disk(
        self, instance_id: str, disk_id: str, current: Path, overlay: Path, encrypted: bool = False
    ) -> None:
        """Make the prepared, empty qcow2 `overlay` (backed by `current`) the disk's new top in
        the running VM: from now on writes go to it and `current` stays as it was (a crash-
        consistent snapshot, in constant time). `encrypted`: the overlay is encrypted with the
        disk's key, which the VM has had since the disk was attached. Done already: succeeds."""

    @abstractmethod
    def resize_disk(self, instance_id: str, disk_id: str, current: Path, size_bytes: int) -> None:
        """Grow a disk of a running VM (its top layer is `current`); the guest sees the new size."""

    @abstractmethod
    def stream_layer(
        self, instance_id: str, layer: Path, base: Path | None, backing_name: str | None, timeout: float
    ) -> None:
        """In a running VM, copy into `layer` (the top or a layer under it) the data of the layers
        between it and `base` (None: all below), then make `base` its backing, written into its
        header as `backing_name`. Returns once done (a job already running is waited for). Only
        the layer's file changes: a storage driver whose layers are not files
        (`StorageCapabilities.layers_are_files`) must be told by the caller."""

    # ---- hibernation: the VM's memory and device state saved, and the VM continued from it ----

    @abstractmethod
    def hibernate(self, instance_id: str, timeout: float) -> None:
        """Save the running VM's memory and device state to its memory image (a file the driver
        keeps with the VM's) and stop its process. All or nothing: on return the image is
        complete and no VM runs; on ComputeError (the save failed or took over `timeout`) there
        is no image and the VM runs on as before. VmNotRunning when no VM runs. The VM's disks
        must not change until `restore` (the caller refuses such changes)."""

    @abstractmethod
    def hibernated(self, instance_id: str) -> bool:
        """Whether a complete memory image of the instance is kept (its next `restore` continues
        it). First settles what a crash of a caller left half done: a save cut short leaves
        the VM running as before if its process lives (the partial image is removed) or stopped
        if it died; a save that completed counts even if the process was not stopped yet (it
        is, now); a restore cut short keeps the image until the restored VM runs."""

    @abstractmethod
    def restore(self, spec: VmSpec) -> VmHandle:
        """Start the VM from its memory image: the guest continues where it was saved (processes,
        memory, uptime). `spec` must have the devices it had then (the same disks, NICs, memory
        and vCPUs). Returns once the guest runs; the image is removed then. A VM running
        already: its handle. ComputeError when there is no image or it could not be loaded
        (the image stays: `discard_image` it to boot cold instead)."""

    @abstractmethod
    def discard_image(self, instance_id: str) -> None:
        """Remove the instance's memory image (it boots cold next). None kept: succeeds."""

    @abstractmethod
    def cleanup(self, instance_id: str) -> None:
        """Remove every file the driver keeps for a (stopped) VM: sockets, logs, handles, its
        memory image."""

    @abstractmethod
    def stats(self, instance_id: str) -> VmStats | None:
        """The running VM's CPU time and disk counters now (see VmStats); None when no VM runs.
        Cheap enough to call every minute for every VM of the host; never blocks on the guest."""

    @abstractmethod
    def screenshot(self, instance_id: str, wake_up: bool = False) -> bytes:
        """A PNG of the VM's display as it is now (QEMU: screendump of its display device; a
        guest that writes only to its serial console shows a blank screen, still a valid PNG).
        `wake_up`: first send a key press, as a user would to end a screen saver. VmNotRunning
        when no VM runs."""

    @abstractmethod
    def vnc_display(self, instance_id: str, password: str) -> str:
        """Give the running VM's VNC server `password` (at most 8 characters: VNC's DES key;
        it replaces the one before, for the next client) and return where that server listens:
        "unix:<path>" or "<host>:<port>" (a fake driver answers "fake:<instance id>": there is
        no server). VmNotRunning when no VM runs; ComputeError when it has no VNC server."""
