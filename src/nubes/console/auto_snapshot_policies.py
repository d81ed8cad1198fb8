"""Automatic snapshot policies (/console/auto-snapshot-policies): the list and the create form
(name, the hours and weekdays at which snapshots are taken, how long they are kept), and a
policy's page (/console/auto-snapshot-policies/<id>) that applies it to disks, cancels it on
disks, and deletes it.

These actions take their lists as one JSON array (timePoints, repeatWeekdays, diskIds) and
spell their parameters in lower camel case, as ECS does; the form ticks one box per item."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from nubes.client import ClientError
from nubes.console import forms
from nubes.console.listing import listing
from nubes.console.routing import Ctx, Route, get, post
from nubes.console.web import PREFIX, Page

PATH = "/auto-snapshot-policies"
HOURS = range(24)  # time points, in UTC+8 as ECS counts them
WEEKDAYS = {1: "Mon", 2: "Tue", 3: "Wed", 4: "Thu", 5: "Fri", 6: "Sat", 7: "Sun"}
POLICY_FIELDS = {
    "id": "AutoSnapshotPolicyId",
    "name": "AutoSnapshotPolicyName",
    "retention": "RetentionDays",
    "disks": "DiskNums",
    "status": "Status",
    "created": "CreationTime",
}
ACTION_FORMS = {"apply": "apply-policy", "cancel": "cancel-policy", "delete": "delete-policy"}


async def policy_list(ctx: Ctx, _: re.Match[str] | None = None, failed: ClientError | None = None) -> Page:
    page = await listing(
        ctx, PATH, "ecs", "DescribeAutoSnapshotPolicyEx", ("AutoSnapshotPolicies", "AutoSnapshotPolicy"),
        RegionId=ctx.region_id,
    )  # fmt: skip
    form = ctx.request.form
    return ctx.render(
        "auto_snapshot_policies.html",
        error=failed or page.error,
        error_form="create-policy" if failed else "",
        listing=page,
        rows=[policy_row(p) for p in page.rows],
        hours=HOURS,
        weekdays=WEEKDAYS,
        entered={k: form.get(k, "") for k in ("autoSnapshotPolicyName", "retentionDays")},
    )


async def create(ctx: Ctx, _: re.Match[str]) -> Page:
    form = ctx.request.form
    params = {
        "regionId": ctx.region_id,
        "timePoints": forms.json_list(forms.numbered(form, "timePoint")),
        "repeatWeekdays": forms.json_list(forms.numbered(form, "repeatWeekday")),
        "retentionDays": form.get("retentionDays", "").strip(),
    }
    if form.get("autoSnapshotPolicyName", "").strip():
        params["autoSnapshotPolicyName"] = form["autoSnapshotPolicyName"].strip()
    return await forms.create(
        ctx, lambda e: policy_list(ctx, failed=e), PATH, "AutoSnapshotPolicyId", "ecs",
        "CreateAutoSnapshotPolicy", **params,
    )  # fmt: skip


async def show(ctx: Ctx, match: re.Match[str]) -> Page:
    return await detail(ctx, match["id"])


async def detail(ctx: Ctx, policy_id: str, failed: ClientError | None = None, form_id: str = "") -> Page:
    try:
        answer, disks = await asyncio.gather(
            ctx.call(
                "ecs", "DescribeAutoSnapshotPolicyEx", RegionId=ctx.region_id, AutoSnapshotPolicyId=policy_id
            ),
            forms.disks(ctx),
        )
        found = answer.get("AutoSnapshotPolicies", {}).get("AutoSnapshotPolicy", [])
        if not found:
            # what the policy's own actions answer for an ID the caller does not have
            raise ClientError(
                "ParameterInvalid",
                "The specified automatic snapshot policy does not exist in the region.",
                404,
            )
    except ClientError as error:
        return ctx.render("auto_snapshot_policy.html", error=error, error_form="", policy=None)
    rows = [
        forms.picked(d, {"id": "DiskId", "name": "DiskName", "policy": "AutoSnapshotPolicyId"}) for d in disks
    ]
    return ctx.render(
        "auto_snapshot_policy.html",
        error=failed,
        error_form=form_id,
        policy=policy_row(found[0]),
        applied=[d for d in rows if d["policy"] == policy_id],
        others=[d for d in rows if d["policy"] != policy_id],
    )


async def act(ctx: Ctx, match: re.Match[str]) -> Page:
    policy_id, action = match["id"], match["action"]
    here = f"{PREFIX}{PATH}/{policy_id}"

    async def refused(error: ClientError) -> Page:
        return await detail(ctx, policy_id, error, ACTION_FORMS[action])

    if action == "delete":
        return await forms.attempt(
            ctx, f"{PREFIX}{PATH}", refused, "ecs", "DeleteAutoSnapshotPolicy",
            regionId=ctx.region_id, autoSnapshotPolicyId=policy_id,
        )  # fmt: skip
    disk_ids = forms.json_list(forms.numbered(ctx.request.form, "disk"))
    call = "ApplyAutoSnapshotPolicy" if action == "apply" else "CancelAutoSnapshotPolicy"
    return await forms.attempt(
        ctx,
        here,
        refused,
        "ecs",
        call,
        regionId=ctx.region_id,
        autoSnapshotPolicyId=policy_id,
        diskIds=disk_ids,
    )


def policy_row(policy: dict[str, Any]) -> dict[str, Any]:
    def listed(name: str) -> list[int]:
        try:
            return [int(v) for v in json.loads(str(policy.get(name) or "[]"))]
        except ValueError:
            return []

    return {
        **forms.picked(policy, POLICY_FIELDS),
        "hours": listed("TimePoints"),
        "weekdays": [WEEKDAYS.get(d, str(d)) for d in listed("RepeatWeekdays")],
    }


ROUTES: list[Route] = [
    get(PATH, policy_list),
    post(PATH, create),
    get(f"{PATH}/(?P<id>{forms.ID})", show),
    post(f"{PATH}/(?P<id>{forms.ID})/(?P<action>{'|'.join(ACTION_FORMS)})", act),
]
