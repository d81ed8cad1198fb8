"""SNAT and DNAT (forward) entries of NAT gateways through the official VPC SDK: their rules and
errors, how SNAT and DNAT share an EIP, and the call sequence of Terraform's alicloud provider
for alicloud_nat_gateway, alicloud_eip_association (Nat), alicloud_snat_entry and
alicloud_forward_entry."""

from __future__ import annotations

from typing import Any

import pytest
from alibabacloud_vpc20160428 import models as vm

from ..conftest import LiveServer
from .test_instances_api import error_of
from .test_nat_gateways_api import World, server
from .test_vpc_api import REGION

__all__ = ["server"]  # the module's emulator, with a public range


class Gateway:
    """A world's NAT gateway with two EIPs."""

    def __init__(self, w: World) -> None:
        self.w = w
        made = w.create()
        self.id = made.nat_gateway_id
        self.snat_table = made.snat_table_ids.snat_table_id[0]
        self.forward_table = made.forward_table_ids.forward_table_id[0]
        self.eips = [w.eip(self.id), w.eip(self.id)]
        self.ips = [e.eip_address for e in self.eips]

    def snats(self, **fields: Any) -> Any:
        return self.w.vpc.describe_snat_table_entries(
            vm.DescribeSnatTableEntriesRequest(region_id=REGION, **fields)
        ).body

    def forwards(self, **fields: Any) -> Any:
        return self.w.vpc.describe_forward_table_entries(
            vm.DescribeForwardTableEntriesRequest(region_id=REGION, **fields)
        ).body

    def modify_snat(self, entry_id: str, **fields: Any) -> None:
        self.w.vpc.modify_snat_entry(
            vm.ModifySnatEntryRequest(
                region_id=REGION, snat_table_id=self.snat_table, snat_entry_id=entry_id, **fields
            )
        )

    def modify_forward(self, entry_id: str, **fields: Any) -> None:
        self.w.vpc.modify_forward_entry(
            vm.ModifyForwardEntryRequest(
                region_id=REGION, forward_table_id=self.forward_table, forward_entry_id=entry_id, **fields
            )
        )

    def forward(self, external_ip: str, **fields: Any) -> str:
        return self.w.forward(self.forward_table, external_ip, **fields)


@pytest.fixture
def g(server: LiveServer) -> Gateway:
    return Gateway(World(server, "10.90.0.0/16"))


