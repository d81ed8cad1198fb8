"""Bandwidth of public addresses: the `tc` commands for a VPC's uplink leg. Pure.

Both directions are shaped with HTB, one class per public address at its Mbit/s, on the two
devices that see the public address (never the private one), inside the VPC namespace:

* outbound (instance -> internet): the leg's egress, after SNAT: `ip src PUB`;
* inbound (internet -> instance): the leg's ingress is redirected (`mirred`) to an ifb device
  whose egress is shaped, before DNAT: `ip dst PUB`.

Unclassified traffic (ARP, an address with bandwidth 0) passes unshaped. Each class has a short
pfifo leaf, so a full class does not build a long queue. Only what every kernel nubes meets has
is used: HTB, u32 and mirred (fq_codel, matchall and police may be compiled out). The commands rebuild everything
from scratch (`tc -batch`), after `teardown` removed what was there."""

from __future__ import annotations

import ipaddress

from nubes.drivers.network.base import PublicMapping

FIRST_CLASS = 0x10
LEAF_PACKETS = 100


def _rate(mbit: int) -> str:
    return f"{mbit}mbit"


def _classes(dev: str, mappings: list[tuple[int, str, int]], field: str) -> list[str]:
    """HTB root on `dev` and one class + leaf + u32 filter per (class minor, address, Mbit/s)."""
    out = [f"qdisc add dev {dev} root handle 1: htb r2q 100"]
    for minor, address, mbit in mappings:
        rate = _rate(mbit)
        out += [
            f"class add dev {dev} parent 1: classid 1:{minor:x} htb rate {rate} ceil {rate}",
            f"qdisc add dev {dev} parent 1:{minor:x} pfifo limit {LEAF_PACKETS}",
            f"filter add dev {dev} parent 1: protocol ip prio 1 u32 match ip {field} {address}/32 flowid 1:{minor:x}",
        ]
    return out


def render_tc(public: tuple[PublicMapping, ...], leg: str, ifb: str) -> list[str]:
    """`tc -batch` lines shaping each public address of a VPC on its leg (out) and ifb (in);
    empty when no address has a bandwidth."""
    ordered = sorted(public, key=lambda m: int(ipaddress.IPv4Address(m.public_ip)))
    minors = {m.public_ip: FIRST_CLASS + i for i, m in enumerate(ordered)}
    out_classes = [
        (minors[m.public_ip], m.public_ip, m.bandwidth_out) for m in ordered if m.bandwidth_out > 0
    ]
    in_classes = [(minors[m.public_ip], m.public_ip, m.bandwidth_in) for m in ordered if m.bandwidth_in > 0]
    lines: list[str] = []
    if out_classes:
        lines += _classes(leg, out_classes, "src")
    if in_classes:
        lines += [
            f"qdisc add dev {leg} handle ffff: ingress",
            f"filter add dev {leg} parent ffff: protocol all prio 1 u32 match u32 0 0 action mirred egress redirect dev {ifb}",
        ]
        lines += _classes(ifb, in_classes, "dst")
    return lines


def teardown(leg: str, ifb: str) -> list[list[str]]:
    """`tc` argument lists removing the shaping (each may fail harmlessly: nothing to remove)."""
    return [
        ["qdisc", "del", "dev", leg, "root"],
        ["qdisc", "del", "dev", leg, "ingress"],
        ["qdisc", "del", "dev", ifb, "root"],
    ]
