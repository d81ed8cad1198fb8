"""Disks as qcow2 files, with qemu-img."""

from __future__ import annotations

import os
import shutil
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

    def _stable_base(self, base: Path) -> Path:
        """The image file as it is now, kept under the disks directory: a rebuilt image replaces
        its files, and an overlay must keep the backing file it was made on."""
        stat = base.stat()
        kept = self._dir / "bases" / f"{base.parent.name}-{stat.st_ino}-{int(stat.st_mtime)}.qcow2"
        if kept.exists():
            return kept
        kept.parent.mkdir(parents=True, exist_ok=True)
        partial = kept.with_suffix(".partial")
        try:
            os.link(base, partial)
        except OSError:  # another file system: copy once
            shutil.copyfile(base, partial)
        os.replace(partial, kept)
        return kept

    def create_from_image(self, disk_id: str, base: Path, size_gib: int) -> Path:
        path = self.disk_path(disk_id)
        if path.exists():
            return path
        partial = path.with_suffix(".partial")
        backing = self._stable_base(base)
        _qemu_img("create", "-q", "-f", "qcow2", "-b", str(backing.resolve()), "-F", "qcow2", str(partial),
                  f"{size_gib}G")
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
