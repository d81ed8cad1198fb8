"""Tags of every ECS resource type: up to 20 per resource, keys unique per resource."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, delete, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from nubes import errors
from nubes.domain.common import Scope, owned
from nubes.domain.instance_states import WANT_DELETED
from nubes.domain.public_addresses import EIP
from nubes.errors import ApiError
from nubes.store.db import Database
from nubes.store.models import (
    Disk,
    Image,
    Instance,
    KeyPair,
    LaunchTemplate,
    NatGateway,
    NetworkInterface,
    PublicAddress,
    RouteTable,
    SecurityGroup,
    Snapshot,
    Tag,
    Vpc,
    VSwitch,
)

T = TypeVar("T", bound=Any)

MAX_TAGS = 20
# ECS's ResourceType names (TagResources spells them in lower case; AddTags capitalises some).
RESOURCE_TYPES = (
    "instance",
    "disk",
    "snapshot",
    "image",
    "securitygroup",
    "eni",
    "keypair",
    "launchtemplate",
    "ddh",
)
# The VPC product's ResourceType names (case-insensitive on the wire), as stored and as answered.
VPC_RESOURCE_TYPES = {
    "vpc": "VPC",
    "vswitch": "VSWITCH",
    "routetable": "ROUTETABLE",
    "eip": "EIP",
    "natgateway": "NATGATEWAY",
}
PRODUCT_TYPES: dict[str, tuple[str, ...]] = {"ecs": RESOURCE_TYPES, "vpc": tuple(VPC_RESOURCE_TYPES)}


# The resource types whose rows carry their account and region (instances: while not going away).
_OWNED: dict[str, Any] = {
    "disk": Disk,
    "snapshot": Snapshot,
    "securitygroup": SecurityGroup,
    "eni": NetworkInterface,
    "instance": Instance,
    "image": Image,
    "vpc": Vpc,
    "vswitch": VSwitch,
    "launchtemplate": LaunchTemplate,
    "eip": PublicAddress,
    "natgateway": NatGateway,
}
# The rows of a type that are resources of it: an instance going away is none; an instance's
# public IP is no EIP.
_USABLE: dict[str, Callable[[Any], bool]] = {
    "instance": lambda i: i.desired != WANT_DELETED,
    "eip": lambda a: a.kind == EIP,
}


def _check_exists(s: Session, scope: Scope, resource_type: str, resource_id: str) -> None:
    """InvalidResourceId.NotFound unless the scope owns the resource."""

    def missing(_: str) -> ApiError:
        return errors.invalid_resource_id_not_found(
            f"The resource {resource_id!r} ({resource_type}) does not exist."
        )

    if resource_type == "routetable" and s.get(RouteTable, resource_id) is not None:
        owned(s, RouteTable, scope, resource_id, missing)  # a custom table; system ones: _by_name
        return
    if resource_type in _OWNED:
        owned(
            s,
            _OWNED[resource_type],
            scope,
            resource_id,
            missing,
            usable=_USABLE.get(resource_type),
        )
        return
    query = _by_name(scope, resource_type, resource_id)
    if query is None or s.scalar(query) is None:
        raise missing(resource_id)


def _by_name(scope: Scope, resource_type: str, resource_id: str) -> Select[Any] | None:
    """The row of a resource whose id is not its row's key: key pairs are named per account and
    region (their name is their id); a route table is its VPC's system table."""
    if resource_type == "keypair":
        return select(KeyPair.id).where(
            KeyPair.account_id == scope.account_id,
            KeyPair.region_id == scope.region_id,
            KeyPair.name == resource_id,
        )
    if resource_type == "routetable":
        return select(Vpc.id).where(
            Vpc.account_id == scope.account_id,
            Vpc.region_id == scope.region_id,
            Vpc.route_table_id == resource_id,
        )
    return None


def _owned_by(account_id: int, region_id: str, resource_type: str) -> ColumnElement[bool]:
    """Tags belong to the resource's owner-scoped identity: key pairs are named per account and
    region, so a resource id alone may name two accounts' resources."""
    return (
        (Tag.account_id == account_id) & (Tag.region_id == region_id) & (Tag.resource_type == resource_type)
    )


