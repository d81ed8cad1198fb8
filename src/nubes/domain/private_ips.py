"""The private addresses taken in a vSwitch: its interfaces' and its NAT gateways'. Every
allocator of a vSwitch address (interfaces, instances, NAT gateways) skips all of them."""

from __future__ import annotations

from ipaddress import IPv4Address

from sqlalchemy import select
from sqlalchemy.orm import Session

from nubes.store.models import NatGateway, NetworkInterface


def taken(s: Session, vswitch_id: str) -> set[IPv4Address]:
    interfaces = s.scalars(
        select(NetworkInterface.primary_ip).where(NetworkInterface.vswitch_id == vswitch_id)
    )
    gateways = s.scalars(select(NatGateway.private_ip).where(NatGateway.vswitch_id == vswitch_id))
    return {IPv4Address(ip) for ip in [*interfaces, *gateways] if ip}