def test_snat_entries(g: Gateway) -> None:
    w = g.w
    made = w.snat(g.snat_table, g.ips[0], snat_entry_name="out", client_token="snat-1")
    again = w.snat(g.snat_table, g.ips[0], snat_entry_name="out", client_token="snat-1")
    assert made.startswith("snat-") and again == made
    [entry] = g.snats(snat_table_id=g.snat_table).snat_table_entries.snat_table_entry
    assert (entry.snat_entry_id, entry.snat_table_id, entry.nat_gateway_id, entry.status) == (
        made,
        g.snat_table,
        g.id,
        "Available",
    )
    assert (entry.source_vswitch_id, entry.source_cidr, entry.snat_ip, entry.snat_entry_name) == (
        w.vswitch_id,
        "10.90.1.0/24",
        g.ips[0],
        "out",
    )
    assert entry.eip_affinity == "0"
    duplicate = error_of(lambda: w.snat(g.snat_table, g.ips[1]))
    assert duplicate.code == "Forbidden.SourceVSwitchId.Duplicated"
    same_cidr = error_of(
        lambda: w.snat(g.snat_table, g.ips[1], source_vswitch_id=None, source_cidr="10.90.1.0/24")
    )
    assert same_cidr.code == "Forbidden.SourceVSwitchId.Duplicated"

    both = g.ips[0] + "," + g.ips[1]
    custom = w.snat(g.snat_table, both, source_vswitch_id=None, source_cidr="10.90.7.5", eip_affinity=1)
    [listed] = g.snats(nat_gateway_id=g.id, source_cidr="10.90.7.5/32").snat_table_entries.snat_table_entry
    assert (listed.snat_entry_id, listed.snat_ip, listed.source_vswitch_id, listed.eip_affinity) == (
        custom,
        both,
        "",
        "1",
    )
    assert [
        e.snat_entry_id
        for e in g.snats(nat_gateway_id=g.id, snat_ip=g.ips[1]).snat_table_entries.snat_table_entry
    ] == [custom]
    page = g.snats(snat_table_id=g.snat_table, page_size=1, page_number=2)
    assert (page.total_count, [e.snat_entry_id for e in page.snat_table_entries.snat_table_entry]) == (
        2,
        [custom],
    )
    [ip_list] = [i for i in w.gateway(g.id).ip_lists.ip_list if i.ip_address == g.ips[0]]
    assert (ip_list.using_status, ip_list.snat_entry_enabled) == ("UsedBySnatTable", True)
    assert w.attribute(g.id).snat_table.snat_entry_count == 2

    dry = error_of(lambda: g.modify_snat(custom, snat_entry_name="never", dry_run=True))
    assert dry.code == "DryRunOperation"
    g.modify_snat(custom, snat_ip=g.ips[1], snat_entry_name="renamed", eip_affinity=0)
    [listed] = g.snats(snat_table_id=g.snat_table, snat_entry_id=custom).snat_table_entries.snat_table_entry
    assert (listed.snat_ip, listed.snat_entry_name, listed.eip_affinity) == (g.ips[1], "renamed", "0")

    used = error_of(lambda: w.unassociate(g.eips[0].allocation_id, g.id))
    assert used.code == "InvalidIpStatus.HasBeenUsedBySnatTable"
    w.vpc.delete_snat_entry(
        vm.DeleteSnatEntryRequest(region_id=REGION, snat_table_id=g.snat_table, snat_entry_id=made)
    )
    w.unassociate(g.eips[0].allocation_id, g.id)
    assert [
        e.snat_entry_id for e in g.snats(snat_table_id=g.snat_table).snat_table_entries.snat_table_entry
    ] == [custom]
    gone = error_of(
        lambda: w.vpc.delete_snat_entry(
            vm.DeleteSnatEntryRequest(region_id=REGION, snat_table_id=g.snat_table, snat_entry_id=made)
        )
    )
    assert (gone.code, gone.status_code) == ("InvalidSnatEntryId.NotFound", 404)


