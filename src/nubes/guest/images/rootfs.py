"""Root file systems: the trees of the two images, and a tree made into an ext4 disk image
(`mkfs.ext4 -d`, no loop mount) converted to qcow2."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from nubes.guest.images import cpio, debs, guestfiles
from nubes.guest.images.kernel import Kernel, resolve_modules
from nubes.guest.images.proc import ImageBuildError, require_tool, run, run_streaming

DEBIAN_SUITE = "bookworm"
DEBIAN_VARIANT = "minbase"
# minbase + sshd + the busybox whose applets the nubes scripts use (udhcpc, acpid, nc, init)
# + what a person expects on a server (ip, ps, modprobe, resize2fs).
DEBIAN_PACKAGES = ("openssh-server", "busybox-static", "e2fsprogs", "kmod", "iproute2", "procps", "netbase")
DEBOOTSTRAP_FORMAT = "1"  # bump to throw away cached debootstrap trees
DEBOOTSTRAP_MAX_AGE = 30 * 86400  # a cached tree older than this is made again (security updates)
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def write(root: Path, rel: str, text: str, mode: int = 0o644) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    path.write_text(text)
    os.chmod(path, mode)


def symlink(root: Path, rel: str, target: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.exists():
        path.unlink()
    path.symlink_to(target)


def install_nubes_files(root: Path, size_gib: int) -> None:
    for rel, (text, mode) in guestfiles.NUBES_FILES.items():
        write(root, rel, text, mode)
    (root / "var/lib/nubes").mkdir(parents=True, exist_ok=True)
    os.chmod(root / "var/lib/nubes", 0o700)
    # the disk size the file system fills; rc.sysinit grows it on a larger system disk
    write(root, "var/lib/nubes/root-sectors", f"{size_gib << 21}\n")


# ---- busybox ----------------------------------------------------------------------------------


def busybox(cache: Path, work: Path) -> tuple[Path, list[str]]:
    """The static busybox binary (from Debian's busybox-static) and its applets' paths."""
    deb = debs.download("busybox-static", cache / "debs")
    debs.extract(deb, work / "busybox-static")
    binary = next(
        (
            b
            for b in (work / "busybox-static/bin/busybox", work / "busybox-static/usr/bin/busybox")
            if b.is_file()
        ),
        None,
    )
    if binary is None:
        raise ImageBuildError("busybox-static has no bin/busybox")
    applets = run([binary, "--list-full"], what="listing busybox applets").split()
    return binary, [a for a in applets if a and not a.startswith("/")]


# ---- initramfs --------------------------------------------------------------------------------


def build_initramfs(target: Path, kernel: Kernel, busybox_binary: Path, applets: list[str]) -> None:
    """An uncompressed cpio initramfs: busybox, the modules of INITRAMFS_MODULES, /init."""
    modules = resolve_modules(kernel.modules, guestfiles.INITRAMFS_MODULES)
    entries = [
        cpio.file("init", guestfiles.INITRAMFS_INIT.encode(), 0o755),
        cpio.file("bin/busybox", busybox_binary.read_bytes(), 0o755),
        cpio.char_device("dev/console", 5, 1, 0o600),
        cpio.char_device("dev/null", 1, 3, 0o666),
        *(cpio.directory(d) for d in ("proc", "sys", "dev", "newroot", "sbin", "usr/bin", "usr/sbin")),
        cpio.file("lib/modules/load.order", "".join(f"{m.name}\n" for m in modules).encode()),
        *(cpio.file(f"lib/modules/{m.name}", m.read_bytes()) for m in modules),
    ]
    for applet in applets:
        if applet != "bin/busybox":
            entries.append(cpio.symlink(applet, "/bin/busybox"))
    cpio.write(target, entries)


# ---- tiny -------------------------------------------------------------------------------------


def tiny_tree(root: Path, busybox_binary: Path, applets: list[str], kernel: Kernel, size_gib: int) -> None:
    """A busybox system: init, the nubes scripts, no package manager, no sshd."""
    for d in (
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "dev",
        "proc",
        "sys",
        "run",
        "mnt",
        "home",
        "var/log",
        "var/lib",
        "etc/ssh",
    ):
        (root / d).mkdir(parents=True, exist_ok=True)
    for d, mode in (("tmp", 0o1777), ("root", 0o700)):
        (root / d).mkdir(exist_ok=True)
        os.chmod(root / d, mode)
    shutil.copy2(busybox_binary, root / "bin/busybox")
    os.chmod(root / "bin/busybox", 0o755)
    for applet in applets:
        if applet != "bin/busybox":
            symlink(root, applet, "/bin/busybox")
    symlink(root, "var/run", "/run")
    write(
        root,
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    write(root, "etc/group", "root:x:0:\ntty:x:5:\ndisk:x:6:\nnogroup:x:65534:\n")
    write(root, "etc/shadow", "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n", 0o600)
    write(root, "etc/shells", "/bin/sh\n/bin/ash\n")
    write(root, "etc/hostname", "nubes-tiny\n")
    write(root, "etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    write(root, "etc/resolv.conf", "")
    write(root, "etc/fstab", "/dev/vda\t/\text4\tdefaults\t0\t1\n")
    write(
        root,
        "etc/profile",
        "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
        "export PS1='\\u@\\h:\\w\\$ '\n",
    )
    version = run([busybox_binary], what="busybox version").splitlines()[0].split()[1]
    write(
        root,
        "etc/os-release",
        (
            'PRETTY_NAME="nubes tiny (BusyBox {bb}, Linux {k})"\nNAME="nubes tiny"\nID=nubes-tiny\n'
            'VERSION_ID="{bb}"\nVERSION="BusyBox {bb}"\n'
        ).format(bb=version.lstrip("v"), k=kernel.version),
    )
    write(root, "sbin/shutdown", guestfiles.SHUTDOWN_COMMAND, 0o755)
    install_nubes_files(root, size_gib)


# ---- debian -----------------------------------------------------------------------------------


def debian_mirror() -> str:
    """NUBES_DEBIAN_MIRROR, else the Debian mirror the host's apt uses, else deb.debian.org."""
    env = os.environ.get("NUBES_DEBIAN_MIRROR")
    if env:
        return env.rstrip("/")
    candidates: list[str] = []
    sources = [
        Path("/etc/apt/sources.list"),
        *sorted(Path("/etc/apt/sources.list.d").glob("*.list")),
        *sorted(Path("/etc/apt/sources.list.d").glob("*.sources")),
    ]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        candidates += re.findall(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.MULTILINE)
        candidates += [u for line in re.findall(r"^URIs:\s*(.+)$", text, re.MULTILINE) for u in line.split()]
    for uri in candidates:
        if re.match(r"^https?://", uri) and uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    return DEFAULT_MIRROR


DEBOOTSTRAP_LINES = 460  # about how many "I: ..." lines debootstrap prints for DEBIAN_PACKAGES


def debootstrap_tree(cache: Path, progress: Callable[[str, float], None] | None = None) -> Path:
    """A Debian 12 minbase tree with DEBIAN_PACKAGES, made once and kept in the cache
    (re-made after DEBOOTSTRAP_MAX_AGE); the .debs stay in the cache for the next one.
    `progress` gets debootstrap's current step and an estimated fraction done."""
    require_tool("debootstrap", "debootstrap")
    mirror = debian_mirror()
    key = hashlib.sha256(
        f"{DEBOOTSTRAP_FORMAT}|{DEBIAN_SUITE}|{DEBIAN_VARIANT}|{','.join(DEBIAN_PACKAGES)}|{mirror}".encode()
    ).hexdigest()[:16]
    base = cache / "debootstrap"
    tree = base / f"tree-{DEBIAN_SUITE}-{key}"
    stamp = tree / ".nubes-debootstrap"
    if stamp.is_file() and time.time() - stamp.stat().st_mtime < DEBOOTSTRAP_MAX_AGE:
        return tree
    (base / "debs").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=base, prefix=".debootstrap-") as tmp:
        target = Path(tmp) / "root"
        lines = 0

        def on_line(line: str) -> None:
            nonlocal lines
            if line.startswith("I: "):
                lines += 1
                if progress is not None:
                    progress(line[3:].rstrip("."), min(lines / DEBOOTSTRAP_LINES, 0.99))

        run_streaming(
            [
                "debootstrap",
                f"--variant={DEBIAN_VARIANT}",
                "--arch=amd64",
                f"--include={','.join(DEBIAN_PACKAGES)}",
                f"--cache-dir={base / 'debs'}",
                DEBIAN_SUITE,
                target,
                mirror,
            ],
            what=f"debootstrap {DEBIAN_SUITE} from {mirror}",
            on_line=on_line,
        )
        (target / ".nubes-debootstrap").write_text(f"{DEBIAN_SUITE} {mirror} {' '.join(DEBIAN_PACKAGES)}\n")
        if tree.exists():
            shutil.rmtree(tree)
        target.rename(tree)
    for old in base.glob(f"tree-{DEBIAN_SUITE}-*"):
        if old != tree:
            shutil.rmtree(old, ignore_errors=True)
    return tree


