"""Parameter declarations that many actions share."""

from __future__ import annotations

from typing import Any

from nubes.api.params import Boolean, Integer, String
from nubes.catalog.model import LANGUAGES

ACCEPT_LANGUAGE = String("AcceptLanguage", choices=LANGUAGES, default="zh-CN")
REGION_ID = String("RegionId", required=True, max_length=64)
INSTANCE_CHARGE_TYPE = String("InstanceChargeType", choices=("PrePaid", "PostPaid"), default="PostPaid")
SPOT_STRATEGY = String(
    "SpotStrategy", choices=("NoSpot", "SpotWithPriceLimit", "SpotAsPriceGo"), default="NoSpot"
)
CLIENT_TOKEN = String("ClientToken", max_length=64)
DRY_RUN = Boolean("DryRun", default=False)
PAGE_NUMBER = Integer("PageNumber", minimum=1, default=1)
PAGE_SIZE = Integer("PageSize", minimum=1, maximum=50, default=10)
RESOURCE_GROUP_ID = String("ResourceGroupId", max_length=64, default="")


def tag_pairs(p: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """Tag.N.Key/Value of a request as (key, value) pairs; entries without a key are left out."""
    return tuple((t.get("Key") or "", t.get("Value") or "") for t in p.get("Tag") or [] if t.get("Key"))


def paged(items_key: str, item_key: str, items: list[object], page_number: int, page_size: int) -> dict[str, object]:
    """The PageNumber/PageSize answer shape ECS uses."""
    start = (page_number - 1) * page_size
    return {
        "TotalCount": len(items),
        "PageNumber": page_number,
        "PageSize": page_size,
        items_key: {item_key: items[start : start + page_size]},
    }
