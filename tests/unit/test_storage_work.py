"""The storage part of the host agent (StorageWork) against a real SQLite store, the fake compute
driver and the in-memory storage driver: each queued task's file and VM work, the statuses it
settles, retries, cancellation, crashes between the work and its commit, and the collector."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from nubes.agent.storage import MAX_ATTEMPTS, StorageWork, attachment
from nubes.clock import ManualClock, as_utc
from nubes.domain import disk_states as ds
from nubes.domain.common import Scope
from nubes.domain.disk_categories import bytes_per_second, limits
from nubes.domain.disks import Disks, DiskSpec
from nubes.domain.snapshots import ACCOMPLISHED, FAILED, PROGRESSING, Snapshots
from nubes.domain.storage_tasks import enqueue
from nubes.drivers.compute.base import Boot, ComputeError, DiskAttachment, VmSpec
from nubes.drivers.compute.fake import FakeComputeDriver, FakeHost
from nubes.drivers.storage.fake import FakeStorage
from nubes.store.db import Database
from nubes.store.models import Account, Disk, Host, Image, Instance, Snapshot, StorageTask

HOST = "h1"
ZONE = "cn-hangzhou-h"
GIB = 1 << 30


class LosingCompute(FakeComputeDriver):
    """The fake driver, plus the top layer each disk of a running VM writes to now, and a way to
    lose the reply of a live snapshot that QEMU did make (the agent cannot tell it happened)."""

    def __init__(self, host: FakeHost) -> None:
        super().__init__(host)
        self.tops: dict[str, str] = {}  # disk id -> the layer file (name) the VM writes to
        self.lose_snapshot_replies = 0

    def attach_disk(self, instance_id: str, disk: DiskAttachment) -> None:
        super().attach_disk(instance_id, disk)
        self.tops[disk.disk_id] = disk.path.name

    def snapshot_disk(
        self, instance_id: str, disk_id: str, current: Path, overlay: Path, encrypted: bool = False
    ) -> None:
        super().snapshot_disk(instance_id, disk_id, current, overlay, encrypted)
        self.tops[disk_id] = overlay.name
        if self.lose_snapshot_replies:
            self.lose_snapshot_replies -= 1
            raise ComputeError(
                f"{instance_id}: QMP connection lost before the reply to blockdev-snapshot-sync"
            )


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = ManualClock(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
        self.db = Database(f"sqlite:///{tmp_path / 'nubes.db'}")
        self.db.migrate()
        self.storage = FakeStorage()
        self.host = FakeHost()
        self.compute = LosingCompute(self.host)
        self.rootfs_calls: list[str] = []
        self.work = self.agent()
        self.woken: list[str] = []
        self.disks = Disks(self.db, self.clock, self.woken.append)
        self.snapshots = Snapshots(self.db, self.clock, self.woken.append)
        with self.db.session() as s:
            s.add(Host(id=HOST, vcpus=8, memory_mib=16384, heartbeat_at=self.clock.now()))
            account = Account(name="owner", uid="1000000000000001", created_at=self.clock.now())
            s.add(account)
            s.flush()
            self.account_id = account.id

    def agent(self) -> StorageWork:
        """A (new) agent on the same store, files and VMs: what an agent restart gives."""

        def rootfs(image: Image) -> Path:
            self.rootfs_calls.append(image.id)
            return Path("/var/lib/nubes/images") / image.artifact / "disk.qcow2"

        return StorageWork(self.db, self.clock, self.storage, self.compute, rootfs, HOST)

    # ---- rows ---------------------------------------------------------------------------------

    def instance(self, instance_id: str = "i-1", status: str = "Running") -> str:
        with self.db.session() as s:
            now = self.clock.now()
            s.add(
                Instance(
                    id=instance_id,
                    account_id=self.account_id,
                    region_id="cn-hangzhou",
                    zone_id=ZONE,
                    host_id=HOST,
                    instance_type="ecs.g7.large",
                    cpu=2,
                    memory_mib=8192,
                    image_id="img-sys",
                    status=status,
                    desired="running" if status == "Running" else "stopped",
                    vpc_id="vpc-1",
                    vswitch_id="vsw-1",
                    created_at=now,
                    status_changed_at=now,
                )
            )
        return instance_id

    def start_vm(self, instance_id: str = "i-1", system_disk: str = "d-sys") -> None:
        self.compute.start(
            VmSpec(
                instance_id,
                2,
                8192,
                Boot(Path("/k"), Path("/i"), ""),
                (DiskAttachment(system_disk, self.storage.layer_path(system_disk)),),
            )
        )

    def disk(
        self,
        disk_id: str,
        status: str = ds.AVAILABLE,
        instance_id: str = "",
        layer: str | None = None,
        size: int = 20,
        disk_type: str = "data",
        image_id: str = "",
        source_snapshot_id: str = "",
        category: str = "cloud_essd",
        make_file: bool = True,
    ) -> str:
        """A disk row; unless it is Creating, its top layer exists too."""
        with self.db.session() as s:
            s.add(
                Disk(
                    id=disk_id,
                    account_id=self.account_id,
                    region_id="cn-hangzhou",
                    zone_id=ZONE,
                    instance_id=instance_id,
                    disk_type=disk_type,
                    category=category,
                    performance_level="PL1" if category == "cloud_essd" else "",
                    size_gib=size,
                    status=status,
                    image_id=image_id,
                    device="/dev/xvdb" if instance_id else "",
                    host_id=HOST,
                    created_at=self.clock.now(),
                    layer="" if layer is None else layer,
                    source_snapshot_id=source_snapshot_id,
                    delete_auto_snapshot=False,
                )
            )
        if make_file and status != ds.CREATING:
            self.storage.create_blank(layer or disk_id, size)
        return disk_id

    def snapshot_row(
        self, snapshot_id: str, disk_id: str, layer: str, status: str = ACCOMPLISHED, size: int = 20
    ) -> str:
        with self.db.session() as s:
            s.add(
                Snapshot(
                    id=snapshot_id,
                    account_id=self.account_id,
                    region_id="cn-hangzhou",
                    disk_id=disk_id,
                    disk_type="data",
                    disk_category="cloud_essd",
                    disk_size_gib=size,
                    status=status,
                    progress=100 if status == ACCOMPLISHED else 0,
                    layer=layer,
                    host_id=HOST,
                    created_at=self.clock.now(),
                )
            )
        return snapshot_id

    def image(
        self,
        image_id: str,
        status: str = "Available",
        snapshot_id: str = "",
        disk_mappings: list[dict[str, object]] | None = None,
    ) -> str:
        with self.db.session() as s:
            s.add(
                Image(
                    id=image_id,
                    region_id="*" if not snapshot_id else "cn-hangzhou",
                    account_id=None if not snapshot_id else self.account_id,
                    owner_alias="system" if not snapshot_id else "self",
                    name=image_id,
                    os_name="Ubuntu",
                    os_name_en="Ubuntu",
                    os_type="linux",
                    platform="Ubuntu",
                    architecture="x86_64",
                    size_gib=20,
                    status=status,
                    progress=100 if status == "Available" else 0,
                    artifact=f"art-{image_id}",
                    created_at=self.clock.now(),
                    snapshot_id=snapshot_id,
                    disk_mappings=json.dumps(disk_mappings or []),
                )
            )
        return image_id

    def task(
        self, kind: str, disk_id: str, instance_id: str = "", snapshot_id: str = "", size_gib: int = 0
    ) -> int:
        with self.db.session() as s:
            disk = s.get(Disk, disk_id)
            assert disk is not None
            enqueue(
                s,
                self.clock.now(),
                kind,
                disk,
                instance_id=instance_id,
                snapshot_id=snapshot_id,
                size_gib=size_gib,
            )
            s.flush()
            task_id = s.scalar(select(StorageTask.id).order_by(StorageTask.id.desc()).limit(1))
        assert task_id is not None
        return task_id

    def set_disk(self, disk_id: str, **values: object) -> None:
        with self.db.session() as s:
            disk = s.get(Disk, disk_id)
            assert disk is not None
            for key, value in values.items():
                setattr(disk, key, value)

    # ---- reading --------------------------------------------------------------------------------

    def get_disk(self, disk_id: str) -> Disk:
        with self.db.session() as s:
            disk = s.get(Disk, disk_id)
        assert disk is not None
        return disk

    def get_snapshot(self, snapshot_id: str) -> Snapshot | None:
        with self.db.session() as s:
            return s.get(Snapshot, snapshot_id)

    def tasks(self) -> list[tuple[str, str]]:
        with self.db.session() as s:
            return [(t.kind, t.disk_id) for t in s.scalars(select(StorageTask).order_by(StorageTask.id))]

    def calls(self, operation: str) -> list[str]:
        return [iid for op, iid in self.host.calls if op == operation]

    def run_all(self) -> None:
        for key in sorted(self.work.pending_keys()):
            self.work.run(key)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.db.dispose()


def running_instance_with_disk(world: World, disk_id: str = "d-1") -> None:
    """i-1 runs with data disk d-1 attached and in use (its VM writes to layer d-1)."""
    world.instance("i-1")
    world.start_vm("i-1")
    world.disk(disk_id, ds.IN_USE, instance_id="i-1", layer=disk_id)
    world.compute.attach_disk("i-1", attachment(world.storage, world.get_disk(disk_id)))
    world.host.calls.clear()


# ---- pending keys ---------------------------------------------------------------------------------


def test_pending_keys_are_the_instance_or_the_disk_of_this_hosts_tasks(world: World) -> None:
    assert world.work.pending_keys() == set()
    world.instance("i-1", "Stopped")
    world.disk("d-1", ds.CREATING, make_file=False)
    world.disk("d-2", ds.IN_USE, instance_id="i-1")
    world.task("create", "d-1")
    world.task("resize", "d-2", instance_id="i-1", size_gib=30)
    world.disk("d-other")
    world.set_disk("d-other", host_id="h2")
    world.task("resize", "d-other", size_gib=30)
    assert world.work.pending_keys() == {"d-1", "i-1"}
    world.work.run("i-1")
    assert world.work.pending_keys() == {"d-1"}
    assert world.tasks() == [("create", "d-1"), ("resize", "d-other")]


# ---- create -------------------------------------------------------------------------------------


def test_create_makes_a_blank_layer_and_the_disk_available(world: World) -> None:
    world.disk("d-1", ds.CREATING, size=40)
    world.task("create", "d-1")
    world.work.run("d-1")
    disk = world.get_disk("d-1")
    assert (disk.status, disk.layer) == (ds.AVAILABLE, "d-1")
    assert world.storage.layers == {"d-1": (40, None)}
    assert world.tasks() == []
    assert world.host.calls == []


def test_create_from_a_snapshot_stands_on_its_layer(world: World) -> None:
    world.storage.create_blank("d-0", 20)
    world.snapshot_row("s-1", "d-0", layer="d-0")
    world.disk("d-1", ds.CREATING, size=30, source_snapshot_id="s-1")
    world.task("create", "d-1", snapshot_id="s-1")
    world.work.run("d-1")
    assert world.get_disk("d-1").status == ds.AVAILABLE
    assert world.storage.chain("d-1") == ["d-1", "d-0"]
    assert world.storage.layers["d-1"] == (30, "d-0")


def test_create_of_a_system_disk_from_a_system_image_and_from_a_custom_image(world: World) -> None:
    world.instance("i-1", "Pending")
    world.image("img-sys")
    world.disk("d-sys", ds.IN_USE, instance_id="i-1", disk_type="system", image_id="img-sys", make_file=False)
    world.task("create", "d-sys", instance_id="i-1")
    world.work.run("i-1")
    assert world.rootfs_calls == ["img-sys"]
    assert world.get_disk("d-sys").layer == "d-sys" and world.storage.exists("d-sys")
    assert world.get_disk("d-sys").status == ds.IN_USE

    # a custom image is its snapshot: the new system disk is an overlay on the snapshot's layer
    world.storage.create_blank("d-old", 20)
    world.snapshot_row("s-img", "d-old", layer="d-old")
    world.image("m-1", snapshot_id="s-img")
    world.instance("i-2", "Pending")
    world.disk("d-sys2", ds.IN_USE, instance_id="i-2", disk_type="system", image_id="m-1", make_file=False)
    world.task("create", "d-sys2", instance_id="i-2")
    world.work.run("i-2")
    assert world.rootfs_calls == ["img-sys"]
    assert world.storage.chain("d-sys2") == ["d-sys2", "d-old"]


def test_create_twice_keeps_one_layer(world: World) -> None:
    world.disk("d-1", ds.CREATING)
    task_id = world.task("create", "d-1")
    world.work.run("d-1")
    # the commit was lost: the same task again
    with world.db.session() as s:
        s.add(
            StorageTask(id=task_id, kind="create", disk_id="d-1", host_id=HOST, created_at=world.clock.now())
        )
    world.work.run("d-1")
    assert world.storage.layers == {"d-1": (20, None)}
    assert world.get_disk("d-1").status == ds.AVAILABLE and world.tasks() == []


def test_a_task_of_a_disk_that_is_gone_is_dropped(world: World) -> None:
    world.disk("d-1", ds.CREATING)
    world.task("create", "d-1")
    with world.db.session() as s:
        s.delete(s.get(Disk, "d-1"))
    world.work.run("d-1")
    assert world.tasks() == [] and world.storage.layers == {}


# ---- attach / detach ------------------------------------------------------------------------------


def test_attach_to_a_running_vm_plugs_the_top_layer_in(world: World) -> None:
    world.instance("i-1")
    world.start_vm("i-1")
    world.disk("d-1", ds.AVAILABLE, layer="d-1.s-7")
    world.set_disk("d-1", status=ds.ATTACHING, instance_id="i-1", device="/dev/xvdb")
    world.task("attach", "d-1", instance_id="i-1")
    assert world.work.pending_keys() == {"i-1"}
    world.work.run("i-1")
    assert world.get_disk("d-1").status == ds.IN_USE
    assert world.compute.attached_disks("i-1") == ["d-1"]
    plugged = world.host.vms["i-1"].disks["d-1"]
    assert plugged.path == world.storage.layer_path("d-1.s-7")  # the top layer, not the first one
    caps = limits("cloud_essd", 20, "PL1")
    assert (plugged.iops, plugged.bps) == (caps.iops, bytes_per_second(caps))
    assert plugged.iops > 0 and plugged.bps > 0
    assert world.tasks() == []


def test_attach_to_a_stopped_instance_only_settles(world: World) -> None:
    world.instance("i-1", "Stopped")
    world.disk("d-1", ds.ATTACHING, instance_id="i-1")
    world.task("attach", "d-1", instance_id="i-1")
    world.work.run("i-1")
    assert world.get_disk("d-1").status == ds.IN_USE
    assert world.calls("attach_disk") == []


def test_attachment_has_the_category_limits(world: World) -> None:
    world.disk("d-ssd", category="cloud_ssd", size=100)
    world.disk("d-essd", size=500)
    world.set_disk("d-essd", performance_level="PL2")
    for disk_id, category, size, level in (
        ("d-ssd", "cloud_ssd", 100, ""),
        ("d-essd", "cloud_essd", 500, "PL2"),
    ):
        got = attachment(world.storage, world.get_disk(disk_id))
        caps = limits(category, size, level)
        assert (got.disk_id, got.path, got.iops, got.bps) == (
            disk_id,
            world.storage.layer_path(disk_id),
            caps.iops,
            bytes_per_second(caps),
        )
    assert (
        attachment(world.storage, world.get_disk("d-essd")).iops
        > attachment(world.storage, world.get_disk("d-ssd")).iops
    )


def test_attachment_of_a_bursting_cloud_auto_disk_allows_the_burst(world: World) -> None:
    world.disk("d-auto", category="cloud_auto", size=100)
    world.set_disk("d-auto", bursting_enabled=True)
    got = attachment(world.storage, world.get_disk("d-auto"))
    caps = limits("cloud_auto", 100, bursting_enabled=True)
    assert caps != limits("cloud_auto", 100)
    assert (got.iops, got.bps) == (caps.iops, bytes_per_second(caps))


def test_detach_from_a_running_vm(world: World) -> None:
    running_instance_with_disk(world)
    world.set_disk("d-1", status=ds.DETACHING)
    world.task("detach", "d-1", instance_id="i-1")
    world.clock.advance(60)
    world.work.run("i-1")
    disk = world.get_disk("d-1")
    assert (disk.status, disk.instance_id, disk.device) == (ds.AVAILABLE, "", "")
    assert disk.detached_at is not None and as_utc(disk.detached_at) == world.clock.now()
    assert world.compute.attached_disks("i-1") == []
    assert world.calls("detach_disk") == ["i-1"]
    assert world.storage.exists("d-1")  # detaching keeps the disk's layers


# ---- snapshot -----------------------------------------------------------------------------------------


def test_snapshot_of_a_disk_in_a_running_vm(world: World) -> None:
    running_instance_with_disk(world)
    snapshot_id = world.snapshots.create(world.account_id, "d-1", name="before-upgrade")
    assert world.woken == ["i-1"]
    assert world.work.pending_keys() == {"i-1"}
    world.clock.advance(5)
    world.work.run("i-1")

    snapshot = world.get_snapshot(snapshot_id)
    assert snapshot is not None
    assert (snapshot.status, snapshot.progress, snapshot.layer) == (ACCOMPLISHED, 100, "d-1")
    assert snapshot.completed_at is not None and as_utc(snapshot.completed_at) == world.clock.now()
    overlay = f"d-1.{snapshot_id}"
    assert world.get_disk("d-1").layer == overlay
    assert world.storage.chain(overlay) == [overlay, "d-1"]
    assert world.calls("snapshot_disk") == ["i-1"]
    assert world.compute.tops["d-1"] == f"{overlay}.qcow2"  # the VM writes to the new top
    assert world.tasks() == []

    # a second snapshot freezes the first one's overlay
    second = world.snapshots.create(world.account_id, "d-1")
    world.work.run("i-1")
    snap2 = world.get_snapshot(second)
    assert snap2 is not None and snap2.layer == overlay
    assert world.storage.chain(world.get_disk("d-1").layer) == [f"d-1.{second}", overlay, "d-1"]
    assert world.compute.tops["d-1"] == f"d-1.{second}.qcow2"


def test_snapshot_of_an_available_disk_needs_no_vm(world: World) -> None:
    world.disk("d-1")
    snapshot_id = world.snapshots.create(world.account_id, "d-1")
    assert world.work.pending_keys() == {"d-1"}
    world.work.run("d-1")
    snapshot = world.get_snapshot(snapshot_id)
    assert snapshot is not None and (snapshot.status, snapshot.layer) == (ACCOMPLISHED, "d-1")
    assert world.get_disk("d-1").layer == f"d-1.{snapshot_id}"
    assert world.storage.layers[f"d-1.{snapshot_id}"] == (20, "d-1")
    assert world.host.calls == []


def test_snapshot_of_a_disk_of_a_stopped_instance_needs_no_vm(world: World) -> None:
    world.instance("i-1", "Stopped")
    world.disk("d-1", ds.IN_USE, instance_id="i-1")
    snapshot_id = world.snapshots.create(world.account_id, "d-1")
    world.work.run("i-1")
    assert world.get_disk("d-1").layer == f"d-1.{snapshot_id}"
    assert world.calls("snapshot_disk") == []


def test_a_snapshot_deleted_before_its_task_ran_changes_nothing(world: World) -> None:
    running_instance_with_disk(world)
    snapshot_id = world.snapshots.create(world.account_id, "d-1")
    world.snapshots.delete(world.account_id, snapshot_id, force=False)
    assert world.get_snapshot(snapshot_id) is None
    world.work.run("i-1")
    assert world.get_disk("d-1").layer == "d-1"
    assert set(world.storage.layers) == {"d-1"}
    assert world.calls("snapshot_disk") == []
    assert world.tasks() == []


def test_a_snapshot_deleted_while_its_task_settles_is_settled_without_error(world: World) -> None:
    # found by the crash campaign (seed 11): the settle wrote a snapshot row that DeleteSnapshot had
    # just removed, and the agent logged a StaleDataError and redid the whole task
    running_instance_with_disk(world)
    snapshot_id = world.snapshots.create(world.account_id, "d-1")
    settles = 0
    finish = world.work._finish

    def deleted_meanwhile(task: StorageTask, change: Callable[[Disk | None, Snapshot | None], None]) -> None:
        def racing(disk: Disk | None, snapshot: Snapshot | None) -> None:
            nonlocal settles
            settles += 1
            if settles == 1:
                world.snapshots.delete(world.account_id, snapshot_id, force=False)
            change(disk, snapshot)

        finish(task, racing)

    world.work._finish = deleted_meanwhile  # type: ignore[method-assign]
    world.work.run("i-1")
    assert settles == 2
    assert world.get_snapshot(snapshot_id) is None
    assert world.get_disk("d-1").layer == f"d-1.{snapshot_id}"  # the VM writes there now
    assert world.tasks() == []


def test_a_snapshot_task_redone_after_a_lost_commit_ends_consistent(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file and QMP work were done, then the agent died before the transaction: a new agent
    redoes the task; the same overlay is used (no second one) and the VM is not moved twice."""
    running_instance_with_disk(world)
    snapshot_id = world.snapshots.create(world.account_id, "d-1")
    first = world.agent()

    def crash(*_: object) -> None:
        raise RuntimeError("the agent died before the commit")

    monkeypatch.setattr(first, "_finish", crash)
    first.run("i-1")
    overlay = f"d-1.{snapshot_id}"
    assert world.storage.exists(overlay) and world.compute.tops["d-1"] == f"{overlay}.qcow2"
    assert world.get_disk("d-1").layer == "d-1"  # nothing recorded
    snapshot = world.get_snapshot(snapshot_id)
    assert snapshot is not None and snapshot.status == PROGRESSING
    assert world.tasks() == [("snapshot", "d-1")]

    restarted = world.agent()
    restarted.run("i-1")
    snapshot = world.get_snapshot(snapshot_id)
    assert snapshot is not None and (snapshot.status, snapshot.layer) == (ACCOMPLISHED, "d-1")
    assert world.get_disk("d-1").layer == overlay
    assert set(world.storage.layers) == {"d-1", overlay}
    assert world.storage.layers[overlay] == (20, "d-1")
    assert world.tasks() == []

    # the same task row once more (its delete was lost too): nothing moves
    with world.db.session() as s:
        s.add(
            StorageTask(
                kind="snapshot",
                disk_id="d-1",
                instance_id="i-1",
                snapshot_id=snapshot_id,
                host_id=HOST,
                created_at=world.clock.now(),
            )
        )
    calls = len(world.calls("snapshot_disk"))
    restarted.run("i-1")
    assert world.get_disk("d-1").layer == overlay
    snapshot = world.get_snapshot(snapshot_id)
    assert snapshot is not None and snapshot.layer == "d-1"
    assert set(world.storage.layers) == {"d-1", overlay}
    assert len(world.calls("snapshot_disk")) == calls
    assert world.tasks() == []


