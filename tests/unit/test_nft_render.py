"""The nftables renderer: a pure function from a VPC's desired state to an nft script."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from nubes.drivers.network import names
from nubes.drivers.network.base import PortNet, SecurityGroupNet, SecurityRule, VpcNet, VSwitchNet
from nubes.drivers.network.nft import render_ruleset, validate_vpc

VSW1 = VSwitchNet("vsw-1", "192.168.1.0/24", "192.168.1.253")
VSW2 = VSwitchNet("vsw-2", "192.168.2.0/24", "192.168.2.253")


def rule(
    direction: str,
    protocol: str,
    ports: str = "-1/-1",
    policy: str = "accept",
    priority: int = 1,
    cidr: str | None = "0.0.0.0/0",
    group: str | None = None,
    rule_id: str = "r",
) -> SecurityRule:
    low, high = (int(p) for p in ports.split("/"))
    return SecurityRule(
        rule_id,
        direction,
        protocol,
        low,
        high,
        policy,
        priority,
        peer_cidr=None if group else cidr,
        peer_group_id=group,
    )


def sg(group_id: str, *rules: SecurityRule, inner: str = "accept", kind: str = "normal") -> SecurityGroupNet:
    return SecurityGroupNet(group_id, kind, inner, rules)


def port(
    port_id: str, ip: str, *groups: str, vsw: VSwitchNet = VSW1, kind: str = "tap", mac: str | None = None
) -> PortNet:
    last = int(ip.rsplit(".", 1)[1])
    return PortNet(
        port_id,
        vsw.vswitch_id,
        mac or f"00:16:3e:00:00:{last:02x}",
        ip,
        groups,
        kind=kind,
        host_netns=f"h-{port_id}" if kind == "veth" else None,
    )


def make_vpc(
    ports: list[PortNet], groups: list[SecurityGroupNet], vswitches: tuple[VSwitchNet, ...] = (VSW1, VSW2)
) -> VpcNet:
    return VpcNet("vpc-1", "192.168.0.0/16", vswitches, tuple(ports), tuple(groups))


def render(vpc: VpcNet) -> str:
    return render_ruleset(vpc, tap_name=names.tap_name, veth_name=names.veth_name)


def chain(text: str, name: str) -> list[str]:
    """The lines of a chain's body, stripped, comments included."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"chain {name} {{")
    body: list[str] = []
    depth = 0
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if stripped == "}":
            if depth == 0:
                break
            depth -= 1
        elif stripped.endswith("{"):
            depth += 1
        body.append(stripped)
    return body


def rules_of(text: str, name: str) -> list[str]:
    """Rule lines of a chain without their comment, skip notes dropped."""
    out = []
    for line in chain(text, name):
        if line.startswith("#"):
            continue
        out.append(line.split(" comment ")[0])
    return out


def one_port_ingress(*rules: SecurityRule) -> list[str]:
    text = render(make_vpc([port("eni-b", "192.168.1.11", "sg-b")], [sg("sg-b", *rules, inner="drop")]))
    return rules_of(text, "in_eni_b")


# ---- rule kinds -----------------------------------------------------------------------------


def test_tcp_and_udp_ports_and_ranges() -> None:
    assert one_port_ingress(
        rule("ingress", "tcp", "22/22"),
        rule("ingress", "tcp", "8000/8080", priority=2),
        rule("ingress", "udp", "53/53", priority=3),
        rule("ingress", "udp", "1000/2000", priority=4),
        rule("ingress", "tcp", "-1/-1", priority=5),
        rule("ingress", "udp", "1/65535", priority=6),
    ) == [
        "tcp dport 22 accept",
        "tcp dport 8000-8080 accept",
        "udp dport 53 accept",
        "udp dport 1000-2000 accept",
        "meta l4proto tcp accept",
        "udp dport 1-65535 accept",
        "drop",
    ]