def copy_tree(source: Path, target: Path) -> None:
    """A full copy (owners, modes, hard links, device nodes, xattrs): `cp -a`."""
    run(["cp", "-a", "--", source, target], what="copying the Debian tree")


def debian_tree(root: Path, kernel: Kernel, mirror: str, size_gib: int) -> None:
    """Turn a debootstrap tree into the nubes Debian 12 image (in place)."""
    (root / ".nubes-debootstrap").unlink(missing_ok=True)
    # per-instance things are made at first boot, by nubes-init
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    write(root, "etc/machine-id", "")
    write(root, "etc/hostname", "debian\n")
    write(
        root,
        "etc/hosts",
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        "ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    )
    write(root, "etc/resolv.conf", "")  # debootstrap copied the host's
    write(
        root,
        "etc/fstab",
        "# <file system> <mount point> <type> <options> <dump> <pass>\n"
        "/dev/vda\t/\text4\terrors=remount-ro\t0\t1\n",
    )
    # apt: the mirror the image was made from, with updates and security updates
    security = mirror.rsplit("/", 1)[0] + "/debian-security" if mirror.endswith("/debian") else mirror
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    write(
        root,
        "etc/apt/sources.list.d/debian.sources",
        (
            f"Types: deb\nURIs: {mirror}\nSuites: {DEBIAN_SUITE} {DEBIAN_SUITE}-updates\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
            f"Types: deb\nURIs: {security}\nSuites: {DEBIAN_SUITE}-security\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        ),
    )
    for junk in ("var/lib/apt/lists", "var/cache/apt/archives"):
        for path in (root / junk).glob("*"):
            if path.is_file() or path.is_symlink():
                path.unlink()
    for path in (root / "var/cache/apt").glob("*.bin"):
        path.unlink()
    for log in ("var/log/dpkg.log", "var/log/alternatives.log", "var/log/bootstrap.log"):
        (root / log).unlink(missing_ok=True)
    for path in (root / "var/log/apt").glob("*"):
        path.unlink()
    # init: busybox init running the nubes scripts (no systemd: slow under emulation)
    for name in ("init", "reboot", "poweroff", "halt"):
        symlink(root, f"usr/sbin/{name}", "/bin/busybox")
    write(root, "usr/sbin/shutdown", guestfiles.SHUTDOWN_COMMAND, 0o755)
    # invoke-rc.d (a package's postinst starting its service) asks for the runlevel
    write(
        root,
        "usr/sbin/runlevel",
        "#!/bin/sh\n# nubes: busybox init has no runlevels; this is multi-user\necho N 2\n",
        0o755,
    )
    write(
        root,
        "etc/ssh/sshd_config.d/nubes.conf",
        "# nubes: root logs in with the instance's key pair, or with its password if it has one\n"
        "PermitRootLogin yes\n",
    )
    root_home = root / "root"
    (root_home / ".ssh").mkdir(parents=True, exist_ok=True)
    os.chmod(root_home / ".ssh", 0o700)
    install_nubes_files(root, size_gib)
    # kernel modules, for modprobe
    modules = root / "usr/lib/modules" / kernel.version
    if modules.exists():
        shutil.rmtree(modules)
    shutil.copytree(kernel.modules, modules, symlinks=True)
    require_tool("depmod", "kmod")
    run(["depmod", "-b", root, kernel.version], what="depmod for the Debian image")


# ---- disks ------------------------------------------------------------------------------------


def make_disk(tree: Path, target: Path, size_gib: int, label: str) -> None:
    """`tree` as an ext4 file system of `size_gib` GiB in a qcow2 file (no loop mounts)."""
    mkfs = require_tool("mkfs.ext4", "e2fsprogs")
    require_tool("qemu-img", "qemu-utils")
    raw = target.with_suffix(".raw")
    with open(raw, "wb") as f:
        f.truncate(size_gib << 30)
    try:
        # itable/journal zeroed now (cheap: sparse, and qemu-img skips zeros) rather than
        # by ext4lazyinit in every new instance, which would fill its overlay
        run(
            [mkfs, "-q", "-F", "-L", label, "-d", tree, "-E", "lazy_itable_init=0,lazy_journal_init=0", raw],
            what="mkfs.ext4 -d",
        )
        run(
            ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=65536", raw, target],
            what="qemu-img convert to qcow2",
        )
    finally:
        raw.unlink(missing_ok=True)
