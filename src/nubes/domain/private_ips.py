"""Private addresses of vSwitches: which are handed out, and the one allocator.

Every private address of a vSwitch comes from `allocate` below, over `used_addresses`: the
primary addresses of interfaces (instances' included), their secondary addresses, and the
addresses of NAT gateways. A new holder of vSwitch addresses belongs in `used_addresses`, so that
no two holders ever get the same address."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from sqlalchemy import func, select, union_all
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import ScalarSelect

from nubes.domain import cidr
from nubes.store.models import NatGateway, NetworkInterface, NetworkInterfacePrivateIp, VSwitch


def used_addresses(s: Session, vswitch_id: str) -> set[IPv4Address]:
    """Every address of the vSwitch that something holds."""
    queries = [
        select(NetworkInterface.primary_ip).where(NetworkInterface.vswitch_id == vswitch_id),
        select(NetworkInterfacePrivateIp.ip_address).where(
            NetworkInterfacePrivateIp.vswitch_id == vswitch_id
        ),
        select(NatGateway.private_ip).where(NatGateway.vswitch_id == vswitch_id),
    ]
    # (a NAT gateway being created may hold none yet)
    return {IPv4Address(ip) for query in queries for ip in s.scalars(query) if ip}


def used_count() -> ScalarSelect[Any]:
    """A scalar subquery: how many addresses the VSwitch row of the enclosing query hands out."""
    held = union_all(
        select(NetworkInterface.vswitch_id.label("vswitch_id")),
        select(NetworkInterfacePrivateIp.vswitch_id),
        select(NatGateway.vswitch_id).where(NatGateway.private_ip != ""),
    ).subquery()
    return select(func.count()).select_from(held).where(held.c.vswitch_id == VSwitch.id).scalar_subquery()


def allocate(
    s: Session,
    vswitch: VSwitch,
    wanted: Iterable[str | None],
    taken: set[IPv4Address] | None = None,
    released: Iterable[str] = (),
) -> list[IPv4Address]:
    """A free address of the vSwitch for each of `wanted` (the one named, or the lowest free one
    for None), none of them used already nor twice. `taken`: addresses the caller has handed out
    in this transaction already (they are added to it); `released`: addresses their holder gives
    up in this transaction (an interface moving to another address may keep its own)."""
    used = (used_addresses(s, vswitch.id) - {IPv4Address(a) for a in released}) | (taken or set())
    network = IPv4Network(vswitch.cidr)
    addresses = []
    for one in wanted:
        address = cidr.allocate(network, used, one)
        used.add(address)
        addresses.append(address)
    if taken is not None:
        taken.update(addresses)
    return addresses
