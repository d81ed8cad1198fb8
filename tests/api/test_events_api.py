"""Instance system events and full status through the official SDK against the emulator:
CreateSimulatedSystemEvents (a drill by default), DescribeInstancesFullStatus showing the
Scheduled ones, DescribeInstanceHistoryEvents (finished ones by default; filters; both paging
styles), CancelSimulatedSystemEvents, RedeployInstance and its task, the errors and another
account's IDs. The timed execution and real operations pass by pass: tests/unit/test_system_events.py."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em

from ..conftest import LiveServer
from .test_instances_api import Lab, error_of
from .test_vpc_api import REGION


@pytest.fixture
def lab(live: LiveServer, fresh_key: tuple[str, str]) -> Lab:
    return Lab(live, fresh_key, "10.66.0.0/16")


def at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def simulate(
    lab: Lab, instance_ids: list[str], seconds: float, event_type: str = "SystemMaintenance.Reboot"
) -> list[str]:
    body = lab.ecs.create_simulated_system_events(
        em.CreateSimulatedSystemEventsRequest(
            region_id=REGION, instance_id=instance_ids, event_type=event_type, not_before=at(seconds)
        )
    ).body
    return list(body.event_id_set.event_id)


def history(lab: Lab, **fields: Any) -> Any:
    return lab.ecs.describe_instance_history_events(
        em.DescribeInstanceHistoryEventsRequest(region_id=REGION, **fields)
    ).body


def full_status(lab: Lab, **fields: Any) -> Any:
    return lab.ecs.describe_instances_full_status(
        em.DescribeInstancesFullStatusRequest(region_id=REGION, **fields)
    ).body


def test_simulated_events_scheduled_shown_executed_and_cancelled(lab: Lab) -> None:
    first, second = lab.run(amount=2)
    for instance_id in (first, second):
        assert lab.wait(instance_id, "Running") == "Running"
    [later] = simulate(lab, [first], 3600)
    [soon] = simulate(lab, [second], 1)

    # full status: the instances, their health and their Scheduled events
    body = full_status(lab, instance_id=[first])
    [row] = body.instance_full_status_set.instance_full_status_type
    assert (row.instance_id, row.status.name, row.status.code, row.health_status.name) == (
        first,
        "Running",
        16,
        "Ok",
    )
    [scheduled] = row.scheduled_system_event_set.scheduled_system_event_type
    assert (scheduled.event_id, scheduled.event_type.name, scheduled.event_cycle_status.name) == (
        later,
        "SystemMaintenance.Reboot",
        "Scheduled",
    )
    assert full_status(lab, status="Stopped").total_count == 0
    by_event = full_status(lab, event_id=[later]).instance_full_status_set.instance_full_status_type
    assert [r.instance_id for r in by_event] == [first]

    # history: finished events by default; the open ones when asked
    assert history(lab).total_count == 0
    open_ones = history(lab, instance_event_cycle_status=["Scheduled"]).instance_system_event_set
    assert later in [e.event_id for e in open_ones.instance_system_event_type]

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not history(lab, event_id=[soon]).total_count:
        time.sleep(0.2)
    [done] = history(lab, event_id=[soon]).instance_system_event_set.instance_system_event_type
    assert (done.instance_id, done.event_cycle_status.name, done.resource_type) == (
        second,
        "Executed",
        "instance",
    )
    assert done.event_finish_time and done.not_before and done.event_publish_time
    assert lab.status(second) == "Running"  # a drill: nothing was rebooted

    lab.ecs.cancel_simulated_system_events(
        em.CancelSimulatedSystemEventsRequest(region_id=REGION, event_id=[later])
    )
    cancelled = history(
        lab, event_cycle_status="Canceled"
    ).instance_system_event_set.instance_system_event_type
    assert [e.event_id for e in cancelled] == [later]
    assert history(lab, instance_id=first).total_count == 1
    assert history(lab, resource_type="ddh").total_count == 0
    assert history(lab, instance_event_type=["SystemFailure.Reboot"]).total_count == 0

    # paging, both styles
    page = history(lab, page_size=1, page_number=2)
    assert (page.total_count, page.page_number, page.page_size) == (2, 2, 1)
    first_page = history(lab, max_results=10)
    assert len(first_page.instance_system_event_set.instance_system_event_type) == 2
    assert first_page.next_token == ""


def test_event_errors_and_other_accounts(live: LiveServer, lab: Lab) -> None:
    [instance_id] = lab.run()
    [event_id] = simulate(lab, [instance_id], 3600)
    bad_type = error_of(lambda: simulate(lab, [instance_id], 3600, event_type="InstanceExpiration.Stop"))
    assert bad_type.code == "InvalidParameter"
    past = error_of(lambda: simulate(lab, [instance_id], -3600))
    assert past.code == "InvalidParameter"
    malformed = error_of(
        lambda: lab.ecs.create_simulated_system_events(
            em.CreateSimulatedSystemEventsRequest(
                region_id=REGION,
                instance_id=[instance_id],
                event_type="SystemMaintenance.Reboot",
                not_before="soon",
            )
        )
    )
    assert malformed.code == "InvalidParameter"

    other = Lab(live, live.create_account("events-other"), "10.67.0.0/16")
    assert error_of(lambda: simulate(other, [instance_id], 3600)).code == "InvalidInstanceId.NotFound"
    not_theirs = error_of(
        lambda: other.ecs.cancel_simulated_system_events(
            em.CancelSimulatedSystemEventsRequest(region_id=REGION, event_id=[event_id])
        )
    )
    assert not_theirs.code == "InvalidEventId.NotFound"
    assert history(other, instance_event_cycle_status=["Scheduled"]).total_count == 0
    assert full_status(other).total_count == 0
    redeploy = error_of(
        lambda: other.ecs.redeploy_instance(em.RedeployInstanceRequest(instance_id=instance_id))
    )
    assert redeploy.code == "InvalidInstanceId.NotFound"


def test_redeploy_instance_and_its_task(lab: Lab) -> None:
    [instance_id] = lab.run()
    assert lab.wait(instance_id, "Running") == "Running"
    task_id = lab.ecs.redeploy_instance(
        em.RedeployInstanceRequest(instance_id=instance_id, force_stop=True)
    ).body.task_id
    assert task_id.startswith("t-")
    assert lab.wait(instance_id, "Running") == "Running"
    deadline = time.monotonic() + 30
    status = ""
    while time.monotonic() < deadline and status != "Finished":
        [task] = lab.ecs.describe_tasks(
            em.DescribeTasksRequest(region_id=REGION, task_ids=task_id)
        ).body.task_set.task
        status = task.task_status
        time.sleep(0.1)
    assert (task.task_action, task.resource_id, status, task.support_cancel) == (
        "RedeployInstance",
        instance_id,
        "Finished",
        "false",
    )
    lab.ecs.stop_instance(em.StopInstanceRequest(instance_id=instance_id))
    assert lab.wait(instance_id, "Stopped") == "Stopped"
    lab.ecs.redeploy_instance(em.RedeployInstanceRequest(instance_id=instance_id))
    assert lab.wait(instance_id, "Running") == "Running"  # ECS brings a redeployed instance back Running
