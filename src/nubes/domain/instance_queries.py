"""Queries of instances: DescribeInstances' filters and pages, statuses, and what rendering an
instance needs beside its row (primary interface, security groups, tags)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from nubes import errors
from nubes.domain import instance_states as states
from nubes.domain.common import Scope
from nubes.domain.public_addresses import ECS_INSTANCE, EIP, PUBLIC_IP
from nubes.domain.tags import tags_by_resource, where_tagged
from nubes.store.models import Instance, NetworkInterface, NetworkInterfaceGroup, PublicAddress

# The Filter.N keys DescribeInstances takes: UTC times.
FILTER_KEYS = ("CreationStartTime", "CreationEndTime", "ExpiredStartTime", "ExpiredEndTime")
# The ExpiredTime every pay-as-you-go instance shows (DescribeInstances renders it), which the
# Expired*Time filters compare with, as ECS does.
EXPIRES_AT = datetime(2099, 12, 31, 15, 59, tzinfo=UTC)


@dataclass(frozen=True)
class InstanceFilter:
    """What DescribeInstances narrows by; an empty field narrows nothing. `name` and
    `type_family` take * wildcards; an empty tag value matches any value of the key."""

    instance_ids: Sequence[str] = ()
    vpc_id: str | None = None
    vswitch_id: str | None = None
    zone_id: str | None = None
    instance_type: str | None = None
    type_family: str | None = None
    name: str | None = None
    status: str | None = None
    image_id: str | None = None
    key_pair_name: str | None = None
    charge_type: str | None = None
    resource_group_id: str | None = None
    security_group_id: str | None = None
    private_ips: Sequence[str] = ()
    http_tokens: str | None = None
    http_endpoint: str | None = None
    times: Sequence[tuple[str, str]] = ()  # Filter.N (key, value); see FILTER_KEYS
    tags: Sequence[tuple[str, str | None]] = ()
    public_ips: Sequence[str] = ()  # the instances' public IPs
    eip_addresses: Sequence[str] = ()  # the addresses of the EIPs associated with them
    # What nubes instances never have yet: any of these matches no instance. Inner IP addresses
    # are those of the classic network; a VPC instance has none (its InnerIpAddress is empty).
    inner_ips: Sequence[str] = ()
    lock_reason: str | None = None
    rdma_ips: Sequence[str] = ()
    ipv6_addresses: Sequence[str] = ()
    network_type: str | None = None  # "vpc" or "classic"
    internet_charge_type: str | None = None

    def __post_init__(self) -> None:
        for key, value in self.times:  # a malformed Filter.N is refused before anything is read
            if key and value:
                _filter_time(key, value)


def _filter_time(key: str, value: str) -> datetime:
    if key not in FILTER_KEYS:
        raise errors.invalid_filter_key_not_found(f"Filter keys are {', '.join(FILTER_KEYS)}; got {key!r}.")
    for layout in ("%Y-%m-%dT%H:%MZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(value, layout).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise errors.invalid_filter_value(f"Filter {key} takes a UTC time like 2024-01-01T12:00Z; got {value!r}.")


def _like(pattern: str) -> str:
    return pattern.replace("%", r"\%").replace("_", r"\_").replace("*", "%")


def _live(scope: Scope) -> tuple[ColumnElement[bool], ...]:
    """The scope's instances that are not being released."""
    return (
        Instance.account_id == scope.account_id,
        Instance.region_id == scope.region_id,
        Instance.desired != states.WANT_DELETED,
    )