def test_source_port_ranges_are_matched_too() -> None:
    """SourcePortRange (ECS quintuple rules) narrows a rule: the source ports must match as well."""
    from dataclasses import replace

    assert one_port_ingress(
        replace(rule("ingress", "tcp", "22/22"), source_port_from=7000, source_port_to=8000),
        replace(rule("ingress", "udp", "53/53", priority=2), source_port_from=5353, source_port_to=5353),
        replace(rule("ingress", "tcp", "-1/-1", priority=3), source_port_from=1, source_port_to=1024),
        replace(rule("ingress", "tcp", "80/80", priority=4), source_port_from=9, source_port_to=1),
    ) == [
        "tcp sport 7000-8000 tcp dport 22 accept",
        "udp sport 5353 udp dport 53 accept",
        "tcp sport 1-1024 accept",
        "drop",
    ]


def test_icmp_gre_all() -> None:
    assert one_port_ingress(
        rule("ingress", "icmp"),
        rule("ingress", "gre", priority=2),
        rule("ingress", "all", priority=3, cidr="10.0.0.0/8"),
        rule("ingress", "ALL", priority=4),
    ) == [
        "meta l4proto icmp accept",
        "meta l4proto gre accept",
        "ip saddr 10.0.0.0/8 accept",
        "accept",
        "drop",
    ]


def test_unsupported_protocol_or_ports_are_skipped_with_a_note() -> None:
    text = render(
        make_vpc(
            [port("eni-b", "192.168.1.11", "sg-b")],
            [sg("sg-b", rule("ingress", "sctp"), rule("ingress", "tcp", "90/80", rule_id="bad"))],
        )
    )
    body = chain(text, "in_eni_b")
    assert body[0].startswith("# skipped sg-b/r") and "sctp" in body[0]
    assert body[1].startswith("# skipped sg-b/bad") and "90/80" in body[1]
    assert body[2:] == ['ip saddr @grp_sg_b accept comment "sg-b inner access"', "drop"]


def test_cidr_peers_ingress_source_egress_destination() -> None:
    text = render(
        make_vpc(
            [port("eni-a", "192.168.1.10", "sg-a")],
            [
                sg(
                    "sg-a",
                    rule("ingress", "tcp", "22/22", cidr="10.0.0.0/8"),
                    rule("ingress", "tcp", "23/23", cidr="172.16.5.9/32", priority=2),
                    rule("ingress", "tcp", "24/24", cidr="192.168.7.1/24", priority=3),  # host bits ignored
                    rule("egress", "udp", "53/53", cidr="8.8.8.8/32"),
                    rule("egress", "tcp", "443/443", cidr="0.0.0.0/0", policy="drop", priority=2),
                )
            ],
        )
    )
    assert rules_of(text, "in_eni_a")[:3] == [
        "ip saddr 10.0.0.0/8 tcp dport 22 accept",
        "ip saddr 172.16.5.9 tcp dport 23 accept",
        "ip saddr 192.168.7.0/24 tcp dport 24 accept",
    ]
    assert rules_of(text, "out_eni_a") == ["ip daddr 8.8.8.8 udp dport 53 return", "tcp dport 443 drop"]


def test_group_peers_use_a_named_set_of_member_addresses() -> None:
    text = render(
        make_vpc(
            [
                port("eni-a", "192.168.1.10", "sg-web"),
                port("eni-c", "192.168.2.9", "sg-web", vsw=VSW2),
                port("eni-b", "192.168.1.11", "sg-db"),
            ],
            [
                sg("sg-web"),
                sg(
                    "sg-db",
                    rule("ingress", "tcp", "5432/5432", group="sg-web"),
                    rule("egress", "all", group="sg-web", policy="drop"),
                    inner="drop",
                ),
            ],
        )
    )
    assert "\tset grp_sg_web {\n\t\ttype ipv4_addr\n\t\telements = { 192.168.1.10, 192.168.2.9 }\n\t}" in text
    assert rules_of(text, "in_eni_b") == ["ip saddr @grp_sg_web tcp dport 5432 accept", "drop"]
    assert rules_of(text, "out_eni_b") == ["ip daddr @grp_sg_web drop"]


