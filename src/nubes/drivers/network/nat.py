"""The public side of a VPC's ruleset: NAT on the uplink leg and what may cross the leg. Pure.

Three kinds of translation share the leg (the VPC's device on the operator's uplink):

* 1:1 NAT of a port's own public address (an instance's public IP or EIP): inbound DNAT to the
  port, outbound SNAT from it;
* SNAT entries of NAT gateways: what leaves from a source block takes one of the entry's
  addresses (by a hash of the source address, so one source keeps one address). More specific
  sources come first, and a port's own address comes before any entry (ECS: an EIP takes
  precedence over SNAT);
* forward (DNAT) entries of NAT gateways: a public address and port (or every port, protocol
  "any") forwarded to a private address and port.

A public address is translated whichever side it is reached from: a port reaches another port
of its VPC by its public address too (hairpin; see `nat_table`).

What crosses the leg (rules of the `forward` and `input` chains, see nft.py): from the leg only
what was DNAT-ed passes; to the leg only the sources that have a way out (1:1 ports, SNAT
sources) leave, never towards the VPC's own block; the router itself is unreachable from the
leg, except for echo requests to the addresses of NAT gateways that answer ping.
"""

from __future__ import annotations

import ipaddress
import re

from nubes.drivers.network.base import DnatRule, SnatRule, VpcNet
from nubes.drivers.network.nftext import address_set, comment, ip_sort_key, set_literal

NAT_TABLE = "nubes_nat"
PORTS_RE = re.compile(r"^([0-9]{1,5})(?:-([0-9]{1,5}))?$")


def port_span(ports: str) -> tuple[int, int]:
    """ "80" -> (80, 80), "1000-1010" -> (1000, 1010); ValueError when malformed."""
    match = PORTS_RE.match(ports)
    if match is None:
        raise ValueError(f"bad ports {ports!r}")
    low, high = int(match.group(1)), int(match.group(2) or match.group(1))
    if not 1 <= low <= high <= 65535:
        raise ValueError(f"bad ports {ports!r}")
    return low, high


def nat_addresses(vpc: VpcNet) -> set[str]:
    """The public addresses of the VPC's NAT gateways (held on the leg, mapped to no port)."""
    return {m.public_ip for m in vpc.public if not m.private_ip}


def validate_public(vpc: VpcNet) -> None:
    """ValueError when the public side cannot be realised as given (a bug above the driver)."""
    port_ips = {p.ip for p in vpc.ports}
    publics: set[str] = set()
    privates: set[str] = set()
    for m in vpc.public:
        network = ipaddress.IPv4Network(m.public_cidr, strict=False)
        if ipaddress.IPv4Address(m.public_ip) not in network:
            raise ValueError(f"{m.address_id}: {m.public_ip} outside {m.public_cidr}")
        if m.gateway and ipaddress.IPv4Address(m.gateway) not in network:
            raise ValueError(f"{m.address_id}: gateway {m.gateway} outside {m.public_cidr}")
        if m.private_ip and m.private_ip not in port_ips:
            raise ValueError(f"{m.address_id}: {m.private_ip} is no port of {vpc.vpc_id}")
        if m.public_ip in publics:
            raise ValueError(f"{m.address_id}: {m.public_ip} mapped twice")
        if m.private_ip and m.private_ip in privates:
            raise ValueError(f"{m.address_id}: {m.private_ip} has two public addresses")
        if m.bandwidth_out < 0 or m.bandwidth_in < 0:
            raise ValueError(f"{m.address_id}: negative bandwidth")
        publics.add(m.public_ip)
        privates.add(m.private_ip)
    held = nat_addresses(vpc)
    vpc_block = ipaddress.IPv4Network(vpc.cidr, strict=False)
    for snat in vpc.snat:
        if not snat.public_ips or not set(snat.public_ips) <= held:
            raise ValueError(f"{snat.entry_id}: {snat.public_ips} are not all NAT addresses of the VPC")
        for source in snat.sources:
            if not ipaddress.IPv4Network(source, strict=False).subnet_of(vpc_block):
                raise ValueError(f"{snat.entry_id}: source {source} outside {vpc.cidr}")
    for dnat in vpc.dnat:
        _validate_dnat(dnat, held, vpc_block)


def _validate_dnat(dnat: DnatRule, held: set[str], vpc_block: ipaddress.IPv4Network) -> None:
    if dnat.public_ip not in held:
        raise ValueError(f"{dnat.entry_id}: {dnat.public_ip} is no NAT address of the VPC")
    if ipaddress.IPv4Address(dnat.private_ip) not in vpc_block:
        raise ValueError(f"{dnat.entry_id}: {dnat.private_ip} outside the VPC")
    if dnat.protocol == "any":
        if dnat.public_ports or dnat.private_ports:
            raise ValueError(f"{dnat.entry_id}: protocol any forwards every port")
        return
    if dnat.protocol not in ("tcp", "udp"):
        raise ValueError(f"{dnat.entry_id}: unknown protocol {dnat.protocol!r}")
    public, private = port_span(dnat.public_ports), port_span(dnat.private_ports)
    if public[1] - public[0] != private[1] - private[0]:
        raise ValueError(f"{dnat.entry_id}: port ranges of different lengths")


