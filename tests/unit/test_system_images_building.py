"""System images being built: listed at once as Creating, launchable (the instance waits in
Pending, then is built), and a build that fails releases the instances that waited for it."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

import nubes.guest.images as guest_images
from nubes.agent.images import FAKE_IMAGES, ImageService
from nubes.domain.images import AVAILABLE, CREATE_FAILED, CREATING, DEPRECATED, SystemImage
from nubes.errors.base import ApiError
from nubes.guest.images import ImageBuildError, ImageManifest
from nubes.store.models import Disk, Image

from .host_world import HostWorld

TINY, DEBIAN = FAKE_IMAGES[1], FAKE_IMAGES[0]


def status_of(world: HostWorld, image_id: str) -> tuple[str, int] | None:
    image = world.services.images.get(image_id)
    return (image.status, image.progress) if image is not None else None


def being_built(world: HostWorld, image: SystemImage) -> None:
    """`image` as a fresh server lists it: planned, its build under way."""
    world.services.images.set_status(image.image_id, CREATING, 0)


# ---- what a launch accepts -----------------------------------------------------------------------


def test_a_launch_from_a_system_image_being_built_is_accepted_other_uses_are_not(world: HostWorld) -> None:
    being_built(world, TINY)
    images = world.services.images
    assert images.usable(world.scope, TINY.image_id, None, building_ok=True).id == TINY.image_id
    # by family too: there is no available build of it yet, the one being built serves
    assert images.usable(world.scope, None, TINY.family, building_ok=True).id == TINY.image_id
    with pytest.raises(ApiError) as refused:
        images.usable(world.scope, TINY.image_id, None)  # e.g. ReplaceSystemDisk: needs the files now
    assert refused.value.code == "InvalidImageId.Creating"


def test_a_custom_image_still_creating_is_refused_as_ecs_does(world: HostWorld) -> None:
    with world.db.session() as s:
        row = s.get(Image, TINY.image_id)
        assert row is not None
        s.add(
            Image(
                id="m-custom000000000001",
                region_id=world.scope.region_id,
                account_id=world.scope.account_id,
                owner_alias="self",
                name="golden",
                os_name=row.os_name,
                os_name_en=row.os_name_en,
                os_type="linux",
                platform=row.platform,
                architecture="x86_64",
                size_gib=1,
                status=CREATING,
                progress=50,
                artifact="",
                created_at=world.clock.now(),
            )
        )
    with pytest.raises(ApiError) as refused:
        world.services.images.usable(world.scope, "m-custom000000000001", None, building_ok=True)
    assert refused.value.code == "InvalidImageId.Creating"


# ---- the instance waits, then is built ------------------------------------------------------------


def test_an_instance_waits_in_pending_for_its_image_then_runs(world: HostWorld) -> None:
    being_built(world, TINY)
    instance_id = world.launch()
    for _ in range(5):
        world.agent.pass_once(wait=True)
    assert world.status(instance_id) == "Pending"
    assert world.storage.layers == {}, "no disk is made before the image is there"
    world.services.images.register_system(TINY)  # the build finished
    world.reach(instance_id, "Running")


def test_a_failed_build_releases_the_instances_waiting_for_it(world: HostWorld) -> None:
    being_built(world, TINY)
    waiting = world.launch()
    stopped = world.launch(start=False)  # CreateInstance: waits too, then would be Stopped
    world.agent.pass_once(wait=True)
    assert (world.status(waiting), world.status(stopped)) == ("Pending", "Pending")
    world.services.images.set_status(TINY.image_id, CREATE_FAILED, 40)
    world.settle(lambda: world.status(waiting) is None and world.status(stopped) is None)
    with world.db.session() as s:  # and their disks with them, as DeleteInstance does
        assert s.query(Disk).filter(Disk.instance_id.in_([waiting, stopped])).count() == 0


# ---- planning and superseding in the store --------------------------------------------------------


def test_planning_keeps_a_usable_row_and_a_finished_build_supersedes_a_plan(world: HostWorld) -> None:
    images = world.services.images
    images.plan_system(TINY)  # already Available (another host built it): stays so
    assert status_of(world, TINY.image_id) == (AVAILABLE, 100)
    planned = SystemImage(**{**TINY.__dict__, "image_id": "nubes_tiny_x64_1G_busybox_20200101.vhd"})
    images.plan_system(planned)
    assert status_of(world, planned.image_id) == (CREATING, 0)
    assert status_of(world, TINY.image_id) == (AVAILABLE, 100), "a plan supersedes nothing"
    assert images.planned_system(TINY.artifact) == planned.image_id
    images.register_system(TINY)  # built under another ID (`nubes images build` meanwhile)
    assert status_of(world, planned.image_id) == (DEPRECATED, 100)  # its waiting instances still boot


# ---- the image service ----------------------------------------------------------------------------


def manifest_for(name: str, image_id: str) -> ImageManifest:
    """What a build of `name` records (only what registering it reads matters here)."""
    blank: dict[str, object] = {f.name: "" for f in dataclasses.fields(ImageManifest)}
    fields = {"image_id": image_id, "name": name, "size_gib": 1, "image_family": TINY.family}
    return ImageManifest.from_dict({**blank, **fields})


def test_real_mode_lists_missing_images_as_creating_and_a_failed_build_as_create_failed(
    world: HostWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    today = dt.datetime.now(dt.UTC).date()

    def build(name: str, _dir: Path, progress: Callable[[str, float], None]) -> ImageManifest:
        progress(f"{name}: kernel", 0.5)
        if name == "debian-12":
            raise ImageBuildError("debootstrap failed")
        return manifest_for(name, f"nubes_tiny_x64_1G_busybox_{today:%Y%m%d}.vhd")

    monkeypatch.setattr(guest_images, "build_image", build)
    woken: list[str] = []
    service = ImageService(world.services.images, tmp_path / "images", fake=False, notify=woken.append)
    # a start killed mid-build yesterday listed tiny under yesterday's ID: the restart keeps it
    old_plan = "nubes_tiny_x64_1G_busybox_20200101.vhd"
    world.services.images.plan_system(
        SystemImage(**{**TINY.__dict__, "image_id": old_plan, "artifact": "tiny"})
    )
    planned = service.register(plan=True)
    assert [i.image_id for i in planned] == [old_plan, f"debian_12_x64_20G_nubes_{today:%Y%m%d}.vhd"]
    assert [status_of(world, i.image_id) for i in planned] == [(CREATING, 0), (CREATING, 0)]
    service.build(planned)
    # the build is dated today: it supersedes the plan, whose waiting instances still boot
    assert status_of(world, f"nubes_tiny_x64_1G_busybox_{today:%Y%m%d}.vhd") == (AVAILABLE, 100)
    assert status_of(world, old_plan) == (DEPRECATED, 100)
    assert status_of(world, planned[1].image_id) == (CREATE_FAILED, 50)
    assert woken == [i.image_id for i in planned]


def test_without_a_build_to_follow_nothing_is_listed_as_creating(world: HostWorld, tmp_path: Path) -> None:
    service = ImageService(world.services.images, tmp_path / "images", fake=False)
    assert service.register(plan=False) == []
    with world.db.session() as s:
        assert s.query(Image).filter(Image.status == CREATING).count() == 0


def test_the_emulated_build_lists_creating_with_progress_then_available(world: HostWorld) -> None:
    world.services.images.set_status(TINY.image_id, CREATING, 0)  # a start killed mid-build
    world.services.images.set_status(DEBIAN.image_id, CREATING, 0)
    seen: list[tuple[str, int] | None] = []
    service = ImageService(world.services.images, Path("/nonexistent"), fake=True, fake_build_seconds=0.05)
    planned = service.register(plan=True)
    assert {i.image_id for i in planned} == {TINY.image_id, DEBIAN.image_id}
    original = world.services.images.set_status

    def spy(image_id: str, status: str, progress: int) -> None:
        original(image_id, status, progress)
        seen.append(status_of(world, image_id))

    world.services.images.set_status = spy  # type: ignore[method-assign]
    service.build(planned)
    assert seen[0] == (CREATING, 0) and (CREATING, 90) in seen
    assert status_of(world, TINY.image_id) == (AVAILABLE, 100)
    assert status_of(world, DEBIAN.image_id) == (AVAILABLE, 100)
    # once built, a later start does not build them again
    assert service.register(plan=True) == []
