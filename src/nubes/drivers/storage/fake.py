"""Disks that exist only in memory: the emulator mode and scale tests."""

from __future__ import annotations

from pathlib import Path

from nubes.drivers.storage.base import StorageDriver


class FakeStorage(StorageDriver):
    real_files = False

    def __init__(self) -> None:
        self.disks: dict[str, int] = {}

    def disk_path(self, disk_id: str) -> Path:
        return Path("/nonexistent/nubes-fake") / f"{disk_id}.qcow2"

    def exists(self, disk_id: str) -> bool:
        return disk_id in self.disks

    def create_from_image(self, disk_id: str, base: Path, size_gib: int) -> Path:
        self.disks.setdefault(disk_id, size_gib)
        return self.disk_path(disk_id)

    def create_blank(self, disk_id: str, size_gib: int) -> Path:
        self.disks.setdefault(disk_id, size_gib)
        return self.disk_path(disk_id)

    def delete(self, disk_id: str) -> None:
        self.disks.pop(disk_id, None)
