"""The agent moves statuses only through the state tables: every instance step goes through
`instance_states.agent_step` (AGENT_STEPS), every disk move through `disk_states.agent_move`
(AGENT_MOVES). A step a table lacks is refused loudly (logged as a bug, raised, the status
left as it was), and every step the agent takes in a life of instances and disks is in them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from nubes.agent.storage import MAX_ATTEMPTS, StorageWork
from nubes.domain import disk_states as ds
from nubes.domain import instance_states as states
from nubes.domain.disks import DiskSpec
from nubes.domain.launch import DiskRequest
from nubes.domain.state_tables import IllegalStatusMove
from nubes.drivers.compute.base import ComputeError
from nubes.store.models import Disk
from tests.unit.host_world import HostWorld


@pytest.fixture
def world(tmp_path: Path) -> Iterator[HostWorld]:
    world = HostWorld(tmp_path)
    yield world
    world.close()


# ---- a step the table lacks ---------------------------------------------------------------------


def test_a_step_the_instance_table_lacks_is_refused_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert states.agent_step("i-1", states.STARTING, "guest_up") == states.RUNNING
    with caplog.at_level(logging.ERROR), pytest.raises(IllegalStatusMove, match="Running -> built_running"):
        states.agent_step("i-1", states.RUNNING, "built_running")
    assert "BUG" in caplog.text and "i-1" in caplog.text


def test_a_move_the_disk_table_lacks_is_refused_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert ds.agent_move("d-1", ds.ATTACHING, ds.IN_USE) == ds.IN_USE
    assert ds.agent_move("d-1", ds.IN_USE, ds.IN_USE) == ds.IN_USE  # staying is no move
    for status, to in ((ds.AVAILABLE, ds.IN_USE), (ds.IN_USE, ds.DETACHING), (ds.AVAILABLE, ds.CREATING)):
        with caplog.at_level(logging.ERROR), pytest.raises(IllegalStatusMove):
            ds.agent_move("d-1", status, to)
    assert caplog.text.count("BUG") == 3


def test_the_agent_refuses_a_status_step_the_table_lacks(
    world: HostWorld, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without (Starting, guest_up) in the table, a booted instance stays Starting and the
    agent logs the bug on every pass, instead of moving it anyway."""
    instance_id = world.launch()
    world.settle(lambda: world.status(instance_id) == states.STARTING)
    monkeypatch.delitem(states.AGENT_STEPS, (states.STARTING, "guest_up"))
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            world.agent.pass_once(wait=True)
    assert world.status(instance_id) == states.STARTING
    assert "BUG: instance" in caplog.text and "Starting -> guest_up" in caplog.text
    with pytest.raises(IllegalStatusMove):  # the compare-and-set UPDATE is never reached
        world.agent.compute._set_status(instance_id, states.STARTING, "powered_on")
    assert world.status(instance_id) == states.STARTING
    monkeypatch.undo()
    world.reach(instance_id, states.RUNNING)