def test_a_failing_snapshot_is_retried_then_given_up(world: World) -> None:
    running_instance_with_disk(world)
    snapshot_id = world.snapshots.create(world.account_id, "d-1")
    world.task("resize", "d-1", instance_id="i-1", size_gib=30)  # queued behind the snapshot
    for _ in range(MAX_ATTEMPTS):
        world.host.inject_failure("snapshot_disk", ComputeError("QMP: device busy"), "i-1")
    for attempt in range(1, MAX_ATTEMPTS):
        world.work.run("i-1")
        snapshot = world.get_snapshot(snapshot_id)
        assert snapshot is not None and snapshot.status == PROGRESSING, attempt
        assert world.tasks() == [("snapshot", "d-1"), ("resize", "d-1")]  # the later task waits
        assert world.calls("resize_disk") == []
    world.work.run("i-1")
    snapshot = world.get_snapshot(snapshot_id)
    assert snapshot is not None and snapshot.status == FAILED and snapshot.layer == ""
    disk = world.get_disk("d-1")
    assert (disk.layer, disk.status, disk.instance_id) == ("d-1", ds.IN_USE, "i-1")
    assert world.tasks() == []  # given up, and the resize behind it done
    assert world.calls("resize_disk") == ["i-1"]
    assert len(world.calls("snapshot_disk")) == MAX_ATTEMPTS
    assert world.storage.layers.keys() == {"d-1"}  # the unused overlay was collected


