"""Resource groups (ECS's ResourceGroupId): every account has a default group, made when first
needed; a resource created without a group joins it, one created with a group must name one of
the account's (InvalidResourceGroup.NotFound). JoinResourceGroup is resource_group_members.py."""

from __future__ import annotations

import secrets
import string
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from nubes import errors
from nubes.clock import Clock
from nubes.store.models import ResourceGroup

DEFAULT_NAME = "default"
_ALPHABET = string.ascii_lowercase + string.digits


def _new_group_id() -> str:
    """The shape of ECS's resource group IDs (rg-acfm followed by 11 characters)."""
    return "rg-acfm" + "".join(secrets.choice(_ALPHABET) for _ in range(11))


def default_group_id(s: Session, account_id: int, now: Any) -> str:
    """The account's default group, made on first use."""
    found = s.scalar(
        select(ResourceGroup.id).where(ResourceGroup.account_id == account_id, ResourceGroup.is_default)
    )
    if found is not None:
        return found
    group = ResourceGroup(
        id=_new_group_id(),
        account_id=account_id,
        name=DEFAULT_NAME,
        display_name="default resource group",
        is_default=True,
        created_at=now,
    )
    s.add(group)
    s.flush()
    return group.id


def group_for(s: Session, account_id: int, group_id: str | None, clock: Clock) -> str:
    """The group a new resource goes in: the one named, which must be the account's, or the
    account's default group."""
    if not group_id:
        return default_group_id(s, account_id, clock.now())
    exists = s.scalar(
        select(ResourceGroup.id).where(ResourceGroup.account_id == account_id, ResourceGroup.id == group_id)
    )
    if exists is None:
        raise errors.invalid_resource_group_not_found(
            f"The resource group {group_id[:64]!r} does not exist in this account."
        )
    return group_id


def create_group(s: Session, account_id: int, name: str, now: Any) -> str:
    """Another group of the account (an operator's: nubes has no Resource Manager API)."""
    default_group_id(s, account_id, now)
    group = ResourceGroup(
        id=_new_group_id(),
        account_id=account_id,
        name=name,
        display_name=name,
        is_default=False,
        created_at=now,
    )
    s.add(group)
    return group.id


def in_group(column: Any, group_id: str, default_id: str) -> ColumnElement[bool]:
    """A filter on a group column where "" stands for the default group (disks, snapshots and
    images made before they had a group, or without one given)."""
    if group_id == default_id:
        return column.in_((group_id, ""))  # type: ignore[no-any-return]
    return column == group_id  # type: ignore[no-any-return]
