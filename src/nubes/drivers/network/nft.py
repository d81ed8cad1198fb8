"""The nftables ruleset of one VPC namespace: a pure function of the VPC's desired state.

Two tables, loaded together after `flush ruleset` in one `nft -f -` transaction (the VPC
namespace is wholly nubes-owned), so a change — a revoke included — takes effect at once and
there is never a moment with half a ruleset:

* `table bridge nubes_guard` — anti-spoofing. Every frame that enters a vSwitch bridge from a
  port must carry the port's MAC; its ARP sender MAC/IP and its IPv4 source must be the
  port's, its primary or a secondary address (DHCP from 0.0.0.0 to udp 67 excepted, so a
  guest can ask for its address); a port
  may not answer DHCP (udp source port 67); IPv6 and every other ethertype are dropped for
  now. Frames from a device that is not a known port are dropped. This runs at the bridge
  prerouting hook, before the bridge learns the source MAC and before br_netfilter hands
  the packet to the IPv4 hooks — which is what makes source addresses trustworthy below.

* `table inet nubes` — security groups. br_netfilter (net.bridge.bridge-nf-call-iptables=1
  in the namespace) makes bridged IPv4 traverse the inet `forward` hook, as routed traffic
  between the vSwitches of the VPC does, so one `forward` chain sees all port-to-port
  traffic. There `iifname`/`oifname` are the bridges, not the ports, so ports are told apart
  by IP address (trustworthy thanks to the bridge table), dispatched with `ip saddr vmap`
  (egress chain of the source port) then `ip daddr vmap` (ingress chain of the destination
  port). Both sides must allow a new connection. A rule with a SourcePortRange matches the
  source ports too (`tcp sport A-B tcp dport C`).

  - egress chain: the source port's egress rules, first match wins; accept -> `return`
    (so the destination's ingress still decides), drop -> `drop`; no match -> falls
    through = accept (ECS allows outbound by default, normal and enterprise groups alike).
  - ingress chain: the destination port's ingress rules, first match wins; accept ->
    `accept`, drop -> `drop`; no match -> accept if the source is a port sharing a group
    whose inner access is "accept", otherwise `drop`.

  Replies pass through `ct state established,related accept`, the first rule. A revoke
  affects new connections at once; established flows survive it (their packets match the
  conntrack rule before any security group rule), which is what ECS does too: removing a
  rule does not cut established connections. Nothing flushes conntrack on a change.

  `input` guards the VPC router itself (the namespace): loopback, replies, DHCP (udp 67),
  the metadata service (tcp 80 on 100.100.100.200) and ICMP echo to the gateways; the rest
  is dropped. Security groups do not apply to the metadata service and DHCP (as in ECS).
  `output` (connections the VPC router itself opens, e.g. `nubes ssh`) applies the
  destination port's ingress chain, so a group that does not open port 22 keeps them out.

Public addresses (`vpc.public`, with the SNAT and forward entries of NAT gateways; only rendered
when the VPC has some): the VPC's leg on the uplink is one device (`public_device`, a macvlan of
the uplink inside the VPC namespace, holding the public addresses). The NAT table
(`table ip nubes_nat`) and the leg's rules in `forward` and `input` are rendered by nat.py; a
DNAT-ed packet still meets the destination's ingress chain: security groups decide what reaches
an instance.

Effective rules of a port: the rules of all its groups merged and sorted by priority
(1 first, 100 last), at equal priority drop before accept, then in the order given (group
order of the port, rule order of the group). A rule naming a group with no member ports is
skipped (there is nothing it could match; nft also refuses empty anonymous sets). Group
members are kept in named sets, one per referenced group.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable

from nubes.drivers.network import names, nat
from nubes.drivers.network.base import (
    METADATA_ADDRESS,
    METADATA_PORT,
    PortNet,
    SecurityGroupNet,
    SecurityRule,
    VpcNet,
)
from nubes.drivers.network.nftext import comment as _comment
from nubes.drivers.network.nftext import ip_sort_key as _ip_sort_key
from nubes.drivers.network.nftext import set_literal as _set_literal

BRIDGE_TABLE = "nubes_guard"
INET_TABLE = "nubes"
NAT_TABLE = nat.NAT_TABLE

PORTED_PROTOCOLS = ("tcp", "udp")
PORTLESS_PROTOCOLS = {"icmp": "icmp", "gre": "gre"}


def ruleset_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def port_addresses(port: PortNet) -> list[str]:
    """Every address a port holds: its primary one, then its secondary ones."""
    return [port.ip, *port.secondary_ips]


def egress_chain(port_id: str) -> str:
    return "out_" + names.chain_token(port_id)


def ingress_chain(port_id: str) -> str:
    return "in_" + names.chain_token(port_id)


def guard_chain(port_id: str) -> str:
    return "port_" + names.chain_token(port_id)


def group_set(group_id: str) -> str:
    return "grp_" + names.chain_token(group_id)


def effective_rules(
    port: PortNet, groups: dict[str, SecurityGroupNet], direction: str
) -> list[tuple[str, SecurityRule]]:
    """(group id, rule) pairs of one direction for a port, in evaluation order."""
    keyed: list[tuple[tuple[int, int, int, int], str, SecurityRule]] = []
    for g_index, group_id in enumerate(port.security_group_ids):
        group = groups.get(group_id)
        if group is None:
            continue
        for r_index, rule in enumerate(group.rules):
            if rule.direction.lower() != direction:
                continue
            drop_first = 0 if rule.policy.lower() == "drop" else 1
            keyed.append(((rule.priority, drop_first, g_index, r_index), group_id, rule))
    keyed.sort(key=lambda item: item[0])
    return [(group_id, rule) for _, group_id, rule in keyed]


def _protocol_match(rule: SecurityRule) -> str | None:
    """The nft protocol/port match of a rule: "" for any protocol, None if unrenderable."""
    protocol = rule.protocol.lower()
    if protocol == "all":
        return ""
    if protocol in PORTLESS_PROTOCOLS:
        return f"meta l4proto {PORTLESS_PROTOCOLS[protocol]}"
    if protocol in PORTED_PROTOCOLS:
        source = _ports(rule.source_port_from, rule.source_port_to)
        destination = _ports(rule.port_from, rule.port_to)
        if source is None or destination is None:
            return None
        matches = [
            f"{protocol} sport {source}" if source else "",
            f"{protocol} dport {destination}" if destination else "",
        ]
        return " ".join(m for m in matches if m) or f"meta l4proto {protocol}"
    return None


def _ports(low: int, high: int) -> str | None:
    """A port range as nft writes it: "" for any port (-1/-1), None when malformed."""
    if low == -1 and high == -1:
        return ""
    if low < 0 or high < 0 or low > high or high > 65535:
        return None
    return str(low) if low == high else f"{low}-{high}"


def _peer_match(rule: SecurityRule, field: str, members: dict[str, list[str]]) -> str | None:
    """The peer match ("" for any address), None when the rule can match nothing."""
    if rule.peer_cidr:
        network = ipaddress.IPv4Network(rule.peer_cidr, strict=False)
        if network.prefixlen == 0:
            return ""
        text = str(network.network_address) if network.prefixlen == 32 else str(network)
        return f"{field} {text}"
    if rule.peer_group_id:
        if not members.get(rule.peer_group_id):
            return None
        return f"{field} @{group_set(rule.peer_group_id)}"
    return None


def render_rule(group_id: str, rule: SecurityRule, members: dict[str, list[str]]) -> str:
    """One rule line of a port chain, or a comment line saying why it is skipped."""
    ingress = rule.direction.lower() == "ingress"
    policy = rule.policy.lower()
    tag = f"{group_id}/{rule.rule_id} prio {rule.priority}"
    protocol = _protocol_match(rule)
    if protocol is None:
        return f"# skipped {tag}: unsupported protocol/ports {rule.protocol} {rule.port_from}/{rule.port_to}"
    try:
        peer = _peer_match(rule, "ip saddr" if ingress else "ip daddr", members)
    except ValueError:
        return f"# skipped {tag}: bad cidr {rule.peer_cidr}"
    if peer is None:
        why = f"group {rule.peer_group_id} has no member ports" if rule.peer_group_id else "no peer"
        return f"# skipped {tag}: {why}"
    if policy == "drop":
        verdict = "drop"
    elif policy == "accept":
        verdict = "accept" if ingress else "return"
    else:
        return f"# skipped {tag}: unknown policy {rule.policy}"
    parts = [p for p in (peer, protocol, verdict, _comment(tag)) if p]
    return " ".join(parts)


MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def validate_vpc(vpc: VpcNet) -> None:
    """Raise ValueError when a VPC cannot be realised as given (a bug above the driver):
    a port on an unknown vSwitch, a bad MAC or kind, a veth without host namespace, an
    address outside its vSwitch or used twice."""
    vswitches = {v.vswitch_id: v for v in vpc.vswitches}
    nat.validate_public(vpc)
    port_ids = {p.port_id for p in vpc.ports}
    for route in vpc.routes:
        if route.next_hop_port_id not in port_ids:
            raise ValueError(
                f"{route.route_table_id}: next hop {route.next_hop_port_id} is no port of the VPC"
            )
    for each in vpc.vswitches:
        net = ipaddress.IPv4Network(each.cidr, strict=False)
        if ipaddress.IPv4Address(each.gateway) not in net:
            raise ValueError(f"{each.vswitch_id}: gateway {each.gateway} outside {each.cidr}")
    seen: dict[str, str] = {}
    for port in vpc.ports:
        vsw = vswitches.get(port.vswitch_id)
        if vsw is None:
            raise ValueError(f"{port.port_id}: unknown vSwitch {port.vswitch_id}")
        if port.kind not in ("tap", "veth"):
            raise ValueError(f"{port.port_id}: unknown kind {port.kind!r}")
        if port.kind == "veth" and not port.host_netns:
            raise ValueError(f"{port.port_id}: a veth port needs host_netns")
        if not MAC_RE.match(port.mac.lower()):
            raise ValueError(f"{port.port_id}: bad MAC {port.mac!r}")
        for address in port_addresses(port):
            if ipaddress.IPv4Address(address) not in ipaddress.IPv4Network(vsw.cidr, strict=False):
                raise ValueError(f"{port.port_id}: {address} outside {vsw.vswitch_id} {vsw.cidr}")
            if address in seen:
                raise ValueError(f"{port.port_id}: {address} already used by {seen[address]}")
            seen[address] = port.port_id


def _gateways(vpc: VpcNet) -> list[str]:
    return sorted({vsw.gateway for vsw in vpc.vswitches}, key=_ip_sort_key)


def _dispatch(field: str, targets: list[tuple[str, str]]) -> list[str]:
    """An `ip saddr|daddr vmap` jumping to each address's chain (nothing when there is none)."""
    if not targets:
        return []
    entries = [f"\t\t\t{address} : jump {chain}" for address, chain in targets]
    return [f"\t\tip {field} vmap {{", ",\n".join(entries), "\t\t}"]


