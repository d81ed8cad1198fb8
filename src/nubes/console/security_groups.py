"""Security group pages: the list (/security-groups) with Create (in a VPC) and Delete, and a
group's page (/security-groups/<id>), its rule editor: the inbound and outbound rules
(DescribeSecurityGroupAttribute), a form to add one of each direction
(AuthorizeSecurityGroup/AuthorizeSecurityGroupEgress), and per rule a Delete
(RevokeSecurityGroup(Egress) by SecurityGroupRuleId.1) and a change of its priority and
description (ModifySecurityGroupRule/ModifySecurityGroupEgressRule by SecurityGroupRuleId)."""

from __future__ import annotations

import re
from typing import Any

from nubes.client import ClientError
from nubes.console.forms import ID, choices, fields, render, submit
from nubes.console.listing import listing
from nubes.console.routing import Ctx, Route, get, post
from nubes.console.web import Page

# Each direction's API actions and the form fields naming its peer (the API's own names).
DIRECTIONS: dict[str, dict[str, Any]] = {
    "ingress": {
        "authorize": "AuthorizeSecurityGroup",
        "revoke": "RevokeSecurityGroup",
        "modify": "ModifySecurityGroupRule",
        "peer": ("SourceCidrIp", "SourceGroupId"),
    },
    "egress": {
        "authorize": "AuthorizeSecurityGroupEgress",
        "revoke": "RevokeSecurityGroupEgress",
        "modify": "ModifySecurityGroupEgressRule",
        "peer": ("DestCidrIp", "DestGroupId"),
    },
}
PROTOCOLS = ("tcp", "udp", "icmp", "all")
DIRECTION = "(?P<direction>ingress|egress)"


async def groups(ctx: Ctx, _: re.Match[str] | None = None, refused: ClientError | None = None) -> Page:
    found = await listing(
        ctx,
        "/security-groups",
        "ecs",
        "DescribeSecurityGroups",
        ("SecurityGroups", "SecurityGroup"),
        RegionId=ctx.region_id,
    )
    vpcs = await choices(ctx, "vpc", "DescribeVpcs", ("Vpcs", "Vpc"), RegionId=ctx.region_id)
    return render(ctx, "security_groups.html", refused, found, vpcs=vpcs)


async def create(ctx: Ctx, _: re.Match[str]) -> Page:
    params = fields(ctx, "SecurityGroupName", "VpcId", "Description")
    return await submit(
        ctx,
        "/security-groups",
        lambda e: groups(ctx, refused=e),
        "ecs",
        "CreateSecurityGroup",
        RegionId=ctx.region_id,
        **params,
    )


async def delete(ctx: Ctx, _: re.Match[str]) -> Page:
    group_id = ctx.request.form.get("SecurityGroupId", "")
    return await submit(
        ctx,
        "/security-groups",
        lambda e: groups(ctx, refused=e),
        "ecs",
        "DeleteSecurityGroup",
        RegionId=ctx.region_id,
        SecurityGroupId=group_id,
    )


async def group(ctx: Ctx, match: re.Match[str], refused: ClientError | None = None) -> Page:
    try:
        answer = await ctx.call(
            "ecs", "DescribeSecurityGroupAttribute", RegionId=ctx.region_id, SecurityGroupId=match["id"]
        )
    except ClientError as error:
        return ctx.render("security_group.html", error=error, group=None)
    rules = answer.get("Permissions", {}).get("Permission", [])
    by_direction = {d: [r for r in rules if r.get("Direction") == d] for d in DIRECTIONS}
    for listed in by_direction.values():
        listed.sort(key=lambda r: int(r.get("Priority", 1)))
    status = (refused.http_status or 400) if refused else 200
    return ctx.render(
        "security_group.html",
        error=refused,
        http_status=status,
        group=answer,
        rules=by_direction,
        protocols=PROTOCOLS,
        peers={d: v["peer"] for d, v in DIRECTIONS.items()},
    )


async def authorize(ctx: Ctx, match: re.Match[str]) -> Page:
    direction = DIRECTIONS[match["direction"]]
    params = fields(ctx, "IpProtocol", "PortRange", *direction["peer"], "Policy", "Priority", "Description")
    if params.get("IpProtocol") in ("icmp", "all") and "PortRange" not in params:
        params["PortRange"] = "-1/-1"  # the only range these protocols have
    return await _rule_call(ctx, match, direction["authorize"], **params)


async def revoke(ctx: Ctx, match: re.Match[str]) -> Page:
    rule_id = ctx.request.form.get("SecurityGroupRuleId", "")
    action = DIRECTIONS[match["direction"]]["revoke"]
    return await _rule_call(ctx, match, action, **{"SecurityGroupRuleId.1": rule_id})


async def modify(ctx: Ctx, match: re.Match[str]) -> Page:
    # An empty description is sent as it is: it clears the rule's description.
    params = fields(ctx, "SecurityGroupRuleId", "Priority")
    params["Description"] = ctx.request.form.get("Description", "").strip()
    return await _rule_call(ctx, match, DIRECTIONS[match["direction"]]["modify"], **params)


async def _rule_call(ctx: Ctx, match: re.Match[str], action: str, **params: str) -> Page:
    return await submit(
        ctx,
        f"/security-groups/{match['id']}",
        lambda e: group(ctx, match, e),
        "ecs",
        action,
        RegionId=ctx.region_id,
        SecurityGroupId=match["id"],
        **params,
    )


ROUTES: list[Route] = [
    get("/security-groups", groups),
    post("/security-groups/create", create),
    post("/security-groups/delete", delete),
    get(f"/security-groups/(?P<id>{ID})", group),
    post(f"/security-groups/(?P<id>{ID})/rules/{DIRECTION}/add", authorize),
    post(f"/security-groups/(?P<id>{ID})/rules/{DIRECTION}/delete", revoke),
    post(f"/security-groups/(?P<id>{ID})/rules/{DIRECTION}/modify", modify),
]
