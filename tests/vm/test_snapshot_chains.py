"""Snapshot chains stay as long as the snapshots kept: deleting a snapshot folds its frozen layer
into the layer above it (live with QMP block-stream while the disk's VM runs, with qemu-img
rebase when it does not), and the disk shows exactly what it showed before."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em

from nubes.drivers.storage.qcow2 import Qcow2Storage
from nubes.guest.images import ImageManifest
from nubes.store.db import Database
from nubes.store.models import Disk
from tests.conftest import LiveServer
from tests.e2e.conftest import make_net

from .test_disks_vm import disk_status, snapshot_status, wait_for
from .test_instance_lifecycle import REGION, SMALL, _start, _teardown, image_id, wait_status

pytestmark = pytest.mark.vm

PATTERNS = [(0x11, 0), (0x22, 1 << 20), (0x33, 2 << 20), (0x44, 3 << 20)]  # one 64 KiB block per layer


@pytest.fixture(scope="module")
def cloud(
    images_dir: Path, tiny_image: ImageManifest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    server = _start(tmp_path_factory.mktemp("chains"), images_dir)
    yield server
    _teardown(server)


def top_layer(cloud: LiveServer, disk_id: str) -> str:
    db = Database(cloud.database_url)
    try:
        with db.session() as s:
            disk = s.get(Disk, disk_id)
            assert disk is not None
            return disk.top_layer
    finally:
        db.dispose()


def qemu_io(path: Path, command: str) -> subprocess.CompletedProcess[str]:
    # -U: read while the VM holds the image (shared, read-only)
    return subprocess.run(
        ["qemu-io", "-f", "qcow2", "-r", "-U", "-c", command, str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def shows_all(storage: Qcow2Storage, layer: str, patterns: list[tuple[int, int]]) -> bool:
    for value, offset in patterns:
        done = qemu_io(storage.layer_path(layer), f"read -P {value:#x} {offset} 64k")
        if done.returncode != 0 or "failed" in done.stdout.lower():
            return False
    return True


def test_deleting_snapshots_folds_their_layers(cloud: LiveServer) -> None:
    net = make_net(cloud, "10.86.0.0/16")
    ecs: Any = net.ecs
    storage = Qcow2Storage(cloud.data_dir / "disks")
    [instance_id] = ecs.run_instances(
        em.RunInstancesRequest(
            region_id=REGION,
            image_id=image_id(ecs, "nubes:tiny_x64"),
            instance_type=SMALL,
            v_switch_id=net.vswitch_id,
            security_group_id=net.group(),
        )
    ).body.instance_id_sets.instance_id_set
    zone = ecs.describe_instance_attribute(
        em.DescribeInstanceAttributeRequest(instance_id=instance_id)
    ).body.zone_id
    disk_id = ecs.create_disk(
        em.CreateDiskRequest(region_id=REGION, zone_id=zone, size=20, disk_category="cloud_essd")
    ).body.disk_id
    assert wait_for(lambda: disk_status(ecs, disk_id) == "Available", 60)

    # four layers, each with its own block: write, snapshot, write, snapshot, ... (offline)
    snapshots = []
    for value, offset in PATTERNS[:3]:
        written = subprocess.run(
            [
                "qemu-io",
                "-f",
                "qcow2",
                "-c",
                f"write -P {value:#x} {offset} 64k",
                str(storage.layer_path(top_layer(cloud, disk_id))),
            ],
            check=False,
            capture_output=True,
            text=True,
        )
        assert written.returncode == 0, written.stderr
        snapshot_id = ecs.create_snapshot(em.CreateSnapshotRequest(disk_id=disk_id)).body.snapshot_id
        assert wait_for(lambda sid=snapshot_id: snapshot_status(ecs, sid) == "accomplished", 60)
        snapshots.append(snapshot_id)
    top = top_layer(cloud, disk_id)
    assert len(storage.chain(top)) == 4
    assert shows_all(storage, top, PATTERNS[:3])

    # live: attached to the running instance, the middle snapshot goes; its layer is streamed
    assert wait_status(ecs, instance_id, "Running", 300) == "Running"
    ecs.attach_disk(em.AttachDiskRequest(disk_id=disk_id, instance_id=instance_id))
    assert wait_for(lambda: disk_status(ecs, disk_id) == "In_use", 60)
    ecs.delete_snapshot(em.DeleteSnapshotRequest(snapshot_id=snapshots[1]))
    assert wait_for(lambda: len(storage.chain(top_layer(cloud, disk_id))) == 3, 120)
    assert shows_all(storage, top_layer(cloud, disk_id), PATTERNS[:3])
    # the kept snapshots still show what they held: a disk made from the last one has every block
    clone = ecs.create_disk(
        em.CreateDiskRequest(
            region_id=REGION, zone_id=zone, snapshot_id=snapshots[2], disk_category="cloud_essd"
        )
    ).body.disk_id
    assert wait_for(lambda: disk_status(ecs, clone) == "Available", 60)
    assert shows_all(storage, top_layer(cloud, clone), PATTERNS[:3])
    ecs.delete_disk(em.DeleteDiskRequest(disk_id=clone))

    # offline: detached, the first snapshot goes; its layer is rebased away
    ecs.detach_disk(em.DetachDiskRequest(disk_id=disk_id, instance_id=instance_id))
    assert wait_for(lambda: disk_status(ecs, disk_id) == "Available", 60)
    ecs.delete_snapshot(em.DeleteSnapshotRequest(snapshot_id=snapshots[0], force=True))
    assert wait_for(lambda: len(storage.chain(top_layer(cloud, disk_id))) == 2, 120)
    assert shows_all(storage, top_layer(cloud, disk_id), PATTERNS[:3])
    deadline = time.monotonic() + 30
    while len(list((cloud.data_dir / "disks").glob(f"{disk_id}*.qcow2"))) > 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(list((cloud.data_dir / "disks").glob(f"{disk_id}*.qcow2"))) == 2  # folded layers are gone
    ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))
