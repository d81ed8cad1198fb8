"""The compute part of the host agent: make the instances placed on this host what their
owners asked for, one idempotent step at a time, and report their status.

Each pass reads the store; an instance that needs work gets one step on a worker thread
(never two at once), and the step moves its status on through the status table. Killing
the agent at any point is safe: the next pass sees the same state and the drivers'
idempotent methods (start returns the running VM, destroy of a gone VM succeeds) finish it."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update

from nubes.clock import Clock
from nubes.domain import disk_states as ds
from nubes.domain import instance_states as states
from nubes.agent.storage import StorageWork, attachment
from nubes.domain.auto_snapshot_policies import AutoSnapshotPolicies
from nubes.domain.instances import Instances
from nubes.domain.snapshot_usage import release_disk
from nubes.drivers.compute.base import (
    Boot,
    ComputeDriver,
    NicAttachment,
    PowerState,
    VmSpec,
)
from nubes.drivers.network.base import NetworkDriver
from nubes.drivers.storage.base import StorageDriver
from nubes.store.db import Database
from nubes.store.models import Disk, Host, Image, Instance, NetworkInterface, Snapshot, Tag

log = logging.getLogger("nubes.agent.compute")

READY_MARKER = "NUBES-READY"
GUEST_UP_DEADLINE = 900.0  # a guest that never reports ready is called Running after this long
SHUTDOWN_TIMEOUT = 60.0
MAX_START_ATTEMPTS = 5  # passes in a row a VM may fail to start before the instance is Stopped


@dataclass(frozen=True)
class BootFiles:
    kernel: Path
    initrd: Path
    rootfs: Path
    cmdline: str


BootResolver = Callable[[Image], BootFiles]


def host_memory_mib() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 4096


class ComputeAgent:
    def __init__(
        self, db: Database, clock: Clock, instances: Instances, compute: ComputeDriver, storage: StorageDriver,
        network: NetworkDriver, sync_network: Callable[[str], None], boot_files: BootResolver,
        host_id: str | None = None, interval: float = 0.5, workers: int = 8,
    ) -> None:
        self._db = db
        self._clock = clock
        self._instances = instances
        self._compute = compute
        self._storage = storage
        self._network = network
        self._sync_network = sync_network
        self._boot_files = boot_files
        self.host_id = host_id or socket.gethostname()
        self._interval = interval
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nubes-compute")
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._log_offsets: dict[str, int] = {}
        self._started_at: dict[str, float] = {}
        self._start_failures: dict[str, int] = {}
        self._looked_at_all = False  # the first pass after a start looks at every instance
        self._auto_snapshots = AutoSnapshotPolicies(db, clock)
        self.storage_work = StorageWork(db, clock, storage, compute, lambda image: boot_files(image).rootfs,
                                        self.host_id)

    # ---- lifecycle ---------------------------------------------------------------------------

    def register_host(self, vcpus: int | None = None, memory_mib: int | None = None) -> None:
        with self._db.session() as s:
            host = s.get(Host, self.host_id)
            if host is None:
                host = Host(id=self.host_id, heartbeat_at=self._clock.now())
                s.add(host)
            host.vcpus = vcpus or os.cpu_count() or 1
            host.memory_mib = memory_mib or host_memory_mib()
            host.cpu_overcommit = host.cpu_overcommit or 4.0
            host.memory_overcommit = host.memory_overcommit or 1.0
            host.zones = host.zones or "*"
            host.compute_driver = self._compute.capabilities.name
            host.accel = self._compute.capabilities.accel
            host.status = "Available"
            host.heartbeat_at = self._clock.now()

    def start(self) -> None:
        with self._db.session() as s:
            known = s.get(Host, self.host_id) is not None
        if not known:
            self.register_host()
        self.storage_work.recover()
        self._thread = threading.Thread(target=self._run, name="nubes-compute-agent", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def notify(self, _instance_id: str) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.pass_once()
            except Exception:
                log.exception("compute pass failed; retrying")
            self._wake.wait(self._interval)
            self._wake.clear()

    # ---- one pass --------------------------------------------------------------------------

    def pass_once(self, wait: bool = False) -> None:
        """Look at every instance of this host and start the steps they need."""
        self._instances.release_due()
        self._auto_snapshots.fire_due(self._clock.now())
        with self._db.session() as s:
            mine = list(s.scalars(select(Instance).where(Instance.host_id == self.host_id)))
        storage_keys = self.storage_work.pending_keys()
        futures = []
        steady = (states.RUNNING, states.STOPPED)
        keys = []
        for instance in mine:
            if not self._compute.capabilities.changes_by_itself and instance.status in steady \
                    and instance.desired in (states.WANT_RUNNING, states.WANT_STOPPED) \
                    and instance.id not in storage_keys and self._looked_at_all:
                continue  # a fake VM never changes by itself (but may have across a host reboot)
            keys.append(instance.id)
        keys += sorted(storage_keys - {i.id for i in mine})  # disks on their own
        for key in keys:
            with self._lock:
                if key in self._busy:
                    continue
                self._busy.add(key)
            futures.append(self._pool.submit(self._step_guarded, key))
        self._looked_at_all = True
        if wait:
            for future in futures:
                future.result()

    def _step_guarded(self, instance_id: str) -> None:
        try:
            self.step(instance_id)
        except Exception:
            log.exception("step for %s failed; retrying on the next pass", instance_id)
        finally:
            with self._lock:
                self._busy.discard(instance_id)

    def step(self, instance_id: str) -> None:
        """The queued disk work of an instance (or a lone disk), then its next lifecycle step."""
        self.storage_work.run(instance_id)
        with self._db.session() as s:
            instance = s.get(Instance, instance_id)
        if instance is None:
            return
        if instance.desired == states.WANT_DELETED:
            self._delete(instance)
        elif instance.status == states.PENDING:
            self._build(instance)
        elif instance.status == states.STARTING:
            self._boot(instance)
        elif instance.status == states.RUNNING:
            self._watch(instance)
        elif instance.status == states.STOPPING:
            self._power_off(instance)
        elif instance.status == states.STOPPED:
            if self._compute.state(instance.id) in (PowerState.RUNNING, PowerState.PAUSED):
                self._compute.destroy(instance.id)

    # ---- steps -----------------------------------------------------------------------------

    def _set_status(self, instance_id: str, expected: str, event: str, **fields: object) -> bool:
        """Move the status on as the table says `event` does (a step it lacks is refused, a bug),
        unless the owner changed it meanwhile (then the next pass decides). One compare-and-set
        UPDATE: a DeleteInstance committed between a read and a write here must not be
        overwritten (a deleted instance would boot again)."""
        new = states.agent_step(instance_id, expected, event)
        with self._db.session() as s:
            moved = s.execute(
                update(Instance)
                .where(Instance.id == instance_id, Instance.status == expected,
                       Instance.desired != states.WANT_DELETED)
                .values(status=new, status_changed_at=self._clock.now(), **fields)
                .returning(Instance.id)
            ).first()
            return moved is not None

    def _disks(self, instance_id: str) -> list[Disk]:
        with self._db.session() as s:
            return list(s.scalars(
                select(Disk).where(Disk.instance_id == instance_id).order_by(Disk.disk_type.desc(), Disk.device)
            ))

    def _build(self, instance: Instance) -> None:
        image = self._instances.image_of(instance.image_id)
        if image is None:
            log.error("instance %s: image %s is gone", instance.id, instance.image_id)
            return
        for disk in self._disks(instance.id):
            if disk.layer:
                continue  # made already
            with self._db.session() as s:
                source = s.get(Snapshot, disk.source_snapshot_id) if disk.source_snapshot_id else None
            self.storage_work.make_content(disk, disk.id, source)
            with self._db.session() as s:
                row = s.get(Disk, disk.id)
                if row is not None:
                    row.layer = disk.id
        self._set_status(instance.id, states.PENDING,
                         "built_running" if instance.desired == states.WANT_RUNNING else "built_stopped")
        self._wake.set()

    def _spec(self, instance: Instance) -> VmSpec:
        image = self._instances.image_of(instance.image_id)
        assert image is not None
        files = self._boot_files(image)
        with self._db.session() as s:
            enis = list(s.scalars(select(NetworkInterface).where(NetworkInterface.instance_id == instance.id)
                                  .order_by(NetworkInterface.eni_type)))
        disks = [attachment(self._storage, d) for d in self._disks(instance.id)]
        return VmSpec(
            instance_id=instance.id,
            vcpus=instance.cpu,
            memory_mib=instance.memory_mib,
            boot=Boot(files.kernel, files.initrd, files.cmdline),
            disks=tuple(disks),
            nics=tuple(NicAttachment(e.id, e.mac, self._network.tap_name(e.id)) for e in enis),
            netns=self._network.netns_name(instance.vpc_id),
            hostname=instance.hostname,
        )

    def _boot(self, instance: Instance) -> None:
        state = self._compute.state(instance.id)
        if state not in (PowerState.RUNNING, PowerState.PAUSED):
            if instance.pending_key_pair_name is not None:
                self._apply_pending_key(instance.id)
            if self._compute.capabilities.opens_taps:
                self._sync_network(instance.vpc_id)  # the tap must exist before QEMU opens it
            self._log_offsets[instance.id] = len(self._compute.console_output(instance.id, max_bytes=1 << 30))
            try:
                self._compute.start(self._spec(instance))
            except Exception:
                failures = self._start_failures.get(instance.id, 0) + 1
                self._start_failures[instance.id] = failures
                if failures < MAX_START_ATTEMPTS:
                    raise  # retried on the next pass
                # as ECS: an instance that cannot start falls back to Stopped (never Starting for ever)
                log.exception("instance %s failed to start %d times; it is Stopped", instance.id, failures)
                self._start_failures.pop(instance.id, None)
                self._set_status(instance.id, states.STARTING, "start_failed", desired=states.WANT_STOPPED)
                return
            self._start_failures.pop(instance.id, None)
            self._started_at[instance.id] = time.monotonic()
            with self._db.session() as s:
                row = s.get(Instance, instance.id)
                if row is not None:
                    row.started_at = self._clock.now()
        if self._guest_up(instance.id):
            self._set_status(instance.id, states.STARTING, "guest_up")
            self._log_offsets.pop(instance.id, None)
        else:
            time.sleep(0.2)  # poll the console again on the next pass
        self._wake.set()

    def _guest_up(self, instance_id: str) -> bool:
        if not self._compute.capabilities.reports_ready:
            return self._compute.state(instance_id) == PowerState.RUNNING
        output = self._compute.console_output(instance_id, max_bytes=1 << 30)
        offset = self._log_offsets.get(instance_id, 0)
        if READY_MARKER.encode() in output[offset:]:
            return True
        started = self._started_at.setdefault(instance_id, time.monotonic())
        return time.monotonic() - started > GUEST_UP_DEADLINE

    def _apply_pending_key(self, instance_id: str) -> None:
        with self._db.session() as s:
            row = s.get(Instance, instance_id)
            if row is not None and row.pending_key_pair_name is not None:
                row.key_pair_name, row.pending_key_pair_name = row.pending_key_pair_name, None

    def _watch(self, instance: Instance) -> None:
        """A Running instance whose VM is gone (the guest powered off, or it crashed) is Stopped."""
        state = self._compute.state(instance.id)
        if state in (PowerState.STOPPED, PowerState.CRASHED):
            self._set_status(instance.id, states.RUNNING, "powered_off")

    def _power_off(self, instance: Instance) -> None:
        if instance.force:
            self._compute.destroy(instance.id)
        elif not self._compute.shutdown(instance.id, SHUTDOWN_TIMEOUT):
            log.warning("instance %s did not power off within %ss; forcing it", instance.id, SHUTDOWN_TIMEOUT)
            self._compute.destroy(instance.id)
        if instance.desired == states.WANT_REBOOT:
            self._set_status(instance.id, states.STOPPING, "reboot_off", desired=states.WANT_RUNNING, force=False)
        else:
            self._set_status(instance.id, states.STOPPING, "powered_off", force=False)
        self._wake.set()

    def _delete(self, instance: Instance) -> None:
        self._compute.destroy(instance.id)
        self._compute.cleanup(instance.id)
        vpc_id = instance.vpc_id
        with self._db.session() as s:
            for disk in s.scalars(select(Disk).where(Disk.instance_id == instance.id)):
                if disk.delete_with_instance:
                    release_disk(s, disk)  # its layers go with the collection below
                else:
                    disk.status = ds.agent_move(disk.id, disk.status, ds.AVAILABLE)
                    disk.instance_id, disk.device = "", ""
            for eni in s.scalars(select(NetworkInterface).where(NetworkInterface.instance_id == instance.id)):
                if eni.eni_type == "Primary":
                    s.delete(eni)
                else:
                    eni.instance_id, eni.status, eni.attachment = "", "Available", ""
            for tag in s.scalars(select(Tag).where(Tag.resource_id == instance.id)):
                s.delete(tag)
            row = s.get(Instance, instance.id)
            if row is not None:
                s.delete(row)
        self._log_offsets.pop(instance.id, None)
        self.storage_work.collect()
        self._sync_network(vpc_id)
