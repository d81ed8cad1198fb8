"""The compute part of the host agent: make the instances placed on this host what their
owners asked for, one idempotent step at a time, and report their status and console.

The host loop (nubes.agent.host) gives each instance that needs work one step on a worker
thread (never two at once), after the instance's queued storage work; the step moves its
status on through the status table (`instance_states.agent_step`) with one compare-and-set
UPDATE. Killing the agent at any point is safe: the next pass sees the same state and the
drivers' idempotent methods (start returns the running VM, destroy of a gone VM succeeds)
finish it. The tail of each VM's serial console is recorded in the store when it changes
(at most every CONSOLE_INTERVAL seconds, and always before the instance is called Running),
where GetInstanceConsoleOutput reads it.

Hibernation (desired "hibernated" while Stopping): the driver saves the VM's memory image and
stops it, then the instance is Stopped with `hibernated` set, in one compare-and-set. A save
that fails stops the instance as a plain stop would (ECS: a failed hibernation stops the
instance). An agent killed in between finds, on its next pass, either a complete image (the
driver's `hibernated`, which also settles a half-done save) -- the instance is then Stopped
and hibernated -- or the VM running as before, which it hibernates again, or no VM and no
image: Stopped. StartInstance of a hibernated instance restores the image instead of booting
(the guest is up as soon as the VM runs: it printed its ready line long ago); an image the
driver cannot load, or lost, is discarded and the instance boots cold."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable

from sqlalchemy import delete, select, update

from nubes.agent.images import BootFiles
from nubes.agent.network import NetworkAgent
from nubes.agent.storage import StorageWork
from nubes.clock import Clock
from nubes.domain import disk_states as ds
from nubes.domain import instance_states as states
from nubes.domain import system_events
from nubes.domain.consoles import CONSOLE_TAIL, ConsoleOutputs
from nubes.domain.images import build_from
from nubes.domain.instance_attributes import AUTO_RECOVER
from nubes.domain.instances import Instances
from nubes.domain.network_interfaces import (
    ENI_ATTACHING,
    ENI_AVAILABLE,
    ENI_DETACHING,
    ENI_IN_USE,
)
from nubes.domain.public_addresses import release_instance_addresses
from nubes.domain.snapshot_usage import release_disk
from nubes.domain.system_events import FAILURE_REBOOT, VM_DIED
from nubes.domain.tags import drop_tags
from nubes.drivers.compute.base import (
    READY_MARKER,
    Boot,
    ComputeDriver,
    ComputeError,
    NicAttachment,
    PowerState,
    VmNotRunning,
    VmSpec,
)
from nubes.store.db import Database
from nubes.store.models import ConsoleOutput, Disk, Host, Image, Instance, NetworkInterface, Tag

__all__ = ["MAX_START_ATTEMPTS", "READY_MARKER", "BootFiles", "ComputeAgent"]

log = logging.getLogger("nubes.agent.compute")

GUEST_UP_DEADLINE = 900.0  # a guest that never reports ready is called Running after this long
SHUTDOWN_TIMEOUT = 60.0
HIBERNATE_TIMEOUT = 300.0  # to save a VM's memory image (about 2 s for 512 MiB under TCG)
MAX_START_ATTEMPTS = 5  # passes in a row a VM may fail to start before the instance is Stopped
CONSOLE_INTERVAL = 2.0  # seconds between two recordings of one VM's console (unless it becomes Running)
STEADY = (states.RUNNING, states.STOPPED)

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


def _digest(output: bytes) -> bytes:
    return hashlib.blake2b(output, digest_size=16).digest()


_NOTHING = _digest(b"")


class ComputeAgent:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        instances: Instances,
        consoles: ConsoleOutputs,
        compute: ComputeDriver,
        storage: StorageWork,
        network: NetworkAgent,
        boot_files: BootResolver,
        host_id: str,
    ) -> None:
        self._db = db
        self._clock = clock
        self._instances = instances
        self._consoles = consoles
        self._compute = compute
        self._storage = storage
        self._network = network
        self._boot_files = boot_files
        self.host_id = host_id
        self._log_offsets: dict[str, int] = {}
        self._started_at: dict[str, float] = {}
        self._start_failures: dict[str, int] = {}
        self._console_seen: dict[str, bytes] = {}  # instance id -> digest of the console tail recorded
        self._console_written: dict[str, float] = {}  # instance id -> time.monotonic() of that recording
        self._console_behind: set[str] = set()  # changed since, not recorded yet (too soon)
        # Running instances whose VM's NICs were compared with their interfaces since this agent
        # started (or the VM did): after a restart the first step of each compares them again.
        self._nics_checked: set[str] = set()

    # ---- the host row ------------------------------------------------------------------------

    def known(self) -> bool:
        with self._db.session() as s:
            return s.get(Host, self.host_id) is not None

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

    # ---- what to look at -----------------------------------------------------------------------

    def instances_to_step(self, everything: bool) -> tuple[list[str], set[str]]:
        """(the instances of this host that need a step now, every instance of this host). A VM
        that cannot change by itself is not looked at in a steady status, unless `everything`
        (the first pass after a start: the host may have rebooted meanwhile)."""
        with self._db.session() as s:
            mine = list(
                s.execute(
                    select(Instance.id, Instance.status, Instance.desired).where(
                        Instance.host_id == self.host_id
                    )
                )
            )
            # an interface being attached or detached is the agent's work too
            plugging = set(
                s.scalars(
                    select(NetworkInterface.instance_id).where(
                        NetworkInterface.status.in_((ENI_ATTACHING, ENI_DETACHING)),
                        NetworkInterface.instance_id.in_([row[0] for row in mine]),
                    )
                )
            )
        watch = everything or self._compute.capabilities.changes_by_itself
        wanted = [
            instance_id
            for instance_id, status, desired in mine
            if watch
            or status not in STEADY
            or desired not in (states.WANT_RUNNING, states.WANT_STOPPED)
            or instance_id in self._console_behind
            or instance_id in plugging
        ]
        return wanted, {instance_id for instance_id, _, _ in mine}

    # ---- one step --------------------------------------------------------------------------

    def step(self, instance_id: str) -> bool:
        """The instance's next lifecycle step; True when another pass should come at once."""
        with self._db.session() as s:
            instance = s.get(Instance, instance_id)
        if instance is None:
            return False
        again = False
        if instance.desired == states.WANT_DELETED:
            self._delete(instance)
            return False
        if instance.status == states.PENDING:
            again = self._build(instance)
        elif instance.status == states.STARTING:
            again = self._boot(instance)
        elif instance.status == states.RUNNING:
            again = self._watch(instance)
        elif instance.status == states.STOPPING:
            again = self._power_off(instance)
        elif instance.status == states.STOPPED and self._compute.state(instance.id) in (
            PowerState.RUNNING,
            PowerState.PAUSED,
        ):
            self._compute.destroy(instance.id)
        if instance.status in STEADY:
            self._plug_interfaces(instance)
        self.record_console(instance.id)
        return again

    # ---- steps -----------------------------------------------------------------------------

    def _set_status(
        self,
        instance_id: str,
        expected: str,
        event: str,
        while_desired: str | None = None,
        **fields: object,
    ) -> bool:
        """Move the status on as the table says `event` does (a step it lacks is refused, a bug),
        unless the owner changed it meanwhile (then the next pass decides). One compare-and-set
        UPDATE: a DeleteInstance committed between a read and a write here must not be
        overwritten (a deleted instance would boot again)."""
        new = states.agent_step(instance_id, expected, event)
        with self._db.session() as s:
            moved = s.execute(
                update(Instance)
                .where(
                    Instance.id == instance_id,
                    Instance.status == expected,
                    Instance.desired != states.WANT_DELETED,
                    *([Instance.desired == while_desired] if while_desired is not None else []),
                )
                .values(status=new, status_changed_at=self._clock.now(), **fields)
                .returning(Instance.id)
            ).first()
            return moved is not None

    def _build(self, instance: Instance) -> bool:
        image = self._instances.image_of(instance.image_id)
        if image is None:
            log.error("instance %s: image %s is gone", instance.id, instance.image_id)
            return False
        ready = build_from(image)
        if ready is None:
            return False  # its system image is still being built: a later pass looks again
        if not ready:
            return self._release_unbuildable(instance.id, image.id, image.status)
        self._storage.make_instance_disks(instance.id)
        # Only if what the owner wants is still what this pass read: a StartInstance queued
        # while the disks were made is decided by the next pass, at once.
        self._set_status(
            instance.id,
            states.PENDING,
            "built_running" if instance.desired == states.WANT_RUNNING else "built_stopped",
            while_desired=instance.desired,
        )
        return True

    def _release_unbuildable(self, instance_id: str, image_id: str, image_status: str) -> bool:
        """An instance whose image will never be there (its build failed) is released, as ECS
        releases an instance it could not create (the SystemFailure.Delete event), not left
        Pending for ever. Only while it is still Pending and not already being deleted: the
        next pass then deletes it as a DeleteInstance would."""
        with self._db.session() as s:
            moved = s.execute(
                update(Instance)
                .where(
                    Instance.id == instance_id,
                    Instance.status == states.PENDING,
                    Instance.desired != states.WANT_DELETED,
                )
                .values(desired=states.WANT_DELETED)
                .returning(Instance.id)
            ).first()
        if moved is not None:
            log.warning(
                "instance %s: its image %s is %s; the instance is released",
                instance_id,
                image_id,
                image_status,
            )
        return True

    def _interfaces(self, instance_id: str) -> list[NetworkInterface]:
        """The instance's interfaces, the primary first (eth0 in the guest), then by ID."""
        with self._db.session() as s:
            return list(
                s.scalars(
                    select(NetworkInterface)
                    .where(NetworkInterface.instance_id == instance_id)
                    .order_by(NetworkInterface.eni_type, NetworkInterface.id)  # "Primary" < "Secondary"
                )
            )

    def _spec(self, instance: Instance) -> VmSpec:
        image = self._instances.image_of(instance.image_id)
        assert image is not None
        files = self._boot_files(image)
        # (one being detached is left out: it goes once that is done)
        enis = [e for e in self._interfaces(instance.id) if e.status != ENI_DETACHING]
        disks = [self._storage.attachment(d) for d in self._storage.disks_of(instance.id)]
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

    def _boot(self, instance: Instance) -> bool:
        if instance.hibernated:
            return self._restore(instance)
        state = self._compute.state(instance.id)
        if state not in (PowerState.RUNNING, PowerState.PAUSED):
            if instance.pending_key_pair_name is not None:
                self._apply_pending_key(instance.id)
            if self._compute.capabilities.opens_taps:
                self._network.sync(instance.vpc_id)  # the tap must exist before QEMU opens it
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
                return False
            self._start_failures.pop(instance.id, None)
            self._started_at[instance.id] = time.monotonic()
            with self._db.session() as s:
                row = s.get(Instance, instance.id)
                if row is not None:
                    row.started_at = self._clock.now()
        if self._guest_up(instance.id):
            self.record_console(instance.id, at_once=True)  # a client that sees Running sees why
            self._set_status(instance.id, states.STARTING, "guest_up")
            self._log_offsets.pop(instance.id, None)
        else:
            time.sleep(0.2)  # poll the console again on the next pass
        return True

    def _restore(self, instance: Instance) -> bool:
        """Start a hibernated instance from its memory image; without a usable image, cold."""
        state = self._compute.state(instance.id)
        if state != PowerState.RUNNING:
            # PAUSED: a restore an agent killed meanwhile left loading; `restore` finishes it
            if state != PowerState.PAUSED and not self._compute.hibernated(instance.id):
                log.warning("instance %s: its memory image is gone; it boots cold", instance.id)
                return self._boot_cold(instance)
            started = time.monotonic()
            try:
                self._restore_vm(instance)
            except ComputeError:
                log.exception(
                    "instance %s: its memory image could not be restored; it boots cold", instance.id
                )
                return self._boot_cold(instance)
            self._started_at[instance.id] = time.monotonic()
            log.info(
                "instance %s: restored from its memory image in %.2f s",
                instance.id,
                time.monotonic() - started,
            )
        if self._compute.state(instance.id) == PowerState.RUNNING:
            self.record_console(instance.id, at_once=True)
            self._set_status(instance.id, states.STARTING, "guest_up", hibernated=False)
        return True

    def _restore_vm(self, instance: Instance) -> None:
        """The driver's restore. Its NICs' taps are there already in the normal case (an
        interface's tap lives while it is attached, and a hibernated instance's interfaces do
        not change), so the VPC is synced -- and the restore tried again -- only if it failed
        (after a reboot of the host the taps are gone)."""
        spec = self._spec(instance)
        try:
            self._compute.restore(spec)
        except ComputeError:
            if not self._compute.capabilities.opens_taps:
                raise
            log.warning("instance %s: restore failed; once more after a network sync", instance.id)
            self._network.sync(instance.vpc_id)
            self._compute.restore(spec)

    def _boot_cold(self, instance: Instance) -> bool:
        self._compute.discard_image(instance.id)
        with self._db.session() as s:
            s.execute(update(Instance).where(Instance.id == instance.id).values(hibernated=False))
        return True  # the next pass boots it

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

    def _watch(self, instance: Instance) -> bool:
        """A Running instance whose guest powered off is Stopped; when its VM was lost under it (it
        crashed, or the host rebooted) its maintenance action decides, as in ECS: AutoRecover (the
        default) starts it again and records the event (SystemFailure.Reboot), Stop leaves it
        Stopped."""
        state = self._compute.state(instance.id)
        if (
            state == PowerState.CRASHED
            and instance.maintenance_action == AUTO_RECOVER
            and instance.desired == states.WANT_RUNNING
        ):
            log.warning(
                "instance %s: its VM was lost; recovering it (maintenance action AutoRecover)", instance.id
            )
            self._compute.destroy(instance.id)  # what is left of the lost VM goes before the new boot
            recovered = self._set_status(
                instance.id, states.RUNNING, "vm_died", while_desired=states.WANT_RUNNING
            )
            if recovered:
                system_events.record(self._db, self._clock, instance.id, FAILURE_REBOOT, VM_DIED)
            return recovered
        if state in (PowerState.STOPPED, PowerState.CRASHED):
            self._set_status(instance.id, states.RUNNING, "powered_off")
        return False

    def _plug_interfaces(self, instance: Instance) -> None:
        """Make the VM's NICs the instance's interfaces (hot-plug what is being attached, unplug
        what is being detached or no longer the instance's), then finish those attachments:
        Attaching -> InUse, Detaching -> Available. A Stopped instance has no VM: its interfaces
        are on the command line of its next start. Compared once after an agent restart too,
        since the store may have changed while no agent ran."""
        enis = self._interfaces(instance.id)
        pending = [e for e in enis if e.status in (ENI_ATTACHING, ENI_DETACHING)]
        if not pending and instance.id in self._nics_checked:
            return
        caps = self._compute.capabilities
        failed: set[str] = set()  # interfaces being attached that the VM refused
        if instance.status == states.RUNNING and caps.nic_hotplug:
            try:
                failed = self._plug_nics(instance, enis)
            except VmNotRunning:
                return  # it stopped meanwhile: the next pass sees Stopped
            self._nics_checked.add(instance.id)
        elif instance.status == states.RUNNING and pending:
            log.info("instance %s: NICs change at its next start (no hot-plug here)", instance.id)
        unplugged: set[str] = set()
        with self._db.session() as s:
            for eni in pending:
                # as ECS: attached -> InUse; detached, or failed to attach -> Available
                in_use = eni.status == ENI_ATTACHING and eni.id not in failed
                moved = s.execute(
                    update(NetworkInterface)
                    .where(
                        NetworkInterface.id == eni.id,
                        NetworkInterface.status == eni.status,
                        NetworkInterface.instance_id == instance.id,
                    )
                    .values(
                        status=ENI_IN_USE if in_use else ENI_AVAILABLE,
                        **({} if in_use else {"instance_id": "", "attachment": ""}),
                    )
                    .returning(NetworkInterface.id)
                ).first()
                if moved is not None and not in_use:
                    unplugged.add(eni.vpc_id)
        if unplugged:
            self._network.reconcile(unplugged)  # the taps of detached interfaces go

    def _plug_nics(self, instance: Instance, enis: list[NetworkInterface]) -> set[str]:
        """Hot-plug the interfaces the running VM lacks, unplug those it should not have; the
        interfaces being attached whose hot-plug failed (no free slot, QEMU refused)."""
        wanted = {e.id: e for e in enis if e.status != ENI_DETACHING}
        actual = self._compute.nics(instance.id)
        if self._compute.capabilities.opens_taps and any(port not in actual for port in wanted):
            self._network.sync(instance.vpc_id)  # the tap must exist before QEMU opens it
        failed: set[str] = set()
        for port_id, eni in wanted.items():
            if port_id in actual:
                continue
            try:
                self._compute.attach_nic(
                    instance.id, NicAttachment(eni.id, eni.mac, self._network.tap_name(eni.id))
                )
            except VmNotRunning:
                raise
            except ComputeError:
                if eni.status != ENI_ATTACHING:
                    raise  # one it had (an agent restart): tried again on a later pass
                log.exception(
                    "instance %s: hot-plug of %s failed; it is Available again", instance.id, eni.id
                )
                failed.add(eni.id)
        for port_id in actual:
            if port_id not in wanted:
                self._compute.detach_nic(instance.id, port_id)  # a timeout: tried again later
        return failed

    def _power_off(self, instance: Instance) -> bool:
        if instance.desired == states.WANT_HIBERNATED and self._hibernate(instance):
            return True
        if instance.force:
            self._compute.destroy(instance.id)
        elif not self._compute.shutdown(instance.id, SHUTDOWN_TIMEOUT):
            log.warning("instance %s did not power off within %ss; forcing it", instance.id, SHUTDOWN_TIMEOUT)
            self._compute.destroy(instance.id)
        if instance.desired == states.WANT_REBOOT:
            self._set_status(
                instance.id, states.STOPPING, "reboot_off", desired=states.WANT_RUNNING, force=False
            )
        else:
            desired = {"desired": states.WANT_STOPPED} if instance.desired == states.WANT_HIBERNATED else {}
            self._set_status(instance.id, states.STOPPING, "powered_off", force=False, **desired)
        return True

    def _hibernate(self, instance: Instance) -> bool:
        """Save the VM's memory image and call the instance Stopped and hibernated; False when
        it could not be saved (the caller stops it plainly)."""
        if not self._compute.hibernated(instance.id):
            try:
                self._compute.hibernate(instance.id, HIBERNATE_TIMEOUT)
            except VmNotRunning:
                return False  # no VM (it powered off or crashed meanwhile): a plain stop
            except ComputeError:
                log.exception("instance %s could not be hibernated; it is stopped instead", instance.id)
                return False
        self._set_status(
            instance.id,
            states.STOPPING,
            "hibernated",
            desired=states.WANT_STOPPED,
            force=False,
            hibernated=True,
        )
        return True

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
                    drop_tags(s, eni.account_id, eni.region_id, "eni", eni.id)
                    s.delete(eni)
                else:
                    eni.instance_id, eni.status, eni.attachment = "", "Available", ""
            # released with the instance already (DeleteInstance); again here for rows older than that
            release_instance_addresses(s, instance.id)
            for tag in s.scalars(select(Tag).where(Tag.resource_id == instance.id)):
                s.delete(tag)
            s.execute(delete(ConsoleOutput).where(ConsoleOutput.instance_id == instance.id))
            row = s.get(Instance, instance.id)
            if row is not None:
                s.delete(row)
        self._log_offsets.pop(instance.id, None)
        self._nics_checked.discard(instance.id)
        self._forget_console(instance.id)
        self._storage.collect()
        self._network.reconcile({vpc_id})

    # ---- the console in the store ------------------------------------------------------------

    def record_console(self, instance_id: str, at_once: bool = False) -> None:
        """Record the VM's console tail in the store if it changed since the last recording, and
        that was CONSOLE_INTERVAL ago or more (or `at_once`); else remember to do it later."""
        output = self._compute.console_output(instance_id, CONSOLE_TAIL)
        digest = _digest(output)
        if digest == self._console_seen.get(instance_id, _NOTHING):
            self._console_behind.discard(instance_id)
            return
        now = time.monotonic()
        if not at_once and now - self._console_written.get(instance_id, -CONSOLE_INTERVAL) < CONSOLE_INTERVAL:
            self._console_behind.add(instance_id)
            return
        if self._consoles.record(instance_id, output):
            self._console_seen[instance_id] = digest
            self._console_written[instance_id] = now
            self._console_behind.discard(instance_id)
        else:
            self._forget_console(instance_id)  # the instance is gone

    def _forget_console(self, instance_id: str) -> None:
        self._console_seen.pop(instance_id, None)
        self._console_written.pop(instance_id, None)
        self._console_behind.discard(instance_id)
