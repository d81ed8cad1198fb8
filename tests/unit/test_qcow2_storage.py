"""The qcow2 storage driver against real files: qemu-img and qemu-io in a temporary directory.

Disks are stacks of copy-on-write layers; these tests check the header each overlay writes
(its backing named relative to the disks directory), that overlays never open what they
stand on, what `collect` removes, and that exports and imports keep the bytes."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from nubes.drivers.storage.base import StorageError
from nubes.drivers.storage.qcow2 import GIB, Qcow2Storage, backing_file_name

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-img") is None or shutil.which("qemu-io") is None, reason="needs qemu-img and qemu-io"
)

MIB = 1 << 20


# ---- helpers ----------------------------------------------------------------------------------


def qemu_io(path: Path, command: str, fmt: str = "qcow2") -> None:
    """Run one qemu-io command (write -P / read -P); a pattern mismatch fails the test."""
    result = subprocess.run(
        ["qemu-io", "-f", fmt, "-c", command, str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "failed" not in output.lower(), f"qemu-io {command} {path}: {output}"


def pattern_absent(path: Path, command: str, fmt: str = "qcow2") -> bool:
    result = subprocess.run(
        ["qemu-io", "-f", fmt, "-c", command, str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode != 0 or "Pattern verification failed" in result.stdout + result.stderr


def info(path: Path, fmt: str | None = None) -> dict[str, object]:
    args = ["qemu-img", "info", "-U", "--output=json"]
    if fmt:
        args += ["-f", fmt]
    result = subprocess.run([*args, str(path)], capture_output=True, text=True, check=True, timeout=60)
    data: dict[str, object] = json.loads(result.stdout)
    return data


def virtual_size(path: Path, fmt: str | None = None) -> int:
    return int(str(info(path, fmt)["virtual-size"]))


def make_image(path: Path, size: str = "1G") -> Path:
    """A qcow2 image file such as the image builder leaves (the root file system of an image)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True, timeout=60)
    return path


def layer_files(disks: Path) -> set[str]:
    return {p.stem for p in disks.glob("*.qcow2")}


@pytest.fixture
def disks(tmp_path: Path) -> Path:
    return tmp_path / "disks"


@pytest.fixture
def storage(disks: Path) -> Qcow2Storage:
    return Qcow2Storage(disks)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    """An image of 1 GiB with 0x5a at 1 MiB."""
    path = make_image(tmp_path / "images" / "img-ubuntu" / "disk.qcow2")
    qemu_io(path, "write -P 0x5a 1M 64k")
    return path


@pytest.fixture
def write_locked(storage: Qcow2Storage) -> Iterator[Path]:
    """A 10 GiB layer `held` that a running qemu-io holds open read-write (with QEMU's image locks),
    as a running VM holds its disk's top layer."""
    storage.create_blank("held", 10)
    path = storage.layer_path("held")
    qemu_io(path, "write -P 0x33 0 8M")
    errors = path.with_suffix(".err")
    with open(errors, "wb") as err:
        process = subprocess.Popen(
            ["qemu-io", "-f", "qcow2", str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err
        )
    assert process.stdin is not None and process.stdout is not None
    try:
        # a command answered means the image is open, and so locked (no probing meanwhile: a
        # probe's own lock would race qemu-io's)
        process.stdin.write(b"read 0 512\n")
        process.stdin.flush()
        ready, _, _ = select.select([process.stdout], [], [], 120)
        if not ready or b"read 512/512" not in process.stdout.readline():
            pytest.fail(
                f"qemu-io did not open the layer (exit {process.poll()}): {errors.read_text()[-500:]}"
            )
        probe = subprocess.run(
            ["qemu-img", "info", str(path)], check=False, capture_output=True, text=True, timeout=60
        )
        assert probe.returncode != 0 and "lock" in probe.stderr, "qemu-io holds no lock"
        yield path
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


# ---- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["", "../escape", "a/b", "/abs", ".hidden", "-opt", "a b", "bases/x", "d-1\x00"]
)
def test_bad_layer_names_are_rejected(storage: Qcow2Storage, disks: Path, tmp_path: Path, name: str) -> None:
    with pytest.raises(StorageError):
        storage.layer_path(name)
    with pytest.raises(StorageError):
        storage.create_blank(name, 1)
    with pytest.raises(StorageError):
        storage.exists(name)
    with pytest.raises(StorageError):
        storage.delete(name)
    storage.create_blank("good", 1)
    with pytest.raises(StorageError):
        storage.create_overlay(name, "good", 1)
    with pytest.raises(StorageError):
        storage.create_overlay("good2", name, 1)
    assert layer_files(disks) == {"good"}
    assert not list(tmp_path.glob("*.qcow2"))  # nothing escaped the disks directory


