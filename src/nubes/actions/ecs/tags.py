"""ECS tags: TagResources, UntagResources, ListTagResources, AddTags, RemoveTags, DescribeTags."""

from __future__ import annotations

from collections import Counter
from typing import Any

from nubes.actions.common import REGION_ID
from nubes.actions.paging import token_page
from nubes.api.context import ActionContext
from nubes.api.params import Boolean, Integer, String, StringList, StructList
from nubes.api.registry import ActionTable

actions = ActionTable("ecs")

TAG = StructList("Tag", [String("Key", max_length=128), String("Value", max_length=128)], max_items=20)
RESOURCE_TYPE = String("ResourceType", required=True, max_length=32)


def _pairs(p: dict[str, Any]) -> list[tuple[str, str]]:
    return [(t.get("Key") or "", t.get("Value") or "") for t in p["Tag"] or []]


@actions.define("TagResources", [REGION_ID, RESOURCE_TYPE, StringList("ResourceId", required=True, max_items=50),
                                 TAG])
def tag_resources(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Add (or overwrite) tags on up to 50 resources of one type."""
    ctx.services.tags.tag(ctx.scope(p["RegionId"]), p["ResourceType"], p["ResourceId"], _pairs(p))
    return {}


@actions.define(
    "UntagResources",
    [REGION_ID, RESOURCE_TYPE, StringList("ResourceId", required=True, max_items=50),
     StringList("TagKey", max_items=20), Boolean("All", default=False)],
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
    [REGION_ID, String("ResourceType", required=True, max_length=32), StringList("ResourceId", max_items=50), TAG,
     String("NextToken", max_length=512)],
)
def list_tag_resources(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The tags of resources, filtered by resource or by tag."""
    rows = ctx.services.tags.list(ctx.scope(p["RegionId"]), p["ResourceType"], p["ResourceId"],
                                  [(k, v or None) for k, v in _pairs(p)])
    page, token = token_page(rows, p["NextToken"], 50)
    return {
        "NextToken": token,
        "TagResources": {"TagResource": [
            {"ResourceId": t.resource_id, "ResourceType": t.resource_type, "TagKey": t.key, "TagValue": t.value}
            for t in page
        ]},
    }


@actions.define("AddTags", [REGION_ID, RESOURCE_TYPE, String("ResourceId", required=True, max_length=128), TAG])
def add_tags(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Add tags to one resource (the older form of TagResources)."""
    ctx.services.tags.tag(ctx.scope(p["RegionId"]), p["ResourceType"], [p["ResourceId"]], _pairs(p))
    return {}


@actions.define("RemoveTags", [REGION_ID, RESOURCE_TYPE, String("ResourceId", required=True, max_length=128), TAG])
def remove_tags(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Remove tags (by key, or key and value) from one resource."""
    pairs = [(k, v or None) for k, v in _pairs(p)]
    ctx.services.tags.untag(ctx.scope(p["RegionId"]), p["ResourceType"], [p["ResourceId"]], None if not pairs else [],
                            pairs or None)
    return {}


@actions.define(
    "DescribeTags",
    [REGION_ID, String("ResourceType", max_length=32), String("ResourceId", max_length=128), TAG,
     String("Category", max_length=16), Integer("PageNumber", minimum=1, default=1),
     Integer("PageSize", minimum=1, maximum=100, default=50)],
)
def describe_tags(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The distinct tags in use, with how many resources of each type carry them."""
    rows = ctx.services.tags.list(ctx.scope(p["RegionId"]), p["ResourceType"],
                                  [p["ResourceId"]] if p["ResourceId"] else None,
                                  [(k, v or None) for k, v in _pairs(p)])
    counts: dict[tuple[str, str], Counter[str]] = {}
    for row in rows:
        counts.setdefault((row.key, row.value), Counter())[row.resource_type] += 1
    names = {"instance": "Instance", "disk": "Disk", "snapshot": "Snapshot", "image": "Image",
             "securitygroup": "Securitygroup", "eni": "Eni", "keypair": "KeyPair", "launchtemplate": "LaunchTemplate",
             "ddh": "Ddh"}
    items = [
        {"TagKey": key, "TagValue": value,
         "ResourceTypeCount": {name: counter.get(kind, 0) for kind, name in names.items()}}
        for (key, value), counter in counts.items()
    ]
    start = (p["PageNumber"] - 1) * p["PageSize"]
    return {"TotalCount": len(items), "PageNumber": p["PageNumber"], "PageSize": p["PageSize"],
            "Tags": {"Tag": items[start : start + p["PageSize"]]}}
