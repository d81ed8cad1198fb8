"""The compute driver contract (nubes.drivers.compute.base), the same cases against both drivers:
QEMU booting the tiny image (root; marked `vm`) and the fake, whose VMs are records in memory.

Booting is what costs under software emulation, so each driver boots one VM for the whole
module and the cases take turns with it; the last one powers it off, starts it again and
destroys it. The QEMU VM has a NIC in a VPC of the linux network driver, with DHCP and the
metadata service, as in tests/vm/test_qemu_driver.py: its guest then finishes booting in
seconds (without an answer from the metadata service it waits 20 s, and it powers off only
once booted). What only a real guest can show (it sees a plugged disk, its disk grew) is
tests/vm's business; here the calls' promises: what succeeds, what is refused, what is
idempotent."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import string
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from nubes.drivers.compute.base import (
    Boot,
    ComputeDriver,
    ComputeError,
    DiskAttachment,
    NicAttachment,
    PowerState,
    VmNotRunning,
    VmSpec,
)
from nubes.drivers.compute.fake import FakeComputeDriver, FakeHost
from nubes.drivers.compute.qemu import QemuDriver, process_cmdline
from nubes.drivers.network.base import PortNet, SecurityGroupNet, SecurityRule, VpcNet, VSwitchNet
from nubes.drivers.network.linux import LinuxNetworkDriver
from nubes.drivers.storage.qcow2 import backing_file_name
from nubes.guest.images import build_image
from nubes.guest.metadata import GuestView, MetadataService
from tests.net.conftest import force_cleanup, require_net
from tests.vm.conftest import DEFAULT_IMAGES_DIR, require_vm

MEMORY_MIB = 192
UP_TIMEOUT = 90.0  # boot to the ready line under TCG on a busy 2-core host
VPC_ID = "vpc-ccontract"
VSWITCH = VSwitchNet("vsw-ccontract", "10.78.1.0/24", "10.78.1.253")
PORT = PortNet("eni-ccontract", VSWITCH.vswitch_id, "00:16:3e:4e:01:0a", "10.78.1.10", ("sg-ccontract",))
# a second port of the VPC (its tap made), for a NIC hot-plugged into the running VM
SPARE = PortNet("eni-ccspare", VSWITCH.vswitch_id, "00:16:3e:4e:01:0b", "10.78.1.11", ("sg-ccontract",))
FAKE_SPARE = NicAttachment(SPARE.port_id, SPARE.mac, "tap-spare")  # (the fake opens no tap)


def new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(16))


@dataclass
class Lab:
    """One driver, one VM spec shared by the module's cases, and how to make more of either."""

    driver: ComputeDriver
    another_driver: Callable[[], ComputeDriver]  # a new driver object on the same host (an agent restart)
    spec: VmSpec  # a system disk, and a data disk of two layers (its top on a base)
    root: Path
    real: bool
    instances: set[str] = field(default_factory=set)
    data_top: Path = Path()  # the data disk's top layer now (a snapshot puts a new one on)
    spare_nic: NicAttachment = FAKE_SPARE  # a NIC the VM does not have at start

    def __post_init__(self) -> None:
        self.data_top = self.spec.disks[1].path

    def disk(self, disk_id: str) -> DiskAttachment:
        return _disk(self.root, disk_id, self.real)

    def overlay(self, current: Path) -> Path:
        """A prepared, empty qcow2 on top of `current`, as the storage agent makes for a snapshot."""
        return _overlay(current, self.real)

    def running(self) -> VmSpec:
        """The shared VM, started if it does not run (a case before may have stopped it)."""
        if self.driver.state(self.spec.instance_id) != PowerState.RUNNING:
            self.driver.start(self.spec)
        return self.spec

    def wait_up(self) -> None:
        """Until the guest has booted (ACPI and hot-plug are heard, it would power off)."""
        if not self.real:
            return
        deadline = time.monotonic() + UP_TIMEOUT
        ready = re.compile(rf"NUBES-READY instance-id={self.spec.instance_id}\b".encode())
        while not ready.search(self.driver.console_output(self.spec.instance_id, 1 << 22)):
            if time.monotonic() > deadline:
                tail = self.driver.console_output(self.spec.instance_id, 3000).decode(errors="replace")
                raise AssertionError(f"the guest did not come up within {UP_TIMEOUT}s:\n{tail}")
            time.sleep(0.1)