def test_a_snapshot_given_up_does_not_undo_a_queued_detach(world: World) -> None:
    running_instance_with_disk(world)
    snapshot_id = world.snapshots.create(world.account_id, "d-1")
    world.disks.detach(world.account_id, "d-1", "i-1", None)
    assert world.get_disk("d-1").status == ds.DETACHING
    for _ in range(MAX_ATTEMPTS):
        world.host.inject_failure("snapshot_disk", ComputeError("QMP: device busy"), "i-1")
    for _ in range(MAX_ATTEMPTS):
        world.work.run("i-1")
    snapshot = world.get_snapshot(snapshot_id)
    assert snapshot is not None and snapshot.status == FAILED
    assert world.tasks() == []
    assert world.compute.attached_disks("i-1") == []
    disk = world.get_disk("d-1")
    assert (disk.status, disk.instance_id) == (ds.AVAILABLE, "")


def test_an_attach_that_keeps_failing_leaves_the_disk_available(world: World) -> None:
    world.instance("i-1")
    world.start_vm("i-1")
    world.disk("d-1", ds.ATTACHING, instance_id="i-1")
    world.task("attach", "d-1", instance_id="i-1")
    for _ in range(MAX_ATTEMPTS):
        world.host.inject_failure("attach_disk", ComputeError("no free hot-plug port"), "i-1")
    for _ in range(MAX_ATTEMPTS - 1):
        world.work.run("i-1")
        assert world.get_disk("d-1").status == ds.ATTACHING
    world.work.run("i-1")
    disk = world.get_disk("d-1")
    assert (disk.status, disk.instance_id, disk.device) == (ds.AVAILABLE, "", "")
    assert world.compute.attached_disks("i-1") == [] and world.tasks() == []


