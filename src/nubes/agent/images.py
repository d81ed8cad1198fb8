"""System images on a host: register the ones built, build the missing ones in the background,
and tell the compute and storage parts of the agent which files boot an image."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from nubes.domain.images import Images, SystemImage
from nubes.store.models import Image

log = logging.getLogger("nubes.images")

# The emulator mode's images: what the real builders make, without files.
FAKE_IMAGES = (
    SystemImage(
        "debian_12_x64_20G_nubes_20261126.vhd",
        "debian-12",
        "nubes:debian_12_x64",
        "Debian 12 64位",
        "Debian 12 64 bit",
        "linux",
        "Debian",
        "x86_64",
        20,
        "fake",
    ),
    SystemImage(
        "nubes_tiny_x64_1G_busybox_20261126.vhd",
        "tiny",
        "nubes:tiny_x64",
        "Nubes Tiny (BusyBox) 64位",
        "Nubes Tiny (BusyBox) 64 bit",
        "linux",
        "Others Linux",
        "x86_64",
        1,
        "fake",
    ),
)


@dataclass(frozen=True)
class BootFiles:
    kernel: Path
    initrd: Path
    rootfs: Path
    cmdline: str


def _system_image(manifest: object) -> SystemImage:
    from nubes.guest.images.manifest import ImageManifest

    assert isinstance(manifest, ImageManifest)
    return SystemImage(
        image_id=manifest.image_id,
        name=manifest.name,
        family=manifest.image_family,
        os_name=manifest.os_name,
        os_name_en=manifest.os_name_en,
        os_type=manifest.os_type,
        platform=manifest.platform,
        architecture=manifest.architecture,
        size_gib=manifest.size_gib,
        artifact=manifest.name,
        description=f"{manifest.os_name_en}, built by nubes from Debian packages",
    )


class ImageService:
    def __init__(self, images: Images, images_dir: Path, fake: bool) -> None:
        self._images = images
        self.images_dir = images_dir
        self._fake = fake
        self._thread: threading.Thread | None = None
        self.progress: dict[str, tuple[str, float]] = {}

    def register(self) -> list[str]:
        """Register what exists; the names that still need a build."""
        if self._fake:
            for image in FAKE_IMAGES:
                self._images.register_system(image)
            return []
        from nubes.guest.images import IMAGE_NAMES
        from nubes.guest.images.manifest import load_manifest

        missing = []
        for name in IMAGE_NAMES:
            manifest = load_manifest(self.images_dir, name)
            if manifest is None:
                missing.append(name)
            else:
                self._images.register_system(_system_image(manifest))
        return missing

    def build(self, names: list[str]) -> None:
        from nubes.guest.images import build_image

        for name in names:

            def progress(step: str, fraction: float, name: str = name) -> None:
                self.progress[name] = (step, fraction)

            manifest = build_image(name, self.images_dir, progress)
            self._images.register_system(_system_image(manifest))
            log.info("image %s built: %s", name, manifest.image_id)

    def build_in_background(self, names: list[str]) -> None:
        if not names:
            return

        def run() -> None:
            try:
                self.build(names)
            except Exception:
                log.exception("building the system images failed; `nubes images build` retries")

        self._thread = threading.Thread(target=run, name="nubes-image-builder", daemon=True)
        self._thread.start()

    def boot_files(self, image: Image) -> BootFiles:
        if self._fake or image.artifact == "fake":
            nowhere = Path("/nonexistent/nubes-fake-image")
            return BootFiles(nowhere / "vmlinux", nowhere / "initrd", nowhere / "root.qcow2", "")
        from nubes.guest.images.manifest import load_manifest

        manifest = load_manifest(self.images_dir, image.artifact)
        if manifest is None:
            raise FileNotFoundError(f"the image {image.id} ({image.artifact}) is not built on this host")
        return BootFiles(
            kernel=manifest.path(self.images_dir, "kernel"),
            initrd=manifest.path(self.images_dir, "initrd"),
            rootfs=manifest.path(self.images_dir, "rootfs"),
            cmdline=manifest.cmdline,
        )

    def rootfs(self, image: Image) -> Path:
        """The image file (root file system) a system disk of `image` is made on."""
        return self.boot_files(image).rootfs
