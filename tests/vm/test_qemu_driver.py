"""The qemu compute driver with real VMs: the tiny image, a VPC namespace, TCG (or KVM).

Every VM gets a NIC: a tap port of one VPC built by the linux network driver, with dnsmasq
for DHCP and a metadata service on 100.100.100.200 inside the namespace. The tiny image's
ready line `NUBES-READY instance-id=<id>` therefore proves more than a boot: the guest got
its lease through the tap and fetched its own instance id from the metadata service.

Root, QEMU and the network tools are needed; without them the tests skip, except under
CI=1, where they fail. Everything a test starts (QEMU processes, namespaces, dnsmasq) is
removed at the end, also when the test failed."""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import secrets
import shutil
import signal
import socket
import string
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from nubes.drivers.compute.base import (
    Boot,
    ComputeError,
    DiskAttachment,
    NicAttachment,
    PowerState,
    VmNotRunning,
    VmSpec,
)
from nubes.drivers.compute.qemu import QemuDriver, disk_serial, process_cmdline, process_start_time
from nubes.drivers.compute.qemu import accel as accel_mod
from nubes.drivers.compute.qemu.qmp import qmp
from nubes.drivers.network.base import PortNet, SecurityGroupNet, SecurityRule, VpcNet, VSwitchNet
from nubes.drivers.network.linux import LinuxNetworkDriver
from nubes.drivers.network.proc import in_netns, list_netns, run
from nubes.guest.images import ImageManifest
from nubes.guest.metadata import GuestView, MetadataService

pytestmark = pytest.mark.vm

READY_TIMEOUT = 60.0  # boot to the ready line; ~3 s on the 2-core TCG host
MEMORY_MIB = 192
SLOTS = 8  # tap ports in the test VPC (one per VM a test runs)
VPC_ID = "vpc-qemudrv"
VSWITCH = VSwitchNet("vsw-qemudrv", "10.77.1.0/24", "10.77.1.253")
HOST_IP = "10.77.1.100"

# User data for the hot-plug test: print the virtio disks (name:serial) whenever they change.
DISK_WATCH = r"""#!/bin/sh
P=""
while true; do
  L=""
  for b in /sys/block/vd*; do [ -e "$b" ] && L="$L ${b##*/}:$(cat $b/serial 2>/dev/null)"; done
  if [ "$L" != "$P" ]; then echo "NUBES-DISKS:$L" > /dev/console; P="$L"; fi
  sleep 0.2
done
"""


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (QEMU in network namespaces, taps)"
    for tool in ("qemu-system-x86_64", "qemu-img", "ip", "nft", "dnsmasq"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    if not os.path.isdir("/proc/sys/net/bridge"):
        return "the kernel has no br_netfilter"
    return None


def require_vm() -> None:
    reason = _missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"VM tests cannot run under CI: {reason}")
        pytest.skip(reason)


def new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(20))


# ---- the image --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(images_dir: Path, tiny_image: ImageManifest) -> tuple[Path, ImageManifest]:
    """(images_dir, manifest) of the tiny image (the shared session fixtures build it)."""
    require_vm()
    return images_dir, tiny_image


# ---- the network: one VPC, a tap port per VM slot, a test host, metadata --------------------


@dataclass
class Net:
    driver: LinuxNetworkDriver
    netns: str
    host_ns: str
    ports: list[PortNet]
    lease_file: Path
    guests: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # ip -> (instance id, user data)
    next_slot: int = 0

    def view(self, vpc_id: str, source_ip: str) -> GuestView | None:
        guest = self.guests.get(source_ip)
        if guest is None:
            return None
        instance_id, user_data = guest
        tree: dict[str, Any] = {
            "meta-data": {"instance-id": instance_id, "hostname": instance_id, "region-id": "cn-nubes-1"}
        }
        if user_data is not None:
            tree["user-data"] = user_data
        return GuestView(tree)


def _sg() -> SecurityGroupNet:
    return SecurityGroupNet(
        "sg-qemudrv",
        "normal",
        "accept",
        (
            SecurityRule("sgr-in", "ingress", "all", -1, -1, "accept", 1, peer_cidr="0.0.0.0/0"),
            SecurityRule("sgr-out", "egress", "all", -1, -1, "accept", 1, peer_cidr="0.0.0.0/0"),
        ),
    )