def test_a_task_that_fails_less_than_max_attempts_succeeds(world: World) -> None:
    world.disk("d-1")
    snapshot_id = world.snapshots.create(world.account_id, "d-1")
    original = world.storage.create_overlay
    failures = [MAX_ATTEMPTS - 1]

    def flaky(layer: str, backing: str, size_gib: int, key: str | None = None) -> Path:
        if failures[0]:
            failures[0] -= 1
            raise OSError("disk full")
        return original(layer, backing, size_gib, key)

    world.storage.create_overlay = flaky  # type: ignore[method-assign]
    for _ in range(MAX_ATTEMPTS):
        world.work.run("d-1")
    snapshot = world.get_snapshot(snapshot_id)
    assert snapshot is not None and snapshot.status == ACCOMPLISHED


def test_create_image_becomes_available_when_its_snapshots_are_accomplished(world: World) -> None:
    running_instance_with_disk(world, "d-1")
    world.disk("d-2", ds.IN_USE, instance_id="i-1")
    world.compute.attach_disk("i-1", attachment(world.storage, world.get_disk("d-2")))
    system = world.snapshots.create(world.account_id, "d-1")
    data = world.snapshots.create(world.account_id, "d-2")
    world.image(
        "m-1",
        status="Creating",
        snapshot_id=system,
        disk_mappings=[{"SnapshotId": data, "Size": 20, "Device": "/dev/xvdb"}],
    )
    world.image("m-other", status="Creating", snapshot_id="s-unrelated")
    with world.db.session() as s:
        # run only the first task: the image waits for its second snapshot
        first = s.scalars(select(StorageTask).order_by(StorageTask.id)).first()
        assert first is not None and first.snapshot_id == system
    world.work._do(first)
    with world.db.session() as s:
        image = s.get(Image, "m-1")
        assert image is not None and (image.status, image.progress) == ("Creating", 50)
    world.work.run("i-1")
    with world.db.session() as s:
        image = s.get(Image, "m-1")
        other = s.get(Image, "m-other")
        assert image is not None and (image.status, image.progress) == ("Available", 100)
        assert other is not None and other.status == "Creating"


