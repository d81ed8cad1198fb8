"""Rules shared by every resource: scope, names, descriptions, not-found errors, idempotency."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from nubes import errors
from nubes.clock import Clock
from nubes.errors import ApiError
from nubes.store.db import Database
from nubes.store.models import IdempotencyRecord

_NAME = re.compile(r"[A-Za-z\u4e00-\u9fa5][^\x00-\x1f]{0,127}")


@dataclass(frozen=True)
class Scope:
    """Whose resources, and where: every query of a resource is bounded by both."""

    account_id: int
    region_id: str


def check_name(field: str, value: str | None) -> str:
    """ECS names: 1-128 characters (2-128 for most), starting with a letter, not with http(s)://."""
    if not value:
        return ""
    if not _NAME.fullmatch(value) or value.startswith(("http://", "https://")):
        raise errors.invalid_malformed(
            field,
            f"The {field} must be 2 to 128 characters long, start with a letter and not start with "
            "http:// or https://.",
        )
    return value


def check_description(value: str | None) -> str:
    if not value:
        return ""
    if len(value) > 256 or value.startswith(("http://", "https://")):
        raise errors.invalid_description_malformed(
            "The description must be at most 256 characters long and not start with http:// or https://."
        )
    return value


class Owned(Protocol):
    """A row that belongs to an account in a region (system images: to none, in every region)."""

    @property
    def account_id(self) -> int | None: ...

    @property
    def region_id(self) -> str: ...


R = TypeVar("R", bound=Owned)
Q = TypeVar("Q", bound=Any)


def where_given(query: Select[Q], conditions: Iterable[tuple[ColumnElement[bool], object]]) -> Select[Q]:
    """The query narrowed by each condition whose parameter was given (a Describe action's
    filters: an empty value narrows nothing)."""
    for condition, value in conditions:
        if value:
            query = query.where(condition)
    return query


def owned(
    s: Session,
    model: type[R],
    scope: Scope | int,
    resource_id: str,
    kind: str | Callable[[str], ApiError],
    usable: Callable[[R], bool] | None = None,
) -> R:
    """The caller's row of `model`, or the resource's NotFound error.

    The one rule for "not yours": a row of another account, of another region, or one that is
    going away (`usable` false) is answered exactly as an ID that names nothing, so that no
    answer tells one account what another owns. `scope` is the bare account id for the actions
    ECS serves without a RegionId (DescribeInstanceAttribute, AttachDisk, ...). `kind` names
    the resource for errors.invalid_id_not_found, or is the resource's own error constructor."""
    row = s.get(model, resource_id) if resource_id else None
    account_id, region_id = (scope, None) if isinstance(scope, int) else (scope.account_id, scope.region_id)
    if (
        row is None
        or row.account_id != account_id
        or (region_id is not None and row.region_id != region_id)
        or (usable is not None and not usable(row))
    ):
        raise errors.invalid_id_not_found(kind, resource_id) if isinstance(kind, str) else kind(resource_id)
    return row


def newest_held(s: Session, model: Any, scope: Scope, when: Any, holds: Callable[[Any], bool]) -> list[Any]:
    """The scope's rows of `model` that `holds` keeps, newest first (by the `when` column, then
    ID): the Describe actions whose filters are checked on the rows (tasks, system events)."""
    rows = s.scalars(
        select(model)
        .where(model.account_id == scope.account_id, model.region_id == scope.region_id)
        .order_by(when.desc(), model.id)
    )
    return [row for row in rows if holds(row)]


NotifyNetwork = Callable[[str], None]


def no_notify(_vpc_id: str) -> None:
    """Used where no agent listens (tools, tests of the domain alone)."""


class Idempotency:
    """ClientToken handling: the same token and parameters give the first answer again; the
    same token with other parameters is IdempotentParameterMismatch."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    @staticmethod
    def fingerprint(params: Mapping[str, Any]) -> str:
        relevant = {k: v for k, v in params.items() if k not in ("ClientToken", "DryRun")}
        return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()

    def lookup(
        self, account_id: int, action: str, token: str, params: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        with self._db.session() as s:
            record = s.scalar(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.account_id == account_id,
                    IdempotencyRecord.action == action,
                    IdempotencyRecord.token == token,
                )
            )
            if record is None:
                return None
            if record.params_hash != self.fingerprint(params):
                raise errors.idempotent_parameter_mismatch()
            stored: dict[str, Any] = json.loads(record.response)
            return stored

    def remember(
        self, account_id: int, action: str, token: str, params: Mapping[str, Any], response: Mapping[str, Any]
    ) -> None:
        with self._db.session() as s:
            s.add(
                IdempotencyRecord(
                    account_id=account_id,
                    action=action,
                    token=token,
                    params_hash=self.fingerprint(params),
                    response=json.dumps(dict(response), default=str),
                    created_at=self._clock.now(),
                )
            )
