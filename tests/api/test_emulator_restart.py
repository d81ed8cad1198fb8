"""The emulator survives restarts as the real mode does: after SIGTERM and after kill -9 the
server finds its disks' layers and its running (fake) VMs again, so a snapshot of an older disk
succeeds and a Running instance stays Running when disk work touches it."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from alibabacloud_ecs20140526 import models as em

from ..conftest import LiveServer, start_server, tea_ecs
from .test_instances_api import Lab
from .test_vpc_api import REGION


class Client:
    """The official client of whichever server process runs now (its port changes per start)."""

    def __init__(self, server: LiveServer) -> None:
        self.ecs = tea_ecs(server)

    def instance_status(self, instance_id: str) -> str:
        return str(
            self.ecs.describe_instance_attribute(
                em.DescribeInstanceAttributeRequest(instance_id=instance_id)
            ).body.status
        )

    def disks(self, instance_id: str) -> dict[str, str]:
        body = self.ecs.describe_disks(
            em.DescribeDisksRequest(region_id=REGION, instance_id=instance_id)
        ).body
        return {d.disk_id: d.status for d in body.disks.disk}

    def snapshots(self, disk_id: str) -> dict[str, str]:
        body = self.ecs.describe_snapshots(
            em.DescribeSnapshotsRequest(region_id=REGION, disk_id=disk_id)
        ).body
        return {s.snapshot_id: s.status for s in body.snapshots.snapshot}

    def snapshot(self, disk_id: str, timeout: float = 30) -> tuple[str, str]:
        snapshot_id = str(
            self.ecs.create_snapshot(em.CreateSnapshotRequest(disk_id=disk_id)).body.snapshot_id
        )
        deadline = time.monotonic() + timeout
        while (
            status := self.snapshots(disk_id)[snapshot_id]
        ) == "progressing" and time.monotonic() < deadline:
            time.sleep(0.05)
        return snapshot_id, status

    def wait(self, check: Any, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while not (result := check()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return result


def restart(server: LiveServer, tmp: Path, how: signal.Signals) -> LiveServer:
    server.process.send_signal(how)
    server.process.wait(timeout=30)
    return start_server(tmp, None, "sqlite", ["--throttle-rate", "0"])


def test_the_emulator_keeps_its_disks_and_running_vms_across_restarts(tmp_path: Path) -> None:
    server = start_server(tmp_path, None, "sqlite", ["--throttle-rate", "0"])
    try:
        lab = Lab(server, ("LTAItestroot0000000001", "testRootSecret0000000000000001"), "10.63.0.0/16")
        [instance_id] = lab.run()
        assert lab.wait(instance_id, "Running") == "Running"
        zone = lab.ecs.describe_instance_attribute(
            em.DescribeInstanceAttributeRequest(instance_id=instance_id)
        ).body.zone_id
        data = str(
            lab.ecs.create_disk(
                em.CreateDiskRequest(region_id=REGION, zone_id=zone, size=40, disk_category="cloud_essd")
            ).body.disk_id
        )
        client = Client(server)
        assert client.wait(
            lambda: (
                client.ecs.describe_disks(em.DescribeDisksRequest(region_id=REGION, disk_ids=f'["{data}"]'))
                .body.disks.disk[0]
                .status
                == "Available"
            )
        )
        lab.ecs.attach_disk(em.AttachDiskRequest(disk_id=data, instance_id=instance_id))
        assert client.wait(lambda: client.disks(instance_id).get(data) == "In_use")
        disks = client.disks(instance_id)
        [system] = [d for d in disks if d != data]
        taken = {data: [client.snapshot(data)], system: [client.snapshot(system)]}
        assert all(status == "accomplished" for shots in taken.values() for _, status in shots), taken

        for how in (signal.SIGTERM, signal.SIGKILL):
            server = restart(server, tmp_path, how)
            client = Client(server)
            assert client.instance_status(instance_id) == "Running", how
            assert client.disks(instance_id) == {data: "In_use", system: "In_use"}, how
            for disk_id, shots in taken.items():
                snapshot_id, status = client.snapshot(disk_id)
                assert status == "accomplished", (how, disk_id, server.log()[-3000:])
                shots.append((snapshot_id, status))
                assert client.snapshots(disk_id) == dict(shots), how
            time.sleep(1.5)  # a few agent passes: the VM is still found running
            assert client.instance_status(instance_id) == "Running", (how, server.log()[-3000:])
            assert client.disks(instance_id) == {data: "In_use", system: "In_use"}, how

        # the VM found again still stops and starts, and a new disk made from an old snapshot works
        client.ecs.stop_instance(em.StopInstanceRequest(instance_id=instance_id))
        assert client.wait(lambda: client.instance_status(instance_id) == "Stopped")
        client.ecs.start_instance(em.StartInstanceRequest(instance_id=instance_id))
        assert client.wait(lambda: client.instance_status(instance_id) == "Running")
        first_snapshot = taken[data][0][0]
        clone = str(
            client.ecs.create_disk(
                em.CreateDiskRequest(region_id=REGION, zone_id=zone, snapshot_id=first_snapshot)
            ).body.disk_id
        )
        assert client.wait(
            lambda: (
                client.ecs.describe_disks(em.DescribeDisksRequest(region_id=REGION, disk_ids=f'["{clone}"]'))
                .body.disks.disk[0]
                .status
                == "Available"
            )
        )
    finally:
        server.process.kill()
        server.process.wait(timeout=30)
