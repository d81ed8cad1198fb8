"""Instance system events carried by the host agent's timers, pass by pass on the fake drivers
with a manual clock: a simulated event is a drill (Scheduled, then Executed at its NotBefore,
nothing touched) unless TriggerRealOps asks for the real reboot or redeploy; a reboot by the
owner first avoids a maintenance reboot; a cancelled event stays Canceled; a failure event is
Executing until its NotBefore; RedeployInstance's task finishes once the instance is back."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from nubes.domain import system_events as ev
from nubes.domain import tasks
from nubes.errors import ApiError
from nubes.store.models import Instance, SystemEvent

from .host_world import HostWorld


def event(world: HostWorld, event_id: str) -> SystemEvent:
    with world.db.session() as s:
        row = s.get(SystemEvent, event_id)
        assert row is not None
        return row


def started_at(world: HostWorld, instance_id: str) -> datetime | None:
    with world.db.session() as s:
        row = s.get(Instance, instance_id)
        assert row is not None
        return row.started_at


def running(world: HostWorld) -> str:
    instance_id = world.launch()
    world.reach(instance_id, "Running")
    return instance_id


def simulate(world: HostWorld, instance_id: str, event_type: str, real: bool, after: float = 600) -> str:
    not_before = world.clock.now() + timedelta(seconds=after)
    [event_id] = world.services.events.simulate(world.scope, [instance_id], event_type, not_before, real)
    return event_id


def test_a_drill_passes_at_its_time_and_touches_nothing(world: HostWorld) -> None:
    instance_id = running(world)
    before = started_at(world, instance_id)
    event_id = simulate(world, instance_id, ev.MAINTENANCE_REBOOT, real=False)
    world.agent.pass_once(wait=True)
    assert event(world, event_id).status == ev.SCHEDULED
    world.clock.advance(601)
    world.agent.pass_once(wait=True)
    done = event(world, event_id)
    assert (done.status, done.simulated) == (ev.EXECUTED, True)
    assert done.finished_at is not None
    world.agent.pass_once(wait=True)
    assert (world.status(instance_id), started_at(world, instance_id)) == ("Running", before)


@pytest.mark.parametrize("event_type", [ev.MAINTENANCE_REBOOT, ev.MAINTENANCE_REDEPLOY])
def test_real_ops_reboot_or_redeploy_at_the_time(world: HostWorld, event_type: str) -> None:
    instance_id = running(world)
    world.clock.advance(1)
    before = started_at(world, instance_id)
    event_id = simulate(world, instance_id, event_type, real=True)
    world.clock.advance(599)
    world.agent.pass_once(wait=True)
    assert (event(world, event_id).status, world.status(instance_id)) == (ev.SCHEDULED, "Running")
    world.clock.advance(1)
    world.agent.pass_once(wait=True)  # the timers ask for the reboot; the instance goes through it
    assert event(world, event_id).status == ev.EXECUTING
    world.settle(lambda: event(world, event_id).status == ev.EXECUTED)
    assert world.status(instance_id) == "Running"
    after = started_at(world, instance_id)
    assert before is not None and after is not None and after > before  # it was started again


def test_a_reboot_first_avoids_a_maintenance_reboot(world: HostWorld) -> None:
    instance_id = running(world)
    event_id = simulate(world, instance_id, ev.MAINTENANCE_REBOOT, real=True)
    world.clock.advance(60)
    world.act(instance_id, "RebootInstance")
    world.reach(instance_id, "Running")
    world.clock.advance(600)
    world.agent.pass_once(wait=True)
    assert event(world, event_id).status == ev.AVOIDED


def test_cancelled_events_and_failure_drills(world: HostWorld) -> None:
    instance_id = running(world)
    cancelled = simulate(world, instance_id, ev.MAINTENANCE_REBOOT, real=True)
    world.services.events.cancel_simulated(world.scope, [cancelled])
    failure = simulate(world, instance_id, ev.FAILURE_REBOOT, real=False, after=120)
    assert event(world, failure).status == ev.EXECUTING
    world.clock.advance(700)
    world.agent.pass_once(wait=True)
    assert (event(world, cancelled).status, event(world, failure).status) == (ev.CANCELED, ev.EXECUTED)
    assert world.status(instance_id) == "Running"
    with pytest.raises(ApiError) as info:
        world.services.events.cancel_simulated(world.scope, ["e-nothing"])
    assert info.value.code == "InvalidEventId.NotFound"
    with pytest.raises(ApiError) as bad:
        simulate(world, instance_id, ev.MAINTENANCE_REBOOT, real=False, after=-60)
    assert bad.value.code == "InvalidParameter"


def test_an_event_of_a_released_instance_is_canceled(world: HostWorld) -> None:
    instance_id = running(world)
    event_id = simulate(world, instance_id, ev.MAINTENANCE_REDEPLOY, real=True)
    world.act(instance_id, "ForceDeleteInstance")
    world.reach(instance_id, None)
    world.clock.advance(601)
    world.agent.pass_once(wait=True)
    assert event(world, event_id).status == ev.CANCELED


@pytest.mark.parametrize("stopped", [False, True])
def test_redeploy_instance_comes_back_running_and_its_task_finishes(world: HostWorld, stopped: bool) -> None:
    instance_id = running(world)
    if stopped:
        world.act(instance_id, "StopInstance")
        world.reach(instance_id, "Stopped")
    world.clock.advance(1)
    task_id = world.services.events.redeploy(world.scope.account_id, instance_id, force=True)
    assert world.status(instance_id) == "Stopping"
    task = world.services.tasks.get(world.scope.account_id, task_id, None)
    assert (task.action, task.status, task.resource_id) == (
        tasks.REDEPLOY_INSTANCE,
        tasks.PROCESSING,
        instance_id,
    )
    world.reach(instance_id, "Running")
    world.agent.pass_once(wait=True)
    assert world.services.tasks.get(world.scope.account_id, task_id, None).status == tasks.FINISHED
    world.act(instance_id, "StopInstance")
    with pytest.raises(ApiError) as info:
        world.services.events.redeploy(world.scope.account_id, instance_id, force=False)  # Stopping
    assert info.value.code == "IncorrectInstanceStatus"


def test_finished_events_are_shown_thirty_days(world: HostWorld) -> None:
    instance_id = running(world)
    event_id = simulate(world, instance_id, ev.MAINTENANCE_REBOOT, real=False, after=60)
    world.clock.advance(61)
    world.agent.pass_once(wait=True)
    recent = ev.EventFilter(finished_since=world.clock.now() - timedelta(days=ev.HISTORY_DAYS))
    assert [e.id for e in world.services.events.find(world.scope, recent)] == [event_id]
    world.clock.advance(31 * 86400)
    later = ev.EventFilter(finished_since=world.clock.now() - timedelta(days=ev.HISTORY_DAYS))
    assert world.services.events.find(world.scope, later) == []
