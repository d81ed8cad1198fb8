"""Custom route entries in the VPC namespace: a route whose next hop is an appliance port sends
the traffic of the vSwitches that use its table through the appliance, and no one else's."""

from __future__ import annotations

import dataclasses

import pytest

from nubes.drivers.network import routing
from nubes.drivers.network.base import RouteNet
from nubes.drivers.network.proc import ip_json, run

from .conftest import NetEnv, check_reach, group, rule, vpc, vswitch

pytestmark = pytest.mark.net

SERVICE = "192.168.99.1"  # an address only the appliance holds (as a VPN or firewall would)


def test_route_entry_sends_a_vswitchs_traffic_through_the_appliance(net: NetEnv) -> None:
    routed = vswitch("vsw-r", "10.5.1.0/24")  # uses the custom table
    plain = vswitch("vsw-p", "10.5.2.0/24")  # uses the system table
    open_group = group("sg-open", rule("ingress", "all", "-1/-1", cidr="0.0.0.0/0"))
    client = net.port("eni-client", routed, "10.5.1.10", "sg-open")
    other = net.port("eni-other", plain, "10.5.2.10", "sg-open")
    appliance = net.port("eni-appliance", plain, "10.5.2.20", "sg-open")
    base = vpc("vpc-r", "10.5.0.0/16", [routed, plain], [client, other, appliance], [open_group])
    net.driver.sync([base])
    run(["ip", "netns", "exec", net.host("eni-appliance"), "ip", "addr", "add", f"{SERVICE}/32", "dev", "lo"])
    net.tcp_listeners([net.host("eni-appliance")], [8080])
    client_ns, other_ns = net.host("eni-client"), net.host("eni-other")
    # without the route nothing leads to the service address
    check_reach({("tcp", client_ns, SERVICE, 8080): False, ("tcp", client_ns, "10.5.2.20", 8080): True})

    route = RouteNet("vtb-custom", "192.168.99.0/24", "eni-appliance", "10.5.2.20", ("10.5.1.0/24",))
    with_route = dataclasses.replace(base, routes=(route,))
    net.driver.sync([with_route])
    check_reach(
        {
            ("tcp", client_ns, SERVICE, 8080): True,  # through the appliance, both ways
            ("tcp", other_ns, SERVICE, 8080): False,  # its vSwitch uses the system table
            ("tcp", client_ns, "10.5.2.10", 8080): False,  # (nothing listens there: refused, not routed away)
            ("icmp", client_ns, "10.5.2.10", 0): True,  # the vSwitches still reach each other directly
        }
    )
    ns = net.driver.netns_name("vpc-r")
    rules = [r for r in ip_json("rule", "show", netns=ns) if r.get("priority") == routing.RULE_PREF_BASE]
    assert [(r["src"], r["srclen"], r["table"]) for r in rules] == [("10.5.1.0", 24, str(routing.TABLE_BASE))]
    # syncing again changes nothing; removing the route removes its rule and table
    assert (
        routing.commands(
            routing.parse(
                ip_json("rule", "show", netns=ns), ip_json("route", "show", "table", "all", netns=ns)
            ),
            routing.plan(with_route),
        )
        == []
    )
    net.driver.sync([base])
    assert not [r for r in ip_json("rule", "show", netns=ns) if r.get("priority") == routing.RULE_PREF_BASE]
    check_reach({("tcp", client_ns, SERVICE, 8080): False})
