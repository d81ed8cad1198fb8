"""The storage part of the host agent: do the queued disk tasks of this host (files and, for
disks in running VMs, QEMU hot-plug, live snapshots and resizes), then settle the statuses
(through the disk status table: `disk_states.agent_move`).

Tasks run in id order per key (the instance a disk is attached to, or the disk), inside the
host loop's one-step-at-a-time slot for that key, before the instance's lifecycle step, so a
VM never starts or stops while one of its disks is being worked on. Every step is idempotent:
a task is deleted only in the transaction that records its outcome, and a crash redoes it. The
files that a task makes before that transaction are guarded from the collector by one lock."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import object_session
from sqlalchemy.orm.exc import StaleDataError

from nubes.agent.image_transfer import do_export, do_import, fail_import
from nubes.clock import Clock
from nubes.domain import disk_states as ds
from nubes.domain.custom_images import CREATE_FAILED, CREATING, settle_images
from nubes.domain.disk_categories import bytes_per_second, limits
from nubes.domain.disk_keys import DiskKeys
from nubes.domain.snapshots import ACCOMPLISHED, FAILED, PROGRESSING
from nubes.domain.storage_tasks import enqueue
from nubes.domain.tasks import fail_orphans
from nubes.drivers.compute.base import ComputeDriver, DiskAttachment, PowerState
from nubes.drivers.storage.base import StorageDriver
from nubes.store.db import Database
from nubes.store.models import Disk, Image, Snapshot, StorageTask

log = logging.getLogger("nubes.agent.storage")

MAX_ATTEMPTS = 5
GIB = 1 << 30
STREAM_TIMEOUT = 3600.0

# The image file (root file system) a system disk is made on.
RootfsResolver = Callable[[Image], Path]


def _move(disk: Disk, to: str) -> None:
    """Move a disk's status on through the status table (a move it lacks is refused, a bug)."""
    disk.status = ds.agent_move(disk.id, disk.status, to)


def encrypted_layers(storage: StorageDriver, top: str) -> tuple[Path, ...]:
    """The files of the encrypted layers of a chain: its top part (a layer on an encrypted one is
    always encrypted too), top first."""
    layers: list[Path] = []
    for layer in storage.chain(top):
        if not storage.encrypted(layer):
            break
        layers.append(storage.layer_path(layer))
    return tuple(layers)


def attachment(storage: StorageDriver, disk: Disk, key: str | None = None) -> DiskAttachment:
    """How a VM opens a disk: its top layer, throttled to its category's limits, with the key of
    an encrypted disk."""
    caps = limits(
        disk.category,
        disk.size_gib,
        disk.performance_level,
        disk.provisioned_iops,
        bursting_enabled=disk.bursting_enabled,
    )
    return DiskAttachment(
        disk.id,
        storage.layer_path(disk.top_layer),
        iops=caps.iops,
        bps=bytes_per_second(caps),
        key=key or "",
        encrypted_layers=encrypted_layers(storage, disk.top_layer) if key else (),
    )