def _disk(root: Path, disk_id: str, real: bool) -> DiskAttachment:
    """An empty 64 MiB data disk (a qcow2 file for QEMU; only its name for the fake)."""
    path = root / f"{disk_id}.qcow2"
    if real:
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True, timeout=60)
    return DiskAttachment(disk_id, path)


def _overlay(current: Path, real: bool) -> Path:
    """An empty qcow2 on `current`, named relative to it (as Qcow2Storage.create_overlay does)."""
    path = current.with_name(f"{current.stem}.s-{secrets.token_hex(4)}.qcow2")
    if real:
        subprocess.run(
            [
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                "-u",
                "-F",
                "qcow2",
                "-b",
                current.name,
                str(path),
                "64M",
            ],
            check=True,
            timeout=60,
        )
    return path


def _data_disk(root: Path, real: bool) -> DiskAttachment:
    """The module VM's data disk: a layer on a base layer, both opened at start."""
    base = _disk(root, "d-ccdata", real)
    return DiskAttachment(base.disk_id, _overlay(base.path, real))


def _fake_lab(root: Path) -> Lab:
    host = FakeHost()
    disks = (DiskAttachment("d-ccsystem", root / "system.qcow2"), _data_disk(root, real=False))
    spec = VmSpec(new_id("i-cc"), 1, MEMORY_MIB, Boot(root / "vmlinux", root / "initrd.img", "quiet"), disks)
    return Lab(FakeComputeDriver(host), lambda: FakeComputeDriver(host), spec, root, real=False)


def _vm_network(
    root: Path, instance_id: str, closers: list[Callable[[], None]]
) -> tuple[str, NicAttachment, NicAttachment]:
    """A VPC with the VM's tap and a spare one, DHCP and a metadata service that tells the guest
    its id; returns (its namespace, the NIC, the spare NIC)."""
    require_net()
    prefix = f"cc{os.getpid() % 100000}"
    run_dir = root / "net"
    run_dir.mkdir()
    os.chmod(root, 0o755)
    os.chmod(run_dir, 0o755)  # dnsmasq runs unprivileged
    network = LinuxNetworkDriver(run_dir, prefix=prefix)

    def close_network() -> None:
        try:
            network.sync([])
        finally:
            force_cleanup(prefix, run_dir)

    closers.append(close_network)
    group = SecurityGroupNet(
        "sg-ccontract",
        "normal",
        "accept",
        (
            SecurityRule("sgr-ccin", "ingress", "all", -1, -1, "accept", 1, peer_cidr="0.0.0.0/0"),
            SecurityRule("sgr-ccout", "egress", "all", -1, -1, "accept", 1, peer_cidr="0.0.0.0/0"),
        ),
    )
    network.sync([VpcNet(VPC_ID, "10.78.0.0/16", (VSWITCH,), (PORT, SPARE), (group,))])

    def view(vpc_id: str, source_ip: str) -> GuestView | None:
        tree: dict[str, Any] = {"meta-data": {"instance-id": instance_id, "hostname": instance_id}}
        return GuestView(tree) if source_ip == PORT.ip else None

    metadata = MetadataService(view)
    closers.insert(0, metadata.close)  # before the namespace goes
    metadata.ensure(VPC_ID, network.open_metadata_socket)
    nic, spare = (NicAttachment(p.port_id, p.mac, network.tap_name(p.port_id)) for p in (PORT, SPARE))
    return network.netns_name(VPC_ID), nic, spare


