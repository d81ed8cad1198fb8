"""Monitoring: the agent's samples on the fake drivers with a manual clock, their aggregation into
ECS's periods, pruning, the request checks, screenshots through the store, and the PNG encoder."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from nubes.domain import instance_states as states
from nubes.domain.monitoring import MAX_POINTS, Delta, Window, window
from nubes.drivers.compute import png
from nubes.drivers.compute.fake import FAKE_DISK_RATES, FAKE_OP_NS, fake_load
from nubes.drivers.compute.qemu.cmdline import disk_device_id
from nubes.drivers.compute.qemu.monitorops import block_counters, process_cpu_seconds
from nubes.drivers.network.fake import FAKE_PORT_RATES
from nubes.errors import ApiError
from nubes.store.models import Disk, MonitorSample, NetworkInterface
from tests.unit.host_world import HostWorld


@pytest.fixture
def world(tmp_path: Path) -> Iterator[HostWorld]:
    """The host world, whose monitoring part the tests drive themselves (not on the agent's passes)."""
    w = HostWorld(tmp_path)
    w.agent.monitor = None
    yield w
    w.close()


def _running(world: HostWorld) -> tuple[str, str, str]:
    """A running instance, its system disk and its primary interface."""
    instance_id = world.launch()
    world.reach(instance_id, states.RUNNING)
    with world.db.session() as s:
        disk_id = s.scalars(select(Disk.id).where(Disk.instance_id == instance_id)).one()
        eni_id = s.scalars(
            select(NetworkInterface.id).where(NetworkInterface.instance_id == instance_id)
        ).one()
    return instance_id, disk_id, eni_id


def _minutes(world: HostWorld, n: int) -> None:
    """n samples a minute apart (the first after the baseline)."""
    for _ in range(n):
        world.clock.advance(60)
        report = world.monitor.sample_if_due()
        assert report is not None and report.rows > 0


def _window_from(world: HostWorld, start: datetime, minutes: int, period: int = 60) -> Window:
    end = start + timedelta(minutes=minutes)
    return window(
        start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ"), period, world.clock.now()
    )


def _start_minute(world: HostWorld) -> datetime:
    """The minute the baseline sample is taken in (the samples a minute apart cover it and on)."""
    return world.clock.now().replace(second=0, microsecond=0)


def test_samples_become_ecs_figures(world: HostWorld) -> None:
    instance_id, disk_id, eni_id = _running(world)
    first = world.monitor.sample()
    assert first.rows == 0 and set(first.skipped) == {instance_id, disk_id, eni_id}  # baselines only
    start = _start_minute(world)
    _minutes(world, 3)
    account = world.scope.account_id

    points = world.services.monitoring.instance_data(account, instance_id, _window_from(world, start, 3))
    assert len(points) == 3
    point = points[0]
    assert point["TimeStamp"] == start.strftime("%Y-%m-%dT%H:%M:00Z")
    assert point["CPU"] == round(fake_load(instance_id) * 100)
    assert point["BPSRead"] == FAKE_DISK_RATES[0] and point["BPSWrite"] == FAKE_DISK_RATES[1]
    assert point["IOPSRead"] == FAKE_DISK_RATES[2] and point["IOPSWrite"] == FAKE_DISK_RATES[3]
    rx_kbit, tx_kbit = FAKE_PORT_RATES[0] * 60 * 8 / 1000, FAKE_PORT_RATES[1] * 60 * 8 / 1000
    assert point["IntranetRX"] == round(rx_kbit) and point["IntranetTX"] == round(tx_kbit)
    assert point["IntranetBandwidth"] == round((rx_kbit + tx_kbit) / 60)
    assert point["InternetRX"] == 0

    [disk_point, *_] = world.services.monitoring.disk_data(account, disk_id, _window_from(world, start, 3))
    assert disk_point["BPSTotal"] == FAKE_DISK_RATES[0] + FAKE_DISK_RATES[1]
    assert disk_point["IOPSTotal"] == FAKE_DISK_RATES[2] + FAKE_DISK_RATES[3]
    assert disk_point["LatencyRead"] == FAKE_OP_NS // 1000

    # the primary interface is not a secondary one (ECS's default), but can be named
    assert (
        world.services.monitoring.eni_data(
            account, "cn-hangzhou", instance_id, None, _window_from(world, start, 3)
        )
        == []
    )
    [eni_point, *_] = world.services.monitoring.eni_data(
        account, "cn-hangzhou", instance_id, eni_id, _window_from(world, start, 3)
    )
    assert eni_point["PacketRx"] == str(FAKE_PORT_RATES[2] * 60)
    assert eni_point["IntranetRx"] == str(round(FAKE_PORT_RATES[0] * 60 / 1024))


def test_longer_periods_add_minutes_up(world: HostWorld) -> None:
    instance_id, disk_id, _ = _running(world)
    world.monitor.sample()
    start = _start_minute(world)
    _minutes(world, 20)
    account = world.scope.account_id
    tens = world.services.monitoring.instance_data(account, instance_id, _window_from(world, start, 20, 600))
    assert [p["TimeStamp"] for p in tens] == [
        start.strftime("%Y-%m-%dT%H:%M:00Z"),
        (start + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:00Z"),
    ]
    # totals add up over the ten minutes, rates and the CPU share stay what they were
    assert tens[0]["IntranetRX"] == round(FAKE_PORT_RATES[0] * 600 * 8 / 1000)
    assert tens[0]["CPU"] == round(fake_load(instance_id) * 100)
    assert tens[0]["BPSRead"] == FAKE_DISK_RATES[0]
    hour = world.services.monitoring.disk_data(account, disk_id, _window_from(world, start, 60, 3600))
    assert len(hour) == 1 and hour[0]["IOPSRead"] == FAKE_DISK_RATES[2]


def test_finer_samples_add_up_to_the_minute(world: HostWorld) -> None:
    instance_id, _, _ = _running(world)
    world.monitor.interval = 1
    start = _start_minute(world)
    world.clock.advance((start - world.clock.now()).total_seconds())
    world.monitor.sample()  # the baseline, on the minute's start
    for _ in range(60):
        world.clock.advance(1)
        world.monitor.sample_if_due()
    with world.db.session() as s:
        row = s.get(MonitorSample, (instance_id, int(start.timestamp()) // 60))
        assert row is not None and row.span_ms == 60_000
    [point] = world.services.monitoring.instance_data(
        world.scope.account_id, instance_id, _window_from(world, start, 1)
    )
    assert point["CPU"] == round(fake_load(instance_id) * 100)


def test_a_restarted_vm_starts_a_new_baseline(world: HostWorld) -> None:
    instance_id, _, _ = _running(world)
    world.monitor.sample()
    _minutes(world, 1)
    world.act(instance_id, "StopInstance")
    world.reach(instance_id, states.STOPPED)
    world.clock.advance(60)
    assert world.monitor.sample().instances == 0  # a stopped instance is not sampled
    world.act(instance_id, "StartInstance")
    world.reach(instance_id, states.RUNNING)
    world.clock.advance(60)
    report = world.monitor.sample()
    assert instance_id in report.skipped  # its counters started over


def test_rows_past_the_retention_are_pruned(world: HostWorld) -> None:
    now_minute = int(world.clock.now().timestamp()) // 60
    world.services.monitoring.record(now_minute - 9 * 24 * 60, [Delta("i-old", span_ms=60_000, cpu_ms=1)])
    world.services.monitoring.record(now_minute - 6 * 24 * 60, [Delta("i-kept", span_ms=60_000, cpu_ms=1)])
    assert world.monitor.prune_if_due() == 1
    assert world.monitor.prune_if_due() == 0  # not due again for an hour
    with world.db.session() as s:
        assert s.scalars(select(MonitorSample.resource_id)).all() == ["i-kept"]


def test_other_accounts_and_unknown_ids_are_not_found(world: HostWorld) -> None:
    instance_id, disk_id, _ = _running(world)
    w = _window_from(world, _start_minute(world), 5)
    calls: list[Callable[[], object]] = [
        lambda: world.services.monitoring.instance_data(world.scope.account_id + 1, instance_id, w),
        lambda: world.services.monitoring.disk_data(world.scope.account_id + 1, disk_id, w),
        lambda: world.services.monitoring.instance_data(world.scope.account_id, "i-nothere", w),
    ]
    for call in calls:
        with pytest.raises(ApiError) as e:
            call()
        assert e.value.http_status == 404 and e.value.code.endswith(".NotFound")
    with pytest.raises(ApiError) as e:
        world.services.monitoring.eni_data(world.scope.account_id, "cn-hangzhou", instance_id, "eni-x", w)
    assert e.value.code == "InvalidEniId.NotFound"


NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "period", "code"),
    [
        ("2026-01-05T10:00:00Z", "2026-01-05T11:00:00Z", 120, "InvalidParameter"),
        ("2026-01-05 10:00:00", "2026-01-05T11:00:00Z", 60, "InvalidStartTime.Malformed"),
        ("2026-01-05T10:00:00Z", "tomorrow", 60, "InvalidEndTime.Malformed"),
        ("2026-01-05T11:00:00Z", "2026-01-05T10:00:00Z", 60, "InvalidParameter"),
        ("2026-01-05T00:00:00Z", "2026-01-05T06:41:00Z", 60, "InvalidParameter.TooManyDataQueried"),
        ("2025-12-01T00:00:00Z", "2025-12-01T01:00:00Z", 60, "InvalidParameter"),
    ],
)
def test_request_checks(start: str, end: str, period: int, code: str) -> None:
    with pytest.raises(ApiError) as e:
        window(start, end, period, NOW)
    assert e.value.code == code and e.value.http_status == 400


def test_window_rounds_seconds_up_and_allows_400_points() -> None:
    w = window("2026-01-05T10:00:30Z", "2026-01-05T11:00:00Z", None, NOW)
    assert w.start == datetime(2026, 1, 5, 10, 1, tzinfo=UTC) and w.period == 60 and w.count == 59
    assert window("2026-01-05T00:00:00Z", "2026-01-05T06:40:00Z", 60, NOW).count == MAX_POINTS
    assert window("2026-01-01T00:00Z", "2026-01-05T00:00Z", 3600, NOW).count == 96


def test_screenshots_go_through_the_store(world: HostWorld) -> None:
    instance_id, _, _ = _running(world)

    # the agent, told at once (here: in the same thread), takes it
    def agent_told(_key: str) -> None:
        world.monitor.take_screenshots()

    world.services.compute_notify.listeners[:] = [agent_told]
    found, image = world.services.screenshots.take(world.scope.account_id, "cn-hangzhou", instance_id, True)
    assert found == instance_id and png.dimensions(image) == (720, 400)
    assert ("screenshot", instance_id) in world.vms.calls
    world.act(instance_id, "StopInstance")
    world.reach(instance_id, states.STOPPED)
    with pytest.raises(ApiError) as e:
        world.services.screenshots.take(world.scope.account_id, "cn-hangzhou", instance_id, False)
    assert e.value.code == "IncorrectInstanceStatus"


def test_a_screenshot_nobody_takes_is_unavailable(tmp_path: Path) -> None:
    world = HostWorld(tmp_path)
    try:
        instance_id, _, _ = _running(world)
        from nubes.domain.monitoring import Screenshots

        shots = Screenshots(world.db, world.clock, lambda _key: None, timeout=0.0, sleep=lambda _s: None)
        with pytest.raises(ApiError) as e:
            shots.take(world.scope.account_id, "cn-hangzhou", instance_id, False)
        assert e.value.code == "ServiceUnavailable" and e.value.http_status == 503
    finally:
        world.close()


# ---- PNG and the qemu driver's parsers ------------------------------------------------------------


def _decode_rgb(data: bytes) -> tuple[int, int, bytes]:
    width, height = png.dimensions(data)
    pos, idat = 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0]
        if kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * 3 + 1
    assert all(raw[y * stride] == 0 for y in range(height))
    return width, height, b"".join(raw[y * stride + 1 : (y + 1) * stride] for y in range(height))


def test_png_round_trip_and_ppm_conversion() -> None:
    pixels = bytes(range(256))[: 4 * 3 * 3] + bytes(4 * 3 * 3 - 36)
    assert _decode_rgb(png.encode_rgb(4, 3, pixels)) == (4, 3, pixels)
    ppm = b"P6\n# made by a test\n4 3\n255\n" + pixels
    assert _decode_rgb(png.ppm_to_png(ppm)) == (4, 3, pixels)
    with pytest.raises(ValueError):
        png.dimensions(b"GIF89a")
    with pytest.raises(ValueError):
        png.ppm_to_png(b"P3\n1 1\n255\n0 0 0")


def test_blockstats_map_to_disk_ids_and_cpu_time_is_read() -> None:
    answer = [
        {
            "device": "",
            "qdev": f"/machine/peripheral/{disk_device_id('d-sys1')}/virtio-backend",
            "stats": {
                "rd_bytes": 4096,
                "wr_bytes": 512,
                "rd_operations": 2,
                "wr_operations": 1,
                "rd_total_time_ns": 9000,
            },
        },
        {"device": "", "qdev": "/machine/peripheral/vd-other/virtio-backend", "stats": {"rd_bytes": 1}},
    ]
    found = block_counters(answer, ["d-sys1"])
    assert list(found) == ["d-sys1"]
    assert (
        found["d-sys1"].read_bytes == 4096
        and found["d-sys1"].write_ops == 1
        and found["d-sys1"].read_ns == 9000
    )
    cpu = process_cpu_seconds(os.getpid())
    assert cpu is not None and cpu > 0
    assert process_cpu_seconds(2**22 + 17) is None


def test_fake_ports_count_from_their_first_sync(world: HostWorld) -> None:
    instance_id, _, eni_id = _running(world)
    with world.db.session() as s:
        vpc_id = s.scalars(select(NetworkInterface.vpc_id).where(NetworkInterface.id == eni_id)).one()
        assert s.scalar(select(func.count()).select_from(MonitorSample)) == 0
    before = world.net_driver.port_counters(vpc_id, [eni_id, "eni-unknown"])
    world.clock.advance(10)
    after = world.net_driver.port_counters(vpc_id, [eni_id])
    assert list(before) == [eni_id]
    assert after[eni_id].rx_bytes - before[eni_id].rx_bytes == FAKE_PORT_RATES[0] * 10
    assert world.net_driver.port_counters("vpc-none", [eni_id]) == {}
    assert instance_id
