"""The instance create wizard (/console/instances/new): one form whose fields carry RunInstances'
own wire names (ImageId, InstanceType, VSwitchId, SecurityGroupIds.N, DataDisk.N.Size, Tag.N.Key
...), filled from the region's images, instance types, zones, vSwitches, security groups and
key pairs; submitting it is one RunInstances call.

Success goes to the new instance's page (or to the list, for several); a refusal shows the
wizard again with the API's Code, Message and HTTP status and the values given (the password
excepted: it is never written back into a page)."""

from __future__ import annotations

import asyncio
import base64
import re
from dataclasses import dataclass, field
from typing import Any

from nubes.client import ClientError
from nubes.console.routing import Ctx, Route, get, post
from nubes.console.web import PREFIX, Page, redirect

DATA_DISK_ROWS = 3
TAG_ROWS = 3
DISK_CATEGORIES = ("cloud_essd", "cloud_auto", "cloud_ssd", "cloud_efficiency", "cloud_essd_entry")
# RunInstances' parameters the form gives as they are (when not blank).
PLAIN = (
    "ImageId",
    "InstanceType",
    "ZoneId",
    "VSwitchId",
    "KeyPairName",
    "Password",
    "SystemDisk.Category",
    "SystemDisk.Size",
    "InstanceName",
    "Amount",
)
GROUP_FIELD = re.compile(r"SecurityGroupIds\.(\d{1,3})")
DEFAULTS = {"Amount": "1", "SystemDisk.Category": "cloud_essd"}


@dataclass
class Options:
    """What the wizard's selects offer, and the first listing the API refused (shown)."""

    images: list[dict[str, str]] = field(default_factory=list)
    types: list[dict[str, str]] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)
    vswitches: list[dict[str, str]] = field(default_factory=list)
    groups: list[dict[str, str]] = field(default_factory=list)
    key_pairs: list[str] = field(default_factory=list)
    error: ClientError | None = None


async def listed(
    ctx: Ctx, options: Options, product: str, action: str, items: tuple[str, str], **params: str
) -> list[dict[str, Any]]:
    """The rows of one answer (all its first page); a refusal is kept in `options` and lists none."""
    try:
        answer = await ctx.call(product, action, **params)
    except ClientError as error:
        options.error = options.error or error
        return []
    return list(answer.get(items[0], {}).get(items[1], []))


async def options(ctx: Ctx) -> Options:
    found = Options()
    region = ctx.region_id
    images, types, zones, vpcs, vswitches, groups, key_pairs = await asyncio.gather(
        listed(ctx, found, "ecs", "DescribeImages", ("Images", "Image"), RegionId=region, PageSize="100"),
        listed(ctx, found, "ecs", "DescribeInstanceTypes", ("InstanceTypes", "InstanceType")),
        listed(ctx, found, "ecs", "DescribeZones", ("Zones", "Zone"), RegionId=region),
        listed(ctx, found, "vpc", "DescribeVpcs", ("Vpcs", "Vpc"), RegionId=region, PageSize="50"),
        listed(
            ctx, found, "vpc", "DescribeVSwitches", ("VSwitches", "VSwitch"), RegionId=region, PageSize="50"
        ),
        listed(
            ctx,
            found,
            "ecs",
            "DescribeSecurityGroups",
            ("SecurityGroups", "SecurityGroup"),
            RegionId=region,
            PageSize="50",
        ),
        listed(
            ctx, found, "ecs", "DescribeKeyPairs", ("KeyPairs", "KeyPair"), RegionId=region, PageSize="50"
        ),
    )
    found.images = [
        {
            "id": str(i.get("ImageId", "")),
            "label": f"{i.get('ImageName', '')} ({i.get('ImageId', '')}) · {i.get('ImageOwnerAlias', '')}",
        }
        for i in images
    ]
    # smallest first, so that the default fits a small host (the ECS console, too, starts small)
    by_size = sorted(
        types,
        key=lambda t: (
            int(t.get("CpuCoreCount", 0)),
            float(t.get("MemorySize", 0)),
            str(t.get("InstanceTypeId", "")),
        ),
    )
    found.types = [type_option(t) for t in by_size]
    found.zones = [str(z.get("ZoneId", "")) for z in zones]
    vpc_names = {v.get("VpcId"): v.get("VpcName", "") for v in vpcs}
    found.vswitches = [
        {
            "id": str(v.get("VSwitchId", "")),
            "vpc": str(v.get("VpcId", "")),
            "label": f"{v.get('VpcId', '')} {vpc_names.get(v.get('VpcId'), '')} / {v.get('VSwitchId', '')} "
            f"{v.get('VSwitchName', '')} ({v.get('ZoneId', '')}, {v.get('CidrBlock', '')})",
        }
        for v in vswitches
    ]
    found.groups = [group_option(g) for g in groups]
    found.key_pairs = [str(k.get("KeyPairName", "")) for k in key_pairs]
    return found


def group_option(group: dict[str, Any]) -> dict[str, str]:
    group_id, vpc_id = str(group.get("SecurityGroupId", "")), str(group.get("VpcId", ""))
    return {
        "id": group_id,
        "vpc": vpc_id,
        "label": f"{group_id} {group.get('SecurityGroupName', '')} · {vpc_id}",
    }