def _kill_qemus_under(root: Path) -> None:
    """Safety net: SIGKILL every QEMU whose command line names a path under `root`."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            argv = process_cmdline(int(entry))
            if argv and any(str(root) in a for a in argv) and any("qemu-system" in a for a in argv[:6]):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry), signal.SIGKILL)


@pytest.fixture(scope="module")
def net(tiny: tuple[Path, ImageManifest]) -> Iterator[Net]:
    prefix = f"qd{os.getpid() % 100000}"
    run_dir = Path(
        tempfile.mkdtemp(prefix=f"nubes-{prefix}-", dir="/run" if os.access("/run", os.W_OK) else None)
    )
    os.chmod(run_dir, 0o755)
    driver = LinuxNetworkDriver(run_dir, prefix=prefix)
    ports = [
        PortNet(
            f"eni-qemudrv{i}",
            VSWITCH.vswitch_id,
            f"00:16:3e:4d:01:{10 + i:02x}",
            f"10.77.1.{10 + i}",
            ("sg-qemudrv",),
            kind="tap",
        )
        for i in range(SLOTS)
    ]
    host_ns = f"{prefix}-host"
    host = PortNet(
        "eni-qemudrvhost",
        VSWITCH.vswitch_id,
        "00:16:3e:4d:01:64",
        HOST_IP,
        ("sg-qemudrv",),
        kind="veth",
        host_netns=host_ns,
    )
    vpc = VpcNet(VPC_ID, "10.77.0.0/16", (VSWITCH,), (*ports, host), (_sg(),))
    metadata: MetadataService | None = None
    try:
        driver.sync([vpc])
        env = Net(
            driver,
            driver.netns_name(VPC_ID),
            host_ns,
            ports,
            driver.dnsmasq_files(VPC_ID, VSWITCH.vswitch_id)["leases"],
        )
        metadata = MetadataService(env.view)
        metadata.ensure(VPC_ID, driver.open_metadata_socket)
        yield env
    finally:
        if metadata is not None:
            metadata.close()
        try:
            driver.sync([])
        finally:
            for ns in list_netns():
                if ns.startswith(prefix + "-"):
                    run(["ip", "netns", "delete", ns], check=False)
            shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def accel_cache(tiny: tuple[Path, ImageManifest], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One accelerator decision (a trial boot when /dev/kvm opens) for all drivers of the module."""
    images_dir, manifest = tiny
    cache = tmp_path_factory.mktemp("accel")
    accel_mod.resolve_accel("auto", cache, "qemu-system-x86_64", manifest.path(images_dir, "kernel"))
    return cache


# ---- a lab per test: drivers, disks, VMs, all cleaned up ------------------------------------


class Lab:
    def __init__(self, root: Path, tiny: tuple[Path, ImageManifest], net: Net, cache: Path) -> None:
        self.root = root
        self.images_dir, self.manifest = tiny
        self.net = net
        self.cache = cache
        self.state_dir = root / "vms"
        self.disk_dir = root / "disks"
        self.disk_dir.mkdir(parents=True)
        self.drivers: list[QemuDriver] = []
        self.instances: set[str] = set()

    def driver(self) -> QemuDriver:
        d = QemuDriver(self.state_dir, accel="auto", cache_dir=self.cache)
        self.drivers.append(d)
        return d

    def disk(self, disk_id: str, size: str = "64M", **kw: Any) -> DiskAttachment:
        path = self.disk_dir / f"{disk_id}.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
        return DiskAttachment(disk_id, path, **kw)

    def spec(self, data: tuple[DiskAttachment, ...] = (), user_data: str | None = None) -> VmSpec:
        instance_id = new_id("i-")
        slot = self.net.next_slot
        self.net.next_slot += 1
        assert slot < SLOTS, "more VMs than tap ports: raise SLOTS"
        port = self.net.ports[slot]
        self.net.guests[port.ip] = (instance_id, user_data)
        system_id = new_id("d-")
        system = self.disk_dir / f"{system_id}.qcow2"
        subprocess.run(
            [
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                "-F",
                "qcow2",
                "-b",
                str(self.manifest.path(self.images_dir, "rootfs")),
                str(system),
            ],
            check=True,
        )
        self.instances.add(instance_id)
        return VmSpec(
            instance_id=instance_id,
            vcpus=1,
            memory_mib=MEMORY_MIB,
            boot=Boot(
                self.manifest.path(self.images_dir, "kernel"),
                self.manifest.path(self.images_dir, "initrd"),
                self.manifest.cmdline,
            ),
            disks=(DiskAttachment(system_id, system), *data),
            nics=(NicAttachment(port.port_id, port.mac, self.net.driver.tap_name(port.port_id)),),
            netns=self.net.netns,
            hostname=instance_id,
        )

    def ip_of(self, spec: VmSpec) -> str:
        return next(p.ip for p in self.net.ports if p.port_id == spec.nics[0].port_id)

    def close(self) -> None:
        d = QemuDriver(self.state_dir, accel="tcg")
        for instance_id in self.instances:
            with contextlib.suppress(Exception):
                d.destroy(instance_id)
            with contextlib.suppress(Exception):
                d.cleanup(instance_id)
        _kill_qemus_under(self.root)


