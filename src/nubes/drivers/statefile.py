"""Small JSON state files that survive a crash: the fake drivers keep what a real host keeps on
disk (layers, VMs) in them, so the emulator forgets nothing across restarts, even kill -9.

A file is replaced whole (temp file, fsync, os.replace, fsync of the directory), so a reader
sees the old content or the new one, never half of either."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temp, "w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"), sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)
    fsync_path(path.parent)


def remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        return
    fsync_path(path.parent)


def read_all(directory: Path) -> dict[str, Any]:
    """Every state file of `directory` by its stem; leftover temp files (a crash mid-write) are
    removed, unreadable files skipped (the write that made them never finished)."""
    found: dict[str, Any] = {}
    if not directory.is_dir():
        return found
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            path.unlink(missing_ok=True)
        elif path.suffix == ".json":
            try:
                found[path.stem] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
    return found


def fsync_path(directory: Path) -> None:
    """fsync a file or a directory (a rename in it lasts only once the directory is synced)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
