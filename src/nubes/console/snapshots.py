"""Snapshots (/console/snapshots): the list with each one's Status and Progress, refreshing itself
every 2 s (htmx asks for the table alone) while one is still progressing, and per snapshot:
roll its disk back to it (ResetDisk), make a disk of it (CreateDisk with SnapshotId), delete it.

A refusal is shown above the table with the API's Code, Message and HTTP status."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from nubes.client import ClientError
from nubes.console import forms
from nubes.console.listing import listing
from nubes.console.routing import Ctx, Route, get, post
from nubes.console.web import PREFIX, Page

SNAPSHOT_STATUSES = ("progressing", "accomplished", "failed")
FILTERS = {"status": "Status", "disk": "DiskId"}


async def snapshot_list(ctx: Ctx, _: re.Match[str] | None = None, failed: ClientError | None = None) -> Page:
    query = ctx.request.query
    chosen = {name: query.get(name, "").strip() for name in FILTERS}
    params = {FILTERS[name]: value for name, value in chosen.items() if value}
    page = await listing(
        ctx, "/snapshots", "ecs", "DescribeSnapshots", ("Snapshots", "Snapshot"), carried=chosen,
        RegionId=ctx.region_id, **params,
    )  # fmt: skip
    rows = [snapshot_row(s) for s in page.rows]
    context: dict[str, Any] = {
        "listing": page,
        "rows": rows,
        "busy": any(r["status"] == "progressing" for r in rows),
        "refresh": f"{PREFIX}/snapshots?" + urlencode({**chosen, "page": page.page}),
        "chosen": chosen,
        "partial": ctx.request.htmx,
    }
    if ctx.request.htmx:
        return ctx.render("_snapshots_table.html", error=failed or page.error, **context)
    try:
        zones, categories = await forms.zones(ctx)
    except ClientError as error:
        failed = failed or error
        zones, categories = [], []
    return ctx.render(
        "snapshots.html",
        error=failed or page.error,
        error_form="snapshots" if failed else "",
        statuses=SNAPSHOT_STATUSES,
        zones=zones,
        categories=categories,
        **context,
    )


async def act(ctx: Ctx, match: re.Match[str]) -> Page:
    snapshot_id, action = match["id"], match["action"]
    form = ctx.request.form
    back = f"{PREFIX}/snapshots"

    async def refused(error: ClientError) -> Page:
        return await snapshot_list(ctx, failed=error)

    if action == "reset":
        if not_yet := forms.unconfirmed(form, "the rollback"):
            return await refused(not_yet)
        return await forms.attempt(
            ctx, back, refused, "ecs", "ResetDisk", DiskId=form.get("DiskId", ""), SnapshotId=snapshot_id
        )
    return await forms.attempt(ctx, back, refused, "ecs", "DeleteSnapshot", SnapshotId=snapshot_id)


SNAPSHOT_FIELDS = {
    "id": "SnapshotId",
    "name": "SnapshotName",
    "disk": "SourceDiskId",
    "disk_type": "SourceDiskType",
    "size": "SourceDiskSize",
    "status": "Status",
    "kind": "SnapshotType",
    "created": "CreationTime",
}


def snapshot_row(snapshot: dict[str, Any]) -> dict[str, Any]:
    return {**forms.picked(snapshot, SNAPSHOT_FIELDS), "progress": forms.percent(snapshot.get("Progress"))}


async def new_disk(ctx: Ctx, _: re.Match[str]) -> Page:
    """A disk made of the chosen snapshot (its size is the snapshot's unless a larger one is given)."""
    form = ctx.request.form
    params = {k: form[k] for k in ("SnapshotId", "ZoneId", "DiskCategory", "DiskName", "Size") if form.get(k)}
    return await forms.create(
        ctx, lambda e: snapshot_list(ctx, failed=e), "/disks", "DiskId", "ecs", "CreateDisk",
        RegionId=ctx.region_id, **params,
    )  # fmt: skip


ROUTES: list[Route] = [
    get("/snapshots", snapshot_list),
    post("/snapshots/disk", new_disk),
    post(f"/snapshots/(?P<id>{forms.ID})/(?P<action>reset|delete)", act),
]
