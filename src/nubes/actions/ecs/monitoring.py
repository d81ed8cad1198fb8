"""ECS monitoring data and screenshots: DescribeInstanceMonitorData, DescribeDiskMonitorData,
DescribeEniMonitorData (what the host agents sample, aggregated into 60, 600 or 3600 s periods:
nubes.domain.monitoring says how and in which units) and GetInstanceScreenshot (a PNG of the
instance's display, taken by the agent of its host)."""

from __future__ import annotations

import base64
from typing import Any

from nubes.actions.common import REGION_ID
from nubes.api.context import ActionContext
from nubes.api.params import Boolean, Integer, String
from nubes.api.registry import ActionTable
from nubes.domain.monitoring import Window, window

actions = ActionTable("ecs")

START_TIME = String("StartTime", required=True, max_length=64)
END_TIME = String("EndTime", required=True, max_length=64)
PERIOD = Integer("Period")  # 60, 600 or 3600 (checked with the time range, as ECS does)
INSTANCE_ID = String("InstanceId", required=True, max_length=64)


def _window(ctx: ActionContext, p: dict[str, Any]) -> Window:
    return window(p["StartTime"], p["EndTime"], p["Period"], ctx.services.clock.now())


@actions.define("DescribeInstanceMonitorData", [INSTANCE_ID, START_TIME, END_TIME, PERIOD])
def describe_instance_monitor_data(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """An instance's CPU, network and disk figures per period."""
    w = _window(ctx, p)
    points = ctx.services.monitoring.instance_data(ctx.principal.account_id, p["InstanceId"], w)
    return {"MonitorData": {"InstanceMonitorData": points}}


@actions.define(
    "DescribeDiskMonitorData", [String("DiskId", required=True, max_length=64), START_TIME, END_TIME, PERIOD]
)
def describe_disk_monitor_data(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """A disk's throughput, IOPS and latencies per period."""
    w = _window(ctx, p)
    points = ctx.services.monitoring.disk_data(ctx.principal.account_id, p["DiskId"], w)
    return {"TotalCount": len(points), "MonitorData": {"DiskMonitorData": points}}


@actions.define(
    "DescribeEniMonitorData",
    [REGION_ID, INSTANCE_ID, String("EniId", max_length=64), START_TIME, END_TIME, PERIOD],
)
def describe_eni_monitor_data(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The traffic of an instance's secondary network interfaces (or of the one EniId names) per period."""
    w = _window(ctx, p)
    points = ctx.services.monitoring.eni_data(
        ctx.principal.account_id, p["RegionId"], p["InstanceId"], p["EniId"] or None, w
    )
    return {"TotalCount": len(points), "MonitorData": {"EniMonitorData": points}}


@actions.define("GetInstanceScreenshot", [REGION_ID, INSTANCE_ID, Boolean("WakeUp", default=False)])
def get_instance_screenshot(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """A PNG of a Running instance's display, Base64-encoded (WakeUp: a key press first)."""
    instance_id, image = ctx.services.screenshots.take(
        ctx.principal.account_id, p["RegionId"], p["InstanceId"], p["WakeUp"]
    )
    return {"InstanceId": instance_id, "Screenshot": base64.b64encode(image).decode()}