@pytest.fixture
def lab(
    tiny: tuple[Path, ImageManifest], net: Net, accel_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    the_lab = Lab(tmp_path_factory.mktemp("qd"), tiny, net, accel_cache)
    try:
        yield the_lab
    finally:
        the_lab.close()


def wait_console(
    driver: QemuDriver, instance_id: str, pattern: str, count: int = 1, timeout: float = READY_TIMEOUT
) -> float:
    """Seconds until `pattern` (a regex) appears `count` times in the console."""
    t0 = time.monotonic()
    regex = re.compile(pattern)
    while True:
        text = driver.console_output(instance_id, max_bytes=1 << 22).decode(errors="replace")
        if len(regex.findall(text)) >= count:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError(
                f"{pattern!r} x{count} not on the console within {timeout}s:\n{text[-3000:]}"
            )
        time.sleep(0.05)


def ready_line(spec: VmSpec) -> str:
    return rf"NUBES-READY instance-id={spec.instance_id}\b"


Timings = dict[str, list[float]]


def timed(label: str, timings: Timings, t0: float) -> float:
    """Record the seconds since `t0` under `label` (printed at the end of the run)."""
    seconds = time.monotonic() - t0
    timings.setdefault(f"qemu driver: {label}", []).append(seconds)
    return seconds


def qemu_processes(pidfile: Path) -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and str(pidfile) in process_cmdline(int(p))]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def icmp_echo(ns: str, ip: str, timeout: float = 1.0) -> bool:
    """One ICMP echo from namespace `ns`; True if the reply came back."""
    ident = os.getpid() & 0xFFFF
    sock = in_netns(ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
    try:
        payload = b"nubes-qemu-driver"
        header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
        data = header + payload + b"\0" * (len(payload) % 2)
        total = sum(struct.unpack(f"!{len(data) // 2}H", data))
        total = (total >> 16) + (total & 0xFFFF)
        checksum = ~(total + (total >> 16)) & 0xFFFF
        sock.sendto(struct.pack("!BBHHH", 8, 0, checksum, ident, 1) + payload, (ip, 0))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                reply, peer = sock.recvfrom(2048)
            except TimeoutError:
                return False
            ihl = (reply[0] & 0x0F) * 4
            if (
                peer[0] == ip
                and reply[ihl] == 0
                and struct.unpack("!H", reply[ihl + 4 : ihl + 6])[0] == ident
            ):
                return True
        return False
    finally:
        sock.close()


AGENT = """
import pickle, sys
from nubes.drivers.compute.qemu import QemuDriver
state_dir, cache_dir, spec = pickle.load(sys.stdin.buffer)
handle = QemuDriver(state_dir, accel="auto", cache_dir=cache_dir).start(spec)
print(handle.pid, flush=True)
"""


# ---- tests ------------------------------------------------------------------------------------


def test_accel_auto_decides_once_and_is_cached(
    tiny: tuple[Path, ImageManifest], tmp_path: Path, accel_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images_dir, manifest = tiny
    verdict = accel_mod.read_cache(accel_cache, "qemu-system-x86_64")
    if accel_mod.forced_accel("auto") is None and accel_mod.kvm_device_opens():
        assert verdict in ("kvm", "tcg")  # decided by the module's trial boot
    t0 = time.monotonic()
    d = QemuDriver(tmp_path / "vms", accel="auto", cache_dir=accel_cache)
    assert d.capabilities.accel in ("kvm", "tcg")
    assert time.monotonic() - t0 < 1.0  # cached: no second trial
    assert d.capabilities.name == "qemu" and d.capabilities.disk_hotplug
    monkeypatch.setenv("NUBES_ACCEL", "tcg")
    assert QemuDriver(tmp_path / "vms2", accel="auto").capabilities.accel == "tcg"
    assert QemuDriver(tmp_path / "vms3", accel="kvm").capabilities.accel == "kvm"  # the argument wins
    # the probe initramfs reaches user space under TCG with the image's kernel
    result = accel_mod.trial_boot(
        "qemu-system-x86_64", manifest.path(images_dir, "kernel"), "tcg", timeout=30
    )
    assert result.ok, result.detail


def test_lifecycle_survives_the_agent_and_recovers(lab: Lab, boot_timings: Timings) -> None:
    timings = boot_timings
    spec = lab.spec()
    iid = spec.instance_id
    # an "agent" process starts the VM and exits
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", AGENT],
        input=pickle.dumps((lab.state_dir, lab.cache, spec)),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr.decode()
    timed("start (agent process, to daemonized QEMU)", timings, t0)
    pid = int(out.stdout.split()[0])
    d = lab.driver()  # a NEW driver object: the agent restarted
    wait_console(d, iid, ready_line(spec))
    timed("start to ready line (q35, NIC, metadata)", timings, t0)
    assert process_start_time(pid) is not None, "the VM died with the agent"
    handles = d.recover()
    assert [h.pid for h in handles] == [pid]
    assert d.state(iid) == PowerState.RUNNING
    h = d.start(spec)  # idempotent: the running VM, not a second QEMU
    assert h.pid == pid
    assert h.accel == d.capabilities.accel
    assert qemu_processes(d.paths(iid).pidfile) == [pid]
    assert QemuDriver(lab.state_dir, accel="auto", cache_dir=lab.cache).start(spec).pid == pid
    rss = rss_kib(pid) // 1024
    print(f"\nhost RSS of a tiny VM with {MEMORY_MIB} MiB guest RAM: {rss} MiB")
    assert rss < MEMORY_MIB + 256
    assert d.console_output(iid, max_bytes=100).endswith(d.console_output(iid)[-100:])

    t0 = time.monotonic()
    assert d.shutdown(iid, timeout=15) is True
    timed("ACPI shutdown", timings, t0)
    assert process_start_time(pid) is None
    assert d.state(iid) == PowerState.STOPPED
    assert d.recover() == []
    assert d.shutdown(iid, timeout=1) is True  # already off

    t0 = time.monotonic()
    h2 = d.start(spec)  # a stopped VM starts again; its console keeps the first boot
    assert h2.pid != pid
    wait_console(d, iid, ready_line(spec), count=2)
    timed("restart to ready line", timings, t0)
    t0 = time.monotonic()
    d.destroy(iid)
    timed("destroy", timings, t0)
    assert process_start_time(h2.pid) is None
    assert d.state(iid) == PowerState.STOPPED
    d.destroy(iid)  # idempotent
    d.cleanup(iid)
    assert not (lab.state_dir / iid).exists()
    assert d.console_output(iid) == b""


def test_crash_is_detected_and_a_failed_start_cleans_up(lab: Lab) -> None:
    d = lab.driver()
    spec = lab.spec()
    iid = spec.instance_id
    h = d.start(spec)
    assert d.state(iid) == PowerState.RUNNING
    os.kill(h.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while process_start_time(h.pid) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert d.state(iid) == PowerState.CRASHED
    assert lab.driver().recover() == []  # the stale handle is cleaned up ...
    assert not (lab.state_dir / iid / "handle.json").exists()
    assert d.state(iid) == PowerState.CRASHED  # ... and the crash still shows
    h2 = d.start(spec)
    assert d.state(iid) == PowerState.RUNNING and h2.pid != h.pid
    d.destroy(iid)
    assert d.state(iid) == PowerState.STOPPED

    broken = VmSpec(
        new_id("i-"), 1, MEMORY_MIB, Boot(lab.root / "no-kernel", spec.boot.initrd, ""), spec.disks[:1]
    )
    lab.instances.add(broken.instance_id)
    with pytest.raises(ComputeError, match="failed to start"):
        d.start(broken)
    assert d.state(broken.instance_id) == PowerState.STOPPED  # not CRASHED: it never ran
    assert d.recover() == []
    with pytest.raises(VmNotRunning):
        d.reboot(broken.instance_id, force=True)
    with pytest.raises(VmNotRunning):
        d.attach_disk(broken.instance_id, lab.disk(new_id("d-")))
    assert d.state("i-neverseen") == PowerState.STOPPED and not (lab.state_dir / "i-neverseen").exists()


def test_reboot_graceful_and_forced(lab: Lab, boot_timings: Timings) -> None:
    timings = boot_timings
    d = lab.driver()
    spec = lab.spec()
    iid = spec.instance_id
    h = d.start(spec)
    wait_console(d, iid, ready_line(spec))
    t0 = time.monotonic()
    d.reboot(iid, force=False)  # ACPI power-off, reset, resume: the same QEMU process
    timed("graceful reboot call", timings, t0)
    wait_console(d, iid, ready_line(spec), count=2)
    timed("graceful reboot to ready line", timings, t0)
    assert d.state(iid) == PowerState.RUNNING
    t0 = time.monotonic()
    d.reboot(iid, force=True)
    timed("forced reboot call", timings, t0)
    wait_console(d, iid, ready_line(spec), count=3)
    timed("forced reboot to ready line", timings, t0)
    assert d.start(spec).pid == h.pid
    assert qemu_processes(d.paths(iid).pidfile) == [h.pid]
    d.destroy(iid)


def test_disk_hotplug_and_unplug(lab: Lab, boot_timings: Timings) -> None:
    timings = boot_timings
    d = lab.driver()
    cold = lab.disk(new_id("d-"))
    spec = lab.spec(data=(cold,), user_data=DISK_WATCH)
    iid = spec.instance_id
    sys_serial, cold_serial = disk_serial(spec.disks[0].disk_id), disk_serial(cold.disk_id)
    h = d.start(spec)
    wait_console(d, iid, ready_line(spec))
    wait_console(d, iid, rf"NUBES-DISKS: vda:{sys_serial} vdb:{cold_serial}\r?\n")

    hot = lab.disk(new_id("d-"), iops=200, bps=8 << 20)
    t0 = time.monotonic()
    d.attach_disk(iid, hot)
    timed("attach_disk call", timings, t0)
    d.attach_disk(iid, hot)  # idempotent
    wait_console(
        d,
        iid,
        rf"NUBES-DISKS: vda:{sys_serial} vdb:{cold_serial} vdc:{disk_serial(hot.disk_id)}\r?\n",
        timeout=30,
    )
    timed("attach to guest sees it", timings, t0)
    with qmp(h.qmp_socket) as q:
        nodes = {n["node-name"]: n["drv"] for n in q.execute("query-named-block-nodes")}
        assert nodes.get(f"disk-{hot.disk_id}") == "throttle"
        limits = q.execute("qom-get", {"path": f"/objects/tg-{hot.disk_id}", "property": "limits"})
        assert limits["iops-total"] == 200 and limits["bps-total"] == 8 << 20
        assert any(
            b.get("qdev", "").startswith(f"/machine/peripheral/vd-{hot.disk_id}/")
            for b in q.execute("query-block")
        )

    t0 = time.monotonic()
    d.detach_disk(iid, hot.disk_id)
    timed("detach_disk call (to DEVICE_DELETED)", timings, t0)
    d.detach_disk(iid, hot.disk_id)  # idempotent
    wait_console(d, iid, rf"NUBES-DISKS: vda:{sys_serial} vdb:{cold_serial}\r?\n", count=2, timeout=30)
    with qmp(h.qmp_socket) as q:
        names = {n["node-name"] for n in q.execute("query-named-block-nodes")}
        assert not any(hot.disk_id in n for n in names)  # block nodes deleted
        assert not any(o["name"] == f"tg-{hot.disk_id}" for o in q.execute("qom-list", {"path": "/objects"}))

    d.detach_disk(iid, cold.disk_id)  # a disk given at start sits in a root port too
    wait_console(d, iid, rf"NUBES-DISKS: vda:{sys_serial}\r?\n", timeout=30)
    with pytest.raises(ComputeError):
        d.detach_disk(iid, spec.disks[0].disk_id)  # never the system disk
    d.attach_disk(iid, hot)  # the disk is free again (not locked by QEMU) and a port too
    wait_console(d, iid, rf"NUBES-DISKS: vda:{sys_serial} vdb:{disk_serial(hot.disk_id)}\r?\n", timeout=30)
    assert d.state(iid) == PowerState.RUNNING
    d.destroy(iid)
    d.detach_disk(iid, hot.disk_id)  # not running: nothing attached


def test_nic_in_the_vpc_namespace_gets_its_lease(lab: Lab) -> None:
    d = lab.driver()
    spec = lab.spec()
    iid = spec.instance_id
    ip = lab.ip_of(spec)
    h = d.start(spec)
    wait_console(d, iid, ready_line(spec))  # the guest read its id from the metadata service
    assert os.stat(f"/proc/{h.pid}/ns/net").st_ino == os.stat(f"/run/netns/{lab.net.netns}").st_ino
    assert os.stat(f"/proc/{h.pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino
    leases = lab.net.lease_file.read_text()
    assert any(spec.nics[0].mac in line and ip in line for line in leases.splitlines()), leases
    deadline = time.monotonic() + 10
    while not icmp_echo(lab.net.host_ns, ip):
        assert time.monotonic() < deadline, f"no ICMP echo reply from {ip}"
    d.destroy(iid)
    assert not icmp_echo(lab.net.host_ns, ip, timeout=0.3)
