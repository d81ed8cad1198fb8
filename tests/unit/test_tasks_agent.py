"""The ECS tasks of ImportImage and ExportImage as the host agent carries them out, pass by pass
on the fake drivers: Waiting until the agent takes the work, Finished with it; CancelTask takes
back work not done (the import's image never comes, the queued work goes); an export the agent
gives up on is Failed; a finished task is not cancelled again."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from nubes.agent.storage import MAX_ATTEMPTS
from nubes.domain import tasks
from nubes.errors import ApiError
from nubes.store.models import EcsTask, Image, StorageTask

from .host_world import HostWorld


def import_one(world: HostWorld, tmp_path: Path, name: str = "disk") -> tuple[str, str]:
    bucket = tmp_path / "oss" / "b1"
    bucket.mkdir(parents=True, exist_ok=True)
    (bucket / f"{name}.raw").write_bytes(b"\0" * 4096)
    boot = world.services.images.usable(world.scope, None, "nubes:debian_12_x64")
    return world.services.custom_images.import_image(
        world.scope, str(bucket / f"{name}.raw"), "raw", name, "", boot, None
    )


def task(world: HostWorld, task_id: str) -> EcsTask:
    return world.services.tasks.get(world.scope.account_id, task_id, world.scope.region_id)


def queued(world: HostWorld) -> list[str]:
    with world.db.session() as s:
        return [tasks.task_of(t) for t in s.scalars(select(StorageTask))]


def test_import_is_waiting_then_finished(world: HostWorld, tmp_path: Path) -> None:
    image_id, task_id = import_one(world, tmp_path)
    assert (task(world, task_id).status, task(world, task_id).progress) == (tasks.WAITING, 0)
    world.agent.pass_once(wait=True)
    done = task(world, task_id)
    assert (done.status, done.progress, done.resource_id) == (tasks.FINISHED, 100, image_id)
    assert done.finished_at is not None
    assert world.services.images.get(image_id).status == "Available"  # type: ignore[union-attr]
    with pytest.raises(ApiError) as info:
        world.services.tasks.cancel(world.scope, task_id)
    assert info.value.code == "InvalidTaskId.IncorrectTaskStatus"


def test_cancelled_import_leaves_nothing(world: HostWorld, tmp_path: Path) -> None:
    image_id, task_id = import_one(world, tmp_path)
    world.services.tasks.cancel(world.scope, task_id)
    assert task(world, task_id).status == tasks.DELETED
    assert queued(world) == []
    world.agent.pass_once(wait=True)
    with world.db.session() as s:
        assert s.get(Image, image_id) is None
    assert task(world, task_id).status == tasks.DELETED  # the agent does not finish it after all
    assert not any(layer.startswith(image_id) for layer in world.storage.layers)


def test_cancelled_export_and_failed_export(world: HostWorld, tmp_path: Path) -> None:
    image_id, _ = import_one(world, tmp_path)
    world.agent.pass_once(wait=True)
    export_id = world.services.custom_images.export_image(world.scope, image_id, "exports", "", "qcow2")
    assert queued(world) == [export_id]
    world.services.tasks.cancel(world.scope, export_id)
    assert (task(world, export_id).status, queued(world)) == (tasks.DELETED, [])

    # an export whose snapshot layer is gone fails every attempt: the agent gives up, Failed
    failing = world.services.custom_images.export_image(world.scope, image_id, "exports", "", "qcow2")
    world.storage.layers.clear()
    for _ in range(MAX_ATTEMPTS):
        world.agent.pass_once(wait=True)
    failed = task(world, failing)
    assert (failed.status, failed.error_code) == (tasks.FAILED, "TaskFailed")
    assert queued(world) == []


def test_only_image_tasks_are_cancelled(world: HostWorld) -> None:
    with world.db.session() as s:
        row = tasks.create_in(s, world.clock.now(), world.scope, tasks.REDEPLOY_INSTANCE, "i-x")
        task_id = row.id
    with pytest.raises(ApiError) as info:
        world.services.tasks.cancel(world.scope, task_id)
    assert info.value.code == "InvalidTaskId.TaskActionNotSupport"


def test_an_agent_start_fails_the_tasks_whose_work_was_lost(world: HostWorld, tmp_path: Path) -> None:
    _, task_id = import_one(world, tmp_path)
    with world.db.session() as s:
        for work in s.scalars(select(StorageTask)):
            s.delete(work)  # what a crash of an older nubes could leave
    world.agent.storage.recover()
    lost = task(world, task_id)
    assert (lost.status, lost.error_message) == (tasks.FAILED, "The task's work was lost.")
