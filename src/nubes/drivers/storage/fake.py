"""Disk layers without disk content: the emulator mode and scale tests.

A layer is its size and the layer under it. In memory only by default (tests, scale tests);
with a `state_dir` (the emulator) each layer is also a small JSON file there, written as a
qcow2 header would be, so layers outlive the process as the real driver's files do. Layers
are no files (`capabilities.layers_are_files` is False): `layer_path` names a path that does
not exist, and a live block stream in a (fake) VM is told to the driver with `rebase`.
Downloads go to `state_dir/downloads` (without one, to nubes-downloads in the temporary directory)."""

from __future__ import annotations

import hashlib
import tempfile
import threading
from pathlib import Path

from nubes.drivers import statefile
from nubes.drivers.storage.base import StorageCapabilities, StorageDriver, StorageError


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class FakeStorage(StorageDriver):
    def __init__(self, state_dir: Path | None = None) -> None:
        self.capabilities = StorageCapabilities(
            layers_are_files=False,
            downloads_dir=state_dir / "downloads"
            if state_dir
            else Path(tempfile.gettempdir()) / "nubes-downloads",
        )
        self._state_dir = state_dir
        self._lock = threading.RLock()  # one writer per layer file at a time
        self.layers: dict[str, tuple[int, str | None]] = {}  # layer -> (size GiB, backing layer)
        # encrypted layer -> a digest of its key (never the key: the state files are plain JSON)
        self.keys: dict[str, str] = {}
        if state_dir is not None:
            for name, row in statefile.read_all(state_dir).items():
                self.layers[name] = (int(row["size_gib"]), row.get("backing"))
                if row.get("key"):
                    self.keys[name] = str(row["key"])

    def _set(self, layer: str, size_gib: int, backing: str | None) -> None:
        with self._lock:
            self.layers[layer] = (size_gib, backing)
            if self._state_dir is not None:
                row: dict[str, object] = {"size_gib": size_gib, "backing": backing}
                if layer in self.keys:
                    row["key"] = self.keys[layer]
                statefile.write_json(self._state_dir / f"{layer}.json", row)

    def _make(self, layer: str, size_gib: int, backing: str | None, key: str | None = None) -> None:
        """Create it unless it exists (creates are idempotent: an existing layer is kept)."""
        with self._lock:
            if layer not in self.layers:
                if key is not None:
                    self.keys[layer] = _digest(key)
                self._set(layer, size_gib, backing)

    def _check_key(self, layer: str, key: str | None) -> None:
        """An encrypted layer opens with its own key only (as LUKS would refuse another)."""
        if layer in self.keys and self.keys[layer] != (_digest(key) if key is not None else None):
            raise StorageError(f"layer {layer} is encrypted: wrong or missing key")

    def layer_path(self, layer: str) -> Path:
        return Path("/nonexistent/nubes-fake") / f"{layer}.qcow2"

    def exists(self, layer: str) -> bool:
        return layer in self.layers

    def create_from_image(self, layer: str, base: Path, size_gib: int, key: str | None = None) -> Path:
        self._make(layer, size_gib, None, key)
        return self.layer_path(layer)

    def create_blank(self, layer: str, size_gib: int, key: str | None = None) -> Path:
        self._make(layer, size_gib, None, key)
        return self.layer_path(layer)

    def create_overlay(self, layer: str, backing: str, size_gib: int, key: str | None = None) -> Path:
        if backing not in self.layers:
            raise StorageError(f"layer {backing} is missing")
        if key is None and backing in self.keys:
            raise StorageError(f"layer {backing} is encrypted: a layer on it must be too")
        self._make(layer, size_gib, backing, key)
        return self.layer_path(layer)

    def encrypted(self, layer: str) -> bool:
        return layer in self.keys

    def resize(self, layer: str, size_gib: int, key: str | None = None) -> None:
        self._check_key(layer, key)
        _, backing = self.layers[layer]
        self._set(layer, size_gib, backing)

    def chain(self, layer: str) -> list[str]:
        names: list[str] = []
        current: str | None = layer
        while current is not None and current in self.layers:
            names.append(current)
            current = self.layers[current][1]
        return names

    def graph(self) -> dict[str, str | None]:
        return {name: backing for name, (_, backing) in self.layers.items()}

    def backing_name(self, layer: str) -> str | None:
        backing = self.layers[layer][1]
        return f"{backing}.qcow2" if backing is not None else None

    def rebase(self, layer: str, backing_name: str | None, key: str | None = None) -> None:
        self._check_key(layer, key)
        size, _ = self.layers[layer]
        self._set(layer, size, backing_name.removesuffix(".qcow2") if backing_name else None)

    def delete(self, layer: str) -> None:
        with self._lock:
            self.layers.pop(layer, None)
            self.keys.pop(layer, None)
            if self._state_dir is not None:
                statefile.remove(self._state_dir / f"{layer}.json")

    def collect(self, keep: set[str], among: set[str] | None = None) -> list[str]:
        with self._lock:
            needed = {name for layer in keep for name in self.chain(layer)}
            removed = [
                name for name in self.layers if name not in needed and (among is None or name in among)
            ]
            for name in removed:
                self.delete(name)
            return removed

    def export(self, layer: str, dest: Path, fmt: str) -> None:
        if layer not in self.layers:
            raise StorageError(f"layer {layer} is missing")
        if any(name in self.keys for name in self.chain(layer)):
            raise StorageError(f"layer {layer} is encrypted: it is never written out in the clear")

    def import_file(self, layer: str, source: Path, fmt: str) -> int:
        if not source.exists():
            raise StorageError(f"{source} does not exist")
        size = max(1, -(-source.stat().st_size // (1 << 30)))
        self._make(layer, size, None)
        return size
