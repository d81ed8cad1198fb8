"""The policy routing of custom route tables, rendered (routing.py is pure)."""

from __future__ import annotations

import dataclasses

from nubes.drivers.network import routing
from nubes.drivers.network.base import RouteNet, VpcNet, VSwitchNet


def vswitch(vswitch_id: str, cidr: str, gateway: str) -> VSwitchNet:
    return VSwitchNet(vswitch_id, cidr, gateway)


def vpc(vpc_id: str, cidr: str, vswitches: list[VSwitchNet], *_: object) -> VpcNet:
    return VpcNet(vpc_id, cidr, tuple(vswitches))


def test_plan_of_two_tables() -> None:
    """Pure: one kernel table per route table, a rule per source vSwitch, throws for the system routes."""
    vsws = [vswitch("vsw-a", "10.6.1.0/24", "10.6.1.253"), vswitch("vsw-b", "10.6.2.0/24", "10.6.2.253")]
    routes = (
        RouteNet("vtb-b", "0.0.0.0/0", "eni-x", "10.6.2.5", ("10.6.1.0/24",)),
        RouteNet("vtb-a", "172.16.0.0/12", "eni-y", "10.6.1.5", ("10.6.2.0/24",)),
        RouteNet("vtb-c", "172.16.0.0/12", "eni-y", "10.6.1.5", ()),  # a table no vSwitch uses
    )
    plan = routing.plan(dataclasses.replace(vpc("vpc-p", "10.6.0.0/16", vsws, [], []), routes=routes))
    assert plan.rules == (
        routing.Rule(10000, "10.6.2.0/24", 1000),
        routing.Rule(10001, "10.6.1.0/24", 1001),
    )
    assert plan.routes == (
        routing.Route(1000, "10.6.1.0/24", ""),
        routing.Route(1000, "10.6.2.0/24", ""),
        routing.Route(1000, "172.16.0.0/12", "10.6.1.5"),
        routing.Route(1001, "0.0.0.0/0", "10.6.2.5"),
        routing.Route(1001, "10.6.1.0/24", ""),
        routing.Route(1001, "10.6.2.0/24", ""),
    )
    assert routing.commands(plan, plan) == []
    assert routing.commands(routing.Plan((), ()), routing.Plan((), ())) == []


def test_parse_reads_back_what_commands_write() -> None:
    """`ip -j` output of the rules and routes is read back as the plan it came from."""
    rules = [
        {"priority": 0, "src": "all", "table": "local"},
        {"priority": 10000, "src": "10.6.1.0", "srclen": 24, "table": "1000"},
        {"priority": 32766, "src": "all", "table": "main"},
    ]
    routes = [
        {"dst": "default", "gateway": "10.6.2.5", "dev": "nbr1", "table": "1000", "flags": []},
        {"type": "throw", "dst": "10.6.1.0/24", "table": "1000", "flags": []},
        {"dst": "10.6.1.0/24", "dev": "nbr1", "protocol": "kernel", "flags": []},  # main
    ]
    assert routing.parse(rules, routes) == routing.Plan(
        (routing.Rule(10000, "10.6.1.0/24", 1000),),
        (routing.Route(1000, "0.0.0.0/0", "10.6.2.5"), routing.Route(1000, "10.6.1.0/24", "")),
    )
    wanted = routing.Plan((routing.Rule(10000, "10.6.2.0/24", 1000),), ())
    assert routing.commands(routing.parse(rules, routes), wanted) == [
        "rule del pref 10000",
        "route flush table 1000",
        "rule add pref 10000 from 10.6.2.0/24 lookup 1000",
    ]
