"""Public addresses in the pure renderer (1:1 NAT and the uplink's filtering), and the desired
state the network agent derives from the store's EIP rows (on the fake driver)."""

from __future__ import annotations

import dataclasses

import pytest

from nubes.agent.vpcnet import desired_vpcs
from nubes.domain.common import Scope
from nubes.domain.eips import EipRequest
from nubes.domain.public_addresses import ECS_INSTANCE, configure_pools
from nubes.drivers.network import names
from nubes.drivers.network.base import PublicMapping, VpcNet
from nubes.drivers.network.fake import FakeNetworkDriver
from nubes.drivers.network.nft import NAT_TABLE, render_ruleset, validate_vpc
from nubes.drivers.network.shaping import render_tc

from .host_world import HostWorld
from .test_nft_render import _nft_available, make_vpc, nft_load, port, rule, rules_of, sg

LEG = names.public_device("vpc-1")


def public(address_id: str, public_ip: str, private_ip: str, gateway: str = "198.18.0.1") -> PublicMapping:
    return PublicMapping(address_id, public_ip, private_ip, "198.18.0.0/24", gateway, 5, 10)


def web(*mappings: PublicMapping) -> VpcNet:
    ports = [port("eni-a", "192.168.1.10", "sg-1"), port("eni-b", "192.168.1.11", "sg-1")]
    vpc = make_vpc(ports, [sg("sg-1", rule("ingress", "tcp", "80/80"))])
    return dataclasses.replace(vpc, public=mappings)


def nat_rules(text: str) -> list[str]:
    """The NAT rules of the nat table (the last table of the script), comments cut."""
    _, _, nat = text.partition(f"table ip {NAT_TABLE} {{")
    return [line.strip().split(" comment ")[0] for line in nat.splitlines() if "nat to " in line]


def test_nat_rules_map_each_public_address_both_ways_on_the_leg() -> None:
    text = render_ruleset(
        web(public("eip-2", "198.18.0.20", "192.168.1.11"), public("eip-1", "198.18.0.9", "192.168.1.10"))
    )
    assert nat_rules(text) == [
        "ip daddr 198.18.0.9 dnat to 192.168.1.10",  # from the uplink, and from the VPC (hairpin)
        "ip daddr 198.18.0.20 dnat to 192.168.1.11",
        f'oifname "{LEG}" ip saddr 192.168.1.10 snat to 198.18.0.9',
        f'oifname "{LEG}" ip saddr 192.168.1.11 snat to 198.18.0.20',
        f'oifname != "{LEG}" ct status dnat ip saddr 192.168.1.10 snat to 198.18.0.9',
        f'oifname != "{LEG}" ct status dnat ip saddr 192.168.1.11 snat to 198.18.0.20',
    ]
    forward = rules_of(text, "forward")
    assert forward[forward.index("meta nfproto ipv6 drop") + 1 :][:3] == [
        f'iifname "{LEG}" ct status & dnat == 0 drop',
        f'oifname "{LEG}" ip saddr != {{ 192.168.1.10, 192.168.1.11 }} drop',
        f'oifname "{LEG}" ip daddr 192.168.0.0/16 drop',
    ]
    # outbound is accepted after the egress and ingress dispatch, so security groups still run first
    assert forward[-1] == f'oifname "{LEG}" accept'
    assert forward.index(f'oifname "{LEG}" accept') > next(
        i for i, r in enumerate(forward) if "daddr vmap" in r
    )
    assert f'iifname "{LEG}" drop' in rules_of(text, "input")


def test_one_mapping_uses_a_plain_address_and_no_mapping_renders_nothing_public() -> None:
    text = render_ruleset(web(public("eip-1", "198.18.0.9", "192.168.1.10")))
    assert f'oifname "{LEG}" ip saddr != 192.168.1.10 drop' in rules_of(text, "forward")
    plain = render_ruleset(web())
    assert NAT_TABLE not in plain and LEG not in plain
    assert plain == render_ruleset(make_vpc(list(web().ports), list(web().security_groups)))


