"""Cloud disks: the list (/console/disks, filtered by status, category and instance) with the
create form, and a disk's page (/console/disks/<id>) with its actions: attach to an instance,
detach, resize (online or offline, as ResizeDisk's Type says), snapshot and delete.

Every action is the ECS call of its name; a refusal is shown next to its form with the API's
Code, Message and HTTP status, and a success redirects (303) back to the page."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from urllib.parse import urlencode

from nubes.client import ClientError
from nubes.console import forms
from nubes.console.listing import listing
from nubes.console.routing import Ctx, Route, get, post
from nubes.console.web import PREFIX, Page

# DescribeDisks' statuses, as ECS spells them
DISK_STATUSES = ("Creating", "Available", "Attaching", "In_use", "Detaching", "ReIniting")
# statuses a disk leaves by itself: while one is shown, the page refreshes it every 2 s (htmx)
MOVING = ("Creating", "Attaching", "Detaching", "ReIniting")
FILTERS = {"status": "Status", "category": "Category", "instance": "InstanceId"}
ACTION_FORMS = {
    "attach": "attach-disk",
    "detach": "detach-disk",
    "resize": "resize-disk",
    "snapshot": "create-snapshot",
    "delete": "delete-disk",
}
CREATE_FIELDS = ("ZoneId", "DiskCategory", "Size", "DiskName", "SnapshotId", "Description")


async def disk_list(ctx: Ctx, _: re.Match[str] | None = None, failed: ClientError | None = None) -> Page:
    query = ctx.request.query
    chosen = {name: query.get(name, "").strip() for name in FILTERS}
    params = {FILTERS[name]: value for name, value in chosen.items() if value}
    page = await listing(
        ctx,
        "/disks",
        "ecs",
        "DescribeDisks",
        ("Disks", "Disk"),
        carried=chosen,
        RegionId=ctx.region_id,
        **params,
    )
    try:
        (zones, categories), instances, snapshots = await asyncio.gather(
            forms.zones(ctx),
            forms.instances(ctx),
            forms.snapshots(ctx, Status="accomplished"),
        )
    except ClientError as error:
        failed = failed or error
        zones, categories, instances, snapshots = [], [], [], []
    return ctx.render(
        "disks.html",
        error=failed or page.error,
        error_form="create-disk" if failed else "",
        listing=page,
        rows=[disk_row(d) for d in page.rows],
        busy=any(d.get("Status") in MOVING for d in page.rows),
        refresh=f"{PREFIX}/disks?" + urlencode({**chosen, "page": page.page}),
        chosen=chosen,
        statuses=DISK_STATUSES,
        zones=zones,
        categories=categories,
        instances=instances,
        snapshots=[s.get("SnapshotId", "") for s in snapshots],
        entered={name: ctx.request.form.get(name, "") for name in CREATE_FIELDS},
    )


async def create(ctx: Ctx, _: re.Match[str]) -> Page:
    form = ctx.request.form
    params = {name: form[name].strip() for name in CREATE_FIELDS if form.get(name, "").strip()}
    return await forms.create(
        ctx, lambda e: disk_list(ctx, failed=e), "/disks", "DiskId", "ecs", "CreateDisk",
        RegionId=ctx.region_id, **params,
    )  # fmt: skip


async def show(ctx: Ctx, match: re.Match[str]) -> Page:
    return await detail(ctx, match["id"])


async def detail(ctx: Ctx, disk_id: str, failed: ClientError | None = None, form_id: str = "") -> Page:
    try:
        disk = await find(ctx, disk_id)
        instances, snapshots = await asyncio.gather(
            forms.instances(ctx, ZoneId=str(disk.get("ZoneId", ""))),
            forms.snapshots(ctx, DiskId=disk_id),
        )
    except ClientError as error:
        return ctx.render("disk.html", error=error, error_form="", disk=None)
    return ctx.render(
        "disk.html",
        error=failed,
        error_form=form_id,
        disk=disk_row(disk),
        busy=disk.get("Status") in MOVING,
        instances=[i for i in instances if i["status"] in ("Running", "Stopped")],
        snapshots=[
            forms.picked(s, {"id": "SnapshotId", "name": "SnapshotName", "status": "Status"})
            for s in snapshots
        ],
    )


async def find(ctx: Ctx, disk_id: str) -> dict[str, Any]:
    """The disk, as DescribeDisks shows it to this account. DescribeDisks answers an empty list for
    an ID it does not show the caller, where the disk's actions say InvalidDiskId.NotFound (404):
    the page says the same."""
    answer = await ctx.call("ecs", "DescribeDisks", RegionId=ctx.region_id, DiskIds=json.dumps([disk_id]))
    found = answer.get("Disks", {}).get("Disk", [])
    if not found:
        raise ClientError("InvalidDiskId.NotFound", f"The specified disk does not exist: {disk_id}.", 404)
    return dict(found[0])


async def act(ctx: Ctx, match: re.Match[str]) -> Page:
    disk_id, action = match["id"], match["action"]
    form = ctx.request.form
    here = f"{PREFIX}/disks/{disk_id}"

    async def refused(error: ClientError) -> Page:
        return await detail(ctx, disk_id, error, ACTION_FORMS[action])

    if action == "attach":
        return await forms.attempt(
            ctx, here, refused, "ecs", "AttachDisk", DiskId=disk_id, InstanceId=form.get("InstanceId", "")
        )
    if action == "detach":
        return await forms.attempt(
            ctx, here, refused, "ecs", "DetachDisk", DiskId=disk_id, InstanceId=form.get("InstanceId", "")
        )
    if action == "resize":
        resize_type = "online" if form.get("Type") == "online" else "offline"
        return await forms.attempt(
            ctx,
            here,
            refused,
            "ecs",
            "ResizeDisk",
            DiskId=disk_id,
            NewSize=form.get("NewSize", ""),
            Type=resize_type,
        )
    if action == "snapshot":
        name = {"SnapshotName": form["SnapshotName"]} if form.get("SnapshotName") else {}
        return await forms.attempt(
            ctx, f"{PREFIX}/snapshots", refused, "ecs", "CreateSnapshot", DiskId=disk_id, **name
        )
    if not_yet := forms.unconfirmed(form, "the deletion"):
        return await refused(not_yet)
    return await forms.attempt(ctx, f"{PREFIX}/disks", refused, "ecs", "DeleteDisk", DiskId=disk_id)


DISK_FIELDS = {
    "id": "DiskId",
    "name": "DiskName",
    "type": "Type",
    "category": "Category",
    "size": "Size",
    "status": "Status",
    "instance": "InstanceId",
    "device": "Device",
    "zone": "ZoneId",
    "snapshot": "SourceSnapshotId",
    "policy": "AutoSnapshotPolicyId",
    "created": "CreationTime",
}


def disk_row(disk: dict[str, Any]) -> dict[str, Any]:
    return forms.picked(disk, DISK_FIELDS)


ROUTES: list[Route] = [
    get("/disks", disk_list),
    post("/disks", create),
    get(f"/disks/(?P<id>{forms.ID})", show),
    post(f"/disks/(?P<id>{forms.ID})/(?P<action>{'|'.join(ACTION_FORMS)})", act),
]
