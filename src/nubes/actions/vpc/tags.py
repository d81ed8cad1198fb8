"""VPC API tags: TagResources, UnTagResources, ListTagResources (VPC, VSWITCH, ROUTETABLE, EIP,
NATGATEWAY)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from nubes import errors
from nubes.actions.common import REGION_ID, TAGS, tag_filter, tag_pairs
from nubes.actions.paging import NEXT_TOKEN, token_page
from nubes.api.context import ActionContext
from nubes.api.params import Boolean, Integer, String, StringList
from nubes.api.registry import ActionTable
from nubes.domain.tags import VPC_RESOURCE_TYPES

actions = ActionTable("vpc")

RESOURCE_TYPE = String("ResourceType", required=True, max_length=32)
RESOURCE_IDS = StringList("ResourceId", max_items=20, item_max_length=128)
REQUIRED_IDS = replace(RESOURCE_IDS, required=True)


@actions.define(
    "TagResources",
    [REGION_ID, RESOURCE_TYPE, REQUIRED_IDS, replace(TAGS, required=True)],
)
def tag_resources(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Add (or overwrite) tags on up to 20 resources of one type (VPCs, vSwitches, route tables,
    EIPs or NAT gateways)."""
    ctx.services.tags.tag(
        ctx.scope(p["RegionId"]),
        p["ResourceType"],
        p["ResourceId"],
        list(tag_pairs(p, keyless=True)),
        product="vpc",
    )
    return {}


@actions.define(
    "UnTagResources",
    [
        REGION_ID,
        RESOURCE_TYPE,
        REQUIRED_IDS,
        StringList("TagKey", max_items=20, item_max_length=128),
        Boolean("All", default=False),
    ],
)
def untag_resources(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Remove tags by key (TagKey.N), or every tag (All), from resources."""
    keys = None if p["All"] else list(p["TagKey"] or [])
    ctx.services.tags.untag(ctx.scope(p["RegionId"]), p["ResourceType"], p["ResourceId"], keys, product="vpc")
    return {}


@actions.define(
    "ListTagResources",
    [
        REGION_ID,
        RESOURCE_TYPE,
        RESOURCE_IDS,
        TAGS,
        Integer("MaxResults", minimum=1, maximum=50, default=50),
        NEXT_TOKEN,
    ],
)
def list_tag_resources(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The tags of resources of one type, by resource (ResourceId.N) or by tag (Tag.N: the
    resources carrying every tag; a tag without a value matches every value of its key)."""
    if not p["ResourceId"] and not p["Tag"]:
        raise errors.missing_parameter("ResourceIdOrTag", message="ResourceId.N or Tag.N must be given.")
    rows = ctx.services.tags.list(
        ctx.scope(p["RegionId"]), p["ResourceType"], p["ResourceId"], tag_filter(p), product="vpc"
    )
    page, token = token_page(rows, p["NextToken"], p["MaxResults"])
    return {
        "NextToken": token,
        "TagResources": {
            "TagResource": [
                {
                    "ResourceId": t.resource_id,
                    "ResourceType": VPC_RESOURCE_TYPES[t.resource_type],
                    "TagKey": t.key,
                    "TagValue": t.value,
                }
                for t in page
            ]
        },
    }
