"""Parameter declarations that many actions share (paging's are in paging.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nubes.api.params import Boolean, String, StructList
from nubes.catalog.model import LANGUAGES

ACCEPT_LANGUAGE = String("AcceptLanguage", choices=LANGUAGES, default="zh-CN")
REGION_ID = String("RegionId", required=True, max_length=64)
INSTANCE_CHARGE_TYPE = String(
    "InstanceChargeType",
    choices=("PrePaid", "PostPaid"),
    default="PostPaid",
    unsupported_values=("PrePaid",),
    unsupported_because="instances are pay-as-you-go; subscriptions do not exist in nubes",
)
SPOT_STRATEGY = String(
    "SpotStrategy",
    choices=("NoSpot", "SpotWithPriceLimit", "SpotAsPriceGo"),
    default="NoSpot",
    unsupported_values=("SpotWithPriceLimit", "SpotAsPriceGo"),
    unsupported_because="nubes has no spot market: instances are never reclaimed",
)
PASSWORD_INHERIT = Boolean(
    "PasswordInherit",
    default=False,
    unsupported_values=(True,),
    unsupported_because="nubes images carry no preset password; give Password or KeyPairName",
)
SECURITY_ENHANCEMENT_STRATEGY = String(
    "SecurityEnhancementStrategy",
    choices=("Active", "Deactive"),
    unsupported_values=("Active",),
    unsupported_because="nubes installs no security agent in guests",
)
ENCRYPTED = Boolean(
    "Encrypted",
    default=False,
    unsupported_values=(True,),
    unsupported_because="disks, snapshots and images are not encrypted yet",
)
CLIENT_TOKEN = String("ClientToken", max_length=64)
DRY_RUN = Boolean("DryRun", default=False)
RESOURCE_GROUP_ID = String("ResourceGroupId", max_length=64, default="")
TAGS = StructList("Tag", [String("Key", max_length=128), String("Value", max_length=128)], max_items=20)


def tag_pairs(p: dict[str, Any], *, keyless: bool = False) -> tuple[tuple[str, str], ...]:
    """Tag.N.Key/Value of a request as (key, value) pairs; entries without a key are left out,
    unless `keyless` (the tag actions refuse them, or match nothing with them)."""
    return tuple(
        (t.get("Key") or "", t.get("Value") or "") for t in p.get("Tag") or [] if keyless or t.get("Key")
    )


def tag_set(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """A resource's Tags as the Describe actions write them."""
    return {"Tag": [{"TagKey": key, "TagValue": value} for key, value in pairs]}
