"""Secondary private addresses of a port against the real kernel: the port may send from an
address assigned to it and is reached on it (ARP and security groups included); an address it
merely configures, not assigned to it, is dropped both ways; unassigning one takes effect at once."""

from __future__ import annotations

import dataclasses

import pytest

from nubes.drivers.network.proc import run

from .conftest import NetEnv, group, rule, tcp_probe, vpc, vswitch

pytestmark = pytest.mark.net


def test_secondary_address_is_allowed_and_reachable_an_unassigned_one_is_dropped(net: NetEnv) -> None:
    vsw = vswitch("vsw-s", "10.7.0.0/24")
    web = group("sg-web", rule("ingress", "tcp", "80/80"), inner="drop")
    a = dataclasses.replace(net.port("eni-a", vsw, "10.7.0.10", "sg-web"), secondary_ips=("10.7.0.30",))
    b = net.port("eni-b", vsw, "10.7.0.11", "sg-web")
    desired = vpc("vpc-s", "10.7.0.0/16", [vsw], [a, b], [web])
    net.driver.sync([desired])
    A, B = net.host("eni-a"), net.host("eni-b")
    # the guest configures its secondary address itself (as on ECS), and one it was not given
    for address in ("10.7.0.30", "10.7.0.31"):
        run(["ip", "-n", A, "addr", "add", f"{address}/32", "dev", "eth0"])
    net.tcp_listen(A, 80)
    net.tcp_listen(B, 80)

    assert tcp_probe(B, "10.7.0.10", 80) == "open"
    assert tcp_probe(B, "10.7.0.30", 80) == "open"  # inbound to the secondary address
    assert tcp_probe(B, "10.7.0.31", 80) != "open"  # ARP for it is never answered through the guard
    assert tcp_probe(A, "10.7.0.11", 80, source="10.7.0.30") == "open"  # outbound from it
    assert tcp_probe(A, "10.7.0.11", 80, source="10.7.0.31") != "open"  # spoofed: dropped at the bridge
    assert tcp_probe(B, "10.7.0.30", 81) != "open"  # the port's security groups apply to it too

    # unassigned: no longer the port's, at once for new connections
    net.driver.sync([dataclasses.replace(desired, ports=(dataclasses.replace(a, secondary_ips=()), b))])
    assert tcp_probe(A, "10.7.0.11", 80, source="10.7.0.30") != "open"
    assert tcp_probe(B, "10.7.0.10", 80) == "open"
