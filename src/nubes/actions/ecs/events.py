"""Instance system events and full status: DescribeInstanceHistoryEvents,
DescribeInstancesFullStatus, CreateSimulatedSystemEvents, CancelSimulatedSystemEvents, and
RedeployInstance."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from nubes.actions.common import REGION_ID, TAGS, tagged, utc_param
from nubes.actions.paging import either_page, number_paged, page_params, token_params
from nubes.api.context import ActionContext
from nubes.api.params import Boolean, String, StringList, Struct
from nubes.api.registry import ActionTable
from nubes.clock import iso8601_seconds
from nubes.domain import instance_states as istates
from nubes.domain import system_events as ev
from nubes.store.models import SystemEvent

actions = ActionTable("ecs")

# The lifecycle statuses of instances and their codes (Status.Code), and the health statuses.
STATUS_CODES = {
    istates.PENDING: 0,
    istates.STARTING: 8,
    istates.RUNNING: 16,
    istates.STOPPING: 64,
    istates.STOPPED: 80,
}
HEALTH_CODES = {
    "Ok": 0,
    "Impaired": 1,
    "Initializing": 2,
    "InsufficientData": 3,
    "NotApplicable": 4,
    "Warning": 5,
}
EVENT_TYPE = String("EventType", choices=tuple(ev.TYPE_CODES))
EVENT_TYPES = StringList("InstanceEventType", max_items=30, item_choices=tuple(ev.TYPE_CODES))
EVENT_IDS = StringList("EventId", max_items=100, item_max_length=64)
WINDOWS = [
    Struct("EventPublishTime", [String("Start", max_length=32), String("End", max_length=32)]),
    Struct("NotBefore", [String("Start", max_length=32), String("End", max_length=32)]),
]


def _window(p: dict[str, Any], name: str) -> tuple[datetime | None, datetime | None]:
    given = p.get(name) or {}
    return utc_param(f"{name}.Start", given.get("Start")), utc_param(f"{name}.End", given.get("End"))


def _filter(p: dict[str, Any], statuses: tuple[str, ...], **more: Any) -> ev.EventFilter:
    """The event filters both Describe actions take (InstanceEventType.N over EventType)."""
    types = tuple(p["InstanceEventType"] or ()) or ((p["EventType"],) if p["EventType"] else ())
    return ev.EventFilter(
        event_ids=tuple(p["EventId"] or ()),
        types=types,
        statuses=statuses,
        published=_window(p, "EventPublishTime"),
        not_before=_window(p, "NotBefore"),
        **more,
    )


def _named(name: str, codes: dict[str, int]) -> dict[str, Any]:
    return {"Code": codes.get(name, 0), "Name": name}


def render_event(event: SystemEvent) -> dict[str, Any]:
    finished = event.finished_at if event.status in ev.DONE else None
    return {
        "EventId": event.id,
        "InstanceId": event.instance_id,
        "ResourceType": "instance",
        "EventType": _named(event.event_type, ev.TYPE_CODES),
        "EventCycleStatus": _named(event.status, ev.CYCLE_CODES),
        "EventPublishTime": iso8601_seconds(event.published_at),
        "NotBefore": iso8601_seconds(event.not_before),
        "EventFinishTime": iso8601_seconds(finished) if finished is not None else "",
        "Reason": event.reason,
        "ReasonCode": "",
        "ImpactLevel": "",
        "ExtendedAttribute": {
            "CanAccept": "",
            "Code": "",
            "Device": "",
            "DiskId": "",
            "HostId": "",
            "HostType": "",
            "InactiveDisks": {"InactiveDisk": []},
            "InitialNotBefore": iso8601_seconds(event.not_before),
            "MetricName": "",
            "MetricValue": "",
            "MigrationOptions": {"MigrationOption": []},
            "OnlineRepairPolicy": "",
            "PunishDomain": "",
            "PunishType": "",
            "PunishUrl": "",
            "Rack": "",
            "ResponseResult": "",
        },
    }


@actions.define(
    "DescribeInstanceHistoryEvents",
    [
        REGION_ID,
        String("InstanceId", max_length=64),
        StringList("ResourceId", max_items=100, item_max_length=64),
        String("ResourceType", choices=("instance", "ddh", "managehost")),
        EVENT_IDS,
        EVENT_TYPE,
        EVENT_TYPES,
        String("EventCycleStatus", choices=tuple(ev.CYCLE_CODES)),
        StringList("InstanceEventCycleStatus", max_items=7, item_choices=tuple(ev.CYCLE_CODES)),
        String("ImpactLevel", max_length=32),
        String("ResourceGroupId", max_length=64),
        *WINDOWS,
        TAGS,
        *page_params(max_size=100, default_size=None),
        *token_params(max_results=100, min_results=10),
    ],
)
def describe_instance_history_events(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The system events of the caller's instances in a region, newest first: by default the
    finished ones (Avoided, Executed, Canceled, Failed) of the last 30 days, as ECS answers."""
    scope = ctx.scope(p["RegionId"])
    statuses = tuple(p["InstanceEventCycleStatus"] or ()) or (
        (p["EventCycleStatus"],) if p["EventCycleStatus"] else ev.DONE
    )
    instance_ids = tuple(p["ResourceId"] or ()) + ((p["InstanceId"],) if p["InstanceId"] else ())
    # nubes has instance events only, in no resource group, of no impact level
    nothing = p["ResourceType"] not in (None, "instance") or bool(p["ResourceGroupId"] or p["ImpactLevel"])
    since = ctx.services.clock.now() - timedelta(days=ev.HISTORY_DAYS)
    where = _filter(p, statuses, instance_ids=instance_ids, nothing=nothing, finished_since=since)
    found = ctx.services.events.find(scope, where)
    found = tagged(ctx, scope, "instance", found, lambda e: e.instance_id, p)
    page = either_page(found, p, "InstanceSystemEventSet", "InstanceSystemEventType")
    page["InstanceSystemEventSet"]["InstanceSystemEventType"] = [
        render_event(e) for e in page["InstanceSystemEventSet"]["InstanceSystemEventType"]
    ]
    page.setdefault("PageNumber", p["PageNumber"] or 1)
    page.setdefault("PageSize", p["PageSize"] or p["MaxResults"] or 10)
    return {"TotalCount": len(found), **page}


