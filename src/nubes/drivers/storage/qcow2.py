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
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nubes.drivers.storage.base import StorageCapabilities, StorageDriver, StorageError

_LAYER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_QCOW2_MAGIC = b"QFI\xfb"
GIB = 1 << 30
SECRET_ID = "nubes-key"


# qemu-img times PBKDF2 with the thread's CPU clock to pick the LUKS iteration count; where that
# clock ticks coarsely (a loaded machine), the first timing can read 0 ms and qemu gives up. The
# same command succeeds when run again, so it is, a bounded number of times.
PBKDF_TIMING_FAILED = "Unable to get accurate CPU usage"
PBKDF_ATTEMPTS = 5


def _qemu_img(*args: str, timeout: float = 120) -> str:
    for _ in range(PBKDF_ATTEMPTS):
        result = subprocess.run(
            ["qemu-img", *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode == 0:
            return result.stdout
        if PBKDF_TIMING_FAILED not in result.stderr:
            break
    raise StorageError(f"qemu-img {' '.join(args)}: {result.stderr.strip()[-500:]}")


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


def is_encrypted(path: Path) -> bool:
    """Whether a qcow2 file's header names an encryption method (crypt_method, bytes 32-35: 0 none,
    1 AES, 2 LUKS); read from the header directly, which works while a VM holds the file."""
    with open(path, "rb") as f:
        header = f.read(36)
    return len(header) == 36 and header[:4] == _QCOW2_MAGIC and struct.unpack(">I", header[32:36])[0] != 0


def _opt(value: str | Path) -> str:
    """A value inside QEMU's key=value,... option syntax: commas are doubled."""
    return str(value).replace(",", ",,")


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

    @contextmanager
    def _secret(self, key: str) -> Iterator[list[str]]:
        """The `--object secret` arguments that hand `key` to qemu-img: through a 0600 file in a
        0700 directory, removed afterwards, so the key is never on a command line (ps shows
        command lines to every user)."""
        keys_dir = self._dir / ".keys"
        keys_dir.mkdir(mode=0o700, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=keys_dir, prefix="key-")  # mkstemp makes it 0600
        try:
            with os.fdopen(fd, "w") as f:
                f.write(key)
            yield ["--object", f"secret,id={SECRET_ID},file={_opt(name)},format=raw"]
        finally:
            os.unlink(name)

    def _image_opts(self, path: Path) -> str:
        """`--image-opts` of an encrypted layer: the key for it and for each encrypted layer under
        it (QEMU opens a backing file with no key unless told; the encrypted layers of a chain
        are its top part, all under the one key of the disks' account)."""
        opts = [f"driver=qcow2,file.filename={_opt(path)}"]
        current: Path | None = path
        for depth in range(1000):
            if current is None or not current.exists() or not is_encrypted(current):
                break
            opts.append(f"{'backing.' * depth}encrypt.key-secret={SECRET_ID}")
            current = self._backing_path(current)
        return ",".join(opts)

    def _backing_path(self, path: Path) -> Path | None:
        backing = backing_file_name(path)
        if backing is None:
            return None
        return Path(backing) if os.path.isabs(backing) else path.parent / backing

    def encrypted(self, layer: str) -> bool:
        path = self.layer_path(layer)
        return path.exists() and is_encrypted(path)

    def _create(self, layer: str, size_gib: int, backing: str | None, key: str | None) -> Path:
        path = self.layer_path(layer)
        if path.exists():
            return path
        partial = path.with_suffix(".partial")
        args = ["create", "-q", "-f", "qcow2"]
        if backing is not None:
            # -u: do not open the backing file (a running VM may hold its lock); the size is given
            args += ["-u", "-b", backing, "-F", "qcow2"]
        if key is None:
            _qemu_img(*args, str(partial), f"{size_gib}G")
        else:
            with self._secret(key) as secret:
                # the key is 256 random bits, not a password: PBKDF stretching adds nothing, and
                # at its 2 s default every open (each VM start, each qemu-img call) would pay it
                luks = ["-o", f"encrypt.format=luks,encrypt.key-secret={SECRET_ID},encrypt.iter-time=10"]
                _qemu_img(*args, *secret, *luks, str(partial), f"{size_gib}G")
        os.replace(partial, path)
        return path

    def create_from_image(self, layer: str, base: Path, size_gib: int, key: str | None = None) -> Path:
        backing = self._stable_base(base)
        return self._create(layer, size_gib, str(backing.relative_to(self._dir)), key)

    def create_blank(self, layer: str, size_gib: int, key: str | None = None) -> Path:
        return self._create(layer, size_gib, None, key)

    def create_overlay(self, layer: str, backing: str, size_gib: int, key: str | None = None) -> Path:
        if not self.exists(backing):
            raise StorageError(f"layer {backing} is missing")
        if key is None and self.encrypted(backing):
            raise StorageError(f"layer {backing} is encrypted: a layer on it must be too")
        return self._create(layer, size_gib, self.layer_path(backing).name, key)

    def resize(self, layer: str, size_gib: int, key: str | None = None) -> None:
        path = self.layer_path(layer)
        if key is None:
            _qemu_img("resize", "-q", "-f", "qcow2", str(path), f"{size_gib}G")
            return
        with self._secret(key) as secret:
            _qemu_img("resize", "-q", *secret, "--image-opts", self._image_opts(path), f"{size_gib}G")

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
            under = self._backing_path(path)
            graph[path.stem] = under.stem if under is not None and under.parent == self._dir else None
        return graph

    def backing_name(self, layer: str) -> str | None:
        return backing_file_name(self.layer_path(layer))

    def rebase(self, layer: str, backing_name: str | None, key: str | None = None) -> None:
        if key is not None and self.encrypted(layer):
            self._rebase_encrypted(layer, backing_name, key)
            return
        # safe mode: reads the old and the new chain and writes the differing clusters into the layer.
        # qemu-img opens a relative new backing name relative to the image, as QEMU does.
        args = ["rebase", "-q", "-f", "qcow2", "-b", backing_name or ""]
        if backing_name:
            args += ["-F", "qcow2"]
        _qemu_img(*args, str(self.layer_path(layer)), timeout=3600)

    def _rebase_encrypted(self, layer: str, backing_name: str | None, key: str) -> None:
        """qemu-img rebase opens the new backing file with no key: onto an unencrypted one it
        works (given by its absolute path, as a keyed image has no file name to resolve a
        relative one against; the name is then written as the others are). Onto an encrypted
        one only the fold of the layer's own backing layer is done: that layer is committed
        into (it takes the layer's clusters and keeps its own backing) and then takes the
        layer's name. A crash in between leaves the layer on its old backing, whole, and the
        fold is done again."""
        path = self.layer_path(layer)
        new = self._dir / backing_name if backing_name else None
        with self._secret(key) as secret:
            if new is None or not new.exists() or not is_encrypted(new):
                absolute = ["-b", str(new), "-F", "qcow2"] if new is not None else ["-b", ""]
                opts = self._image_opts(path)
                _qemu_img("rebase", "-q", *secret, *absolute, "--image-opts", opts, timeout=3600)
                if backing_name:
                    relative = ["-b", backing_name, "-F", "qcow2"]
                    _qemu_img("rebase", "-q", "-u", *secret, *relative, "--image-opts", opts)
                return
            parent = self._backing_path(path)
            if parent is None or parent.parent != self._dir or backing_file_name(parent) != backing_name:
                raise StorageError(f"{layer}: an encrypted layer folds only its own backing layer")
            _qemu_img("commit", "-q", "-d", *secret, "--image-opts", self._image_opts(path), timeout=3600)
            os.replace(parent, path)

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
        if any(self.encrypted(name) for name in self.chain(layer)):
            raise StorageError(f"layer {layer} is encrypted: it is never written out in the clear")
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
