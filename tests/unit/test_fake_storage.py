"""The fake storage driver kept in a state directory: layers outlive the process, as qcow2 files do."""

from __future__ import annotations

from pathlib import Path

import pytest

from nubes.drivers.storage.base import StorageError
from nubes.drivers.storage.fake import FakeStorage


def test_layers_in_a_state_dir_are_found_again_by_a_new_process(tmp_path: Path) -> None:
    state = tmp_path / "layers"
    storage = FakeStorage(state)
    storage.create_blank("d-1", 20)
    storage.create_overlay("d-1.s-1", "d-1", 20)
    storage.resize("d-1.s-1", 40)
    storage.create_from_image("d-sys", Path("/images/root.qcow2"), 20)
    storage.create_blank("d-gone", 5)

    again = FakeStorage(state)
    assert again.graph() == {"d-1": None, "d-1.s-1": "d-1", "d-sys": None, "d-gone": None}
    assert again.layers["d-1.s-1"] == (40, "d-1")
    again.create_overlay("d-1.s-2", "d-1.s-1", 40)  # a snapshot after the restart stands on the old top
    assert again.collect({"d-1.s-2", "d-sys"}) == ["d-gone"]
    again.rebase("d-1.s-2", "d-1.qcow2")
    again.delete("d-1.s-1")

    third = FakeStorage(state)
    assert third.graph() == {"d-1": None, "d-1.s-2": "d-1", "d-sys": None}
    assert sorted(p.name for p in state.iterdir()) == ["d-1.json", "d-1.s-2.json", "d-sys.json"]


def test_without_a_state_dir_nothing_is_written(tmp_path: Path) -> None:
    storage = FakeStorage()
    storage.create_blank("d-1", 20)
    assert FakeStorage().layers == {}
    with pytest.raises(StorageError):
        storage.create_overlay("d-2", "d-missing", 20)


def test_encrypted_layers_need_their_key_and_are_never_exported(tmp_path: Path) -> None:
    storage = FakeStorage(tmp_path)
    storage.create_blank("d-1", 20, key="k1")
    assert storage.encrypted("d-1") and not storage.encrypted("d-2")
    with pytest.raises(StorageError):
        storage.create_overlay("d-1.s-1", "d-1", 20)  # a layer on an encrypted one is encrypted
    storage.create_overlay("d-1.s-1", "d-1", 20, key="k1")
    with pytest.raises(StorageError):
        storage.resize("d-1.s-1", 30, key="other")
    storage.resize("d-1.s-1", 30, key="k1")
    with pytest.raises(StorageError):
        storage.export("d-1.s-1", tmp_path / "out.raw", "raw")
    again = FakeStorage(tmp_path)  # the state files keep which layers are encrypted, not the key
    assert again.encrypted("d-1.s-1")
    assert "k1" not in "".join(p.read_text() for p in tmp_path.glob("*.json"))
