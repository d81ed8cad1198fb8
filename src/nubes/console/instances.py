"""The instance detail page (/console/instances/<id>) and its power actions: Start, Stop
(optionally hibernating), Reboot and Release, each a POST form with the session's CSRF token.
The other actions are in instance_actions.py, the monitoring, console output and events tabs in
instance_tabs.py.

While the instance is in a transitional status (Pending, Starting, Stopping) its status badge
asks for itself again every 2 s (htmx, HX-Request: the badge alone is answered); once the
status is stable the answer tells htmx to reload the page, which then shows the new status
everywhere and polls no more.

Everything comes from the API, signed with the session's AccessKey: an unknown ID, or another
account's, is the API's InvalidInstanceId.NotFound, shown with its Code and Message and its
HTTP status. An action redirects (303) back to the page, which shows the status it moved to; an
action the API refuses is shown on the page, with the refusal's status."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from nubes.client import ClientError
from nubes.console.forms import unconfirmed
from nubes.console.instance_list import INSTANCE_ID, TRANSITIONAL
from nubes.console.routing import Ctx, Route, get, post
from nubes.console.web import PREFIX, Page, redirect
from nubes.console.wizard import Options, listed, type_option

ID = INSTANCE_ID.pattern.strip("^$")


async def show(ctx: Ctx, match: re.Match[str]) -> Page:
    if ctx.request.htmx:
        return await badge(ctx, match["id"])
    return await detail(ctx, match["id"])


async def badge(ctx: Ctx, instance_id: str) -> Page:
    """The status badge alone, for its own polling; a stable status reloads the whole page, and
    so does a refusal (the instance was released meanwhile: the page then says so), since htmx
    would not swap an error answer in and the polling would go on."""
    try:
        instance = await ctx.call("ecs", "DescribeInstanceAttribute", InstanceId=instance_id)
    except ClientError as error:
        page = ctx.render("_error.html", error=error)
        page.headers.append((b"hx-refresh", b"true"))
        return page
    status = str(instance.get("Status", ""))
    page = ctx.render(
        "_instance_status.html", instance={"id": instance_id, "status": status}, transitional=TRANSITIONAL
    )
    if status not in TRANSITIONAL:
        page.headers.append((b"hx-refresh", b"true"))
    return page


async def act(ctx: Ctx, match: re.Match[str]) -> Page:
    instance_id, action = match["id"], match["action"]
    form = ctx.request.form
    try:
        if action == "release":
            if not_yet := unconfirmed(form, "the release"):
                return await detail(ctx, instance_id, not_yet)
            attribute = await ctx.call("ecs", "DescribeInstanceAttribute", InstanceId=instance_id)
            force = "true" if attribute.get("Status") == "Running" else "false"
            await ctx.call("ecs", "DeleteInstance", InstanceId=instance_id, Force=force)
            return redirect(f"{PREFIX}/instances")
        if action == "stop":
            hibernate = "true" if form.get("hibernate") == "yes" else "false"
            await ctx.call("ecs", "StopInstance", InstanceId=instance_id, Hibernate=hibernate)
        else:
            await ctx.call("ecs", f"{action.capitalize()}Instance", InstanceId=instance_id)
    except ClientError as error:
        return await detail(ctx, instance_id, error)
    return redirect(f"{PREFIX}/instances/{instance_id}")


async def detail(
    ctx: Ctx, instance_id: str, action_error: ClientError | None = None, typed: dict[str, str] | None = None
) -> Page:
    """The page; after a refused action, with its error and the values typed into its form
    (`typed`, shown again; a password never is)."""
    try:
        instance = await ctx.call("ecs", "DescribeInstanceAttribute", InstanceId=instance_id)
        disks = await ctx.call(
            "ecs",
            "DescribeDisks",
            RegionId=str(instance.get("RegionId", ctx.region_id)),
            InstanceId=instance_id,
            PageSize="100",
        )
    except ClientError as error:
        return ctx.render("instance.html", error=error, http_status=error.http_status or 502, instance=None)
    shown = _detail(instance, disks)
    return ctx.render(
        "instance.html",
        error=action_error,
        tab="overview",
        transitional=TRANSITIONAL,
        choices=await _choices(ctx, shown["instance"]),
        notice=_notice(ctx),
        typed={k: v for k, v in (typed or {}).items() if k not in ("Password", "csrf_token")},
        **shown,
    )


async def _choices(ctx: Ctx, instance: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """What the action forms offer: the instance types, the Available disks of the instance's
    zone (to attach) and the images (for a new system disk). A listing the API refuses offers
    nothing (the action's own refusal would say why)."""
    region = ctx.region_id
    ignored = Options()
    types, disks, images = await asyncio.gather(
        listed(ctx, ignored, "ecs", "DescribeInstanceTypes", ("InstanceTypes", "InstanceType")),
        listed(
            ctx,
            ignored,
            "ecs",
            "DescribeDisks",
            ("Disks", "Disk"),
            RegionId=region,
            ZoneId=instance["zone"],
            Status="Available",
            PageSize="100",
        ),
        listed(ctx, ignored, "ecs", "DescribeImages", ("Images", "Image"), RegionId=region, PageSize="100"),
    )
    return {
        "types": [type_option(t) for t in types],
        "disks": [
            {
                "id": str(d.get("DiskId", "")),
                "label": f"{d.get('DiskId', '')} {d.get('DiskName', '')} · "
                f"{d.get('Category', '')} {d.get('Size', '')} GiB",
            }
            for d in disks
        ],
        "images": [
            {"id": str(i.get("ImageId", "")), "label": f"{i.get('ImageName', '')} ({i.get('ImageId', '')})"}
            for i in images
        ],
    }


def _notice(ctx: Ctx) -> str:
    """The image an action just asked for (CreateImage answers its ID), named in the query."""
    image = ctx.request.query.get("image", "")
    return f"Image {image} is being created." if INSTANCE_ID.match(image) else ""


def _detail(instance: dict[str, Any], disks: dict[str, Any]) -> dict[str, Any]:
    vpc = instance.get("VpcAttributes", {})
    eip = instance.get("EipAddress", {}).get("IpAddress", "")
    overview = {
        "id": instance.get("InstanceId", ""),
        "name": instance.get("InstanceName", ""),
        "status": instance.get("Status", ""),
        "type": instance.get("InstanceType", ""),
        "cpu": instance.get("Cpu", ""),
        "memory_gib": round(int(instance.get("Memory", 0)) / 1024, 1),
        "zone": instance.get("ZoneId", ""),
        "vpc": vpc.get("VpcId", ""),
        "vswitch": vpc.get("VSwitchId", ""),
        "private_ips": list(vpc.get("PrivateIpAddress", {}).get("IpAddress", [])),
        "public_ips": [*instance.get("PublicIpAddress", {}).get("IpAddress", []), *([eip] if eip else [])],
        "image": instance.get("ImageId", ""),
        "created": instance.get("CreationTime", ""),
        "hibernation": bool(instance.get("HibernationOptions", {}).get("Configured")),
    }
    interfaces = [
        {
            "id": e.get("NetworkInterfaceId", ""),
            "type": e.get("Type", ""),
            "mac": e.get("MacAddress", ""),
            "ips": [
                p.get("PrivateIpAddress", "") for p in e.get("PrivateIpSets", {}).get("PrivateIpSet", [])
            ],
        }
        for e in instance.get("NetworkInterfaces", {}).get("NetworkInterface", [])
    ]
    disk_rows = [
        {
            "id": d.get("DiskId", ""),
            "name": d.get("DiskName", ""),
            "type": d.get("Type", ""),
            "category": d.get("Category", ""),
            "size": d.get("Size", ""),
            "device": d.get("Device", ""),
            "status": d.get("Status", ""),
        }
        for d in disks.get("Disks", {}).get("Disk", [])
    ]
    groups = list(instance.get("SecurityGroupIds", {}).get("SecurityGroupId", []))
    return {"instance": overview, "disks": disk_rows, "interfaces": interfaces, "groups": groups}


ROUTES: list[Route] = [
    get(f"/instances/(?P<id>{ID})", show),
    post(f"/instances/(?P<id>{ID})/(?P<action>start|stop|reboot|release)", act),
]
