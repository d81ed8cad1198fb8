"""NAT gateways through the official VPC SDK, against an emulator with a public range: create,
describe, modify, delete (Force); their EIPs (AssociateEipAddress InstanceType Nat), SNAT and
DNAT entries; the default route they add; what they keep from being deleted; tags; and the
errors ECS answers. The SNAT/DNAT entries' own rules are test_nat_entries_api.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em
from alibabacloud_vpc20160428 import models as vm

from ..conftest import LiveServer, start_server, stop_server, tea_ecs, tea_vpc
from .test_instances_api import error_of
from .test_security_group_api import make_network
from .test_vpc_api import REGION, ZONE

RANGE = "203.0.113.0/27"
GATEWAY = "203.0.113.1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    started = start_server(
        tmp_path_factory.mktemp("nat"),
        None,
        "sqlite",
        ["--throttle-rate", "0", "--public-cidr", RANGE, "--public-gateway", GATEWAY],
    )
    yield started
    stop_server(started)


class World:
    """One account with a VPC (10.x.0.0/16) and a vSwitch (10.x.1.0/24)."""

    def __init__(self, server: LiveServer, cidr: str = "10.70.0.0/16") -> None:
        self.key = server.create_account(f"nat-{uuid.uuid4().hex[:8]}")
        self.vpc = tea_vpc(server, self.key)
        self.ecs = tea_ecs(server, self.key)
        self.cidr = cidr
        self.vpc_id, self.vswitch_id = make_network(server, self.key, cidr=cidr)

    def create(self, **fields: Any) -> Any:
        fields.setdefault("vpc_id", self.vpc_id)
        fields.setdefault("v_switch_id", self.vswitch_id)
        return self.vpc.create_nat_gateway(vm.CreateNatGatewayRequest(region_id=REGION, **fields)).body

    def gateways(self, **fields: Any) -> Any:
        return self.vpc.describe_nat_gateways(vm.DescribeNatGatewaysRequest(region_id=REGION, **fields)).body

    def gateway(self, nat_gateway_id: str) -> Any:
        [found] = self.gateways(nat_gateway_id=nat_gateway_id).nat_gateways.nat_gateway
        return found

    def attribute(self, nat_gateway_id: str) -> Any:
        return self.vpc.get_nat_gateway_attribute(
            vm.GetNatGatewayAttributeRequest(region_id=REGION, nat_gateway_id=nat_gateway_id)
        ).body

    def delete(self, nat_gateway_id: str, **fields: Any) -> None:
        self.vpc.delete_nat_gateway(
            vm.DeleteNatGatewayRequest(region_id=REGION, nat_gateway_id=nat_gateway_id, **fields)
        )

    def eip(self, nat_gateway_id: str | None = None) -> Any:
        """A new EIP, associated with the gateway when one is named."""
        eip = self.vpc.allocate_eip_address(vm.AllocateEipAddressRequest(region_id=REGION)).body
        if nat_gateway_id:
            self.associate(eip.allocation_id, nat_gateway_id)
        return eip

    def associate(self, allocation_id: str, nat_gateway_id: str) -> None:
        self.vpc.associate_eip_address(
            vm.AssociateEipAddressRequest(
                region_id=REGION, allocation_id=allocation_id, instance_id=nat_gateway_id, instance_type="Nat"
            )
        )

    def unassociate(self, allocation_id: str, nat_gateway_id: str) -> None:
        self.vpc.unassociate_eip_address(
            vm.UnassociateEipAddressRequest(
                region_id=REGION, allocation_id=allocation_id, instance_id=nat_gateway_id, instance_type="Nat"
            )
        )

    def eip_row(self, allocation_id: str) -> Any:
        body = self.vpc.describe_eip_addresses(
            vm.DescribeEipAddressesRequest(region_id=REGION, allocation_id=allocation_id)
        ).body
        return body.eip_addresses.eip_address[0]

    def snat(self, table_id: str, snat_ip: str, **fields: Any) -> str:
        fields.setdefault("source_vswitch_id", self.vswitch_id)
        return str(
            self.vpc.create_snat_entry(
                vm.CreateSnatEntryRequest(region_id=REGION, snat_table_id=table_id, snat_ip=snat_ip, **fields)
            ).body.snat_entry_id
        )

    def forward(self, table_id: str, external_ip: str, **fields: Any) -> str:
        request = {"ip_protocol": "tcp", "external_port": "80", "internal_port": "8080", **fields}
        request.setdefault("internal_ip", self.cidr.replace("0.0/16", "1.10"))
        return str(
            self.vpc.create_forward_entry(
                vm.CreateForwardEntryRequest(
                    region_id=REGION, forward_table_id=table_id, external_ip=external_ip, **request
                )
            ).body.forward_entry_id
        )

    def routes(self, route_table_id: str) -> list[Any]:
        body = self.vpc.describe_route_entry_list(
            vm.DescribeRouteEntryListRequest(region_id=REGION, route_table_id=route_table_id)
        ).body
        return [e for e in body.route_entrys.route_entry if e.type == "Custom"]

    def route_to(self, nat_gateway_id: str, destination: str) -> str:
        """A new custom route table of the VPC with a route to the gateway; the table's ID."""
        table_id = str(
            self.vpc.create_route_table(
                vm.CreateRouteTableRequest(region_id=REGION, vpc_id=self.vpc_id)
            ).body.route_table_id
        )
        self.vpc.create_route_entry(
            vm.CreateRouteEntryRequest(
                region_id=REGION,
                route_table_id=table_id,
                destination_cidr_block=destination,
                next_hop_type="NatGateway",
                next_hop_id=nat_gateway_id,
            )
        )
        return table_id

    def system_table(self) -> str:
        body = self.vpc.describe_route_table_list(
            vm.DescribeRouteTableListRequest(region_id=REGION, vpc_id=self.vpc_id, route_table_type="System")
        ).body
        return str(body.router_table_list.router_table_list_type[0].route_table_id)