@dataclass(frozen=True)
class TagMatch:
    """One tag a resource must carry: its key, with one of `values` (any value when none)."""

    key: str
    values: tuple[str, ...] = ()


def tag_matches(pairs: Iterable[tuple[str, str | None]]) -> list[TagMatch]:
    """Tag.N of a Describe action as matches: a pair without a value matches every value of its key."""
    return [TagMatch(key, (value,) if value else ()) for key, value in pairs]


def _as_match(tag: tuple[str, str | None] | TagMatch) -> TagMatch:
    return tag if isinstance(tag, TagMatch) else tag_matches([tag])[0]


def where_tagged(
    query: Select[T],
    scope: Scope,
    resource_type: str | ColumnElement[str] | InstrumentedAttribute[str],
    resource_id: Any,
    tags: Iterable[tuple[str, str | None]] | Sequence[TagMatch],
) -> Select[T]:
    """Narrow a query of the scope's resources of one type (`resource_id`: their id column;
    `resource_type` a type, or the column that holds it) to those carrying every tag (pairs: an
    empty value matches any value of the key). The one tag filter of every Describe action."""
    carried = aliased(Tag)
    for match in map(_as_match, tags):
        condition = (
            (carried.account_id == scope.account_id)
            & (carried.region_id == scope.region_id)
            & (carried.resource_type == resource_type)
            & (carried.resource_id == resource_id)
            & (carried.key == match.key)
        )
        if match.values:
            condition = condition & carried.value.in_(match.values)
        query = query.where(select(carried.id).where(condition).exists())
    return query


def tags_by_resource(
    s: Session, scope: Scope, resource_type: str, resource_ids: Iterable[str]
) -> dict[str, list[tuple[str, str]]]:
    """The tags of these resources of the scope, in one query, in the order they were added."""
    found: dict[str, list[tuple[str, str]]] = {}
    for resource_id, key, value in s.execute(
        select(Tag.resource_id, Tag.key, Tag.value)
        .where(
            _owned_by(scope.account_id, scope.region_id, resource_type),
            Tag.resource_id.in_(list(resource_ids)),
        )
        .order_by(Tag.id)
    ):
        found.setdefault(resource_id, []).append((key, value))
    return found


def drop_tags(s: Session, account_id: int, region_id: str, resource_type: str, resource_id: str) -> None:
    """Delete a released resource's tags (only its owner's: another account may use the same name)."""
    s.execute(
        delete(Tag).where(_owned_by(account_id, region_id, resource_type), Tag.resource_id == resource_id)
    )


def write_tags(
    s: Session,
    scope: Scope,
    resource_type: str,
    resource_id: str,
    tags: Iterable[tuple[str, str]],
    *,
    created: bool = False,
) -> None:
    """Create or replace tags on one resource of the scope: a key it carries takes the new value,
    a new key is added (in the order given); more than MAX_TAGS in all is InvalidTagCount.
    `created`: the resource is new in this session and carries no tags yet (none are read)."""
    current = {} if created else {t.key: t for t in _resource_tags(s, scope, resource_type, resource_id)}
    for key, value in tags:
        if key in current:
            current[key].value = value
        else:
            row = Tag(
                account_id=scope.account_id,
                region_id=scope.region_id,
                resource_type=resource_type,
                resource_id=resource_id,
                key=key,
                value=value,
            )
            s.add(row)
            current[key] = row
    if len(current) > MAX_TAGS:
        raise errors.invalid_tag_count(f"A resource can have at most {MAX_TAGS} tags.")


def _resource_tags(s: Session, scope: Scope, resource_type: str, resource_id: str) -> list[Tag]:
    return list(
        s.scalars(
            select(Tag)
            .where(
                _owned_by(scope.account_id, scope.region_id, resource_type), Tag.resource_id == resource_id
            )
            .order_by(Tag.id)
        )
    )


