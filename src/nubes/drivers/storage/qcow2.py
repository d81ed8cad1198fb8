"""Disks as qcow2 files, with qemu-img."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from nubes.drivers.storage.base import StorageDriver


class StorageError(Exception):
    """qemu-img failed."""


def _qemu_img(*args: str) -> None:
    result = subprocess.run(["qemu-img", *args], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise StorageError(f"qemu-img {' '.join(args)}: {result.stderr.strip()[-500:]}")


class Qcow2Storage(StorageDriver):
    real_files = True

    def __init__(self, disks_dir: Path) -> None:
        self._dir = disks_dir
        self._dir.mkdir(parents=True, exist_ok=True)

    def disk_path(self, disk_id: str) -> Path:
        return self._dir / f"{disk_id}.qcow2"

    def exists(self, disk_id: str) -> bool:
        return self.disk_path(disk_id).exists()

    def create_from_image(self, disk_id: str, base: Path, size_gib: int) -> Path:
        path = self.disk_path(disk_id)
        if path.exists():
            return path
        partial = path.with_suffix(".partial")
        # An absolute backing path: the images directory and the disks directory are separate.
        _qemu_img("create", "-q", "-f", "qcow2", "-b", str(base.resolve()), "-F", "qcow2", str(partial), f"{size_gib}G")
        os.replace(partial, path)
        return path

    def create_blank(self, disk_id: str, size_gib: int) -> Path:
        path = self.disk_path(disk_id)
        if path.exists():
            return path
        partial = path.with_suffix(".partial")
        _qemu_img("create", "-q", "-f", "qcow2", str(partial), f"{size_gib}G")
        os.replace(partial, path)
        return path

    def delete(self, disk_id: str) -> None:
        for path in (self.disk_path(disk_id), self.disk_path(disk_id).with_suffix(".partial")):
            path.unlink(missing_ok=True)
