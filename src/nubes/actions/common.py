"""Parameter declarations that many actions share."""

from __future__ import annotations

from nubes.api.params import String
from nubes.catalog.model import LANGUAGES

ACCEPT_LANGUAGE = String("AcceptLanguage", choices=LANGUAGES, default="zh-CN")
REGION_ID = String("RegionId", required=True, max_length=64)
INSTANCE_CHARGE_TYPE = String("InstanceChargeType", choices=("PrePaid", "PostPaid"), default="PostPaid")
SPOT_STRATEGY = String(
    "SpotStrategy", choices=("NoSpot", "SpotWithPriceLimit", "SpotAsPriceGo"), default="NoSpot"
)
