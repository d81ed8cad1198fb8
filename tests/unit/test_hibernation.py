"""Hibernation on the fake drivers: the status table, the agent's save and restore, what a
hibernated instance may not do, and what a crash in the middle leaves (agent side with the fake
driver; the qemu driver's files without a VM). Real VMs: tests/vm/test_hibernate_vm.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from nubes.domain import instance_states as states
from nubes.domain.launch import DiskRequest
from nubes.domain.state_tables import IllegalStatusMove
from nubes.drivers.compute.base import ComputeError, PowerState
from nubes.drivers.compute.qemu import QemuDriver
from nubes.drivers.compute.qemu.vmdir import INTENT_FILE, MEMORY_FILE, PARTIAL_SUFFIX
from nubes.errors import ApiError
from nubes.store.models import Disk, Instance

from .host_world import HostWorld


def row(world: HostWorld, instance_id: str) -> Instance:
    with world.db.session() as s:
        instance = s.get(Instance, instance_id)
        assert instance is not None
        return instance


def running(world: HostWorld, **launch: object) -> str:
    instance_id = world.launch(hibernation=True, **launch)  # type: ignore[arg-type]
    world.reach(instance_id, states.RUNNING)
    return instance_id


def hibernated(world: HostWorld, instance_id: str) -> None:
    world.act(instance_id, "HibernateInstance")
    world.reach(instance_id, states.STOPPED)


# ---- the status table ---------------------------------------------------------------------------


def test_hibernation_is_a_stop_from_running_only() -> None:
    transition = states.check("HibernateInstance", "i-1", states.RUNNING)
    assert (transition.to, transition.desired) == (states.STOPPING, states.WANT_HIBERNATED)
    for status in (states.STARTING, states.STOPPED, states.PENDING, states.STOPPING):
        with pytest.raises(ApiError) as info:
            states.check("HibernateInstance", "i-1", status)
        assert info.value.code == "IncorrectInstanceStatus"
    assert states.agent_step("i-1", states.STOPPING, "hibernated") == states.STOPPED
    with pytest.raises(IllegalStatusMove):
        states.agent_step("i-1", states.RUNNING, "hibernated")


def test_changes_of_devices_are_refused_while_hibernated_only() -> None:
    states.check_not_hibernated("AttachDisk", "i-1", False)
    states.check_not_hibernated("CreateSnapshot", "i-1", True)  # snapshots change no disk content
    with pytest.raises(ApiError) as info:
        states.check_not_hibernated("AttachDisk", "i-1", True)
    assert (info.value.code, info.value.http_status) == ("IncorrectInstanceStatus", 403)


# ---- the agent with the fake driver -------------------------------------------------------------


def test_hibernate_then_start_continues_the_same_guest(world: HostWorld) -> None:
    instance_id = running(world)
    assert world.vms.vms[instance_id].boots == 1
    hibernated(world, instance_id)
    instance = row(world, instance_id)
    assert (instance.hibernated, instance.desired) == (True, states.WANT_STOPPED)
    assert world.vms.vms[instance_id].image
    assert world.vms.vms[instance_id].power == PowerState.STOPPED

    world.act(instance_id, "StartInstance")
    world.reach(instance_id, states.RUNNING)
    assert not row(world, instance_id).hibernated
    vm = world.vms.vms[instance_id]
    assert (vm.boots, vm.image, vm.power) == (1, False, PowerState.RUNNING)  # restored, not booted
    assert ("restore", instance_id) in world.vms.calls


def test_an_instance_not_configured_for_it_cannot_hibernate(world: HostWorld) -> None:
    instance_id = world.launch()
    world.reach(instance_id, states.RUNNING)
    with pytest.raises(ApiError) as info:
        world.act(instance_id, "HibernateInstance")
    assert (info.value.code, info.value.http_status) == ("InvalidOperation.HibernateNotConfigured", 403)
    assert row(world, instance_id).status == states.RUNNING


def test_a_hibernated_instance_keeps_its_devices(world: HostWorld) -> None:
    instance_id = running(world, data_disks=[DiskRequest(size_gib=20)])
    hibernated(world, instance_id)
    account = world.scope.account_id
    with world.db.session() as s:
        data_disk = s.scalars(
            select(Disk.id).where(Disk.instance_id == instance_id, Disk.disk_type == "data")
        ).one()
    refusals: list[Callable[[], object]] = [
        lambda: world.services.disks.detach(account, data_disk, instance_id, None),
        lambda: world.services.disks.resize(account, data_disk, 40, False),
        lambda: world.services.changes.modify_spec(account, instance_id, "ecs.g7.large"),
    ]
    for refused in refusals:
        with pytest.raises(ApiError) as info:
            refused()
        assert info.value.code == "IncorrectInstanceStatus"
        assert "hibernated" in info.value.message
    # started again, the same changes are allowed
    world.act(instance_id, "StartInstance")
    world.reach(instance_id, states.RUNNING)
    world.services.disks.resize(account, data_disk, 40, False)


def test_a_failed_save_stops_the_instance_plainly(world: HostWorld) -> None:
    instance_id = running(world)
    world.vms.inject_failure("hibernate", ComputeError("no room for the image"), instance_id)
    hibernated(world, instance_id)
    assert not row(world, instance_id).hibernated
    world.act(instance_id, "StartInstance")
    world.reach(instance_id, states.RUNNING)
    assert world.vms.vms[instance_id].boots == 2  # booted cold


def test_an_image_that_cannot_be_restored_boots_cold(world: HostWorld) -> None:
    instance_id = running(world)
    hibernated(world, instance_id)
    world.vms.inject_failure("restore", ComputeError("bad image"), instance_id)
    world.act(instance_id, "StartInstance")
    world.reach(instance_id, states.RUNNING)
    vm = world.vms.vms[instance_id]
    assert (vm.boots, vm.image) == (2, False)
    assert not row(world, instance_id).hibernated


def test_a_lost_image_boots_cold(world: HostWorld) -> None:
    instance_id = running(world)
    hibernated(world, instance_id)
    world.vms.vms[instance_id].image = False  # e.g. removed by hand
    world.act(instance_id, "StartInstance")
    world.reach(instance_id, states.RUNNING)
    assert world.vms.vms[instance_id].boots == 2


def test_agent_killed_after_the_save_finds_the_instance_hibernated(world: HostWorld) -> None:
    """The driver saved the image, the agent died before it wrote Stopped: a new agent does."""
    instance_id = running(world)
    world.act(instance_id, "HibernateInstance")
    world.agent.stop()
    world.agent.compute._compute.hibernate(instance_id, 10)  # what the dead agent had done
    assert row(world, instance_id).status == states.STOPPING
    world.agent = world.new_agent()
    world.reach(instance_id, states.STOPPED)
    assert row(world, instance_id).hibernated
    assert world.vms.calls.count(("hibernate", instance_id)) == 1  # not saved twice


def test_agent_killed_before_the_save_hibernates_on_its_next_pass(world: HostWorld) -> None:
    instance_id = running(world)
    world.agent.stop()
    world.act(instance_id, "HibernateInstance")
    world.agent = world.new_agent()
    world.reach(instance_id, states.STOPPED)
    assert row(world, instance_id).hibernated


def test_delete_of_a_hibernated_instance_drops_its_image(world: HostWorld) -> None:
    instance_id = running(world)
    hibernated(world, instance_id)
    world.act(instance_id, "DeleteInstance")
    world.reach(instance_id, None)
    assert instance_id not in world.vms.vms


# ---- the qemu driver's files after a crash (no VM needed) -------------------------------------------


@pytest.fixture
def qemu(tmp_path: Path) -> QemuDriver:
    return QemuDriver(tmp_path / "vms", accel="tcg", qemu_binary="/nonexistent/qemu")


def _leftovers(driver: QemuDriver, intent: str, *files: str) -> Path:
    d = driver.state_dir / "i-crash"
    d.mkdir(parents=True)
    (d / INTENT_FILE).write_text(intent + "\n")
    for name in files:
        (d / name).write_bytes(b"QEVM")
    return d


def test_a_partial_image_of_a_dead_vm_is_a_plain_stop(qemu: QemuDriver) -> None:
    d = _leftovers(qemu, "hibernating", MEMORY_FILE + PARTIAL_SUFFIX)
    assert not qemu.hibernated("i-crash")
    assert not (d / (MEMORY_FILE + PARTIAL_SUFFIX)).exists()
    assert (d / INTENT_FILE).read_text().strip() == "stopped"
    assert qemu.state("i-crash") == PowerState.STOPPED


def test_a_complete_image_of_a_dead_vm_is_hibernated(qemu: QemuDriver) -> None:
    d = _leftovers(qemu, "hibernating", MEMORY_FILE)
    assert qemu.hibernated("i-crash")
    assert (d / INTENT_FILE).read_text().strip() == "hibernated"
    assert qemu.state("i-crash") == PowerState.STOPPED


def test_a_restore_cut_short_keeps_the_image(qemu: QemuDriver) -> None:
    d = _leftovers(qemu, "restoring", MEMORY_FILE)
    assert qemu.hibernated("i-crash")
    assert (d / MEMORY_FILE).exists()
    qemu.discard_image("i-crash")
    assert not qemu.hibernated("i-crash")
    assert not (d / MEMORY_FILE).exists()


def test_the_daemonizing_parent_is_waited_for_and_a_hang_killed(tmp_path: Path) -> None:
    driver = QemuDriver(tmp_path / "vms", accel="tcg", qemu_binary="/nonexistent/qemu", launch_timeout=0.5)
    err = tmp_path / "err"
    assert driver._run_qemu("i-x", ["true"], err) == 0
    assert driver._run_qemu("i-x", ["sh", "-c", "exit 3"], err) == 3
    assert driver._run_qemu("i-x", ["sleep", "30"], err) == -1  # killed after launch_timeout
