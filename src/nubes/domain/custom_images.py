"""Custom images: made from an instance (a snapshot of each of its disks) or from a system
disk snapshot, shared with other accounts, deleted.

An image is its snapshots: launching from it makes the system disk an overlay on the system
snapshot's frozen layer (constant time), booted with the kernel of the system image the
snapshot's disk came from (`boot_image_id`, whose files `artifact` names). The image is
`Creating` until its snapshots are accomplished; the agent then makes it `Available`."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from sqlalchemy import select
from sqlalchemy.orm import Session

from nubes import errors, ids
from nubes.clock import Clock
from nubes.domain import instance_states as istates
from nubes.domain import tasks
from nubes.domain.common import Scope, owned
from nubes.domain.disks import owned_instance, owned_snapshot, require_instance_status
from nubes.domain.resource_groups import group_for
from nubes.domain.snapshots import Snapshots
from nubes.domain.storage_tasks import enqueue_image
from nubes.domain.tags import check_tags, drop_tags, write_tags
from nubes.store.db import Database
from nubes.store.models import Account, Disk, Host, Image, ImageShare, Instance, Snapshot

CREATING, AVAILABLE, CREATE_FAILED = "Creating", "Available", "CreateFailed"
IMPORT_FORMATS = ("qcow2", "raw", "vhd")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
MAX_SHARES = 10  # accounts an image can be shared with, as ECS allows by default


def owned_image(s: Session, account_id: int, image_id: str) -> Image:
    return owned(
        s,
        Image,
        account_id,
        image_id,
        lambda missing: errors.invalid_image_id_not_found(f"The specified image {missing!r} does not exist."),
        usable=lambda i: i.owner_alias != "system",
    )


def settle_images(s: Session, snapshot_id: str | None = None) -> None:
    """Settle the Creating images made of snapshots (of `snapshot_id`, or all): Available once
    their snapshots are all accomplished, CreateFailed as soon as one of them failed or is gone,
    as ECS shows an image whose snapshot could not be taken. The agent calls this in the
    transaction that settles a snapshot, so an image never waits for a snapshot that is over."""
    for image in s.scalars(select(Image).where(Image.status == CREATING, Image.snapshot_id != "")):
        wanted = [image.snapshot_id] + [m["SnapshotId"] for m in json.loads(image.disk_mappings or "[]")]
        if snapshot_id is not None and snapshot_id not in wanted:
            continue
        snapshots = [s.get(Snapshot, sid) for sid in wanted]
        if any(sn is None or sn.status == "failed" for sn in snapshots):
            image.status = CREATE_FAILED
            continue
        done = [sn for sn in snapshots if sn is not None and sn.status == "accomplished"]
        image.progress = 100 * len(done) // len(wanted)
        if len(done) == len(wanted):
            image.status = AVAILABLE


def image_encrypted(image: Image) -> bool:
    """Whether any snapshot of the image is encrypted: `encrypted` tells of the system disk's,
    each data disk mapping carries its own."""
    return image.encrypted or any(m.get("Encrypted") for m in json.loads(image.disk_mappings or "[]"))


class CustomImages:
    def __init__(
        self, db: Database, clock: Clock, snapshots: Snapshots, notify: Callable[[str], None], buckets: Path
    ) -> None:
        self._db = db
        self._clock = clock
        self._snapshots = snapshots
        self._notify = notify
        self._buckets = buckets  # "OSS buckets": directories on the host

    def bucket_path(self, bucket: str, key: str) -> Path:
        """Where an object of an "OSS bucket" lives: DATA_DIR/oss/<bucket>/<key>. Buckets are the
        only host files ImportImage reads and ExportImage writes (the API runs as root: a caller
        must not name /etc/shadow); an operator links or copies other files in."""
        if not BUCKET_NAME.fullmatch(bucket):
            raise errors.invalid_oss_bucket_malformed(
                f"The bucket name {bucket!r} is not valid: 3 to 63 lower-case "
                "letters, digits and hyphens, starting and ending with a letter or digit.",
            )
        parts = Path(key).parts
        if not key or key.startswith("/") or ".." in parts or "\0" in key or len(key) > 1023:
            raise errors.invalid_oss_object_malformed(f"The object name {key!r} is not valid.")
        return self._buckets / bucket / key

    def host_file(self, path: str) -> Path:
        """A host path given to ImportImage: only inside the buckets' directory."""
        normal = Path(os.path.normpath(path))
        root = Path(os.path.normpath(self._buckets))
        if "\0" in path or not normal.is_absolute() or root not in normal.parents:
            raise errors.invalid_oss_object_forbidden(
                f"nubes imports host files only from its buckets ({root}/<bucket>/...)."
            )
        return normal

    # ---- import / export / copy ------------------------------------------------------------

    def import_image(
        self,
        scope: Scope,
        source_url_or_path: str,
        fmt: str,
        name: str,
        description: str,
        boot_image: Image,
        size_gib: int | None,
        tags: tuple[tuple[str, str], ...] = (),
        resource_group_id: str = "",
    ) -> tuple[str, str]:
        """ImportImage: the file is converted by the agent; the image is Creating until then. The
        guest boots with nubes' kernel of `boot_image` on the imported root file system. The
        image's id and its task's."""
        check_tags(tags)
        fmt = fmt.lower()
        if fmt not in IMPORT_FORMATS:
            raise errors.invalid_parameter_format(f"Format must be one of {', '.join(IMPORT_FORMATS)}.")
        source = source_url_or_path
        if source.startswith(("http://", "https://")):
            try:
                host = urlparse(source).hostname or ""
            except ValueError:
                host = ""
            if host not in LOOPBACK_HOSTS:
                raise errors.invalid_oss_object_not_loopback()
        elif not self.host_file(source).is_file():
            raise errors.invalid_oss_object_not_found(f"The image file {source} does not exist.")
        now = self._clock.now()
        with self._db.session() as s:
            self._check_name(s, scope, name)
            image = self._new_image(
                scope,
                name or f"import-{now:%Y%m%d%H%M%S}",
                description,
                "",
                boot_image,
                size_gib or boot_image.size_gib,
                "",
                [],
                "",
            )
            host_id = s.scalar(select(Host.id).where(Host.status == "Available").order_by(Host.id).limit(1))
            image.resource_group_id = group_for(s, scope.account_id, resource_group_id, self._clock)
            s.add(image)
            write_tags(s, scope, "image", image.id, tags, created=True)
            task = tasks.create_in(s, now, scope, tasks.IMPORT_IMAGE, image.id, (("ImageId", image.id),))
            enqueue_image(
                s, now, "import", image.id, host_id, {"source": source, "format": fmt, "task": task.id}
            )
            image_id, task_id = image.id, task.id
        self._notify(image_id)
        return image_id, task_id

    def export_image(self, scope: Scope, image_id: str, bucket: str, prefix: str, fmt: str) -> str:
        """ExportImage: the agent writes <prefix><image>_system.<fmt> into the bucket; the task id."""
        fmt = fmt.lower()
        if fmt not in IMPORT_FORMATS:
            raise errors.invalid_parameter_image_format(
                f"ImageFormat must be one of {', '.join(IMPORT_FORMATS)}."
            )
        with self._db.session() as s:
            image = owned_image(s, scope.account_id, image_id)
            if image.status != AVAILABLE:
                raise errors.incorrect_image_status(f"The image {image_id} is {image.status}.")
            if image_encrypted(image):
                raise errors.operation_denied_encrypted_image(
                    f"The image {image_id} is encrypted: nubes never exports its content in the clear."
                )
            snapshot = s.get(Snapshot, image.snapshot_id)
            if snapshot is None:
                raise errors.invalid_snapshot_id_not_found("The image's system snapshot is gone.")
            key = f"{prefix}{image_id}_system.{fmt}"
            dest = self.bucket_path(bucket, key)
            now = self._clock.now()
            related = (("OSSBucket", bucket), ("OSSObject", key), ("ImageFormat", fmt))
            task = tasks.create_in(
                s, now, Scope(scope.account_id, image.region_id), tasks.EXPORT_IMAGE, image_id, related
            )
            enqueue_image(
                s,
                now,
                "export",
                image_id,
                snapshot.host_id,
                {"dest": str(dest), "format": fmt, "task": task.id},
                snapshot_id=snapshot.id,
            )
            task_id = task.id
        self._notify(image_id)
        return task_id

    def copy_image(
        self,
        account_id: int,
        image_id: str,
        region_id: str,
        name: str,
        description: str,
        tags: tuple[tuple[str, str], ...] = (),
        resource_group_id: str = "",
    ) -> str:
        """CopyImage to another region: new snapshot records there on the same immutable layers
        (layers never change once frozen), so the copy is Available at once."""
        check_tags(tags)
        now = self._clock.now()
        with self._db.session() as s:
            image = owned_image(s, account_id, image_id)
            if image.status != AVAILABLE:
                raise errors.incorrect_image_status(f"The image {image_id} is {image.status}.")
            scope = Scope(account_id, region_id)
            self._check_name(s, scope, name)

            def copied(snapshot_id: str) -> str:
                source = s.get(Snapshot, snapshot_id)
                if source is None:
                    raise errors.invalid_snapshot_id_not_found(f"The image's snapshot {snapshot_id} is gone.")
                copy = Snapshot(
                    id=ids.new_id("snapshot"),
                    account_id=account_id,
                    region_id=region_id,
                    disk_id=source.disk_id,
                    disk_type=source.disk_type,
                    disk_category=source.disk_category,
                    disk_size_gib=source.disk_size_gib,
                    source_image_id=source.source_image_id,
                    name=f"Copied for {image_id}",
                    description=source.description,
                    status=source.status,
                    progress=source.progress,
                    layer=source.layer,
                    encrypted=source.encrypted,
                    host_id=source.host_id,
                    created_at=now,
                    completed_at=now,
                )
                s.add(copy)
                return copy.id

            mappings = [
                {**m, "SnapshotId": copied(str(m["SnapshotId"]))}
                for m in json.loads(image.disk_mappings or "[]")
            ]
            boot = s.get(Image, image.boot_image_id) or image
            new = self._new_image(
                scope,
                name or image.name,
                description or image.description,
                image.family,
                boot,
                image.size_gib,
                copied(image.snapshot_id),
                mappings,
                "",
            )
            new.status, new.progress, new.encrypted = AVAILABLE, 100, image.encrypted
            new.resource_group_id = group_for(s, account_id, resource_group_id, self._clock)
            s.add(new)
            write_tags(s, scope, "image", new.id, tags, created=True)  # the copy's, in its region
            return new.id

    def _check_name(self, s: Session, scope: Scope, name: str) -> None:
        if name and s.scalar(
            select(Image.id).where(
                Image.account_id == scope.account_id, Image.region_id == scope.region_id, Image.name == name
            )
        ):
            raise errors.invalid_image_name_duplicated(f"An image named {name!r} exists already.")

    def _new_image(
        self,
        scope: Scope,
        name: str,
        description: str,
        family: str,
        source: Image,
        size: int,
        snapshot_id: str,
        mappings: list[dict[str, object]],
        instance_id: str,
        client_token: str = "",
    ) -> Image:
        return Image(
            id=ids.new_id("image"),
            region_id=scope.region_id,
            account_id=scope.account_id,
            owner_alias="self",
            name=name,
            description=description,
            family=family,
            os_name=source.os_name,
            os_name_en=source.os_name_en,
            os_type=source.os_type,
            platform=source.platform,
            architecture=source.architecture,
            size_gib=size,
            status=CREATING,
            progress=0,
            usage="none",
            boot_mode=source.boot_mode,
            artifact=source.artifact,
            created_at=self._clock.now(),
            snapshot_id=snapshot_id,
            boot_image_id=source.boot_image_id or source.id,
            disk_mappings=json.dumps(mappings),
            source_instance_id=instance_id,
            client_token=client_token,
        )

    def create(
        self,
        scope: Scope,
        instance_id: str | None,
        snapshot_id: str | None,
        name: str,
        description: str,
        family: str,
        tags: tuple[tuple[str, str], ...] = (),
        client_token: str = "",
        resource_group_id: str = "",
    ) -> str:
        check_tags(tags)
        now = self._clock.now()
        wake = ""
        with self._db.session() as s:
            self._check_name(s, scope, name)
            mappings: list[dict[str, object]] = []
            if instance_id:
                instance = owned_instance(s, scope.account_id, instance_id)
                require_instance_status(instance, (istates.RUNNING, istates.STOPPED), "CreateImage")
                disks = list(
                    s.scalars(
                        select(Disk)
                        .where(Disk.instance_id == instance.id)
                        .order_by(Disk.disk_type.desc(), Disk.device)
                    )
                )
                system = next(d for d in disks if d.disk_type == "system")
                source = s.get(Image, system.image_id)
                system_snapshot = self._snapshots.create_in(
                    s, now, system, description=f"Created for {instance_id}"
                )
                for disk in disks:
                    if disk.disk_type == "data":
                        snap = self._snapshots.create_in(
                            s, now, disk, description=f"Created for {instance_id}"
                        )
                        mappings.append(
                            {
                                "SnapshotId": snap.id,
                                "Size": disk.size_gib,
                                "Device": disk.device,
                                "Encrypted": snap.encrypted,
                            }
                        )
                size = system.size_gib
                wake = instance.id
            elif snapshot_id:
                system_snapshot = owned_snapshot(s, scope.account_id, snapshot_id, scope.region_id)
                if system_snapshot.disk_type != "system":
                    raise errors.invalid_parameter_snapshot_id(
                        f"The snapshot {snapshot_id} is of a data disk; an image needs a system disk's."
                    )
                if system_snapshot.status != "accomplished":
                    raise errors.incorrect_snapshot_status(
                        f"The snapshot {snapshot_id} is not accomplished yet."
                    )
                source = s.get(Image, system_snapshot.source_image_id)
                size = system_snapshot.disk_size_gib
            else:
                raise errors.missing_parameter(
                    message="InstanceId or SnapshotId is mandatory for this action."
                )
            if source is None:
                raise errors.invalid_image_id_not_found("The image the disk was made from is gone.")
            image = self._new_image(
                scope,
                name or f"image-{now:%Y%m%d%H%M%S}",
                description,
                family,
                source,
                size,
                system_snapshot.id,
                mappings,
                instance_id or "",
                client_token,
            )
            image.encrypted = system_snapshot.encrypted
            image.resource_group_id = group_for(s, scope.account_id, resource_group_id, self._clock)
            s.add(image)
            write_tags(s, scope, "image", image.id, tags, created=True)
            if system_snapshot.status == "accomplished":
                settle_images(s, system_snapshot.id)
            image_id = image.id
        if wake:
            self._notify(wake)
        return image_id

    def delete(self, account_id: int, image_id: str, force: bool) -> None:
        with self._db.session() as s:
            image = s.get(Image, image_id)
            if image is None or image.account_id != account_id or image.owner_alias == "system":
                return  # ECS ignores an image that does not exist
            users = s.scalar(
                select(Instance.id)
                .where(Instance.image_id == image_id, Instance.desired != istates.WANT_DELETED)
                .limit(1)
            )
            if users and not force:
                raise errors.invalid_image_id_in_use(
                    f"The image {image_id} is used by instances (e.g. {users}); set Force=true."
                )
            for share in s.scalars(select(ImageShare).where(ImageShare.image_id == image_id)):
                s.delete(share)
            drop_tags(s, account_id, image.region_id, "image", image_id)
            s.delete(image)

    def modify(
        self,
        account_id: int,
        image_id: str,
        name: str | None,
        description: str | None,
        family: str | None,
        status: str | None,
    ) -> None:
        with self._db.session() as s:
            image = owned_image(s, account_id, image_id)
            if name is not None:
                image.name = name
            if description is not None:
                image.description = description
            if family is not None:
                image.family = family
            if status is not None:
                if image.status not in (AVAILABLE, "Deprecated"):
                    raise errors.incorrect_image_status(f"The image {image_id} is {image.status}.")
                image.status = status

    # ---- sharing ---------------------------------------------------------------------------

    def share(self, account_id: int, image_id: str, add: list[str], remove: list[str]) -> None:
        """Share with (or stop sharing with) accounts named by their 16-digit account IDs."""
        with self._db.session() as s:
            image = owned_image(s, account_id, image_id)
            if image.status != AVAILABLE:
                raise errors.incorrect_image_status(f"The image {image_id} is {image.status}.")
            if image_encrypted(image) and add:
                raise errors.operation_denied_encrypted_image(
                    f"The image {image_id} is encrypted under its owner's key and cannot be shared."
                )

            def account_of(uid: str) -> Account:
                target = s.scalar(select(Account).where(Account.uid == uid))
                if target is None:
                    raise errors.invalid_account_not_found(f"The account {uid} does not exist.")
                if target.id == account_id:
                    raise errors.invalid_parameter_add_account()
                return target

            shared = {
                sh.account_id: sh
                for sh in s.scalars(select(ImageShare).where(ImageShare.image_id == image_id))
            }
            for uid in remove:
                target = account_of(uid)
                if target.id in shared:
                    s.delete(shared.pop(target.id))
            for uid in add:
                target = account_of(uid)
                if target.id not in shared:
                    if len(shared) >= MAX_SHARES:
                        raise errors.quota_exceed_share_image_user(
                            f"An image can be shared with at most {MAX_SHARES} accounts."
                        )
                    share = ImageShare(image_id=image_id, account_id=target.id, created_at=self._clock.now())
                    s.add(share)
                    shared[target.id] = share

    def shared_with(self, account_id: int, image_id: str) -> list[str]:
        with self._db.session() as s:
            owned_image(s, account_id, image_id)
            return list(
                s.scalars(
                    select(Account.uid)
                    .join(ImageShare, ImageShare.account_id == Account.id)
                    .where(ImageShare.image_id == image_id)
                    .order_by(Account.uid)
                )
            )
