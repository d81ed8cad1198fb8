"""The instance list (/console/instances): search by ID, name or IP, a status filter, paging, and
batch Start/Stop/Reboot/Release of the selected rows. htmx asks for the table alone (HX-Request)
when the search form changes, and every 2 s while a row is in a transitional status (the ticked
checkboxes are kept across those swaps: hx-preserve)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from nubes.client import ClientError
from nubes.console.forms import unconfirmed
from nubes.console.overview import INSTANCE_STATUSES
from nubes.console.routing import Ctx, get, post
from nubes.console.web import PREFIX, Page, redirect

PAGE_SIZE = 20
IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
INSTANCE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
BATCH_ACTIONS = {"start": "StartInstances", "stop": "StopInstances", "reboot": "RebootInstances"}
# Statuses an instance only passes through: a page showing one polls until it is gone.
TRANSITIONAL = ("Pending", "Starting", "Stopping")
MAX_BATCH = 100


async def instances(ctx: Ctx, _: re.Match[str] | None = None, failed: ClientError | None = None) -> Page:
    request = ctx.request
    query = request.query.get("q", "").strip()
    status = request.query.get("status", "")
    try:
        page_number = max(1, int(request.query.get("page", "1")))
    except ValueError:
        page_number = 1
    params = {"RegionId": ctx.region_id, "PageSize": str(PAGE_SIZE), "PageNumber": str(page_number)}
    if status in INSTANCE_STATUSES:
        params["Status"] = status
    else:
        status = ""
    if query.startswith("i-"):
        params["InstanceIds"] = f'["{query}"]' if '"' not in query else "[]"
    elif IPV4.match(query):
        params["PrivateIpAddresses"] = f'["{query}"]'
    elif "=" in query:  # a tag: key=value, or key= for any value
        tag = query.partition("=")
        params["Tag.1.Key"] = tag[0].strip()
        if tag[2].strip():
            params["Tag.1.Value"] = tag[2].strip()
    elif query:
        params["InstanceName"] = query
    rows: list[dict[str, Any]] = []
    total = 0
    error = failed
    try:
        answer = await ctx.call("ecs", "DescribeInstances", **params)
        if not answer.get("TotalCount") and "PrivateIpAddresses" in params:
            params["PublicIpAddresses"] = params.pop("PrivateIpAddresses")
            answer = await ctx.call("ecs", "DescribeInstances", **params)
        rows = [instance_row(i) for i in answer.get("Instances", {}).get("Instance", [])]
        total = int(answer.get("TotalCount", 0))
    except ClientError as e:
        error = e
    pages = max(1, -(-total // PAGE_SIZE))

    def link(number: int) -> str:
        return f"{PREFIX}/instances?" + urlencode({"q": query, "status": status, "page": number})

    template = "_instances_table.html" if request.htmx else "instances.html"
    return ctx.render(
        template,
        # while a row is in a transitional status the table asks for itself again (htmx)
        polling=any(r["status"] in TRANSITIONAL for r in rows),
        here=link(page_number),
        error=error,
        http_status=(failed.http_status or 400) if failed else 200,
        rows=rows,
        total=total,
        q=query,
        status=status,
        statuses=INSTANCE_STATUSES,
        page=page_number,
        pages=pages,
        prev_link=link(page_number - 1) if page_number > 1 else "",
        next_link=link(page_number + 1) if page_number < pages else "",
        partial=request.htmx,
    )


async def batch(ctx: Ctx, _: re.Match[str]) -> Page:
    """Start, stop, reboot or release the rows selected in the list (select.N = an instance ID),
    in one StartInstances/StopInstances/RebootInstances/DeleteInstances call: all of them or,
    refused, none (shown on the list). Release needs its confirm box and forces (Running ones
    are stopped first, as the detail page's Release does)."""
    form = ctx.request.form
    action = BATCH_ACTIONS.get(form.get("action", ""))
    extra: dict[str, str] = {}
    if form.get("action") == "release":
        if not_yet := unconfirmed(form, "the release"):
            return await instances(ctx, failed=not_yet)
        action, extra = "DeleteInstances", {"Force": "true"}
    ids = [v for k, v in form.items() if k.startswith("select.") and INSTANCE_ID.match(v)][:MAX_BATCH]
    if action is None:
        return await instances(
            ctx, failed=ClientError("InvalidAction", "Choose Start, Stop, Reboot or Release.", 400)
        )
    if not ids:
        return await instances(
            ctx, failed=ClientError("NoInstanceSelected", "Select the instances to act on.", 400)
        )
    params = {f"InstanceId.{n}": instance_id for n, instance_id in enumerate(ids, 1)}
    try:
        await ctx.call("ecs", action, RegionId=ctx.region_id, **params, **extra)
    except ClientError as error:
        return await instances(ctx, failed=error)
    return redirect(f"{PREFIX}/instances")


def instance_row(instance: dict[str, Any]) -> dict[str, Any]:
    private = instance.get("VpcAttributes", {}).get("PrivateIpAddress", {}).get("IpAddress", [])
    public = instance.get("PublicIpAddress", {}).get("IpAddress", [])
    eip = instance.get("EipAddress", {}).get("IpAddress", "")
    return {
        "id": instance.get("InstanceId", ""),
        "name": instance.get("InstanceName", ""),
        "status": instance.get("Status", ""),
        "type": instance.get("InstanceType", ""),
        "zone": instance.get("ZoneId", ""),
        "private_ips": list(private),
        "public_ips": [*public, *([eip] if eip else [])],
    }


ROUTES = [get("/instances", instances), post("/instances/batch", batch)]