def test_create_describe_modify_delete(server: LiveServer) -> None:
    w = World(server)
    tag = vm.CreateNatGatewayRequestTag(key="env", value="prod")
    made = w.create(name="egress", description="way out", client_token="ngw-1", tag=[tag])
    again = w.create(name="egress", description="way out", client_token="ngw-1", tag=[tag])
    assert made.nat_gateway_id.startswith("ngw-") and again.nat_gateway_id == made.nat_gateway_id
    [snat_table] = made.snat_table_ids.snat_table_id
    [forward_table] = made.forward_table_ids.forward_table_id
    assert snat_table.startswith("stb-") and forward_table.startswith("ftb-")
    assert made.full_nat_table_ids.full_nat_table_id == []
    mismatch = error_of(lambda: w.create(name="other", client_token="ngw-1"))
    assert mismatch.code == "IdempotentParameterMismatch"

    g = w.gateway(made.nat_gateway_id)
    assert (g.name, g.description, g.status, g.vpc_id, g.region_id) == (
        "egress",
        "way out",
        "Available",
        w.vpc_id,
        REGION,
    )
    assert (g.nat_type, g.network_type, g.instance_charge_type, g.internet_charge_type, g.spec) == (
        "Enhanced",
        "internet",
        "PostPaid",
        "PayByLcu",
        "",
    )
    assert (g.eip_bind_mode, g.icmp_reply_enabled, g.deletion_protection) == ("MULTI_BINDED", True, False)
    assert g.snat_table_ids.snat_table_id == [snat_table]
    assert g.forward_table_ids.forward_table_id == [forward_table]
    private = g.nat_gateway_private_info
    assert (private.vswitch_id, private.iz_no) == (w.vswitch_id, ZONE)
    assert IPv4Address(private.private_ip_address) in IPv4Network(w.cidr.replace("0.0/16", "1.0/24"))
    assert [(t.tag_key, t.tag_value) for t in g.tags.tag] == [("env", "prod")]
    assert g.ip_lists.ip_list == []

    # ECS adds the default route to an Enhanced gateway when the system table has none
    [route] = w.routes(w.system_table())
    assert (route.destination_cidr_block, route.next_hops.next_hop[0].next_hop_type) == (
        "0.0.0.0/0",
        "NatGateway",
    )
    assert route.next_hops.next_hop[0].next_hop_id == made.nat_gateway_id

    attribute = w.attribute(made.nat_gateway_id)
    assert (attribute.nat_gateway_id, attribute.vpc_id, attribute.status) == (
        made.nat_gateway_id,
        w.vpc_id,
        "Available",
    )
    assert (attribute.snat_table.snat_table_id, attribute.snat_table.snat_entry_count) == (snat_table, 0)
    assert (attribute.forward_table.forward_table_id, attribute.forward_table.forward_entry_count) == (
        forward_table,
        0,
    )
    assert attribute.private_info.private_ip_address == private.private_ip_address
    assert attribute.billing_config.internet_charge_type == "PayByLcu"

    w.vpc.modify_nat_gateway_attribute(
        vm.ModifyNatGatewayAttributeRequest(
            region_id=REGION,
            nat_gateway_id=made.nat_gateway_id,
            name="exit",
            description="renamed",
            eip_bind_mode="NAT",
            icmp_reply_enabled=False,
        )
    )
    g = w.gateway(made.nat_gateway_id)
    assert (g.name, g.description, g.eip_bind_mode, g.icmp_reply_enabled) == ("exit", "renamed", "NAT", False)

    w.delete(made.nat_gateway_id)
    assert w.gateways(vpc_id=w.vpc_id).total_count == 0
    assert w.routes(w.system_table()) == []
    gone = error_of(lambda: w.attribute(made.nat_gateway_id))
    assert (gone.code, gone.status_code) == ("InvalidNatGatewayId.NotFound", 404)


