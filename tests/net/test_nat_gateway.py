"""NAT gateways on real namespaces: SNAT entries take a vSwitch out through the gateway's EIP,
forward entries bring ports in, security groups still decide, and nothing else crosses.

The internet is the `inet` namespace of conftest (198.18.0.1 on the uplink's other end)."""

from __future__ import annotations

import dataclasses
import socket

import pytest

from nubes.drivers.network.base import DnatRule, PublicMapping, SnatRule, VpcNet
from nubes.drivers.network.proc import ip

from .conftest import (
    GATEWAY,
    RANGE,
    NetEnv,
    check_reach,
    icmp_probe,
    pending_peers,
    public_host_view,
    tcp_probe,
)
from .test_public_nat import mapping, web_vpc

pytestmark = pytest.mark.net

NAT_IP, NAT_IP_2 = "198.18.0.30", "198.18.0.31"


def nat_address(address_id: str, public_ip: str, answers_ping: bool = False) -> PublicMapping:
    return PublicMapping(address_id, public_ip, "", RANGE, GATEWAY, 0, 0, answers_ping)


def with_gateway(
    base: VpcNet, *addresses: PublicMapping, snat: tuple[SnatRule, ...] = (), dnat: tuple[DnatRule, ...] = ()
) -> VpcNet:
    return dataclasses.replace(base, public=base.public + addresses, snat=snat, dnat=dnat)


def test_snat_takes_a_vswitch_out_by_the_gateway_eip_and_an_own_eip_comes_first(
    net: NetEnv, inet: str
) -> None:
    before = public_host_view()
    base = web_vpc(net, "vpc-1", "10.60.0.0/16")
    snat = (SnatRule("snat-1", ("10.60.0.0/24",), (NAT_IP,)),)
    net.driver.sync([with_gateway(base, nat_address("eip-n1", NAT_IP, answers_ping=True), snat=snat)])
    assert public_host_view() == before
    A, B = net.host("eni-vpc-1-a"), net.host("eni-vpc-1-b")
    outside = net.tcp_listen(inet, 8080)
    net.tcp_listen(A, 80)
    check_reach(
        {
            ("tcp", A, GATEWAY, 8080): True,
            ("tcp", B, GATEWAY, 8080): True,
            ("tcp", inet, NAT_IP, 80): False,  # SNAT lets nothing in
            ("tcp", inet, NAT_IP, 8080): False,
        }
    )
    assert pending_peers(outside) == {NAT_IP}  # the internet sees the gateway's EIP
    assert icmp_probe(inet, NAT_IP) == "open"  # IcmpReplyEnabled

    # a gets its own EIP: it goes out by it, b still by the gateway; the gateway stops answering ping
    net.driver.sync_vpc(
        with_gateway(
            dataclasses.replace(base, public=(mapping("eip-1", "198.18.0.10", "10.60.0.10"),)),
            nat_address("eip-n1", NAT_IP),
            snat=snat,
        )
    )
    assert probe_peer(A, outside) == "198.18.0.10"
    assert probe_peer(B, outside) == NAT_IP
    assert icmp_probe(inet, NAT_IP) != "open"

    # the SNAT entry goes: b has no way out any more, the host namespace is as it was
    net.driver.sync_vpc(with_gateway(base, nat_address("eip-n1", NAT_IP)))
    check_reach({("tcp", B, GATEWAY, 8080): False})
    net.driver.sync_vpc(base)
    assert public_host_view() == before


def probe_peer(source: str, listener: socket.socket) -> str:
    """The address the internet's listener sees for one connection from `source`."""
    assert tcp_probe(source, GATEWAY, 8080) == "open"
    [peer] = pending_peers(listener)
    return peer


