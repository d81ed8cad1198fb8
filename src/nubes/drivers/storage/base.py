"""The storage driver contract: disk layers on a host (qcow2 files, or nothing in the fake).

A disk is a stack of copy-on-write layers. Its top layer is the one it reads and writes; a
snapshot freezes the top and puts a new, empty overlay on it, so snapshots, disks made from
snapshots and resets all take constant time whatever the disk holds. A layer is named by a
stem (a disk id at first, `<disk>.<snapshot>` for the overlay made by a snapshot, ...); the
store records which layer each disk and snapshot uses, and `collect` removes the layers no
longer needed by any of them. Every method is idempotent.

Encryption: the creates, `resize` and `rebase` take the `key` (a passphrase, from the agent) of an
encrypted disk; a layer made with one is encrypted with it (LUKS in qcow2) and every layer made
on an encrypted layer must be encrypted too, with the same key, so a chain's encrypted layers are
its top part. An encrypted layer is never exported (`export` raises StorageError).

What differs between drivers is declared in `capabilities` (a `StorageCapabilities`); the
agent reads those and never asks which driver it has."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path


class StorageError(Exception):
    """A disk file operation failed."""


@dataclass(frozen=True)
class StorageCapabilities:
    """What differs between storage drivers, for the agent to read instead of asking which
    driver it has."""

    # Each layer is the file at `layer_path`, which VMs open: what a VM's block job writes into
    # it (`ComputeDriver.stream_layer` rewriting its backing) the driver sees at once. False: the
    # driver keeps records of its layers only, and whoever changes a layer through a VM tells
    # the driver too (`rebase`).
    layers_are_files: bool
    # A directory of this host, owned by the driver, for the files fetched for it (an image
    # imported from a URL, before `import_file`); made by whoever puts a file there.
    downloads_dir: Path


class StorageDriver(ABC):
    capabilities: StorageCapabilities

    @abstractmethod
    def layer_path(self, layer: str) -> Path:
        """Where the layer's file lives on this host."""

    @abstractmethod
    def exists(self, layer: str) -> bool: ...

    @abstractmethod
    def create_from_image(self, layer: str, base: Path, size_gib: int, key: str | None = None) -> Path:
        """A layer backed by an image file `base` (copy-on-write), `size_gib` big, encrypted with
        `key` if given. Exists: kept."""

    @abstractmethod
    def create_blank(self, layer: str, size_gib: int, key: str | None = None) -> Path:
        """An empty layer of `size_gib`, encrypted with `key` if given. Exists already: kept."""

    @abstractmethod
    def create_overlay(self, layer: str, backing: str, size_gib: int, key: str | None = None) -> Path:
        """An empty layer on top of layer `backing`, `size_gib` big, encrypted with `key` if given
        (required when `backing` is encrypted: StorageError without). Never opens `backing` (a
        running VM may hold it), so it takes constant time. Exists already: kept."""

    @abstractmethod
    def encrypted(self, layer: str) -> bool:
        """Whether the layer is encrypted (False when there is no such layer)."""

    @abstractmethod
    def resize(self, layer: str, size_gib: int, key: str | None = None) -> None:
        """Grow a layer no VM has open to `size_gib` (`key`: the key of an encrypted one)."""

    @abstractmethod
    def chain(self, layer: str) -> list[str]:
        """The layer and the layers under it, top first (image files excluded)."""

    @abstractmethod
    def graph(self) -> dict[str, str | None]:
        """Every layer of this host and the layer under it (None: none, or an image file)."""

    @abstractmethod
    def backing_name(self, layer: str) -> str | None:
        """What the layer names as its backing file, as written (relative to the layers' directory)."""

    @abstractmethod
    def rebase(self, layer: str, backing_name: str | None, key: str | None = None) -> None:
        """Put a layer no VM has open on another backing file (or none), copying into it what it
        read through the layers it drops, so it shows the same content. An encrypted layer
        (`key` given) goes onto an unencrypted backing file, or onto its own backing layer's
        backing (the fold of that layer), and onto no other."""

    @abstractmethod
    def delete(self, layer: str) -> None:
        """Remove the layer's file; succeeds if there is none."""

    @abstractmethod
    def collect(self, keep: set[str], among: set[str] | None = None) -> list[str]:
        """Remove every layer that is neither in `keep` nor under one of them; return their names.
        With `among`, only layers named there may go: a caller lists the layers before it reads
        what to keep, so a layer made in between (its owner not yet recorded) is never removed."""

    @abstractmethod
    def export(self, layer: str, dest: Path, fmt: str) -> None:
        """Write the content the layer shows (its whole chain, flattened) to `dest` as `fmt`
        (qcow2 | raw | vpc). A chain with an encrypted layer: StorageError (never in the clear)."""

    @abstractmethod
    def import_file(self, layer: str, source: Path, fmt: str) -> int:
        """Make a standalone layer from an image file of format `fmt`; return its virtual size in GiB."""
