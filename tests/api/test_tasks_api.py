"""ECS tasks through the official SDK against the emulator: the TaskId of ImportImage and
ExportImage, DescribeTasks (filters, paging), DescribeTaskAttribute, CancelTask and the errors.
Cancelling work the agent has not done yet is tests/unit/test_tasks_agent.py (a manual agent)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em

from ..conftest import LiveServer
from .test_custom_images_api import wait_image
from .test_instances_api import Lab, error_of
from .test_vpc_api import REGION


@pytest.fixture
def lab(live: LiveServer, fresh_key: tuple[str, str]) -> Lab:
    return Lab(live, fresh_key, "10.63.0.0/16")


def imported(live: LiveServer, lab: Lab, name: str) -> tuple[str, str]:
    """An image imported from a bucket file: (image id, task id), once it is Available."""
    bucket = live.data_dir / "oss" / "tasks"
    bucket.mkdir(parents=True, exist_ok=True)
    (bucket / f"{name}.raw").write_bytes(b"\0" * (1 << 20))
    body = lab.ecs.import_image(
        em.ImportImageRequest(
            region_id=REGION,
            image_name=name,
            disk_device_mapping=[
                em.ImportImageRequestDiskDeviceMapping(
                    ossbucket="tasks", ossobject=f"{name}.raw", format="RAW"
                )
            ],
        )
    ).body
    assert wait_image(lab, body.image_id).status == "Available"
    return body.image_id, body.task_id


def attribute(lab: Lab, task_id: str) -> Any:
    return lab.ecs.describe_task_attribute(
        em.DescribeTaskAttributeRequest(region_id=REGION, task_id=task_id)
    ).body


def wait_task(lab: Lab, task_id: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    current = attribute(lab, task_id)
    while current.task_status in ("Waiting", "Processing") and time.monotonic() < deadline:
        time.sleep(0.05)
        current = attribute(lab, task_id)
    return current


def test_image_tasks_are_listed_and_described(live: LiveServer, lab: Lab) -> None:
    image_id, import_task = imported(live, lab, "tasked")
    assert import_task.startswith("t-")
    done = wait_task(lab, import_task)
    assert (done.task_action, done.task_status, done.task_process, done.support_cancel) == (
        "ImportImage",
        "Finished",
        "100%",
        "false",
    )
    assert (done.total_count, done.success_count, done.failed_count, done.region_id) == (1, 1, 0, REGION)
    assert done.finished_time.endswith("Z") and done.creation_time.endswith("Z")
    [progress] = done.operation_progress_set.operation_progress
    assert progress.operation_status == "Success"
    assert {i.name: i.value for i in progress.related_item_set.related_item} == {"ImageId": image_id}

    export_task = lab.ecs.export_image(
        em.ExportImageRequest(region_id=REGION, image_id=image_id, ossbucket="exports", ossprefix="p-")
    ).body.task_id
    exported = wait_task(lab, export_task)
    assert (exported.task_action, exported.task_status) == ("ExportImage", "Finished")
    [progress] = exported.operation_progress_set.operation_progress
    assert {i.name: i.value for i in progress.related_item_set.related_item} == {
        "OSSBucket": "exports",
        "OSSObject": f"p-{image_id}_system.raw",
        "ImageFormat": "raw",
    }

    def listed(**fields: Any) -> list[str]:
        body = lab.ecs.describe_tasks(em.DescribeTasksRequest(region_id=REGION, **fields)).body
        return [t.task_id for t in body.task_set.task]

    assert listed() == [export_task, import_task]  # newest first
    assert listed(task_action="ImportImage") == [import_task]
    assert listed(task_status="Finished", resource_ids=[image_id]) == [export_task, import_task]
    assert listed(task_ids=f"{import_task},t-nothing") == [import_task]
    assert listed(task_group_id="tg-none") == []
    assert listed(start_time="2099-01-01T00:00Z") == []
    assert listed(end_time="2099-01-01T00:00Z") == [export_task, import_task]
    page = lab.ecs.describe_tasks(em.DescribeTasksRequest(region_id=REGION, page_size=1, page_number=2)).body
    assert (page.total_count, page.page_number, page.page_size) == (2, 2, 1)
    assert [t.task_id for t in page.task_set.task] == [import_task]
    [task] = lab.ecs.describe_tasks(
        em.DescribeTasksRequest(region_id=REGION, task_ids=export_task)
    ).body.task_set.task
    assert (task.task_action, task.resource_id, task.support_cancel, task.task_status) == (
        "ExportImage",
        image_id,
        "false",
        "Finished",
    )

    # a finished task cannot be cancelled; errors
    over = error_of(lambda: lab.ecs.cancel_task(em.CancelTaskRequest(region_id=REGION, task_id=export_task)))
    assert over.code == "InvalidTaskId.IncorrectTaskStatus"
    missing = error_of(lambda: attribute(lab, "t-nothing"))
    assert missing.code == "InvalidTaskId.NotFound"
    malformed = error_of(
        lambda: lab.ecs.describe_tasks(em.DescribeTasksRequest(region_id=REGION, start_time="x"))
    )
    assert malformed.code == "InvalidParameter"
    bad_status = error_of(
        lambda: lab.ecs.describe_tasks(em.DescribeTasksRequest(region_id=REGION, task_status="x"))
    )
    assert bad_status.code == "InvalidParameter"


def test_other_accounts_tasks_are_not_found(live: LiveServer, lab: Lab) -> None:
    _, task_id = imported(live, lab, "mine")
    other = Lab(live, live.create_account("tasks-other"), "10.64.0.0/16")
    for call in (
        lambda: attribute(other, task_id),
        lambda: other.ecs.cancel_task(em.CancelTaskRequest(region_id=REGION, task_id=task_id)),
    ):
        assert error_of(call).code == "InvalidTaskId.NotFound"
    assert other.ecs.describe_tasks(em.DescribeTasksRequest(region_id=REGION)).body.task_set.task == []
    # and another region of the owner's
    elsewhere = error_of(
        lambda: lab.ecs.describe_task_attribute(
            em.DescribeTaskAttributeRequest(region_id="cn-shanghai", task_id=task_id)
        )
    )
    assert elsewhere.code == "InvalidTaskId.NotFound"


def test_a_refused_export_makes_no_task(live: LiveServer, lab: Lab) -> None:
    image_id, _ = imported(live, lab, "refused")
    bad = error_of(
        lambda: lab.ecs.export_image(
            em.ExportImageRequest(region_id=REGION, image_id=image_id, ossbucket="x", image_format="vmdk")
        )
    )
    assert bad.code == "InvalidParameter.ImageFormat"
    assert (
        lab.ecs.describe_tasks(
            em.DescribeTasksRequest(region_id=REGION, task_action="ExportImage")
        ).body.task_set.task
        == []
    )
