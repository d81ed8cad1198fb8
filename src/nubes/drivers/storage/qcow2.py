"""Disk layers as qcow2 files in one directory, with qemu-img.

Overlays name their backing file relative to their own directory (just `<stem>.qcow2`, or
`bases/<file>` for an image), so the directory can move. Image files are kept under
`bases/` as they were when a disk was made on them: a rebuilt image replaces its files, and
an overlay must keep the backing file it was made on."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

from nubes.drivers.storage.base import StorageCapabilities, StorageDriver, StorageError

_LAYER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_QCOW2_MAGIC = b"QFI\xfb"
GIB = 1 << 30


def _qemu_img(*args: str, timeout: float = 120) -> str:
    result = subprocess.run(["qemu-img", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise StorageError(f"qemu-img {' '.join(args)}: {result.stderr.strip()[-500:]}")
    return result.stdout


def backing_file_name(path: Path) -> str | None:
    """The backing file a qcow2 header names (as written), or None; read from the header
    directly, which works while a VM holds the file."""
    with open(path, "rb") as f:
        header = f.read(20)
        if len(header) < 20 or header[:4] != _QCOW2_MAGIC:
            return None
        offset, size = struct.unpack(">QI", header[8:20])
        if not offset or not size:
            return None
        f.seek(offset)
        return f.read(size).decode()


class Qcow2Storage(StorageDriver):
    def __init__(self, disks_dir: Path) -> None:
        self._dir = disks_dir
        self._dir.mkdir(parents=True, exist_ok=True)
        # downloads beside the layers: on the same file system as the layer they become
        self.capabilities = StorageCapabilities(layers_are_files=True, downloads_dir=disks_dir / "downloads")

    def layer_path(self, layer: str) -> Path:
        if not _LAYER_RE.fullmatch(layer):
            raise StorageError(f"bad layer name {layer!r}")
        return self._dir / f"{layer}.qcow2"

    def exists(self, layer: str) -> bool:
        return self.layer_path(layer).exists()

    def _stable_base(self, base: Path) -> Path:
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

    def _create(self, layer: str, size_gib: int, backing: str | None) -> Path:
        path = self.layer_path(layer)
        if path.exists():
            return path
        partial = path.with_suffix(".partial")
        args = ["create", "-q", "-f", "qcow2"]
        if backing is not None:
            # -u: do not open the backing file (a running VM may hold its lock); the size is given
            args += ["-u", "-b", backing, "-F", "qcow2"]
        _qemu_img(*args, str(partial), f"{size_gib}G")
        os.replace(partial, path)
        return path

    def create_from_image(self, layer: str, base: Path, size_gib: int) -> Path:
        backing = self._stable_base(base)
        return self._create(layer, size_gib, str(backing.relative_to(self._dir)))

    def create_blank(self, layer: str, size_gib: int) -> Path:
        return self._create(layer, size_gib, None)

    def create_overlay(self, layer: str, backing: str, size_gib: int) -> Path:
        if not self.exists(backing):
            raise StorageError(f"layer {backing} is missing")
        return self._create(layer, size_gib, self.layer_path(backing).name)

    def resize(self, layer: str, size_gib: int) -> None:
        _qemu_img("resize", "-q", "-f", "qcow2", str(self.layer_path(layer)), f"{size_gib}G")

    def chain(self, layer: str) -> list[str]:
        names: list[str] = []
        path = self.layer_path(layer)
        while path.exists() and path.parent == self._dir and len(names) < 1000:
            names.append(path.stem)
            backing = backing_file_name(path)
            if backing is None:
                break
            path = (self._dir / backing) if not os.path.isabs(backing) else Path(backing)
        return names

    def graph(self) -> dict[str, str | None]:
        graph: dict[str, str | None] = {}
        for path in self._dir.glob("*.qcow2"):
            backing = backing_file_name(path)
            under = self._dir / backing if backing and not os.path.isabs(backing) else None
            graph[path.stem] = under.stem if under is not None and under.parent == self._dir else None
        return graph

    def backing_name(self, layer: str) -> str | None:
        return backing_file_name(self.layer_path(layer))

    def rebase(self, layer: str, backing_name: str | None) -> None:
        # safe mode: reads the old and the new chain and writes the differing clusters into the layer.
        # qemu-img opens a relative new backing name relative to the image, as QEMU does.
        args = ["rebase", "-q", "-f", "qcow2", "-b", backing_name or ""]
        if backing_name:
            args += ["-F", "qcow2"]
        _qemu_img(*args, str(self.layer_path(layer)), timeout=3600)

    def delete(self, layer: str) -> None:
        for path in (self.layer_path(layer), self.layer_path(layer).with_suffix(".partial")):
            path.unlink(missing_ok=True)

    def collect(self, keep: set[str], among: set[str] | None = None) -> list[str]:
        needed: set[str] = set()
        for layer in keep:
            needed.update(self.chain(layer))
        removed = []
        for path in self._dir.glob("*.qcow2"):
            if path.stem not in needed and (among is None or path.stem in among):
                path.unlink(missing_ok=True)
                removed.append(path.stem)
        return removed

    def export(self, layer: str, dest: Path, fmt: str) -> None:
        partial = dest.with_name(dest.name + ".partial")
        # VHD rounds the size up to its geometry unless told to keep it (a re-import would grow)
        options = ["-o", "force_size=on"] if fmt == "vpc" else []
        _qemu_img(
            "convert",
            "-q",
            "-U",
            "-f",
            "qcow2",
            "-O",
            fmt,
            *options,
            str(self.layer_path(layer)),
            str(partial),
            timeout=3600,
        )
        os.replace(partial, dest)

    def import_file(self, layer: str, source: Path, fmt: str) -> int:
        path = self.layer_path(layer)
        if not path.exists():
            partial = path.with_suffix(".partial")
            _qemu_img("convert", "-q", "-f", fmt, "-O", "qcow2", str(source), str(partial), timeout=3600)
            os.replace(partial, path)
        info = _qemu_img("info", "-U", "--output=json", str(path))
        return max(1, math.ceil(int(json.loads(info)["virtual-size"]) / GIB))