# ---- reset / reinit / resize ------------------------------------------------------------------------------


def test_reset_puts_the_disk_on_a_new_layer_over_the_snapshot(world: World) -> None:
    world.instance("i-1", "Stopped")
    world.disk("d-1", ds.IN_USE, instance_id="i-1")
    snapshot_id = world.snapshots.create(world.account_id, "d-1")
    world.work.run("i-1")
    written = world.get_disk("d-1").layer
    assert written == f"d-1.{snapshot_id}"

    world.disks.reset(world.account_id, "d-1", snapshot_id)
    task_id = _last_task_id(world)
    world.work.run("i-1")
    disk = world.get_disk("d-1")
    assert disk.layer == f"d-1.r{task_id}"
    assert world.storage.chain(disk.layer) == [disk.layer, "d-1"]
    assert disk.status == ds.IN_USE
    assert not world.storage.exists(written)  # what the disk held after the snapshot is gone
    assert world.storage.exists("d-1")  # the snapshot's layer stays


def _last_task_id(world: World) -> int:
    with world.db.session() as s:
        task_id = s.scalar(select(StorageTask.id).order_by(StorageTask.id.desc()).limit(1))
    assert task_id is not None
    return task_id


def test_reset_to_a_snapshot_that_is_gone_is_given_up(world: World) -> None:
    world.disk("d-1")
    world.task("reset", "d-1", snapshot_id="s-gone")
    for _ in range(MAX_ATTEMPTS):
        world.work.run("d-1")
    assert world.get_disk("d-1").top_layer == "d-1" and world.tasks() == []
    assert world.storage.layers.keys() == {"d-1"}


