"""The instance page's other tabs: monitoring (the last hour of DescribeInstanceMonitorData, one
point a minute, drawn as SVG charts on the server), console output (GetInstanceConsoleOutput,
decoded) and events (DescribeInstanceHistoryEvents for the instance, in every lifecycle status:
the API answers only the finished ones unless asked)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from markupsafe import Markup

from nubes.client import ClientError
from nubes.console import charts
from nubes.console.instance_list import TRANSITIONAL
from nubes.console.instances import ID
from nubes.console.routing import Ctx, Route, get
from nubes.console.web import Page

WINDOW = timedelta(hours=1)
PERIOD = 60
EVENT_STATUSES = ("Scheduled", "Avoided", "Executing", "Executed", "Canceled", "Failed", "Inquiring")
STAMP = "%Y-%m-%dT%H:%M:%SZ"


def stamp(moment: datetime) -> str:
    return moment.strftime(STAMP)


def monitoring_charts(samples: list[dict[str, Any]], start: datetime) -> list[charts.Chart]:
    """CPU, network and disk charts of the samples, placed by their time since `start`."""

    def series(name: str, key: str, scale: float = 1.0) -> charts.Series:
        points = []
        for sample in samples:
            try:
                moment = datetime.strptime(str(sample.get("TimeStamp", "")), STAMP).replace(tzinfo=UTC)
            except ValueError:
                continue  # a sample without a readable time has nowhere to be drawn
            points.append(((moment - start).total_seconds(), float(sample.get(key, 0) or 0) / scale))
        return charts.Series(name, points)

    def chart(title: str, unit: str, lines: list[charts.Series], floor: float = 1.0) -> charts.Chart:
        return charts.Chart(title, unit, WINDOW.total_seconds(), lines, floor, "-60 min", "now")

    return [
        chart("CPU", "% of the vCPUs", [series("CPU", "CPU")], floor=100),
        chart(
            "Network (private)",
            "kbit/s",
            [series("in", "IntranetRX", PERIOD), series("out", "IntranetTX", PERIOD)],
        ),
        chart("Disk", "byte/s", [series("read", "BPSRead"), series("write", "BPSWrite")]),
    ]


async def monitoring(ctx: Ctx, instance_id: str) -> dict[str, Any]:
    end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - WINDOW
    answer = await ctx.call(
        "ecs",
        "DescribeInstanceMonitorData",
        InstanceId=instance_id,
        StartTime=stamp(start),
        EndTime=stamp(end),
        Period=str(PERIOD),
    )
    samples = list(answer.get("MonitorData", {}).get("InstanceMonitorData", []))
    drawn = [
        {
            "title": f"{chart.title} ({chart.unit})",
            "svg": Markup(charts.render(chart)),
        }  # render escapes its text
        for chart in monitoring_charts(samples, start)
    ]
    return {"charts": drawn, "samples": len(samples), "start": stamp(start), "end": stamp(end)}


async def output(ctx: Ctx, instance_id: str) -> dict[str, Any]:
    answer = await ctx.call("ecs", "GetInstanceConsoleOutput", RegionId=ctx.region_id, InstanceId=instance_id)
    try:
        text = base64.b64decode(str(answer.get("ConsoleOutput", "")), validate=True).decode(
            "utf-8", "replace"
        )
    except binascii.Error:
        text = "(the console output could not be decoded)"
    return {"output": text, "updated": answer.get("LastUpdateTime", "")}


async def events(ctx: Ctx, instance_id: str) -> dict[str, Any]:
    statuses = {f"InstanceEventCycleStatus.{n}": s for n, s in enumerate(EVENT_STATUSES, 1)}
    answer = await ctx.call(
        "ecs",
        "DescribeInstanceHistoryEvents",
        RegionId=ctx.region_id,
        InstanceId=instance_id,
        PageSize="100",
        **statuses,
    )
    rows = [
        {
            "id": e.get("EventId", ""),
            "type": e.get("EventType", {}).get("Name", ""),
            "status": e.get("EventCycleStatus", {}).get("Name", ""),
            "published": e.get("EventPublishTime", ""),
            "not_before": e.get("NotBefore", ""),
            "finished": e.get("EventFinishTime", ""),
            "reason": e.get("Reason", ""),
        }
        for e in answer.get("InstanceSystemEventSet", {}).get("InstanceSystemEventType", [])
    ]
    return {"events": rows}


TABS: dict[str, Callable[[Ctx, str], Awaitable[dict[str, Any]]]] = {
    "monitoring": monitoring,
    "output": output,
    "events": events,
}


async def tab(ctx: Ctx, match: re.Match[str]) -> Page:
    instance_id, name = match["id"], match["tab"]
    template = f"instance_{name}.html"
    try:
        attribute = await ctx.call("ecs", "DescribeInstanceAttribute", InstanceId=instance_id)
    except ClientError as error:
        return ctx.render(
            template, error=error, http_status=error.http_status or 502, instance=None, tab=name
        )
    instance = {
        "id": instance_id,
        "name": attribute.get("InstanceName", ""),
        "status": attribute.get("Status", ""),
    }
    context: dict[str, Any] = {"instance": instance, "tab": name, "transitional": TRANSITIONAL}
    try:
        content = await TABS[name](ctx, instance_id)
    except ClientError as error:
        return ctx.render(template, error=error, unavailable=True, **context)
    return ctx.render(template, unavailable=False, **context, **content)


ROUTES: list[Route] = [get(f"/instances/(?P<id>{ID})/(?P<tab>{'|'.join(TABS)})", tab)]
