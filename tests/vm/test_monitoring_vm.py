"""Done when (issue 13, part 5): on real VMs (TCG), monitoring data shows the CPU of a busy guest,
and GetInstanceScreenshot returns a PNG of the VM's display.

One server with the real drivers sampling every second, two tiny instances side by side: one
whose user data spins a busy loop, one left idle. Both are compared over the same minute (one
that began after the loop had started), so a host shared with other work slows both alike."""

from __future__ import annotations

import base64
import json
import os
import signal
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em

from nubes.guest.images import ImageManifest
from tests.conftest import LiveServer, start_server, stop_server
from tests.e2e.conftest import make_net
from tests.vm.test_instance_lifecycle import REAL_SERVER, REGION, SMALL, image_id, wait_status

pytestmark = pytest.mark.vm

BUSY_MARKER = "BUSY-LOOP-STARTED"
BUSY = f"#!/bin/sh\necho {BUSY_MARKER} > /dev/console\nwhile :; do :; done\n"


@dataclass
class Pair:
    server: LiveServer
    ecs: Any
    busy: str
    idle: str
    launched: datetime


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _console(ecs: Any, instance_id: str) -> str:
    body = ecs.get_instance_console_output(
        em.GetInstanceConsoleOutputRequest(region_id=REGION, instance_id=instance_id)
    ).body
    return base64.b64decode(body.console_output).decode(errors="replace")


def _kill_leftovers(data_dir: Path) -> None:
    """A failed test may leave a VM behind: stop it by the pid its handle names."""
    for handle in (data_dir / "run" / "vms").glob("*/handle.json"):
        try:
            pid = int(json.loads(handle.read_text())["pid"])
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, KeyError):
            pass


@pytest.fixture(scope="module")
def pair(
    images_dir: Path, tiny_image: ImageManifest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    os.environ["NUBES_IMAGES_DIR"] = str(images_dir)
    server = start_server(
        tmp_path_factory.mktemp("monitoring"), None, "sqlite", [*REAL_SERVER, "--monitor-interval", "1"]
    )
    try:
        net = make_net(server, "10.93.0.0/16")
        ecs, group = net.ecs, net.group()
        launched = datetime.now(UTC).replace(second=0, microsecond=0)
        ids = []
        for user_data in (BUSY, None):
            request = em.RunInstancesRequest(
                region_id=REGION,
                image_id=image_id(ecs, "nubes:tiny_x64"),
                instance_type=SMALL,
                v_switch_id=net.vswitch_id,
                security_group_id=group,
            )
            if user_data:
                request.user_data = base64.b64encode(user_data.encode()).decode()
            [instance_id] = ecs.run_instances(request).body.instance_id_sets.instance_id_set
            ids.append(str(instance_id))
        for instance_id in ids:
            assert wait_status(ecs, instance_id, "Running") == "Running"
        yield Pair(server, ecs, ids[0], ids[1], launched)
        for instance_id in ids:
            ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))
        for instance_id in ids:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and any(
                i.instance_id == instance_id
                for i in ecs.describe_instances(
                    em.DescribeInstancesRequest(region_id=REGION)
                ).body.instances.instance
            ):
                time.sleep(0.5)
    finally:
        stop_server(server)
        _kill_leftovers(server.data_dir)
        from nubes.drivers.network.linux import LinuxNetworkDriver

        LinuxNetworkDriver(server.data_dir / "run" / "network", prefix=server.netns_prefix).sync([])


def _points(
    ecs: Any, instance_id: str, start: datetime, end: datetime, period: int = 60
) -> list[dict[str, Any]]:
    body = ecs.describe_instance_monitor_data(
        em.DescribeInstanceMonitorDataRequest(
            instance_id=instance_id, start_time=_stamp(start), end_time=_stamp(end), period=period
        )
    ).body.to_map()
    return list(body["MonitorData"]["InstanceMonitorData"])


def test_monitoring_shows_a_busy_guests_cpu(pair: Pair) -> None:
    ecs = pair.ecs
    deadline = time.monotonic() + 300
    while BUSY_MARKER not in _console(ecs, pair.busy):
        assert time.monotonic() < deadline, "the busy loop of the user data never started"
        time.sleep(1)
    # the next whole minute: both guests are up, the loop spins all through it
    minute = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    time.sleep(max(0.0, (minute - datetime.now(UTC)).total_seconds()) + 30)  # half of it sampled
    busy = _points(ecs, pair.busy, minute, minute + timedelta(minutes=1))
    idle = _points(ecs, pair.idle, minute, minute + timedelta(minutes=1))
    assert len(busy) == 1 and len(idle) == 1, (busy, idle)
    print(f"CPU over {_stamp(minute)}: busy {busy[0]['CPU']} %, idle {idle[0]['CPU']} %")
    assert busy[0]["CPU"] >= 25
    assert busy[0]["CPU"] >= idle[0]["CPU"] + 20

    # since the launch: the boot read the system disk, and the guests talked on their taps
    # (DHCP, the metadata service)
    since = _points(ecs, pair.idle, pair.launched, minute + timedelta(minutes=2))
    print(
        "idle guest since its launch:",
        [(p["TimeStamp"], p["IntranetRX"], p["IntranetTX"], p["BPSRead"]) for p in since],
    )
    assert sum(p["IntranetTX"] for p in since) > 0 and sum(p["IntranetRX"] for p in since) > 0
    assert any(p["BPSRead"] > 0 and p["IOPSRead"] > 0 for p in since)
    disk = ecs.describe_disks(em.DescribeDisksRequest(region_id=REGION, instance_id=pair.idle)).body
    disk_body = ecs.describe_disk_monitor_data(
        em.DescribeDiskMonitorDataRequest(
            disk_id=disk.disks.disk[0].disk_id,
            start_time=_stamp(pair.launched),
            end_time=_stamp(minute + timedelta(minutes=2)),
            period=600,
        )
    ).body
    assert disk_body.total_count >= 1
    assert any(p.bpsread > 0 for p in disk_body.monitor_data.disk_monitor_data)


def test_screenshot_is_a_png_of_the_display(pair: Pair) -> None:
    body = pair.ecs.get_instance_screenshot(
        em.GetInstanceScreenshotRequest(region_id=REGION, instance_id=pair.idle, wake_up=True)
    ).body
    assert body.instance_id == pair.idle
    image = base64.b64decode(body.screenshot)
    assert image[:8] == b"\x89PNG\r\n\x1a\n" and image[12:16] == b"IHDR"
    width, height = struct.unpack(">II", image[16:24])
    print(f"screenshot: {width}x{height}, {len(image)} bytes")
    assert width >= 320 and height >= 200  # a VGA mode (text: 720x400)
    assert image[-12:] == b"\x00\x00\x00\x00IEND\xaeB`\x82"  # whole: it ends with the IEND chunk