def test_forward_entries_bring_ports_in_and_security_groups_still_decide(net: NetEnv, inet: str) -> None:
    base = web_vpc(net, "vpc-1", "10.60.0.0/16")  # the group opens tcp 80 only
    net.driver.sync(
        [
            with_gateway(
                base,
                nat_address("eip-n1", NAT_IP),
                nat_address("eip-n2", NAT_IP_2),
                dnat=(
                    DnatRule("fwd-1", "tcp", NAT_IP, "8080", "10.60.0.10", "80"),
                    DnatRule("fwd-2", "tcp", NAT_IP, "2222", "10.60.0.10", "22"),
                    DnatRule("fwd-3", "tcp", NAT_IP, "9000-9001", "10.60.0.11", "80-81"),
                    DnatRule("fwd-4", "any", NAT_IP_2, "", "10.60.0.11", ""),
                ),
            )
        ]
    )
    A, B = net.host("eni-vpc-1-a"), net.host("eni-vpc-1-b")
    web = net.tcp_listen(A, 80)
    net.tcp_listen(A, 22)
    net.tcp_listen(B, 80)
    net.tcp_listen(B, 81)
    check_reach(
        {
            ("tcp", inet, NAT_IP, 8080): True,
            ("tcp", inet, NAT_IP, 2222): False,  # forwarded to 22, which a's group does not open
            ("tcp", inet, NAT_IP, 9000): True,  # -> b:80
            ("tcp", inet, NAT_IP, 9001): False,  # -> b:81, closed by the group
            ("tcp", inet, NAT_IP, 80): False,  # no entry for it
            ("tcp", inet, NAT_IP_2, 80): True,  # protocol any: every port to b
            ("tcp", inet, NAT_IP_2, 81): False,
            ("tcp", inet, "10.60.0.10", 80): False,
            ("tcp", A, GATEWAY, 8080): False,  # forward entries give no way out
        }
    )
    assert pending_peers(web) == {GATEWAY}  # the guest sees the client's real address


def test_two_vpcs_never_meet_through_a_gateway(net: NetEnv, inet: str) -> None:
    one = with_gateway(
        web_vpc(net, "vpc-1", "10.60.0.0/16"),
        nat_address("eip-n1", NAT_IP),
        snat=(SnatRule("snat-1", ("10.60.0.0/24",), (NAT_IP,)),),
    )
    two = with_gateway(
        web_vpc(net, "vpc-2", "10.61.0.0/16"),
        nat_address("eip-n2", NAT_IP_2),
        dnat=(DnatRule("fwd-1", "tcp", NAT_IP_2, "80", "10.61.0.10", "80"),),
    )
    net.driver.sync([one, two])
    ip_route_to_private(inet)
    A1 = net.host("eni-vpc-1-a")
    web2 = net.tcp_listen(net.host("eni-vpc-2-a"), 80)
    check_reach(
        {
            ("tcp", A1, NAT_IP_2, 80): True,  # public to public, as over the internet
            ("tcp", A1, "10.61.0.10", 80): False,
        }
    )
    assert pending_peers(web2) == {NAT_IP}


def ip_route_to_private(inet: str) -> None:
    """The worst neighbour: the internet routes each VPC's private block to its gateway's EIP."""
    ip("route", "add", "10.60.0.0/16", "via", NAT_IP, netns=inet)
    ip("route", "add", "10.61.0.0/16", "via", NAT_IP_2, netns=inet)


def test_ports_reach_each_other_by_public_addresses_hairpin(net: NetEnv, inet: str) -> None:
    base = web_vpc(net, "vpc-1", "10.60.0.0/16", mapping("eip-1", "198.18.0.10", "10.60.0.10"))
    forward = DnatRule("fwd-1", "tcp", NAT_IP, "8080", "10.60.0.10", "80")
    net.driver.sync([with_gateway(base, nat_address("eip-n1", NAT_IP), dnat=(forward,))])
    A, B = net.host("eni-vpc-1-a"), net.host("eni-vpc-1-b")
    web = net.tcp_listen(A, 80)
    check_reach(
        {
            ("tcp", B, "198.18.0.10", 80): True,  # b reaches a by a's EIP
            ("tcp", B, NAT_IP, 8080): True,  # and by the gateway's forward entry
            ("tcp", B, NAT_IP, 80): False,  # what no entry forwards stays closed
        }
    )
    # b has no public address and no SNAT entry: a sees the router's address on its vSwitch
    assert pending_peers(web) == {"10.60.0.253"}

    # with an SNAT entry for b's vSwitch, a sees the gateway's address, as from the internet
    net.driver.sync_vpc(
        with_gateway(
            base,
            nat_address("eip-n1", NAT_IP),
            snat=(SnatRule("snat-1", ("10.60.0.0/24",), (NAT_IP,)),),
            dnat=(forward,),
        )
    )
    check_reach({("tcp", B, "198.18.0.10", 80): True})
    assert pending_peers(web) == {NAT_IP}