def test_reinit_of_a_data_disk_gives_a_blank_layer(world: World) -> None:
    world.instance("i-1", "Stopped")
    world.disk("d-1", ds.IN_USE, instance_id="i-1")
    world.disks.reinit(world.account_id, "d-1")
    assert world.get_disk("d-1").status == ds.REINITING
    task_id = _last_task_id(world)
    world.work.run("i-1")
    disk = world.get_disk("d-1")
    assert (disk.status, disk.layer) == (ds.IN_USE, f"d-1.i{task_id}")
    assert world.storage.layers[disk.layer] == (20, None)
    assert not world.storage.exists("d-1")  # the old content is collected


def test_reinit_of_a_disk_made_from_a_snapshot_goes_back_to_the_snapshot(world: World) -> None:
    world.instance("i-1", "Stopped")
    world.storage.create_blank("d-0", 20)
    world.snapshot_row("s-1", "d-0", layer="d-0")
    world.disk("d-1", ds.IN_USE, instance_id="i-1", source_snapshot_id="s-1")
    world.storage.delete("d-1")
    world.storage.create_overlay("d-1", "d-0", 20)
    world.disks.reinit(world.account_id, "d-1")
    task_id = _last_task_id(world)
    world.work.run("i-1")
    assert world.storage.chain(world.get_disk("d-1").layer) == [f"d-1.i{task_id}", "d-0"]
    assert world.get_disk("d-1").status == ds.IN_USE


def test_reinit_of_a_system_disk_goes_back_to_the_image(world: World) -> None:
    world.instance("i-1", "Stopped")
    world.image("img-sys")
    world.disk("d-sys", ds.IN_USE, instance_id="i-1", disk_type="system", image_id="img-sys")
    world.disks.reinit(world.account_id, "d-sys")
    world.work.run("i-1")
    assert world.rootfs_calls == ["img-sys"]
    assert world.get_disk("d-sys").layer.startswith("d-sys.i")
    assert world.get_disk("d-sys").status == ds.IN_USE


def test_resize_online_goes_through_the_vm(world: World) -> None:
    running_instance_with_disk(world)
    world.task("resize", "d-1", instance_id="i-1", size_gib=50)
    world.set_disk("d-1", size_gib=50)
    world.work.run("i-1")
    assert world.calls("resize_disk") == ["i-1"]
    assert "disk d-1 grown to 53687091200 bytes" in world.compute.console_output("i-1").decode()
    assert world.storage.layers["d-1"] == (20, None)  # the file a VM holds is grown by the VM
    assert world.tasks() == []


def test_resize_offline_grows_the_top_layer(world: World) -> None:
    world.storage.create_blank("d-1", 20)
    world.disk("d-1", layer="d-1.s-1", make_file=False)
    world.storage.create_overlay("d-1.s-1", "d-1", 20)
    world.task("resize", "d-1", size_gib=50)
    world.work.run("d-1")
    assert world.storage.layers["d-1.s-1"] == (50, "d-1")
    assert world.storage.layers["d-1"] == (20, None)  # frozen layers never change
    assert world.host.calls == []