def test_a_name_with_a_trailing_newline_is_rejected(storage: Qcow2Storage) -> None:
    with pytest.raises(StorageError):
        storage.layer_path("d-1\n")


def test_layer_path_is_the_stem_in_the_disks_directory(storage: Qcow2Storage, disks: Path) -> None:
    assert storage.layer_path("d-1.s-2") == disks / "d-1.s-2.qcow2"
    assert storage.layer_path("d-1.r17") == disks / "d-1.r17.qcow2"
    assert not storage.exists("d-1")


# ---- create_blank ----------------------------------------------------------------------------


def test_create_blank_makes_a_standalone_qcow2_of_the_size(storage: Qcow2Storage, disks: Path) -> None:
    path = storage.create_blank("d-1", 20)
    assert path == disks / "d-1.qcow2" and path.is_file()
    data = info(path)
    assert data["format"] == "qcow2" and data["virtual-size"] == 20 * GIB
    assert "backing-filename" not in data and backing_file_name(path) is None
    assert path.stat().st_size < 2 * MIB  # thin
    assert not list(disks.glob("*.partial"))
    assert storage.exists("d-1")
    assert storage.chain("d-1") == ["d-1"]


def test_create_blank_twice_keeps_the_file(storage: Qcow2Storage) -> None:
    path = storage.create_blank("d-1", 2)
    qemu_io(path, "write -P 0x5a 1M 64k")
    inode = path.stat().st_ino
    assert storage.create_blank("d-1", 5) == path
    assert path.stat().st_ino == inode
    assert virtual_size(path) == 2 * GIB  # the second call's size is ignored: the layer exists
    qemu_io(path, "read -P 0x5a 1M 64k")


# ---- create_from_image -----------------------------------------------------------------------


def test_create_from_image_keeps_the_base_under_bases_and_names_it_relatively(
    storage: Qcow2Storage, disks: Path, image: Path
) -> None:
    path = storage.create_from_image("d-sys", image, 3)
    backing = backing_file_name(path)
    assert backing is not None
    assert not os.path.isabs(backing) and backing.startswith("bases/") and backing.endswith(".qcow2")
    kept = disks / backing
    assert kept.is_file() and kept.parent == disks / "bases"
    assert kept.read_bytes() == image.read_bytes()
    assert virtual_size(path) == 3 * GIB
    assert path.stat().st_size < 2 * MIB  # copy-on-write: nothing of the image copied into the layer
    qemu_io(path, "read -P 0x5a 1M 64k")  # the image's content shows through
    assert storage.chain("d-sys") == ["d-sys"]  # image files are not layers
    assert layer_files(disks) == {"d-sys"}


def test_create_from_image_twice_keeps_the_file_and_the_bases_are_shared(
    storage: Qcow2Storage, disks: Path, image: Path
) -> None:
    first = storage.create_from_image("d-1", image, 1)
    qemu_io(first, "write -P 0x11 4M 64k")
    inode = first.stat().st_ino
    assert storage.create_from_image("d-1", image, 2) == first
    assert first.stat().st_ino == inode and virtual_size(first) == 1 * GIB
    qemu_io(first, "read -P 0x11 4M 64k")
    second = storage.create_from_image("d-2", image, 1)
    assert backing_file_name(second) == backing_file_name(first)
    assert len(list((disks / "bases").iterdir())) == 1