def _health(status: str) -> str:
    if status == istates.RUNNING:
        return "Ok"
    if status in (istates.PENDING, istates.STARTING):
        return "Initializing"
    return "NotApplicable"


@actions.define(
    "DescribeInstancesFullStatus",
    [
        REGION_ID,
        StringList("InstanceId", max_items=100, item_max_length=64),
        String("Status", choices=tuple(STATUS_CODES)),
        String("HealthStatus", choices=tuple(HEALTH_CODES)),
        EVENT_IDS,
        EVENT_TYPE,
        EVENT_TYPES,
        *WINDOWS,
        *page_params(max_size=100),
    ],
)
def describe_instances_full_status(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The caller's instances with their status, health and Scheduled system events (with event
    filters: only the instances that have such events)."""
    scope = ctx.scope(p["RegionId"])
    rows = ctx.services.instances.statuses(scope, list(p["InstanceId"] or ()), None)
    where = _filter(p, (ev.SCHEDULED,))
    scheduled = ev.events_of(ctx.services.events.find(scope, where))
    event_filtered = any(
        p[name] for name in ("EventId", "EventType", "InstanceEventType", "EventPublishTime", "NotBefore")
    )
    rows = [
        (instance_id, status)
        for instance_id, status in rows
        if (not p["Status"] or status == p["Status"])
        and (not p["HealthStatus"] or _health(status) == p["HealthStatus"])
        and (not event_filtered or instance_id in scheduled)
    ]

    def render(row: tuple[str, str]) -> dict[str, Any]:
        instance_id, status = row
        return {
            "InstanceId": instance_id,
            "Status": _named(status, STATUS_CODES),
            "HealthStatus": _named(_health(status), HEALTH_CODES),
            "ScheduledSystemEventSet": {
                "ScheduledSystemEventType": [
                    {
                        "EventId": e.id,
                        "EventType": _named(e.event_type, ev.TYPE_CODES),
                        "EventCycleStatus": _named(e.status, ev.CYCLE_CODES),
                        "EventPublishTime": iso8601_seconds(e.published_at),
                        "NotBefore": iso8601_seconds(e.not_before),
                        "Reason": e.reason,
                        "ImpactLevel": "",
                        "ExtendedAttribute": {
                            "Device": "",
                            "DiskId": "",
                            "InactiveDisks": {"InactiveDisk": []},
                        },
                    }
                    for e in scheduled.get(instance_id, [])
                ]
            },
        }

    return number_paged(rows, p, "InstanceFullStatusSet", "InstanceFullStatusType", render)


@actions.define(
    "CreateSimulatedSystemEvents",
    [
        REGION_ID,
        StringList("InstanceId", required=True, max_items=100, item_max_length=64),
        String("EventType", required=True, choices=tuple(ev.TYPE_CODES)),
        String("NotBefore", required=True, max_length=32),
        # A simulated event is a drill that touches nothing, as ECS's; TriggerRealOps carries it out.
        Boolean("TriggerRealOps", default=False),
    ],
)
def create_simulated_system_events(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Schedule a simulated event per instance; with TriggerRealOps nubes reboots or redeploys
    the instance for real at NotBefore."""
    scope = ctx.scope(p["RegionId"])
    not_before = utc_param("NotBefore", p["NotBefore"])
    assert not_before is not None  # a required parameter
    made = ctx.services.events.simulate(
        scope, list(p["InstanceId"]), p["EventType"], not_before, p["TriggerRealOps"]
    )
    return {"EventIdSet": {"EventId": made}}


@actions.define(
    "CancelSimulatedSystemEvents",
    [REGION_ID, StringList("EventId", required=True, max_items=100, item_max_length=64)],
)
def cancel_simulated_system_events(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Cancel simulated events that are still open."""
    ctx.services.events.cancel_simulated(ctx.scope(p["RegionId"]), list(p["EventId"]))
    return {}


@actions.define(
    "RedeployInstance",
    [String("InstanceId", required=True, max_length=64), Boolean("ForceStop", default=False)],
)
def redeploy_instance(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Stop (forcibly with ForceStop) and start the instance again; a task follows it."""
    task_id = ctx.services.events.redeploy(ctx.principal.account_id, p["InstanceId"], p["ForceStop"])
    return {"TaskId": task_id}
