"""Instance system events: the ones nubes causes and records (a VM that died under a running
instance is started again: SystemFailure.Reboot), simulated ones (CreateSimulatedSystemEvents,
CancelSimulatedSystemEvents), and RedeployInstance.

An event's life, as ECS's: a maintenance event is Scheduled until its NotBefore, then Executed
(Avoided when the owner restarted the instance first, for SystemMaintenance.Reboot); a failure
event (SystemFailure.*, InstanceFailure.*) is Executing from the start and Executed at its
NotBefore; CancelSimulatedSystemEvents makes an open simulated event Canceled. A simulated event
is a drill that touches nothing, unless TriggerRealOps asked for the real thing: then at its
NotBefore nubes reboots or redeploys the instance through the normal power path and the event
is Executing until the instance is back. The timers (agent/timers.py) move them, each pass."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from nubes import errors, ids
from nubes.clock import Clock, as_utc
from nubes.domain import instance_states as istates
from nubes.domain import tasks
from nubes.domain.common import Scope, newest_held
from nubes.domain.instances import Instances
from nubes.store.db import Database
from nubes.store.models import EcsTask, Instance, SystemEvent

SCHEDULED, AVOIDED, EXECUTING, EXECUTED = "Scheduled", "Avoided", "Executing", "Executed"
CANCELED, FAILED, INQUIRING = "Canceled", "Failed", "Inquiring"
# ECS's lifecycle statuses and their codes (the answers' EventCycleStatus.Code).
CYCLE_CODES = {
    SCHEDULED: 24,
    AVOIDED: 25,
    EXECUTING: 32,
    EXECUTED: 33,
    CANCELED: 34,
    FAILED: 35,
    INQUIRING: 36,
}
OPEN = (SCHEDULED, EXECUTING, INQUIRING)
DONE = (AVOIDED, EXECUTED, CANCELED, FAILED)  # what DescribeInstanceHistoryEvents shows by default
HISTORY_DAYS = 30  # finished events are shown this long, as ECS's

MAINTENANCE_REBOOT, MAINTENANCE_REDEPLOY = "SystemMaintenance.Reboot", "SystemMaintenance.Redeploy"
FAILURE_REBOOT, FAILURE_REDEPLOY = "SystemFailure.Reboot", "SystemFailure.Redeploy"
INSTANCE_FAILURE_REBOOT = "InstanceFailure.Reboot"
# The instance event types ECS names, and their codes (EventType.Code).
TYPE_CODES = {
    MAINTENANCE_REBOOT: 1,
    MAINTENANCE_REDEPLOY: 2,
    FAILURE_REBOOT: 3,
    FAILURE_REDEPLOY: 4,
    "SystemFailure.Delete": 5,
    INSTANCE_FAILURE_REBOOT: 6,
    "SystemMaintenance.Stop": 7,
    "SystemMaintenance.RebootAndIsolateErrorDisk": 8,
    "SystemMaintenance.RebootAndReInitErrorDisk": 9,
    "InstanceExpiration.Stop": 0x80,
    "InstanceExpiration.Delete": 0x81,
    "AccountUnbalanced.Stop": 0x100,
    "AccountUnbalanced.Delete": 0x101,
}
SIMULATED_TYPES = (
    MAINTENANCE_REBOOT,
    MAINTENANCE_REDEPLOY,
    FAILURE_REBOOT,
    FAILURE_REDEPLOY,
    INSTANCE_FAILURE_REBOOT,
)
REDEPLOYS = (MAINTENANCE_REDEPLOY, FAILURE_REDEPLOY)
VM_DIED = "The instance's virtual machine stopped unexpectedly (its host or hypervisor failed); nubes started it again."


def is_failure(event_type: str) -> bool:
    return event_type.startswith(("SystemFailure.", "InstanceFailure."))


def record_in(s: Session, now: datetime, instance: Instance, event_type: str, reason: str) -> SystemEvent:
    """An event nubes caused and carried out at once (Executed), in the caller's transaction."""
    event = SystemEvent(
        id=ids.new_id("system_event"),
        account_id=instance.account_id,
        region_id=instance.region_id,
        instance_id=instance.id,
        event_type=event_type,
        status=EXECUTED,
        reason=reason[:256],
        simulated=False,
        real_ops=True,
        published_at=now,
        not_before=now,
        finished_at=now,
    )
    s.add(event)
    return event


