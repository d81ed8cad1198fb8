"""The remote connection page of an instance (/console/instances/<id>/vnc): its display in the
browser through noVNC (vendored in static/novnc/, started by static/vnc.js), and a form to
change its VNC password.

The page never holds a VNC URL: they are good for one connection within 15 s, so vnc.js asks
for a fresh one (POST .../vnc/url, CSRF-checked like every POST) each time Connect is pressed;
the console answers with the path of the API's DescribeInstanceVncUrl (its host is the console's
in-process one) and the browser opens it on the host it loaded the page from. The password is
typed into the page and given to noVNC: it goes to the VM's VNC server, not to the console."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from nubes.client import ClientError
from nubes.console.instances import ID
from nubes.console.routing import Ctx, Route, get, post
from nubes.console.web import PREFIX, Page, redirect

JSON_TYPE = b"application/json"


async def page(ctx: Ctx, match: re.Match[str], error: ClientError | None = None) -> Page:
    instance_id = match["id"]
    try:
        instance = await ctx.call("ecs", "DescribeInstanceAttribute", InstanceId=instance_id)
    except ClientError as lookup:
        return ctx.render("vnc.html", error=lookup, http_status=lookup.http_status or 502, instance=None)
    summary = {
        "id": instance.get("InstanceId", instance_id),
        "name": instance.get("InstanceName", ""),
        "status": instance.get("Status", ""),
        "region": instance.get("RegionId", ctx.region_id),
    }
    changed = ctx.request.query.get("changed") == "1" and error is None
    return ctx.render("vnc.html", error=error, instance=summary, changed=changed)


async def url(ctx: Ctx, match: re.Match[str]) -> Page:
    """A fresh one-time VNC URL's path and query, as JSON (the API's Code and Message on refusal)."""
    try:
        answer = await ctx.call(
            "ecs", "DescribeInstanceVncUrl", RegionId=ctx.region_id, InstanceId=match["id"]
        )
    except ClientError as error:
        body = {"Code": error.code, "Message": error.message}
        return Page(error.http_status or 502, json.dumps(body).encode(), JSON_TYPE)
    parts = urlsplit(str(answer.get("VncUrl", "")))
    return Page(200, json.dumps({"path": f"{parts.path}?{parts.query}"}).encode(), JSON_TYPE)


async def change_password(ctx: Ctx, match: re.Match[str]) -> Page:
    instance_id = match["id"]
    try:
        await ctx.call(
            "ecs",
            "ModifyInstanceVncPasswd",
            RegionId=ctx.region_id,
            InstanceId=instance_id,
            VncPassword=ctx.request.form.get("vnc_password", ""),
        )
    except ClientError as error:
        return await page(ctx, match, error)
    return redirect(f"{PREFIX}/instances/{instance_id}/vnc?changed=1")


ROUTES: list[Route] = [
    get(f"/instances/(?P<id>{ID})/vnc", page),
    post(f"/instances/(?P<id>{ID})/vnc/url", url),
    post(f"/instances/(?P<id>{ID})/vnc/password", change_password),
]
