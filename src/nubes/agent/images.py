"""System images on a host: register the ones built, list the missing ones as Creating and build
them in the background, and tell the compute and storage parts of the agent which files boot an
image."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nubes.domain.images import CREATE_FAILED, CREATING, Images, SystemImage
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


def _planned_image(name: str, image_id: str | None, today: dt.date) -> SystemImage:
    """How image `name` is listed while it is built: as its build will describe it, under the ID
    it was planned with, or the one a build finished today gets. (A build that ends on a later
    day is registered under its own ID and supersedes the plan, whose instances still boot.)"""
    from nubes.guest.images.build import SPECS

    spec = SPECS[name]
    return SystemImage(
        image_id=image_id or spec.image_id.format(date=today.strftime("%Y%m%d")),
        name=spec.name,
        family=spec.image_family,
        os_name=spec.os_name,
        os_name_en=spec.os_name_en,
        os_type="linux",
        platform=spec.platform,
        architecture="x86_64",
        size_gib=spec.size_gib,
        artifact=spec.name,
        description=f"{spec.os_name_en}, built by nubes from Debian packages",
    )


class ImageService:
    """The system images of this host. `register` lists every one at once: those built as
    Available, the missing ones (when a build follows) as Creating at 0%, so that clients see
    them and may launch from them from the first request; `build` then makes them Available,
    or CreateFailed (the compute agent releases the instances that waited for one that failed).

    In the emulator (`fake`) nothing is built: the images are Available at once, unless
    `fake_build_seconds` asks to emulate a build of that length (to try a client's handling of
    a fresh server; the API tests use it)."""

    def __init__(
        self,
        images: Images,
        images_dir: Path,
        fake: bool,
        fake_build_seconds: float = 0.0,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self._images = images
        self.images_dir = images_dir
        self._fake = fake
        self._fake_build_seconds = fake_build_seconds
        self._notify = notify  # an image became usable, or failed: the agent steps its instances
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.progress: dict[str, tuple[str, float]] = {}

    def register(self, plan: bool = True) -> list[SystemImage]:
        """Register what exists and, with `plan`, list what is missing as Creating: the images
        to build. Without `plan` nothing will build them, so they are not listed."""
        if self._fake:
            return self._register_fake(plan)
        from nubes.guest.images import IMAGE_NAMES
        from nubes.guest.images.manifest import load_manifest

        missing = []
        for name in IMAGE_NAMES:
            manifest = load_manifest(self.images_dir, name)
            if manifest is not None:
                self._images.register_system(_system_image(manifest))
            elif plan:
                # the ID an earlier start planned, if its build did not finish: instances wait on it
                image = _planned_image(
                    name, self._images.planned_system(name), dt.datetime.now(dt.UTC).date()
                )
                self._images.plan_system(image)
                missing.append(image)
        return missing

    def _register_fake(self, plan: bool) -> list[SystemImage]:
        missing = []
        for image in FAKE_IMAGES:
            row = self._images.get(image.image_id)
            built = row is not None and row.status != CREATING
            if plan and self._fake_build_seconds > 0 and not built:
                self._images.plan_system(image)
                missing.append(image)
            else:
                self._images.register_system(image)
        # built in the real builder's order (IMAGE_NAMES: the small tiny image first)
        return sorted(missing, key=lambda i: i.size_gib)

    def build(self, images: list[SystemImage]) -> None:
        """Build each image in turn, and record the outcome in the store: one that fails is
        CreateFailed, and the others are still built."""
        for image in images:
            try:
                self._build_one(image)
            except Exception:
                log.exception("building the system image %s failed; `nubes images build` retries", image.name)
                self._images.set_status(image.image_id, CREATE_FAILED, self._percent(image.name))
            if self._notify is not None:
                self._notify(image.image_id)

    def _build_one(self, image: SystemImage) -> None:
        shown = [-1]

        def progress(step: str, fraction: float) -> None:
            self.progress[image.name] = (step, fraction)
            percent = self._percent(image.name)
            if percent != shown[0]:  # one write per percent, not per report
                shown[0] = percent
                self._images.set_status(image.image_id, CREATING, percent)

        if self._fake:
            if not self._fake_build(progress):
                return  # stopped: still Creating, as a real build killed by a stop leaves it
            self._images.register_system(image)
        else:
            from nubes.guest.images import build_image

            manifest = build_image(image.name, self.images_dir, progress)
            self._images.register_system(_system_image(manifest))
            log.info("image %s built: %s", image.name, manifest.image_id)

    def _percent(self, name: str) -> int:
        """The build's progress as ECS shows it while Creating: 0 to 99 (100 is Available)."""
        _, fraction = self.progress.get(name, ("", 0.0))
        return max(0, min(99, int(fraction * 100)))

    def _fake_build(self, progress: Callable[[str, float], None]) -> bool:
        """The emulator's build: nothing to make, only the time it takes, in ten steps. False
        when the server stopped first."""
        steps = 10
        for done in range(steps):
            progress("emulated build", done / steps)
            if self._stop.wait(self._fake_build_seconds / steps):
                return False
        progress("emulated build", 1.0)
        return True

    def build_in_background(self, images: list[SystemImage]) -> None:
        if not images:
            return
        self._thread = threading.Thread(
            target=self.build, args=(images,), name="nubes-image-builder", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop an emulated build (a real one cannot be interrupted: a restart builds again)."""
        self._stop.set()

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
