"""Security group pages: the list (/security-groups) with Create (in a VPC) and Delete, and a
group's page (/security-groups/<id>), its rule editor: the inbound and outbound rules
(DescribeSecurityGroupAttribute), a form to add one of each direction
(AuthorizeSecurityGroup/AuthorizeSecurityGroupEgress), and per rule a Delete
(RevokeSecurityGroup(Egress) by SecurityGroupRuleId.1) and a change of its priority and
description (ModifySecurityGroupRule/ModifySecurityGroupEgressRule by SecurityGroupRuleId); and
whether its members reach each other (ModifySecurityGroupPolicy)."""

from __future__ import annotations

import re
from typing import Any

from nubes.client import ClientError
from nubes.console.forms import ID, ListPage, attempt, choices, detail_form, fields, kept, status_of
from nubes.console.routing import Ctx, Handler, Route, get, post
from nubes.console.web import PREFIX, Page

# Each direction's rule actions (add, delete, modify) and the fields naming its peer (API names).
DIRECTIONS = {
    "ingress": (
        ("AuthorizeSecurityGroup", "RevokeSecurityGroup", "ModifySecurityGroupRule"),
        ("SourceCidrIp", "SourceGroupId"),
    ),
    "egress": (
        ("AuthorizeSecurityGroupEgress", "RevokeSecurityGroupEgress", "ModifySecurityGroupEgressRule"),
        ("DestCidrIp", "DestGroupId"),
    ),
}
PROTOCOLS = ("tcp", "udp", "icmp", "all")
BASE = "/security-groups"


async def vpc_choices(ctx: Ctx) -> dict[str, Any]:
    return {"vpcs": await choices(ctx, "vpc", "DescribeVpcs", ("Vpcs", "Vpc"), RegionId=ctx.region_id)}


GROUPS = ListPage(
    BASE,
    "security_groups.html",
    "ecs",
    "DescribeSecurityGroups",
    ("SecurityGroups", "SecurityGroup"),
    vpc_choices,
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
    # The groups a rule may name as its peer, offered as suggestions: the caller's, in this VPC.
    in_vpc = {"VpcId": answer["VpcId"]} if answer.get("VpcId") else {}
    peer_groups = await choices(
        ctx,
        "ecs",
        "DescribeSecurityGroups",
        ("SecurityGroups", "SecurityGroup"),
        RegionId=ctx.region_id,
        **in_vpc,
    )
    return ctx.render(
        "security_group.html",
        error=refused,
        http_status=status_of(refused),
        kept=kept(ctx, refused),
        group=answer,
        rules=by_direction,
        protocols=PROTOCOLS,
        peers={d: peer for d, (_, peer) in DIRECTIONS.items()},
        peer_groups=peer_groups,
    )


def authorize(action: str, peer: tuple[str, str]) -> Handler:
    async def handler(ctx: Ctx, match: re.Match[str]) -> Page:
        params = fields(ctx, "IpProtocol", "PortRange", *peer, "Policy", "Priority", "Description")
        if params.get("IpProtocol") in ("icmp", "all") and "PortRange" not in params:
            params["PortRange"] = "-1/-1"  # the only range these protocols have
        return await attempt(
            ctx,
            f"{PREFIX}{BASE}/{match['id']}",
            lambda e: group(ctx, match, e),
            "ecs",
            action,
            RegionId=ctx.region_id,
            SecurityGroupId=match["id"],
            **params,
        )

    return handler


def rule_routes(direction: str) -> list[Route]:
    (add, revoke, modify), peer = DIRECTIONS[direction]
    here = f"{BASE}/(?P<id>{ID})/rules/{direction}"
    # SecurityGroupRuleId.1: the form's one rule ID, as Revoke takes a list of them
    revoke_rule = detail_form(group, BASE, "SecurityGroupId", "ecs", revoke, "SecurityGroupRuleId.1")
    return [
        post(f"{here}/add", authorize(add, peer)),
        post(f"{here}/delete", revoke_rule),
        post(
            f"{here}/modify",
            detail_form(
                group,
                BASE,
                "SecurityGroupId",
                "ecs",
                modify,
                "SecurityGroupRuleId",
                "Priority",
                "Description",
            ),
        ),
    ]


ROUTES: list[Route] = [
    get(BASE, GROUPS.show),
    post(
        f"{BASE}/create",
        GROUPS.form("ecs", "CreateSecurityGroup", "SecurityGroupName", "VpcId", "Description"),
    ),
    post(
        f"{BASE}/delete", GROUPS.form("ecs", "DeleteSecurityGroup", "SecurityGroupId", confirm="the deletion")
    ),
    get(f"{BASE}/(?P<id>{ID})", group),
    # whether the group's members reach each other when no rule decides
    post(
        f"{BASE}/(?P<id>{ID})/policy",
        detail_form(group, BASE, "SecurityGroupId", "ecs", "ModifySecurityGroupPolicy", "InnerAccessPolicy"),
    ),
    *rule_routes("ingress"),
    *rule_routes("egress"),
]
