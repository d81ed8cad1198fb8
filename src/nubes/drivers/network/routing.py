"""Custom route tables in a VPC namespace, by policy routing. Pure.

Each route table that has routes gets a kernel routing table (`TABLE_BASE` + its rank among
the VPC's tables, by ID) holding its routes (`<destination> via <next hop>`) and a `throw` for
each vSwitch CIDR block (the system routes between vSwitches win, and what the table does not
route falls through to `main`); one rule per source vSwitch CIDR block (`from <cidr> lookup
<table>`, preferences from `RULE_PREF_BASE`) sends the traffic of the vSwitches that use the
table through it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network

from nubes.drivers.network.base import VpcNet

TABLE_BASE = 1000
RULE_PREF_BASE = 10000
RULE_PREF_END = 19999


@dataclass(frozen=True, order=True)
class Rule:
    pref: int
    source: str  # a CIDR block
    table: int


@dataclass(frozen=True, order=True)
class Route:
    table: int
    destination: str  # a CIDR block
    via: str  # the next hop's address; "" : a throw route


@dataclass(frozen=True)
class Plan:
    rules: tuple[Rule, ...]
    routes: tuple[Route, ...]


def plan(vpc: VpcNet) -> Plan:
    """The rules and routes the VPC's custom routes need (none: nothing at all)."""
    table_ids = sorted({r.route_table_id for r in vpc.routes if r.sources})
    numbers = {table_id: TABLE_BASE + rank for rank, table_id in enumerate(table_ids)}
    throws = sorted({str(IPv4Network(v.cidr)) for v in vpc.vswitches})
    rules: set[Rule] = set()
    routes: set[Route] = set()
    for route in vpc.routes:
        if not route.sources:
            continue
        table = numbers[route.route_table_id]
        routes.add(Route(table, str(IPv4Network(route.destination)), route.next_hop_ip))
        routes.update(Route(table, cidr, "") for cidr in throws)
        rules.update(Rule(0, str(IPv4Network(source)), table) for source in route.sources)
    ordered = sorted(rules, key=lambda r: (r.table, r.source))
    return Plan(
        tuple(Rule(RULE_PREF_BASE + i, r.source, r.table) for i, r in enumerate(ordered)),
        tuple(sorted(routes)),
    )


def commands(actual: Plan, desired: Plan) -> list[str]:
    """`ip -batch` lines that turn the actual rules and tables into the desired ones (none when
    they are already so)."""
    if actual == desired:
        return []
    out = [f"rule del pref {r.pref}" for r in actual.rules]
    out += [f"route flush table {t}" for t in sorted({r.table for r in actual.routes})]
    for route in desired.routes:
        if route.via:
            out.append(f"route replace {route.destination} via {route.via} table {route.table}")
        else:
            out.append(f"route replace throw {route.destination} table {route.table}")
    out += [f"rule add pref {r.pref} from {r.source} lookup {r.table}" for r in desired.rules]
    return out


def parse(rules_json: Sequence[Mapping[str, object]], routes_json: Sequence[Mapping[str, object]]) -> Plan:
    """The nubes rules and tables found in the namespace (`ip -j rule show`, `ip -j route show
    table all`)."""
    rules = []
    for r in rules_json:
        pref = int(str(r.get("priority", -1)))
        if RULE_PREF_BASE <= pref <= RULE_PREF_END and "src" in r:
            source = f"{r['src']}/{r.get('srclen', 32)}"
            rules.append(Rule(pref, str(IPv4Network(source)), int(str(r.get("table", 0)))))
    routes = []
    for r in routes_json:
        table = str(r.get("table", ""))
        if not table.isdigit() or not TABLE_BASE <= int(table) < RULE_PREF_BASE:
            continue
        dst = str(r.get("dst", ""))
        destination = "0.0.0.0/0" if dst == "default" else str(IPv4Network(dst))
        via = "" if r.get("type") == "throw" else str(r.get("gateway", ""))
        routes.append(Route(int(table), destination, via))
    return Plan(tuple(sorted(rules)), tuple(sorted(routes)))