def test_a_rebuilt_image_does_not_change_the_disks_made_on_it(
    storage: Qcow2Storage, disks: Path, image: Path, tmp_path: Path
) -> None:
    old = storage.create_from_image("d-old", image, 1)
    # the image builder writes the new image beside the old one and renames it over it
    rebuilt = make_image(tmp_path / "images" / "img-ubuntu" / "disk.qcow2.new")
    qemu_io(rebuilt, "write -P 0x77 1M 64k")
    os.replace(rebuilt, image)
    new = storage.create_from_image("d-new", image, 1)
    assert backing_file_name(new) != backing_file_name(old)
    qemu_io(old, "read -P 0x5a 1M 64k")
    qemu_io(new, "read -P 0x77 1M 64k")
    assert len(list((disks / "bases").glob("*.qcow2"))) == 2


def test_the_disks_directory_can_move(
    storage: Qcow2Storage, disks: Path, image: Path, tmp_path: Path
) -> None:
    storage.create_from_image("d-1", image, 1)
    storage.create_overlay("d-1.s-1", "d-1", 1)
    qemu_io(storage.layer_path("d-1.s-1"), "write -P 0x22 8M 64k")
    moved = tmp_path / "elsewhere"
    disks.rename(moved)
    top = moved / "d-1.s-1.qcow2"
    qemu_io(top, "read -P 0x5a 1M 64k")
    qemu_io(top, "read -P 0x22 8M 64k")
    assert Qcow2Storage(moved).chain("d-1.s-1") == ["d-1.s-1", "d-1"]


# ---- create_overlay --------------------------------------------------------------------------


def test_create_overlay_stands_on_its_backing(storage: Qcow2Storage, disks: Path) -> None:
    base = storage.create_blank("d-1", 1)
    qemu_io(base, "write -P 0x5a 1M 64k")
    overlay = storage.create_overlay("d-1.s-1", "d-1", 2)
    assert backing_file_name(overlay) == "d-1.qcow2"  # relative: the directory can move
    assert info(overlay).get("backing-filename-format", "qcow2") == "qcow2"
    assert virtual_size(overlay) == 2 * GIB  # may be larger than what it stands on
    qemu_io(overlay, "read -P 0x5a 1M 64k")
    qemu_io(overlay, "write -P 0xa5 1M 4k")  # writes go to the overlay ...
    qemu_io(base, "read -P 0x5a 1M 64k")  # ... and never into the frozen layer
    assert not list(disks.glob("*.partial"))


def test_create_overlay_does_not_copy_the_backing(storage: Qcow2Storage) -> None:
    big = storage.create_blank("big", 100)
    qemu_io(big, "write -P 0x5a 0 48M")
    assert big.stat().st_size > 48 * MIB
    overlay = storage.create_overlay("big.s-1", "big", 100)
    assert overlay.stat().st_size < 1 * MIB  # constant: a header and empty tables, whatever the backing holds
    qemu_io(overlay, "read -P 0x5a 40M 64k")


