"""The instance detail page (/console/instances/<id>) and its actions: Start, Stop (optionally
hibernating), Reboot and Release, each a POST form with the session's CSRF token.

Everything comes from the API, signed with the session's AccessKey: an unknown ID, or another
account's, is the API's InvalidInstanceId.NotFound, shown with its Code and Message and its
HTTP status. An action redirects (303) back to the page, which shows the status it moved to; an
action the API refuses is shown on the page, with the refusal's status."""

from __future__ import annotations

import re
from typing import Any

from nubes.client import ClientError
from nubes.console.instance_list import INSTANCE_ID
from nubes.console.routing import Ctx, Route, get, post
from nubes.console.web import PREFIX, Page, redirect

ID = INSTANCE_ID.pattern.strip("^$")


async def show(ctx: Ctx, match: re.Match[str]) -> Page:
    return await detail(ctx, match["id"])


async def act(ctx: Ctx, match: re.Match[str]) -> Page:
    instance_id, action = match["id"], match["action"]
    form = ctx.request.form
    try:
        if action == "release":
            if form.get("confirm") != "yes":
                error = ClientError("ConfirmationRequired", "Tick the box to confirm the release.", 400)
                return await detail(ctx, instance_id, error)
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


async def detail(ctx: Ctx, instance_id: str, action_error: ClientError | None = None) -> Page:
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
    return ctx.render("instance.html", error=action_error, **_detail(instance, disks))


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