def test_resize_of_a_disk_of_a_stopped_instance_is_offline(world: World) -> None:
    world.instance("i-1", "Stopped")
    world.disk("d-1", ds.IN_USE, instance_id="i-1")
    world.disks.resize(world.account_id, "d-1", 64, online=False)
    world.work.run("i-1")
    assert world.storage.layers["d-1"] == (64, None)
    assert world.calls("resize_disk") == []


# ---- delete and the collector --------------------------------------------------------------------------


def test_delete_removes_the_disks_layers_but_keeps_its_snapshots(world: World) -> None:
    world.disk("d-1")
    kept = world.snapshots.create(world.account_id, "d-1")
    world.work.run("d-1")
    top = world.get_disk("d-1").layer
    world.disk("d-2")  # another disk: untouched
    world.disks.delete(world.account_id, "d-1")
    with world.db.session() as s:
        assert s.get(Disk, "d-1") is None
    assert world.work.pending_keys() == {"d-1"}
    world.work.run("d-1")
    assert world.tasks() == []
    assert set(world.storage.layers) == {"d-1", "d-2"}  # the snapshot's frozen layer stays
    assert not world.storage.exists(top)

    # a disk made from the kept snapshot later still stands on it
    world.disk("d-3", ds.CREATING, source_snapshot_id=kept)
    world.task("create", "d-3", snapshot_id=kept)
    world.work.run("d-3")
    assert world.storage.chain("d-3") == ["d-3", "d-1"]


def test_collect_keeps_tops_snapshot_layers_and_what_is_under_them(world: World) -> None:
    world.disk("d-1")
    world.storage.create_overlay("d-1.s-1", "d-1", 20)
    world.set_disk("d-1", layer="d-1.s-1")
    world.storage.create_blank("stray", 5)  # a layer of a disk deleted long ago
    world.storage.create_overlay("d-1.s-9", "d-1.s-1", 20)  # an overlay of a snapshot never recorded
    world.storage.create_blank("img-1.import", 5)
    assert sorted(world.work.collect()) == ["d-1.s-9", "img-1.import", "stray"]
    assert set(world.storage.layers) == {"d-1", "d-1.s-1"}
    assert world.work.collect() == []


def test_collect_waits_while_a_disk_is_being_made(world: World) -> None:
    world.storage.create_blank("stray", 5)
    world.disk("d-1", ds.CREATING)
    world.task("create", "d-1")
    assert world.work.collect() == []
    assert world.storage.exists("stray")
    world.work.run("d-1")
    assert not world.storage.exists("stray")


class CreatingWhileListed(FakeStorage):
    """Makes a layer right after the collector lists the layers, before it reads the store: what a
    disk's create task on another agent thread does when its row is not yet committed."""

    def __init__(self, made: str) -> None:
        super().__init__()
        self.made = made

    def graph(self) -> dict[str, str | None]:
        listed = super().graph()
        if not self.exists(self.made):
            self.create_blank(self.made, 20)
        return listed


def test_collect_never_removes_a_layer_made_after_it_listed_the_layers(world: World) -> None:
    # found by the crash campaign (seed 11): a new disk ended Available without its layer, which a
    # concurrent collection had taken for garbage between the layer's creation and its row's commit
    world.storage = CreatingWhileListed("d-new")
    world.work = world.agent()
    world.storage.create_blank("stray", 5)
    assert world.work.collect() == ["stray"]
    assert world.storage.exists("d-new")


def test_collect_ignores_disks_of_other_hosts_but_keeps_all_snapshots(world: World) -> None:
    world.disk("d-1")
    world.set_disk("d-1", host_id="h2")  # the row says it lives elsewhere: its file here is stale
    world.storage.create_blank("d-9", 20)
    world.snapshot_row("s-9", "d-9", layer="d-9")
    assert world.work.collect() == ["d-1"]
    assert set(world.storage.layers) == {"d-9"}


# ---- found bugs -------------------------------------------------------------------------------------


def test_a_disk_created_on_an_instance_ends_in_use_whatever_the_key_order(world: World) -> None:
    world.instance("i-1")
    world.start_vm("i-1")
    disk_id = world.disks.create(
        _scope(world), DiskSpec(zone_id=None, category="cloud_essd", size_gib=20, instance_id="i-1")
    )
    assert world.work.pending_keys() == {"i-1"}  # create and attach under one key, in order
    world.work.run(disk_id)  # nothing of it runs under the disk's own key
    world.work.run("i-1")
    world.run_all()
    disk = world.get_disk(disk_id)
    assert disk.status == ds.IN_USE
    assert world.compute.attached_disks("i-1") == [disk_id]


def _scope(world: World) -> Scope:
    return Scope(world.account_id, "cn-hangzhou")


def test_collect_between_a_live_snapshot_and_its_commit_keeps_the_vms_top(world: World) -> None:
    running_instance_with_disk(world)
    snapshot_id = world.snapshots.create(world.account_id, "d-1")
    world.compute.lose_snapshot_replies = 1
    world.work.run("i-1")  # attempt 1: QEMU switched to the overlay, the agent saw an error
    overlay = f"d-1.{snapshot_id}"
    assert world.compute.tops["d-1"] == f"{overlay}.qcow2"
    assert world.tasks() == [("snapshot", "d-1")]
    world.disk("d-other")
    world.task("resize", "d-other", size_gib=30)
    world.work.run("d-other")  # another key's work ends with a collection
    assert world.storage.exists(overlay), "the running VM's active layer was collected"