def test_create_overlay_never_opens_the_backing(storage: Qcow2Storage, disks: Path) -> None:
    # a "layer" whose content is not even qcow2: opening it (to read its size or format) would fail
    (disks / "garbage.qcow2").write_bytes(b"\x00not a qcow2 header" * 1000)
    before = (disks / "garbage.qcow2").stat()
    overlay = storage.create_overlay("garbage.s-1", "garbage", 7)
    assert backing_file_name(overlay) == "garbage.qcow2"
    assert overlay.stat().st_size < 1 * MIB
    after = (disks / "garbage.qcow2").stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_create_overlay_works_on_a_layer_a_running_vm_holds(
    storage: Qcow2Storage, write_locked: Path
) -> None:
    overlay = storage.create_overlay("held.s-1", "held", 10)
    assert backing_file_name(overlay) == "held.qcow2"
    assert overlay.stat().st_size < 1 * MIB
    # reading the chain reads only headers: no lock needed either
    assert storage.chain("held.s-1") == ["held.s-1", "held"]
    # and the lock was really held all along
    probe = subprocess.run(
        ["qemu-img", "info", str(write_locked)], check=False, capture_output=True, text=True, timeout=60
    )
    assert probe.returncode != 0 and "lock" in probe.stderr


def test_create_overlay_twice_keeps_the_file(storage: Qcow2Storage) -> None:
    storage.create_blank("a", 1)
    storage.create_blank("b", 1)
    overlay = storage.create_overlay("top", "a", 1)
    qemu_io(overlay, "write -P 0x5a 1M 64k")
    inode = overlay.stat().st_ino
    assert storage.create_overlay("top", "b", 3) == overlay
    assert overlay.stat().st_ino == inode
    assert backing_file_name(overlay) == "a.qcow2" and virtual_size(overlay) == 1 * GIB
    qemu_io(overlay, "read -P 0x5a 1M 64k")


def test_create_overlay_on_a_missing_layer_fails(storage: Qcow2Storage, disks: Path) -> None:
    with pytest.raises(StorageError):
        storage.create_overlay("d-1.s-1", "d-1", 1)
    assert layer_files(disks) == set()


# ---- chain -----------------------------------------------------------------------------------


def test_chain_is_top_first_and_stops_at_the_image(storage: Qcow2Storage, image: Path) -> None:
    storage.create_from_image("d-1", image, 1)
    storage.create_overlay("d-1.s-1", "d-1", 1)
    storage.create_overlay("d-1.s-2", "d-1.s-1", 1)
    storage.create_overlay("d-2", "d-1.s-1", 1)  # a disk made from snapshot s-1
    assert storage.chain("d-1.s-2") == ["d-1.s-2", "d-1.s-1", "d-1"]
    assert storage.chain("d-2") == ["d-2", "d-1.s-1", "d-1"]
    assert storage.chain("d-1") == ["d-1"]
    assert storage.chain("missing") == []


def test_graph_and_backing_name(storage: Qcow2Storage, image: Path) -> None:
    storage.create_from_image("d-1", image, 1)
    storage.create_overlay("d-1.s-1", "d-1", 1)
    storage.create_blank("d-2", 1)
    assert storage.graph() == {"d-1": None, "d-1.s-1": "d-1", "d-2": None}  # image files are not layers
    assert storage.backing_name("d-1.s-1") == "d-1.qcow2"
    name = storage.backing_name("d-1")
    assert name is not None and name.startswith("bases/")
    assert storage.backing_name("d-2") is None


def test_rebase_drops_a_layer_and_keeps_what_the_top_shows(storage: Qcow2Storage, image: Path) -> None:
    storage.create_from_image("d-1", image, 1)
    qemu_io(storage.layer_path("d-1"), "write -P 0x11 4M 64k")
    storage.create_overlay("d-1.s-1", "d-1", 1)
    qemu_io(storage.layer_path("d-1.s-1"), "write -P 0x22 8M 64k")
    storage.create_overlay("d-1.s-2", "d-1.s-1", 1)
    qemu_io(storage.layer_path("d-1.s-2"), "write -P 0x33 12M 64k")
    # the middle layer (a deleted snapshot's) folded into the top
    storage.rebase("d-1.s-2", "d-1.qcow2")
    assert storage.chain("d-1.s-2") == ["d-1.s-2", "d-1"]
    assert backing_file_name(storage.layer_path("d-1.s-2")) == "d-1.qcow2"  # still relative
    top = storage.layer_path("d-1.s-2")
    for command in (
        "read -P 0x5a 1M 64k",
        "read -P 0x11 4M 64k",
        "read -P 0x22 8M 64k",
        "read -P 0x33 12M 64k",
    ):
        qemu_io(top, command)
    storage.delete("d-1.s-1")
    qemu_io(top, "read -P 0x22 8M 64k")
    # and onto nothing: standalone, with the image's bytes too
    storage.rebase("d-1.s-2", None)
    assert backing_file_name(top) is None and storage.chain("d-1.s-2") == ["d-1.s-2"]
    storage.delete("d-1")
    for command in (
        "read -P 0x5a 1M 64k",
        "read -P 0x11 4M 64k",
        "read -P 0x22 8M 64k",
        "read -P 0x33 12M 64k",
    ):
        qemu_io(top, command)


