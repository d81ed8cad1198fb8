"""Images (/console/images): custom images (ImageOwnerAlias=self), the public ones (system) and
those shared with the account (others); a custom image made of an instance or a snapshot
(CreateImage) or imported from a bucket (ImportImage). An image's page (/console/images/<id>)
shares it with accounts (ModifyImageSharePermission, DescribeImageSharePermission), copies it to
a region (CopyImage), exports it to a bucket (ExportImage) and deletes it (DeleteImage).

While an image is being made, its Progress is shown and the table (or the image's status) asks
for itself again every 2 s (htmx, picking its own element out of the page), until none is."""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import urlencode

from nubes.client import ClientError
from nubes.console import forms
from nubes.console.listing import listing
from nubes.console.routing import Ctx, Route, get, post
from nubes.console.web import PREFIX, Page

OWNERS = {"self": "Custom", "system": "Public", "others": "Shared with me"}
BUSY = ("Creating", "Waiting")
# DescribeImages shows only Available images unless told otherwise: the console shows them all
ALL_STATUSES = "Creating,Waiting,Available,UnAvailable,CreateFailed,Deprecated"
DISK_FORMATS = ("raw", "qcow2", "vhd")  # what ImportImage reads and ExportImage writes
IMAGE_FIELDS = {
    "id": "ImageId",
    "name": "ImageName",
    "family": "ImageFamily",
    "status": "Status",
    "size": "Size",
    "os": "OSName",
    "owner": "ImageOwnerAlias",
    "architecture": "Architecture",
    "created": "CreationTime",
    "description": "Description",
}
# the image's import and export tasks, shown until they end (DescribeTasks' TaskStatus)
TASK_FIELDS = {"id": "TaskId", "action": "TaskAction", "status": "TaskStatus", "finished": "FinishedTime"}
OPEN_TASKS = ("Waiting", "Processing")
ACTION_FORMS = {
    "share": "share-image",
    "unshare": "share-image",
    "copy": "copy-image",
    "export": "export-image",
    "delete": "delete-image",
}


async def image_list(
    ctx: Ctx, _: re.Match[str] | None = None, failed: ClientError | None = None, form_id: str = ""
) -> Page:
    owner = ctx.request.query.get("owner", "self")
    owner = owner if owner in OWNERS else "self"
    page = await listing(
        ctx, "/images", "ecs", "DescribeImages", ("Images", "Image"), carried={"owner": owner},
        RegionId=ctx.region_id, ImageOwnerAlias=owner, Status=ALL_STATUSES,
    )  # fmt: skip
    rows = [image_row(i) for i in page.rows]
    try:
        instances, snapshots = await asyncio.gather(
            forms.instances(ctx), forms.snapshots(ctx, Status="accomplished")
        )
    except ClientError as error:
        failed = failed or error
        instances, snapshots = [], []
    return ctx.render(
        "images.html",
        error=failed or page.error,
        error_form=form_id if failed else "",
        listing=page,
        rows=rows,
        owner=owner,
        owners=OWNERS,
        busy=any(r["status"] in BUSY for r in rows),
        refresh=f"{PREFIX}/images?" + urlencode({"owner": owner, "page": page.page}),
        instances=instances,
        snapshots=[forms.picked(s, {"id": "SnapshotId", "name": "SnapshotName"}) for s in snapshots],
        formats=DISK_FORMATS,
    )


async def create(ctx: Ctx, _: re.Match[str]) -> Page:
    """CreateImage from the chosen instance or, if none is chosen, the chosen snapshot."""
    form = ctx.request.form
    params = {k: form[k].strip() for k in ("ImageName", "Description") if form.get(k, "").strip()}
    source = "InstanceId" if form.get("InstanceId") else "SnapshotId"
    params[source] = form.get(source, "")
    return await forms.create(
        ctx, lambda e: image_list(ctx, failed=e, form_id="create-image"), "/images", "ImageId", "ecs",
        "CreateImage", RegionId=ctx.region_id, **params,
    )  # fmt: skip


async def import_image(ctx: Ctx, _: re.Match[str]) -> Page:
    form = ctx.request.form
    params = {
        f"DiskDeviceMapping.1.{name}": form[name].strip()
        for name in ("OSSBucket", "OSSObject", "Format")
        if form.get(name, "").strip()
    }
    if form.get("ImageName", "").strip():
        params["ImageName"] = form["ImageName"].strip()
    return await forms.create(
        ctx, lambda e: image_list(ctx, failed=e, form_id="import-image"), "/images", "ImageId", "ecs",
        "ImportImage", RegionId=ctx.region_id, **params,
    )  # fmt: skip