def test_rule_naming_a_group_without_members_is_skipped() -> None:
    text = render(
        make_vpc(
            [port("eni-b", "192.168.1.11", "sg-b")],
            [
                sg(
                    "sg-b",
                    rule("ingress", "tcp", "22/22", group="sg-nobody", rule_id="r-empty"),
                    rule("egress", "tcp", "22/22", group="sg-nobody", policy="drop", rule_id="r-empty-out"),
                    inner="drop",
                ),
                sg("sg-nobody"),
            ],
        )
    )
    assert "# skipped sg-b/r-empty prio 1: group sg-nobody has no member ports" in chain(text, "in_eni_b")
    assert rules_of(text, "in_eni_b") == ["drop"]
    assert "grp_sg_nobody" not in text
    # an egress chain holding only skipped rules is not rendered nor dispatched to
    assert "out_eni_b" not in text


def test_accept_and_drop_verdicts_by_direction() -> None:
    text = render(
        make_vpc(
            [port("eni-a", "192.168.1.10", "sg-a")],
            [
                sg(
                    "sg-a",
                    rule("ingress", "tcp", "22/22", policy="accept"),
                    rule("ingress", "tcp", "23/23", policy="drop", priority=2),
                    rule("egress", "tcp", "80/80", policy="accept"),
                    rule("egress", "tcp", "81/81", policy="drop", priority=2),
                )
            ],
        )
    )
    assert rules_of(text, "in_eni_a")[:2] == ["tcp dport 22 accept", "tcp dport 23 drop"]
    # egress accept returns to `forward` so the destination's ingress chain still decides
    assert rules_of(text, "out_eni_a") == ["tcp dport 80 return", "tcp dport 81 drop"]
    assert "accept" not in " ".join(rules_of(text, "out_eni_a"))


# ---- ordering and merging ---------------------------------------------------------------------


def test_priority_order_and_drop_before_accept_at_equal_priority() -> None:
    assert one_port_ingress(
        rule("ingress", "tcp", "1/1", priority=100),
        rule("ingress", "tcp", "2/2", priority=50, policy="accept"),
        rule("ingress", "tcp", "3/3", priority=50, policy="drop"),
        rule("ingress", "tcp", "4/4", priority=1),
        rule("ingress", "tcp", "5/5", priority=50, policy="accept"),
    ) == [
        "tcp dport 4 accept",
        "tcp dport 3 drop",
        "tcp dport 2 accept",
        "tcp dport 5 accept",
        "tcp dport 1 accept",
        "drop",
    ]


def test_rules_of_all_groups_of_a_port_are_merged() -> None:
    text = render(
        make_vpc(
            [port("eni-a", "192.168.1.10", "sg-1", "sg-2")],
            [
                sg(
                    "sg-1",
                    rule("ingress", "tcp", "10/10", priority=10, rule_id="a"),
                    rule("ingress", "tcp", "30/30", priority=30, rule_id="c"),
                    inner="drop",
                ),
                sg(
                    "sg-2",
                    rule("ingress", "tcp", "20/20", priority=20, rule_id="b"),
                    rule("ingress", "tcp", "10/10", priority=10, policy="drop", rule_id="d"),
                    inner="drop",
                ),
            ],
        )
    )
    body = list(chain(text, "in_eni_a"))
    assert body == [
        'tcp dport 10 drop comment "sg-2/d prio 10"',
        'tcp dport 10 accept comment "sg-1/a prio 10"',
        'tcp dport 20 accept comment "sg-2/b prio 20"',
        'tcp dport 30 accept comment "sg-1/c prio 30"',
        "drop",
    ]


def test_each_port_gets_only_its_own_groups_rules() -> None:
    text = render(
        make_vpc(
            [port("eni-a", "192.168.1.10", "sg-1"), port("eni-b", "192.168.1.11", "sg-2")],
            [
                sg("sg-1", rule("ingress", "tcp", "1/1"), inner="drop"),
                sg("sg-2", rule("ingress", "tcp", "2/2"), inner="drop"),
            ],
        )
    )
    assert rules_of(text, "in_eni_a") == ["tcp dport 1 accept", "drop"]
    assert rules_of(text, "in_eni_b") == ["tcp dport 2 accept", "drop"]


# ---- defaults ---------------------------------------------------------------------------------


