"""Disk layers that exist only in memory: the emulator mode and scale tests."""

from __future__ import annotations

from pathlib import Path

from nubes.drivers.storage.base import StorageDriver, StorageError


class FakeStorage(StorageDriver):
    real_files = False

    def __init__(self) -> None:
        self.layers: dict[str, tuple[int, str | None]] = {}  # layer -> (size GiB, backing layer)

    def layer_path(self, layer: str) -> Path:
        return Path("/nonexistent/nubes-fake") / f"{layer}.qcow2"

    def exists(self, layer: str) -> bool:
        return layer in self.layers

    def create_from_image(self, layer: str, base: Path, size_gib: int) -> Path:
        self.layers.setdefault(layer, (size_gib, None))
        return self.layer_path(layer)

    def create_blank(self, layer: str, size_gib: int) -> Path:
        self.layers.setdefault(layer, (size_gib, None))
        return self.layer_path(layer)

    def create_overlay(self, layer: str, backing: str, size_gib: int) -> Path:
        if backing not in self.layers:
            raise StorageError(f"layer {backing} is missing")
        self.layers.setdefault(layer, (size_gib, backing))
        return self.layer_path(layer)

    def resize(self, layer: str, size_gib: int) -> None:
        _, backing = self.layers[layer]
        self.layers[layer] = (size_gib, backing)

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

    def rebase(self, layer: str, backing_name: str | None) -> None:
        size, _ = self.layers[layer]
        self.layers[layer] = (size, backing_name.removesuffix(".qcow2") if backing_name else None)

    def delete(self, layer: str) -> None:
        self.layers.pop(layer, None)

    def collect(self, keep: set[str]) -> list[str]:
        needed = {name for layer in keep for name in self.chain(layer)}
        removed = [name for name in self.layers if name not in needed]
        for name in removed:
            del self.layers[name]
        return removed

    def export(self, layer: str, dest: Path, fmt: str) -> None:
        if layer not in self.layers:
            raise StorageError(f"layer {layer} is missing")

    def import_file(self, layer: str, source: Path, fmt: str) -> int:
        if not source.exists():
            raise StorageError(f"{source} does not exist")
        size = max(1, -(-source.stat().st_size // (1 << 30)))
        self.layers.setdefault(layer, (size, None))
        return size