# ---- collect ---------------------------------------------------------------------------------


def test_collect_removes_exactly_what_nothing_needs(storage: Qcow2Storage, disks: Path, image: Path) -> None:
    # disk d-1 from an image; snapshot A froze d-1, snapshot B froze d-1.A; then the disk was reset
    # to A (a new layer on d-1), so d-1.B (its top before the reset) is needed by nothing
    storage.create_from_image("d-1", image, 1)
    storage.create_overlay("d-1.A", "d-1", 1)
    storage.create_overlay("d-1.B", "d-1.A", 1)
    storage.create_overlay("d-1.r1", "d-1", 1)
    storage.create_overlay("d-2", "d-1.A", 1)  # a disk made from snapshot B
    storage.create_blank("orphan", 1)  # a disk deleted earlier
    storage.create_overlay("orphan.s-9", "orphan", 1)  # a leftover of a cancelled snapshot
    bases_before = sorted((disks / "bases").iterdir())

    # disk tops d-1.r1, d-2; snapshot layers d-1 (A), d-1.A (B)
    removed = storage.collect({"d-1.r1", "d-2", "d-1", "d-1.A"})
    assert sorted(removed) == ["d-1.B", "orphan", "orphan.s-9"]
    assert layer_files(disks) == {"d-1", "d-1.A", "d-1.r1", "d-2"}

    # disk d-2 deleted: the layer of snapshot B stays, kept by the snapshot although no disk is on it
    assert storage.collect({"d-1.r1", "d-1", "d-1.A"}) == ["d-2"]
    assert layer_files(disks) == {"d-1", "d-1.A", "d-1.r1"}

    # snapshot B deleted; then disk d-1 deleted while snapshot A is kept
    assert storage.collect({"d-1.r1", "d-1"}) == ["d-1.A"]
    assert storage.collect({"d-1"}) == ["d-1.r1"]
    assert layer_files(disks) == {"d-1"}
    qemu_io(storage.layer_path("d-1"), "read -P 0x5a 1M 64k")  # still readable: its base is kept

    # layers under a kept one are kept even when not named
    storage.create_overlay("d-3", "d-1", 1)
    storage.create_overlay("d-3.s-1", "d-3", 1)
    assert storage.collect({"d-3.s-1"}) == []
    assert layer_files(disks) == {"d-1", "d-3", "d-3.s-1"}

    assert storage.collect(set()) != [] and layer_files(disks) == set()
    assert sorted((disks / "bases").iterdir()) == bases_before  # image files are not layers
    assert storage.collect(set()) == []


def test_collect_of_a_kept_layer_that_is_missing_removes_the_others(storage: Qcow2Storage) -> None:
    storage.create_blank("x", 1)
    assert storage.collect({"gone"}) == ["x"]


def test_delete_is_idempotent(storage: Qcow2Storage) -> None:
    storage.create_blank("d-1", 1)
    storage.delete("d-1")
    storage.delete("d-1")
    assert not storage.exists("d-1")


# ---- resize ----------------------------------------------------------------------------------