def _qemu_lab(root: Path, closers: list[Callable[[], None]]) -> Lab:
    require_vm()
    images_dir = Path(os.environ.get("NUBES_TEST_IMAGES", DEFAULT_IMAGES_DIR))
    manifest = build_image("tiny", images_dir)  # built once for all VM tests, then cached
    state_dir = root / "vms"

    def driver() -> ComputeDriver:
        return QemuDriver(state_dir, accel="auto", cache_dir=root)

    system = root / "system.qcow2"
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
            str(manifest.path(images_dir, "rootfs")),
            str(system),
        ],
        check=True,
        timeout=60,
    )
    boot = Boot(manifest.path(images_dir, "kernel"), manifest.path(images_dir, "initrd"), manifest.cmdline)
    disks = (DiskAttachment("d-ccsystem", system), _data_disk(root, real=True))
    instance_id = new_id("i-cc")
    netns, nic, spare = _vm_network(root, instance_id, closers)
    spec = VmSpec(instance_id, 1, MEMORY_MIB, boot, disks, nics=(nic,), netns=netns)
    return Lab(driver(), driver, spec, root, real=True, spare_nic=spare)


def _close(lab: Lab) -> None:
    for instance_id in {lab.spec.instance_id, *lab.instances}:
        with contextlib.suppress(Exception):
            lab.driver.destroy(instance_id)
        with contextlib.suppress(Exception):
            lab.driver.cleanup(instance_id)
    if lab.real:  # safety net: any QEMU still naming a file of this lab
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                argv = process_cmdline(int(entry))
                if (
                    argv
                    and any("qemu-system" in a for a in argv[:6])
                    and any(str(lab.root) in a for a in argv)
                ):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(entry), signal.SIGKILL)


@pytest.fixture(scope="module", params=["fake", pytest.param("qemu", marks=pytest.mark.vm)])
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    # short and outside pytest's deep tmp path: QMP's unix socket path must stay < 108 bytes
    root = Path(tempfile.mkdtemp(prefix="nubes-cc-"))
    the_lab: Lab | None = None
    closers: list[Callable[[], None]] = []
    try:
        the_lab = _qemu_lab(root, closers) if request.param == "qemu" else _fake_lab(root)
        yield the_lab
    finally:
        try:
            if the_lab is not None:
                _close(the_lab)
        finally:
            for close in closers:
                with contextlib.suppress(Exception):
                    close()
            shutil.rmtree(root, ignore_errors=True)


# ---- without a running VM ---------------------------------------------------------------------


def test_a_vm_never_started_is_stopped_and_stopping_it_succeeds(lab: Lab) -> None:
    d, iid = lab.driver, new_id("i-never")
    lab.instances.add(iid)
    assert d.state(iid) == PowerState.STOPPED
    assert d.shutdown(iid, timeout=1) is True
    d.destroy(iid)
    d.detach_disk(iid, "d-ccnone")  # nothing is attached
    d.detach_nic(iid, lab.spare_nic.port_id)
    assert d.nics(iid) == []
    d.cleanup(iid)
    assert d.state(iid) == PowerState.STOPPED
    assert d.console_output(iid) == b""
    assert iid not in {h.instance_id for h in d.recover()}


def test_what_needs_a_running_vm_refuses_a_stopped_one(lab: Lab) -> None:
    d, iid = lab.driver, new_id("i-never")
    lab.instances.add(iid)
    disk = lab.disk(new_id("d-cc"))
    calls: list[Callable[[], object]] = [
        lambda: d.attach_disk(iid, disk),
        lambda: d.attach_nic(iid, lab.spare_nic),
        lambda: d.reboot(iid, force=True),
        lambda: d.reboot(iid, force=False),
        lambda: d.snapshot_disk(iid, disk.disk_id, disk.path, lab.overlay(disk.path)),
        lambda: d.resize_disk(iid, disk.disk_id, disk.path, 128 << 20),
        lambda: d.stream_layer(iid, disk.path, None, None, timeout=5),
        lambda: d.hibernate(iid, timeout=5),
        lambda: d.vnc_display(iid, "Abc123"),
    ]
    for call in calls:
        with pytest.raises(VmNotRunning):
            call()
    assert d.state(iid) == PowerState.STOPPED


