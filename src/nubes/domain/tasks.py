"""ECS tasks: the TaskId of ImportImage, ExportImage and RedeployInstance, listed by DescribeTasks
and DescribeTaskAttribute, and CancelTask.

A task is created in the transaction that queues its work (a storage task for the image
actions, named in the storage task's `args` as "task"), Waiting; the agent makes it Processing
when the work begins, with its progress, then Finished or Failed. CancelTask takes back the
work of an ImportImage or ExportImage that is Waiting or Processing: the task is Deleted (as
ECS calls a task it dropped), its queued work goes, and what the agent made of it is removed
(an import's image never becomes Available; an export's file is deleted)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nubes import errors, ids
from nubes.clock import Clock, as_utc
from nubes.domain.common import Scope, newest_held, owned
from nubes.domain.tags import drop_tags
from nubes.store.db import Database
from nubes.store.models import EcsTask, Image, StorageTask

WAITING, PROCESSING, FINISHED, FAILED, DELETED = "Waiting", "Processing", "Finished", "Failed", "Deleted"
STATUSES = (WAITING, PROCESSING, FINISHED, FAILED, DELETED)
OPEN = (WAITING, PROCESSING)
IMPORT_IMAGE, EXPORT_IMAGE, REDEPLOY_INSTANCE = "ImportImage", "ExportImage", "RedeployInstance"
ACTIONS = (IMPORT_IMAGE, EXPORT_IMAGE, REDEPLOY_INSTANCE)
CANCELLABLE = (IMPORT_IMAGE, EXPORT_IMAGE)  # what CancelTask takes, as ECS documents

# A task's status moves: from -> the statuses it may go to.
MOVES: dict[str, tuple[str, ...]] = {
    WAITING: (PROCESSING, FINISHED, FAILED, DELETED),
    PROCESSING: (FINISHED, FAILED, DELETED),
    FINISHED: (),
    FAILED: (),
    DELETED: (),
}


def not_found(task_id: str) -> errors.ApiError:
    return errors.invalid_id_not_found(
        "Task", task_id, message='The specified "TaskId" is not found.', http_status=400
    )


def create_in(
    s: Session,
    now: datetime,
    scope: Scope,
    action: str,
    resource_id: str,
    related: Sequence[tuple[str, str]] = (),
) -> EcsTask:
    """A new Waiting task of `action` on `resource_id`, in the caller's transaction."""
    assert action in ACTIONS, action
    task = EcsTask(
        id=ids.new_id("task"),
        account_id=scope.account_id,
        region_id=scope.region_id,
        action=action,
        resource_id=resource_id,
        status=WAITING,
        progress=0,
        related=json.dumps([list(pair) for pair in related]),
        error_code="",
        error_message="",
        created_at=now,
    )
    s.add(task)
    return task


def task_of(work: StorageTask) -> str:
    """The ECS task a storage task does the work of ("" for one of none)."""
    return str(json.loads(work.args or "{}").get("task", ""))


def move(
    s: Session, now: datetime, task_id: str, to: str, progress: int | None = None, error: str = ""
) -> bool:
    """Move a task on (Processing with its progress, Finished, Failed); False when it is gone or
    over already (a cancelled task stays Deleted: the agent then undoes what it made)."""
    task = s.get(EcsTask, task_id) if task_id else None
    if task is None or to not in MOVES[task.status]:
        return False
    task.status = to
    if progress is not None:
        task.progress = max(0, min(100, progress))
    if to == FINISHED:
        task.progress = 100
    if to == FAILED:
        task.error_code, task.error_message = "TaskFailed", error[:256]
    if to in (FINISHED, FAILED, DELETED):
        task.finished_at = now
    return True


def cancelled(s: Session, task_id: str) -> bool:
    task = s.get(EcsTask, task_id) if task_id else None
    return task is not None and task.status == DELETED


def fail_orphans(s: Session, now: datetime) -> None:
    """Open image tasks whose work is no longer queued (a crash, or an older nubes, lost it) are
    Failed: no task stays Waiting or Processing for ever."""
    queued = {task_of(work) for work in s.scalars(select(StorageTask))}
    for task in s.scalars(select(EcsTask).where(EcsTask.action.in_(CANCELLABLE), EcsTask.status.in_(OPEN))):
        if task.id not in queued:
            move(s, now, task.id, FAILED, error="The task's work was lost.")


@dataclass(frozen=True)
class TaskFilter:
    """DescribeTasks' filters; an empty one narrows nothing."""

    task_ids: tuple[str, ...] = ()
    action: str = ""
    status: str = ""
    resource_ids: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    group_id: str = ""

    def holds(self, task: EcsTask) -> bool:
        created = as_utc(task.created_at)
        return (
            (not self.task_ids or task.id in self.task_ids)
            and (not self.action or task.action == self.action)
            and (not self.status or task.status == self.status)
            and (not self.resource_ids or task.resource_id in self.resource_ids)
            and (self.start is None or created >= self.start)
            and (self.end is None or created <= self.end)
            and not self.group_id  # nubes makes no task groups: a group names none of its tasks
        )


class Tasks:
    def __init__(self, db: Database, clock: Clock, notify: Callable[[str], None]) -> None:
        self._db = db
        self._clock = clock
        self._notify = notify

    def _owned(self, s: Session, account_id: int, task_id: str, region_id: str | None) -> EcsTask:
        return owned(
            s, EcsTask, Scope(account_id, region_id) if region_id else account_id, task_id, not_found
        )

    def get(self, account_id: int, task_id: str, region_id: str | None) -> EcsTask:
        with self._db.session() as s:
            return self._owned(s, account_id, task_id, region_id)

    def find(self, scope: Scope, where: TaskFilter) -> list[EcsTask]:
        """The scope's tasks the filter holds, newest first."""
        with self._db.session() as s:
            return newest_held(s, EcsTask, scope, EcsTask.created_at, where.holds)

    def cancel(self, scope: Scope, task_id: str) -> None:
        """CancelTask: an ImportImage or ExportImage task that is Waiting or Processing."""
        now = self._clock.now()
        with self._db.session() as s:
            task = self._owned(s, scope.account_id, task_id, scope.region_id)
            if task.action not in CANCELLABLE:
                raise errors.invalid_task_id_task_action_not_support()
            if task.status not in OPEN:
                raise errors.invalid_task_id_incorrect_task_status(
                    f"The task {task_id} is {task.status}; only a Waiting or Processing task can be cancelled."
                )
            move(s, now, task.id, DELETED)
            for work in s.scalars(select(StorageTask).where(StorageTask.disk_id == task.resource_id)):
                if task_of(work) == task.id:
                    s.delete(work)
            if task.action == IMPORT_IMAGE:
                image = s.get(Image, task.resource_id)
                if image is not None and image.status != "Available":
                    drop_tags(s, image.account_id or 0, image.region_id, "image", image.id)
                    s.delete(image)  # the image the import was making never comes to be
            resource_id = task.resource_id
        self._notify(resource_id)


def related_items(task: EcsTask) -> list[dict[str, Any]]:
    return [{"Name": name, "Value": value} for name, value in json.loads(task.related or "[]")]
