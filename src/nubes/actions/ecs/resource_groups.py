"""ECS JoinResourceGroup: move a resource to another of the account's resource groups."""

from __future__ import annotations

from typing import Any

from nubes import errors
from nubes.actions.common import REGION_ID
from nubes.api.context import ActionContext
from nubes.api.params import String
from nubes.api.registry import ActionTable
from nubes.domain.resource_group_members import RESOURCE_TYPES

actions = ActionTable("ecs")


@actions.define(
    "JoinResourceGroup",
    [
        REGION_ID,
        String("ResourceGroupId", required=True, max_length=64),
        String("ResourceId", required=True, max_length=128),
        String("ResourceType", required=True, max_length=32),
    ],
)
def join_resource_group(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Move an instance, disk, snapshot, image, security group, elastic network interface, key
    pair or launch template to another of the account's groups."""
    kind = p["ResourceType"].lower()
    if kind not in RESOURCE_TYPES:
        raise errors.invalid_resource_type_not_found(
            f"ResourceType is one of {', '.join(RESOURCE_TYPES)}; got {p['ResourceType'][:32]!r}."
        )
    ctx.services.resource_groups.join(ctx.scope(p["RegionId"]), kind, p["ResourceId"], p["ResourceGroupId"])
    return {}