def record(db: Database, clock: Clock, instance_id: str, event_type: str, reason: str) -> None:
    """Record an event nubes caused on an instance (the host agent's: one call where it acts)."""
    with db.session() as s:
        instance = s.get(Instance, instance_id)
        if instance is not None:
            record_in(s, clock.now(), instance, event_type, reason)


@dataclass(frozen=True)
class EventFilter:
    """The event filters of DescribeInstanceHistoryEvents and DescribeInstancesFullStatus; an
    empty one narrows nothing (`statuses` empty: every status)."""

    instance_ids: tuple[str, ...] = ()
    event_ids: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    published: tuple[datetime | None, datetime | None] = (None, None)
    not_before: tuple[datetime | None, datetime | None] = (None, None)
    nothing: bool = field(default=False)  # a filter nubes' events can never pass (another resource type)
    finished_since: datetime | None = None  # finished events older than this are not shown

    def holds(self, event: SystemEvent) -> bool:
        finished = event.finished_at if event.status in DONE else None
        return (
            not self.nothing
            and (self.finished_since is None or finished is None or as_utc(finished) >= self.finished_since)
            and (not self.instance_ids or event.instance_id in self.instance_ids)
            and (not self.event_ids or event.id in self.event_ids)
            and (not self.types or event.event_type in self.types)
            and (not self.statuses or event.status in self.statuses)
            and _within(event.published_at, self.published)
            and _within(event.not_before, self.not_before)
        )


def _within(moment: datetime, window: tuple[datetime | None, datetime | None]) -> bool:
    start, end = window
    moment = as_utc(moment)
    return (start is None or moment >= start) and (end is None or moment <= end)


