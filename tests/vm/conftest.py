"""Fixtures for tests that boot real VMs (marked `vm`).

Session fixtures (stable; other VM tests build on them):

- `images_dir` -> Path: where the images are built and cached across test runs:
  `/var/cache/nubes-test/images`, or `$NUBES_TEST_IMAGES`. Asking for it (or for anything
  below) skips the test when the host cannot boot VMs (not root, no qemu-system-x86_64 /
  qemu-img / socat / ssh) — except under CI=1, where that is a failure.
- `tiny_image` -> ImageManifest: the tiny image (busybox; console login only), built on
  first use and reused while the builder is unchanged (`build_image` is the cache).
- `debian_image` -> ImageManifest: the Debian 12 image (sshd), likewise.
  A file of an image: `manifest.path(images_dir, "kernel" | "initrd" | "rootfs")`.
- `ssh_key` -> helpers.SshKey: an ed25519 key pair for logging in to guests.
- `boot_timings` -> dict[str, list[float]]: record boot times under a label; they are
  printed at the end of the run ("VM boot times", by tests/conftest.py).

Function fixture:

- `vm_workdir` -> Path: an empty directory for one test's VM files (overlay, serial log,
  QMP socket), removed afterwards.

See `tests/vm/helpers.py` for the metadata server (`MetadataServer`, `instance_tree`), the
plain-QEMU runner (`Vm`), QMP (`Qmp`) and ssh (`ssh`, `wait_ssh`)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nubes.guest.images import ImageManifest, build_image
from tests.conftest import VM_TIMINGS_KEY, merge_vm_timings
from tests.vm.helpers import SshKey, make_ssh_key, require_binaries

DEFAULT_IMAGES_DIR = "/var/cache/nubes-test/images"
_timings: dict[str, list[float]] = {}
_build_times: dict[str, float] = {}


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (image builds: debootstrap, file owners, device nodes)"
    missing = require_binaries("qemu-system-x86_64", "qemu-img", "socat", "ssh", "ssh-keygen")
    if missing:
        return f"not installed: {', '.join(missing)}"
    return None


def require_vm() -> None:
    """Skip (fail under CI) when this host cannot build images and boot VMs."""
    reason = _missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"VM tests cannot run under CI: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def images_dir() -> Path:
    require_vm()
    path = Path(os.environ.get("NUBES_TEST_IMAGES", DEFAULT_IMAGES_DIR))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _build(name: str, images_dir: Path) -> ImageManifest:
    started = time.monotonic()
    manifest = build_image(name, images_dir)
    _build_times[name] = time.monotonic() - started
    return manifest


@pytest.fixture(scope="session")
def tiny_image(images_dir: Path) -> ImageManifest:
    return _build("tiny", images_dir)


@pytest.fixture(scope="session")
def debian_image(images_dir: Path) -> ImageManifest:
    return _build("debian-12", images_dir)


@pytest.fixture(scope="session")
def ssh_key(tmp_path_factory: pytest.TempPathFactory) -> SshKey:
    require_vm()
    return make_ssh_key(tmp_path_factory.mktemp("ssh-key"))


@pytest.fixture(scope="session")
def boot_timings() -> dict[str, list[float]]:
    return _timings


@pytest.fixture
def vm_workdir() -> Iterator[Path]:
    # short and outside pytest's deep tmp path: QMP's unix socket path must stay < 108 bytes
    path = Path(tempfile.mkdtemp(prefix="nubes-vm-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Hand the boot times to tests/conftest.py, which prints them: through xdist's worker
    output when this is a worker, directly otherwise."""
    if not _timings and not _build_times:
        return
    measured = {"builds": dict(_build_times), "boots": {k: list(v) for k, v in _timings.items()}}
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[VM_TIMINGS_KEY] = measured
    else:
        merge_vm_timings(measured)
