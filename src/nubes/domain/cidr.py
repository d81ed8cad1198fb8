"""Address rules of ECS VPCs and vSwitches, as pure functions."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network

from nubes import errors

VPC_DEFAULT_CIDR = "172.16.0.0/12"
VPC_MIN_PREFIX, VPC_MAX_PREFIX = 8, 28
VSWITCH_MIN_PREFIX, VSWITCH_MAX_PREFIX = 16, 29
# Ranges ECS does not accept as VPC CIDR blocks.
_FORBIDDEN = [
    IPv4Network(n) for n in ("100.64.0.0/10", "224.0.0.0/4", "127.0.0.0/8", "169.254.0.0/16", "0.0.0.0/8")
]


def _network(text: str) -> IPv4Network:
    try:
        network = IPv4Network(text, strict=True)
    except (ValueError, TypeError):
        raise errors.invalid_cidr_block_malformed(
            f"The CIDR block {text!r} is not a valid IPv4 CIDR block such as 192.168.0.0/16."
        ) from None
    return network


def vpc_network(text: str | None) -> IPv4Network:
    network = _network(text or VPC_DEFAULT_CIDR)
    if not VPC_MIN_PREFIX <= network.prefixlen <= VPC_MAX_PREFIX:
        raise errors.invalid_cidr_block_malformed(
            f"The VPC CIDR block mask must be between /{VPC_MIN_PREFIX} and /{VPC_MAX_PREFIX}; got {network}."
        )
    if any(network.overlaps(f) for f in _FORBIDDEN):
        raise errors.invalid_cidr_block_malformed(
            f"{network} overlaps a reserved range (100.64.0.0/10, 224.0.0.0/4, 127.0.0.0/8, 169.254.0.0/16)."
        )
    return network


def vswitch_network(text: str, vpc: IPv4Network, siblings: Iterable[IPv4Network]) -> IPv4Network:
    network = _network(text)
    if not VSWITCH_MIN_PREFIX <= network.prefixlen <= VSWITCH_MAX_PREFIX:
        raise errors.invalid_cidr_block_malformed(
            f"The vSwitch CIDR block mask must be between /{VSWITCH_MIN_PREFIX} and /{VSWITCH_MAX_PREFIX}; "
            f"got {network}.",
        )
    if not network.subnet_of(vpc):
        raise errors.invalid_cidr_block_not_in_vpc(
            f"The vSwitch CIDR block {network} is not inside the VPC CIDR block {vpc}."
        )
    for sibling in siblings:
        if network.overlaps(sibling):
            raise errors.invalid_cidr_block_overlapped(
                f"The vSwitch CIDR block {network} overlaps {sibling}, used by another vSwitch of this VPC."
            )
    return network


def gateway(network: IPv4Network) -> IPv4Address:
    """ECS's vSwitch router: the third-last address (x.x.x.253 in a /24)."""
    return network.broadcast_address - 2


def reserved(network: IPv4Network) -> set[IPv4Address]:
    """The first address and the last three of a vSwitch are ECS's."""
    last = network.broadcast_address
    return {network.network_address, last - 2, last - 1, last}


def available_count(network: IPv4Network, used: int) -> int:
    return max(0, network.num_addresses - len(reserved(network)) - used)


def allocate(network: IPv4Network, used: set[IPv4Address], wanted: str | None) -> IPv4Address:
    """A free private address of the vSwitch: the one asked for, or the lowest free one."""
    unusable = reserved(network) | used
    if wanted:
        try:
            address = ipaddress.IPv4Address(wanted)
        except ValueError:
            raise errors.invalid_private_ip_address_malformed(f"{wanted!r} is not an IPv4 address.") from None
        if address not in network:
            raise errors.invalid_private_ip_address_mismatch(
                f"The address {address} is not in the vSwitch CIDR block {network}."
            )
        if address in reserved(network):
            raise errors.invalid_private_ip_address_reserved(
                f"The address {address} is reserved by the vSwitch."
            )
        if address in used:
            raise errors.invalid_private_ip_address_duplicated(f"The address {address} is already in use.")
        return address
    for address in network.hosts():
        if address not in unusable:
            return address
    raise errors.invalid_vswitch_id_ip_not_enough(
        f"The vSwitch {network} has no free private IP address left."
    )
