"""Done when (issue 11), on a real VM through the official SDK: an encrypted data disk hot-plugged
into a running instance is written by the guest, and what it wrote is nowhere in the host's
layer files in the clear; a live snapshot of it keeps the new top encrypted, and after a stop
and a start (the key handed to QEMU at boot) the guest reads back what it wrote."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from alibabacloud_ecs20140526 import models as em

from nubes.guest.images import ImageManifest
from tests.conftest import LiveServer

from .test_disks_vm import device_of, disk_status, first_guest, snapshot_status, wait_for
from .test_instance_lifecycle import REGION, _start, _teardown, wait_status

pytestmark = pytest.mark.vm

MARKER = "nubes-secret-marker-4f1c"


@pytest.fixture(scope="module")
def cloud(
    images_dir: Path, debian_image: ImageManifest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    server = _start(tmp_path_factory.mktemp("encrypted"), images_dir)
    yield server
    _teardown(server)


def in_clear(files: list[Path], text: str) -> list[Path]:
    return [f for f in files if text.encode() in f.read_bytes()]


def test_an_encrypted_data_disk_hides_what_the_guest_writes(cloud: LiveServer, tmp_path: Path) -> None:
    net, _, _, guest, zone = first_guest(cloud, tmp_path, "10.86.0.0/16", "luks")
    ecs = net.ecs

    disk_id = ecs.create_disk(
        em.CreateDiskRequest(
            region_id=REGION, zone_id=zone, size=20, disk_category="cloud_essd", encrypted=True
        )
    ).body.disk_id
    assert wait_for(lambda: disk_status(ecs, disk_id) == "Available", 60)
    ecs.attach_disk(em.AttachDiskRequest(disk_id=disk_id, instance_id=guest.id))
    assert wait_for(lambda: disk_status(ecs, disk_id) == "In_use", 60)
    device = wait_for(lambda: guest.sh(device_of(disk_id)), 60, 1)
    assert device.startswith("/dev/vd")
    # the marker, many times over, straight onto the block device (no file system to hide it)
    guest.sh(f"yes {MARKER} | head -c 1048576 | dd of={device} bs=64k conv=fsync 2>/dev/null; sync")

    # a live snapshot: the disk moves onto a new, encrypted top; the guest writes there too
    snapshot_id = ecs.create_snapshot(em.CreateSnapshotRequest(disk_id=disk_id)).body.snapshot_id
    assert wait_for(lambda: snapshot_status(ecs, snapshot_id) == "accomplished", 60)
    guest.sh(f"yes {MARKER}-2 | head -c 1048576 | dd of={device} bs=64k seek=32 conv=fsync 2>/dev/null; sync")
    assert MARKER in guest.sh(f"dd if={device} bs=64k count=1 2>/dev/null | head -c 200")

    disks_dir = cloud.data_dir / "disks"
    layers = sorted(disks_dir.glob(f"{disk_id}*.qcow2"))
    assert len(layers) == 2, layers  # the snapshot's frozen layer and the new top
    for layer in layers:
        info = json.loads(
            subprocess.run(
                ["qemu-img", "info", "-U", "--output=json", str(layer)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        assert info["encrypted"] is True, layer
    assert in_clear(list(disks_dir.rglob("*.qcow2")), MARKER) == []

    # stopped and started: QEMU gets the key at boot; no key file stays behind
    ecs.stop_instance(em.StopInstanceRequest(instance_id=guest.id))
    assert wait_status(ecs, guest.id, "Stopped", 180) == "Stopped"
    ecs.start_instance(em.StartInstanceRequest(instance_id=guest.id))
    assert wait_status(ecs, guest.id, "Running") == "Running"
    guest.wait_login()
    device = wait_for(lambda: guest.sh(device_of(disk_id)), 60, 1)
    assert MARKER in guest.sh(f"dd if={device} bs=64k count=1 2>/dev/null | head -c 200")
    assert f"{MARKER}-2" in guest.sh(f"dd if={device} bs=64k skip=32 count=1 2>/dev/null | head -c 200")
    leftovers = [p for p in (cloud.data_dir / "run").rglob("keys/*") if p.is_file()]
    assert leftovers == []
    master = cloud.data_dir / "master.key"
    assert master.stat().st_mode & 0o777 == 0o600