def test_a_vm_never_hibernated_has_no_image_to_restore(lab: Lab) -> None:
    d, iid = lab.driver, new_id("i-never")
    lab.instances.add(iid)
    assert d.hibernated(iid) is False
    d.discard_image(iid)  # none kept: succeeds
    with pytest.raises(ComputeError):
        d.restore(replace(lab.spec, instance_id=iid))
    assert d.state(iid) == PowerState.STOPPED


# ---- with the module's VM ----------------------------------------------------------------------


def test_start_of_a_running_vm_returns_its_handle(lab: Lab) -> None:
    spec = lab.running()
    d, iid = lab.driver, spec.instance_id
    handle = d.start(spec)
    assert d.start(spec).pid == handle.pid  # not a second VM
    assert d.state(iid) == PowerState.RUNNING
    restarted = lab.another_driver()  # the agent restarted: its new driver finds the VM
    assert [h.pid for h in restarted.recover() if h.instance_id == iid] == [handle.pid]
    assert restarted.state(iid) == PowerState.RUNNING
    assert restarted.start(spec).pid == handle.pid


def test_the_vnc_display_of_a_running_vm(lab: Lab) -> None:
    spec = lab.running()
    d, iid = lab.driver, spec.instance_id
    address = d.vnc_display(iid, "Abc123")
    assert d.vnc_display(iid, "Xyz789") == address  # a new password, the same server
    if lab.real:
        assert address.startswith("unix:") and Path(address.removeprefix("unix:")).is_socket()
    else:
        assert address == f"fake:{iid}"
    assert lab.another_driver().vnc_display(iid, "Abc123") == address  # after an agent restart


def test_a_disk_is_attached_and_detached_once_each(lab: Lab) -> None:
    spec = lab.running()
    lab.wait_up()
    d, iid = lab.driver, spec.instance_id
    hot = lab.disk(new_id("d-cchot"))
    d.attach_disk(iid, hot)
    d.attach_disk(iid, hot)  # attached already
    d.attach_disk(iid, spec.disks[1])  # given at start: attached already
    d.detach_disk(iid, hot.disk_id)  # returns once the guest let go of it
    d.detach_disk(iid, hot.disk_id)  # detached already
    d.attach_disk(iid, hot)  # the disk and its port are free again
    with pytest.raises(ComputeError):
        d.detach_disk(iid, spec.disks[0].disk_id)  # never the system disk
    assert d.state(iid) == PowerState.RUNNING


def test_a_nic_is_attached_and_detached_once_each(lab: Lab) -> None:
    spec = lab.running()
    lab.wait_up()
    d, iid, spare = lab.driver, spec.instance_id, lab.spare_nic
    at_start = [nic.port_id for nic in spec.nics]
    assert d.nics(iid) == at_start
    d.attach_nic(iid, spare)
    d.attach_nic(iid, spare)  # attached already
    assert d.nics(iid) == [*at_start, spare.port_id]
    assert lab.another_driver().nics(iid) == [*at_start, spare.port_id]  # after an agent restart too
    d.detach_nic(iid, spare.port_id)  # returns once the guest let go of it
    d.detach_nic(iid, spare.port_id)  # detached already
    assert d.nics(iid) == at_start
    d.attach_nic(iid, spare)  # the NIC and its port are free again
    d.detach_nic(iid, spare.port_id)
    assert d.state(iid) == PowerState.RUNNING


