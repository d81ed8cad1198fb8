"""The image builder's pure parts, without root or QEMU: manifests, the cpio writer, the
bzImage/ELF/module readers, the guest scripts' syntax and the #cloud-config translation."""

from __future__ import annotations

import json
import lzma
import shutil
import stat
import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from nubes.guest.images import ImageManifest, builder_version, cpio, guestfiles, kernel, load_manifest, rootfs
from nubes.guest.images.proc import ImageBuildError, run

MANIFEST = ImageManifest(
    image_id="nubes_tiny_x64_1G_busybox_20261126.vhd",
    name="tiny",
    os_name="Nubes Tiny (BusyBox) 64位",
    os_name_en="Nubes Tiny (BusyBox) 64 bit",
    platform="Others Linux",
    os_type="linux",
    architecture="x86_64",
    image_family="nubes:tiny_x64",
    size_gib=1,
    kernel="vmlinux",
    initrd="initrd.img",
    rootfs="rootfs.qcow2",
    cmdline="console=ttyS0 root=/dev/vda",
    ready_marker="NUBES-READY",
    login="console",
    built_at="2026-11-26T00:00:00+00:00",
    builder_version="1.abc",
    kernel_version="6.1.0-56-amd64",
)


# ---- manifests ----------------------------------------------------------------------------------


def test_manifest_round_trip_and_load(tmp_path: Path) -> None:
    assert ImageManifest.from_json(MANIFEST.to_json()) == MANIFEST
    data = json.loads(MANIFEST.to_json())
    assert data["os_name"] == "Nubes Tiny (BusyBox) 64位"  # not \u-escaped
    assert ImageManifest.from_dict({**data, "added_later": 1}) == MANIFEST  # unknown keys are ignored

    assert load_manifest(tmp_path, "tiny") is None
    image = tmp_path / "tiny"
    image.mkdir()
    (image / "manifest.json").write_text(MANIFEST.to_json())
    assert load_manifest(tmp_path, "tiny") is None  # its files are missing
    for name in ("vmlinux", "initrd.img", "rootfs.qcow2"):
        (image / name).write_bytes(b"x")
    assert load_manifest(tmp_path, "tiny") == MANIFEST
    assert MANIFEST.path(tmp_path, "initrd") == image / "initrd.img"
    (image / "manifest.json").write_text("{not json")
    assert load_manifest(tmp_path, "tiny") is None


def test_builder_version_follows_the_guest_scripts(monkeypatch: pytest.MonkeyPatch) -> None:
    before = builder_version("tiny"), builder_version("debian-12")
    assert before[0] != before[1]
    files = dict(guestfiles.NUBES_FILES)
    text, mode = files["usr/lib/nubes/nubes-init"]
    files["usr/lib/nubes/nubes-init"] = (text + "# changed\n", mode)
    monkeypatch.setattr(guestfiles, "NUBES_FILES", files)
    after = builder_version("tiny"), builder_version("debian-12")
    assert after[0] != before[0] and after[1] != before[1]


def test_run_reports_the_failed_command() -> None:
    with pytest.raises(ImageBuildError) as err:
        run(["sh", "-c", "echo doing >&1; echo broken thing >&2; exit 3"], what="the step")
    assert err.value.returncode == 3
    assert "broken thing" in err.value.stderr and "the step failed" in str(err.value)


# ---- cpio ---------------------------------------------------------------------------------------


