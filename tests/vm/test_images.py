"""The system images boot and do what the init agent promises, under a plain QEMU command line
(TCG): the ready line with the instance id, metadata applied (host name, SSH keys, password
hash, user data once per instance; hardened-mode tokens), SSH login on Debian, ACPI power-off
and guest-initiated reboot/power-off."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from nubes.guest.images import READY_MARKER, ImageManifest, build_image, builder_version, load_manifest
from nubes.guest.images.kernel import has_pvh_note
from tests.vm.helpers import MetadataServer, SshKey, Vm, instance_tree, ssh, wait_ssh

pytestmark = pytest.mark.vm

# the serial log is written a byte at a time: match whole lines only
READY = rf"{READY_MARKER} instance-id=(\S*)\r?\n"
BOOT_TIMEOUT = 120  # seconds; a loaded 2-core CI machine boots much slower than the ~3 s here
POWERDOWN_LIMIT = 10
# crypt(3) of "nubes-test" (SHA-512); the agent sets it as root's password hash
PASSWORD_HASH = (
    "$6$nubestestsalt$NZ9ZvBrEKFqGHHsIdEkXvJues8SV0KfFVVuqy0.ejuXXWjqMF/GZRGqKtOmfYrH4K48AcsDKdIuwkBnIsH7z6/"
)

# A user-data script for images without sshd: reports what the agent applied on the console.
REPORT_SCRIPT = """#!/bin/sh
keys=$(grep -c nubes-test /root/.ssh/authorized_keys)
hash=$(grep '^root:' /etc/shadow | cut -d: -f2)
echo "CHECK hostname=$(hostname) keys=$keys hash=$hash" > /dev/console
"""


def _powerdown(vm: Vm) -> float:
    """QMP system_powerdown; the seconds until the QEMU process exited (fails after the limit)."""
    started = time.monotonic()
    with vm.qmp() as qmp:
        qmp.execute("system_powerdown")
    code = vm.wait_exit(POWERDOWN_LIMIT)
    assert code is not None, (
        f"still running {POWERDOWN_LIMIT} s after system_powerdown:\n{vm.console()[-2000:]}"
    )
    return time.monotonic() - started


# ---- the build and its cache --------------------------------------------------------------------


def test_build_is_cached_and_manifest_complete(tiny_image: ImageManifest, images_dir: Path) -> None:
    started = time.monotonic()
    again = build_image("tiny", images_dir)
    assert time.monotonic() - started < 5
    assert again == tiny_image == load_manifest(images_dir, "tiny")
    assert tiny_image.builder_version == builder_version("tiny")
    assert re.fullmatch(r"nubes_tiny_x64_1G_busybox_\d{8}\.vhd", tiny_image.image_id)
    assert (tiny_image.name, tiny_image.size_gib, tiny_image.login) == ("tiny", 1, "console")
    assert (tiny_image.os_type, tiny_image.architecture, tiny_image.ready_marker) == (
        "linux",
        "x86_64",
        READY_MARKER,
    )
    kernel = tiny_image.path(images_dir, "kernel").read_bytes()
    assert kernel.startswith(b"\x7fELF") and has_pvh_note(kernel)
    assert tiny_image.path(images_dir, "initrd").read_bytes()[:6] == b"070701"
    assert tiny_image.path(images_dir, "rootfs").read_bytes()[:4] == b"QFI\xfb"
    assert "root=/dev/vda" in tiny_image.cmdline and "console=ttyS0" in tiny_image.cmdline


# ---- tiny ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hardened", "no-token-endpoint", "plain"])
def test_tiny_boots_and_applies_metadata(
    mode: str,
    tiny_image: ImageManifest,
    images_dir: Path,
    vm_workdir: Path,
    ssh_key: SshKey,
    boot_timings: dict[str, list[float]],
) -> None:
    """Three boots (their median is the tiny image's boot time), one per metadata mode: the
    token required (hardened), no token endpoint (the agent falls back to plain GETs), and
    tokens offered but not required."""
    instance_id = f"i-tiny{mode.replace('-', '')[:8]}"
    tree = instance_tree(instance_id, f"tiny-{mode}", [ssh_key.public], REPORT_SCRIPT, PASSWORD_HASH)
    server = MetadataServer(
        tree, require_token=mode == "hardened", token_endpoint=mode != "no-token-endpoint"
    )
    with server as md, Vm(tiny_image, images_dir, vm_workdir, md.port) as vm:
        ready = vm.wait_for(READY, BOOT_TIMEOUT)
        boot_timings.setdefault("tiny boot to ready (q35)", []).append(time.monotonic() - vm.started)
        assert ready.group(1) == instance_id
        check = vm.wait_for(r"CHECK hostname=(\S*) keys=(\d+) hash=(\S*)\r?\n", 60)
        assert check.groups() == (f"tiny-{mode}", "1", PASSWORD_HASH)
        vm.wait_for(rf"NUBES-USERDATA instance-id={instance_id} exit=0", 30)
        vm.wait_for(rf"tiny-{mode} login:", 30)  # getty runs, with the new host name
    gets = [r for r in md.requests if r.method == "GET"]
    puts = [r for r in md.requests if r.method == "PUT"]
    assert {r.path for r in gets} >= {
        "/latest/meta-data/instance-id",
        "/latest/meta-data/hostname",
        "/latest/meta-data/public-keys/",
        "/latest/meta-data/public-keys/0/openssh-key",
        "/latest/nubes/password-hash",
        "/latest/user-data",
    }
    assert puts and puts[0].path == "/latest/api/token"
    if mode == "no-token-endpoint":
        assert all(r.token is None for r in gets)
    else:
        assert all(r.token in md.tokens for r in gets)


# user data that reports the /dev/disk/by-id links whenever they change
WATCH_BY_ID = r"""#!/bin/sh
last=""
while true; do
  now="$(cd /dev/disk/by-id 2>/dev/null && for l in *; do [ -L "$l" ] && printf '%s=%s,' "$l" "$(readlink "$l")"; done)"
  if [ "$now" != "$last" ]; then echo "BY-ID:$now" > /dev/console; last="$now"; fi
  sleep 0.2
done
"""


def test_tiny_disk_links_and_acpi_powerdown(
    tiny_image: ImageManifest, images_dir: Path, vm_workdir: Path
) -> None:
    """/dev/disk/by-id/virtio-<serial> for the system disk and a hot-plugged one (gone when it
    is unplugged); then QMP system_powerdown powers the guest off within 10 s."""
    data = vm_workdir / "data.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(data), "64M"], check=True)
    with (
        MetadataServer(instance_tree("i-tinypower", "tiny-power", user_data=WATCH_BY_ID)) as md,
        Vm(tiny_image, images_dir, vm_workdir, md.port, hotplug_ports=1) as vm,
    ):
        vm.wait_for(READY, BOOT_TIMEOUT)
        system_only = vm.wait_for(r"BY-ID:virtio-d-systemdisk0001=\.\./\.\./vda,\n", 30)
        with vm.qmp() as qmp:
            qmp.execute(
                "blockdev-add",
                driver="qcow2",
                **{"node-name": "data1"},
                file={"driver": "file", "filename": str(data)},
            )
            qmp.execute(
                "device_add",
                driver="virtio-blk-pci",
                id="data1dev",
                drive="data1",
                bus="rp1",
                serial="d-hotplug0001",
            )
        plugged = vm.wait_for(
            r"BY-ID:virtio-d-hotplug0001=\.\./\.\./vdb,virtio-d-systemdisk0001=\.\./\.\./vda,",
            30,
            after=system_only.end(),
        )
        with vm.qmp() as qmp:
            qmp.execute("device_del", id="data1dev")
        vm.wait_for(r"BY-ID:virtio-d-systemdisk0001=\.\./\.\./vda,\n", 30, after=plugged.end())
        _powerdown(vm)
        assert "reboot: Power down" in vm.console()


def test_tiny_console_login_with_the_password(
    tiny_image: ImageManifest, images_dir: Path, vm_workdir: Path
) -> None:
    """The tiny image's login is the serial console, with the password whose hash the
    metadata gives (nubes/password-hash)."""
    tree = instance_tree("i-tinylogin", "tiny-login", password_hash=PASSWORD_HASH)
    with (
        MetadataServer(tree) as md,
        Vm(tiny_image, images_dir, vm_workdir, md.port, serial_socket=True) as vm,
    ):
        vm.wait_for("tiny-login login: ", BOOT_TIMEOUT)
        with vm.console_socket() as console:
            console.sendall(b"root\r")
            vm.wait_for("Password: ", 30)
            console.sendall(b"nubes-test\r")
            prompt = vm.wait_for(r"root@tiny-login:~# ", 30)
            console.sendall(b"echo LOGGED-IN-$((40 + 2))\r")
            vm.wait_for("LOGGED-IN-42", 30, after=prompt.end())


def test_tiny_on_microvm(
    tiny_image: ImageManifest, images_dir: Path, vm_workdir: Path, boot_timings: dict[str, list[float]]
) -> None:
    """The same image on QEMU's microvm (virtio-mmio, no PCI; and -cpu max): boots, powers
    off by ACPI."""
    with (
        MetadataServer(instance_tree("i-tinymicro", "tiny-micro")) as md,
        Vm(tiny_image, images_dir, vm_workdir, md.port, machine="microvm", cpu="max") as vm,
    ):
        assert vm.wait_for(READY, BOOT_TIMEOUT).group(1) == "i-tinymicro"
        boot_timings.setdefault("tiny boot to ready (microvm)", []).append(time.monotonic() - vm.started)
        vm.wait_for("tiny-micro login:", 30)
        _powerdown(vm)


def test_tiny_guest_reboot_runs_user_data_once(
    tiny_image: ImageManifest, images_dir: Path, vm_workdir: Path
) -> None:
    """A user-data script that reboots the guest runs once: the second boot does not run it."""
    script = "#!/bin/sh\necho USER-DATA-RAN > /dev/console\nreboot\n"
    with (
        MetadataServer(instance_tree("i-tinyreboot", "tiny-reboot", user_data=script)) as md,
        Vm(tiny_image, images_dir, vm_workdir, md.port) as vm,
    ):
        first = vm.wait_for(READY, BOOT_TIMEOUT)
        vm.wait_for("USER-DATA-RAN", 30)
        requests_before = len(md.requests)
        vm.wait_for("reboot: Restarting system", 30)
        second = vm.wait_for(READY, BOOT_TIMEOUT, after=first.end())
        vm.wait_for("tiny-reboot login:", 30, after=second.end())
        _powerdown(vm)
        console = vm.console()
    assert console.count("USER-DATA-RAN") == 1
    assert console.count("NUBES-READY instance-id=i-tinyreboot") == 2
    assert "did not answer" not in console  # the second boot read the metadata too
    assert any(r.path == "/latest/meta-data/instance-id" for r in md.requests[requests_before:])


def test_tiny_cloud_config_and_guest_poweroff(
    tiny_image: ImageManifest, images_dir: Path, vm_workdir: Path
) -> None:
    """#cloud-config user data (write_files, then runcmd); the last command powers the guest off."""
    cloud_config = """#cloud-config
runcmd:
  - [ sh, -c, "echo FILE=$(cat /etc/nubes-test.conf) MODE=$(stat -c %a /etc/nubes-test.conf) > /dev/console" ]
  - poweroff
write_files:
  - path: /etc/nubes-test.conf
    permissions: '0600'
    content: |
      written-by-cloud-config
"""
    with (
        MetadataServer(instance_tree("i-tinycloud", "tiny-cloud", user_data=cloud_config)) as md,
        Vm(tiny_image, images_dir, vm_workdir, md.port) as vm,
    ):
        vm.wait_for(READY, BOOT_TIMEOUT)
        vm.wait_for(r"FILE=written-by-cloud-config MODE=600", 60)
        assert vm.wait_exit(30) is not None, f"the guest did not power off:\n{vm.console()[-2000:]}"


# ---- debian -------------------------------------------------------------------------------------


def test_debian_ssh_metadata_reboot_powerdown(
    debian_image: ImageManifest,
    images_dir: Path,
    vm_workdir: Path,
    ssh_key: SshKey,
    boot_timings: dict[str, list[float]],
) -> None:
    """One Debian instance through its life: first boot on a system disk larger than the image
    (metadata applied, file system grown, SSH with the key, user data run), a reboot from
    inside (user data not run again), ACPI power-off."""
    assert (debian_image.login, debian_image.size_gib, debian_image.platform) == ("ssh", 20, "Debian")
    user_data = '#!/bin/sh\necho "ran at $(cat /proc/uptime)" >> /root/user-data-runs\n'
    tree = instance_tree("i-debian0001", "debian-test", [ssh_key.public], user_data, PASSWORD_HASH)
    with (
        MetadataServer(tree) as md,
        Vm(debian_image, images_dir, vm_workdir, md.port, disk_size_gib=24) as vm,
    ):
        first = vm.wait_for(READY, BOOT_TIMEOUT)
        boot_timings.setdefault("debian-12 boot to ready (q35)", []).append(time.monotonic() - vm.started)
        assert first.group(1) == "i-debian0001"
        started = time.monotonic()
        login = wait_ssh(vm.ssh_port, ssh_key, 90)
        assert login.returncode == 0, login.stderr
        boot_timings.setdefault("debian-12 ready to first ssh login", []).append(time.monotonic() - started)
        vm.wait_for("NUBES-USERDATA instance-id=i-debian0001 exit=0", 60)

        out = ssh(
            vm.ssh_port,
            ssh_key,
            "hostname; wc -l < /root/user-data-runs; grep '^root:' /etc/shadow | cut -d: -f2;"
            " . /etc/os-release; echo $VERSION_ID; readlink /dev/disk/by-id/virtio-d-systemdisk0001;"
            " cat /proc/1/comm; modprobe -n -v vfat >/dev/null && echo modprobe-ok;"
            " df --output=size -B1G / | tail -n 1",
        )
        assert out.returncode == 0, out.stderr
        *facts, root_gib = out.stdout.split()
        assert facts == ["debian-test", "1", PASSWORD_HASH, "12", "../../vda", "init", "modprobe-ok"]
        assert int(root_gib) >= 23  # grown from the image's 20 GiB to the 24 GiB disk

        # a reboot from inside: the metadata is read again, the user data does not run again
        requests_before = len(md.requests)
        ssh(vm.ssh_port, ssh_key, "reboot", timeout=30)
        reboot_started = time.monotonic()
        second = vm.wait_for(READY, BOOT_TIMEOUT, after=first.end())
        boot_timings.setdefault("debian-12 reboot to ready", []).append(time.monotonic() - reboot_started)
        assert second.group(1) == "i-debian0001"
        login = wait_ssh(vm.ssh_port, ssh_key, 90)
        assert login.returncode == 0, login.stderr
        out = ssh(vm.ssh_port, ssh_key, "wc -l < /root/user-data-runs; hostname")
        assert out.stdout.split() == ["1", "debian-test"]
        log = ssh(vm.ssh_port, ssh_key, "cat /var/log/nubes-init.log").stdout
        assert any(r.path == "/latest/meta-data/instance-id" for r in md.requests[requests_before:]), log

        _powerdown(vm)
    assert vm.console().count("NUBES-USERDATA") == 1
    assert "did not answer" not in vm.console()