def test_a_snapshot_cancelled_after_the_vm_moved_records_the_new_top(world: World) -> None:
    running_instance_with_disk(world)
    snapshot_id = world.snapshots.create(world.account_id, "d-1")
    world.compute.lose_snapshot_replies = 1
    world.work.run("i-1")
    assert world.compute.tops["d-1"] == f"d-1.{snapshot_id}.qcow2"
    world.snapshots.delete(world.account_id, snapshot_id, force=False)
    world.work.run("i-1")
    assert world.tasks() == []
    assert f"{world.get_disk('d-1').top_layer}.qcow2" == world.compute.tops["d-1"]
    assert world.storage.exists(world.get_disk("d-1").top_layer)


# ---- no status stays transient for ever -----------------------------------------------------------


def test_a_snapshot_whose_disk_was_released_before_its_task_ran_fails_with_its_image(world: World) -> None:
    """The instance went (ForceDeleteInstance) with its disks while a CreateImage snapshot was
    queued: the snapshot can never be taken, so it and the image end failed, not progressing."""
    from nubes.domain.snapshot_usage import release_disk

    running_instance_with_disk(world)
    snapshot_id = world.snapshots.create(world.account_id, "d-1")
    world.image("m-1", status="Creating", snapshot_id=snapshot_id)
    with world.db.session() as s:
        disk = s.get(Disk, "d-1")
        assert disk is not None
        release_disk(s, disk)
    world.run_all()
    snapshot = world.get_snapshot(snapshot_id)
    assert snapshot is not None and snapshot.status == FAILED
    with world.db.session() as s:
        image = s.get(Image, "m-1")
        assert image is not None and image.status == "CreateFailed"
    assert world.tasks() == []
    assert world.calls("snapshot_disk") == []


def test_delete_disk_is_refused_while_a_snapshot_of_it_is_progressing(world: World) -> None:
    from nubes.errors import ApiError

    world.disk("d-1")
    snapshot_id = world.snapshots.create(world.account_id, "d-1")
    with pytest.raises(ApiError) as refused:
        world.disks.delete(world.account_id, "d-1")
    assert (refused.value.code, refused.value.http_status) == ("DiskCreatingSnapshot", 403)
    world.run_all()
    snapshot = world.get_snapshot(snapshot_id)
    assert snapshot is not None and snapshot.status == ACCOMPLISHED
    world.disks.delete(world.account_id, "d-1")  # once it is taken the disk goes
    world.run_all()
    assert world.tasks() == [] and world.storage.exists("d-1")  # the snapshot's layer stays


def test_an_image_whose_snapshot_was_given_up_is_create_failed(world: World) -> None:
    running_instance_with_disk(world)
    snapshot_id = world.snapshots.create(world.account_id, "d-1")
    world.image("m-1", status="Creating", snapshot_id=snapshot_id)
    for _ in range(MAX_ATTEMPTS):
        world.host.inject_failure("snapshot_disk", ComputeError("QMP: device busy"), "i-1")
    for _ in range(MAX_ATTEMPTS):
        world.work.run("i-1")
    snapshot = world.get_snapshot(snapshot_id)
    assert snapshot is not None and snapshot.status == FAILED
    with world.db.session() as s:
        image = s.get(Image, "m-1")
        assert image is not None and image.status == "CreateFailed"


def test_recover_settles_what_a_crash_left_transient_without_a_task(world: World) -> None:
    """Statuses a crash (or an older nubes) left with no task to move them: an agent start
    fails what can no longer happen and queues again what still can."""
    world.instance("i-1", "Stopped")
    world.disk("d-1", ds.IN_USE, instance_id="i-1")
    world.snapshot_row("s-lost", "d-1", "", status=PROGRESSING)
    world.snapshot_row("s-done", "d-1", "d-1")
    world.image("m-lost", status="Creating", snapshot_id="s-lost")
    world.image("m-done", status="Creating", snapshot_id="s-done")
    world.image("m-import", status="Creating", snapshot_id="")
    with world.db.session() as s:  # an import image is not a system image
        image = s.get(Image, "m-import")
        assert image is not None
        image.owner_alias, image.account_id = "self", world.account_id
    world.disk("d-attaching", ds.ATTACHING, instance_id="i-1")
    world.disk("d-creating", ds.CREATING, make_file=False)
    world.disk("d-queued", ds.CREATING, make_file=False)
    world.task("create", "d-queued")
    world.disk("d-other-host", ds.DETACHING, instance_id="i-1")
    world.set_disk("d-other-host", host_id="h2")

    world.agent().recover()
    snapshot = world.get_snapshot("s-lost")
    assert snapshot is not None and snapshot.status == FAILED
    with world.db.session() as s:
        statuses = {i.id: i.status for i in s.scalars(select(Image).where(Image.id.like("m-%")))}
    assert statuses == {"m-lost": "CreateFailed", "m-done": "Available", "m-import": "CreateFailed"}
    assert sorted(world.tasks()) == [
        ("attach", "d-attaching"),
        ("create", "d-creating"),
        ("create", "d-queued"),
    ]

    world.run_all()
    assert world.get_disk("d-attaching").status == ds.IN_USE
    assert world.get_disk("d-creating").status == ds.AVAILABLE
    assert world.get_disk("d-queued").status == ds.AVAILABLE
    assert world.get_disk("d-other-host").status == ds.DETACHING  # its own host's agent settles it
    world.agent().recover()
    assert world.tasks() == []  # nothing left to find
