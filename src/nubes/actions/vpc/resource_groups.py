"""VPC MoveResourceGroup: move a VPC, EIP, NAT gateway or custom route table to another of the
account's resource groups."""

from __future__ import annotations

from typing import Any

from nubes import errors
from nubes.actions.common import REGION_ID
from nubes.api.context import ActionContext
from nubes.api.params import String
from nubes.api.registry import ActionTable
from nubes.domain.resource_group_members import VPC_RESOURCE_TYPES

actions = ActionTable("vpc")


@actions.define(
    "MoveResourceGroup",
    [
        REGION_ID,
        String("NewResourceGroupId", required=True, max_length=64),
        String("ResourceId", required=True, max_length=128),
        String("ResourceType", required=True, max_length=32),
    ],
)
def move_resource_group(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Move a VPC, EIP, NAT gateway or custom route table (ResourceType is case-insensitive:
    VPC, EIP, NATGATEWAY, ROUTETABLE) to another of the account's groups."""
    kind = p["ResourceType"].lower()
    if kind == "vswitch":
        raise errors.invalid_parameter_not_supported(
            "ResourceType", "a nubes vSwitch belongs to no resource group (its VPC does)."
        )
    if kind not in VPC_RESOURCE_TYPES:
        raise errors.invalid_resource_type_not_found(
            f"ResourceType is one of {', '.join(t.upper() for t in VPC_RESOURCE_TYPES)}; "
            f"got {p['ResourceType'][:32]!r}."
        )
    ctx.services.resource_groups.move(
        ctx.scope(p["RegionId"]), kind, p["ResourceId"], p["NewResourceGroupId"]
    )
    return {}
