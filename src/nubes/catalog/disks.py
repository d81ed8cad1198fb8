"""Cloud disk categories and their size limits (GiB), as ECS documents them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DiskCategory:
    name: str
    system_min: int | None  # None: not usable as a system disk
    system_max: int | None
    data_min: int
    data_max: int


DISK_CATEGORIES: dict[str, DiskCategory] = {
    c.name: c
    for c in (
        DiskCategory("cloud", 20, 500, 5, 2000),
        DiskCategory("cloud_efficiency", 20, 2048, 20, 32768),
        DiskCategory("cloud_ssd", 20, 2048, 20, 32768),
        DiskCategory("cloud_essd", 20, 2048, 20, 65536),
        DiskCategory("cloud_auto", 1, 2048, 1, 65536),
        DiskCategory("cloud_essd_entry", 10, 500, 10, 32768),
    )
}

# ESSD performance levels narrow the minimum size of a data disk.
ESSD_LEVEL_MIN_SIZE = {"PL0": 1, "PL1": 20, "PL2": 461, "PL3": 1261}
