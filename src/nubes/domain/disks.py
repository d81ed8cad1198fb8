"""Cloud disks: create, attach, detach, resize, re-initialise, roll back, delete.

Each action checks ownership and the status table (disk_states, and the instance's status
where ECS requires one), commits the new status with a storage task, and wakes the agent,
which does the file work (qcow2 layers, QEMU hot-plug) and settles the status."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nubes import errors, ids
from nubes.clock import Clock
from nubes.domain import disk_states as ds
from nubes.domain import instance_states as istates
from nubes.domain.common import Scope, owned
from nubes.domain.disk_categories import size_range
from nubes.domain.disk_categories import validate as validate_disk
from nubes.domain.keypairs import owned_key_pair
from nubes.domain.passwords import check_password, sha512_crypt
from nubes.domain.quotas import Quotas, check_disk_capacity
from nubes.domain.resource_groups import group_for
from nubes.domain.snapshot_usage import release_disk
from nubes.domain.storage_tasks import enqueue
from nubes.domain.tags import check_tags, write_tags
from nubes.store.db import Database
from nubes.store.models import Disk, Host, Image, Instance, Snapshot

MAX_DATA_DISKS = 64  # per instance, as ECS allows for most instance types
PAYG_DATA_DISKS_PER_ACCOUNT = 10_000


def owned_disk(s: Session, account_id: int, disk_id: str, region_id: str | None = None) -> Disk:
    return owned(
        s,
        Disk,
        Scope(account_id, region_id) if region_id is not None else account_id,
        disk_id,
        lambda missing: errors.invalid_disk_id_not_found(f"The specified disk {missing!r} does not exist."),
    )


def owned_instance(s: Session, account_id: int, instance_id: str) -> Instance:
    return owned(
        s,
        Instance,
        account_id,
        instance_id,
        lambda missing: errors.invalid_instance_id_not_found(
            f"The specified instance {missing!r} does not exist."
        ),
        usable=lambda i: i.desired != istates.WANT_DELETED,
    )


def owned_snapshot(s: Session, account_id: int, snapshot_id: str, region_id: str | None = None) -> Snapshot:
    return owned(
        s,
        Snapshot,
        Scope(account_id, region_id) if region_id is not None else account_id,
        snapshot_id,
        lambda missing: errors.invalid_snapshot_id_not_found(
            f"The specified snapshot {missing!r} does not exist."
        ),
    )


def require_instance_status(
    instance: Instance, allowed: tuple[str, ...], action: str, http_status: int = 403
) -> None:
    """IncorrectInstanceStatus, 403 in most actions (AttachDisk documents 400); also when the
    instance is hibernated (its disks stay as its memory image has them)."""
    if instance.status not in allowed:
        raise errors.incorrect_instance_status(
            f"The current status of the instance {instance.id} is {instance.status}; {action} needs it "
            f"to be {' or '.join(allowed)}.",
            http_status=http_status,
        )
    istates.check_not_hibernated(action, instance.id, instance.hibernated)


def host_for_zone(s: Session, zone_id: str) -> str | None:
    """A host that serves the zone (the one with the fewest disks), or None."""
    hosts = [
        h
        for h in s.scalars(select(Host).where(Host.status == "Available"))
        if h.zones == "*" or zone_id in h.zones.split(",")
    ]
    if not hosts:
        return None
    counts = {host: n for host, n in s.execute(select(Disk.host_id, func.count()).group_by(Disk.host_id))}
    return min(hosts, key=lambda h: (counts.get(h.id, 0), h.id)).id


@dataclass
class DiskSpec:
    zone_id: str | None
    category: str
    size_gib: int | None
    performance_level: str = ""
    snapshot_id: str = ""
    name: str = ""
    description: str = ""
    instance_id: str = ""  # create it attached to this (subscription-style) instance
    provisioned_iops: int = 0
    bursting_enabled: bool = False
    tags: tuple[tuple[str, str], ...] = ()
    client_token: str = ""
    encrypted: bool = False  # a disk from an encrypted snapshot is encrypted whatever this says
    resource_group_id: str = ""  # "": the account's default group


class Disks:
    def __init__(
        self, db: Database, clock: Clock, notify: Callable[[str], None], quotas: Quotas | None = None
    ) -> None:
        self._db = db
        self._quotas = quotas or Quotas()
        self._clock = clock
        self._notify = notify  # wakes the agent (with an instance or disk id)

    def get(self, account_id: int, disk_id: str) -> Disk:
        with self._db.session() as s:
            return owned_disk(s, account_id, disk_id)

    # ---- create / delete -------------------------------------------------------------------

    def create(self, scope: Scope, spec: DiskSpec) -> str:
        check_tags(spec.tags)
        now = self._clock.now()
        if spec.zone_id and spec.instance_id:
            raise errors.invalid_param_zone_id_and_instance_id_conflict()
        with self._db.session() as s:
            instance = owned_instance(s, scope.account_id, spec.instance_id) if spec.instance_id else None
            snapshot = (
                owned_snapshot(s, scope.account_id, spec.snapshot_id, scope.region_id)
                if spec.snapshot_id
                else None
            )
            if snapshot is not None and snapshot.status != "accomplished":
                raise errors.invalid_snapshot_id_not_ready(
                    f"The specified snapshot has not completed yet: {snapshot.id} is {snapshot.status}."
                )
            size = (
                spec.size_gib if spec.size_gib is not None else (snapshot.disk_size_gib if snapshot else None)
            )
            if size is None:
                raise errors.missing_parameter(message="Size is mandatory when no SnapshotId is given.")
            if snapshot is not None and size < snapshot.disk_size_gib:
                raise errors.invalid_disk_size_too_small(
                    f"Specified disk size is less than the size of snapshot ({size} < "
                    f"{snapshot.disk_size_gib} GiB).",
                )
            level = spec.performance_level or ("PL1" if spec.category == "cloud_essd" else "")
            validate_disk(
                spec.category,
                size,
                level,
                "data",
                provisioned_iops=spec.provisioned_iops,
                bursting_enabled=spec.bursting_enabled,
            )
            check_disk_capacity(s, scope, self._quotas, size)
            zone_id = instance.zone_id if instance is not None else spec.zone_id
            if not zone_id:
                raise errors.missing_parameter(message="ZoneId is mandatory when no InstanceId is given.")
            if instance is not None:
                self._check_room(s, instance)
            host_id = instance.host_id if instance is not None else host_for_zone(s, zone_id)
            if host_id is None:
                raise errors.operation_denied_no_stock(f"No host serves zone {zone_id} now.")
            disk = Disk(
                id=ids.new_id("disk"),
                account_id=scope.account_id,
                region_id=scope.region_id,
                zone_id=zone_id,
                instance_id="",
                disk_type="data",
                category=spec.category,
                performance_level=level,
                size_gib=size,
                name=spec.name,
                description=spec.description,
                status=ds.CREATING,
                image_id="",
                device="",
                delete_with_instance=False,
                host_id=host_id,
                created_at=now,
                layer="",
                source_snapshot_id=spec.snapshot_id,
                provisioned_iops=spec.provisioned_iops,
                bursting_enabled=spec.bursting_enabled,
                client_token=spec.client_token,
                encrypted=spec.encrypted or (snapshot is not None and snapshot.encrypted),
                resource_group_id=group_for(s, scope.account_id, spec.resource_group_id, self._clock),
            )
            s.add(disk)
            write_tags(s, scope, "disk", disk.id, spec.tags, created=True)
            # made attached: one key (the instance) keeps create before attach
            enqueue(
                s,
                now,
                "create",
                disk,
                instance_id=instance.id if instance is not None else "",
                snapshot_id=spec.snapshot_id,
            )
            if instance is not None:
                self._attach(s, disk, instance, delete_with_instance=True)
            disk_id = disk.id
        self._notify(instance.id if instance is not None else disk_id)
        return disk_id

    def delete(self, account_id: int, disk_id: str) -> None:
        now = self._clock.now()
        with self._db.session() as s:
            disk = owned_disk(s, account_id, disk_id)
            if disk.disk_type == "system" and disk.instance_id:
                raise errors.incorrect_disk_status(f"The system disk {disk_id} goes with its instance.")
            ds.check("DeleteDisk", disk_id, disk.status)
            taking = s.scalar(
                select(Snapshot.id)
                .where(Snapshot.disk_id == disk_id, Snapshot.status == "progressing")
                .limit(1)
            )
            if taking is not None:
                # as ECS: the snapshot is taken from the disk, which must stay until it is
                raise errors.disk_creating_snapshot(
                    "The operation is denied due to a snapshot of the specified "
                    f"disk is not completed yet: {taking} of {disk_id} is progressing.",
                )
            enqueue(s, now, "delete", disk)
            release_disk(s, disk)
        self._notify(disk_id)

    # ---- attach / detach -------------------------------------------------------------------

    def _check_room(self, s: Session, instance: Instance) -> None:
        count = (
            s.scalar(
                select(func.count())
                .select_from(Disk)
                .where(Disk.instance_id == instance.id, Disk.disk_type == "data")
            )
            or 0
        )
        if count >= MAX_DATA_DISKS:
            raise errors.instance_disk_number_limit_exceed(
                f"The instance {instance.id} has {count} data disks, the most it can have."
            )

    def _attach(self, s: Session, disk: Disk, instance: Instance, delete_with_instance: bool | None) -> None:
        taken = set(s.scalars(select(Disk.device).where(Disk.instance_id == instance.id)))
        device = next(
            f"/dev/xvd{chr(c)}" for c in range(ord("b"), ord("z") + 1) if f"/dev/xvd{chr(c)}" not in taken
        )
        disk.instance_id, disk.device = instance.id, device
        if disk.status != ds.CREATING:
            disk.status = ds.ATTACHING
        if delete_with_instance is not None:
            disk.delete_with_instance = delete_with_instance
        disk.attached_at = self._clock.now()
        disk.host_id = instance.host_id
        enqueue(s, self._clock.now(), "attach", disk, instance_id=instance.id)

    def attach(
        self,
        account_id: int,
        disk_id: str,
        instance_id: str,
        delete_with_instance: bool | None,
        bootable: bool = False,
        key_pair_name: str | None = None,
        password: str | None = None,
    ) -> None:
        with self._db.session() as s:
            disk = owned_disk(s, account_id, disk_id)
            instance = owned_instance(s, account_id, instance_id)
            if (key_pair_name or password) and not bootable:
                raise errors.invalid_parameter(
                    "KeyPairName" if key_pair_name else "Password",
                    "It sets the login of a system disk: attach with Bootable=true.",
                )
            set_login(s, instance, key_pair_name, password)
            if disk.instance_id and disk.instance_id != instance_id:
                raise errors.invalid_disk_in_use(
                    f"The specified disk has been occupied: {disk_id} is attached to {disk.instance_id}."
                )
            if disk.instance_id:
                raise errors.incorrect_disk_status(f"The disk {disk_id} is attached to {disk.instance_id}.")
            ds.check("AttachDisk", disk_id, disk.status)
            if disk.zone_id != instance.zone_id:
                raise errors.resources_not_in_same_zone(
                    f"The specified instance and disk are not in the same zone: the disk {disk_id} is in "
                    f"{disk.zone_id} and the instance in {instance.zone_id}.",
                )
            if bootable:
                raise errors.invalid_parameter_bootable()
            require_instance_status(instance, (istates.RUNNING, istates.STOPPED), "AttachDisk", 400)
            self._check_room(s, instance)
            self._attach(s, disk, instance, delete_with_instance)
        self._notify(instance_id)

    def detach(
        self, account_id: int, disk_id: str, instance_id: str, delete_with_instance: bool | None
    ) -> None:
        with self._db.session() as s:
            disk = owned_disk(s, account_id, disk_id)
            instance = owned_instance(s, account_id, instance_id)
            if not disk.instance_id:
                raise errors.invalid_disk_already_detached(
                    f"The specified disk has been detached: {disk_id}."
                )
            if disk.instance_id != instance_id:
                raise errors.dependency_violation(
                    message=f"The specified disk has not been attached on the specified instance: {disk_id} is "
                    f"attached to {disk.instance_id}.",
                    http_status=403,
                )
            if disk.disk_type == "system":
                raise errors.disk_type_violation()
            ds.check("DetachDisk", disk_id, disk.status)
            require_instance_status(instance, (istates.RUNNING, istates.STOPPED), "DetachDisk")
            disk.status = ds.DETACHING
            if delete_with_instance is not None:
                disk.delete_with_instance = delete_with_instance
            enqueue(s, self._clock.now(), "detach", disk, instance_id=instance_id)
        self._notify(instance_id)

    # ---- content ---------------------------------------------------------------------------

    def resize(self, account_id: int, disk_id: str, new_size: int, online: bool) -> None:
        with self._db.session() as s:
            disk = owned_disk(s, account_id, disk_id)
            ds.check("ResizeDisk", disk_id, disk.status)
            if new_size < disk.size_gib:
                raise errors.invalid_disk_size_too_small(
                    f"Specified new disk size is less than the original disk size ({new_size} < "
                    f"{disk.size_gib} GiB).",
                )
            if new_size == disk.size_gib:
                raise errors.invalid_disk_size(
                    f"Specified new disk size is less than or equal the original disk size ({new_size} GiB).",
                )
            allowed = size_range(disk.category, disk.performance_level, disk.disk_type)
            if disk.disk_type == "data" and new_size > allowed.max_gib:
                raise errors.invalid_disk_size_too_large(
                    f"Specified new disk size is beyond the permitted range: a data {disk.category} disk "
                    f"is {allowed}; got {new_size} GiB.",
                )
            validate_disk(disk.category, new_size, disk.performance_level, disk.disk_type)
            check_disk_capacity(s, Scope(account_id, disk.region_id), self._quotas, new_size - disk.size_gib)
            if online and disk.category == "cloud":
                raise errors.invalid_disk_category_not_supported(
                    "The specified disk category does not support resize online."
                )
            instance = s.get(Instance, disk.instance_id) if disk.instance_id else None
            if instance is not None and online and instance.status != istates.RUNNING:
                raise errors.invalid_instance_status_not_running(
                    "The status of instance to which the disk attachs must be running when resizing "
                    f"online; {instance.id} is {instance.status}.",
                )
            if instance is not None and not online:
                # offline resizing takes effect at the next start, as ECS documents: allowed while Running
                require_instance_status(instance, (istates.RUNNING, istates.STOPPED), "ResizeDisk")
            disk.size_gib = new_size
            enqueue(s, self._clock.now(), "resize", disk, instance_id=disk.instance_id, size_gib=new_size)
            key = disk.instance_id or disk.id
        self._notify(key)

    def reinit(
        self, account_id: int, disk_id: str, key_pair_name: str | None = None, password: str | None = None
    ) -> None:
        with self._db.session() as s:
            disk = owned_disk(s, account_id, disk_id)
            if key_pair_name:  # named key pairs must exist (and be the caller's) before any other check
                owned_key_pair(s, Scope(account_id, disk.region_id), key_pair_name)
            ds.check("ReInitDisk", disk_id, disk.status)
            instance = owned_instance(s, account_id, disk.instance_id)
            require_instance_status(instance, (istates.STOPPED,), "ReInitDisk")
            if (key_pair_name or password) and disk.disk_type != "system":
                raise errors.invalid_parameter(
                    "KeyPairName" if key_pair_name else "Password",
                    "It sets the login of a system disk; this is a data disk.",
                )
            set_login(s, instance, key_pair_name, password)
            if disk.source_snapshot_id and s.get(Snapshot, disk.source_snapshot_id) is None:
                raise errors.invalid_source_snapshot(
                    "The snapshot which is used to create the specified disk has been deleted: "
                    f"{disk.source_snapshot_id}.",
                )
            disk.status = ds.REINITING
            enqueue(s, self._clock.now(), "reinit", disk, instance_id=instance.id)
        self._notify(instance.id)

    def reset(self, account_id: int, disk_id: str, snapshot_id: str) -> None:
        with self._db.session() as s:
            disk = owned_disk(s, account_id, disk_id)
            snapshot = owned_snapshot(s, account_id, snapshot_id)
            ds.check("ResetDisk", disk_id, disk.status)
            if snapshot.disk_id != disk.id:
                raise errors.invalid_parameter_mismatch(
                    f"The specified snapshot is not created from the specified disk: {snapshot_id} is a "
                    f"snapshot of {snapshot.disk_id}.",
                    http_status=403,
                )
            if snapshot.status != "accomplished":
                raise errors.invalid_snapshot_id_not_ready(
                    f"The specified snapshot has not completed yet: {snapshot_id} is {snapshot.status}."
                )
            if disk.instance_id:
                instance = owned_instance(s, account_id, disk.instance_id)
                require_instance_status(instance, (istates.STOPPED,), "ResetDisk")
            enqueue(
                s, self._clock.now(), "reset", disk, instance_id=disk.instance_id, snapshot_id=snapshot_id
            )
            key = disk.instance_id or disk.id
        self._notify(key)

    # ---- attributes ------------------------------------------------------------------------

    def modify_attribute(
        self,
        account_id: int,
        disk_ids: list[str],
        name: str | None,
        description: str | None,
        delete_with_instance: bool | None,
        delete_auto_snapshot: bool | None,
        enable_auto_snapshot: bool | None,
        bursting_enabled: bool | None = None,
    ) -> None:
        with self._db.session() as s:
            disks = [owned_disk(s, account_id, d) for d in disk_ids]
            for disk in disks:
                if bursting_enabled is not None:
                    # performance bursting is a cloud_auto disk's: others are refused, as ECS does
                    validate_disk(
                        disk.category,
                        disk.size_gib,
                        disk.performance_level,
                        disk.disk_type,
                        provisioned_iops=disk.provisioned_iops,
                        bursting_enabled=bursting_enabled,
                    )
                    disk.bursting_enabled = bursting_enabled
                if delete_with_instance is not None:
                    if disk.disk_type == "system" and not delete_with_instance:
                        raise errors.invalid_disk_category_not_supported(
                            "A system disk is always released with its instance."
                        )
                    disk.delete_with_instance = delete_with_instance
                if name is not None:
                    disk.name = name
                if description is not None:
                    disk.description = description
                if delete_auto_snapshot is not None:
                    disk.delete_auto_snapshot = delete_auto_snapshot
                if enable_auto_snapshot is not None:
                    disk.enable_auto_snapshot = enable_auto_snapshot

    def modify_spec(
        self,
        account_id: int,
        disk_id: str,
        category: str | None,
        level: str | None,
        provisioned_iops: int | None,
    ) -> None:
        """Change the category or performance level; the new limits apply at once to a running
        VM's throttle group at its next start (and to a hot-plugged disk)."""
        with self._db.session() as s:
            disk = owned_disk(s, account_id, disk_id)
            ds.check("ModifyDiskSpec", disk_id, disk.status)
            new_category = category or disk.category
            new_level = (
                level
                if level is not None
                else (
                    disk.performance_level
                    if new_category == disk.category
                    else ("PL1" if new_category == "cloud_essd" else "")
                )
            )
            if new_category != "cloud_essd":
                new_level = ""
            # provisioned IOPS and bursting are cloud_auto's: a disk leaving that category drops them
            auto = new_category == "cloud_auto"
            iops = (
                provisioned_iops if provisioned_iops is not None else (disk.provisioned_iops if auto else 0)
            )
            bursting = disk.bursting_enabled and auto
            validate_disk(
                new_category,
                disk.size_gib,
                new_level,
                disk.disk_type,
                provisioned_iops=iops,
                bursting_enabled=bursting,
            )
            disk.category, disk.performance_level = new_category, new_level
            disk.provisioned_iops, disk.bursting_enabled = iops, bursting

    # ---- system disk -----------------------------------------------------------------------

    def replace_system_disk(
        self,
        account_id: int,
        instance_id: str,
        image: Image,
        size_gib: int | None,
        key_pair_name: str | None = None,
        password: str | None = None,
    ) -> str:
        """A new system disk from `image` (the old one is released); the instance stays Stopped.
        A key pair or password given is the login the guest takes on the new disk's first boot."""
        now = self._clock.now()
        with self._db.session() as s:
            instance = owned_instance(s, account_id, instance_id)
            if key_pair_name:  # named resources must exist (and be the caller's) before any other check
                owned_key_pair(s, Scope(account_id, instance.region_id), key_pair_name)
            istates.check("ReplaceSystemDisk", instance_id, instance.status)
            istates.check_not_hibernated("ReplaceSystemDisk", instance_id, instance.hibernated)
            set_login(s, instance, key_pair_name, password)
            old = s.scalar(select(Disk).where(Disk.instance_id == instance_id, Disk.disk_type == "system"))
            size = size_gib or max(image.size_gib, old.size_gib if old is not None else 0)
            category = old.category if old is not None else "cloud_essd"
            level = old.performance_level if old is not None else "PL1"
            validate_disk(category, size, level, "system")
            if size < image.size_gib:
                raise errors.invalid_system_disk_size_less_than_image_size(
                    f"The system disk ({size} GiB) must hold the image ({image.size_gib} GiB)."
                )
            disk = Disk(
                id=ids.new_id("disk"),
                account_id=account_id,
                region_id=instance.region_id,
                zone_id=instance.zone_id,
                instance_id=instance_id,
                disk_type="system",
                category=category,
                performance_level=level,
                size_gib=size,
                name="",
                description="",
                status=ds.IN_USE,
                image_id=image.id,
                device="/dev/xvda",
                delete_with_instance=True,
                host_id=instance.host_id,
                created_at=now,
                attached_at=now,
                # an encrypted image's disks are encrypted; an encrypted system disk stays so
                encrypted=image.encrypted or (old is not None and old.encrypted),
            )
            s.add(disk)
            if old is not None:
                enqueue(s, now, "delete", old)
                s.delete(old)
            instance.image_id = image.id
            enqueue(s, now, "create", disk, instance_id=instance_id)
            disk_id = disk.id
        self._notify(instance_id)
        return disk_id


def set_login(s: Session, instance: Instance, key_pair_name: str | None, password: str | None) -> None:
    """The key pair and password of a Stopped instance whose system disk is new: the guest takes
    them (from the metadata service) on that disk's first boot."""
    if key_pair_name:
        owned_key_pair(s, Scope(instance.account_id, instance.region_id), key_pair_name)
        instance.key_pair_name, instance.pending_key_pair_name = key_pair_name, None
    if password:
        check_password(password)
        instance.password_hash = sha512_crypt(password)
