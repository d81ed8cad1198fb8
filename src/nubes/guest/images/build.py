"""Building the system images, and keeping them: a build is reused while the builder that
made it is the same (`builder_version`), so `build_image` is also the cache lookup."""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nubes.guest.images import guestfiles, kernel, rootfs
from nubes.guest.images.manifest import MANIFEST_FILE, READY_MARKER, ImageManifest, load_manifest
from nubes.guest.images.proc import ImageBuildError

IMAGE_NAMES = ("tiny", "debian-12")
BUILDER_EPOCH = "1"  # bump to rebuild every image (the builder's own source is hashed in too)
CACHE_DIR = "cache"  # under images_dir: downloaded .debs, the unpacked kernel, debootstrap trees

Progress = Callable[[str, float], None]

# The kernel command line of both images: the consoles (the screen's tty0, then the serial
# port, last so that it is /dev/console: the console log and the ready marker), the root file system, a quiet
# boot (each console line costs time under emulation), and no boot-time self-tests of the
# crypto algorithms (0.2 s under TCG; cryptomgr.notests, and the one CTR-KDF test that
# ignores it). Hosts may append to it (e.g. tsc_early_khz= on microvm).
CMDLINE = "console=tty0 console=ttyS0,115200 root=/dev/vda rw quiet cryptomgr.notests initcall_blacklist=crypto_kdf108_init"


@dataclass(frozen=True)
class ImageSpec:
    name: str
    size_gib: int
    os_name: str
    os_name_en: str
    platform: str
    image_family: str
    image_id: str  # with {date}
    login: str
    label: str


SPECS = {
    "tiny": ImageSpec(
        name="tiny",
        size_gib=1,
        os_name="Nubes Tiny (BusyBox) 64位",
        os_name_en="Nubes Tiny (BusyBox) 64 bit",
        platform="Others Linux",
        image_family="nubes:tiny_x64",
        image_id="nubes_tiny_x64_1G_busybox_{date}.vhd",
        login="console",
        label="tiny-root",
    ),
    "debian-12": ImageSpec(
        name="debian-12",
        size_gib=20,
        os_name="Debian 12 64位",
        os_name_en="Debian 12 64 bit",
        platform="Debian",
        image_family="nubes:debian_12_x64",
        image_id="debian_12_x64_20G_nubes_{date}.vhd",
        login="ssh",
        label="debian-root",
    ),
}


def _source_hash() -> str:
    """The builder's code (this package): any change to it makes new images."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def builder_version(name: str) -> str:
    """Changes whenever what the builder puts into image `name` may change: its code, the
    guest files, the image's spec, the kernel package it follows."""
    h = hashlib.sha256()
    parts = [
        BUILDER_EPOCH,
        _source_hash(),
        guestfiles.fingerprint(),
        CMDLINE,
        repr(SPECS[name]),
        kernel.KERNEL_METAPACKAGE,
    ]
    for part in parts:
        h.update(part.encode() + b"\0")
    return f"{BUILDER_EPOCH}.{h.hexdigest()[:12]}"


class _Steps:
    """Progress over weighted steps: `step(label)` starts one, `sub(detail, f)` reports a
    fraction `f` of the current one, `done()` reports 100%."""

    def __init__(self, progress: Progress | None, name: str, weights: dict[str, float]) -> None:
        self.progress = progress
        self.name = name
        total = sum(weights.values())
        self.starts: dict[str, tuple[float, float]] = {}
        at = 0.0
        for label, weight in weights.items():
            self.starts[label] = (at / total, weight / total)
            at += weight
        self.label = ""

    def step(self, label: str) -> None:
        self.label = label
        self.sub("", 0.0)

    def sub(self, detail: str, fraction: float) -> None:
        if self.progress is not None:
            start, width = self.starts[self.label]
            text = f"{self.name}: {self.label}" + (f": {detail}" if detail else "")
            self.progress(text, min(1.0, start + width * max(0.0, min(fraction, 1.0))))

    def done(self, label: str) -> None:
        if self.progress is not None:
            self.progress(f"{self.name}: {label}", 1.0)