def test_inner_access_accept_normal_vs_drop_enterprise() -> None:
    text = render(
        make_vpc(
            [
                port("eni-a", "192.168.1.10", "sg-n"),
                port("eni-b", "192.168.1.11", "sg-n", "sg-e"),
                port("eni-c", "192.168.1.12", "sg-e"),
            ],
            [
                sg("sg-n", rule("ingress", "tcp", "22/22"), kind="normal", inner="accept"),
                sg("sg-e", kind="enterprise", inner="drop"),
            ],
        )
    )
    # rules first, then the inner-access accept, then the default drop
    assert rules_of(text, "in_eni_a") == ["tcp dport 22 accept", "ip saddr @grp_sg_n accept", "drop"]
    assert rules_of(text, "in_eni_b") == ["tcp dport 22 accept", "ip saddr @grp_sg_n accept", "drop"]
    assert rules_of(text, "in_eni_c") == ["drop"]  # enterprise: members do not reach each other
    assert "elements = { 192.168.1.10, 192.168.1.11 }" in text
    assert "grp_sg_e" not in text


def test_egress_default_accept_and_dispatch() -> None:
    text = render(
        make_vpc(
            [port("eni-a", "192.168.1.10", "sg-out"), port("eni-b", "192.168.2.11", "sg-in", vsw=VSW2)],
            [
                sg("sg-out", rule("egress", "tcp", "25/25", policy="drop")),
                sg("sg-in", rule("ingress", "all")),
            ],
        )
    )
    forward = chain(text, "forward")
    assert forward[:5] == [
        "type filter hook forward priority filter; policy drop;",
        "ct state established,related accept",
        "ct state invalid drop",
        "meta nfproto ipv6 drop",
        "ip saddr vmap {",
    ]
    joined = "\n".join(forward)
    # only ports with egress rules have an egress chain; no match in it falls through (accept)
    assert "ip saddr vmap {\n192.168.1.10 : jump out_eni_a\n}" in joined
    assert "ip daddr vmap {\n192.168.1.10 : jump in_eni_a,\n192.168.2.11 : jump in_eni_b\n}" in joined
    assert joined.index("ip saddr vmap") < joined.index("ip daddr vmap")
    assert rules_of(text, "out_eni_a") == ["tcp dport 25 drop"]
    assert "out_eni_b" not in text


def test_no_ports_renders_no_empty_maps() -> None:
    text = render(make_vpc([], []))
    assert "vmap" not in text
    assert "type filter hook prerouting priority filter; policy drop;" in text
    assert "type filter hook forward priority filter; policy drop;" in text


# ---- anti-spoofing, router ----------------------------------------------------------------------


def test_anti_spoofing_per_port() -> None:
    tap = port("eni-t", "192.168.1.10", "sg-1", mac="00:16:3E:AA:BB:CC")
    veth = port("eni-v", "192.168.2.20", "sg-1", vsw=VSW2, kind="veth")
    text = render(make_vpc([tap, veth], [sg("sg-1")]))
    assert chain(text, "port_eni_t") == [
        "ether saddr != 00:16:3e:aa:bb:cc drop",
        "arp saddr ether != 00:16:3e:aa:bb:cc drop",
        "arp saddr ip != { 0.0.0.0, 192.168.1.10 } drop",
        "ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept",
        "ip saddr != 192.168.1.10 drop",
        "udp sport 67 drop",
        "ether type { ip, arp } accept",
        "drop",
    ]
    assert "ip saddr != 192.168.2.20 drop" in chain(text, "port_eni_v")
    prerouting = chain(text, "prerouting")
    assert prerouting == [
        "type filter hook prerouting priority filter; policy drop;",
        "iifname vmap {",
        f'"{names.tap_name("eni-t")}" : jump port_eni_t,',
        f'"{names.veth_name("eni-v")}" : jump port_eni_v',
        "}",
    ]
    assert text.index("table bridge nubes_guard {") < text.index("table inet nubes {")
    assert text.splitlines()[1] == "flush ruleset"