def _parse_newc(data: bytes) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    entries: dict[str, tuple[int, bytes, tuple[int, int]]] = {}
    pos = 0
    while True:
        assert data[pos : pos + 6] == b"070701"
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rmaj, rmin, namesize = fields[1], fields[6], fields[9], fields[10], fields[11]
        name = data[pos + 110 : pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        body = data[pos : pos + size]
        pos += size
        pos += -pos % 4
        if name == "TRAILER!!!":
            return entries
        entries[name] = (mode, body, (rmaj, rmin))


def test_cpio_newc(tmp_path: Path) -> None:
    out = tmp_path / "initrd"
    cpio.write(
        out,
        [
            cpio.file("init", b"#!/bin/sh\n", 0o755),
            cpio.symlink("bin/sh", "/bin/busybox"),
            cpio.char_device("dev/console", 5, 1),
            cpio.file("lib/modules/a.ko", b"\0" * 5),
        ],
    )
    entries = _parse_newc(out.read_bytes())
    assert list(entries) == sorted(entries)  # parents before children
    assert {"bin", "dev", "lib", "lib/modules"} <= set(entries)
    assert stat.S_ISDIR(entries["lib/modules"][0])
    assert entries["init"][:2] == (stat.S_IFREG | 0o755, b"#!/bin/sh\n")
    assert stat.S_ISLNK(entries["bin/sh"][0]) and entries["bin/sh"][1] == b"/bin/busybox"
    assert stat.S_ISCHR(entries["dev/console"][0]) and entries["dev/console"][2] == (5, 1)
    cpio.write(
        tmp_path / "again",
        [
            cpio.file("lib/modules/a.ko", b"\0" * 5),
            cpio.char_device("dev/console", 5, 1),
            cpio.symlink("bin/sh", "/bin/busybox"),
            cpio.file("init", b"#!/bin/sh\n", 0o755),
        ],
    )
    assert out.read_bytes() == (tmp_path / "again").read_bytes()  # reproducible, whatever the order given


# ---- kernel -------------------------------------------------------------------------------------


def _elf(notes: Sequence[tuple[bytes, int, bytes]] = (), sections: dict[str, bytes] | None = None) -> bytes:
    """A minimal ELF64: one PT_NOTE segment with `notes`, and section headers for `sections`."""
    note = b""
    for name, ntype, desc in notes:
        n = name + b"\0"
        note += (
            struct.pack("<III", len(n), len(desc), ntype)
            + n
            + b"\0" * (-len(n) % 4)
            + desc
            + b"\0" * (-len(desc) % 4)
        )
    sections = sections or {}
    shstr = b"\0" + b"".join(n.encode() + b"\0" for n in [*sections, ".shstrtab"])
    header_size, ph_size, sh_size = 64, 56, 64
    note_off = header_size + ph_size
    body = note
    sec_offsets = []
    for content in sections.values():
        sec_offsets.append(note_off + len(body))
        body += content
    shstr_off = note_off + len(body)
    body += shstr
    shoff = note_off + len(body)
    shnum = len(sections) + 2
    hdr = b"\x7fELF\x02\x01\x01" + b"\0" * 9
    hdr += struct.pack(
        "<HHIQQQIHHHHHH",
        2,
        62,
        1,
        0,
        header_size,
        shoff,
        0,
        header_size,
        ph_size,
        1,
        sh_size,
        shnum,
        shnum - 1,
    )
    ph = struct.pack("<IIQQQQQQ", 4, 4, note_off, 0, 0, len(note), len(note), 4)
    shdrs = b"\0" * sh_size
    name_off = 1
    for (section_name, content), off in zip(sections.items(), sec_offsets):
        shdrs += struct.pack("<IIQQQQIIQQ", name_off, 1, 0, 0, off, len(content), 0, 0, 1, 0)
        name_off += len(section_name) + 1
    shdrs += struct.pack("<IIQQQQIIQQ", name_off, 3, 0, 0, shstr_off, len(shstr), 0, 0, 1, 0)
    return hdr + ph + body + shdrs


def test_vmlinux_out_of_a_bzimage_and_its_pvh_note() -> None:
    elf = _elf([(b"GNU", 3, b"\1" * 20), (b"Xen", 18, struct.pack("<I", 0x1000000))])
    assert kernel.has_pvh_note(elf)
    assert not kernel.has_pvh_note(_elf([(b"Xen", 6, b"linux\0")]))
    payload = lzma.compress(elf, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    setup = bytearray(512 * 5)  # boot sector + 4 setup sectors
    setup[0x1F1] = 4
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, 0x20F)
    struct.pack_into("<II", setup, 0x248, 16, len(payload))
    bzimage = bytes(setup) + b"\0" * 16 + payload + struct.pack("<I", len(elf))
    assert kernel.extract_vmlinux(bzimage) == elf
    with pytest.raises(ImageBuildError):
        kernel.extract_vmlinux(b"\0" * 4096)


def test_modules_resolve_dependencies_first(tmp_path: Path) -> None:
    moddir = tmp_path / "6.1.0-test"
    deps = {
        "ext4": "jbd2,mbcache,crc16",
        "jbd2": "",
        "mbcache": "",
        "crc16": "",
        "virtio-blk": "virtio,virtio_ring",
        "virtio": "",
        "virtio_ring": "",
        "unused": "",
    }
    for name, depends in deps.items():
        path = moddir / "kernel" / f"{name}.ko"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(
            _elf(sections={".modinfo": f"license=GPL\0depends={depends}\0name={name}\0".encode()})
        )
    (moddir / "modules.builtin").write_text("kernel/lib/crc16.ko\n")
    order = [p.stem for p in kernel.resolve_modules(moddir, ("virtio_blk", "ext4"))]
    assert order == ["virtio", "virtio_ring", "virtio-blk", "jbd2", "mbcache", "ext4"]  # crc16 is built in
    with pytest.raises(ImageBuildError, match="nosuch"):
        kernel.resolve_modules(moddir, ("nosuch",))


def test_debian_mirror_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUBES_DEBIAN_MIRROR", "http://mirror.example/debian/")
    assert rootfs.debian_mirror() == "http://mirror.example/debian"
    monkeypatch.delenv("NUBES_DEBIAN_MIRROR")
    assert rootfs.debian_mirror().startswith("http")


# ---- guest scripts --------------------------------------------------------------------------------

BUSYBOX = shutil.which("busybox")
needs_busybox = pytest.mark.skipif(BUSYBOX is None, reason="busybox is not installed on this host")


@needs_busybox
@pytest.mark.parametrize("path", [*guestfiles.NUBES_FILES, "initramfs:/init", "sbin/shutdown"])
def test_guest_scripts_parse(path: str) -> None:
    if path == "initramfs:/init":
        text = guestfiles.INITRAMFS_INIT
    elif path == "sbin/shutdown":
        text = guestfiles.SHUTDOWN_COMMAND
    else:
        text, _mode = guestfiles.NUBES_FILES[path]
    if not text.startswith("#!") or path == "etc/inittab":
        return
    result = subprocess.run(
        [str(BUSYBOX), "sh", "-n"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@needs_busybox
def test_cloud_config_translation(tmp_path: Path) -> None:
    script = guestfiles.CLOUD_CONFIG.replace("exec /bin/busybox awk", f"exec {BUSYBOX} awk")
    out = tmp_path / "root"
    user_data = f"""#cloud-config
runcmd:
  - echo one > {out}/run1
  - [ sh, -c, "echo two > {out}/run2" ]
bootcmd:
  - mkdir -p {out}
write_files:
  - path: {out}/etc/a.conf
    permissions: '0600'
    content: |
      first 'quoted'
        indented

      last
  - content: "inline\\tvalue"
    path: {out}/b.txt
  - path: {out}/c.txt
    encoding: b64
    content: aGVsbG8K
unknown_key: 1
"""
    translated = subprocess.run(
        ["sh", "-c", script], input=user_data, capture_output=True, text=True, check=True
    ).stdout
    assert "# ignored: unknown_key" in translated
    assert (
        translated.index("mkdir -p") < translated.index("a.conf") < translated.index("run1")
    )  # cloud-init's order
    translated = translated.replace("/bin/busybox base64", f"{BUSYBOX} base64")
    subprocess.run(["sh", "-e"], input=translated, capture_output=True, text=True, check=True)
    assert (out / "etc/a.conf").read_text() == "first 'quoted'\n  indented\n\nlast\n"
    assert stat.S_IMODE((out / "etc/a.conf").stat().st_mode) == 0o600
    assert (out / "b.txt").read_text() == "inline\tvalue\n"
    assert (out / "c.txt").read_text() == "hello\n"
    assert (out / "run1").read_text() == "one\n" and (out / "run2").read_text() == "two\n"