@contextmanager
def _lock(images_dir: Path, name: str) -> Iterator[None]:
    """An exclusive lock on `images_dir/.<name>.lock` (flock: released if the process dies)."""
    with open(images_dir / f".{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def build_image(name: str, images_dir: Path, progress: Progress | None = None) -> ImageManifest:
    """Build image `name` into `images_dir/<name>/`, or return the build already there if the
    same builder made it. The build happens in a temporary directory beside it and replaces
    the old one by renames. Needs root (debootstrap, device nodes, file owners).

    The image's files are replaced (new inodes) by a rebuild: a user of the files that must
    outlive a rebuild (a qcow2 overlay's backing file) should hard-link them first."""
    if name not in SPECS:
        raise ValueError(f"unknown image {name!r}; known: {', '.join(IMAGE_NAMES)}")
    images_dir = Path(images_dir).absolute()
    images_dir.mkdir(parents=True, exist_ok=True)
    version = builder_version(name)
    existing = load_manifest(images_dir, name)
    if existing is not None and existing.builder_version == version:
        if progress is not None:
            progress(f"{name}: up to date", 1.0)
        return existing
    if os.geteuid() != 0:
        raise ImageBuildError(
            f"building the {name} image needs root (debootstrap, file owners, device nodes)"
        )
    # one build at a time per images_dir (the builds share the download cache), across processes
    with _lock(images_dir, "build"):
        existing = load_manifest(images_dir, name)
        if existing is not None and existing.builder_version == version:
            if progress is not None:
                progress(f"{name}: up to date", 1.0)
            return existing
        for stale in images_dir.glob(f".{name}.build-*"):  # left by a build that died
            shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(dir=images_dir, prefix=f".{name}.build-"))
        try:
            out = work / "image"
            out.mkdir()
            manifest = _build(SPECS[name], images_dir / CACHE_DIR, work, out, version, progress)
            (out / MANIFEST_FILE).write_text(manifest.to_json())
            target = images_dir / name
            if target.exists():
                target.rename(work / "old")
            out.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return manifest


def _build(
    spec: ImageSpec, cache: Path, work: Path, out: Path, version: str, progress: Progress | None
) -> ImageManifest:
    # weights: about the seconds each step takes on a cold build
    if spec.name == "debian-12":
        weights: dict[str, float] = {
            "kernel": 5,
            "busybox": 1,
            "initramfs": 1,
            "debootstrap": 30,
            "root file system": 2,
            "disk image": 2,
        }
    else:
        weights = {"kernel": 5, "busybox": 1, "initramfs": 1, "root file system": 0.2, "disk image": 0.3}
    steps = _Steps(progress, spec.name, weights)
    cache.mkdir(parents=True, exist_ok=True)

    steps.step("kernel")
    k = kernel.prepare(cache)
    kernel_file = "vmlinux" if k.pvh else "vmlinuz"
    _link_or_copy(k.image, out / kernel_file)

    steps.step("busybox")
    bb, applets = rootfs.busybox(cache, work)

    steps.step("initramfs")
    rootfs.build_initramfs(out / "initrd.img", k, bb, applets)

    tree = work / "rootfs"
    if spec.name == "tiny":
        steps.step("root file system")
        tree.mkdir()
        rootfs.tiny_tree(tree, bb, applets, k, spec.size_gib)
    else:
        steps.step("debootstrap")
        base = rootfs.debootstrap_tree(cache, steps.sub)
        steps.step("root file system")
        rootfs.copy_tree(base, tree)
        rootfs.debian_tree(tree, k, rootfs.debian_mirror(), spec.size_gib)

    steps.step("disk image")
    rootfs.make_disk(tree, out / "rootfs.qcow2", spec.size_gib, spec.label)
    shutil.rmtree(tree)

    now = dt.datetime.now(dt.UTC)
    manifest = ImageManifest(
        image_id=spec.image_id.format(date=now.strftime("%Y%m%d")),
        name=spec.name,
        os_name=spec.os_name,
        os_name_en=spec.os_name_en,
        platform=spec.platform,
        os_type="linux",
        architecture="x86_64",
        image_family=spec.image_family,
        size_gib=spec.size_gib,
        kernel=kernel_file,
        initrd="initrd.img",
        rootfs="rootfs.qcow2",
        cmdline=CMDLINE,
        ready_marker=READY_MARKER,
        login=spec.login,
        built_at=now.isoformat(timespec="seconds"),
        builder_version=version,
        kernel_version=k.version,
    )
    steps.done("built")
    return manifest
