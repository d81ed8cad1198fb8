"""What a built system image is: its files, how to boot it, and how ECS describes it."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_FILE = "manifest.json"
READY_MARKER = "NUBES-READY"
USER_DATA_MARKER = "NUBES-USERDATA"


@dataclass(frozen=True)
class ImageManifest:
    """One built image, as `<images_dir>/<name>/manifest.json` records it.

    Boot it with `Boot(kernel=dir/kernel, initrd=dir/initrd, cmdline=cmdline)` and the
    system disk an overlay (`qemu-img create -f qcow2 -b dir/rootfs -F qcow2`) grown to at
    least `size_gib`, attached as the FIRST virtio-blk disk (the guest mounts /dev/vda).

    `cmdline` is complete, including `root=/dev/vda` and `console=ttyS0`: pass it as is. A
    host may append host-specific arguments (e.g. `tsc_early_khz=` for microvm under TCG).

    When the guest has applied its metadata it prints one line on ttyS0:
    `NUBES-READY instance-id=<id>` (`ready_marker`); a `#!` user-data script then runs in the
    background (once per instance-id) and its end is printed as
    `NUBES-USERDATA instance-id=<id> exit=<status>`."""

    image_id: str  # ECS style: debian_12_x64_20G_nubes_20261126.vhd
    name: str  # "tiny" | "debian-12"
    os_name: str  # "Debian 12 64位"
    os_name_en: str  # "Debian 12 64 bit"
    platform: str  # "Debian" | "Others Linux"
    os_type: str  # "linux"
    architecture: str  # "x86_64"
    image_family: str
    size_gib: int  # virtual size of the system disk image (the smallest system disk)
    kernel: str  # file names, relative to the image's directory
    initrd: str
    rootfs: str  # qcow2
    cmdline: str
    ready_marker: str
    login: str  # "ssh" (sshd with the metadata's keys) | "console" (serial console only)
    built_at: str  # ISO 8601, UTC
    builder_version: str  # a build is reused while this matches the builder's
    kernel_version: str = ""  # uname -r of the guest kernel, e.g. 6.1.0-56-amd64

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageManifest:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_json(cls, text: str) -> ImageManifest:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError("an image manifest is a JSON object")
        return cls.from_dict(data)

    def path(self, images_dir: Path, member: str) -> Path:
        """The absolute path of `kernel`, `initrd` or `rootfs` (the attribute's name)."""
        value = getattr(self, member)
        if member not in ("kernel", "initrd", "rootfs") or not isinstance(value, str):
            raise ValueError(f"not an image file: {member}")
        return images_dir / self.name / value


def load_manifest(images_dir: Path, name: str) -> ImageManifest | None:
    """The manifest of the image built under `images_dir/<name>/`, or None if there is none
    (or it is unreadable, or one of its files is missing)."""
    path = Path(images_dir) / name / MANIFEST_FILE
    try:
        manifest = ImageManifest.from_json(path.read_text())
    except (OSError, ValueError, TypeError):
        return None
    for member in (manifest.kernel, manifest.initrd, manifest.rootfs):
        if not (path.parent / member).is_file():
            return None
    return manifest