def type_option(instance_type: dict[str, Any]) -> dict[str, str]:
    """An instance type as the selects show it: "ecs.t5-lc1m1.small · 1 vCPU · 1 GiB"."""
    type_id = str(instance_type.get("InstanceTypeId", ""))
    memory = float(instance_type.get("MemorySize", 0))
    return {
        "id": type_id,
        "label": f"{type_id} · {instance_type.get('CpuCoreCount', '')} vCPU · {memory:g} GiB",
    }


def run_params(form: dict[str, str]) -> dict[str, str]:
    """RunInstances' parameters from the wizard's form: the plain fields, the ticked security
    groups numbered from 1, the data disk rows with a size, the tag rows with a key, and the user
    data (typed as text, with the browser's CRLF line ends made LF) Base64-encoded."""
    params = {name: form[name].strip() for name in PLAIN if form.get(name, "").strip()}
    if "Password" in params:
        params["Password"] = form["Password"]  # as typed: spaces may be part of it
    groups = sorted((int(m[1]), v) for k, v in form.items() if (m := GROUP_FIELD.fullmatch(k)) and v)
    for n, (_, group_id) in enumerate(groups, 1):  # more than the API allows: its refusal shows
        params[f"SecurityGroupIds.{n}"] = group_id
    disks = [n for n in range(1, DATA_DISK_ROWS + 1) if form.get(f"DataDisk.{n}.Size", "").strip()]
    for index, n in enumerate(disks, 1):
        params[f"DataDisk.{index}.Size"] = form[f"DataDisk.{n}.Size"].strip()
        if form.get(f"DataDisk.{n}.Category"):
            params[f"DataDisk.{index}.Category"] = form[f"DataDisk.{n}.Category"]
    tags = [n for n in range(1, TAG_ROWS + 1) if form.get(f"Tag.{n}.Key", "").strip()]
    for index, n in enumerate(tags, 1):
        params[f"Tag.{index}.Key"] = form[f"Tag.{n}.Key"].strip()
        params[f"Tag.{index}.Value"] = form.get(f"Tag.{n}.Value", "")
    user_data = form.get("UserData", "").replace("\r\n", "\n")
    if user_data.strip():
        params["UserData"] = base64.b64encode(user_data.encode()).decode()
    return params


async def wizard(ctx: Ctx, values: dict[str, str], error: ClientError | None = None) -> Page:
    found = await options(ctx)
    kept = {k: v for k, v in values.items() if k not in ("Password", "csrf_token")}
    chosen = {v for k, v in values.items() if GROUP_FIELD.fullmatch(k)}
    # with a vSwitch chosen, only the groups of its VPC can go with it
    vpc = next((v["vpc"] for v in found.vswitches if v["id"] == values.get("VSwitchId")), "")
    return ctx.render(
        "wizard.html",
        groups=[g for g in found.groups if not vpc or g["vpc"] == vpc],
        groups_error=None,
        error=error or found.error,
        http_status=(error.http_status or 400) if error else 200,
        options=found,
        values=kept,
        chosen_groups=chosen,
        categories=DISK_CATEGORIES,
        disk_rows=range(1, DATA_DISK_ROWS + 1),
        tag_rows=range(1, TAG_ROWS + 1),
    )


async def new(ctx: Ctx, _: re.Match[str]) -> Page:
    return await wizard(ctx, dict(DEFAULTS))


async def create(ctx: Ctx, _: re.Match[str]) -> Page:
    form = ctx.request.form
    try:
        answer = await ctx.call("ecs", "RunInstances", RegionId=ctx.region_id, **run_params(form))
    except ClientError as error:
        return await wizard(ctx, form, error)
    ids = list(answer.get("InstanceIdSets", {}).get("InstanceIdSet", []))
    return redirect(f"{PREFIX}/instances/{ids[0]}" if len(ids) == 1 else f"{PREFIX}/instances")


async def groups(ctx: Ctx, _: re.Match[str]) -> Page:
    """The security group choices for the VPC of the vSwitch chosen (htmx, when it changes):
    all the region's when none is."""
    vswitch_id = ctx.request.query.get("VSwitchId", "")
    found = Options()
    params = {"RegionId": ctx.region_id, "PageSize": "50"}
    if vswitch_id:
        vswitches = await listed(
            ctx,
            found,
            "vpc",
            "DescribeVSwitches",
            ("VSwitches", "VSwitch"),
            RegionId=ctx.region_id,
            VSwitchId=vswitch_id,
        )
        params["VpcId"] = str(vswitches[0].get("VpcId", "")) if vswitches else ""
    if found.error is None and params.get("VpcId") != "":
        rows = await listed(
            ctx, found, "ecs", "DescribeSecurityGroups", ("SecurityGroups", "SecurityGroup"), **params
        )
        found.groups = [group_option(g) for g in rows]
    return ctx.render(
        "_wizard_groups.html",
        http_status=(found.error.http_status or 400) if found.error else 200,
        groups_error=found.error,
        groups=found.groups,
        chosen_groups=set(),
    )


ROUTES: list[Route] = [
    get("/instances/new", new),
    post("/instances/new", create),
    get("/instances/new/groups", groups),
]