def _dnat_line(dnat: DnatRule) -> str:
    head = f"ip daddr {dnat.public_ip}"
    tag = comment(dnat.entry_id)
    if dnat.protocol == "any":
        return f"{head} dnat to {dnat.private_ip} {tag}"
    (low, high), (to_low, _) = port_span(dnat.public_ports), port_span(dnat.private_ports)
    match = f"{head} {dnat.protocol} dport {dnat.public_ports}"
    if low == to_low:
        return f"{match} dnat to {dnat.private_ip} {tag}"  # the ports stay as they are
    if low == high:
        return f"{match} dnat to {dnat.private_ip}:{to_low} {tag}"
    shifted = ", ".join(f"{p} : {p - low + to_low}" for p in range(low, high + 1))
    return f"{match} dnat to {dnat.private_ip} : {dnat.protocol} dport map {{ {shifted} }} {tag}"


def _snat_target(public_ips: tuple[str, ...]) -> str:
    ordered = sorted(public_ips, key=ip_sort_key)
    if len(ordered) == 1:
        return ordered[0]
    choices = ", ".join(f"{i} : {ip}" for i, ip in enumerate(ordered))
    return f"jhash ip saddr mod {len(ordered)} map {{ {choices} }}"


def _specificity(rule: SnatRule) -> tuple[int, str]:
    longest = max(ipaddress.IPv4Network(s, strict=False).prefixlen for s in rule.sources)
    return -longest, rule.entry_id


def _forward_order(dnat: DnatRule) -> tuple[int, int, str]:
    first_port = port_span(dnat.public_ports)[0] if dnat.public_ports else 0
    return ip_sort_key(dnat.public_ip), first_port, dnat.protocol


def _source_rules(vpc: VpcNet, match: str) -> list[str]:
    """The SNAT of what `match`es: a port's own address first, then the SNAT entries."""
    mappings = sorted((m for m in vpc.public if m.private_ip), key=lambda m: ip_sort_key(m.public_ip))
    rules = [
        f"{match} ip saddr {m.private_ip} snat to {m.public_ip} {comment(m.address_id)}" for m in mappings
    ]
    rules += [
        f"{match} ip saddr {set_literal(address_set(r.sources))} "
        f"snat to {_snat_target(r.public_ips)} {comment(r.entry_id)}"
        for r in sorted(vpc.snat, key=_specificity)
    ]
    return rules


def nat_table(vpc: VpcNet, leg: str) -> list[str]:
    """The `table ip nubes_nat` of the VPC's public side (nothing without a public address).

    DNAT applies to a public address whichever side it comes from, so that a port of the VPC
    reaches another one by its public address too (hairpin, as in ECS). Such a connection is
    SNAT-ed as well, to the source's own public address, its SNAT entry's or, without either,
    the router's address on the destination's vSwitch, so that the reply comes back by the
    router and is translated back."""
    if not vpc.public:
        return []
    mappings = sorted((m for m in vpc.public if m.private_ip), key=lambda m: ip_sort_key(m.public_ip))
    out = [
        f"table ip {NAT_TABLE} {{",
        "\tchain prerouting {",
        "\t\ttype nat hook prerouting priority dstnat; policy accept;",
    ]
    out += [f"\t\tip daddr {m.public_ip} dnat to {m.private_ip} {comment(m.address_id)}" for m in mappings]
    out += [f"\t\t{_dnat_line(d)}" for d in sorted(vpc.dnat, key=_forward_order)]
    out += [
        "\t}",
        "\tchain postrouting {",
        "\t\ttype nat hook postrouting priority srcnat; policy accept;",
    ]
    out += ["\t\t" + rule for rule in _source_rules(vpc, f'oifname "{leg}"')]
    hairpin = f'oifname != "{leg}" ct status dnat'
    out += ["\t\t" + rule for rule in _source_rules(vpc, hairpin)]
    out += [
        f"\t\t{hairpin} ip saddr {vpc.cidr} masquerade {comment('hairpin: the reply comes back by the router')}",
        "\t}",
        "}",
        "",
    ]
    return out


def leg_guard(vpc: VpcNet, leg: str) -> list[str]:
    """The `forward` rules before the security-group dispatch: what may cross the leg at all."""
    if not vpc.public:
        return []
    sources = address_set(
        [m.private_ip for m in vpc.public if m.private_ip] + [s for r in vpc.snat for s in r.sources]
    )
    out = [f'\t\tiifname "{leg}" ct status & dnat == 0 drop {comment("uplink: public addresses only")}']
    if sources:
        out.append(
            f'\t\toifname "{leg}" ip saddr != {set_literal(sources)} drop {comment("uplink: mapped only")}'
        )
    else:
        out.append(f'\t\toifname "{leg}" drop {comment("uplink: no source has a way out")}')
    out.append(f'\t\toifname "{leg}" ip daddr {vpc.cidr} drop {comment("uplink: not to the own VPC")}')
    return out


def leg_exit(vpc: VpcNet, leg: str) -> list[str]:
    """The last `forward` rule: what passed the source's egress rules and is bound for the leg."""
    return [f'\t\toifname "{leg}" accept {comment("to the internet")}'] if vpc.public else []


def leg_input(vpc: VpcNet, leg: str) -> list[str]:
    """The `input` rules for the leg: nothing reaches the router, except echo requests to the
    addresses of NAT gateways that answer ping (IcmpReplyEnabled)."""
    if not vpc.public:
        return []
    answering = sorted((m.public_ip for m in vpc.public if m.answers_ping), key=ip_sort_key)
    out = []
    if answering:
        out.append(
            f'\t\tiifname "{leg}" ip daddr {set_literal(answering)} icmp type echo-request accept '
            f"{comment('NAT gateways answer ping')}"
        )
    out.append(f'\t\tiifname "{leg}" drop {comment("the router is not reachable from the uplink")}')
    return out