def normalise_type(resource_type: str, product: str = "ecs") -> str:
    """The stored name of a product's ResourceType (both products take it in any case)."""
    value = resource_type.lower()
    kinds = PRODUCT_TYPES[product]
    if value not in kinds:
        raise errors.invalid_resource_type_not_found(f"ResourceType must be one of {', '.join(kinds)}.")
    return value


def check_tag(key: str, value: str) -> None:
    if not key or len(key) > 128 or key.startswith(("aliyun", "acs:", "http://", "https://")):
        raise errors.invalid_tag_key_malformed()
    if len(value) > 128 or value.startswith(("acs:", "http://", "https://")):
        raise errors.invalid_tag_value_malformed()


def check_tags(tags: Iterable[tuple[str, str]]) -> None:
    """Tags given at a resource's creation: well-formed, and no more than a resource may carry."""
    tags = list(tags)
    if len(tags) > MAX_TAGS:
        raise errors.invalid_tag_count(f"A resource can have at most {MAX_TAGS} tags.")
    for key, value in tags:
        check_tag(key, value)


class Tags:
    """The one tag writer and reader of both products' tag actions and Describe actions."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def tag(
        self,
        scope: Scope,
        resource_type: str,
        resource_ids: list[str],
        tags: list[tuple[str, str]],
        product: str = "ecs",
    ) -> None:
        kind = normalise_type(resource_type, product)
        check_tags(tags)
        with self._db.session() as s:
            for resource_id in resource_ids:
                _check_exists(s, scope, kind, resource_id)
                write_tags(s, scope, kind, resource_id, tags)

    def untag(
        self,
        scope: Scope,
        resource_type: str,
        resource_ids: list[str],
        keys: list[str] | None,
        pairs: list[tuple[str, str | None]] | None = None,
        product: str = "ecs",
    ) -> None:
        kind = normalise_type(resource_type, product)
        with self._db.session() as s:
            for resource_id in resource_ids:
                _check_exists(s, scope, kind, resource_id)
                for row in _resource_tags(s, scope, kind, resource_id):
                    every = keys is None and pairs is None
                    by_key = keys is not None and row.key in keys
                    by_pair = pairs is not None and any(
                        row.key == k and (v is None or row.value == v) for k, v in pairs
                    )
                    if every or by_key or by_pair:
                        s.delete(row)

    def of(
        self, scope: Scope, resource_type: str, resource_ids: Iterable[str]
    ) -> dict[str, list[tuple[str, str]]]:
        """The tags of these resources of the scope (for the Describe actions' Tags)."""
        with self._db.session() as s:
            return tags_by_resource(s, scope, resource_type, resource_ids)

    def having(
        self, scope: Scope, resource_type: str, resource_ids: Iterable[str], wanted: Sequence[TagMatch]
    ) -> set[str]:
        """Those of these resources that carry every wanted tag (the Describe actions that filter
        their rows outside the store)."""
        query = select(Tag.resource_id).where(
            _owned_by(scope.account_id, scope.region_id, resource_type),
            Tag.resource_id.in_(list(resource_ids)),
        )
        with self._db.session() as s:
            return set(s.scalars(where_tagged(query, scope, resource_type, Tag.resource_id, wanted)))

    def list(
        self,
        scope: Scope,
        resource_type: str | None,
        resource_ids: list[str] | None,
        wanted: Sequence[TagMatch],
        product: str = "ecs",
    ) -> list[Tag]:
        """The tags of the scope's resources of one type (or of every type of the product), of
        the resources that carry every wanted tag."""
        with self._db.session() as s:
            query = select(Tag).where(Tag.account_id == scope.account_id, Tag.region_id == scope.region_id)
            if resource_type:
                query = query.where(Tag.resource_type == normalise_type(resource_type, product))
            else:
                query = query.where(Tag.resource_type.in_(PRODUCT_TYPES[product]))
            if resource_ids:
                query = query.where(Tag.resource_id.in_(resource_ids))
            query = where_tagged(query, scope, Tag.resource_type, Tag.resource_id, wanted)
            return list(s.scalars(query.order_by(Tag.resource_id, Tag.id)))
