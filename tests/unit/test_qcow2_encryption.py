"""Encrypted layers of the qcow2 driver against real files: LUKS inside qcow2, the key handed to
qemu-img through a file and never on a command line; what is written through an encrypted
chain is not in any of its files in the clear, and survives snapshots, resizes and folds."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from nubes.drivers.storage.base import StorageError
from nubes.drivers.storage.qcow2 import GIB, Qcow2Storage, is_encrypted

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-img") is None or shutil.which("qemu-io") is None, reason="needs qemu-img and qemu-io"
)

KEY = "0f" * 32


def keyed_io(storage: Qcow2Storage, layer: str, tmp_path: Path, *commands: str) -> str:
    """qemu-io on an encrypted layer (and its encrypted backing layers), the key in a file."""
    secret = tmp_path / "qemu-io.key"
    secret.write_text(KEY)
    opts = storage._image_opts(storage.layer_path(layer))
    args = ["qemu-io", "--object", f"secret,id=nubes-key,file={secret}", "--image-opts", opts]
    for command in commands:
        args += ["-c", command]
    result = subprocess.run(args, check=False, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "fail" not in output.lower(), output
    return output


def write_marker(storage: Qcow2Storage, layer: str, tmp_path: Path, offset: int = 1 << 20) -> None:
    """64 KiB of 0x6e ('n') through the layer's chain: long enough to find in a file if in clear."""
    keyed_io(storage, layer, tmp_path, f"write -P 0x6e {offset} 64k")


def clear_in(path: Path) -> bool:
    """Whether the file holds the 64 KiB run of 0x6e bytes (what write_marker writes) in the clear."""
    return b"n" * 4096 in path.read_bytes()


def info(path: Path) -> dict[str, object]:
    out = subprocess.run(
        ["qemu-img", "info", "-U", "--output=json", str(path)], check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, object] = json.loads(out)
    return result


@pytest.fixture
def storage(tmp_path: Path) -> Qcow2Storage:
    return Qcow2Storage(tmp_path / "disks")


def test_an_encrypted_blank_layer_is_luks_and_hides_what_is_written(
    storage: Qcow2Storage, tmp_path: Path
) -> None:
    path = storage.create_blank("d-1", 1, KEY)
    assert info(path)["encrypted"] is True and is_encrypted(path) and storage.encrypted("d-1")
    write_marker(storage, "d-1", tmp_path)
    keyed_io(storage, "d-1", tmp_path, "read -P 0x6e 1M 64k")
    assert not clear_in(path)
    # the same write to an unencrypted layer is there in the clear: the check can see it
    plain = storage.create_blank("d-2", 1)
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", "write -P 0x6e 1M 64k", str(plain)], check=True, capture_output=True
    )
    assert clear_in(plain) and not storage.encrypted("d-2")
    # no key file is left behind
    assert list((storage.layer_path("x").parent / ".keys").iterdir()) == []


def test_the_key_is_never_on_a_command_line(storage: Qcow2Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    real = subprocess.run

    def spy(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        seen.append(list(args))
        return real(args, **kw)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(subprocess, "run", spy)
    storage.create_blank("d-1", 1, KEY)
    storage.create_overlay("d-1.s-1", "d-1", 1, KEY)
    storage.resize("d-1.s-1", 2, KEY)
    assert seen and all(KEY not in " ".join(args) for args in seen)


def test_snapshots_resizes_and_folds_of_an_encrypted_chain_keep_the_data(
    storage: Qcow2Storage, tmp_path: Path
) -> None:
    storage.create_blank("d-1", 1, KEY)
    write_marker(storage, "d-1", tmp_path)
    with pytest.raises(StorageError):
        storage.create_overlay("d-1.s-1", "d-1", 1)  # a layer on an encrypted one needs the key
    top = storage.create_overlay("d-1.s-1", "d-1", 1, KEY)
    assert info(top)["encrypted"] is True
    keyed_io(storage, "d-1.s-1", tmp_path, "write -P 0x6e 3M 64k", "read -P 0x6e 1M 64k")
    storage.create_overlay("d-1.s-2", "d-1.s-1", 1, KEY)
    storage.resize("d-1.s-2", 2, KEY)
    assert int(str(info(storage.layer_path("d-1.s-2"))["virtual-size"])) == 2 * GIB
    # the fold of the encrypted middle layer into the top (a deleted snapshot's)
    storage.rebase("d-1.s-2", storage.backing_name("d-1.s-1"), KEY)
    assert storage.chain("d-1.s-2") == ["d-1.s-2", "d-1"]
    storage.collect({"d-1.s-2"})
    assert not storage.exists("d-1.s-1")
    keyed_io(storage, "d-1.s-2", tmp_path, "read -P 0x6e 1M 64k", "read -P 0x6e 3M 64k")
    # standalone: everything folded in, still encrypted
    storage.rebase("d-1.s-2", None, KEY)
    assert storage.chain("d-1.s-2") == ["d-1.s-2"] and storage.encrypted("d-1.s-2")
    keyed_io(storage, "d-1.s-2", tmp_path, "read -P 0x6e 1M 64k", "read -P 0x6e 3M 64k")
    for path in storage.layer_path("x").parent.glob("*.qcow2"):
        assert not clear_in(path), path


def test_an_encrypted_layer_on_an_unencrypted_one_folds_it_in_encrypted(
    storage: Qcow2Storage, tmp_path: Path
) -> None:
    base = storage.create_blank("d-0", 1)
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", "write -P 0x6e 1M 64k", str(base)], check=True, capture_output=True
    )
    storage.create_overlay("d-1", "d-0", 1, KEY)
    keyed_io(storage, "d-1", tmp_path, "read -P 0x6e 1M 64k")
    storage.rebase("d-1", None, KEY)  # the clear layer's data moves into the encrypted one
    assert storage.chain("d-1") == ["d-1"] and not clear_in(storage.layer_path("d-1"))
    keyed_io(storage, "d-1", tmp_path, "read -P 0x6e 1M 64k")


def test_an_encrypted_chain_is_never_exported(storage: Qcow2Storage, tmp_path: Path) -> None:
    storage.create_blank("d-1", 1, KEY)
    storage.create_overlay("d-1.s-1", "d-1", 1, KEY)
    for layer in ("d-1", "d-1.s-1"):
        with pytest.raises(StorageError, match="encrypted"):
            storage.export(layer, tmp_path / "out.raw", "raw")
    assert not (tmp_path / "out.raw").exists()