def test_snat_entry_errors_and_dry_run(server: LiveServer, g: Gateway) -> None:
    w = g.w

    def create(**fields: Any) -> Any:
        return w.vpc.create_snat_entry(vm.CreateSnatEntryRequest(region_id=REGION, **fields))

    base = {"snat_table_id": g.snat_table, "snat_ip": g.ips[0]}
    cases = [
        (
            {**base, "source_vswitch_id": w.vswitch_id, "source_cidr": "10.90.1.0/24"},
            "InvalidParameter.Conflict",
        ),
        (base, "MissingParameter.SourceVSwitchId"),
        ({**base, "source_cidr": "10.90.1.5/24"}, "InvalidSourceCIDR.Malformed"),
        ({**base, "source_cidr": "10.90.1.0/24", "snat_ip": "1.2.3"}, "InvalidSnatIp.Malformed"),
        (
            {**base, "source_cidr": "10.90.1.0/24", "snat_ip": f"{g.ips[0]},{g.ips[0]}"},
            "InvalidSnatIp.Malformed",
        ),
        ({**base, "source_cidr": "10.90.1.0/24", "snat_ip": "198.51.100.200"}, "InvalidSnatIp.NotFound"),
        ({**base, "source_cidr": "10.90.1.0/24", "eip_affinity": 2}, "InvalidParameter"),
        (
            {**base, "source_cidr": "10.90.1.0/24", "network_interface_id": "eni-x"},
            "InvalidParameter.NotSupported",
        ),
        (
            {**base, "source_cidr": "10.90.1.0/24", "snat_entry_name": "9lives"},
            "InvalidSnatEntryName.Malformed",
        ),
        ({"snat_ip": g.ips[0], "source_cidr": "10.90.1.0/24"}, "MissingParameter.SnatTableId"),
        (
            {**base, "snat_table_id": "stb-nothere0000000", "source_cidr": "10.90.1.0/24"},
            "InvalidSnatTableId.NotFound",
        ),
    ]
    for fields, code in cases:
        assert error_of(lambda fields=fields: create(**fields)).code == code, fields

    dry = error_of(lambda: create(**base, source_vswitch_id=w.vswitch_id, dry_run=True))
    assert dry.code == "DryRunOperation"
    assert g.snats(snat_table_id=g.snat_table).total_count == 0
    assert error_of(g.snats).code == "MissingParameter.SnatTableId"

    other = World(server, "10.91.0.0/16")
    theirs = error_of(
        lambda: other.vpc.create_snat_entry(
            vm.CreateSnatEntryRequest(
                region_id=REGION, snat_table_id=g.snat_table, snat_ip=g.ips[0], source_cidr="10.91.1.0/24"
            )
        )
    )
    assert (theirs.code, theirs.status_code) == ("InvalidSnatTableId.NotFound", 404)
    foreign_vswitch = error_of(lambda: create(**base, source_vswitch_id=other.vswitch_id))
    assert foreign_vswitch.code == "InvalidVSwitchId.NotFound"


def test_forward_entries(g: Gateway) -> None:
    w = g.w
    web = g.forward(g.ips[0], forward_entry_name="web", client_token="fwd-1")
    assert (
        web.startswith("fwd-") and g.forward(g.ips[0], forward_entry_name="web", client_token="fwd-1") == web
    )
    ranged = g.forward(g.ips[0], ip_protocol="UDP", external_port="1000/1010", internal_port="2000/2010")
    mapped = g.forward(
        g.ips[1], ip_protocol="Any", external_port="any", internal_port="any", internal_ip="10.90.1.11"
    )
    rows = g.forwards(forward_table_id=g.forward_table).forward_table_entries.forward_table_entry
    assert [(e.forward_entry_id, e.ip_protocol, e.external_port, e.internal_port) for e in rows] == [
        (web, "tcp", "80", "8080"),
        (ranged, "udp", "1000/1010", "2000/2010"),
        (mapped, "any", "any", "any"),
    ]
    first = rows[0]
    assert (
        first.external_ip,
        first.internal_ip,
        first.forward_entry_name,
        first.status,
        first.nat_gateway_id,
    ) == (
        g.ips[0],
        "10.90.1.10",
        "web",
        "Available",
        g.id,
    )
    assert [
        e.forward_entry_id
        for e in g.forwards(nat_gateway_id=g.id, ip_protocol="udp").forward_table_entries.forward_table_entry
    ] == [ranged]
    assert g.forwards(nat_gateway_id=g.id, external_ip=g.ips[1]).total_count == 1
    assert w.attribute(g.id).forward_table.forward_entry_count == 3

    dry = error_of(lambda: g.modify_forward(web, external_port="444", internal_port="8444", dry_run=True))
    assert dry.code == "DryRunOperation"
    assert g.forwards(forward_table_id=g.forward_table, external_port="80").total_count == 1
    g.modify_forward(web, external_port="443", internal_port="8443", forward_entry_name="tls")
    [row] = g.forwards(
        forward_table_id=g.forward_table, forward_entry_id=web
    ).forward_table_entries.forward_table_entry
    assert (row.external_port, row.internal_port, row.forward_entry_name, row.ip_protocol) == (
        "443",
        "8443",
        "tls",
        "tcp",
    )
    clash = error_of(
        lambda: g.modify_forward(web, ip_protocol="udp", external_port="1005", internal_port="9000")
    )
    assert clash.code == "InvalidParameter.Conflict"

    used = error_of(lambda: w.unassociate(g.eips[1].allocation_id, g.id))
    assert used.code == "InvalidIpStatus.HasBeenUsedByForwardEntry"
    w.vpc.delete_forward_entry(
        vm.DeleteForwardEntryRequest(
            region_id=REGION, forward_table_id=g.forward_table, forward_entry_id=mapped
        )
    )
    w.unassociate(g.eips[1].allocation_id, g.id)
    assert g.forwards(forward_table_id=g.forward_table).total_count == 2