class StorageWork:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        storage: StorageDriver,
        compute: ComputeDriver,
        rootfs: RootfsResolver,
        host_id: str,
        keys: DiskKeys | None = None,
    ) -> None:
        self._db = db
        self._keys = keys  # None: this agent has no master key, and works on no encrypted disk
        self._clock = clock
        self._storage = storage
        self._compute = compute
        self._rootfs = rootfs
        self.host_id = host_id
        self._files = threading.Lock()
        self._attempts: dict[int, int] = {}

    # ---- what there is to do ---------------------------------------------------------------

    def pending_keys(self) -> set[str]:
        with self._db.session() as s:
            rows = s.execute(
                select(StorageTask.instance_id, StorageTask.disk_id).where(
                    (StorageTask.host_id == self.host_id) | StorageTask.host_id.is_(None)
                )
            )
            return {instance_id or disk_id for instance_id, disk_id in rows}

    def run(self, key: str) -> None:
        """Do the tasks of `key` (an instance id or a disk id), oldest first."""
        with self._db.session() as s:
            tasks = list(
                s.scalars(
                    select(StorageTask)
                    .where(
                        (StorageTask.instance_id == key)
                        | ((StorageTask.instance_id == "") & (StorageTask.disk_id == key))
                    )
                    .order_by(StorageTask.id)
                )
            )
        if not tasks:
            return  # the common case, every pass for every instance: no collection either
        for task in tasks:
            try:
                self._do(task)
            except Exception:
                attempts = self._attempts.get(task.id, 0) + 1
                self._attempts[task.id] = attempts
                if attempts < MAX_ATTEMPTS:
                    log.exception(
                        "storage task %s %s of %s failed (attempt %d); retrying",
                        task.id,
                        task.kind,
                        task.disk_id,
                        attempts,
                    )
                    return
                log.exception(
                    "storage task %s %s of %s failed %d times; giving up",
                    task.id,
                    task.kind,
                    task.disk_id,
                    attempts,
                )
                self._give_up(task)
        self.collect()

    def collect(self) -> list[str]:
        """Remove the layers no disk or snapshot of this host needs any more."""
        with self._files:
            # listed before the store is read: a layer made meanwhile (a disk's create, an
            # image import) is not yet named by its row and must not be taken for garbage
            among = set(self._storage.graph())
            with self._db.session() as s:
                keep = {d.top_layer for d in s.scalars(select(Disk).where(Disk.host_id == self.host_id))}
                keep |= {layer for layer in s.scalars(select(Snapshot.layer).where(Snapshot.layer != ""))}
                keep |= {
                    f"{image_id}.import"
                    for image_id in s.scalars(select(StorageTask.disk_id).where(StorageTask.kind == "import"))
                }
                # a snapshot's new top may be in a running VM before the store names it
                keep |= {
                    _overlay_name(disk_id, snapshot_id)
                    for disk_id, snapshot_id in s.execute(
                        select(StorageTask.disk_id, StorageTask.snapshot_id).where(
                            StorageTask.kind == "snapshot"
                        )
                    )
                }
                if s.scalar(
                    select(StorageTask.id).where(StorageTask.kind.in_(("create", "reinit", "reset"))).limit(1)
                ):
                    return []  # a disk is being made: its source may be known only to the task
            return self._storage.collect(keep, among)

    def recover(self) -> None:
        """At agent start, settle what a crash (or an older nubes) left in a transient status
        without the task that would move it on: tasks are committed with their statuses and
        deleted with their outcome, so this finds nothing after a clean history; it is the net
        under the rule that no status stays transient for ever. A progressing snapshot with no
        task is failed (its moment is past, nothing can take it now), the images waiting for
        it then fail too, an image import with no task fails, and a disk of this host that is
        Creating, Attaching, Detaching or ReIniting gets its task queued again (every task is
        idempotent, so doing one twice is harmless)."""
        with self._db.session() as s:
            tasks = list(s.execute(select(StorageTask.kind, StorageTask.disk_id, StorageTask.snapshot_id)))
            snapshot_tasks = {snapshot_id for kind, _, snapshot_id in tasks if kind == "snapshot"}
            disk_tasks = {(kind, disk_id) for kind, disk_id, _ in tasks}
            for snapshot in s.scalars(select(Snapshot).where(Snapshot.status == PROGRESSING)):
                if snapshot.id not in snapshot_tasks:
                    log.warning("snapshot %s was progressing with no task to take it: failed", snapshot.id)
                    snapshot.status = FAILED
            s.flush()
            settle_images(s)
            for image in s.scalars(
                select(Image).where(
                    Image.status == CREATING, Image.snapshot_id == "", Image.owner_alias != "system"
                )
            ):
                if ("import", image.id) not in disk_tasks:
                    log.warning("image %s was Creating with no import task: CreateFailed", image.id)
                    image.status = CREATE_FAILED
            fail_orphans(s, self._clock.now())
            for disk in s.scalars(
                select(Disk).where(Disk.host_id == self.host_id, Disk.status.in_(tuple(_TASK_OF)))
            ):
                kind = _TASK_OF[disk.status]
                if (kind, disk.id) not in disk_tasks:
                    log.warning("disk %s was %s with no task: queued %s again", disk.id, disk.status, kind)
                    enqueue(
                        s,
                        self._clock.now(),
                        kind,
                        disk,
                        instance_id=disk.instance_id,
                        snapshot_id=disk.source_snapshot_id if kind == "create" else "",
                    )

    # ---- the tasks -------------------------------------------------------------------------

    def _running(self, instance_id: str) -> bool:
        return bool(instance_id) and self._compute.state(instance_id) in (
            PowerState.RUNNING,
            PowerState.PAUSED,
        )

    def _finish(self, task: StorageTask, change: Callable[[Disk | None, Snapshot | None], None]) -> None:
        for attempt in range(1, SETTLE_ATTEMPTS + 1):
            try:
                with self._db.session() as s:
                    disk = s.get(Disk, task.disk_id)
                    snapshot = s.get(Snapshot, task.snapshot_id) if task.snapshot_id else None
                    change(disk, snapshot)
                    row = s.get(StorageTask, task.id)
                    if row is not None:
                        s.delete(row)
                break
            except StaleDataError:
                # a row went between the read and the write (DeleteSnapshot of a progressing
                # snapshot, a released disk): the work is done, settle against what is there now
                if attempt == SETTLE_ATTEMPTS:
                    raise
        self._attempts.pop(task.id, None)

    def _load(self, task: StorageTask) -> tuple[Disk | None, Snapshot | None]:
        with self._db.session() as s:
            disk = s.get(Disk, task.disk_id)
            snapshot = s.get(Snapshot, task.snapshot_id) if task.snapshot_id else None
            return disk, snapshot

    def _do(self, task: StorageTask) -> None:
        if task.kind == "import":
            do_import(self._db, self._clock, self._storage, self._storage.capabilities.downloads_dir, task)
            return
        if task.kind == "export":
            do_export(self._db, self._clock, self._storage, task)
            return
        disk, snapshot = self._load(task)
        if disk is None and task.kind != "delete":
            # the disk was released before its task ran (its instance was deleted, or it was
            # while a snapshot was queued): nothing to do on files, but a snapshot it was to
            # take can never be taken and must not stay progressing
            self._finish(task, _fail_snapshot)
            return
        getattr(self, f"_do_{task.kind}")(task, disk, snapshot)

    def key(self, disk: Disk) -> str | None:
        """The key of an encrypted disk (its account's), None for another."""
        if not disk.encrypted:
            return None
        if self._keys is None:
            raise RuntimeError(f"disk {disk.id} is encrypted and this agent has no disk keys")
        return self._keys.key_of(disk.account_id)

    def attachment(self, disk: Disk) -> DiskAttachment:
        """How the VM opens the disk."""
        return attachment(self._storage, disk, self.key(disk))

    def disks_of(self, instance_id: str) -> list[Disk]:
        """The disks of an instance, the system disk first."""
        with self._db.session() as s:
            return list(
                s.scalars(
                    select(Disk)
                    .where(Disk.instance_id == instance_id)
                    .order_by(Disk.disk_type.desc(), Disk.device)
                )
            )

    def make_instance_disks(self, instance_id: str) -> None:
        """The layers of a new instance's disks that are not made yet (its Pending step)."""
        for disk in self.disks_of(instance_id):
            if disk.layer:
                continue  # made already
            with self._db.session() as s:
                source = s.get(Snapshot, disk.source_snapshot_id) if disk.source_snapshot_id else None
            self.make_content(disk, disk.id, source)
            with self._db.session() as s:
                row = s.get(Disk, disk.id)
                if row is not None:
                    row.layer = disk.id

    def make_content(self, disk: Disk, layer: str, snapshot: Snapshot | None) -> None:
        """A fresh layer with what a new disk holds: its image, its snapshot, or nothing (encrypted
        with the disk's key when it is encrypted)."""
        key = self.key(disk)
        if disk.disk_type == "system":
            with self._db.session() as s:
                image = s.get(Image, disk.image_id)
                base_snapshot = (
                    s.get(Snapshot, image.snapshot_id) if image is not None and image.snapshot_id else None
                )
            if image is None:
                raise RuntimeError(f"disk {disk.id}: image {disk.image_id} is gone")
            if base_snapshot is not None:
                self._storage.create_overlay(layer, base_snapshot.layer, disk.size_gib, key)
            else:
                self._storage.create_from_image(layer, self._rootfs(image), disk.size_gib, key)
        elif snapshot is not None:
            self._storage.create_overlay(layer, snapshot.layer, disk.size_gib, key)
        else:
            self._storage.create_blank(layer, disk.size_gib, key)

    def _do_create(self, task: StorageTask, disk: Disk, snapshot: Snapshot | None) -> None:
        self.make_content(disk, disk.id, snapshot)

        def settle(d: Disk | None, _: Snapshot | None) -> None:
            if d is not None:
                d.layer = d.id
                if d.status == ds.CREATING:
                    _move(d, ds.ATTACHING if d.instance_id else ds.AVAILABLE)

        self._finish(task, settle)

    def _do_attach(self, task: StorageTask, disk: Disk, _: Snapshot | None) -> None:
        if disk.instance_id == task.instance_id and self._running(task.instance_id):
            self._compute.attach_disk(task.instance_id, self.attachment(disk))

        def settle(d: Disk | None, _: Snapshot | None) -> None:
            if d is not None and d.status == ds.ATTACHING:
                _move(d, ds.IN_USE)

        self._finish(task, settle)

    def _do_detach(self, task: StorageTask, disk: Disk, _: Snapshot | None) -> None:
        if self._running(task.instance_id):
            self._compute.detach_disk(task.instance_id, disk.id)

        def settle(d: Disk | None, _: Snapshot | None) -> None:
            if d is not None and d.status == ds.DETACHING:
                _move(d, ds.AVAILABLE)
                d.instance_id, d.device, d.detached_at = "", "", self._clock.now()

        self._finish(task, settle)

    def _do_snapshot(self, task: StorageTask, disk: Disk, snapshot: Snapshot | None) -> None:
        frozen = disk.top_layer
        overlay = _overlay_name(disk.id, task.snapshot_id)
        cancelled = snapshot is None or snapshot.status != PROGRESSING
        if cancelled and (frozen == overlay or not self._storage.exists(overlay)):
            self._finish(task, lambda d, sn: None)  # cancelled before anything was done
            return
        # (cancelled after the overlay was made: the VM may write to it already, so the disk
        # moves onto it all the same; the frozen layer is then folded away)
        key = self.key(disk)
        with self._files:
            self._storage.create_overlay(overlay, frozen, disk.size_gib, key)
            if disk.instance_id and self._running(disk.instance_id):
                self._compute.snapshot_disk(
                    disk.instance_id,
                    disk.id,
                    self._storage.layer_path(frozen),
                    self._storage.layer_path(overlay),
                    encrypted=key is not None,
                )

            def settle(d: Disk | None, sn: Snapshot | None) -> None:
                if d is not None:
                    d.layer = overlay
                if sn is not None and sn.status == PROGRESSING:
                    sn.layer, sn.status, sn.progress, sn.completed_at = (
                        frozen,
                        ACCOMPLISHED,
                        100,
                        self._clock.now(),
                    )
                    session = object_session(sn)
                    if session is not None:
                        settle_images(session, sn.id)

            self._finish(task, settle)

    def _do_reset(self, task: StorageTask, disk: Disk, snapshot: Snapshot | None) -> None:
        if snapshot is None or not snapshot.layer:
            raise RuntimeError(f"disk {disk.id}: snapshot {task.snapshot_id} is gone")
        layer = f"{disk.id}.r{task.id}"
        with self._files:
            self._storage.create_overlay(layer, snapshot.layer, disk.size_gib, self.key(disk))

            def settle(d: Disk | None, _: Snapshot | None) -> None:
                if d is not None:
                    d.layer = layer

            self._finish(task, settle)

    def _do_reinit(self, task: StorageTask, disk: Disk, _: Snapshot | None) -> None:
        with self._db.session() as s:
            source = s.get(Snapshot, disk.source_snapshot_id) if disk.source_snapshot_id else None
        layer = f"{disk.id}.i{task.id}"
        with self._files:
            self.make_content(disk, layer, source)

            def settle(d: Disk | None, _: Snapshot | None) -> None:
                if d is not None:
                    d.layer = layer
                    if d.status == ds.REINITING:
                        _move(d, ds.IN_USE if d.instance_id else ds.AVAILABLE)

            self._finish(task, settle)

    def _do_resize(self, task: StorageTask, disk: Disk, _: Snapshot | None) -> None:
        if disk.instance_id and self._running(disk.instance_id):
            self._compute.resize_disk(
                disk.instance_id, disk.id, self._storage.layer_path(disk.top_layer), task.size_gib * GIB
            )
        else:
            self._storage.resize(disk.top_layer, task.size_gib, self.key(disk))
        self._finish(task, lambda d, sn: None)

    def _do_merge(self, task: StorageTask, disk: Disk, _: Snapshot | None) -> None:
        self.merge_chain(disk.id)
        self._finish(task, lambda d, sn: None)

    def merge_chain(self, disk_id: str) -> int:
        """Fold each layer of the disk's chain that no disk or snapshot refers to any more (a
        deleted snapshot's) into the one layer above it, so chains stay as long as the snapshots
        kept: live (QMP block-stream) when the disk's VM runs, else with qemu-img rebase. A layer
        another disk also reads through is left alone. Returns how many layers were folded."""
        folded = 0
        while True:
            with self._files:
                step = self._next_fold(disk_id)
            if step is None:
                return folded
            child, parent, instance_id = step
            key = self._disk_key(disk_id)
            backing = self._storage.backing_name(parent)
            if instance_id:
                under = self._storage.graph().get(parent)
                base = self._storage.layer_path(under) if under else self._image_file(backing)
                self._compute.stream_layer(
                    instance_id, self._storage.layer_path(child), base, backing, STREAM_TIMEOUT
                )
                if not self._storage.capabilities.layers_are_files:
                    # the VM rewrote no file the driver reads: tell it
                    self._storage.rebase(child, backing, key)
            else:
                self._storage.rebase(child, backing, key)
            folded += 1
            self.collect()

    def _disk_key(self, disk_id: str) -> str | None:
        with self._db.session() as s:
            disk = s.get(Disk, disk_id)
        return self.key(disk) if disk is not None else None

    def _image_file(self, backing: str | None) -> Path | None:
        return self._storage.layer_path("x").parent / backing if backing else None

    def _next_fold(self, disk_id: str) -> tuple[str, str, str] | None:
        """(layer to fold into, layer to fold, the running VM that has them open or "")."""
        with self._db.session() as s:
            disk = s.get(Disk, disk_id)
            if disk is None:
                return None
            disks = list(s.scalars(select(Disk).where(Disk.host_id == disk.host_id)))
            referenced = {d.top_layer for d in disks} | set(
                s.scalars(select(Snapshot.layer).where(Snapshot.layer != ""))
            )
            pending = s.scalar(
                select(StorageTask.id)
                .where(StorageTask.disk_id == disk_id, StorageTask.kind != "merge")
                .limit(1)
            )
        if pending is not None:
            return None  # the disk's other work first
        graph = self._storage.graph()
        children: dict[str, int] = {}
        for under in graph.values():
            if under is not None:
                children[under] = children.get(under, 0) + 1
        readers: dict[str, set[str]] = {}
        for d in disks:
            for layer in _walk(graph, d.top_layer):
                readers.setdefault(layer, set()).add(d.id)
        chain = _walk(graph, disk.top_layer)
        running = disk.instance_id if disk.instance_id and self._running(disk.instance_id) else ""
        for child, parent in itertools.pairwise(chain):
            if parent in referenced or children.get(parent) != 1:
                continue
            if readers.get(child, set()) - {disk.id}:
                continue  # another disk reads through it (a clone of a snapshot): its chain stays
            return child, parent, running
        return None

    def _do_delete(self, task: StorageTask, disk: Disk | None, _: Snapshot | None) -> None:
        self._finish(task, lambda d, sn: None)  # the collector removes its layers

    def _give_up(self, task: StorageTask) -> None:
        if task.kind in ("import", "export"):
            fail_import(self._db, self._clock, task)
            return

        def fail(d: Disk | None, sn: Snapshot | None) -> None:
            _fail_snapshot(d, sn)
            if d is None:
                return
            # undo only the status this task was to settle
            if (task.kind, d.status) in _UNDOES:
                _move(d, ds.UNDONE[d.status])
                if task.kind == "attach":
                    d.instance_id, d.device = "", ""

        self._finish(task, fail)


SETTLE_ATTEMPTS = 3

# The task that moves a disk out of each transient status.
_TASK_OF = {ds.CREATING: "create", ds.ATTACHING: "attach", ds.DETACHING: "detach", ds.REINITING: "reinit"}
# A task given up undoes the transient status it was to settle, and no other.
_UNDOES = {(kind, status) for status, kind in _TASK_OF.items()}


def _fail_snapshot(_: Disk | None, snapshot: Snapshot | None) -> None:
    """A progressing snapshot that will never be taken is failed, and so are the images that
    were waiting for it (in the same transaction)."""
    if snapshot is not None and snapshot.status == PROGRESSING:
        snapshot.status = FAILED
        session = object_session(snapshot)
        if session is not None:
            session.flush()
            settle_images(session, snapshot.id)


def _overlay_name(disk_id: str, snapshot_id: str) -> str:
    """The layer a snapshot puts on top of its disk."""
    return f"{disk_id}.{snapshot_id}"


def _walk(graph: dict[str, str | None], top: str) -> list[str]:
    chain: list[str] = []
    current: str | None = top
    while current is not None and current in graph and current not in chain:
        chain.append(current)
        current = graph[current]
    return chain