def secondary_vpc() -> VpcNet:
    """A port with two secondary addresses beside a plain one, in one group with inner access."""
    multi = PortNet(
        "eni-m",
        "vsw-1",
        "00:16:3e:00:00:0a",
        "192.168.1.10",
        ("sg-1",),
        secondary_ips=("192.168.1.30", "192.168.1.31"),
    )
    return make_vpc(
        [multi, port("eni-p", "192.168.1.20", "sg-1")], [sg("sg-1", rule("egress", "tcp", "25/25"))]
    )


def test_secondary_addresses_are_the_ports_own() -> None:
    text = render(secondary_vpc())
    guard = chain(text, "port_eni_m")
    # it may send from them and answer ARP for them, and no other address
    assert "arp saddr ip != { 0.0.0.0, 192.168.1.10, 192.168.1.30, 192.168.1.31 } drop" in guard
    [sources] = [line for line in guard if line.startswith("ip saddr != ")]
    assert sources == "ip saddr != { 192.168.1.10, 192.168.1.30/31 } drop"
    # a plain port keeps its one address
    assert "ip saddr != 192.168.1.20 drop" in chain(text, "port_eni_p")
    # traffic to a secondary address meets the port's ingress chain, from it its egress chain
    forward = chain(text, "forward")
    for address in ("192.168.1.10", "192.168.1.30", "192.168.1.31"):
        assert f"{address} : jump in_eni_m," in forward or f"{address} : jump in_eni_m" in forward
        assert any(line.startswith(f"{address} : jump out_eni_m") for line in forward)
    assert any(line.startswith("192.168.1.31 : jump in_eni_m") for line in chain(text, "output"))
    # they are members of the port's groups (inner access, peer-group rules)
    assert "\t\telements = { 192.168.1.10, 192.168.1.30, 192.168.1.31, 192.168.1.20 }\n" in text


def test_a_secondary_address_is_checked_like_a_primary_one() -> None:
    validate_vpc(secondary_vpc())
    outside = PortNet(
        "eni-a", "vsw-1", "00:16:3e:00:00:01", "192.168.1.10", (), secondary_ips=("192.168.2.5",)
    )
    twice = PortNet(
        "eni-b", "vsw-1", "00:16:3e:00:00:02", "192.168.1.11", (), secondary_ips=("192.168.1.10",)
    )
    for vpc in (make_vpc([outside], []), make_vpc([port("eni-a", "192.168.1.10"), twice], [])):
        with pytest.raises(ValueError):
            validate_vpc(vpc)


def test_router_input_chain() -> None:
    text = render(make_vpc([port("eni-a", "192.168.1.10", "sg-1")], [sg("sg-1")]))
    assert rules_of(text, "input") == [
        "type filter hook input priority filter; policy drop;",
        'iifname "lo" accept',
        "ct state established,related accept",
        "ct state invalid drop",
        "meta nfproto ipv6 drop",
        "udp sport 68 udp dport 67 accept",
        "ip daddr 100.100.100.200 tcp dport 80 accept",
        "ip daddr { 192.168.1.253, 192.168.2.253 } icmp type echo-request accept",
    ]
    output = rules_of(text, "output")
    assert output[:3] == [
        "type filter hook output priority filter; policy accept;",
        "ct state established,related accept",
        "udp sport 67 udp dport 68 accept",
    ]
    # connections the router itself opens meet the destination's ingress rules
    assert "ip daddr vmap {" in output and any("192.168.1.10 : jump" in line for line in output)


def test_naming_callables_are_used() -> None:
    text = render_ruleset(
        make_vpc(
            [port("eni-a", "192.168.1.10", "sg-1"), port("eni-b", "192.168.1.11", "sg-1", kind="veth")],
            [sg("sg-1")],
        ),
        tap_name=lambda p: "T-" + p,
        veth_name=lambda p: "V-" + p,
    )
    assert '"T-eni-a" : jump port_eni_a' in text and '"V-eni-b" : jump port_eni_b' in text


def test_rendering_is_deterministic_and_order_independent() -> None:
    ports = [port("eni-a", "192.168.1.10", "sg-1"), port("eni-b", "192.168.1.9", "sg-1")]
    groups = [sg("sg-1", rule("ingress", "tcp", "22/22"))]
    assert render(make_vpc(ports, groups)) == render(make_vpc(list(reversed(ports)), groups))