def filtered(scope: Scope, f: InstanceFilter) -> Select[Instance]:
    """The scope's instances (not being released) that pass the filter."""
    query = select(Instance).where(*_live(scope))
    equal: list[tuple[Any, str | None]] = [
        (Instance.vpc_id, f.vpc_id),
        (Instance.vswitch_id, f.vswitch_id),
        (Instance.zone_id, f.zone_id),
        (Instance.instance_type, f.instance_type),
        (Instance.status, f.status),
        (Instance.image_id, f.image_id),
        (Instance.key_pair_name, f.key_pair_name),
        (Instance.charge_type, f.charge_type),
        (Instance.resource_group_id, f.resource_group_id),
        (Instance.metadata_http_tokens, f.http_tokens),
        (Instance.metadata_http_endpoint, f.http_endpoint),
        (Instance.internet_charge_type, f.internet_charge_type),
    ]
    for column, value in equal:
        if value:
            query = query.where(column == value)
    if f.instance_ids:
        query = query.where(Instance.id.in_(f.instance_ids))
    if f.type_family:
        query = query.where(Instance.instance_type.like(_like(f.type_family) + ".%", escape="\\"))
    if f.name:
        query = query.where(Instance.name.like(_like(f.name), escape="\\"))
    if f.security_group_id:
        query = query.where(
            Instance.id.in_(
                select(NetworkInterface.instance_id)
                .join(NetworkInterfaceGroup, NetworkInterfaceGroup.interface_id == NetworkInterface.id)
                .where(NetworkInterfaceGroup.group_id == f.security_group_id)
            )
        )
    if f.private_ips:
        query = query.where(
            Instance.id.in_(
                select(NetworkInterface.instance_id).where(NetworkInterface.primary_ip.in_(f.private_ips))
            )
        )
    for kind, addresses in ((PUBLIC_IP, f.public_ips), (EIP, f.eip_addresses)):
        if addresses:
            query = query.where(
                Instance.id.in_(
                    select(PublicAddress.instance_id).where(
                        PublicAddress.kind == kind,
                        PublicAddress.instance_type == ECS_INSTANCE,
                        PublicAddress.ip_address.in_(addresses),
                    )
                )
            )
    if f.lock_reason or f.inner_ips or f.rdma_ips or f.ipv6_addresses or f.network_type == "classic":
        query = query.where(Instance.id.is_(None))  # no locks, classic, RDMA or IPv6 addresses yet
    for key, value in f.times:
        if not key or not value:
            continue
        moment = _filter_time(key, value)
        if key == "CreationStartTime":
            query = query.where(Instance.created_at >= moment)
        elif key == "CreationEndTime":
            query = query.where(Instance.created_at <= moment)
        elif (key == "ExpiredStartTime" and moment > EXPIRES_AT) or (
            key == "ExpiredEndTime" and moment < EXPIRES_AT
        ):
            query = query.where(Instance.id.is_(None))  # every instance expires at EXPIRES_AT
    return where_tagged(query, scope, "instance", Instance.id, f.tags)


def find(s: Session, scope: Scope, f: InstanceFilter, offset: int, limit: int) -> tuple[int, list[Instance]]:
    """How many instances pass the filter, and `limit` of them from `offset`, newest first."""
    query = filtered(scope, f)
    total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = list(
        s.scalars(query.order_by(Instance.created_at.desc(), Instance.id).offset(offset).limit(limit))
    )
    return total, page


def statuses(
    s: Session, scope: Scope, instance_ids: Sequence[str] = (), zone_id: str | None = None
) -> list[tuple[str, str]]:
    """(instance id, status) of the scope's instances, newest first."""
    query = select(Instance.id, Instance.status).where(*_live(scope))
    if instance_ids:
        query = query.where(Instance.id.in_(instance_ids))
    if zone_id:
        query = query.where(Instance.zone_id == zone_id)
    return [(i, st) for i, st in s.execute(query.order_by(Instance.created_at.desc(), Instance.id))]


def related(
    s: Session, scope: Scope, instance_ids: list[str]
) -> tuple[dict[str, list[NetworkInterface]], dict[str, list[str]], dict[str, list[tuple[str, str]]]]:
    """Interfaces (the primary first, then the attached ones in the order of their IDs), the
    security groups (of the primary interface) and tags of instances, in three queries."""
    enis: dict[str, list[NetworkInterface]] = {}
    for e in s.scalars(
        select(NetworkInterface)
        .where(NetworkInterface.instance_id.in_(instance_ids))
        .order_by(NetworkInterface.eni_type, NetworkInterface.id)  # "Primary" < "Secondary"
    ):
        enis.setdefault(e.instance_id, []).append(e)
    groups: dict[str, list[str]] = {i: [] for i in instance_ids}
    for instance_id, group_id in s.execute(
        select(NetworkInterface.instance_id, NetworkInterfaceGroup.group_id)
        .join(NetworkInterfaceGroup, NetworkInterfaceGroup.interface_id == NetworkInterface.id)
        .where(NetworkInterface.instance_id.in_(instance_ids), NetworkInterface.eni_type == "Primary")
        .order_by(NetworkInterfaceGroup.position)
    ):
        groups[instance_id].append(group_id)
    tags: dict[str, list[tuple[str, str]]] = {i: [] for i in instance_ids}
    tags.update(tags_by_resource(s, scope, "instance", instance_ids))
    return enis, groups, tags