def test_forward_entry_errors(server: LiveServer, g: Gateway) -> None:
    g.forward(g.ips[0])  # tcp 80 -> 10.90.1.10:8080
    cases = [
        ({"ip_protocol": "icmp"}, "InvalidProtocal.ValueNotSupported"),
        ({"external_port": "0"}, "InvalidExternalPort.Malformed"),
        ({"external_port": "70000"}, "InvalidExternalPort.Malformed"),
        ({"external_port": "90/85", "internal_port": "90/85"}, "InvalidExternalPort.Malformed"),
        ({"external_port": "100/110", "internal_port": "100/105"}, "InvalidInternalPort.Malformed"),
        ({"external_port": "any", "internal_port": "any"}, "InvalidExternalPort.Malformed"),
        ({"ip_protocol": "any", "external_port": "81"}, "InvalidExternalPort.Malformed"),
        ({"external_ip": "203.0.113.999"}, "InvalidExternalIp.Malformed"),
        ({"external_ip": "198.51.100.7"}, "InvalidIp.NotInNatgw"),
        ({"internal_ip": "10.90.1.x"}, "InvalidInternalIp.Malformed"),
        ({"internal_ip": "192.168.0.10"}, "Forbidden.InternalIpOutOfVpcCIDR"),
        ({"external_port": "80", "internal_port": "9090"}, "InvalidParameter.Conflict"),
        ({"external_port": "70/90", "internal_port": "170/190"}, "InvalidParameter.Conflict"),
        ({"external_port": "81", "internal_port": "8080"}, "InvalidParameter.Conflict"),
        ({"forward_entry_name": "http://x"}, "InvalidForwardEntryName.Malformed"),
    ]
    for fields, code in cases:
        request = {"external_ip": g.ips[0], **fields}
        ip = request.pop("external_ip")
        assert error_of(lambda ip=ip, request=request: g.forward(ip, **request)).code == code, fields
    # udp on the same port is another mapping
    assert g.forward(g.ips[0], ip_protocol="udp").startswith("fwd-")
    dry = error_of(lambda: g.forward(g.ips[0], external_port="82", internal_port="8082", dry_run=True))
    assert dry.code == "DryRunOperation" and g.forwards(forward_table_id=g.forward_table).total_count == 2
    missing = error_of(
        lambda: g.w.vpc.create_forward_entry(
            vm.CreateForwardEntryRequest(
                region_id=REGION, forward_table_id=g.forward_table, external_ip=g.ips[0]
            )
        )
    )
    assert missing.code == "MissingParameter.IpProtocol"
    assert error_of(g.forwards).code == "MissingParameter.ForwardTableId"
    other = World(server, "10.92.0.0/16")
    theirs = error_of(lambda: other.forward(g.forward_table, g.ips[0]))
    assert (theirs.code, theirs.status_code) == ("InvalidForwardTableId.NotFound", 404)


