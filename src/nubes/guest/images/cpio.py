"""A small writer of the cpio "newc" archives that Linux unpacks as an initramfs.

Written here (not with the cpio tool) so an initramfs can hold device nodes and root-owned
files whoever builds it, and is byte-for-byte reproducible (fixed mtimes, sorted order)."""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MTIME = 0  # every entry gets this mtime, so the same inputs give the same archive


@dataclass(frozen=True)
class Entry:
    name: str  # path inside the archive, without a leading "/"
    mode: int  # full st_mode: file type bits and permissions
    data: bytes = b""  # file contents, or a symlink's target
    rdev: tuple[int, int] = (0, 0)  # (major, minor) of a device node


def directory(name: str, perm: int = 0o755) -> Entry:
    return Entry(name, stat.S_IFDIR | perm)


def file(name: str, data: bytes, perm: int = 0o644) -> Entry:
    return Entry(name, stat.S_IFREG | perm, data)


def symlink(name: str, target: str) -> Entry:
    return Entry(name, stat.S_IFLNK | 0o777, target.encode())


def char_device(name: str, major: int, minor: int, perm: int = 0o600) -> Entry:
    return Entry(name, stat.S_IFCHR | perm, rdev=(major, minor))


def _pad(out: BinaryIO, length: int) -> None:
    out.write(b"\0" * (-length % 4))


def _header(out: BinaryIO, ino: int, entry: Entry, size: int, name: bytes) -> None:
    fields = (
        ino,
        entry.mode,
        0,
        0,
        2 if stat.S_ISDIR(entry.mode) else 1,
        MTIME,
        size,
        0,
        0,
        entry.rdev[0],
        entry.rdev[1],
        len(name) + 1,
        0,
    )
    out.write(b"070701" + b"".join(b"%08X" % f for f in fields))
    out.write(name + b"\0")
    _pad(out, 110 + len(name) + 1)


def write(path: Path, entries: list[Entry]) -> None:
    """Write `entries` (parents are added when missing) as a newc archive, uncompressed."""
    by_name: dict[str, Entry] = {}
    for entry in entries:
        name = entry.name.strip("/")
        parts = name.split("/")
        for i in range(1, len(parts)):
            by_name.setdefault("/".join(parts[:i]), directory("/".join(parts[:i])))
        by_name[name] = Entry(name, entry.mode, entry.data, entry.rdev)
    with open(path, "wb") as out:
        for ino, name in enumerate(sorted(by_name), start=1):
            entry = by_name[name]
            data = entry.data if (stat.S_ISREG(entry.mode) or stat.S_ISLNK(entry.mode)) else b""
            _header(out, ino, entry, len(data), name.encode())
            out.write(data)
            _pad(out, len(data))
        _header(out, 0, Entry("TRAILER!!!", 0), 0, b"TRAILER!!!")