def render_ruleset(
    vpc: VpcNet,
    *,
    tap_name: Callable[[str], str] = names.tap_name,
    veth_name: Callable[[str], str] = names.veth_name,
    public_device: Callable[[str], str] = names.public_device,
) -> str:
    """The complete nft script (`nft -f -`) for one VPC namespace. Pure."""
    leg = public_device(vpc.vpc_id)
    groups = {g.group_id: g for g in vpc.security_groups}
    ports = sorted(vpc.ports, key=lambda p: _ip_sort_key(p.ip))
    members: dict[str, list[str]] = {}
    for port in ports:
        for group_id in port.security_group_ids:
            members.setdefault(group_id, []).extend(port_addresses(port))

    def device(port: PortNet) -> str:
        return tap_name(port.port_id) if port.kind == "tap" else veth_name(port.port_id)

    out: list[str] = [
        f"# nubes ruleset for {vpc.vpc_id}: generated, applied atomically with nft -f",
        "flush ruleset",
        "",
        f"table bridge {BRIDGE_TABLE} {{",
    ]
    # ---- anti-spoofing -------------------------------------------------------------------
    # (a port that is a route's next hop answers for the route's destinations too)
    routed_to: dict[str, list[str]] = {}
    for route in vpc.routes:
        if route.sources:
            routed_to.setdefault(route.next_hop_port_id, []).append(route.destination)
    for port in ports:
        held = port_addresses(port)  # the primary address first, then the secondary ones
        allowed = [ipaddress.IPv4Network(c) for c in [*held, *routed_to.get(port.port_id, [])]]
        sources = [str(n) for n in ipaddress.collapse_addresses(allowed)]
        sources = [s.removesuffix("/32") for s in sources]
        out += [
            f"\tchain {guard_chain(port.port_id)} {{",
            f"\t\tether saddr != {port.mac.lower()} drop",
            f"\t\tarp saddr ether != {port.mac.lower()} drop",
            f"\t\tarp saddr ip != {{ {', '.join(['0.0.0.0', *held])} }} drop",
            "\t\tip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept",
            f"\t\tip saddr != {_set_literal(sources)} drop",
            "\t\tudp sport 67 drop",
            "\t\tether type { ip, arp } accept",
            "\t\tdrop",
            "\t}",
        ]
    out += [
        "\tchain prerouting {",
        "\t\ttype filter hook prerouting priority filter; policy drop;",
    ]
    if ports:
        out.append("\t\tiifname vmap {")
        out += [f'\t\t\t"{device(p)}" : jump {guard_chain(p.port_id)},' for p in ports]
        out[-1] = out[-1].rstrip(",")
        out.append("\t\t}")
    out += ["\t}", "}", "", f"table inet {INET_TABLE} {{"]

    # ---- group member sets ---------------------------------------------------------------
    referenced: set[str] = set()
    for group in vpc.security_groups:
        for rule in group.rules:
            if rule.peer_group_id and not rule.peer_cidr:
                referenced.add(rule.peer_group_id)
        if group.inner_access.lower() == "accept":
            referenced.add(group.group_id)
    for group_id in sorted(referenced):
        if members.get(group_id):
            out += [
                f"\tset {group_set(group_id)} {{",
                "\t\ttype ipv4_addr",
                f"\t\telements = {{ {', '.join(members[group_id])} }}",
                "\t}",
            ]

    # ---- per-port chains ------------------------------------------------------------------
    egress_ports: list[PortNet] = []
    for port in ports:
        lines = [render_rule(g, r, members) for g, r in effective_rules(port, groups, "egress")]
        if any(not line.startswith("#") for line in lines):
            egress_ports.append(port)
            out.append(f"\tchain {egress_chain(port.port_id)} {{")
            out += ["\t\t" + line for line in lines]
            out.append("\t\t# no rule matched: accept (return to forward for the ingress check)")
            out.append("\t}")
    for port in ports:
        out.append(f"\tchain {ingress_chain(port.port_id)} {{")
        out += ["\t\t" + render_rule(g, r, members) for g, r in effective_rules(port, groups, "ingress")]
        for group_id in port.security_group_ids:
            own = groups.get(group_id)
            if own is not None and own.inner_access.lower() == "accept" and members.get(group_id):
                out.append(
                    f"\t\tip saddr @{group_set(group_id)} accept {_comment(f'{group_id} inner access')}"
                )
        out.append("\t\tdrop")
        out.append("\t}")

    # ---- base chains ----------------------------------------------------------------------
    out += [
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter; policy drop;",
        "\t\tct state established,related accept",
        "\t\tct state invalid drop",
        "\t\tmeta nfproto ipv6 drop",
    ]
    out += nat.leg_guard(vpc, leg)
    out += _dispatch("saddr", [(a, egress_chain(p.port_id)) for p in egress_ports for a in port_addresses(p)])
    out += _dispatch("daddr", [(a, ingress_chain(p.port_id)) for p in ports for a in port_addresses(p)])
    # custom routes: what a route table sends to an appliance meets the appliance's ingress rules
    for route in sorted(vpc.routes, key=lambda r: (r.route_table_id, r.destination)):
        if route.sources:
            out.append(
                f"\t\tip saddr {_set_literal(list(route.sources))} ip daddr {route.destination} "
                f"jump {ingress_chain(route.next_hop_port_id)} {_comment(route.route_table_id)}"
            )
    out += nat.leg_exit(vpc, leg)
    out.append("\t}")

    out += [
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy drop;",
        '\t\tiifname "lo" accept',
        "\t\tct state established,related accept",
        "\t\tct state invalid drop",
        "\t\tmeta nfproto ipv6 drop",
    ]
    out += nat.leg_input(vpc, leg)
    out += [
        '\t\tudp sport 68 udp dport 67 accept comment "DHCP"',
        f'\t\tip daddr {METADATA_ADDRESS} tcp dport {METADATA_PORT} accept comment "metadata"',
    ]
    gateways = _gateways(vpc)
    if gateways:
        out.append(
            f'\t\tip daddr {_set_literal(gateways)} icmp type echo-request accept comment "ping gateway"'
        )
    out += [
        "\t}",
        "\tchain output {",
        "\t\ttype filter hook output priority filter; policy accept;",
        "\t\tct state established,related accept",
        '\t\tudp sport 67 udp dport 68 accept comment "DHCP"',
    ]
    # Connections the VPC router opens to a guest (`nubes ssh`, operators) meet the guest's
    # ingress rules like any other source: the router's address is the vSwitch gateway.
    out += _dispatch("daddr", [(a, ingress_chain(p.port_id)) for p in ports for a in port_addresses(p)])
    out += [
        "\t}",
        "}",
        "",
    ]
    out += nat.nat_table(vpc, leg)
    return "\n".join(out)
