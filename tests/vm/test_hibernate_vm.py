"""Done when (issue 13, hibernation): a process started in a real guest is still running after
StopInstance Hibernate=true and StartInstance -- the same process (same PID), its counter in a
tmpfs file continued, the guest's uptime continued -- while hibernated no QEMU runs and the
memory image is kept beside the VM's files; it is gone once the instance runs again. And a
save cut short (the agent killed before its commit point) leaves the old VM running; one cut
short after it leaves a hibernated VM that restores.

The tiny image (busybox, TCG) through the official SDK against `nubes server --driver real`. The
guest's user data starts a ticker that prints `HIB-TICK pid=<its pid> n=<count> up=<uptime>` on
the serial console every second, the count kept in /run (a tmpfs)."""

from __future__ import annotations

import base64
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alibabacloud_ecs20140526 import models as em

from nubes.drivers.compute.base import Boot, DiskAttachment, PowerState, VmSpec
from nubes.drivers.compute.qemu import QemuDriver
from nubes.drivers.compute.qemu.qmp import qmp
from nubes.guest.images import ImageManifest
from tests.conftest import LiveServer
from tests.e2e.conftest import make_net
from tests.vm.test_instance_lifecycle import (
    REGION,
    launch_tiny,
    qemu_processes,
    real_server,
    wait_status,
)

pytestmark = pytest.mark.vm

TICKER = """#!/bin/sh
cat > /run/ticker <<'EOS'
#!/bin/sh
while :; do
  n=$(( $(cat /run/ticks 2>/dev/null || echo 0) + 1 ))
  echo $n > /run/ticks
  read up _ < /proc/uptime
  echo "HIB-TICK pid=$$ n=$n up=$up" > /dev/console
  sleep 1
done
EOS
chmod 700 /run/ticker
/run/ticker </dev/null >/dev/null 2>&1 &
"""
TICK = re.compile(r"HIB-TICK pid=(\d+) n=(\d+) up=([\d.]+)")


@pytest.fixture(scope="module")
def server(
    images_dir: Path, tiny_image: ImageManifest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with real_server(tmp_path_factory.mktemp("hibernate"), images_dir) as live:
        yield live


def ticks(serial: Path, after: int = 0) -> list[tuple[int, int, float]]:
    text = serial.read_bytes()[after:].decode(errors="replace")
    return [(int(p), int(n), float(up)) for p, n, up in TICK.findall(text)]


def wait_tick(serial: Path, after: int, timeout: float = 300) -> tuple[int, int, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = ticks(serial, after) if serial.exists() else []
        if found:
            return found[-1]
        time.sleep(0.2)
    raise AssertionError(f"no HIB-TICK in {serial} after byte {after}")


def test_a_guest_process_survives_hibernation(server: LiveServer) -> None:
    net = make_net(server, "10.83.0.0/16")
    ecs = net.ecs
    instance_id = launch_tiny(
        ecs,
        net.vswitch_id,
        net.group(),
        user_data=base64.b64encode(TICKER.encode()).decode(),
        hibernation_options=em.RunInstancesRequestHibernationOptions(configured=True),
    )
    vm_dir = server.data_dir / "run" / "vms" / instance_id
    serial, image = vm_dir / "serial.log", vm_dir / "memory.img"
    assert wait_status(ecs, instance_id, "Running", 300) == "Running"
    wait_tick(serial, 0)
    time.sleep(2)  # a few ticks

    ecs.stop_instance(em.StopInstanceRequest(instance_id=instance_id, hibernate=True))
    assert wait_status(ecs, instance_id, "Stopped", 300) == "Stopped"
    assert qemu_processes(instance_id) == []
    assert image.is_file() and image.stat().st_size > 0
    [described] = ecs.describe_instances(
        em.DescribeInstancesRequest(region_id=REGION, instance_ids=f'["{instance_id}"]')
    ).body.instances.instance
    assert (described.status, described.hibernation_options.configured) == ("Stopped", True)
    pid, count, up = ticks(serial)[-1]  # the last tick before the save
    offset = serial.stat().st_size

    ecs.start_instance(em.StartInstanceRequest(instance_id=instance_id))
    assert wait_status(ecs, instance_id, "Running", 300) == "Running"
    assert len(qemu_processes(instance_id)) == 1
    assert not image.exists()
    after_pid, after_count, after_up = wait_tick(serial, offset, 120)
    assert after_pid == pid  # the same process, not a new one
    assert after_count > count  # its count in /run (tmpfs) went on from where it was
    assert after_up > up  # the guest's uptime went on: it did not boot again
    assert "NUBES-READY" not in serial.read_bytes()[offset:].decode(errors="replace")

    ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))


# ---- crashes in the middle of a save, with the qemu driver alone (no network: the guest's state
# is what counts here, not its services) ------------------------------------------------------------


def _driver_vm(images_dir: Path, manifest: ImageManifest, workdir: Path) -> tuple[QemuDriver, VmSpec]:
    disk = workdir / "d-sys.qcow2"
    rootfs = manifest.path(images_dir, "rootfs")
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(rootfs), "-F", "qcow2", str(disk)], check=True
    )
    driver = QemuDriver(workdir / "vms", accel="tcg")
    boot = Boot(manifest.path(images_dir, "kernel"), manifest.path(images_dir, "initrd"), manifest.cmdline)
    return driver, VmSpec("i-hibcrash", 1, 192, boot, (DiskAttachment("d-sys", disk),))


def _save_by_hand(driver: QemuDriver, instance_id: str) -> Path:
    """What hibernate() does up to its commit point (the rename), as an agent killed just before
    it would have left it: intent "hibernating", guest paused, the complete stream in the
    partial file."""
    image = driver.memory_image(instance_id)
    partial = image.with_name(image.name + ".partial")
    (image.parent / "intent").write_text("hibernating\n")
    handle = driver.recover()[0]
    with qmp(handle.qmp_socket) as q:
        q.execute("stop")
        q.execute("migrate", {"uri": f"exec:cat > {partial}"})
        deadline = time.monotonic() + 120
        while q.execute("query-migrate").get("status") != "completed":
            assert time.monotonic() < deadline, "the save did not complete"
            time.sleep(0.05)
    return partial


def test_a_save_cut_short_leaves_the_old_vm_running(
    images_dir: Path, tiny_image: ImageManifest, vm_workdir: Path
) -> None:
    driver, spec = _driver_vm(images_dir, tiny_image, vm_workdir)
    try:
        pid = driver.start(spec).pid
        partial = _save_by_hand(driver, spec.instance_id)
        assert not driver.hibernated(spec.instance_id)  # settles: the partial image is not one
        assert not partial.exists()
        assert driver.state(spec.instance_id) == PowerState.RUNNING
        assert driver.recover()[0].pid == pid  # the same QEMU, continued

        # the same, but the rename (the commit point) happened: hibernated, QEMU quit
        partial = _save_by_hand(driver, spec.instance_id)
        partial.rename(driver.memory_image(spec.instance_id))
        assert driver.hibernated(spec.instance_id)
        assert driver.recover() == []
        handle = driver.restore(spec)
        assert handle.pid != pid
        assert driver.state(spec.instance_id) == PowerState.RUNNING
        assert not driver.memory_image(spec.instance_id).exists()
    finally:
        driver.destroy(spec.instance_id)
        driver.cleanup(spec.instance_id)
