"""EIPs and public IPs through the official SDKs, against an emulator with a small public range:
allocate, associate, describe, modify, unassociate, release; public IPs from
InternetMaxBandwidthOut and AllocatePublicIpAddress; ConvertNatPublicIpToEip; the errors ECS
answers (no range, quota, status, association); releasing an instance frees its addresses."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em
from alibabacloud_vpc20160428 import models as vm

from ..conftest import LiveServer, start_server, stop_server, tea_vpc
from .test_instances_api import Lab, error_of
from .test_vpc_api import REGION

RANGE = "198.51.100.0/28"  # 14 host addresses, one of them the gateway: 13 to hand out
GATEWAY = "198.51.100.1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    started = start_server(
        tmp_path_factory.mktemp("eips"),
        None,
        "sqlite",
        ["--throttle-rate", "0", "--public-cidr", RANGE, "--public-gateway", GATEWAY],
    )
    yield started
    stop_server(started)


class World(Lab):
    def __init__(self, server: LiveServer, cidr: str) -> None:
        key = server.create_account(f"eip-{uuid.uuid4().hex[:8]}")
        super().__init__(server, key, cidr)
        self.vpc = tea_vpc(server, key)

    def allocate(self, **fields: Any) -> Any:
        return self.vpc.allocate_eip_address(vm.AllocateEipAddressRequest(region_id=REGION, **fields)).body

    def eips(self, **fields: Any) -> list[Any]:
        body = self.vpc.describe_eip_addresses(
            vm.DescribeEipAddressesRequest(region_id=REGION, page_size=100, **fields)
        ).body
        return list(body.eip_addresses.eip_address)

    def eip(self, allocation_id: str) -> Any:
        [found] = self.eips(allocation_id=allocation_id)
        return found

    def associate(self, allocation_id: str, instance_id: str, **fields: Any) -> None:
        self.vpc.associate_eip_address(
            vm.AssociateEipAddressRequest(
                region_id=REGION, allocation_id=allocation_id, instance_id=instance_id, **fields
            )
        )

    def unassociate(self, allocation_id: str, **fields: Any) -> None:
        self.vpc.unassociate_eip_address(
            vm.UnassociateEipAddressRequest(region_id=REGION, allocation_id=allocation_id, **fields)
        )

    def release(self, allocation_id: str) -> None:
        self.vpc.release_eip_address(
            vm.ReleaseEipAddressRequest(region_id=REGION, allocation_id=allocation_id)
        )

    def instance(self, instance_id: str) -> Any:
        body = self.ecs.describe_instances(
            em.DescribeInstancesRequest(region_id=REGION, instance_ids=f'["{instance_id}"]')
        ).body
        return body.instances.instance[0]

    def interface(self, eni_id: str) -> Any:
        body = self.ecs.describe_network_interfaces(
            em.DescribeNetworkInterfacesRequest(region_id=REGION, network_interface_id=[eni_id])
        ).body
        return body.network_interface_sets.network_interface_set[0]

    def running(self, **fields: Any) -> str:
        [instance_id] = self.run(**fields)
        assert self.wait(instance_id, "Running") == "Running"
        return instance_id

    def delete(self, instance_id: str) -> None:
        self.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))


def in_range(ip: str) -> bool:
    return IPv4Address(ip) in IPv4Network(RANGE) and ip != GATEWAY


def test_eip_life_cycle_with_an_instance(server: LiveServer) -> None:
    w = World(server, "10.91.0.0/16")
    made = w.allocate(name="web", description="front", internet_charge_type="PayByTraffic", client_token="t1")
    again = w.allocate(
        name="web", description="front", internet_charge_type="PayByTraffic", client_token="t1"
    )
    assert made.allocation_id.startswith("eip-") and in_range(made.eip_address)
    assert (again.allocation_id, again.eip_address) == (made.allocation_id, made.eip_address)
    eip = w.eip(made.allocation_id)
    assert (eip.status, eip.bandwidth, eip.isp, eip.name, eip.description) == (
        "Available",
        "5",
        "BGP",
        "web",
        "front",
    )
    assert (eip.internet_charge_type, eip.charge_type, eip.instance_id) == ("PayByTraffic", "PostPaid", "")

    instance_id = w.running()
    primary = w.instance(instance_id).network_interfaces.network_interface[0]
    w.associate(made.allocation_id, instance_id, private_ip_address=primary.primary_ip_address)
    eip = w.eip(made.allocation_id)
    assert (eip.status, eip.instance_id, eip.instance_type, eip.private_ip_address) == (
        "InUse",
        instance_id,
        "EcsInstance",
        primary.primary_ip_address,
    )
    shown = w.instance(instance_id)
    assert (shown.eip_address.allocation_id, shown.eip_address.ip_address) == (
        made.allocation_id,
        made.eip_address,
    )
    assert shown.public_ip_address.ip_address == []
    assert (
        w.interface(primary.network_interface_id).associated_public_ip.public_ip_address == made.eip_address
    )
    assert [e.allocation_id for e in w.eips(associated_instance_id=instance_id)] == [made.allocation_id]
    assert [e.allocation_id for e in w.eips(status="InUse")] == [made.allocation_id]
    assert w.eips(status="Available") == []
    assert [e.allocation_id for e in w.eips(eip_address=made.eip_address)] == [made.allocation_id]
    found = w.ecs.describe_instances(
        em.DescribeInstancesRequest(region_id=REGION, eip_addresses=f'["{made.eip_address}"]')
    ).body
    assert [i.instance_id for i in found.instances.instance] == [instance_id]

    # bandwidth applies while associated
    w.vpc.modify_eip_address_attribute(
        vm.ModifyEipAddressAttributeRequest(
            region_id=REGION, allocation_id=made.allocation_id, bandwidth="20", name="web2"
        )
    )
    assert (w.eip(made.allocation_id).bandwidth, w.eip(made.allocation_id).name) == ("20", "web2")
    assert w.instance(instance_id).eip_address.bandwidth == 20

    # associated: not released; a second EIP is refused on the same instance
    assert error_of(lambda: w.release(made.allocation_id)).code == "IncorrectEipStatus"
    other = w.allocate()
    assert (
        error_of(lambda: w.associate(other.allocation_id, instance_id)).code
        == "InvalidAssociation.Duplicated"
    )
    w.unassociate(made.allocation_id, instance_id=instance_id)
    assert w.eip(made.allocation_id).status == "Available"
    assert error_of(lambda: w.unassociate(made.allocation_id)).code == "IncorrectEipStatus"

    # releasing the instance makes its EIP Available again
    w.associate(other.allocation_id, instance_id)
    w.delete(instance_id)
    assert (w.eip(other.allocation_id).status, w.eip(other.allocation_id).instance_id) == ("Available", "")
    for allocation_id in (made.allocation_id, other.allocation_id):
        w.release(allocation_id)
    assert w.eips() == []


def test_eip_on_a_secondary_interface_and_the_refusals(server: LiveServer) -> None:
    w = World(server, "10.92.0.0/16")
    eni_id = w.ecs.create_network_interface(
        em.CreateNetworkInterfaceRequest(
            region_id=REGION, v_switch_id=w.vswitch_id, security_group_id=w.group_id
        )
    ).body.network_interface_id
    eip = w.allocate(bandwidth="10")
    w.associate(eip.allocation_id, eni_id, instance_type="NetworkInterface")
    assert w.interface(eni_id).associated_public_ip.allocation_id == eip.allocation_id
    assert [e.allocation_id for e in w.eips(associated_instance_type="NetworkInterface")] == [
        eip.allocation_id
    ]
    deleting = error_of(
        lambda: w.ecs.delete_network_interface(
            em.DeleteNetworkInterfaceRequest(region_id=REGION, network_interface_id=eni_id)
        )
    )
    assert deleting.code == "InvalidOperation.InvalidEniState"
    w.unassociate(eip.allocation_id, instance_id=eni_id, instance_type="NetworkInterface")

    slb = error_of(lambda: w.associate(eip.allocation_id, "lb-123", instance_type="SlbInstance"))
    assert slb.code == "InvalidParameter.NotSupported" and '"InstanceType"' in slb.message
    nat = error_of(lambda: w.associate(eip.allocation_id, "ngw-123", instance_type="Nat"))
    assert (nat.code, nat.status_code) == ("InvalidNatGatewayId.NotFound", 404)
    missing = error_of(
        lambda: w.associate("eip-doesnotexist0000000", eni_id, instance_type="NetworkInterface")
    )
    assert (missing.code, missing.status_code) == ("InvalidAllocationId.NotFound", 404)
    ghost = error_of(lambda: w.associate(eip.allocation_id, "i-doesnotexist000000000"))
    assert ghost.code == "InvalidInstanceId.NotFound"
    bandwidth = error_of(lambda: w.allocate(bandwidth="501"))
    assert bandwidth.code == "InvalidParameter"
    isp = error_of(lambda: w.allocate(isp="ChinaTelecom"))
    assert isp.code == "InvalidParameter.NotSupported"
    w.release(eip.allocation_id)


def test_public_ip_from_bandwidth_allocate_convert_and_release(server: LiveServer) -> None:
    w = World(server, "10.93.0.0/16")
    with_ip = w.running(internet_max_bandwidth_out=5, internet_charge_type="PayByBandwidth")
    shown = w.instance(with_ip)
    [address] = shown.public_ip_address.ip_address
    assert in_range(address)
    assert (shown.internet_max_bandwidth_out, shown.internet_max_bandwidth_in) == (5, 10)
    assert shown.internet_charge_type == "PayByBandwidth"
    eni_id = shown.network_interfaces.network_interface[0].network_interface_id
    public = w.interface(eni_id).associated_public_ip
    assert (public.public_ip_address, public.allocation_id) == (address, "")
    # an instance's public IP is not an EIP, and AllocatePublicIpAddress answers the one it has
    assert w.eips() == []
    allocated = w.ecs.allocate_public_ip_address(em.AllocatePublicIpAddressRequest(instance_id=with_ip)).body
    assert allocated.ip_address == address
    eip = w.allocate()
    refused = error_of(lambda: w.associate(eip.allocation_id, with_ip))
    assert refused.code == "InvalidAssociation.Duplicated"

    # live bandwidth, then the public IP becomes an EIP with the same address
    w.ecs.modify_instance_network_spec(
        em.ModifyInstanceNetworkSpecRequest(instance_id=with_ip, internet_max_bandwidth_out=8)
    )
    assert w.instance(with_ip).internet_max_bandwidth_out == 8
    w.ecs.convert_nat_public_ip_to_eip(
        em.ConvertNatPublicIpToEipRequest(region_id=REGION, instance_id=with_ip)
    )
    shown = w.instance(with_ip)
    assert shown.public_ip_address.ip_address == [] and shown.eip_address.ip_address == address
    converted = w.eip(shown.eip_address.allocation_id)
    assert (converted.status, converted.bandwidth, converted.instance_id) == ("InUse", "8", with_ip)

    # no bandwidth: AllocatePublicIpAddress is denied until ModifyInstanceNetworkSpec gives some
    bare = w.running()
    denied = error_of(
        lambda: w.ecs.allocate_public_ip_address(em.AllocatePublicIpAddressRequest(instance_id=bare))
    )
    assert denied.code == "OperationDenied"
    w.ecs.modify_instance_network_spec(
        em.ModifyInstanceNetworkSpecRequest(instance_id=bare, internet_max_bandwidth_out=3)
    )
    assert w.instance(bare).public_ip_address.ip_address == []  # pay-as-you-go: not without asking
    given = w.ecs.allocate_public_ip_address(
        em.AllocatePublicIpAddressRequest(instance_id=bare)
    ).body.ip_address
    assert w.instance(bare).public_ip_address.ip_address == [given]
    found = w.ecs.describe_instances(
        em.DescribeInstancesRequest(region_id=REGION, public_ip_addresses=f'["{given}"]')
    ).body
    assert [i.instance_id for i in found.instances.instance] == [bare]
    # down to 0 Mbit/s releases it
    w.ecs.modify_instance_network_spec(
        em.ModifyInstanceNetworkSpecRequest(instance_id=bare, internet_max_bandwidth_out=0)
    )
    assert w.instance(bare).public_ip_address.ip_address == []
    w.ecs.modify_instance_network_spec(
        em.ModifyInstanceNetworkSpecRequest(
            instance_id=bare, internet_max_bandwidth_out=2, allocate_public_ip=True
        )
    )
    [again] = w.instance(bare).public_ip_address.ip_address

    # releasing instances: the public IP goes back, the converted EIP stays, Available
    w.delete(bare)
    w.delete(with_ip)
    assert w.eip(converted.allocation_id).status == "Available"
    assert again not in {e.ip_address for e in w.eips()}
    w.release(converted.allocation_id)
    w.release(eip.allocation_id)


def test_the_range_runs_out_and_the_quota(server: LiveServer) -> None:
    w = World(server, "10.94.0.0/16")
    taken = []
    while True:
        try:
            taken.append(w.allocate())
        except Exception as error:  # noqa: BLE001 - the SDK's ClientException
            code = getattr(error, "code", "")
            break
    other = World(server, "10.95.0.0/16")
    # 20 per account and region, or the range (13 addresses, some held by other tests) is full
    assert code == "ReserveIpFail", code
    assert 0 < len(taken) <= 13 and all(in_range(t.eip_address) for t in taken)
    assert len({t.eip_address for t in taken}) == len(taken)
    full = error_of(lambda: other.run(internet_max_bandwidth_out=1))
    assert full.code == "InsufficientPublicIp"
    dry = error_of(lambda: other.run(internet_max_bandwidth_out=1, dry_run=True))
    assert dry.code == "InsufficientPublicIp"
    for t in taken:
        w.release(t.allocation_id)
    # with room again, a dry run answers DryRunOperation and takes nothing
    before = len(other.eips())
    dry = error_of(lambda: other.run(internet_max_bandwidth_out=1, dry_run=True))
    assert dry.code == "DryRunOperation" and len(other.eips()) == before


def test_quota_of_twenty_eips(tmp_path: Path) -> None:
    started = start_server(
        tmp_path, None, "sqlite", ["--throttle-rate", "0", "--public-cidr", "203.0.113.0/24"]
    )
    try:
        w = World(started, "10.96.0.0/16")
        for _ in range(20):
            w.allocate()
        assert error_of(w.allocate).code == "QuotaExceeded.Eip"
    finally:
        stop_server(started)


def test_without_a_public_range_public_features_answer_an_error(tmp_path: Path) -> None:
    started = start_server(tmp_path, None, "sqlite", ["--throttle-rate", "0"])
    try:
        w = World(started, "10.97.0.0/16")
        assert error_of(w.allocate).code == "ReserveIpFail"
        error = error_of(lambda: w.run(internet_max_bandwidth_out=5))
        assert error.code == "InsufficientPublicIp" and "--public-cidr" in error.message
        instance_id = w.running()
        w.ecs.modify_instance_network_spec(
            em.ModifyInstanceNetworkSpecRequest(instance_id=instance_id, internet_max_bandwidth_out=5)
        )
        assert (
            error_of(
                lambda: w.ecs.allocate_public_ip_address(
                    em.AllocatePublicIpAddressRequest(instance_id=instance_id)
                )
            ).code
            == "InsufficientPublicIp"
        )
    finally:
        stop_server(started)
