"""The pure part of the qemu driver: QEMU ids and names of a VM's pieces, and its command line
rendered from a VmSpec (unit-tested on its output)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nubes.drivers.compute.base import (
    DiskAttachment,
    NicAttachment,
    VmSpec,
)
from nubes.drivers.compute.qemu import accel as accel_mod
from nubes.drivers.compute.qemu.vmdir import Runtime, VmPaths

log = logging.getLogger(__name__)

QEMU_BINARY = "qemu-system-x86_64"
DEFAULT_TB_SIZE_MIB = 64
DEFAULT_HOTPLUG_PORTS = 8
SERIAL_MAX = 20  # VIRTIO_BLK_ID_BYTES
UNIX_PATH_MAX = 107
INSTANCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


# ---- the pure part: names and the command line ------------------------------------------------


def disk_serial(disk_id: str) -> str:
    """The virtio-blk serial of a disk: its id without the "d-" prefix (as ECS guests see it in
    /dev/disk/by-id/virtio-<serial>), cut to the 20 bytes virtio-blk carries."""
    return disk_id.removeprefix("d-")[:SERIAL_MAX]


def qemu_id(prefix: str, value: str) -> str:
    """A QEMU id / block node name for `value`: a letter first, then [A-Za-z0-9_.-], at most 31
    characters (node names are limited to 31); long or odd values become a hash."""
    clean = re.sub(r"[^A-Za-z0-9_.-]", "_", value)
    name = f"{prefix}-{clean}"
    if len(name) > 31 or clean != value:
        name = f"{prefix}-{hashlib.sha256(value.encode()).hexdigest()[:16]}"
    return name


def disk_device_id(disk_id: str) -> str:
    return qemu_id("vd", disk_id)


def disk_node(disk_id: str) -> str:
    """The top block node of a disk (what the virtio-blk device's `drive` names)."""
    return qemu_id("disk", disk_id)


def layer_node(path: Path) -> str:
    """The qcow2 node of a disk layer file (a snapshot puts a new layer node on top)."""
    return qemu_id("q", path.stem)


def throttle_group_id(disk_id: str) -> str:
    return qemu_id("tg", disk_id)


def secret_id(disk_id: str) -> str:
    """The secret object holding an encrypted disk's key (one per disk: it goes with the disk)."""
    return qemu_id("sec", disk_id)


def secret_file(paths: VmPaths, disk_id: str) -> Path:
    """Where the key of an encrypted disk waits for QEMU to read it at start (then removed)."""
    return paths.dir / "keys" / secret_id(disk_id)


def root_port_id(index: int) -> str:
    return f"rp{index}"


def _opt(value: str | Path) -> str:
    """A value inside QEMU's key=value,... option syntax: commas are doubled."""
    return str(value).replace(",", ",,")


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=False)


@dataclass(frozen=True)
class RenderOptions:
    qemu_binary: str = QEMU_BINARY
    machine: str = "q35"  # "q35" (disk hot-plug) | "microvm" (no hot-plug; measured ~5 % faster boot)
    tb_size_mib: int = DEFAULT_TB_SIZE_MIB  # TCG translation cache; 0 = QEMU's default
    hotplug_ports: int = DEFAULT_HOTPLUG_PORTS  # free pcie-root-ports beyond the data disks (q35)
    host_khz: int = 0  # microvm only: tsc_early_khz (a TCG microvm guest can hang calibrating the TSC)
    daemonize: bool = True
    extra_args: tuple[str, ...] = ()


def _encrypt(disk: DiskAttachment) -> dict[str, str]:
    return {"format": "luks", "key-secret": secret_id(disk.disk_id)}


def _encrypted_backing(disk: DiskAttachment, layers: tuple[Path, ...]) -> dict[str, Any]:
    """The encrypted layers under the top, each with the disk's key: QEMU would open them by
    their header's names, with no key. Unnamed nodes: two disks may share such a layer."""
    node: dict[str, Any] = {
        "driver": "qcow2",
        "read-only": True,
        "file": {"driver": "file", "filename": str(layers[0]), "read-only": True, "aio": "threads"},
        "encrypt": _encrypt(disk),
    }
    if len(layers) > 1:
        node["backing"] = _encrypted_backing(disk, layers[1:])
    return node