def test_create_refuses_what_nubes_does_not_do_and_malformed_input(server: LiveServer) -> None:
    w = World(server, "10.71.0.0/16")
    for fields, name in (
        ({"nat_type": "Normal"}, "NatType"),
        ({"network_type": "intranet"}, "NetworkType"),
        ({"instance_charge_type": "PrePaid"}, "InstanceChargeType"),
        ({"nat_ip": "10.71.1.9"}, "NatIp"),
        ({"private_link_enabled": True}, "PrivateLinkEnabled"),
        ({"duration": "1"}, "Duration"),
    ):
        refused = error_of(lambda fields=fields: w.create(**fields))
        assert refused.code == "InvalidParameter.NotSupported" and f'"{name}"' in refused.message

    missing = error_of(
        lambda: w.vpc.create_nat_gateway(vm.CreateNatGatewayRequest(region_id=REGION, vpc_id=w.vpc_id))
    )
    assert missing.code == "MissingParameter.VSwitchId"
    assert error_of(lambda: w.create(internet_charge_type="PayByWhim")).code == "InvalidParameter"
    assert error_of(lambda: w.create(name="1bad")).code == "InvalidName.Malformed"
    assert error_of(lambda: w.create(vpc_id="vpc-nothere000000")).code == "InvalidVpcId.NotFound"

    other = World(server, "10.72.0.0/16")
    assert error_of(lambda: w.create(vpc_id=other.vpc_id)).code == "InvalidVpcId.NotFound"
    assert error_of(lambda: w.create(v_switch_id=other.vswitch_id)).code == "InvalidVSwitchId.NotFound"
    second_vpc, second_vswitch = make_network(server, w.key, cidr="10.73.0.0/16")
    wrong = error_of(lambda: w.create(v_switch_id=second_vswitch))
    assert wrong.code == "InvalidParameter" and second_vswitch in wrong.message
    assert second_vpc != w.vpc_id

    by_spec = w.create(internet_charge_type="PayBySpec")
    assert w.gateway(by_spec.nat_gateway_id).spec == "Small"
    for _ in range(4):
        w.create()
    quota = error_of(w.create)
    assert quota.code == "QuotaExceeded.NatGateway"
    # one default route for all of them: the first gateway's
    assert [r.next_hops.next_hop[0].next_hop_id for r in w.routes(w.system_table())] == [
        by_spec.nat_gateway_id
    ]


