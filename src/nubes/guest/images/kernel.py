"""The guest kernel: Debian's linux-image package, unpacked (not installed), its vmlinux
pulled out of the bzImage, and the modules a guest needs picked out with their dependencies."""

from __future__ import annotations

import bz2
import json
import lzma
import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from nubes.guest.images import debs
from nubes.guest.images.proc import ImageBuildError

KERNEL_METAPACKAGE = os.environ.get("NUBES_KERNEL_PACKAGE", "linux-image-amd64")
KERNEL_CACHE_FORMAT = "3"  # bump when what is kept of an unpacked kernel changes

# Module trees a cloud guest never needs (no such hardware in a VM); the rest is kept in
# the Debian image's /lib/modules so `modprobe` works there (netfilter, file systems, ...).
MODULE_EXCLUDES = (
    "sound",
    "drivers/media",
    "drivers/gpu",
    "drivers/infiniband",
    "drivers/usb",
    "drivers/iio",
    "drivers/staging",
    "drivers/net/wireless",
    "drivers/net/ethernet",
    "drivers/net/usb",
    "drivers/net/wwan",
    "drivers/net/can",
    "drivers/net/ieee802154",
    "drivers/bluetooth",
    "drivers/isdn",
    "drivers/comedi",
    "drivers/mtd",
    "drivers/hwmon",
    "drivers/mmc",
    "drivers/memstick",
    "drivers/thunderbolt",
    "drivers/firewire",
    "drivers/pcmcia",
    "drivers/platform",
    "drivers/nfc",
    "drivers/w1",
    "drivers/atm",
    "drivers/video",
    "drivers/hid",
    "drivers/leds",
    "drivers/input/joystick",
    "drivers/input/touchscreen",
    "drivers/input/tablet",
    "net/wireless",
    "net/mac80211",
    "net/bluetooth",
    "net/nfc",
    "net/ieee802154",
    "net/mac802154",
    "net/can",
)

# Modules kept out of the trees above, with their dependencies: the QEMU standard VGA's DRM
# driver, which gives the guest a framebuffer console on the VM's screen (VNC, screenshots).
MODULE_KEEPS = ("bochs",)

# XEN_ELFNOTE_PHYS32_ENTRY: the PVH entry point QEMU needs to boot an ELF vmlinux directly.
_PVH_NOTE_TYPE = 18


@dataclass(frozen=True)
class Kernel:
    version: str  # uname -r, e.g. 6.1.0-56-amd64
    package: str  # e.g. linux-image-6.1.0-56-amd64_6.1.192-2
    image: Path  # an uncompressed vmlinux with a PVH note, or the bzImage when it has none
    pvh: bool
    modules: Path  # lib/modules/<version>, pruned of MODULE_EXCLUDES (but for MODULE_KEEPS)


# ---- vmlinux out of a bzImage ---------------------------------------------------------------


