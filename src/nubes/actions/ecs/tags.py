"""ECS tags: TagResources, UntagResources, ListTagResources, AddTags, RemoveTags, DescribeTags."""

from __future__ import annotations

from collections import Counter
from typing import Any

from nubes.actions.common import REGION_ID, TAGS, tag_pairs
from nubes.actions.paging import NEXT_TOKEN, number_paged, page_params, token_page
from nubes.api.context import ActionContext
from nubes.api.params import Boolean, String, StringList
from nubes.api.registry import ActionTable

actions = ActionTable("ecs")

RESOURCE_TYPE = String("ResourceType", required=True, max_length=32)


def _pairs(p: dict[str, Any]) -> list[tuple[str, str]]:
    """Tag.N as given: a pair without a key is refused by the domain (TagResources, AddTags)."""
    return list(tag_pairs(p, keyless=True))


def _matching(p: dict[str, Any]) -> list[tuple[str, str | None]]:
    """Tag.N as a filter: a pair without a value matches every value of its key."""
    return [(k, v or None) for k, v in tag_pairs(p, keyless=True)]


@actions.define(
    "TagResources", [REGION_ID, RESOURCE_TYPE, StringList("ResourceId", required=True, max_items=50), TAGS]
)
def tag_resources(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Add (or overwrite) tags on up to 50 resources of one type."""
    ctx.services.tags.tag(ctx.scope(p["RegionId"]), p["ResourceType"], p["ResourceId"], _pairs(p))
    return {}


@actions.define(
    "UntagResources",
    [
        REGION_ID,
        RESOURCE_TYPE,
        StringList("ResourceId", required=True, max_items=50),
        StringList("TagKey", max_items=20),
        Boolean("All", default=False),
    ],
)
def untag_resources(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Remove tags by key (or All) from resources."""
    keys = None if p["All"] or not p["TagKey"] else list(p["TagKey"])
    if keys is None and not p["All"]:
        keys = []
    ctx.services.tags.untag(ctx.scope(p["RegionId"]), p["ResourceType"], p["ResourceId"], keys)
    return {}


@actions.define(
    "ListTagResources",
    [
        REGION_ID,
        String("ResourceType", required=True, max_length=32),
        StringList("ResourceId", max_items=50),
        TAGS,
        NEXT_TOKEN,
    ],
)
def list_tag_resources(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The tags of resources, filtered by resource or by tag."""
    rows = ctx.services.tags.list(ctx.scope(p["RegionId"]), p["ResourceType"], p["ResourceId"], _matching(p))
    page, token = token_page(rows, p["NextToken"], 50)
    return {
        "NextToken": token,
        "TagResources": {
            "TagResource": [
                {
                    "ResourceId": t.resource_id,
                    "ResourceType": t.resource_type,
                    "TagKey": t.key,
                    "TagValue": t.value,
                }
                for t in page
            ]
        },
    }


@actions.define(
    "AddTags", [REGION_ID, RESOURCE_TYPE, String("ResourceId", required=True, max_length=128), TAGS]
)
def add_tags(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Add tags to one resource (the older form of TagResources)."""
    ctx.services.tags.tag(ctx.scope(p["RegionId"]), p["ResourceType"], [p["ResourceId"]], _pairs(p))
    return {}


@actions.define(
    "RemoveTags", [REGION_ID, RESOURCE_TYPE, String("ResourceId", required=True, max_length=128), TAGS]
)
def remove_tags(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Remove tags (by key, or key and value) from one resource."""
    pairs = _matching(p)
    ctx.services.tags.untag(
        ctx.scope(p["RegionId"]),
        p["ResourceType"],
        [p["ResourceId"]],
        None if not pairs else [],
        pairs or None,
    )
    return {}


@actions.define(
    "DescribeTags",
    [
        REGION_ID,
        String("ResourceType", max_length=32),
        String("ResourceId", max_length=128),
        TAGS,
        String("Category", max_length=16),
        *page_params(max_size=100, default_size=50),
    ],
)
def describe_tags(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The distinct tags in use, with how many resources of each type carry them."""
    rows = ctx.services.tags.list(
        ctx.scope(p["RegionId"]),
        p["ResourceType"],
        [p["ResourceId"]] if p["ResourceId"] else None,
        _matching(p),
    )
    counts: dict[tuple[str, str], Counter[str]] = {}
    for row in rows:
        counts.setdefault((row.key, row.value), Counter())[row.resource_type] += 1
    names = {
        "instance": "Instance",
        "disk": "Disk",
        "snapshot": "Snapshot",
        "image": "Image",
        "securitygroup": "Securitygroup",
        "eni": "Eni",
        "keypair": "KeyPair",
        "launchtemplate": "LaunchTemplate",
        "ddh": "Ddh",
        "reservedinstance": "ReservedInstance",
        "snapshotpolicy": "SnapshotPolicy",
        "volume": "Volume",
    }
    items = [
        {
            "TagKey": key,
            "TagValue": value,
            "ResourceTypeCount": {name: counter.get(kind, 0) for kind, name in names.items()},
        }
        for (key, value), counter in counts.items()
    ]
    return number_paged(items, p, "Tags", "Tag")