def test_resize_grows_and_keeps_the_content(storage: Qcow2Storage) -> None:
    path = storage.create_blank("d-1", 1)
    qemu_io(path, "write -P 0x5a 1M 64k")
    storage.resize("d-1", 3)
    assert virtual_size(path) == 3 * GIB
    qemu_io(path, "read -P 0x5a 1M 64k")
    qemu_io(path, "write -P 0x66 2560M 64k")  # beyond the old end


def test_resize_of_an_overlay_leaves_its_backing_alone(storage: Qcow2Storage) -> None:
    base = storage.create_blank("d-1", 1)
    qemu_io(base, "write -P 0x5a 1M 64k")
    top = storage.create_overlay("d-1.s-1", "d-1", 1)
    storage.resize("d-1.s-1", 4)
    assert virtual_size(top) == 4 * GIB and virtual_size(base) == 1 * GIB
    qemu_io(top, "read -P 0x5a 1M 64k")
    qemu_io(top, "read -P 0 3G 64k")  # the grown part reads zeroes


def test_resize_of_a_missing_layer_fails(storage: Qcow2Storage) -> None:
    with pytest.raises(StorageError):
        storage.resize("missing", 2)


# ---- export ----------------------------------------------------------------------------------


@pytest.fixture
def chain_with_data(storage: Qcow2Storage, image: Path) -> str:
    """d-1 on the image (0x5a at 1 MiB), frozen by a snapshot; the top has 0xa5 at 2 MiB and 0xc3 over
    part of the image's bytes."""
    storage.create_from_image("d-1", image, 1)
    qemu_io(storage.layer_path("d-1"), "write -P 0xa5 2M 64k")
    storage.create_overlay("d-1.s-1", "d-1", 1)
    qemu_io(storage.layer_path("d-1.s-1"), "write -P 0xc3 1056k 16k")
    return "d-1.s-1"


@pytest.mark.parametrize("fmt", ["qcow2", "raw", "vpc"])
def test_export_flattens_the_chain_with_its_content(
    storage: Qcow2Storage, chain_with_data: str, tmp_path: Path, fmt: str
) -> None:
    dest = tmp_path / "oss" / "bucket" / f"img_system.{fmt}"
    dest.parent.mkdir(parents=True)
    storage.export(chain_with_data, dest, fmt)
    assert dest.is_file()
    assert not list(dest.parent.glob("*.partial"))
    data = info(dest, fmt)
    assert data["format"] == fmt and "backing-filename" not in data  # standalone
    assert int(str(data["virtual-size"])) >= 1 * GIB
    qemu_io(dest, "read -P 0x5a 1M 32k", fmt)
    qemu_io(dest, "read -P 0xc3 1056k 16k", fmt)
    qemu_io(dest, "read -P 0x5a 1072k 16k", fmt)
    qemu_io(dest, "read -P 0xa5 2M 64k", fmt)
    qemu_io(dest, "read -P 0 4M 64k", fmt)
    assert pattern_absent(dest, "read -P 0x5a 2M 64k", fmt)  # the check can fail
    if fmt == "raw":
        with open(dest, "rb") as f:
            f.seek(1 * MIB)
            assert f.read(32 * 1024) == b"\x5a" * 32 * 1024
            assert f.read(16 * 1024) == b"\xc3" * 16 * 1024
            f.seek(2 * MIB)
            assert f.read(64 * 1024) == b"\xa5" * 64 * 1024
        assert dest.stat().st_size == 1 * GIB


