"""Done when (storage issue), on real VMs through the official SDK: a data disk hot-plugged into
a running instance is found in the guest and written; a snapshot of it, a change, a ResetDisk
brings the snapshot's content back; a disk created from the snapshot and attached to a second
instance has the file; an image created from the instance launches an instance that has its
files; the image shared with a second account launches there."""

from __future__ import annotations

import functools
import http.server
import re
import shlex
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em

from nubes.guest.images import ImageManifest
from tests.conftest import LiveServer
from tests.e2e.conftest import make_net

from .test_instance_lifecycle import REGION, SMALL, _start, _teardown, image_id, nubes_ssh, wait_status

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def cloud(
    images_dir: Path, debian_image: ImageManifest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    server = _start(tmp_path_factory.mktemp("disks"), images_dir)
    yield server
    _teardown(server)


def wait_for(check: Any, timeout: float = 120, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(every)
        value = check()
    return value


def disk_status(ecs: Any, disk_id: str) -> str:
    return str(
        ecs.describe_disks(em.DescribeDisksRequest(region_id=REGION, disk_ids=f'["{disk_id}"]'))
        .body.disks.disk[0]
        .status
    )


def snapshot_status(ecs: Any, snapshot_id: str) -> str:
    return str(
        ecs.describe_snapshots(
            em.DescribeSnapshotsRequest(region_id=REGION, snapshot_ids=f'["{snapshot_id}"]')
        )
        .body.snapshots.snapshot[0]
        .status
    )


def image_status(ecs: Any, image: str) -> str:
    found = ecs.describe_images(
        em.DescribeImagesRequest(region_id=REGION, image_id=image, status="Creating,Available")
    )
    return str(found.body.images.image[0].status) if found.body.images.image else ""


class Guest:
    """An instance and a way to run shell commands in it."""

    def __init__(self, cloud: LiveServer, key: tuple[str, str], key_file: Path, instance_id: str) -> None:
        self.cloud, self.key, self.key_file, self.id = cloud, key, key_file, instance_id

    def sh(self, script: str) -> str:
        env_key = self.cloud.extra
        self.cloud.extra = {"key": self.key}
        try:
            # ssh hands the words to the remote shell joined: quote the script as one word. 255 is
            # ssh's own failure (sshd reloads once when the guest's RSA host key is made): retry.
            for _ in range(10):
                done = nubes_ssh(self.cloud, self.key_file, self.id, "sh", "-c", shlex.quote(script))
                if done.returncode != 255:
                    break
                time.sleep(1)
        finally:
            self.cloud.extra = env_key
        assert done.returncode == 0, f"{script!r} on {self.id}: {done.stdout} {done.stderr}"
        return done.stdout.strip()

    def wait_login(self) -> None:
        self.cloud.extra = {"key": self.key}
        assert wait_for(lambda: nubes_ssh(self.cloud, self.key_file, self.id, "true").returncode == 0, 180, 2)


def device_of(disk_id: str) -> str:
    """Shell that prints /dev/vdX of the virtio disk whose serial is the disk id (no udev in the guest)."""
    serial = disk_id.removeprefix("d-")[:20]
    return (
        f'for b in /sys/block/vd*; do [ "$(cat $b/serial 2>/dev/null)" = "{serial}" ] && echo /dev/${{b##*/}}; '
        "done; true"
    )


def launch(ecs: Any, net: Any, group: str, image: str, key_name: str) -> str:
    [instance_id] = ecs.run_instances(
        em.RunInstancesRequest(
            region_id=REGION,
            image_id=image,
            instance_type=SMALL,
            v_switch_id=net.vswitch_id,
            security_group_id=group,
            key_pair_name=key_name,
        )
    ).body.instance_id_sets.instance_id_set
    assert wait_status(ecs, instance_id, "Running") == "Running"
    return str(instance_id)


def open_ssh(ecs: Any, group: str) -> None:
    ecs.authorize_security_group(
        em.AuthorizeSecurityGroupRequest(
            region_id=REGION,
            security_group_id=group,
            ip_protocol="tcp",
            port_range="22/22",
            source_cidr_ip="0.0.0.0/0",
        )
    )


def first_guest(
    cloud: LiveServer, tmp_path: Path, cidr: str, key_name: str
) -> tuple[Any, str, Path, Guest, str]:
    """A new VPC open to SSH, a key pair and a Debian instance logged in to: (net, security
    group, private key file, guest, zone)."""
    net = make_net(cloud, cidr)
    ecs = net.ecs
    group = net.group()
    open_ssh(ecs, group)
    private = ecs.create_key_pair(em.CreateKeyPairRequest(region_id=REGION, key_pair_name=key_name)).body
    key_file = tmp_path / f"{key_name}.pem"
    key_file.write_text(private.private_key_body)
    key_file.chmod(0o600)
    guest = Guest(
        cloud, net.key, key_file, launch(ecs, net, group, image_id(ecs, "nubes:debian_12_x64"), key_name)
    )
    guest.wait_login()
    zone = ecs.describe_instance_attribute(
        em.DescribeInstanceAttributeRequest(instance_id=guest.id)
    ).body.zone_id
    return net, group, key_file, guest, str(zone)


def test_disk_snapshot_reset_clone_image_share(cloud: LiveServer, tmp_path: Path) -> None:
    net, group, key_file, first, zone = first_guest(cloud, tmp_path, "10.84.0.0/16", "disks")
    ecs = net.ecs

    # a data disk, hot-plugged into the running instance
    disk_id = ecs.create_disk(
        em.CreateDiskRequest(region_id=REGION, zone_id=zone, size=20, disk_category="cloud_essd")
    ).body.disk_id
    assert wait_for(lambda: disk_status(ecs, disk_id) == "Available", 60)
    ecs.attach_disk(em.AttachDiskRequest(disk_id=disk_id, instance_id=first.id))
    assert wait_for(lambda: disk_status(ecs, disk_id) == "In_use", 60)
    device = wait_for(lambda: first.sh(device_of(disk_id)), 60, 1)
    assert device.startswith("/dev/vd")
    first.sh(
        f"mkfs.ext4 -q {device} && mkdir -p /mnt/d && mount {device} /mnt/d && echo v1 > /mnt/d/file && "
        "echo from-image > /root/marker && sync"
    )

    # snapshot, change, roll back
    snapshot_id = ecs.create_snapshot(
        em.CreateSnapshotRequest(disk_id=disk_id, snapshot_name="v1")
    ).body.snapshot_id
    assert wait_for(lambda: snapshot_status(ecs, snapshot_id) == "accomplished", 60)
    first.sh("echo v2 > /mnt/d/file && sync && umount /mnt/d")
    ecs.stop_instance(em.StopInstanceRequest(instance_id=first.id))
    assert wait_status(ecs, first.id, "Stopped", 180) == "Stopped"
    ecs.reset_disk(em.ResetDiskRequest(disk_id=disk_id, snapshot_id=snapshot_id))
    ecs.start_instance(em.StartInstanceRequest(instance_id=first.id))
    assert wait_status(ecs, first.id, "Running") == "Running"
    first.wait_login()
    device = first.sh(device_of(disk_id))
    assert first.sh(f"mkdir -p /mnt/d && mount {device} /mnt/d && cat /mnt/d/file") == "v1"

    # a disk from the snapshot, on a second instance
    second = Guest(
        cloud, net.key, key_file, launch(ecs, net, group, image_id(ecs, "nubes:debian_12_x64"), "disks")
    )
    copy_id = ecs.create_disk(
        em.CreateDiskRequest(
            region_id=REGION, zone_id=zone, snapshot_id=snapshot_id, disk_category="cloud_essd"
        )
    ).body.disk_id
    assert wait_for(lambda: disk_status(ecs, copy_id) == "Available", 60)
    ecs.attach_disk(em.AttachDiskRequest(disk_id=copy_id, instance_id=second.id))
    assert wait_for(lambda: disk_status(ecs, copy_id) == "In_use", 60)
    second.wait_login()
    copy_device = wait_for(lambda: second.sh(device_of(copy_id)), 60, 1)
    assert second.sh(f"mkdir -p /mnt/c && mount {copy_device} /mnt/c && cat /mnt/c/file") == "v1"

    # an image of the first instance launches an instance with its files
    image = ecs.create_image(
        em.CreateImageRequest(region_id=REGION, instance_id=first.id, image_name="with-marker")
    ).body.image_id
    assert wait_for(lambda: image_status(ecs, image) == "Available", 60)
    third = Guest(cloud, net.key, key_file, launch(ecs, net, group, image, "disks"))
    third.wait_login()
    assert third.sh("cat /root/marker") == "from-image"

    # exported to a bucket (qcow2, chain flattened), imported back over HTTP on loopback, it boots
    ecs.export_image(
        em.ExportImageRequest(region_id=REGION, image_id=image, ossbucket="exports", image_format="qcow2")
    )
    exported = cloud.data_dir / "oss" / "exports" / f"{image}_system.qcow2"
    assert wait_for(exported.exists, 300, 1)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(exported.parent))
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{web.server_address[1]}/{exported.name}"
        imported = ecs.import_image(
            em.ImportImageRequest(
                region_id=REGION,
                image_name="round-trip",
                disk_device_mapping=[em.ImportImageRequestDiskDeviceMapping(ossobject=url, format="qcow2")],
            )
        ).body.image_id
        assert wait_for(lambda: image_status(ecs, imported) == "Available", 300, 1)
    finally:
        web.shutdown()
        web.server_close()
    fifth = Guest(cloud, net.key, key_file, launch(ecs, net, group, imported, "disks"))
    fifth.wait_login()
    assert fifth.sh("cat /root/marker") == "from-image"
    ecs.delete_instance(em.DeleteInstanceRequest(instance_id=fifth.id, force=True))

    # shared with a second account, it launches there too
    other = make_net(cloud, "10.85.0.0/16")
    listing = cloud.nubes("admin", "account", "list", *cloud.admin_store_args()).stdout
    other_uid = next(
        re.findall(r"\b\d{16}\b", line)[0] for line in listing.splitlines() if "net-10-85-0-0" in line
    )
    ecs.modify_image_share_permission(
        em.ModifyImageSharePermissionRequest(region_id=REGION, image_id=image, add_account=[other_uid])
    )
    other_group = other.group()
    open_ssh(other.ecs, other_group)
    other_private = other.ecs.create_key_pair(
        em.CreateKeyPairRequest(region_id=REGION, key_pair_name="other")
    ).body
    other_key_file = tmp_path / "other.pem"
    other_key_file.write_text(other_private.private_key_body)
    other_key_file.chmod(0o600)
    seen = other.ecs.describe_images(
        em.DescribeImagesRequest(region_id=REGION, image_owner_alias="others")
    ).body
    assert [i.image_id for i in seen.images.image] == [image]
    fourth = Guest(cloud, other.key, other_key_file, launch(other.ecs, other, other_group, image, "other"))
    fourth.wait_login()
    assert fourth.sh("cat /root/marker") == "from-image"

    for guest, client in ((first, ecs), (second, ecs), (third, ecs), (fourth, other.ecs)):
        client.delete_instance(em.DeleteInstanceRequest(instance_id=guest.id, force=True))