def test_validate_vpc() -> None:
    good = make_vpc([port("eni-a", "192.168.1.10", "sg-1")], [sg("sg-1")])
    validate_vpc(good)
    bad = [
        make_vpc([PortNet("eni-a", "vsw-x", "00:16:3e:00:00:01", "192.168.1.10", ())], []),
        make_vpc([PortNet("eni-a", "vsw-1", "00:16:3e:00:00:01", "192.168.9.10", ())], []),
        make_vpc([PortNet("eni-a", "vsw-1", "nonsense", "192.168.1.10", ())], []),
        make_vpc([PortNet("eni-a", "vsw-1", "00:16:3e:00:00:01", "192.168.1.10", (), kind="veth")], []),
        make_vpc([port("eni-a", "192.168.1.10"), port("eni-b", "192.168.1.10")], []),
    ]
    for vpc in bad:
        with pytest.raises(ValueError):
            validate_vpc(vpc)


# ---- the kernel accepts it ------------------------------------------------------------------------


def complex_vpc() -> VpcNet:
    groups = [
        sg(
            "sg-web",
            rule("ingress", "tcp", "80/80", rule_id="http"),
            rule("ingress", "tcp", "443/443", rule_id="https"),
            rule("ingress", "icmp", cidr="10.0.0.0/8", priority=5),
            rule("egress", "all", policy="drop", priority=100, cidr="192.168.200.0/24"),
            rule("egress", "tcp", "25/25", policy="drop", priority=1),
        ),
        sg(
            "sg-db",
            rule("ingress", "tcp", "5432/5432", group="sg-web"),
            rule("ingress", "udp", "1000/2000", group="sg-web"),
            rule("ingress", "all", policy="drop", priority=50),
            rule("ingress", "gre", group="sg-empty"),
            rule("egress", "all", group="sg-web", priority=2),
            kind="enterprise",
            inner="drop",
        ),
        sg(
            "sg-mgmt",
            rule("ingress", "tcp", "22/22", cidr="203.0.113.0/24"),
            rule("ingress", "all", group="sg-mgmt"),
            rule("egress", "udp", "-1/-1", policy="accept"),
        ),
        sg("sg-empty"),
    ]
    ports = []
    for i in range(40):
        vsw = VSW1 if i % 2 else VSW2
        base = "192.168.1." if i % 2 else "192.168.2."
        member = (
            ("sg-web", "sg-mgmt")
            if i % 3 == 0
            else ("sg-db",)
            if i % 3 == 1
            else ("sg-mgmt", "sg-db", "sg-web")
        )
        ports.append(
            port(f"eni-{i:03d}", f"{base}{10 + i}", *member, vsw=vsw, kind="veth" if i % 4 == 0 else "tap")
        )
    return make_vpc(ports, groups)


def _nft_available() -> None:
    reason = None
    if os.geteuid() != 0:
        reason = "nft -c needs root"
    elif not shutil.which("nft") or not shutil.which("unshare"):
        reason = "nft/unshare not installed"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def nft_load(text: str, then: str) -> subprocess.CompletedProcess[str]:
    """Load a ruleset in a throwaway network namespace, then run `then` there."""
    return subprocess.run(
        ["unshare", "--net", "sh", "-c", f"nft -f - && {then}"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    "vpc",
    [complex_vpc(), make_vpc([], []), make_vpc([port("eni-a", "192.168.1.10", "sg-x")], []), secondary_vpc()],
    ids=["complex", "empty", "unknown-group", "secondary-addresses"],
)
def test_nft_accepts_the_rendered_ruleset(vpc: VpcNet) -> None:
    """`nft -c` (check only) in a throwaway network namespace."""
    _nft_available()
    text = render(vpc)
    proc = subprocess.run(
        ["unshare", "--net", "nft", "-c", "-f", "-"], input=text, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    # and it really loads (still in a throwaway namespace), with every chain present
    proc = nft_load(text, "nft list chains")
    assert proc.returncode == 0, proc.stderr
    for p in vpc.ports:
        assert f"chain in_{p.port_id.replace('-', '_')}" in proc.stdout
