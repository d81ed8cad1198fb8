"""NAT gateways in the pure renderer (SNAT and forward entries on the uplink leg), and the desired
state the network agent derives from NAT gateway rows in the store."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select

from nubes.agent.vpcnet import desired_vpcs, dnat_rule
from nubes.domain.public_addresses import NAT_GATEWAY, configure_pools
from nubes.drivers.network import names
from nubes.drivers.network.base import DnatRule, PublicMapping, SnatRule, VpcNet
from nubes.drivers.network.nft import NAT_TABLE, render_ruleset, validate_vpc
from nubes.store.models import ForwardEntry, NatGateway, NetworkInterface, PublicAddress, SnatEntry

from .host_world import HostWorld
from .test_nft_render import _nft_available, nft_load, rules_of
from .test_public_nat_render import nat_rules, public, web

LEG = names.public_device("vpc-1")


def nat_address(address_id: str, public_ip: str, answers_ping: bool = False) -> PublicMapping:
    return PublicMapping(address_id, public_ip, "", "198.18.0.0/24", "198.18.0.1", 5, 10, answers_ping)


def gateway_vpc(
    *mappings: PublicMapping, snat: tuple[SnatRule, ...] = (), dnat: tuple[DnatRule, ...] = ()
) -> VpcNet:
    return dataclasses.replace(web(*mappings), snat=snat, dnat=dnat)


def chain_rules(text: str, chain: str) -> list[str]:
    """The rules of a chain of the NAT table, comments cut."""
    _, _, nat = text.partition(f"table ip {NAT_TABLE} {{")
    body = nat.split(f"chain {chain} {{", 1)[1].split("\n\t}", 1)[0]
    return [line.strip().split(" comment ")[0] for line in body.splitlines()[1:] if line.strip()]


def test_snat_entries_come_after_own_addresses_most_specific_source_first() -> None:
    text = render_ruleset(
        gateway_vpc(
            public("eip-1", "198.18.0.9", "192.168.1.10"),
            nat_address("eip-n1", "198.18.0.30"),
            nat_address("eip-n2", "198.18.0.31"),
            snat=(
                SnatRule("snat-wide", ("192.168.0.0/16",), ("198.18.0.31", "198.18.0.30")),
                SnatRule("snat-vsw", ("192.168.1.0/24",), ("198.18.0.30",)),
            ),
        )
    )
    assert [r for r in nat_rules(text) if r.startswith(f'oifname "{LEG}"')] == [
        f'oifname "{LEG}" ip saddr 192.168.1.10 snat to 198.18.0.9',  # its own EIP first
        f'oifname "{LEG}" ip saddr 192.168.1.0/24 snat to 198.18.0.30',
        (
            f'oifname "{LEG}" ip saddr 192.168.0.0/16 snat to jhash ip saddr mod 2 map '
            "{ 0 : 198.18.0.30, 1 : 198.18.0.31 }"
        ),
    ]
    # hairpin: the same translation for what was DNAT-ed inside the VPC, the router's address last
    hairpin = f'oifname != "{LEG}" ct status dnat'
    first_hairpin = next(r for r in nat_rules(text) if r.startswith(hairpin))
    assert first_hairpin == f"{hairpin} ip saddr 192.168.1.10 snat to 198.18.0.9"
    assert f"{hairpin} ip saddr 192.168.0.0/16 masquerade" in chain_rules(text, "postrouting")
    # what may leave by the leg: the mapped port and the SNAT sources (the port is inside them)
    assert f'oifname "{LEG}" ip saddr != 192.168.0.0/16 drop' in rules_of(text, "forward")


def test_forward_entries_keep_shift_or_map_ports() -> None:
    text = render_ruleset(
        gateway_vpc(
            nat_address("eip-n1", "198.18.0.30"),
            nat_address("eip-n2", "198.18.0.31"),
            dnat=(
                DnatRule("fwd-1", "tcp", "198.18.0.30", "80", "192.168.1.10", "8080"),
                DnatRule("fwd-2", "udp", "198.18.0.30", "5000-5002", "192.168.1.11", "5000-5002"),
                DnatRule("fwd-3", "tcp", "198.18.0.30", "1000-1001", "192.168.1.11", "2000-2001"),
                DnatRule("fwd-4", "any", "198.18.0.31", "", "192.168.1.11", ""),
            ),
        )
    )
    assert [r for r in nat_rules(text) if "dnat" in r] == [
        "ip daddr 198.18.0.30 tcp dport 80 dnat to 192.168.1.10:8080",
        (
            "ip daddr 198.18.0.30 tcp dport 1000-1001 dnat to 192.168.1.11 : "
            "tcp dport map { 1000 : 2000, 1001 : 2001 }"
        ),
        "ip daddr 198.18.0.30 udp dport 5000-5002 dnat to 192.168.1.11",
        "ip daddr 198.18.0.31 dnat to 192.168.1.11",
    ]
    # no SNAT entry and no 1:1 port: nothing new may leave by the leg (replies still do)
    assert f'oifname "{LEG}" drop' in rules_of(text, "forward")


def test_only_gateways_that_answer_ping_are_reachable_from_the_leg() -> None:
    text = render_ruleset(
        gateway_vpc(
            nat_address("eip-n1", "198.18.0.30", answers_ping=True), nat_address("eip-n2", "198.18.0.31")
        )
    )
    inputs = rules_of(text, "input")
    ping = f'iifname "{LEG}" ip daddr 198.18.0.30 icmp type echo-request accept'
    assert ping in inputs and inputs.index(ping) < inputs.index(f'iifname "{LEG}" drop')
    assert "198.18.0.31" not in " ".join(inputs)


@pytest.mark.parametrize(
    ("vpc", "error"),
    [
        (
            gateway_vpc(
                nat_address("eip-n1", "198.18.0.30"),
                snat=(SnatRule("snat-1", ("192.168.1.0/24",), ("198.18.0.99",)),),
            ),
            "not all NAT",
        ),
        (
            gateway_vpc(
                public("eip-1", "198.18.0.9", "192.168.1.10"),
                snat=(SnatRule("snat-1", ("192.168.1.0/24",), ("198.18.0.9",)),),
            ),
            "not all NAT",
        ),
        (
            gateway_vpc(
                nat_address("eip-n1", "198.18.0.30"),
                snat=(SnatRule("snat-1", ("10.0.0.0/8",), ("198.18.0.30",)),),
            ),
            "outside",
        ),
        (
            gateway_vpc(
                nat_address("eip-n1", "198.18.0.30"),
                dnat=(DnatRule("fwd-1", "tcp", "198.18.0.31", "80", "192.168.1.10", "80"),),
            ),
            "no NAT address",
        ),
        (
            gateway_vpc(
                nat_address("eip-n1", "198.18.0.30"),
                dnat=(DnatRule("fwd-1", "tcp", "198.18.0.30", "80", "10.0.0.1", "80"),),
            ),
            "outside the VPC",
        ),
        (
            gateway_vpc(
                nat_address("eip-n1", "198.18.0.30"),
                dnat=(DnatRule("fwd-1", "tcp", "198.18.0.30", "80-81", "192.168.1.10", "80"),),
            ),
            "different lengths",
        ),
        (
            gateway_vpc(
                nat_address("eip-n1", "198.18.0.30"),
                dnat=(DnatRule("fwd-1", "tcp", "198.18.0.30", "0", "192.168.1.10", "0"),),
            ),
            "bad ports",
        ),
        (
            gateway_vpc(
                nat_address("eip-n1", "198.18.0.30"),
                dnat=(DnatRule("fwd-1", "any", "198.18.0.30", "80", "192.168.1.10", "80"),),
            ),
            "every port",
        ),
    ],
)
def test_invalid_entries_are_rejected(vpc: VpcNet, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        validate_vpc(vpc)


def test_nft_loads_snat_and_forward_entries() -> None:
    _nft_available()
    vpc = gateway_vpc(
        nat_address("eip-n1", "198.18.0.30", answers_ping=True),
        nat_address("eip-n2", "198.18.0.31"),
        snat=(SnatRule("snat-1", ("192.168.1.0/24",), ("198.18.0.30", "198.18.0.31")),),
        dnat=(
            DnatRule("fwd-1", "tcp", "198.18.0.30", "1000-1001", "192.168.1.11", "2000-2001"),
            DnatRule("fwd-2", "any", "198.18.0.31", "", "192.168.1.10", ""),
        ),
    )
    validate_vpc(vpc)
    proc = nft_load(render_ruleset(vpc), f"nft list table ip {NAT_TABLE}")
    assert proc.returncode == 0, proc.stderr
    assert "jhash ip saddr mod 2" in proc.stdout and "dport map { 1000 : 2000" in proc.stdout


# ---- the desired state from the store --------------------------------------------------------


def test_a_nat_gateway_its_eips_and_entries_become_the_vpcs_nat(world: HostWorld) -> None:
    configure_pools(world.db, world.clock, ["198.18.0.0/24"], "198.18.0.1")
    instance_id = world.launch()
    world.reach(instance_id, "Running")
    now = world.clock.now()
    with world.db.session() as s:
        eni = s.scalars(select(NetworkInterface).where(NetworkInterface.instance_id == instance_id)).one()
        vswitch_cidr = eni.primary_ip.rsplit(".", 1)[0] + ".0/24"
        s.add(
            NatGateway(
                id="ngw-1",
                account_id=eni.account_id,
                region_id=eni.region_id,
                zone_id=eni.zone_id,
                vpc_id=eni.vpc_id,
                vswitch_id=eni.vswitch_id,
                status="Available",
                snat_table_id="stb-1",
                forward_table_id="ftb-1",
                icmp_reply_enabled=False,
                created_at=now,
            )
        )
        for address_id, ip, served in (("eip-n1", "198.18.0.30", "ngw-1"), ("eip-n2", "198.18.0.31", "")):
            s.add(
                PublicAddress(
                    id=address_id,
                    kind="Eip",
                    ip_address=ip,
                    pool_cidr="198.18.0.0/24",
                    account_id=eni.account_id,
                    region_id=eni.region_id,
                    bandwidth_out=5,
                    bandwidth_in=10,
                    internet_charge_type="PayByTraffic",
                    status="InUse" if served else "Available",
                    instance_type=NAT_GATEWAY if served else "",
                    instance_id=served,
                    vpc_id=eni.vpc_id if served else "",
                    created_at=now,
                )
            )
        s.flush()
        # the second address is not the gateway's: an entry naming only it translates nothing
        s.add(
            SnatEntry(
                id="snat-1",
                nat_gateway_id="ngw-1",
                snat_table_id="stb-1",
                account_id=eni.account_id,
                source_cidr=vswitch_cidr,
                source_vswitch_id=eni.vswitch_id,
                snat_ips="198.18.0.30,198.18.0.31",
                status="Available",
                created_at=now,
            )
        )
        s.add(
            SnatEntry(
                id="snat-2",
                nat_gateway_id="ngw-1",
                snat_table_id="stb-1",
                account_id=eni.account_id,
                source_cidr=eni.primary_ip + "/32",
                snat_ips="198.18.0.31",
                status="Available",
                created_at=now,
            )
        )
        forward = ForwardEntry(
            id="fwd-1",
            nat_gateway_id="ngw-1",
            forward_table_id="ftb-1",
            account_id=eni.account_id,
            external_ip="198.18.0.30",
            external_port="1000/1010",
            internal_ip=eni.primary_ip,
            internal_port="2000/2010",
            ip_protocol="tcp",
            status="Available",
            created_at=now,
        )
        s.add(forward)
        s.flush()
        expected_dnat = dnat_rule(forward)
        private_ip = eni.primary_ip
    [vpc] = desired_vpcs(world.db, "nubes")
    assert vpc.public == (PublicMapping("eip-n1", "198.18.0.30", "", "198.18.0.0/24", "198.18.0.1", 5, 10),)
    assert vpc.snat == (SnatRule("snat-1", (vswitch_cidr,), ("198.18.0.30",)),)
    assert expected_dnat == DnatRule("fwd-1", "tcp", "198.18.0.30", "1000-1010", private_ip, "2000-2010")
    assert vpc.dnat == (expected_dnat,)
    validate_vpc(vpc)
    assert "snat to 198.18.0.30" in render_ruleset(vpc)