def test_the_agent_refuses_a_disk_move_the_table_lacks(
    world: HostWorld, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    instance_id = world.launch()
    world.reach(instance_id, states.RUNNING)
    disk_id = world.services.disks.create(
        world.scope, DiskSpec(zone_id=None, category="cloud_essd", size_gib=20, instance_id=instance_id)
    )
    monkeypatch.setattr(ds, "AGENT_MOVES", ds.AGENT_MOVES - {(ds.ATTACHING, ds.IN_USE)})
    with caplog.at_level(logging.ERROR):
        for _ in range(MAX_ATTEMPTS - 1):
            world.agent.pass_once(wait=True)
    assert world.disk_status(disk_id) == ds.ATTACHING  # created, then refused In_use on every try
    assert "BUG: disk" in caplog.text and "Attaching -> In_use" in caplog.text
    monkeypatch.undo()
    world.settle(lambda: world.disk_status(disk_id) == ds.IN_USE)


# ---- every step the agent takes is in the tables -------------------------------------------------------


def test_every_status_move_of_the_agent_is_in_the_tables(
    world: HostWorld, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A life of instances and disks on the fake drivers, with failures and a host restart, the
    agent's every status move recorded: all are in the tables (nothing refused), and the life
    covers the moves it is meant to."""
    steps: set[tuple[str, str]] = set()
    moves: set[tuple[str, str]] = set()
    agent_step, agent_move = states.agent_step, ds.agent_move

    def record_step(instance_id: str, status: str, event: str) -> str:
        steps.add((status, event))
        return agent_step(instance_id, status, event)

    def record_move(disk_id: str, status: str, to: str) -> str:
        if to != status:
            moves.add((status, to))
        return agent_move(disk_id, status, to)

    monkeypatch.setattr(states, "agent_step", record_step)
    monkeypatch.setattr(ds, "agent_move", record_move)
    account = world.scope.account_id
    disks = world.services.disks

    with caplog.at_level(logging.ERROR):
        # launch, stop, re-initialise the system disk, start, reboot
        kept = DiskRequest(size_gib=20, category="cloud_essd", delete_with_instance=False)
        instance_id = world.launch(data_disks=[kept])
        world.reach(instance_id, states.RUNNING)
        world.act(instance_id, "StopInstance")
        world.reach(instance_id, states.STOPPED)
        [system_disk] = disks_of(world, instance_id, "system")
        disks.reinit(account, system_disk)
        world.settle(lambda: world.disk_status(system_disk) == ds.IN_USE)
        world.act(instance_id, "StartInstance")
        world.reach(instance_id, states.RUNNING)
        world.act(instance_id, "RebootInstance")
        world.reach(instance_id, states.RUNNING)

        # a disk made for the instance, detached, then an attach that fails for good
        disk_id = disks.create(
            world.scope, DiskSpec(zone_id=None, category="cloud_essd", size_gib=20, instance_id=instance_id)
        )
        world.settle(lambda: world.disk_status(disk_id) == ds.IN_USE)
        disks.detach(account, disk_id, instance_id, None)
        world.settle(lambda: world.disk_status(disk_id) == ds.AVAILABLE)
        for _ in range(MAX_ATTEMPTS):
            world.vms.inject_failure("attach_disk", ComputeError("no free slot"), instance_id)
        disks.attach(account, disk_id, instance_id, None)
        world.settle(lambda: world.disk_status(disk_id) == ds.AVAILABLE)

        # the guest powers itself off: the agent after a restart finds it
        world.vms.guest_power_off(instance_id)
        world.agent.stop()
        world.agent = world.new_agent()
        world.reach(instance_id, states.STOPPED)

        # a start that keeps failing ends Stopped
        for _ in range(5):
            world.vms.inject_failure("start", ComputeError("qemu: could not open the disk"), instance_id)
        world.act(instance_id, "StartInstance")
        world.reach(instance_id, states.STOPPED)

        # deleted: the data disk it does not take along is released
        [data_disk] = disks_of(world, instance_id, "data")
        world.act(instance_id, "DeleteInstance")
        world.reach(instance_id, None)
    assert world.disk_status(data_disk) == ds.AVAILABLE

    assert "BUG" not in caplog.text
    assert steps <= set(states.AGENT_STEPS)
    assert moves <= ds.AGENT_MOVES
    assert steps >= {
        (states.PENDING, "built_running"),
        (states.STARTING, "guest_up"),
        (states.STOPPING, "powered_off"),
        (states.STOPPING, "reboot_off"),
        (states.RUNNING, "powered_off"),
        (states.STARTING, "start_failed"),
    }
    assert moves >= {
        (ds.REINITING, ds.IN_USE),
        (ds.CREATING, ds.ATTACHING),
        (ds.ATTACHING, ds.IN_USE),
        (ds.DETACHING, ds.AVAILABLE),
        (ds.ATTACHING, ds.AVAILABLE),
        (ds.IN_USE, ds.AVAILABLE),
    }


def disks_of(world: HostWorld, instance_id: str, disk_type: str) -> list[str]:
    with world.db.session() as s:
        return list(
            s.scalars(select(Disk.id).where(Disk.instance_id == instance_id, Disk.disk_type == disk_type))
        )


def test_a_start_sent_while_pending_is_queued_and_the_instance_runs(world: HostWorld) -> None:
    """CreateInstance then StartInstance at once (libcloud's create_node): no refusal."""
    instance_id = world.launch(start=False)
    assert world.status(instance_id) == states.PENDING
    world.act(instance_id, "StartInstance")
    assert world.status(instance_id) == states.PENDING  # queued: Pending until built
    world.reach(instance_id, states.RUNNING)


def test_a_start_queued_while_the_disks_are_made_is_not_lost(
    world: HostWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent read `desired=stopped`, then StartInstance commits while it builds: the
    instance must still end Running, not Stopped."""
    instance_id = world.launch(start=False)
    make_disks = StorageWork.make_instance_disks

    def make_and_meanwhile_start(work: StorageWork, built_id: str) -> None:
        make_disks(work, built_id)
        if built_id == instance_id and world.status(instance_id) == states.PENDING:
            world.act(instance_id, "StartInstance")

    monkeypatch.setattr(StorageWork, "make_instance_disks", make_and_meanwhile_start)
    world.reach(instance_id, states.RUNNING)


def test_a_start_decided_on_pending_is_decided_again_if_the_agent_moved_on(
    world: HostWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """StartInstance reads Pending and queues; meanwhile the agent finishes the build and moves
    the instance to Stopped. The start must not be written over Stopped (a Stopped instance that
    wants to run is never started): it is decided again, on Stopped, and the instance runs."""
    instance_id = world.launch(start=False)
    check = states.check
    built: list[bool] = []

    def check_while_the_agent_builds(action: str, checked_id: str, status: str) -> states.Transition:
        transition = check(action, checked_id, status)
        if not built:
            built.append(True)
            world.reach(instance_id, states.STOPPED)
        return transition

    monkeypatch.setattr(states, "check", check_while_the_agent_builds)
    world.act(instance_id, "StartInstance")
    monkeypatch.undo()
    assert world.status(instance_id) == states.STARTING
    world.reach(instance_id, states.RUNNING)