def test_describe_filters_paging_and_dry_run(server: LiveServer) -> None:
    w = World(server, "10.74.0.0/16")
    first = w.create(name="first").nat_gateway_id
    second = w.create(name="second").nat_gateway_id
    listed = w.gateways()
    assert listed.total_count == 2 and [g.nat_gateway_id for g in listed.nat_gateways.nat_gateway] == [
        second,
        first,
    ]
    page = w.gateways(page_size=1, page_number=2)
    assert (page.total_count, page.page_number, page.page_size) == (2, 2, 1)
    assert [g.nat_gateway_id for g in page.nat_gateways.nat_gateway] == [first]
    assert [g.nat_gateway_id for g in w.gateways(name="first").nat_gateways.nat_gateway] == [first]
    assert w.gateways(vpc_id=w.vpc_id, zone_id=ZONE, status="Available").total_count == 2
    assert w.gateways(nat_type="Normal").total_count == 0
    assert w.gateways(network_type="intranet").total_count == 0
    assert w.gateways(spec="Large").total_count == 0
    dry = error_of(lambda: w.gateways(dry_run=True))
    assert dry.code == "DryRunOperation"
    assert error_of(lambda: w.gateways(page_size=51)).code == "InvalidParameter"
    assert error_of(lambda: w.gateways(status="Sleeping")).code == "InvalidParameter"

    other = World(server, "10.75.0.0/16")
    assert other.gateways().total_count == 0
    assert other.gateways(nat_gateway_id=first).total_count == 0
    hidden = error_of(lambda: other.attribute(first))
    assert hidden.code == "InvalidNatGatewayId.NotFound"
    assert error_of(lambda: other.delete(first)).code == "InvalidNatGatewayId.NotFound"


def test_the_gateway_address_is_taken_from_the_vswitch(server: LiveServer) -> None:
    w = World(server, "10.76.0.0/16")
    before = w.vpc.describe_vswitch_attributes(
        vm.DescribeVSwitchAttributesRequest(region_id=REGION, v_switch_id=w.vswitch_id)
    ).body.available_ip_address_count
    made = w.create()
    address = w.gateway(made.nat_gateway_id).nat_gateway_private_info.private_ip_address
    after = w.vpc.describe_vswitch_attributes(
        vm.DescribeVSwitchAttributesRequest(region_id=REGION, v_switch_id=w.vswitch_id)
    ).body.available_ip_address_count
    assert after == before - 1
    group_id = w.ecs.create_security_group(
        em.CreateSecurityGroupRequest(region_id=REGION, vpc_id=w.vpc_id)
    ).body.security_group_id
    taken = error_of(
        lambda: w.ecs.create_network_interface(
            em.CreateNetworkInterfaceRequest(
                region_id=REGION,
                v_switch_id=w.vswitch_id,
                security_group_id=group_id,
                primary_ip_address=address,
            )
        )
    )
    assert taken.code == "InvalidPrivateIpAddress.Duplicated"
    eni_id = w.ecs.create_network_interface(
        em.CreateNetworkInterfaceRequest(
            region_id=REGION, v_switch_id=w.vswitch_id, security_group_id=group_id
        )
    ).body.network_interface_id
    eni = w.ecs.describe_network_interfaces(
        em.DescribeNetworkInterfacesRequest(region_id=REGION, network_interface_id=[eni_id])
    ).body.network_interface_sets.network_interface_set[0]
    assert eni.private_ip_address != address


