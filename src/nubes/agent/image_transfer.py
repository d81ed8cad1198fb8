"""Import and export of custom images on the host: the agent side of ImportImage/ExportImage.

An import converts a qcow2, raw or VHD file (a host path, or an HTTP URL on the loopback
interface, fetched first) into one standalone layer, and records it as the accomplished
system snapshot the image stands on. An export writes the image's system snapshot, its chain
flattened, into a file of the asked format."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any

from nubes import ids
from nubes.clock import Clock
from nubes.domain import tasks
from nubes.domain.custom_images import AVAILABLE, CREATE_FAILED
from nubes.drivers.storage.base import StorageDriver
from nubes.store.db import Database
from nubes.store.models import Image, Snapshot, StorageTask

QEMU_FORMATS = {"qcow2": "qcow2", "raw": "raw", "vhd": "vpc"}
DOWNLOAD_TIMEOUT = 600


def _fetch(url: str, dest: Path) -> Path:
    partial = dest.with_name(dest.name + ".partial")
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response, open(partial, "wb") as out:
        shutil.copyfileobj(response, out, 1 << 20)
    partial.replace(dest)
    return dest


def _progress(db: Database, clock: Clock, task: StorageTask, percent: int) -> None:
    """The ECS task of the work is Processing, `percent` done."""
    with db.session() as s:
        tasks.move(s, clock.now(), tasks.task_of(task), tasks.PROCESSING, percent)


def do_import(db: Database, clock: Clock, storage: StorageDriver, downloads: Path, task: StorageTask) -> None:
    args: dict[str, Any] = json.loads(task.args or "{}")
    image_id = task.disk_id
    layer = f"{image_id}.import"
    source = str(args["source"])
    _progress(db, clock, task, 0)
    if source.startswith(("http://", "https://")):
        downloads.mkdir(parents=True, exist_ok=True)
        local = downloads / f"{image_id}.download"
        if not local.exists():
            _fetch(source, local)
        _progress(db, clock, task, 50)  # fetched; the conversion is the other half
    else:
        local = Path(source)
    size = storage.import_file(layer, local, QEMU_FORMATS[str(args["format"])])
    with db.session() as s:
        tasks.move(s, clock.now(), tasks.task_of(task), tasks.FINISHED)
        image = s.get(Image, image_id)
        if image is not None and image.status != AVAILABLE:
            snapshot = Snapshot(
                id=ids.new_id("snapshot"),
                account_id=image.account_id,
                region_id=image.region_id,
                disk_id="",
                disk_type="system",
                disk_category="cloud_essd",
                disk_size_gib=size,
                source_image_id=image.boot_image_id,
                name=f"Imported for {image_id}",
                description=f"Imported from {source}"[:256],
                status="accomplished",
                progress=100,
                layer=layer,
                host_id=task.host_id,
                created_at=clock.now(),
                completed_at=clock.now(),
            )
            s.add(snapshot)
            image.snapshot_id, image.size_gib = snapshot.id, max(image.size_gib, size)
            image.status, image.progress = AVAILABLE, 100
        row = s.get(StorageTask, task.id)
        if row is not None:
            s.delete(row)
    if source.startswith(("http://", "https://")):
        (downloads / f"{image_id}.download").unlink(missing_ok=True)


def do_export(db: Database, clock: Clock, storage: StorageDriver, task: StorageTask) -> None:
    args: dict[str, Any] = json.loads(task.args or "{}")
    _progress(db, clock, task, 0)
    with db.session() as s:
        snapshot = s.get(Snapshot, task.snapshot_id)
        layer = snapshot.layer if snapshot is not None else ""
    dest = Path(str(args["dest"]))
    if layer:
        dest.parent.mkdir(parents=True, exist_ok=True)
        storage.export(layer, dest, QEMU_FORMATS[str(args["format"])])
    with db.session() as s:
        if tasks.cancelled(s, tasks.task_of(task)):
            dest.unlink(missing_ok=True)  # CancelTask came while it was written: no file stays
        tasks.move(s, clock.now(), tasks.task_of(task), tasks.FINISHED)
        row = s.get(StorageTask, task.id)
        if row is not None:
            s.delete(row)


def fail_import(db: Database, clock: Clock, task: StorageTask) -> None:
    """An import or export given up: its image (an import's) is CreateFailed, its task Failed."""
    with db.session() as s:
        tasks.move(
            s, clock.now(), tasks.task_of(task), tasks.FAILED, error="The image file could not be converted."
        )
        image = s.get(Image, task.disk_id)
        if image is not None and image.status != AVAILABLE:
            image.status = CREATE_FAILED
        row = s.get(StorageTask, task.id)
        if row is not None:
            s.delete(row)
