"""Parameter declarations that many actions share (paging's are in paging.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select

from nubes import errors
from nubes.api.context import ActionContext
from nubes.api.params import Boolean, String, StructList
from nubes.catalog.model import LANGUAGES
from nubes.clock import as_utc
from nubes.domain.common import Scope
from nubes.domain.tags import TagMatch, tag_matches

T = TypeVar("T")
Q = TypeVar("Q", bound=Any)

ACCEPT_LANGUAGE = String("AcceptLanguage", choices=LANGUAGES, default="zh-CN")
REGION_ID = String("RegionId", required=True, max_length=64)
# RegionId is optional where the resource named says the region (as in ECS).
OPTIONAL_REGION_ID = String("RegionId", max_length=64)
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
# Honoured with nubes' own per-account key (LUKS-encrypted qcow2); KMSKeyId stays undeclared, so
# refused: nubes has no KMS, and its key is not one a caller can name.
ENCRYPTED = Boolean("Encrypted", default=False)
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


def tag_filter(p: dict[str, Any]) -> list[TagMatch]:
    """Tag.N of a Describe or list action as a filter: every tag must be carried; a tag without
    a value matches every value of its key; a tag without a key matches nothing."""
    return tag_matches((k, v or None) for k, v in tag_pairs(p, keyless=True))


def tagged(
    ctx: ActionContext,
    scope: Scope,
    resource_type: str,
    items: Sequence[T],
    id_of: Callable[[T], str],
    p: dict[str, Any],
) -> list[T]:
    """The items carrying every tag of the request's Tag.N (all of them without Tag.N), for the
    Describe actions that filter their rows outside the store."""
    wanted = tag_filter(p)
    if not wanted:
        return list(items)
    keep = ctx.services.tags.having(scope, resource_type, (id_of(i) for i in items), wanted)
    return [i for i in items if id_of(i) in keep]


def tag_set(pairs: Iterable[tuple[str, str]], *, vpc: bool = False) -> dict[str, Any]:
    """A resource's Tags as the Describe actions write them: TagKey/TagValue in ECS, Key/Value
    in the VPC product."""
    key_name, value_name = ("Key", "Value") if vpc else ("TagKey", "TagValue")
    return {"Tag": [{key_name: key, value_name: value} for key, value in pairs]}


# Filter.N of the Describe actions that take creation times (DescribeDisks, DescribeSnapshots,
# DescribeImages): CreationStartTime and CreationEndTime, UTC times like 2024-01-01T12:00Z.
CREATION_KEYS = ("CreationStartTime", "CreationEndTime")
CREATION_FILTER = StructList(
    "Filter", [String("Key", max_length=64), String("Value", max_length=64)], max_items=10
)


@dataclass(frozen=True)
class CreationWindow:
    """The creation times Filter.N allows: from `start` and up to `end`, both inclusive."""

    start: datetime | None = None
    end: datetime | None = None

    def holds(self, moment: datetime) -> bool:
        moment = as_utc(moment)
        return (self.start is None or moment >= self.start) and (self.end is None or moment <= self.end)

    def where(self, query: Select[Q], column: ColumnElement[datetime] | Any) -> Select[Q]:
        if self.start is not None:
            query = query.where(column >= self.start)
        if self.end is not None:
            query = query.where(column <= self.end)
        return query


def creation_window(p: dict[str, Any]) -> CreationWindow:
    """Filter.N of the request as a creation-time window (an entry without a key or value is
    left out, as ECS does); another key is InvalidFilterKey.NotFound."""
    found: dict[str, datetime] = {}
    for entry in p.get("Filter") or []:
        key, value = entry.get("Key") or "", entry.get("Value") or ""
        if not key or not value:
            continue
        if key not in CREATION_KEYS:
            raise errors.invalid_filter_key_not_found(
                f"Filter keys are {', '.join(CREATION_KEYS)}; got {key[:64]!r}."
            )
        found[key] = _utc_time(key, value)
    return CreationWindow(found.get("CreationStartTime"), found.get("CreationEndTime"))


def parse_utc(value: str) -> datetime | None:
    """A UTC time as ECS writes them (2024-01-01T12:00Z, or with seconds), None if it is not one."""
    for layout in ("%Y-%m-%dT%H:%MZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(value, layout).replace(tzinfo=UTC)
        except ValueError:
            pass
    return None


def utc_param(name: str, value: str | None) -> datetime | None:
    """A time parameter of the request (None when not given); a malformed one is InvalidParameter."""
    if not value:
        return None
    moment = parse_utc(value)
    if moment is None:
        raise errors.invalid_parameter(name, f"{name} takes a UTC time such as 2024-01-01T12:00Z.")
    return moment


def _utc_time(key: str, value: str) -> datetime:
    moment = parse_utc(value)
    if moment is None:
        raise errors.invalid_filter_value(
            f"The Filter {key} takes a UTC time such as 2024-01-01T12:00Z; got {value[:64]!r}."
        )
    return moment