def test_stream_a_layer_of_a_running_vm_onto_nothing(lab: Lab) -> None:
    spec = lab.running()
    d, iid, data = lab.driver, spec.instance_id, spec.disks[1]
    d.stream_layer(iid, lab.data_top, None, None, timeout=60)  # the top takes in the base under it
    d.stream_layer(iid, lab.data_top, None, None, timeout=60)  # done already
    if lab.real:
        assert backing_file_name(data.path) is None
    assert d.state(iid) == PowerState.RUNNING


def test_snapshot_and_resize_a_disk_of_a_running_vm(lab: Lab) -> None:
    spec = lab.running()
    d, iid, data = lab.driver, spec.instance_id, spec.disks[1]
    overlay = lab.overlay(lab.data_top)
    d.snapshot_disk(iid, data.disk_id, lab.data_top, overlay)  # writes go to the overlay from now on
    d.snapshot_disk(iid, data.disk_id, lab.data_top, overlay)  # done already
    lab.data_top = overlay
    d.resize_disk(iid, data.disk_id, overlay, 128 << 20)
    if lab.real:
        info = subprocess.run(
            ["qemu-img", "info", "-U", "--output=json", str(overlay)],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        assert json.loads(info)["virtual-size"] == 128 << 20
    assert d.state(iid) == PowerState.RUNNING


def test_stream_into_the_top_a_snapshot_made(lab: Lab) -> None:
    """The top a live snapshot made has a json: file name in QEMU; the driver finds its node."""
    spec = lab.running()
    d, iid, data = lab.driver, spec.instance_id, spec.disks[1]
    overlay = lab.overlay(lab.data_top)
    d.snapshot_disk(iid, data.disk_id, lab.data_top, overlay)
    lab.data_top = overlay
    d.stream_layer(iid, overlay, None, None, timeout=60)  # the snapshot's layer is deleted: fold it in
    if lab.real:
        assert backing_file_name(overlay) is None
    assert d.state(iid) == PowerState.RUNNING


def test_hibernate_and_restore(lab: Lab) -> None:
    d, iid = lab.driver, lab.spec.instance_id
    d.destroy(iid)  # started afresh: the VM has the devices of its spec (a restore needs those)
    spec = lab.running()
    lab.wait_up()
    first = d.start(spec).pid
    d.hibernate(iid, timeout=120)
    assert d.state(iid) == PowerState.STOPPED
    assert iid not in {h.instance_id for h in d.recover()}
    assert d.hibernated(iid) is True
    assert lab.another_driver().hibernated(iid) is True  # the image outlives the driver object
    restored = d.restore(spec)
    assert restored.pid != first and d.state(iid) == PowerState.RUNNING
    assert d.hibernated(iid) is False  # the image went once the VM ran
    assert d.restore(spec).pid == restored.pid  # running already: its handle
    with pytest.raises(VmNotRunning):
        d.hibernate(new_id("i-never"), timeout=5)


def test_power_off_start_again_reset_and_destroy(lab: Lab) -> None:
    spec = lab.running()
    lab.wait_up()
    d, iid = lab.driver, spec.instance_id
    first = d.start(spec).pid
    assert d.shutdown(iid, timeout=60) is True
    assert d.state(iid) == PowerState.STOPPED
    assert d.shutdown(iid, timeout=1) is True  # off already
    assert iid not in {h.instance_id for h in d.recover()}
    second = d.start(spec).pid  # a stopped VM starts again
    assert second != first and d.state(iid) == PowerState.RUNNING
    d.reboot(iid, force=True)  # the reset line: the same VM process
    assert d.state(iid) == PowerState.RUNNING and d.start(spec).pid == second
    d.destroy(iid)
    assert d.state(iid) == PowerState.STOPPED
    d.destroy(iid)  # gone already
    console = d.console_output(iid)  # the console outlives the VM ...
    assert console and d.console_output(iid, max_bytes=10) == console[-10:]
    d.cleanup(iid)
    d.cleanup(iid)
    assert d.console_output(iid) == b""  # ... until cleanup
    assert d.state(iid) == PowerState.STOPPED