@pytest.mark.parametrize(
    ("mapping", "error"),
    [
        (public("eip-1", "198.19.0.9", "192.168.1.10"), "outside"),
        (public("eip-1", "198.18.0.9", "192.168.1.10", gateway="10.0.0.1"), "gateway"),
        (public("eip-1", "198.18.0.9", "192.168.1.99"), "no port"),
    ],
)
def test_invalid_mappings_are_rejected(mapping: PublicMapping, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        validate_vpc(web(mapping))


def test_an_address_or_a_port_mapped_twice_is_rejected() -> None:
    with pytest.raises(ValueError, match="mapped twice"):
        validate_vpc(
            web(public("eip-1", "198.18.0.9", "192.168.1.10"), public("eip-2", "198.18.0.9", "192.168.1.11"))
        )
    with pytest.raises(ValueError, match="two public"):
        validate_vpc(
            web(public("eip-1", "198.18.0.9", "192.168.1.10"), public("eip-2", "198.18.0.8", "192.168.1.10"))
        )


def test_nft_loads_the_ruleset_with_public_addresses() -> None:
    _nft_available()
    text = render_ruleset(
        web(public("eip-1", "198.18.0.9", "192.168.1.10"), public("eip-2", "198.18.0.8", "192.168.1.11"))
    )
    proc = nft_load(text, f"nft list table ip {NAT_TABLE}")
    assert proc.returncode == 0, proc.stderr
    assert "dnat to 192.168.1.10" in proc.stdout and "snat to 198.18.0.9" in proc.stdout


def test_tc_shapes_each_address_out_on_the_leg_and_in_on_the_ifb() -> None:
    lines = render_tc(
        (
            PublicMapping("eip-2", "198.18.0.20", "192.168.1.11", "198.18.0.0/24", "", 50, 0),
            PublicMapping("eip-1", "198.18.0.9", "192.168.1.10", "198.18.0.0/24", "", 5, 10),
        ),
        "leg",
        "ifb",
    )
    assert [line for line in lines if line.startswith("class")] == [
        "class add dev leg parent 1: classid 1:10 htb rate 5mbit ceil 5mbit",
        "class add dev leg parent 1: classid 1:11 htb rate 50mbit ceil 50mbit",
        "class add dev ifb parent 1: classid 1:10 htb rate 10mbit ceil 10mbit",  # .20 has no inbound limit
    ]
    filters = [line.split(" prio 1 ")[1] for line in lines if line.startswith("filter")]
    assert filters == [
        "u32 match ip src 198.18.0.9/32 flowid 1:10",  # after SNAT: the public address
        "u32 match ip src 198.18.0.20/32 flowid 1:11",
        "u32 match u32 0 0 action mirred egress redirect dev ifb",
        "u32 match ip dst 198.18.0.9/32 flowid 1:10",  # before DNAT: the public address
    ]
    assert lines[0] == "qdisc add dev leg root handle 1: htb r2q 100"
    assert (
        render_tc(
            (PublicMapping("eip-1", "198.18.0.9", "192.168.1.10", "198.18.0.0/24", "", 0, 0),), "l", "i"
        )
        == []
    )


# ---- the desired state from the store --------------------------------------------------------


def test_an_associated_eip_becomes_a_mapping_of_its_vpc_and_goes_with_unassociate(world: HostWorld) -> None:
    configure_pools(world.db, world.clock, ["198.18.0.0/24"], "198.18.0.1")
    instance_id = world.launch()
    world.reach(instance_id, "Running")
    scope: Scope = world.scope
    eips = world.services.eips
    eip = eips.allocate(scope, EipRequest(bandwidth=7))
    [vpc] = desired_vpcs(world.db, "nubes")
    assert vpc.public == ()  # allocated, not associated: nothing to map
    eips.associate(scope, eip.id, ECS_INSTANCE, instance_id, None)
    [vpc] = desired_vpcs(world.db, "nubes")
    [eni] = vpc.ports
    assert vpc.public == (
        PublicMapping(eip.id, eip.ip_address, eni.ip, "198.18.0.0/24", "198.18.0.1", 7, 10),
    )
    validate_vpc(vpc)
    # the agent hands it to the driver, which records it
    driver = FakeNetworkDriver()
    driver.sync([vpc])
    assert driver.public_mappings(vpc.vpc_id) == vpc.public
    assert f"dnat to {eni.ip}" in (driver.ruleset(vpc.vpc_id) or "")
    eips.modify(scope, eip.id, 20, None, None)
    [vpc] = desired_vpcs(world.db, "nubes")
    assert (vpc.public[0].bandwidth_out, vpc.public[0].bandwidth_in) == (20, 20)
    eips.unassociate(scope, eip.id, None, None, None, False)
    [vpc] = desired_vpcs(world.db, "nubes")
    assert vpc.public == ()
