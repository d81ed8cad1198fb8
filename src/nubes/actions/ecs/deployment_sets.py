"""ECS deployment sets."""

from __future__ import annotations

from typing import Any

from nubes.actions.common import CLIENT_TOKEN, REGION_ID
from nubes.actions.paging import number_paged, page_params
from nubes.api.context import ActionContext
from nubes.api.params import Integer, String, StringList
from nubes.api.registry import ActionTable
from nubes.clock import iso8601_seconds
from nubes.domain.deployment_sets import STRATEGIES

actions = ActionTable("ecs")

SET_ID = String("DeploymentSetId", required=True, max_length=64)
# Discontinued in ECS, which accepts and ignores them: every set is of the Default domain and
# spreads by host (DescribeDeploymentSets shows so). Type and Affinity, which ECS does not
# document, are refused.
DISCONTINUED = [String("Domain", max_length=16), String("Granularity", max_length=16)]


@actions.define(
    "CreateDeploymentSet",
    [
        REGION_ID,
        String("DeploymentSetName", max_length=128),
        String("Description", max_length=256),
        String("Strategy", choices=STRATEGIES, default="Availability"),
        *DISCONTINUED,
        Integer("GroupCount", minimum=1, maximum=7),
        CLIENT_TOKEN,
    ],
    idempotent=True,
)
def create_deployment_set(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Create a deployment set: Availability (one instance per host), AvailabilityGroup, LowLatency."""
    # GroupCount is read for AvailabilityGroup sets only (3 groups unless given), as in ECS.
    groups = (p["GroupCount"] or 3) if p["Strategy"] == "AvailabilityGroup" else 1
    set_id = ctx.services.deployment_sets.create(
        ctx.scope(p["RegionId"]), p["DeploymentSetName"], p["Description"], p["Strategy"], groups
    )
    return {"DeploymentSetId": set_id}


@actions.define(
    "DescribeDeploymentSets",
    [
        REGION_ID,
        StringList("DeploymentSetIds", json_array=True, max_items=100, item_max_length=64),
        String("DeploymentSetName", max_length=128),
        String("Strategy", choices=STRATEGIES),
        *DISCONTINUED,
        *page_params(),
    ],
)
def describe_deployment_sets(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The caller's deployment sets with their instances."""
    rows = ctx.services.deployment_sets.describe(
        ctx.scope(p["RegionId"]), p["DeploymentSetIds"], p["DeploymentSetName"], p["Strategy"]
    )
    items = [
        {
            "DeploymentSetId": d.id,
            "DeploymentSetName": d.name,
            "DeploymentSetDescription": d.description,
            "DeploymentStrategy": d.strategy,
            "Strategy": d.strategy,
            "Domain": d.domain,
            "Granularity": d.granularity,
            "GroupCount": d.group_count,
            "InstanceAmount": len(members),
            "InstanceIds": {"InstanceId": members},
            "CreationTime": iso8601_seconds(d.created_at),
            "Type": "",
            "Affinity": 0,
            "AccountId": 0,
            "Capacities": {"Capacity": []},
        }
        for d, members in rows
    ]
    return {"RegionId": p["RegionId"], **number_paged(items, p, "DeploymentSets", "DeploymentSet")}


@actions.define(
    "ModifyDeploymentSetAttribute",
    [
        REGION_ID,
        SET_ID,
        String("DeploymentSetName", max_length=128),
        String("Description", max_length=256),
    ],
)
def modify_deployment_set_attribute(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Rename a deployment set or change its description."""
    ctx.services.deployment_sets.modify(
        ctx.scope(p["RegionId"]), p["DeploymentSetId"], p["DeploymentSetName"], p["Description"]
    )
    return {}


@actions.define("DeleteDeploymentSet", [REGION_ID, SET_ID])
def delete_deployment_set(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Delete an empty deployment set."""
    ctx.services.deployment_sets.delete(ctx.scope(p["RegionId"]), p["DeploymentSetId"])
    return {}
