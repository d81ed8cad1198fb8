"""The storage driver contract (nubes.drivers.storage.base), the same cases against both drivers:
qcow2 files in a temporary directory (needs qemu-img) and the fake's records in memory.

What the fake cannot show (the bytes a layer holds) is checked against the qcow2 driver
alone, in tests/unit/test_qcow2_storage.py; here only what both promise."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from nubes.drivers.storage.base import StorageDriver, StorageError
from nubes.drivers.storage.fake import FakeStorage
from nubes.drivers.storage.qcow2 import Qcow2Storage

HAVE_QEMU_IMG = shutil.which("qemu-img") is not None


@pytest.fixture(
    params=[
        "fake",
        pytest.param("qcow2", marks=pytest.mark.skipif(not HAVE_QEMU_IMG, reason="needs qemu-img")),
    ]
)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> StorageDriver:
    if request.param == "qcow2":
        return Qcow2Storage(tmp_path / "disks")
    return FakeStorage()


@pytest.fixture
def image(tmp_path: Path) -> Path:
    """An image file as the image builder leaves it (the fake never opens it)."""
    path = tmp_path / "images" / "img-tiny" / "rootfs.qcow2"
    path.parent.mkdir(parents=True)
    if HAVE_QEMU_IMG:
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "1G"], check=True, timeout=60)
    return path


def test_a_blank_layer_exists_alone(storage: StorageDriver) -> None:
    assert not storage.exists("d-1")
    assert storage.create_blank("d-1", 1) == storage.layer_path("d-1")
    assert storage.exists("d-1")
    assert storage.chain("d-1") == ["d-1"]
    assert storage.graph() == {"d-1": None}
    assert storage.backing_name("d-1") is None


def test_a_layer_from_an_image_stands_on_the_image_file_only(storage: StorageDriver, image: Path) -> None:
    assert storage.create_from_image("d-sys", image, 2) == storage.layer_path("d-sys")
    assert storage.chain("d-sys") == ["d-sys"]  # image files are not layers
    assert storage.graph() == {"d-sys": None}


def test_overlays_make_a_chain_top_first(storage: StorageDriver) -> None:
    storage.create_blank("d-1", 1)
    assert storage.create_overlay("d-1.s-1", "d-1", 1) == storage.layer_path("d-1.s-1")
    storage.create_overlay("d-1.s-2", "d-1.s-1", 1)
    assert storage.chain("d-1.s-2") == ["d-1.s-2", "d-1.s-1", "d-1"]
    assert storage.chain("d-1.s-1") == ["d-1.s-1", "d-1"]
    assert storage.graph() == {"d-1": None, "d-1.s-1": "d-1", "d-1.s-2": "d-1.s-1"}
    # the backing file as written: relative to the layers' directory, so the directory can move
    assert storage.backing_name("d-1.s-2") == storage.layer_path("d-1.s-1").name


def test_creates_keep_an_existing_layer(storage: StorageDriver, image: Path) -> None:
    storage.create_blank("d-1", 1)
    storage.create_blank("d-2", 1)
    storage.create_overlay("top", "d-1", 1)
    storage.create_from_image("d-sys", image, 2)
    before = storage.graph()
    # each create again, asked for something else: the layer there is kept as it is
    assert storage.create_blank("d-1", 5) == storage.layer_path("d-1")
    assert storage.create_overlay("top", "d-2", 5) == storage.layer_path("top")
    assert storage.create_from_image("d-sys", image, 5) == storage.layer_path("d-sys")
    assert storage.create_blank("top", 1) == storage.layer_path("top")
    assert storage.graph() == before
    assert storage.chain("top") == ["top", "d-1"]


def test_an_overlay_needs_the_layer_under_it(storage: StorageDriver) -> None:
    with pytest.raises(StorageError):
        storage.create_overlay("d-1.s-1", "d-missing", 1)
    assert not storage.exists("d-1.s-1")
    assert storage.graph() == {}


def test_resize_keeps_the_layer_in_its_chain(storage: StorageDriver) -> None:
    storage.create_blank("d-1", 1)
    storage.create_overlay("top", "d-1", 1)
    storage.resize("top", 3)
    storage.resize("top", 3)
    assert storage.chain("top") == ["top", "d-1"]
    assert storage.backing_name("top") == storage.layer_path("d-1").name


def test_delete_succeeds_when_there_is_nothing(storage: StorageDriver) -> None:
    storage.create_blank("d-1", 1)
    storage.delete("d-1")
    assert not storage.exists("d-1")
    storage.delete("d-1")
    storage.delete("d-never")
    assert storage.graph() == {}
    assert storage.chain("d-1") == []


def test_collect_keeps_what_it_is_told_and_what_is_under_it(storage: StorageDriver) -> None:
    storage.create_blank("a", 1)
    storage.create_overlay("a.s1", "a", 1)
    storage.create_overlay("a.s2", "a.s1", 1)  # a disk's top, on its two snapshots
    storage.create_blank("b", 1)  # a deleted disk
    storage.create_blank("c", 1)
    storage.create_overlay("c.s1", "c", 1)  # a snapshot nobody needs any more
    removed = storage.collect({"a.s2", "c", "gone"})  # a layer named but missing is no error
    assert sorted(removed) == ["b", "c.s1"]
    assert storage.graph() == {"a": None, "a.s1": "a", "a.s2": "a.s1", "c": None}
    assert storage.collect({"a.s2", "c"}) == []
    assert sorted(storage.collect(set())) == ["a", "a.s1", "a.s2", "c"]
    assert storage.graph() == {}


def test_collect_among_removes_only_the_layers_named_there(storage: StorageDriver) -> None:
    for layer in ("old", "new", "kept"):
        storage.create_blank(layer, 1)
    # the caller listed {old, kept} before reading the store; `new` was made in between
    assert storage.collect({"kept"}, among={"old", "kept"}) == ["old"]
    assert sorted(storage.graph()) == ["kept", "new"]


def test_rebase_puts_a_layer_on_another_backing_or_none(storage: StorageDriver) -> None:
    storage.create_blank("d-1", 1)
    storage.create_overlay("d-1.s-1", "d-1", 1)
    storage.create_overlay("d-1.s-2", "d-1.s-1", 1)
    storage.rebase("d-1.s-2", storage.layer_path("d-1").name)  # the snapshot in between goes
    assert storage.chain("d-1.s-2") == ["d-1.s-2", "d-1"]
    assert storage.backing_name("d-1.s-2") == storage.layer_path("d-1").name
    storage.rebase("d-1.s-2", storage.layer_path("d-1").name)  # done already
    assert storage.chain("d-1.s-2") == ["d-1.s-2", "d-1"]
    storage.rebase("d-1.s-2", None)  # standalone
    assert storage.chain("d-1.s-2") == ["d-1.s-2"]
    assert storage.backing_name("d-1.s-2") is None
    assert storage.collect({"d-1.s-2"}) and storage.graph() == {"d-1.s-2": None}


def test_export_needs_the_layer(storage: StorageDriver, tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        storage.export("d-missing", tmp_path / "out.qcow2", "qcow2")
    storage.create_blank("d-1", 1)
    storage.create_overlay("top", "d-1", 1)
    storage.export("top", tmp_path / "out.raw", "raw")


def test_import_makes_a_standalone_layer_once(storage: StorageDriver, image: Path, tmp_path: Path) -> None:
    if not HAVE_QEMU_IMG:
        pytest.skip("the image file needs qemu-img")
    assert storage.import_file("m-1.import", image, "qcow2") == 1  # 1 GiB
    assert storage.chain("m-1.import") == ["m-1.import"]
    assert storage.backing_name("m-1.import") is None
    assert storage.import_file("m-1.import", image, "qcow2") == 1  # there already: kept
    with pytest.raises(StorageError):
        storage.import_file("m-2.import", tmp_path / "no-such-file", "qcow2")
    assert not storage.exists("m-2.import")