def blockdev(disk: DiskAttachment) -> dict[str, Any]:
    """The -blockdev / blockdev-add tree of a disk: file -> qcow2 [-> throttle filter]."""
    qcow2: dict[str, Any] = {
        "driver": "qcow2",
        "node-name": layer_node(disk.path),
        "read-only": disk.read_only,
        "discard": "unmap",
        "file": {
            "driver": "file",
            "node-name": qemu_id("f", disk.disk_id),
            "filename": str(disk.path),
            "read-only": disk.read_only,
            "aio": "threads",
        },
    }
    if disk.key:
        qcow2["encrypt"] = _encrypt(disk)
        if len(disk.encrypted_layers) > 1:
            qcow2["backing"] = _encrypted_backing(disk, disk.encrypted_layers[1:])
    if not (disk.iops or disk.bps):
        qcow2["node-name"] = disk_node(disk.disk_id)
        return qcow2
    return {
        "driver": "throttle",
        "node-name": disk_node(disk.disk_id),
        "throttle-group": throttle_group_id(disk.disk_id),
        "read-only": disk.read_only,
        "file": qcow2,
    }


def throttle_group(disk: DiskAttachment) -> dict[str, Any] | None:
    """The throttle-group object of a disk with limits (None when unlimited)."""
    limits: dict[str, int] = {}
    if disk.iops:
        limits["iops-total"] = disk.iops
    if disk.bps:
        limits["bps-total"] = disk.bps
    if not limits:
        return None
    return {"qom-type": "throttle-group", "id": throttle_group_id(disk.disk_id), "limits": limits}


def disk_device(disk: DiskAttachment, bus: str | None) -> dict[str, Any]:
    dev: dict[str, Any] = {
        "driver": "virtio-blk-pci",
        "id": disk_device_id(disk.disk_id),
        "drive": disk_node(disk.disk_id),
        "serial": disk_serial(disk.disk_id),
    }
    if bus:
        dev["bus"] = bus
    return dev


def nic_device_id(port_id: str) -> str:
    return qemu_id("nic", port_id)


def netdev_id(port_id: str) -> str:
    return qemu_id("net", port_id)


def nic_netdev(nic: NicAttachment) -> dict[str, Any]:
    """The QMP netdev_add arguments of a NIC's tap backend (what -netdev says at start)."""
    return {
        "type": "tap",
        "id": netdev_id(nic.port_id),
        "ifname": nic.tap,
        "script": "no",
        "downscript": "no",
    }


def nic_device(nic: NicAttachment, bus: str | None) -> dict[str, Any]:
    # romfile="": no iPXE option ROM (direct kernel boot; saves memory and start time)
    dev: dict[str, Any] = {
        "driver": "virtio-net-pci",
        "netdev": netdev_id(nic.port_id),
        "mac": nic.mac,
        "id": nic_device_id(nic.port_id),
        "romfile": "",
    }
    if bus:
        dev["bus"] = bus
    return dev


def port_count(spec: VmSpec, options: RenderOptions) -> int:
    """Root ports created at start: one per data disk and per NIC but the primary, plus the free
    hot-plug ones (q35 only)."""
    if options.machine != "q35":
        return 0
    return max(0, len(spec.disks) - 1) + max(0, len(spec.nics) - 1) + max(0, options.hotplug_ports)


def initial_ports(spec: VmSpec) -> dict[str, int]:
    """Which root port each data disk of `spec` is in at start: the n-th data disk in port n."""
    return {disk.disk_id: i for i, disk in enumerate(spec.disks[1:])}


def initial_nic_ports(spec: VmSpec) -> dict[str, int]:
    """Which root port each NIC of `spec` is in at start, after the data disks' ports: in one of
    its own, so that it can be hot-unplugged like a hot-plugged one; -1 for the first (the
    primary interface, on the root bus: it is never detached)."""
    first = max(0, len(spec.disks) - 1)
    return {nic.port_id: (first + i - 1 if i else -1) for i, nic in enumerate(spec.nics)}


def kernel_cmdline(spec: VmSpec, options: RenderOptions) -> str:
    words = spec.boot.cmdline.split()
    if not any(w.startswith("console=") for w in words):
        words.append("console=ttyS0")
    if "no_timer_check" not in words:
        # A guest whose vCPU is starved (TCG on a loaded host) can miss the ticks Linux's boot-time
        # IO-APIC timer check waits for, and panic ("IO-APIC + timer doesn't work", seen in CI
        # on a reboot): a virtual machine's timer is known good, as every cloud image assumes.
        words.append("no_timer_check")
    if (
        options.machine == "microvm"
        and options.host_khz
        and not any(w.startswith("tsc_early_khz=") for w in words)
    ):
        words.append(f"tsc_early_khz={options.host_khz}")
    return " ".join(words)


