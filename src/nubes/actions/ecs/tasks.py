"""ECS tasks: DescribeTasks, DescribeTaskAttribute, CancelTask (the TaskId of ImportImage,
ExportImage and RedeployInstance)."""

from __future__ import annotations

from typing import Any

from nubes.actions.common import REGION_ID, utc_param
from nubes.actions.paging import number_paged, page_params
from nubes.api.context import ActionContext
from nubes.api.params import String, StringList
from nubes.api.registry import ActionTable
from nubes.clock import iso8601
from nubes.domain import tasks
from nubes.store.models import EcsTask

actions = ActionTable("ecs")

TASK_ID = String("TaskId", required=True, max_length=64)


def _finished(task: EcsTask) -> str:
    return iso8601(task.finished_at) if task.finished_at is not None else ""


def _support_cancel(task: EcsTask) -> str:
    return "true" if task.action in tasks.CANCELLABLE and task.status in tasks.OPEN else "false"


def render_task(task: EcsTask) -> dict[str, Any]:
    return {
        "TaskId": task.id,
        "TaskAction": task.action,
        "TaskStatus": task.status,
        "SupportCancel": _support_cancel(task),
        "CreationTime": iso8601(task.created_at),
        "FinishedTime": _finished(task),
        "ResourceId": task.resource_id,
    }


@actions.define(
    "DescribeTasks",
    [
        REGION_ID,
        String("TaskIds", max_length=4096),
        String("TaskAction", max_length=64),
        String("TaskStatus", choices=tasks.STATUSES),
        StringList("ResourceIds", max_items=100, item_max_length=64),
        String("StartTime", max_length=32),
        String("EndTime", max_length=32),
        String("TaskGroupId", max_length=64),
        *page_params(max_size=100),
    ],
)
def describe_tasks(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The caller's tasks in a region, newest first."""
    scope = ctx.scope(p["RegionId"])
    where = tasks.TaskFilter(
        task_ids=tuple(t.strip() for t in (p["TaskIds"] or "").split(",") if t.strip()),
        action=p["TaskAction"] or "",
        status=p["TaskStatus"] or "",
        resource_ids=tuple(p["ResourceIds"] or ()),
        start=utc_param("StartTime", p["StartTime"]),
        end=utc_param("EndTime", p["EndTime"]),
        group_id=p["TaskGroupId"] or "",
    )
    found = ctx.services.tasks.find(scope, where)
    return {"RegionId": scope.region_id, **number_paged(found, p, "TaskSet", "Task", render_task)}


@actions.define("DescribeTaskAttribute", [String("RegionId", max_length=64), TASK_ID])
def describe_task_attribute(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """One task with its progress. RegionId may be left out (Terraform's task waits send none):
    the task is then looked up among all the caller's."""
    region_id = ctx.scope(p["RegionId"]).region_id if p["RegionId"] else None
    task = ctx.services.tasks.get(ctx.principal.account_id, p["TaskId"], region_id)
    done, failed = task.status == tasks.FINISHED, task.status == tasks.FAILED
    status = "Success" if done else "Failed" if failed else task.status
    return {
        "TaskId": task.id,
        "TaskAction": task.action,
        "RegionId": task.region_id,
        "TaskStatus": task.status,
        "TaskProcess": f"{task.progress}%",
        "SupportCancel": _support_cancel(task),
        "TotalCount": 1,
        "SuccessCount": 1 if done else 0,
        "FailedCount": 1 if failed else 0,
        "CreationTime": iso8601(task.created_at),
        "FinishedTime": _finished(task),
        "OperationProgressSet": {
            "OperationProgress": [
                {
                    "OperationStatus": status,
                    "ErrorCode": task.error_code,
                    "ErrorMsg": task.error_message,
                    "RelatedItemSet": {"RelatedItem": tasks.related_items(task)},
                }
            ]
        },
    }


@actions.define("CancelTask", [REGION_ID, TASK_ID])
def cancel_task(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Cancel an ImportImage or ExportImage task that is Waiting or Processing."""
    ctx.services.tasks.cancel(ctx.scope(p["RegionId"]), p["TaskId"])
    return {}