class SystemEvents:
    def __init__(self, db: Database, clock: Clock, instances: Instances) -> None:
        self._db = db
        self._clock = clock
        self._instances = instances

    def find(self, scope: Scope, where: EventFilter) -> list[SystemEvent]:
        """The scope's events the filter holds, newest first."""
        with self._db.session() as s:
            return newest_held(s, SystemEvent, scope, SystemEvent.published_at, where.holds)

    # ---- simulated events --------------------------------------------------------------------

    def simulate(
        self, scope: Scope, instance_ids: list[str], event_type: str, not_before: datetime, real_ops: bool
    ) -> list[str]:
        """CreateSimulatedSystemEvents: one event per instance (all exist, or none is made)."""
        if event_type not in SIMULATED_TYPES:
            raise errors.invalid_parameter("EventType", f"Valid values: {', '.join(SIMULATED_TYPES)}.")
        now = self._clock.now()
        if not is_failure(event_type) and not_before < now:
            raise errors.invalid_parameter(
                "NotBefore", "The NotBefore of a scheduled event must be in the future."
            )
        made = []
        with self._db.session() as s:
            for instance_id in dict.fromkeys(instance_ids):
                instance = self._instances.owned(s, scope.account_id, instance_id, scope.region_id)
                event = SystemEvent(
                    id=ids.new_id("system_event"),
                    account_id=scope.account_id,
                    region_id=scope.region_id,
                    instance_id=instance.id,
                    event_type=event_type,
                    status=EXECUTING if is_failure(event_type) else SCHEDULED,
                    reason="A simulated system event (CreateSimulatedSystemEvents).",
                    simulated=True,
                    real_ops=real_ops,
                    published_at=now,
                    not_before=not_before,
                )
                s.add(event)
                made.append(event.id)
        return made

    def cancel_simulated(self, scope: Scope, event_ids: list[str]) -> None:
        """CancelSimulatedSystemEvents: open simulated events become Canceled; a finished one
        or one carried out already stays as it is, as an event that is not found (another
        account's) is InvalidEventId.NotFound."""
        now = self._clock.now()
        with self._db.session() as s:
            for event_id in event_ids:
                event = s.get(SystemEvent, event_id)
                if (
                    event is None
                    or not event.simulated
                    or event.account_id != scope.account_id
                    or event.region_id != scope.region_id
                ):
                    raise errors.invalid_id_not_found("Event", event_id)
                if event.status in OPEN and not (event.real_ops and event.finished_at is not None):
                    event.status, event.finished_at = CANCELED, now

    # ---- RedeployInstance --------------------------------------------------------------------

    def redeploy(self, account_id: int, instance_id: str, force: bool) -> str:
        """RedeployInstance: the instance is stopped (forcibly with ForceStop) and started again
        through the normal power path (Stopping -> Starting -> Running), on the host the
        scheduler placed it on (its disks live there). The task's id; the timers finish it
        once the instance is Running again."""
        instance = self._instances.get(account_id, instance_id)
        self._instances.act(account_id, instance_id, "RedeployInstance", force=force)
        with self._db.session() as s:
            task = tasks.create_in(
                s,
                self._clock.now(),
                Scope(account_id, instance.region_id),
                tasks.REDEPLOY_INSTANCE,
                instance_id,
                (("InstanceId", instance_id),),
            )
            task.status = tasks.PROCESSING
            return task.id

    # ---- what comes due (the timers) ---------------------------------------------------------

    def fire_due(self) -> None:
        """Move the events whose NotBefore has come, carry out the real ones, and finish the
        events and redeploy tasks whose instance is back."""
        now = self._clock.now()
        acts: list[tuple[int, str, str]] = []
        with self._db.session() as s:
            for event in s.scalars(select(SystemEvent).where(SystemEvent.status.in_((SCHEDULED, EXECUTING)))):
                instance = s.get(Instance, event.instance_id)
                if instance is None or instance.desired == istates.WANT_DELETED:
                    event.status, event.finished_at = CANCELED, now  # the instance was released
                    continue
                if event.real_ops and event.finished_at is not None:  # carried out: is it back?
                    if instance.status in (istates.RUNNING, istates.STOPPED):
                        event.status = EXECUTED
                    continue
                if as_utc(event.not_before) > now:
                    continue
                started = instance.started_at
                if (
                    event.event_type == MAINTENANCE_REBOOT
                    and started is not None
                    and as_utc(started) > as_utc(event.published_at)
                ):
                    event.status, event.finished_at = AVOIDED, now  # the owner restarted it first
                elif event.real_ops and instance.status == istates.RUNNING:
                    event.status, event.finished_at = EXECUTING, now
                    action = "RedeployInstance" if event.event_type in REDEPLOYS else "RebootInstance"
                    acts.append((instance.account_id, instance.id, action))
                else:  # a drill, or nothing to reboot: the event passes
                    event.status, event.finished_at = EXECUTED, now
            self._finish_redeploys(s, now)
        for account_id, instance_id, action in acts:
            try:
                self._instances.act(account_id, instance_id, action, force=True)
            except errors.ApiError:
                pass  # the status changed meanwhile (stopped, released): the next pass settles it

    def _finish_redeploys(self, s: Session, now: datetime) -> None:
        for task in s.scalars(
            select(EcsTask).where(EcsTask.action == tasks.REDEPLOY_INSTANCE, EcsTask.status.in_(tasks.OPEN))
        ):
            instance = s.get(Instance, task.resource_id)
            if instance is None or instance.desired == istates.WANT_DELETED:
                tasks.move(s, now, task.id, tasks.FAILED, error="The instance was released.")
            elif instance.status == istates.RUNNING and as_utc(instance.status_changed_at) >= as_utc(
                task.created_at
            ):
                tasks.move(s, now, task.id, tasks.FINISHED)


def events_of(events: Iterable[SystemEvent]) -> dict[str, list[SystemEvent]]:
    """Events by instance."""
    found: dict[str, list[SystemEvent]] = {}
    for event in events:
        found.setdefault(event.instance_id, []).append(event)
    return found