def test_eips_of_a_gateway(server: LiveServer) -> None:
    w = World(server, "10.77.0.0/16")
    gateway_id = w.create().nat_gateway_id
    eip = w.eip(gateway_id)
    row = w.eip_row(eip.allocation_id)
    assert (row.status, row.instance_type, row.instance_id, row.vpc_id, row.private_ip_address) == (
        "InUse",
        "Nat",
        gateway_id,
        w.vpc_id,
        "",
    )
    nat_eips = w.vpc.describe_eip_addresses(
        vm.DescribeEipAddressesRequest(region_id=REGION, associated_instance_type="Nat")
    ).body.eip_addresses.eip_address
    assert [e.allocation_id for e in nat_eips] == [eip.allocation_id]
    [listed] = w.gateway(gateway_id).ip_lists.ip_list
    assert (listed.allocation_id, listed.ip_address, listed.using_status, listed.snat_entry_enabled) == (
        eip.allocation_id,
        eip.eip_address,
        "Idle",
        False,
    )
    assert [i.allocation_id for i in w.attribute(gateway_id).ip_list] == [eip.allocation_id]
    assert error_of(lambda: w.associate(eip.allocation_id, gateway_id)).code == "IncorrectEipStatus"

    other = World(server, "10.78.0.0/16")
    theirs = other.eip()
    hidden = error_of(lambda: other.associate(theirs.allocation_id, gateway_id))
    assert (hidden.code, hidden.status_code) == ("InvalidNatGatewayId.NotFound", 404)

    w.unassociate(eip.allocation_id, gateway_id)
    row = w.eip_row(eip.allocation_id)
    assert (row.status, row.instance_type, row.instance_id) == ("Available", "", "")
    assert w.gateway(gateway_id).ip_lists.ip_list == []


def test_delete_refuses_what_depends_on_the_gateway_unless_forced(server: LiveServer) -> None:
    w = World(server, "10.79.0.0/16")
    made = w.create()
    gateway_id = made.nat_gateway_id
    eip = w.eip(gateway_id)
    w.snat(made.snat_table_ids.snat_table_id[0], eip.eip_address)
    w.forward(made.forward_table_ids.forward_table_id[0], eip.eip_address)
    table_id = w.route_to(gateway_id, "192.0.2.0/24")
    assert error_of(lambda: w.delete(gateway_id)).code == "DependencyViolation.SnatEntry"
    vswitch = error_of(
        lambda: w.vpc.delete_vswitch(vm.DeleteVSwitchRequest(region_id=REGION, v_switch_id=w.vswitch_id))
    )
    vpc = error_of(lambda: w.vpc.delete_vpc(vm.DeleteVpcRequest(region_id=REGION, vpc_id=w.vpc_id)))
    assert (vswitch.code, vpc.code) == ("DependencyViolation.NatGateway", "DependencyViolation.NatGateway")

    w.delete(gateway_id, force=True)
    assert w.gateways().total_count == 0
    row = w.eip_row(eip.allocation_id)
    assert (row.status, row.instance_id) == ("Available", "")
    assert w.routes(table_id) == [] and w.routes(w.system_table()) == []
    gone = error_of(
        lambda: w.vpc.describe_snat_table_entries(
            vm.DescribeSnatTableEntriesRequest(
                region_id=REGION, snat_table_id=made.snat_table_ids.snat_table_id[0]
            )
        )
    )
    assert gone.code == "InvalidSnatTableId.NotFound"


def test_each_dependency_is_named_without_force(server: LiveServer) -> None:
    w = World(server, "10.80.0.0/16")
    made = w.create()
    gateway_id = made.nat_gateway_id
    eip = w.eip(gateway_id)
    forward_id = w.forward(made.forward_table_ids.forward_table_id[0], eip.eip_address)
    assert error_of(lambda: w.delete(gateway_id)).code == "DependencyViolation.ForwardEntry"
    w.vpc.delete_forward_entry(
        vm.DeleteForwardEntryRequest(
            region_id=REGION,
            forward_table_id=made.forward_table_ids.forward_table_id[0],
            forward_entry_id=forward_id,
        )
    )
    assert error_of(lambda: w.delete(gateway_id)).code == "DependencyViolation.EIPS"
    w.unassociate(eip.allocation_id, gateway_id)
    table_id = w.route_to(gateway_id, "0.0.0.0/0")
    assert error_of(lambda: w.delete(gateway_id)).code == "DependencyViolation.RouterEntry"
    [custom] = w.routes(table_id)
    w.vpc.delete_route_entry(
        vm.DeleteRouteEntryRequest(region_id=REGION, route_entry_id=custom.route_entry_id)
    )
    w.delete(gateway_id)  # its own default route in the system table goes with it
    assert w.routes(w.system_table()) == []


