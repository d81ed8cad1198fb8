"""The files nubes puts into its guests: the initramfs /init, the boot and shutdown scripts
(busybox init runs them), the DHCP hook, and the init agent that applies the instance's
metadata. Both images (tiny and debian-12) carry the same scripts; every script runs under
busybox's shell (`/bin/busybox sh`) and calls busybox applets through `$BB`, so it behaves
the same whatever else the image has.

The scripts themselves are real files, shipped as package data in `nubes/guest/files/` (so they
can be read, linted and run by the tests as they are); this module names them. The builder
hashes them: any change to one changes the builder version and the cached images are rebuilt."""

from __future__ import annotations

import hashlib
from importlib import resources


def _guest_file(name: str) -> str:
    return resources.files("nubes.guest").joinpath("files", name).read_text(encoding="utf-8")


# The modules the initramfs loads (their dependencies are added): PCI and MMIO virtio (q35/pc
# and microvm), the system disk, the network, ext4 (+ the crc32c it wants), the ACPI power
# button and its input events (for acpid), and the virtio RNG (entropy for sshd, if present).
INITRAMFS_MODULES = (
    "virtio_pci",
    "virtio_mmio",
    "virtio_blk",
    "virtio_net",
    "virtio_rng",
    "crc32c_generic",
    "ext4",
    "button",
    "evdev",
    "bochs",  # the std VGA's DRM driver: a framebuffer console (tty0) on the VM's screen
)

# /init of the initramfs: load the drivers, wait for the root device, mount it, switch to it.
INITRAMFS_INIT = _guest_file("initramfs-init")

INITTAB = _guest_file("inittab")

RC_SYSINIT = _guest_file("rc.sysinit")

RC_SHUTDOWN = _guest_file("rc.shutdown")

# The ACPI power button event of busybox acpid ("PWRF", code 0x80).
ACPI_POWER_BUTTON = _guest_file("acpi-power-button")

UDHCPC_SCRIPT = _guest_file("udhcpc.script")

# /dev/disk/by-id/virtio-<serial>[-partN], as udev names them (the disk's serial is the
# ECS disk id the host gave it).
DISK_LINKS = _guest_file("disk-links")

# Run by busybox `uevent` for each kernel event (the kernel has no uevent helper).
UEVENT = _guest_file("uevent")
# A NIC plugged in (or out) while the guest runs: DHCP on it (an interface attached to a running
# instance), source routing for a NIC besides eth0 (in udhcpc.script).
NIC_EVENT = _guest_file("nic")

# /sbin/shutdown for images whose init is busybox init (Debian's is systemd's or sysvinit's).
SHUTDOWN_COMMAND = _guest_file("shutdown")

# The init agent. Reads http://100.100.100.200/latest/ (hardened mode first: a token from
# PUT /latest/api/token, sent back as X-aliyun-ecs-metadata-token; plain GETs if that fails).
NUBES_INIT = _guest_file("nubes-init")

# A #cloud-config subset, turned into a shell script: write_files (path, content with
# "|"/">"/quoted/plain scalars, encoding b64, permissions, owner, append), runcmd (strings or
# [argv] lists), packages (apt-get), ssh_authorized_keys, bootcmd (run here too), and
# final_message. Anything else is ignored (and listed in the log).
CLOUD_CONFIG = _guest_file("cloud-config")

NUBES_FILES: dict[str, tuple[str, int]] = {
    # path in the root file system -> (contents, mode)
    "usr/lib/nubes/rc.sysinit": (RC_SYSINIT, 0o755),
    "usr/lib/nubes/rc.shutdown": (RC_SHUTDOWN, 0o755),
    "usr/lib/nubes/nubes-init": (NUBES_INIT, 0o755),
    "usr/lib/nubes/cloud-config": (CLOUD_CONFIG, 0o755),
    "usr/lib/nubes/udhcpc.script": (UDHCPC_SCRIPT, 0o755),
    "usr/lib/nubes/disk-links": (DISK_LINKS, 0o755),
    "usr/lib/nubes/uevent": (UEVENT, 0o755),
    "usr/lib/nubes/nic": (NIC_EVENT, 0o755),
    "etc/acpi/PWRF/00000080": (ACPI_POWER_BUTTON, 0o755),
    "etc/inittab": (INITTAB, 0o644),
}


def fingerprint() -> str:
    """A hash of everything in this module that ends up in an image."""
    h = hashlib.sha256()
    for part in (INITRAMFS_INIT, *INITRAMFS_MODULES, SHUTDOWN_COMMAND):
        h.update(part.encode() + b"\0")
    for path, (text, mode) in sorted(NUBES_FILES.items()):
        h.update(f"{path}:{mode:o}:{text}\0".encode())
    return h.hexdigest()
