"""Attaching network interfaces to instances and secondary private addresses, through the
official SDK against the emulator (fake compute): the status rules (Available -> Attaching ->
InUse -> Detaching -> Available, finished by the agent), ECS's error codes, quotas by instance
type, another account's IDs, and how Describe* show it all. The data plane is in tests/net and
tests/vm."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em
from alibabacloud_vpc20160428 import models as vm

from ..conftest import LiveServer, start_server, stop_server, tea_vpc
from .test_instances_api import Lab, error_of
from .test_vpc_api import REGION, wait_vswitch

OTHER_ZONE = "cn-hangzhou-g"  # the labs' vSwitches are in cn-hangzhou-h


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    started = start_server(tmp_path_factory.mktemp("eni"), None, "sqlite", ["--throttle-rate", "0"])
    yield started
    stop_server(started)


class World(Lab):
    """An account with a VPC, a vSwitch (x.x.1.0/24) and a security group; instances are
    ecs.g7.large: 3 interfaces per instance, 6 private addresses per interface."""

    def __init__(self, server: LiveServer, cidr: str) -> None:
        self.key = server.create_account(f"eni-{uuid.uuid4().hex[:8]}")
        super().__init__(server, self.key, cidr)
        self.vpc = tea_vpc(server, self.key)

    def eni(self, vswitch_id: str | None = None, **fields: Any) -> str:
        return str(
            self.ecs.create_network_interface(
                em.CreateNetworkInterfaceRequest(
                    region_id=REGION,
                    v_switch_id=vswitch_id or self.vswitch_id,
                    security_group_id=self.group_id,
                    **fields,
                )
            ).body.network_interface_id
        )

    def interface(self, eni_id: str) -> Any:
        return self.ecs.describe_network_interface_attribute(
            em.DescribeNetworkInterfaceAttributeRequest(region_id=REGION, network_interface_id=eni_id)
        ).body

    def addresses(self, eni_id: str) -> list[tuple[str, bool]]:
        return [
            (p.private_ip_address, p.primary) for p in self.interface(eni_id).private_ip_sets.private_ip_set
        ]

    def attach(self, eni_id: str, instance_id: str, **fields: Any) -> None:
        self.ecs.attach_network_interface(
            em.AttachNetworkInterfaceRequest(
                region_id=REGION, network_interface_id=eni_id, instance_id=instance_id, **fields
            )
        )

    def detach(self, eni_id: str, instance_id: str) -> None:
        self.ecs.detach_network_interface(
            em.DetachNetworkInterfaceRequest(
                region_id=REGION, network_interface_id=eni_id, instance_id=instance_id
            )
        )

    def assign(self, eni_id: str, **fields: Any) -> Any:
        return self.ecs.assign_private_ip_addresses(
            em.AssignPrivateIpAddressesRequest(region_id=REGION, network_interface_id=eni_id, **fields)
        ).body

    def unassign(self, eni_id: str, addresses: list[str]) -> None:
        self.ecs.unassign_private_ip_addresses(
            em.UnassignPrivateIpAddressesRequest(
                region_id=REGION, network_interface_id=eni_id, private_ip_address=addresses
            )
        )

    def eni_status(self, eni_id: str, wanted: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        status = str(self.interface(eni_id).status)
        while status != wanted and time.monotonic() < deadline:
            time.sleep(0.1)
            status = str(self.interface(eni_id).status)
        return status

    def running(self, **fields: Any) -> str:
        [instance_id] = self.run(**fields)
        assert self.wait(instance_id, "Running") == "Running"
        return instance_id

    def instance(self, instance_id: str) -> Any:
        body = self.ecs.describe_instances(
            em.DescribeInstancesRequest(region_id=REGION, instance_ids=f'["{instance_id}"]')
        ).body
        return body.instances.instance[0]

    def vswitch(self, cidr: str, zone: str) -> str:
        vswitch_id = str(
            self.vpc.create_vswitch(
                vm.CreateVSwitchRequest(region_id=REGION, vpc_id=self.vpc_id, zone_id=zone, cidr_block=cidr)
            ).body.v_switch_id
        )
        assert wait_vswitch(self.vpc, vswitch_id).status == "Available"
        return vswitch_id

    def available_ips(self) -> int:
        body = self.vpc.describe_vswitch_attributes(
            vm.DescribeVSwitchAttributesRequest(region_id=REGION, v_switch_id=self.vswitch_id)
        ).body
        return int(body.available_ip_address_count)


def test_attach_and_detach_on_a_running_instance(server: LiveServer) -> None:
    w = World(server, "10.81.0.0/16")
    instance_id = w.running()
    eni_id = w.eni(secondary_private_ip_address_count=2)
    assert [primary for _, primary in w.addresses(eni_id)] == [True, False, False]
    w.attach(eni_id, instance_id)
    assert w.interface(eni_id).status in ("Attaching", "InUse")
    assert w.eni_status(eni_id, "InUse") == "InUse"
    attrs = w.interface(eni_id)
    assert (attrs.instance_id, attrs.attachment.instance_id) == (instance_id, instance_id)
    listed = w.ecs.describe_network_interfaces(
        em.DescribeNetworkInterfacesRequest(region_id=REGION, instance_id=instance_id)
    ).body.network_interface_sets.network_interface_set
    assert sorted(e.type for e in listed) == ["Primary", "Secondary"]

    nics = w.instance(instance_id).network_interfaces.network_interface
    assert [(n.type, n.network_interface_id) for n in nics][1] == ("Secondary", eni_id)
    assert [p.private_ip_address for p in nics[1].private_ip_sets.private_ip_set] == [
        address for address, _ in w.addresses(eni_id)
    ]

    # the agent plugged it into the (fake) VM; detaching unplugs it
    busy = error_of(lambda: w.attach(eni_id, instance_id))
    assert (busy.code, busy.status_code) == ("InvalidOperation.InvalidEniState", 400)
    deleting = error_of(
        lambda: w.ecs.delete_network_interface(
            em.DeleteNetworkInterfaceRequest(region_id=REGION, network_interface_id=eni_id)
        )
    )
    assert deleting.code == "InvalidOperation.InvalidEniState"
    w.detach(eni_id, instance_id)
    assert w.eni_status(eni_id, "Available") == "Available"
    assert w.interface(eni_id).instance_id == ""
    assert len(w.instance(instance_id).network_interfaces.network_interface) == 1
    again = error_of(lambda: w.detach(eni_id, instance_id))
    assert again.code == "InvalidOperation.InvalidEniState"
    w.ecs.delete_network_interface(
        em.DeleteNetworkInterfaceRequest(region_id=REGION, network_interface_id=eni_id)
    )


def test_attach_to_a_stopped_instance_and_start_it(server: LiveServer) -> None:
    w = World(server, "10.82.0.0/16")
    instance_id = w.running()
    w.ecs.stop_instance(em.StopInstanceRequest(instance_id=instance_id))
    assert w.wait(instance_id, "Stopped") == "Stopped"
    eni_id = w.eni()
    w.attach(eni_id, instance_id)
    assert w.eni_status(eni_id, "InUse") == "InUse"
    w.ecs.start_instance(em.StartInstanceRequest(instance_id=instance_id))
    assert w.wait(instance_id, "Running") == "Running"
    assert w.interface(eni_id).status == "InUse"
    # released with its instance, a secondary interface stays (detached, Available)
    w.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))
    assert w.eni_status(eni_id, "Available") == "Available"


def test_attachment_refusals_and_the_interface_quota(server: LiveServer) -> None:
    w = World(server, "10.83.0.0/16")
    instance_id = w.running()
    primary = w.instance(instance_id).network_interfaces.network_interface[0].network_interface_id
    wrong_type = error_of(lambda: w.attach(primary, instance_id))
    assert (wrong_type.code, wrong_type.status_code) == ("InvalidOperation.InvalidEniType", 403)
    not_primary = error_of(lambda: w.detach(primary, instance_id))
    assert not_primary.code == "InvalidOperation.DetachPrimaryEniNotAllowed"

    # another zone of the VPC, another VPC
    elsewhere = w.eni(w.vswitch("10.83.2.0/24", OTHER_ZONE))
    zone = error_of(lambda: w.attach(elsewhere, instance_id))
    assert (zone.code, zone.status_code) == ("InvalidOperation.AvailabilityZoneMismatch", 403)
    other = Lab(server, w.key, "10.84.0.0/16")
    foreign_vpc = str(
        other.ecs.create_network_interface(
            em.CreateNetworkInterfaceRequest(
                region_id=REGION, v_switch_id=other.vswitch_id, security_group_id=other.group_id
            )
        ).body.network_interface_id
    )
    vpc = error_of(lambda: w.attach(foreign_vpc, instance_id))
    assert (vpc.code, vpc.status_code) == ("InvalidOperation.VpcMismatch", 403)

    # ecs.g7.large: 3 interfaces, the primary included
    first, second, third = w.eni(), w.eni(), w.eni()
    w.attach(first, instance_id)
    w.attach(second, instance_id)
    full = error_of(lambda: w.attach(third, instance_id))
    assert (full.code, full.status_code) == ("EniPerInstanceLimitExceeded", 403)
    assert w.eni_status(second, "InUse") == "InUse"
    wrong_instance = error_of(lambda: w.detach(third, instance_id))
    assert wrong_instance.code == "InvalidOperation.InvalidEniState"

    # the instance must be Running or Stopped (StopInstance answers with it Stopping)
    w.ecs.stop_instance(em.StopInstanceRequest(instance_id=instance_id))
    stopping = error_of(lambda: w.detach(first, instance_id))
    assert (stopping.code, stopping.status_code) == ("InvalidOperation.InvalidEcsState", 400)
    assert w.wait(instance_id, "Stopped") == "Stopped"
    w.detach(first, instance_id)
    assert w.eni_status(first, "Available") == "Available"

    missing_eni = error_of(lambda: w.attach("eni-doesnotexist00000000", instance_id))
    assert (missing_eni.code, missing_eni.status_code) == ("InvalidEniId.NotFound", 404)
    missing_instance = error_of(lambda: w.attach(third, "i-doesnotexist000000000"))
    assert (missing_instance.code, missing_instance.status_code) == ("InvalidEcsId.NotFound", 404)
    missing = error_of(
        lambda: w.ecs.attach_network_interface(
            em.AttachNetworkInterfaceRequest(region_id=REGION, network_interface_id=third)
        )
    )
    assert missing.code.startswith("MissingParameter")


def test_undone_parameters_are_refused(server: LiveServer) -> None:
    w = World(server, "10.85.0.0/16")
    instance_id = w.running()
    eni_id = w.eni()
    for fields, name in (
        ({"trunk_network_instance_id": "eni-trunk0000000000000"}, "TrunkNetworkInstanceId"),
        ({"network_card_index": 1}, "NetworkCardIndex"),
        ({"wait_for_network_configuration_ready": True}, "WaitForNetworkConfigurationReady"),
    ):
        refused = error_of(lambda fields=fields: w.attach(eni_id, instance_id, **fields))
        assert refused.code == "InvalidParameter.NotSupported" and name in refused.message
    assert w.interface(eni_id).status == "Available"
    w.attach(eni_id, instance_id, network_card_index=0)
    assert w.eni_status(eni_id, "InUse") == "InUse"
    prefix = error_of(lambda: w.assign(eni_id, ipv_4prefix_count=1))
    assert prefix.code == "InvalidParameter.NotSupported" and "Ipv4PrefixCount" in prefix.message


def test_another_accounts_ids_are_not_found(server: LiveServer) -> None:
    mine, theirs = World(server, "10.86.0.0/16"), World(server, "10.86.0.0/16")
    instance_id = theirs.running()
    their_eni = theirs.eni()
    my_eni = mine.eni()
    assert mine.ecs is not theirs.ecs
    for call in (
        lambda: mine.attach(their_eni, instance_id),
        lambda: mine.assign(their_eni, secondary_private_ip_address_count=1),
        lambda: mine.unassign(their_eni, ["10.86.1.9"]),
        lambda: mine.detach(their_eni, instance_id),
    ):
        assert error_of(call).code == "InvalidEniId.NotFound"
    assert error_of(lambda: mine.attach(my_eni, instance_id)).code == "InvalidEcsId.NotFound"
    assert theirs.interface(their_eni).status == "Available"


def test_secondary_private_addresses(server: LiveServer) -> None:
    w = World(server, "10.87.0.0/16")
    free_before = w.available_ips()
    eni_id = w.eni(private_ip_address=["10.87.1.50", "10.87.1.51"])
    assert w.addresses(eni_id)[1:] == [("10.87.1.50", False), ("10.87.1.51", False)]
    assert w.available_ips() == free_before - 3

    named = w.assign(eni_id, private_ip_address=["10.87.1.60"])
    assert named.assigned_private_ip_addresses_set.network_interface_id == eni_id
    assert named.assigned_private_ip_addresses_set.private_ip_set.private_ip_address == ["10.87.1.60"]
    counted = w.assign(eni_id, secondary_private_ip_address_count=2)
    picked = counted.assigned_private_ip_addresses_set.private_ip_set.private_ip_address
    assert len(picked) == 2 and all(IPv4Address(ip) in IPv4Network("10.87.1.0/24") for ip in picked)
    held = [address for address, _ in w.addresses(eni_id)]
    assert held[1:] == ["10.87.1.50", "10.87.1.51", "10.87.1.60", *picked]

    # a secondary address is found by DescribeNetworkInterfaces' PrivateIpAddress.N
    found = w.ecs.describe_network_interfaces(
        em.DescribeNetworkInterfacesRequest(region_id=REGION, private_ip_address=["10.87.1.60"])
    ).body.network_interface_sets.network_interface_set
    assert [e.network_interface_id for e in found] == [eni_id]
    # and never handed out again: not as an instance's address, not as another interface's
    instance_id = w.running(private_ip_address=None)
    primary_ip = w.instance(instance_id).vpc_attributes.private_ip_address.ip_address[0]
    assert primary_ip not in held
    taken = error_of(lambda: w.eni(primary_ip_address="10.87.1.60"))
    assert taken.code == "InvalidPrivateIpAddress.Duplicated"
    also_taken = error_of(lambda: w.assign(eni_id, private_ip_address=[primary_ip]))
    assert also_taken.code == "InvalidPrivateIpAddress.Duplicated"

    w.unassign(eni_id, ["10.87.1.60", picked[0]])
    assert [a for a, _ in w.addresses(eni_id)][1:] == ["10.87.1.50", "10.87.1.51", picked[1]]
    not_held = error_of(lambda: w.unassign(eni_id, ["10.87.1.60"]))
    assert (not_held.code, not_held.status_code) == ("InvalidIp.IpUnassigned", 403)
    the_primary = error_of(lambda: w.unassign(eni_id, [held[0]]))
    assert the_primary.code == "InvalidIp.IpUnassigned"
    # the address is free again
    again = w.assign(eni_id, private_ip_address=["10.87.1.60"])
    assert again.assigned_private_ip_addresses_set.private_ip_set.private_ip_address == ["10.87.1.60"]


def test_address_refusals_and_quotas(server: LiveServer) -> None:
    w = World(server, "10.88.0.0/16")
    eni_id = w.eni()
    both = error_of(
        lambda: w.assign(eni_id, private_ip_address=["10.88.1.20"], secondary_private_ip_address_count=1)
    )
    assert both.code == "InvalidParameter"
    neither = error_of(lambda: w.assign(eni_id))
    assert neither.code == "MissingParameter"
    twice = error_of(lambda: w.assign(eni_id, private_ip_address=["10.88.1.20", "10.88.1.20"]))
    assert (twice.code, twice.status_code) == ("InvalidIp.IpRepeated", 403)
    outside = error_of(lambda: w.assign(eni_id, private_ip_address=["10.99.0.5"]))
    assert outside.code == "InvalidPrivateIpAddress.Mismatch"
    bad = error_of(lambda: w.assign(eni_id, private_ip_address=["not-an-address"]))
    assert bad.status_code == 400
    assert len(w.addresses(eni_id)) == 1  # nothing of a refused request was kept

    # unattached: at most 10 secondary addresses
    w.assign(eni_id, secondary_private_ip_address_count=10)
    over = error_of(lambda: w.assign(eni_id, secondary_private_ip_address_count=1))
    assert (over.code, over.status_code) == ("InvalidOperation.Ipv4CountExceeded", 403)
    too_many = error_of(lambda: w.eni(secondary_private_ip_address_count=11))
    assert too_many.code == "InvalidOperation.Ipv4CountExceeded"

    # ecs.g7.large: 6 addresses per interface, so 5 secondary ones
    instance_id = w.running()
    crowded = error_of(lambda: w.attach(eni_id, instance_id))
    assert crowded.code == "InvalidOperation.Ipv4CountExceeded"
    small = w.eni(secondary_private_ip_address_count=4)
    w.attach(small, instance_id)
    assert w.eni_status(small, "InUse") == "InUse"
    w.assign(small, secondary_private_ip_address_count=1)
    full = error_of(lambda: w.assign(small, secondary_private_ip_address_count=1))
    assert full.code == "InvalidOperation.Ipv4CountExceeded"
    # the primary interface of the instance too
    primary = w.instance(instance_id).network_interfaces.network_interface[0].network_interface_id
    w.assign(primary, private_ip_address=["10.88.1.200"])
    nics = w.instance(instance_id).network_interfaces.network_interface
    assert ("10.88.1.200", False) in [
        (p.private_ip_address, p.primary) for p in nics[0].private_ip_sets.private_ip_set
    ]


def test_client_token_assigns_once(server: LiveServer) -> None:
    w = World(server, "10.89.0.0/16")
    eni_id = w.eni()
    token = uuid.uuid4().hex
    first = w.assign(eni_id, secondary_private_ip_address_count=2, client_token=token)
    second = w.assign(eni_id, secondary_private_ip_address_count=2, client_token=token)
    assert (
        first.assigned_private_ip_addresses_set.private_ip_set.private_ip_address
        == second.assigned_private_ip_addresses_set.private_ip_set.private_ip_address
    )
    assert len(w.addresses(eni_id)) == 3


def test_describe_network_interface_attribute(server: LiveServer) -> None:
    w = World(server, "10.90.0.0/16")
    eni_id = w.eni(network_interface_name="data", secondary_private_ip_address_count=1)
    attrs = w.interface(eni_id)
    assert (attrs.network_interface_id, attrs.network_interface_name, attrs.status, attrs.type) == (
        eni_id,
        "data",
        "Available",
        "Secondary",
    )
    assert attrs.security_group_ids.security_group_id == [w.group_id]
    assert attrs.attachment.instance_id == "" and attrs.v_switch_id == w.vswitch_id
    missing = error_of(
        lambda: w.ecs.describe_network_interface_attribute(
            em.DescribeNetworkInterfaceAttributeRequest(
                region_id=REGION, network_interface_id="eni-doesnotexist00000000"
            )
        )
    )
    assert missing.status_code == 404