def test_route_entries_to_a_gateway_of_the_vpc_only(server: LiveServer) -> None:
    w = World(server, "10.81.0.0/16")
    gateway_id = w.create().nat_gateway_id
    other = World(server, "10.82.0.0/16")
    theirs = other.create().nat_gateway_id
    second_vpc, second_vswitch = make_network(server, w.key, cidr="10.85.0.0/16")
    elsewhere = w.create(vpc_id=second_vpc, v_switch_id=second_vswitch).nat_gateway_id
    for hop in (theirs, elsewhere):
        assert error_of(lambda hop=hop: w.route_to(hop, "198.18.0.0/15")).code == "InvalidNextHopId.NotFound"
    table_id = w.route_to(gateway_id, "198.18.0.0/15")
    [entry] = w.routes(table_id)
    assert (entry.destination_cidr_block, entry.next_hops.next_hop[0].next_hop_type) == (
        "198.18.0.0/15",
        "NatGateway",
    )
    assert entry.next_hops.next_hop[0].next_hop_id == gateway_id


def test_tags_of_gateways_and_eips(server: LiveServer) -> None:
    w = World(server, "10.83.0.0/16")
    gateway_id = w.create().nat_gateway_id
    eip = w.eip()
    for resource_type, resource_id in (("NATGATEWAY", gateway_id), ("EIP", eip.allocation_id)):
        w.vpc.tag_resources(
            vm.TagResourcesRequest(
                region_id=REGION,
                resource_type=resource_type,
                resource_id=[resource_id],
                tag=[vm.TagResourcesRequestTag(key="team", value="net")],
            )
        )
        listed = w.vpc.list_tag_resources(
            vm.ListTagResourcesRequest(
                region_id=REGION, resource_type=resource_type, resource_id=[resource_id]
            )
        ).body.tag_resources.tag_resource
        assert [(t.resource_id, t.resource_type, t.tag_key, t.tag_value) for t in listed] == [
            (resource_id, resource_type, "team", "net")
        ]
    tagged = w.gateways(tag=[vm.DescribeNatGatewaysRequestTag(key="team", value="net")])
    assert [g.nat_gateway_id for g in tagged.nat_gateways.nat_gateway] == [gateway_id]
    assert w.gateways(tag=[vm.DescribeNatGatewaysRequestTag(key="team", value="web")]).total_count == 0
    eips = w.vpc.describe_eip_addresses(
        vm.DescribeEipAddressesRequest(region_id=REGION, tag=[vm.DescribeEipAddressesRequestTag(key="team")])
    ).body.eip_addresses.eip_address
    assert [e.allocation_id for e in eips] == [eip.allocation_id]
    w.vpc.un_tag_resources(
        vm.UnTagResourcesRequest(
            region_id=REGION, resource_type="NATGATEWAY", resource_id=[gateway_id], tag_key=["team"]
        )
    )
    assert w.gateway(gateway_id).tags.tag == []

    other = World(server, "10.84.0.0/16")
    hidden = error_of(
        lambda: other.vpc.tag_resources(
            vm.TagResourcesRequest(
                region_id=REGION,
                resource_type="NATGATEWAY",
                resource_id=[gateway_id],
                tag=[vm.TagResourcesRequestTag(key="k", value="v")],
            )
        )
    )
    assert hidden.code == "InvalidResourceId.NotFound"