def test_snat_and_dnat_share_an_eip_below_1024_or_with_port_break(g: Gateway) -> None:
    w = g.w
    w.snat(g.snat_table, g.ips[0])
    assert g.forward(g.ips[0], external_port="443", internal_port="443").startswith("fwd-")
    high = error_of(lambda: g.forward(g.ips[0], external_port="8080", internal_port="80"))
    assert high.code == "Forbidden.ExternalIp.UsedInSnatTable"
    whole = error_of(lambda: g.forward(g.ips[0], ip_protocol="any", external_port="any", internal_port="any"))
    assert whole.code == "Forbidden.ExternalIp.UsedInSnatTable"
    assert g.forward(g.ips[0], external_port="8080", internal_port="80", port_break=True).startswith("fwd-")
    [listed] = [i for i in w.gateway(g.id).ip_lists.ip_list if i.ip_address == g.ips[0]]
    assert listed.using_status == "UsedByForwardSnatTable"

    g.forward(g.ips[1], ip_protocol="any", external_port="any", internal_port="any", internal_ip="10.90.1.20")
    mapped = error_of(
        lambda: w.snat(g.snat_table, g.ips[1], source_vswitch_id=None, source_cidr="10.90.2.0/24")
    )
    assert mapped.code == "Forbidden.IpUsedInForwardTable"