def _decompress(payload: bytes) -> bytes:
    if payload.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
    if payload.startswith(b"\x1f\x8b"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(payload)
    if payload.startswith(b"BZh"):
        return bz2.BZ2Decompressor().decompress(payload)
    if payload.startswith(b"\x5d\x00\x00"):
        return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(payload)
    if payload.startswith(b"\x28\xb5\x2f\xfd"):  # zstd: no module in the standard library
        proc = subprocess.run(["zstd", "-dc"], input=payload, capture_output=True, check=False)
        if proc.returncode != 0:
            raise ImageBuildError("zstd -dc failed on the kernel payload (Debian package: zstd)")
        return proc.stdout
    raise ImageBuildError(f"unknown compression of the kernel payload (magic {payload[:6].hex()})")


def extract_vmlinux(bzimage: bytes) -> bytes:
    """The uncompressed ELF kernel inside a bzImage (x86 boot protocol >= 2.08)."""
    if bzimage[0x202:0x206] != b"HdrS" or struct.unpack_from("<H", bzimage, 0x206)[0] < 0x208:
        raise ImageBuildError("the kernel is not a bzImage with boot protocol 2.08 or later")
    setup_sects = bzimage[0x1F1] or 4
    offset, length = struct.unpack_from("<II", bzimage, 0x248)
    start = (setup_sects + 1) * 512 + offset
    elf = _decompress(bzimage[start : start + length])
    if not elf.startswith(b"\x7fELF\x02"):
        raise ImageBuildError("the bzImage payload is not a 64-bit ELF kernel")
    return elf


def has_pvh_note(elf: bytes) -> bool:
    """True if a 64-bit ELF kernel has the Xen PVH entry note (QEMU boots it directly)."""
    phoff = struct.unpack_from("<Q", elf, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack_from(
            "<IIQQQQ", elf, phoff + i * phentsize
        )
        if p_type != 4:  # PT_NOTE
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12 : pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == _PVH_NOTE_TYPE:
                return True
            pos += 12 + ((namesz + 3) & ~3) + ((descsz + 3) & ~3)
    return False


# ---- modules --------------------------------------------------------------------------------


def modinfo(path: Path) -> dict[str, list[str]]:
    """The .modinfo section of a kernel module (key -> values)."""
    data = path.read_bytes()
    if not data.startswith(b"\x7fELF\x02"):
        raise ImageBuildError(
            f"{path.name} is not a 64-bit ELF module (compressed modules are not supported)"
        )
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def section(i: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, offset, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        return name, offset, size

    _, str_off, _ = section(shstrndx)
    info: dict[str, list[str]] = {}
    for i in range(shnum):
        name_off, offset, size = section(i)
        name = data[str_off + name_off : data.index(b"\0", str_off + name_off)]
        if name == b".modinfo":
            for item in data[offset : offset + size].split(b"\0"):
                if b"=" in item:
                    key, value = item.decode(errors="replace").split("=", 1)
                    info.setdefault(key, []).append(value)
    return info


def module_index(modules: Path) -> dict[str, Path]:
    """Module name (dashes as underscores) -> its .ko under `modules` (lib/modules/<version>)."""
    index: dict[str, Path] = {}
    for path in (modules / "kernel").rglob("*.ko"):
        index[path.stem.replace("-", "_")] = path
    return index


def builtin_modules(modules: Path) -> set[str]:
    try:
        lines = (modules / "modules.builtin").read_text().split()
    except OSError:
        return set()
    return {Path(line).name.removesuffix(".ko").replace("-", "_") for line in lines}


def resolve_modules(modules: Path, wanted: tuple[str, ...]) -> list[Path]:
    """The .ko files to load for `wanted`, dependencies first (built-in ones left out)."""
    index = module_index(modules)
    builtin = builtin_modules(modules)
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        name = name.replace("-", "_")
        if name in seen or name in builtin:
            return
        if name not in index:
            raise ImageBuildError(
                f"kernel module {name} not found (needed by {' <- '.join(chain) or 'the image'})"
            )
        seen.add(name)
        for dep in modinfo(index[name]).get("depends", [""])[0].split(","):
            if dep:
                visit(dep, (name, *chain))
        order.append(index[name])

    for name in wanted:
        visit(name, ())
    return order


# ---- the kernel package ---------------------------------------------------------------------


def prepare(cache: Path) -> Kernel:
    """Download (once) and unpack (once per package version) the guest kernel into `cache`."""
    debs_dir = cache / "debs"
    package = debs.resolve_dependency(KERNEL_METAPACKAGE, "linux-image-", debs_dir)
    deb = debs.download(package, debs_dir)
    key = deb.name.removesuffix(".deb").rsplit("_", 1)[0]
    root = cache / "kernel" / f"{key}-{KERNEL_CACHE_FORMAT}"
    done = root / "kernel.json"
    if not done.is_file():
        root.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root.parent, prefix=".unpack-") as tmp:
            work = Path(tmp)
            debs.extract(deb, work / "pkg")
            _unpack_into(work / "pkg", work / "out")
            if root.exists():
                shutil.rmtree(root)
            (work / "out").rename(root)
        for old in root.parent.iterdir():  # other kernels (images keep hard links to their vmlinux)
            if old != root and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)
    version = (root / "version").read_text().strip()
    image = root / "vmlinux"
    pvh = image.is_file()
    return Kernel(
        version=version,
        package=key,
        image=image if pvh else root / "vmlinuz",
        pvh=pvh,
        modules=root / "modules" / version,
    )


def _unpack_into(pkg: Path, out: Path) -> None:
    boot = sorted((pkg / "boot").glob("vmlinuz-*"))
    if len(boot) != 1:
        raise ImageBuildError(f"expected one boot/vmlinuz-* in the kernel package, found {len(boot)}")
    version = boot[0].name.removeprefix("vmlinuz-")
    moddir = next(
        (d for d in (pkg / "lib/modules" / version, pkg / "usr/lib/modules" / version) if d.is_dir()), None
    )
    if moddir is None:
        raise ImageBuildError(f"the kernel package has no modules directory for {version}")
    out.mkdir()
    bzimage = boot[0].read_bytes()
    elf = extract_vmlinux(bzimage)
    if has_pvh_note(elf):
        (out / "vmlinux").write_bytes(elf)
    else:
        (out / "vmlinuz").write_bytes(bzimage)  # no PVH entry: QEMU must boot the bzImage
    keep = [p.relative_to(moddir) for p in resolve_modules(moddir, MODULE_KEEPS)]
    saved = out / "keep"
    for ko in keep:  # set aside while their trees go
        (saved / ko).parent.mkdir(parents=True, exist_ok=True)
        (moddir / ko).rename(saved / ko)
    for rel in MODULE_EXCLUDES:
        shutil.rmtree(moddir / "kernel" / rel, ignore_errors=True)
    for ko in keep:
        (moddir / ko).parent.mkdir(parents=True, exist_ok=True)
        (saved / ko).rename(moddir / ko)
    shutil.rmtree(saved, ignore_errors=True)
    (out / "modules").mkdir()
    moddir.rename(out / "modules" / version)
    (out / "version").write_text(version + "\n")
    (out / "kernel.json").write_text(json.dumps({"version": version}) + "\n")