def render_command(
    spec: VmSpec,
    paths: VmPaths,
    accel: str,
    options: RenderOptions | None = None,
    layout: Runtime | None = None,
    incoming: str | None = None,
) -> list[str]:
    """The argv that runs `spec` (pure: the same inputs give the same list). `layout`: the root
    ports the VM had (its runtime record: how many, which disk and NIC sits in which), to
    restore a memory image saved from a VM whose devices were hot-plugged; `incoming`: the
    migration URI that VM's memory image is read from (`-incoming`)."""
    opts = options or RenderOptions()
    if accel not in accel_mod.ACCELS:
        raise ValueError(f"accel must be kvm or tcg, not {accel!r}")
    if not spec.disks:
        raise ValueError("a VM needs a system disk")
    if spec.vcpus < 1 or spec.memory_mib < 16:
        raise ValueError("a VM needs at least 1 vCPU and 16 MiB")
    argv: list[str] = []
    if spec.netns:
        argv += ["ip", "netns", "exec", spec.netns]
    argv += [opts.qemu_binary, "-name", f"guest={_opt(spec.instance_id)},debug-threads=on"]
    argv += ["-no-user-config", "-nodefaults", "-display", "none"]
    if opts.machine == "q35":
        # a standard VGA (no window: -display none) for GetInstanceScreenshot's screendump
        argv += ["-machine", "q35,vmport=off", "-device", "VGA,id=video0"]
    elif opts.machine == "microvm":
        argv += ["-machine", "microvm,x-option-roms=off,isa-serial=on,rtc=on,acpi=on,pcie=on"]
    else:
        raise ValueError(f"unknown machine {opts.machine!r}")
    if accel == "kvm":
        argv += ["-accel", "kvm", "-cpu", "host"]
    else:
        argv += ["-accel", f"tcg,tb-size={opts.tb_size_mib}" if opts.tb_size_mib else "tcg"]
    argv += ["-smp", str(spec.vcpus), "-m", f"{spec.memory_mib}M"]
    argv += ["-smbios", f"type=1,manufacturer=nubes,product=nubes,serial={_opt(spec.instance_id)}"]
    argv += [
        "-kernel",
        str(spec.boot.kernel),
        "-initrd",
        str(spec.boot.initrd),
        "-append",
        kernel_cmdline(spec, opts),
    ]
    argv += [
        "-chardev",
        f"file,id=serial0,path={_opt(paths.serial_log)},append=on",
        "-serial",
        "chardev:serial0",
    ]
    argv += [
        "-chardev",
        f"socket,id=qmp,path={_opt(paths.qmp_socket)},server=on,wait=off",
        "-mon",
        "chardev=qmp,mode=control",
    ]
    # VNC on a unix socket (the VM may run in a netns; a socket file is reachable from the host),
    # refusing every client until QMP set_password gives it the instance's password
    argv += ["-vnc", f"unix:{_opt(paths.vnc_socket)},password=on"]
    argv += ["-action", "shutdown=pause"]
    argv += ["-pidfile", str(paths.pidfile)]
    if opts.daemonize:
        argv += ["-daemonize"]
    for i in range(layout.port_count if layout is not None else port_count(spec, opts)):
        argv += ["-device", f"pcie-root-port,id={root_port_id(i)},bus=pcie.0,chassis={i + 1},io-reserve=0"]
    ports = (layout.ports if layout is not None else initial_ports(spec)) if opts.machine == "q35" else {}
    for n, disk in enumerate(spec.disks):
        if disk.key:
            secret = f"secret,id={secret_id(disk.disk_id)},file={_opt(secret_file(paths, disk.disk_id))},format=raw"
            argv += ["-object", secret]
        group = throttle_group(disk)
        if group is not None:
            argv += ["-object", _json(group)]
        argv += ["-blockdev", _json(blockdev(disk))]
        bus = root_port_id(ports[disk.disk_id]) if n > 0 and disk.disk_id in ports else None
        argv += ["-device", _json(disk_device(disk, bus))]
    nic_ports = (
        (layout.nics if layout is not None else initial_nic_ports(spec)) if opts.machine == "q35" else {}
    )
    for nic in spec.nics:
        netdev = f"tap,id={netdev_id(nic.port_id)},ifname={_opt(nic.tap)},script=no,downscript=no"
        argv += ["-netdev", netdev]
        device = f"virtio-net-pci,netdev={netdev_id(nic.port_id)},mac={_opt(nic.mac)},id={nic_device_id(nic.port_id)},romfile="
        if nic_ports.get(nic.port_id, -1) >= 0:
            device += f",bus={root_port_id(nic_ports[nic.port_id])}"
        argv += ["-device", device]
    if incoming is not None:
        argv += ["-incoming", incoming]
    argv += list(opts.extra_args)
    return argv


def host_khz() -> int:
    """The host CPU's nominal frequency in kHz (for microvm's tsc_early_khz); 0 if unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return int(float(line.split(":")[1]) * 1000)
    except (OSError, ValueError):
        pass
    return 0