def test_terraform_replay(server: LiveServer) -> None:
    """What the alicloud provider calls for alicloud_nat_gateway + alicloud_eip_address +
    alicloud_eip_association (Nat) + alicloud_snat_entry + alicloud_forward_entry: create and
    wait for Available, read back, then destroy in dependency order and wait for NotFound."""
    w = World(server, "10.93.0.0/16")
    vpc = w.vpc
    # alicloud_nat_gateway: CreateNatGateway, then DescribeNatGateways until Available
    created = vpc.create_nat_gateway(
        vm.CreateNatGatewayRequest(
            region_id=REGION,
            vpc_id=w.vpc_id,
            v_switch_id=w.vswitch_id,
            nat_type="Enhanced",
            name="tf-nat",
            description="by terraform",
            instance_charge_type="PostPaid",
            internet_charge_type="PayByLcu",
            network_type="internet",
            eip_bind_mode="MULTI_BINDED",
            client_token="tf-CreateNatGateway-1",
            tag=[vm.CreateNatGatewayRequestTag(key="Created", value="TF")],
        )
    ).body
    gateway_id = created.nat_gateway_id
    read = w.gateway(gateway_id)
    assert read.status == "Available"
    # what resourceAliCloudNatGatewayRead sets
    assert (read.name, read.description, read.vpc_id, read.nat_type, read.network_type) == (
        "tf-nat",
        "by terraform",
        w.vpc_id,
        "Enhanced",
        "internet",
    )
    assert (read.instance_charge_type, read.internet_charge_type, read.eip_bind_mode) == (
        "PostPaid",
        "PayByLcu",
        "MULTI_BINDED",
    )
    assert read.nat_gateway_private_info.vswitch_id == w.vswitch_id
    assert (read.deletion_protection, read.icmp_reply_enabled, read.private_link_enabled) == (
        False,
        True,
        False,
    )
    snat_table = read.snat_table_ids.snat_table_id[0]
    forward_table = read.forward_table_ids.forward_table_id[0]
    tags = vpc.list_tag_resources(
        vm.ListTagResourcesRequest(region_id=REGION, resource_type="NATGATEWAY", resource_id=[gateway_id])
    ).body.tag_resources.tag_resource
    assert [(t.tag_key, t.tag_value) for t in tags] == [("Created", "TF")]

    # alicloud_eip_address + alicloud_eip_association: AssociateEipAddress, wait for InUse
    eip = vpc.allocate_eip_address(vm.AllocateEipAddressRequest(region_id=REGION, name="tf-eip")).body
    vpc.associate_eip_address(
        vm.AssociateEipAddressRequest(
            region_id=REGION, allocation_id=eip.allocation_id, instance_id=gateway_id, instance_type="Nat"
        )
    )
    association = w.eip_row(eip.allocation_id)
    assert (association.status, association.instance_id, association.instance_type) == (
        "InUse",
        gateway_id,
        "Nat",
    )

    # alicloud_snat_entry: id "<snat table>:<snat entry>", read through DescribeSnatTableEntries
    snat_id = vpc.create_snat_entry(
        vm.CreateSnatEntryRequest(
            region_id=REGION,
            snat_table_id=snat_table,
            source_vswitch_id=w.vswitch_id,
            snat_ip=eip.eip_address,
            snat_entry_name="tf-snat",
            client_token="tf-CreateSnatEntry-1",
        )
    ).body.snat_entry_id
    [snat] = vpc.describe_snat_table_entries(
        vm.DescribeSnatTableEntriesRequest(region_id=REGION, snat_table_id=snat_table, snat_entry_id=snat_id)
    ).body.snat_table_entries.snat_table_entry
    assert (snat.status, snat.snat_ip, snat.source_vswitch_id, snat.snat_entry_name) == (
        "Available",
        eip.eip_address,
        w.vswitch_id,
        "tf-snat",
    )

    # alicloud_forward_entry: id "<forward table>:<forward entry>"
    forward_id = vpc.create_forward_entry(
        vm.CreateForwardEntryRequest(
            region_id=REGION,
            forward_table_id=forward_table,
            external_ip=eip.eip_address,
            external_port="80",
            ip_protocol="tcp",
            internal_ip="10.93.1.8",
            internal_port="8080",
            forward_entry_name="tf-dnat",
            port_break=False,
        )
    ).body.forward_entry_id
    [forward] = vpc.describe_forward_table_entries(
        vm.DescribeForwardTableEntriesRequest(
            region_id=REGION, forward_table_id=forward_table, forward_entry_id=forward_id
        )
    ).body.forward_table_entries.forward_table_entry
    assert (forward.status, forward.external_ip, forward.internal_ip, forward.ip_protocol) == (
        "Available",
        eip.eip_address,
        "10.93.1.8",
        "tcp",
    )

    # destroy: the entries and the association go before the gateway; the association is
    # retried while an entry still uses the address (the provider retries on these codes)
    early = error_of(lambda: w.unassociate(eip.allocation_id, gateway_id))
    assert early.code == "InvalidIpStatus.HasBeenUsedBySnatTable"
    vpc.delete_snat_entry(
        vm.DeleteSnatEntryRequest(region_id=REGION, snat_table_id=snat_table, snat_entry_id=snat_id)
    )
    vpc.delete_forward_entry(
        vm.DeleteForwardEntryRequest(
            region_id=REGION, forward_table_id=forward_table, forward_entry_id=forward_id
        )
    )
    # (the provider waits for each entry to be gone: DescribeSnatTableEntries/...ForwardTableEntries empty)
    assert listed_entries(vpc, snat_table, snat_id, forward_table, forward_id) == (0, 0)
    w.unassociate(eip.allocation_id, gateway_id)
    assert w.eip_row(eip.allocation_id).status == "Available"
    w.delete(gateway_id, force=False)
    assert w.gateways(nat_gateway_id=gateway_id).total_count == 0
    vpc.release_eip_address(vm.ReleaseEipAddressRequest(region_id=REGION, allocation_id=eip.allocation_id))
    vpc.delete_vswitch(vm.DeleteVSwitchRequest(region_id=REGION, v_switch_id=w.vswitch_id))


def listed_entries(
    vpc: Any, snat_table: str, snat_id: str, forward_table: str, forward_id: str
) -> tuple[int, int]:
    """How many of these SNAT and DNAT entries are still listed."""
    snats = vpc.describe_snat_table_entries(
        vm.DescribeSnatTableEntriesRequest(region_id=REGION, snat_table_id=snat_table, snat_entry_id=snat_id)
    ).body.total_count
    forwards = vpc.describe_forward_table_entries(
        vm.DescribeForwardTableEntriesRequest(
            region_id=REGION, forward_table_id=forward_table, forward_entry_id=forward_id
        )
    ).body.total_count
    return int(snats), int(forwards)
