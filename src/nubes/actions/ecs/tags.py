"""ECS tags: TagResources, UntagResources, ListTagResources, AddTags, RemoveTags, DescribeTags."""

from __future__ import annotations

from collections import Counter
from typing import Any

from nubes import errors
from nubes.actions.common import REGION_ID, TAGS, tag_filter, tag_pairs
from nubes.actions.paging import NEXT_TOKEN, number_paged, page_params, token_page
from nubes.api.context import ActionContext
from nubes.api.params import Boolean, String, StringList, StructList
from nubes.api.registry import ActionTable
from nubes.domain.tags import TagMatch

actions = ActionTable("ecs")

RESOURCE_TYPE = String("ResourceType", required=True, max_length=32)
TAG_FILTER = StructList(
    "TagFilter",
    [String("TagKey", max_length=128), StringList("TagValues", max_items=5, item_max_length=128)],
    max_items=5,
)


def _pairs(p: dict[str, Any]) -> list[tuple[str, str]]:
    """Tag.N as given: a pair without a key is refused by the domain (TagResources, AddTags)."""
    return list(tag_pairs(p, keyless=True))


def _matching(p: dict[str, Any]) -> list[tuple[str, str | None]]:
    """Tag.N as pairs to remove: a pair without a value removes every value of its key."""
    return [(k, v or None) for k, v in tag_pairs(p, keyless=True)]


def _tag_filters(p: dict[str, Any]) -> list[TagMatch]:
    """TagFilter.N: a key with any of its TagValues.N (any value when none); not with Tag.N."""
    filters = p["TagFilter"] or []
    if filters and p["Tag"]:
        raise errors.invalid_parameter("TagFilter", "Tag.N and TagFilter.N cannot be given together.")
    for index, f in enumerate(filters, start=1):
        if not f["TagKey"]:
            raise errors.missing_parameter(f"TagFilter.{index}.TagKey")
    return [TagMatch(f["TagKey"], tuple(f["TagValues"] or ())) for f in filters]


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
        TAG_FILTER,
        NEXT_TOKEN,
    ],
)
def list_tag_resources(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The tags of resources, filtered by resource, by tag (Tag.N) or by key and values (TagFilter.N)."""
    wanted = tag_filter(p) + _tag_filters(p)
    rows = ctx.services.tags.list(ctx.scope(p["RegionId"]), p["ResourceType"], p["ResourceId"], wanted)
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
        # Custom: the tags callers set, the only ones nubes has (no service puts System tags).
        String("Category", choices=("Custom", "System")),
        *page_params(max_size=100, default_size=50),
    ],
)
def describe_tags(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The distinct tags in use, with how many resources of each type carry them."""
    rows = ctx.services.tags.list(
        ctx.scope(p["RegionId"]),
        p["ResourceType"],
        [p["ResourceId"]] if p["ResourceId"] else None,
        tag_filter(p),
    )
    if p["Category"] == "System":
        rows = []
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
