"""The storage driver contract: disk images on a host (qcow2 files, or nothing in the fake).

Creating a system disk from an image is an overlay on the image's root filesystem, made in
constant time whatever the disk's size. Every method is idempotent."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path


class StorageDriver(ABC):
    real_files: bool

    @abstractmethod
    def disk_path(self, disk_id: str) -> Path:
        """Where the disk's image lives on this host."""

    @abstractmethod
    def create_from_image(self, disk_id: str, base: Path, size_gib: int) -> Path:
        """A disk backed by `base` (copy-on-write), grown to `size_gib`. Exists already: kept."""

    @abstractmethod
    def create_blank(self, disk_id: str, size_gib: int) -> Path:
        """An empty disk of `size_gib`. Exists already: kept."""

    @abstractmethod
    def delete(self, disk_id: str) -> None:
        """Remove the disk's files; succeeds if there are none."""

    @abstractmethod
    def exists(self, disk_id: str) -> bool: ...
