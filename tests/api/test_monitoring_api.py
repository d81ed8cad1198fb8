"""Monitoring data and screenshots through the official SDK against the emulator: a server of its
own that samples every second (the fake drivers count synthetic, steadily growing traffic), so
the answers fill within seconds; the periods are still ECS's 60, 600 and 3600 s."""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em

from ..conftest import LiveServer, start_server, stop_server, tea_ecs
from .test_instances_api import Lab, error_of
from .test_vpc_api import REGION

FIELDS = {
    "instance": {
        "BPSRead", "BPSWrite", "CPU", "CPUAdvanceCreditBalance", "CPUCreditBalance", "CPUCreditUsage",
        "CPUNotpaidSurplusCreditUsage", "IOPSRead", "IOPSWrite", "InstanceId", "InternetBandwidth",
        "InternetRX", "InternetTX", "IntranetBandwidth", "IntranetRX", "IntranetTX", "TimeStamp",
    },
    "disk": {
        "BPSRead", "BPSTotal", "BPSWrite", "DiskId", "IOPSRead", "IOPSTotal", "IOPSWrite",
        "LatencyRead", "LatencyWrite", "TimeStamp",
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def sampled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path_factory.mktemp("monitoring"),
        None,
        "sqlite",
        ["--throttle-rate", "0", "--monitor-interval", "1"],
    )
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def lab(sampled: LiveServer) -> Lab:
    return Lab(sampled, sampled.create_account("monitoring"), "10.70.0.0/16")


@pytest.fixture(scope="module")
def running(lab: Lab) -> str:
    [instance_id] = lab.run()
    assert lab.wait(instance_id, "Running") == "Running"
    return instance_id


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _span(minutes_back: int = 5, minutes_ahead: int = 2) -> tuple[str, str]:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return _stamp(now - timedelta(minutes=minutes_back)), _stamp(now + timedelta(minutes=minutes_ahead))


def _until(get: Any, timeout: float = 20) -> Any:
    """Ask again until the answer holds points (the first samples take a few seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = get()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(0.5)


def _instance_points(lab: Lab, instance_id: str, period: int | None = None) -> list[dict[str, Any]]:
    start, end = _span()
    body = lab.ecs.describe_instance_monitor_data(
        em.DescribeInstanceMonitorDataRequest(
            instance_id=instance_id, start_time=start, end_time=end, period=period
        )
    ).body.to_map()
    return list(body["MonitorData"]["InstanceMonitorData"])


def test_instance_monitor_data(lab: Lab, running: str) -> None:
    points = _until(lambda: _instance_points(lab, running))
    assert points, "no samples within 20 s at a 1 s sampling interval"
    point = points[-1]
    assert set(point) == FIELDS["instance"]
    assert point["InstanceId"] == running
    assert point["TimeStamp"].endswith(":00Z")
    assert 0 < point["CPU"] <= 100  # the fake VMs keep 5-25 % of their vCPUs busy
    assert point["BPSRead"] > 0 and point["IOPSWrite"] > 0 and point["IntranetRX"] > 0
    assert point["InternetRX"] == 0
    hourly = _instance_points(lab, running, period=3600)
    assert 1 <= len(hourly) <= 2 and hourly[0]["CPU"] > 0


def test_disk_and_eni_monitor_data(lab: Lab, running: str) -> None:
    disk = lab.ecs.describe_disks(em.DescribeDisksRequest(region_id=REGION, instance_id=running)).body
    disk_id = disk.disks.disk[0].disk_id
    start, end = _span()

    def disk_points() -> list[dict[str, Any]]:
        body = lab.ecs.describe_disk_monitor_data(
            em.DescribeDiskMonitorDataRequest(disk_id=disk_id, start_time=start, end_time=end, period=600)
        ).body.to_map()
        assert body["TotalCount"] == len(body["MonitorData"]["DiskMonitorData"])
        return list(body["MonitorData"]["DiskMonitorData"])

    points = _until(disk_points)
    assert points and set(points[0]) == FIELDS["disk"]
    assert points[0]["BPSTotal"] == points[0]["BPSRead"] + points[0]["BPSWrite"] > 0
    assert points[0]["LatencyRead"] > 0

    # a secondary interface: ECS's default answers only those
    eni_id = lab.ecs.create_network_interface(
        em.CreateNetworkInterfaceRequest(
            region_id=REGION, v_switch_id=lab.vswitch_id, security_group_id=lab.group_id
        )
    ).body.network_interface_id
    lab.ecs.attach_network_interface(
        em.AttachNetworkInterfaceRequest(region_id=REGION, network_interface_id=eni_id, instance_id=running)
    )

    def eni_points() -> list[dict[str, Any]]:
        body = lab.ecs.describe_eni_monitor_data(
            em.DescribeEniMonitorDataRequest(
                region_id=REGION, instance_id=running, start_time=start, end_time=end
            )
        ).body.to_map()
        return list(body["MonitorData"]["EniMonitorData"])

    points = _until(eni_points)
    assert points and {p["EniId"] for p in points} == {eni_id}
    assert set(points[0]) == {
        "DropPacketRx", "DropPacketTx", "EniId", "IntranetRx", "IntranetTx", "PacketRx", "PacketTx", "TimeStamp"
    }  # fmt: skip
    assert int(points[-1]["PacketRx"]) > 0 and points[-1]["DropPacketRx"] == "0"
    named = lab.ecs.describe_eni_monitor_data(
        em.DescribeEniMonitorDataRequest(
            region_id=REGION, instance_id=running, eni_id=eni_id, start_time=start, end_time=end
        )
    ).body
    assert named.total_count == len(named.monitor_data.eni_monitor_data)


@pytest.mark.parametrize(
    ("start", "end", "period", "code"),
    [
        ("2026-01-05T10:00:00Z", "2026-01-05T11:00:00Z", 300, "InvalidParameter"),
        ("20260105T100000Z", "2026-01-05T11:00:00Z", 60, "InvalidStartTime.Malformed"),
        ("2026-01-05T10:00:00Z", "2026-01-05", 60, "InvalidEndTime.Malformed"),
        ("2026-01-05T11:00:00Z", "2026-01-05T10:00:00Z", 60, "InvalidParameter"),
        ("2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z", 60, "InvalidParameter.TooManyDataQueried"),
        ("2020-01-05T00:00:00Z", "2020-01-05T01:00:00Z", 60, "InvalidParameter"),  # older than 30 days
    ],
)
def test_request_errors(lab: Lab, running: str, start: str, end: str, period: int, code: str) -> None:
    if start.startswith("2026-01-05"):  # relative to today: keep them inside the last 30 days
        today = datetime.now(UTC).strftime("%Y-%m-%d")
        start, end = (
            start.replace("2026-01-05", today),
            end.replace("2026-01-05", today).replace(
                "2026-01-06", (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
            ),
        )
    e = error_of(
        lambda: lab.ecs.describe_instance_monitor_data(
            em.DescribeInstanceMonitorDataRequest(
                instance_id=running, start_time=start, end_time=end, period=period
            )
        )
    )
    assert e.code == code and e.status_code == 400
    e = error_of(
        lambda: lab.ecs.describe_instance_monitor_data(
            em.DescribeInstanceMonitorDataRequest(instance_id=running, end_time=end)
        )
    )
    assert e.code == "MissingParameter.StartTime"


def test_other_accounts_see_nothing(sampled: LiveServer, lab: Lab, running: str) -> None:
    other = tea_ecs(sampled, sampled.create_account("monitoring-other"))
    start, end = _span()
    e = error_of(
        lambda: other.describe_instance_monitor_data(
            em.DescribeInstanceMonitorDataRequest(instance_id=running, start_time=start, end_time=end)
        )
    )
    assert e.code == "InvalidInstanceId.NotFound" and e.status_code == 404
    e = error_of(
        lambda: other.get_instance_screenshot(
            em.GetInstanceScreenshotRequest(region_id=REGION, instance_id=running)
        )
    )
    assert e.code == "InvalidInstanceId.NotFound"
    e = error_of(
        lambda: other.describe_eni_monitor_data(
            em.DescribeEniMonitorDataRequest(
                region_id=REGION, instance_id=running, start_time=start, end_time=end
            )
        )
    )
    assert e.code == "InvalidInstanceId.NotFound"
    e = error_of(
        lambda: other.describe_disk_monitor_data(
            em.DescribeDiskMonitorDataRequest(disk_id="d-nothere0000000000", start_time=start, end_time=end)
        )
    )
    assert e.code == "InvalidDiskId.NotFound"


def test_screenshot(lab: Lab, running: str, tmp_path: Path) -> None:
    body = lab.ecs.get_instance_screenshot(
        em.GetInstanceScreenshotRequest(region_id=REGION, instance_id=running, wake_up=True)
    ).body
    assert body.instance_id == running
    image = base64.b64decode(body.screenshot)
    assert image[:8] == b"\x89PNG\r\n\x1a\n" and image[12:16] == b"IHDR"
    assert struct.unpack(">II", image[16:24]) == (720, 400)
    [stopped] = lab.run(instance_name="stopped-one")
    assert lab.wait(stopped, "Running") == "Running"
    lab.ecs.stop_instance(em.StopInstanceRequest(instance_id=stopped))
    assert lab.wait(stopped, "Stopped") == "Stopped"
    e = error_of(
        lambda: lab.ecs.get_instance_screenshot(
            em.GetInstanceScreenshotRequest(region_id=REGION, instance_id=stopped)
        )
    )
    assert e.code == "IncorrectInstanceStatus" and e.status_code == 403
