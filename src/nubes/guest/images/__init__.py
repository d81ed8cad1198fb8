"""nubes' system images, built from Debian packages on the machine that runs nubes.

- **tiny**: Debian's kernel + a busybox userland; boots to its ready line in about 2 s under
  software emulation. Console login only (no sshd).
- **debian-12**: a debootstrap'd Debian 12 (minbase + openssh-server) with busybox init.

Both boot directly (kernel + initramfs of our own, root on /dev/vda, ext4) and run the same
init agent (`guestfiles.NUBES_INIT`), which applies the ECS metadata at every boot and prints
`NUBES-READY instance-id=<id>` on ttyS0.

    manifest = build_image("tiny", Path("/var/lib/nubes/images"), progress=print)
"""

from nubes.guest.images.build import IMAGE_NAMES, build_image, builder_version
from nubes.guest.images.manifest import READY_MARKER, USER_DATA_MARKER, ImageManifest, load_manifest
from nubes.guest.images.proc import ImageBuildError

__all__ = [
    "IMAGE_NAMES",
    "READY_MARKER",
    "USER_DATA_MARKER",
    "ImageBuildError",
    "ImageManifest",
    "build_image",
    "builder_version",
    "load_manifest",
]