async def show(ctx: Ctx, match: re.Match[str]) -> Page:
    return await detail(ctx, match["id"])


async def detail(ctx: Ctx, image_id: str, failed: ClientError | None = None, form_id: str = "") -> Page:
    try:
        answer = await ctx.call(
            "ecs", "DescribeImages", RegionId=ctx.region_id, ImageId=image_id, Status=ALL_STATUSES
        )
        found = answer.get("Images", {}).get("Image", [])
        if not found:
            # DescribeImages lists nothing for an image the caller may not see; its actions say this
            raise ClientError(
                "InvalidImageId.NotFound", f"The specified image does not exist: {image_id}.", 404
            )
        image = found[0]
        shared: list[str] = []
        tasks: list[dict[str, Any]] = []
        if image.get("ImageOwnerAlias") == "self":
            found_tasks = await ctx.call(
                "ecs", "DescribeTasks", RegionId=ctx.region_id, **{"ResourceIds.1": image_id}, PageSize="100"
            )
            tasks = [forms.picked(t, TASK_FIELDS) for t in found_tasks.get("TaskSet", {}).get("Task", [])]
            shares = await ctx.call(
                "ecs",
                "DescribeImageSharePermission",
                RegionId=ctx.region_id,
                ImageId=image_id,
                PageSize="100",
            )
            shared = [str(a.get("AliyunId", "")) for a in shares.get("Accounts", {}).get("Account", [])]
    except ClientError as error:
        return ctx.render("image.html", error=error, error_form="", image=None)
    mappings = image.get("DiskDeviceMappings", {}).get("DiskDeviceMapping", [])
    return ctx.render(
        "image.html",
        error=failed,
        error_form=form_id,
        image={
            **image_row(image),
            "snapshots": [m.get("SnapshotId", "") for m in mappings],
        },
        busy=image.get("Status") in BUSY or any(t["status"] in OPEN_TASKS for t in tasks),
        shared=shared,
        tasks=tasks,
        regions=ctx.session.regions,
        formats=DISK_FORMATS,
    )


async def act(ctx: Ctx, match: re.Match[str]) -> Page:
    image_id, action = match["id"], match["action"]
    form = ctx.request.form
    here = f"{PREFIX}/images/{image_id}"
    image = {"RegionId": ctx.region_id, "ImageId": image_id}

    async def refused(error: ClientError) -> Page:
        return await detail(ctx, image_id, error, ACTION_FORMS[action])

    if action in ("share", "unshare"):
        field = "AddAccount" if action == "share" else "RemoveAccount"
        accounts = forms.words(form.get(field, ""))
        if not accounts:
            return await refused(
                forms.refusal("MissingParameter", "Give the account IDs to share the image with.")
            )
        numbered = {f"{field}.{n}": uid for n, uid in enumerate(accounts, 1)}
        return await forms.attempt(
            ctx, here, refused, "ecs", "ModifyImageSharePermission", **image, **numbered
        )
    if action == "copy":
        region = form.get("DestinationRegionId", "") or ctx.region_id
        params = (
            {"DestinationImageName": form["DestinationImageName"]} if form.get("DestinationImageName") else {}
        )
        if region == ctx.region_id:
            return await forms.create(
                ctx,
                refused,
                "/images",
                "ImageId",
                "ecs",
                "CopyImage",
                DestinationRegionId=region,
                **image,
                **params,
            )
        # the copy is in another region: the list of this one is where to come back
        done = f"{PREFIX}/images"
        return await forms.attempt(
            ctx, done, refused, "ecs", "CopyImage", DestinationRegionId=region, **image, **params
        )
    if action == "export":
        params = {k: form[k] for k in ("OSSBucket", "OSSPrefix", "ImageFormat") if form.get(k)}
        return await forms.attempt(ctx, here, refused, "ecs", "ExportImage", **image, **params)
    if not_yet := forms.unconfirmed(form, "the deletion"):
        return await refused(not_yet)
    force = "true" if form.get("Force") == "yes" else "false"
    return await forms.attempt(ctx, f"{PREFIX}/images", refused, "ecs", "DeleteImage", Force=force, **image)


def image_row(image: dict[str, Any]) -> dict[str, Any]:
    return {**forms.picked(image, IMAGE_FIELDS), "progress": forms.percent(image.get("Progress"))}


ROUTES: list[Route] = [
    get("/images", image_list),
    post("/images", create),
    post("/images/import", import_image),
    get(f"/images/(?P<id>{forms.ID})", show),
    post(f"/images/(?P<id>{forms.ID})/(?P<action>{'|'.join(ACTION_FORMS)})", act),
]