def test_export_of_a_layer_a_running_vm_holds(
    storage: Qcow2Storage, write_locked: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "out.raw"
    storage.export("held", dest, "raw")
    with open(dest, "rb") as f:
        assert f.read(64 * 1024) == b"\x33" * 64 * 1024


def test_export_of_a_missing_layer_fails_and_leaves_nothing(storage: Qcow2Storage, tmp_path: Path) -> None:
    dest = tmp_path / "out.qcow2"
    with pytest.raises(StorageError):
        storage.export("missing", dest, "qcow2")
    assert not dest.exists()


def test_a_vhd_export_keeps_the_virtual_size(storage: Qcow2Storage, tmp_path: Path) -> None:
    storage.create_blank("d-1", 20)
    dest = tmp_path / "img.vhd"
    storage.export("d-1", dest, "vpc")
    assert virtual_size(dest, "vpc") == 20 * GIB
    assert storage.import_file("img.import", dest, "vpc") == 20


# ---- import ----------------------------------------------------------------------------------


def test_import_file_from_raw_returns_the_size_in_gib_rounded_up(
    storage: Qcow2Storage, tmp_path: Path
) -> None:
    source = tmp_path / "upload.raw"
    with open(source, "wb") as f:
        f.seek(1 * MIB)
        f.write(b"\x5a" * 64 * 1024)
        f.truncate(3 * GIB // 2)  # 1.5 GiB, sparse
    assert storage.import_file("img-1.import", source, "raw") == 2
    layer = storage.layer_path("img-1.import")
    assert info(layer)["format"] == "qcow2" and backing_file_name(layer) is None
    assert virtual_size(layer) == 3 * GIB // 2
    qemu_io(layer, "read -P 0x5a 1M 64k")
    assert storage.chain("img-1.import") == ["img-1.import"]


def test_import_file_from_qcow2_and_vhd(storage: Qcow2Storage, tmp_path: Path) -> None:
    source = make_image(tmp_path / "up.qcow2", "3G")
    qemu_io(source, "write -P 0x5a 1M 64k")
    assert storage.import_file("a.import", source, "qcow2") == 3
    qemu_io(storage.layer_path("a.import"), "read -P 0x5a 1M 64k")

    vhd = tmp_path / "up.vhd"
    subprocess.run(
        ["qemu-img", "convert", "-q", "-O", "vpc", "-o", "force_size=on", str(source), str(vhd)],
        check=True,
        timeout=120,
    )
    assert storage.import_file("b.import", vhd, "vpc") == 3
    qemu_io(storage.layer_path("b.import"), "read -P 0x5a 1M 64k")


def test_import_file_of_a_tiny_file_is_one_gib(storage: Qcow2Storage, tmp_path: Path) -> None:
    source = tmp_path / "tiny.raw"
    source.write_bytes(b"\x01" * 4096)
    assert storage.import_file("t.import", source, "raw") == 1


def test_import_file_twice_keeps_the_layer(storage: Qcow2Storage, tmp_path: Path) -> None:
    source = make_image(tmp_path / "up.qcow2", "2G")
    assert storage.import_file("img.import", source, "qcow2") == 2
    layer = storage.layer_path("img.import")
    qemu_io(layer, "write -P 0x44 1M 64k")
    inode = layer.stat().st_ino
    source.unlink()  # the second call does not need the source: the layer is there
    assert storage.import_file("img.import", source, "qcow2") == 2
    assert layer.stat().st_ino == inode
    qemu_io(layer, "read -P 0x44 1M 64k")


def test_import_file_of_a_bad_file_fails_and_leaves_no_layer(
    storage: Qcow2Storage, disks: Path, tmp_path: Path
) -> None:
    source = tmp_path / "bad.qcow2"
    source.write_bytes(b"this is not a qcow2 image" * 100)
    with pytest.raises(StorageError):
        storage.import_file("bad.import", source, "qcow2")
    assert not storage.exists("bad.import")
    assert layer_files(disks) == set()


def test_backing_file_name_of_other_files(tmp_path: Path) -> None:
    raw = tmp_path / "x.raw"
    raw.write_bytes(b"\x00" * 100)
    assert backing_file_name(raw) is None
    short = tmp_path / "short"
    short.write_bytes(b"QFI\xfb")
    assert backing_file_name(short) is None
