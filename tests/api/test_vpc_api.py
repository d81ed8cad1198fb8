"""VPCs, vSwitches and route tables through the official alibabacloud-vpc20160428 client."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import pytest
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_vpc20160428 import models as vm

from ..conftest import LiveServer, tea_vpc

REGION = "cn-hangzhou"
ZONE = "cn-hangzhou-h"


def wait_available(client: Any, vpc_id: str, timeout: float = 30) -> Any:
    """VPCs are Pending until the host agent has built them (as in ECS)."""
    deadline = time.monotonic() + timeout
    while True:
        vpc = client.describe_vpc_attribute(
            vm.DescribeVpcAttributeRequest(region_id=REGION, vpc_id=vpc_id)
        ).body
        if vpc.status == "Available" or time.monotonic() > deadline:
            return vpc
        time.sleep(0.1)


def wait_vswitch(client: Any, vswitch_id: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        vsw = client.describe_vswitch_attributes(
            vm.DescribeVSwitchAttributesRequest(region_id=REGION, v_switch_id=vswitch_id)
        ).body
        if vsw.status == "Available" or time.monotonic() > deadline:
            return vsw
        time.sleep(0.1)


def error_of(call: Any) -> ClientException:
    with pytest.raises(ClientException) as info:
        call()
    return info.value


def test_vpc_lifecycle(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    client = tea_vpc(live, fresh_key)
    created = client.create_vpc(
        vm.CreateVpcRequest(
            region_id=REGION, cidr_block="192.168.0.0/16", vpc_name="lab", description="first"
        )
    ).body
    assert created.vpc_id.startswith("vpc-") and created.vrouter_id.startswith("vrt-")
    assert created.route_table_id.startswith("vtb-")
    vpc = wait_available(client, created.vpc_id)
    assert (vpc.status, vpc.cidr_block, vpc.vpc_name, vpc.description) == (
        "Available",
        "192.168.0.0/16",
        "lab",
        "first",
    )

    listed = client.describe_vpcs(vm.DescribeVpcsRequest(region_id=REGION, vpc_id=created.vpc_id)).body
    assert listed.total_count == 1 and listed.vpcs.vpc[0].vpc_id == created.vpc_id

    client.modify_vpc_attribute(
        vm.ModifyVpcAttributeRequest(region_id=REGION, vpc_id=created.vpc_id, vpc_name="lab2")
    )
    assert wait_available(client, created.vpc_id).vpc_name == "lab2"

    vsw = client.create_vswitch(
        vm.CreateVSwitchRequest(
            region_id=REGION, vpc_id=created.vpc_id, zone_id=ZONE, cidr_block="192.168.1.0/24"
        )
    ).body
    assert vsw.v_switch_id.startswith("vsw-")
    attrs = client.describe_vswitch_attributes(
        vm.DescribeVSwitchAttributesRequest(region_id=REGION, v_switch_id=vsw.v_switch_id)
    ).body
    assert attrs.cidr_block == "192.168.1.0/24" and attrs.zone_id == ZONE
    assert attrs.available_ip_address_count == 252  # 256 minus the 4 addresses ECS reserves

    error = error_of(lambda: client.delete_vpc(vm.DeleteVpcRequest(region_id=REGION, vpc_id=created.vpc_id)))
    assert error.code == "DependencyViolation.VSwitch" and error.status_code == 400

    deadline = time.monotonic() + 30
    while True:  # the vSwitch is Pending until the agent has built it
        try:
            client.delete_vswitch(vm.DeleteVSwitchRequest(region_id=REGION, v_switch_id=vsw.v_switch_id))
            break
        except ClientException as exc:
            assert exc.code == "IncorrectVSwitchStatus" and time.monotonic() < deadline
            time.sleep(0.1)
    client.delete_vpc(vm.DeleteVpcRequest(region_id=REGION, vpc_id=created.vpc_id))
    error = error_of(
        lambda: client.describe_vpc_attribute(
            vm.DescribeVpcAttributeRequest(region_id=REGION, vpc_id=created.vpc_id)
        )
    )
    assert error.code == "InvalidVpcId.NotFound" and error.status_code == 404


def test_vpc_cidr_rules(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    client = tea_vpc(live, fresh_key)
    default = client.create_vpc(vm.CreateVpcRequest(region_id=REGION)).body
    assert wait_available(client, default.vpc_id).cidr_block == "172.16.0.0/12"
    for bad in ("10.0.0.0/7", "10.0.0.0/29", "100.64.0.0/16", "10.0.0.1/16", "nonsense"):
        error = error_of(partial(client.create_vpc, vm.CreateVpcRequest(region_id=REGION, cidr_block=bad)))
        assert error.code == "InvalidCidrBlock.Malformed", bad

    vpc_id = client.create_vpc(vm.CreateVpcRequest(region_id=REGION, cidr_block="10.10.0.0/16")).body.vpc_id
    wait_available(client, vpc_id)

    def vswitch(cidr: str, zone: str = ZONE) -> Any:
        return client.create_vswitch(
            vm.CreateVSwitchRequest(region_id=REGION, vpc_id=vpc_id, zone_id=zone, cidr_block=cidr)
        )

    vswitch("10.10.0.0/24")
    assert error_of(lambda: vswitch("10.10.0.128/25")).code == "InvalidCidrBlock.Overlapped"
    assert error_of(lambda: vswitch("10.11.0.0/24")).code == "InvalidCidrBlock.NotInVpc"
    assert error_of(lambda: vswitch("10.10.1.0/30")).code == "InvalidCidrBlock.Malformed"
    assert error_of(lambda: vswitch("10.10.2.0/24", "cn-hangzhou-zz")).code == "InvalidZoneId.NotFound"
    assert (
        error_of(
            lambda: client.create_vswitch(
                vm.CreateVSwitchRequest(
                    region_id=REGION, vpc_id="vpc-nothere", zone_id=ZONE, cidr_block="10.0.0.0/24"
                )
            )
        ).code
        == "InvalidVpcId.NotFound"
    )


def test_vpc_quota_and_client_token(live: LiveServer) -> None:
    key = live.create_account(f"vpcquota-{live.backend}")
    client = tea_vpc(live, key)
    first = client.create_vpc(vm.CreateVpcRequest(region_id=REGION, client_token="token-1")).body
    again = client.create_vpc(vm.CreateVpcRequest(region_id=REGION, client_token="token-1")).body
    assert again.vpc_id == first.vpc_id
    error = error_of(
        lambda: client.create_vpc(
            vm.CreateVpcRequest(region_id=REGION, client_token="token-1", cidr_block="10.0.0.0/8")
        )
    )
    assert error.code == "IdempotentParameterMismatch"
    for _ in range(9):
        client.create_vpc(vm.CreateVpcRequest(region_id=REGION))
    error = error_of(lambda: client.create_vpc(vm.CreateVpcRequest(region_id=REGION)))
    assert error.code == "QuotaExceeded.Vpc"
    assert client.describe_vpcs(vm.DescribeVpcsRequest(region_id=REGION, page_size=50)).body.total_count == 10
    # another region has its own quota
    client.create_vpc(vm.CreateVpcRequest(region_id="cn-beijing"))


def test_route_tables(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    client = tea_vpc(live, fresh_key)
    created = client.create_vpc(vm.CreateVpcRequest(region_id=REGION, cidr_block="10.20.0.0/16")).body
    wait_available(client, created.vpc_id)
    client.create_vswitch(
        vm.CreateVSwitchRequest(
            region_id=REGION, vpc_id=created.vpc_id, zone_id=ZONE, cidr_block="10.20.1.0/24"
        )
    )
    tables = client.describe_route_table_list(
        vm.DescribeRouteTableListRequest(region_id=REGION, vpc_id=created.vpc_id)
    ).body
    table = tables.router_table_list.router_table_list_type[0]
    assert (table.route_table_id, table.route_table_type) == (created.route_table_id, "System")
    entries = client.describe_route_entry_list(
        vm.DescribeRouteEntryListRequest(region_id=REGION, route_table_id=created.route_table_id)
    ).body
    destinations = {e.destination_cidr_block: e.type for e in entries.route_entrys.route_entry}
    assert destinations == {"10.20.1.0/24": "System", "100.64.0.0/10": "System"}
    routers = client.describe_vrouters(
        vm.DescribeVRoutersRequest(region_id=REGION, vrouter_id=created.vrouter_id)
    ).body
    assert routers.vrouters.vrouter[0].vpc_id == created.vpc_id
    error = error_of(
        lambda: client.create_route_entry(
            vm.CreateRouteEntryRequest(
                region_id=REGION,
                route_table_id=created.route_table_id,
                destination_cidr_block="10.20.1.0/24",
                next_hop_type="NetworkInterface",
                next_hop_id="eni-x",
            )
        )
    )
    assert error.code == "InvalidDestinationCidrBlock.Conflict"
    error = error_of(
        lambda: client.create_route_entry(
            vm.CreateRouteEntryRequest(
                region_id=REGION,
                route_table_id=created.route_table_id,
                destination_cidr_block="0.0.0.0/0",
                next_hop_type="NetworkInterface",
                next_hop_id="eni-x",
            )
        )
    )
    assert error.code == "InvalidNextHopId.NotFound"


def test_accounts_do_not_see_each_others_vpcs(live: LiveServer) -> None:
    mine = tea_vpc(live, live.create_account(f"vpc-a-{live.backend}"))
    theirs = tea_vpc(live, live.create_account(f"vpc-b-{live.backend}"))
    vpc_id = mine.create_vpc(vm.CreateVpcRequest(region_id=REGION)).body.vpc_id
    assert theirs.describe_vpcs(vm.DescribeVpcsRequest(region_id=REGION)).body.total_count == 0
    error = error_of(lambda: theirs.delete_vpc(vm.DeleteVpcRequest(region_id=REGION, vpc_id=vpc_id)))
    assert error.code == "InvalidVpcId.NotFound"
    error = error_of(
        lambda: theirs.create_vswitch(
            vm.CreateVSwitchRequest(region_id=REGION, vpc_id=vpc_id, zone_id=ZONE, cidr_block="172.16.0.0/24")
        )
    )
    assert error.code == "InvalidVpcId.NotFound"
    assert mine.describe_vpcs(vm.DescribeVpcsRequest(region_id=REGION)).body.total_count == 1


def test_create_vswitch_takes_its_region_from_the_vpc(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    """The VPC API reference marks CreateVSwitch's RegionId optional: the VPC says the region."""
    client = tea_vpc(live, fresh_key)
    vpc_id = client.create_vpc(vm.CreateVpcRequest(region_id=REGION, cidr_block="10.44.0.0/16")).body.vpc_id
    wait_available(client, vpc_id)
    vswitch_id = client.create_vswitch(
        vm.CreateVSwitchRequest(vpc_id=vpc_id, zone_id=ZONE, cidr_block="10.44.1.0/24")
    ).body.v_switch_id
    vswitch = wait_vswitch(client, vswitch_id)
    assert (vswitch.vpc_id, vswitch.zone_id, vswitch.status) == (vpc_id, ZONE, "Available")
    with pytest.raises(ClientException) as unknown:
        client.create_vswitch(
            vm.CreateVSwitchRequest(vpc_id="vpc-doesnotexist00000", zone_id=ZONE, cidr_block="10.44.2.0/24")
        )
    assert unknown.value.code == "InvalidVpcId.NotFound"


def test_every_documented_filter_filters_and_region_follows_the_resource(
    live: LiveServer, fresh_key: tuple[str, str]
) -> None:
    """Issue 11: the Describe filters nubes had declared and dropped now filter; RegionId is
    optional where the SDK has it optional (the VPC, vSwitch or route table says the region)."""
    from alibabacloud_ecs20140526 import models as em

    from ..conftest import tea_ecs

    client = tea_vpc(live, fresh_key)
    audit = live.create_resource_group(fresh_key, "audit")
    created = client.create_vpc(
        vm.CreateVpcRequest(region_id=REGION, cidr_block="10.71.0.0/16", resource_group_id=audit)
    ).body
    vpc_id, table_id = created.vpc_id, created.route_table_id
    vpc = wait_available(client, vpc_id)
    owner = vpc.owner_id

    def vpcs(**filters: Any) -> list[str]:
        body = client.describe_vpcs(vm.DescribeVpcsRequest(region_id=REGION, **filters)).body
        return [v.vpc_id for v in body.vpcs.vpc]

    assert vpcs() == [vpc_id]
    assert vpcs(dhcp_options_set_id="dopt-1") == []
    assert vpcs(enable_ipv_6=True) == [] and vpcs(enable_ipv_6=False) == [vpc_id]
    assert vpcs(vpc_owner_id=owner) == [vpc_id] and vpcs(vpc_owner_id=owner + 1) == []

    # DescribeVpcAttribute: IsDefault must say what the VPC is.
    no_default = error_of(
        lambda: client.describe_vpc_attribute(
            vm.DescribeVpcAttributeRequest(region_id=REGION, vpc_id=vpc_id, is_default=True)
        )
    )
    assert no_default.code == "InvalidVpcId.NotFound"
    assert (
        client.describe_vpc_attribute(
            vm.DescribeVpcAttributeRequest(region_id=REGION, vpc_id=vpc_id, is_default=False)
        ).body.vpc_id
        == vpc_id
    )

    # Without RegionId: ModifyVpcAttribute, CreateVSwitch, DescribeVSwitches (by VpcId) and the
    # vSwitch actions take the region of what they name.
    client.modify_vpc_attribute(vm.ModifyVpcAttributeRequest(vpc_id=vpc_id, vpc_name="renamed"))
    assert wait_available(client, vpc_id).vpc_name == "renamed"
    vsw_id = client.create_vswitch(
        vm.CreateVSwitchRequest(vpc_id=vpc_id, zone_id=ZONE, cidr_block="10.71.1.0/24")
    ).body.v_switch_id
    assert wait_vswitch(client, vsw_id).status == "Available"
    client.modify_vswitch_attribute(vm.ModifyVSwitchAttributeRequest(v_switch_id=vsw_id, v_switch_name="sw"))
    attrs = client.describe_vswitch_attributes(vm.DescribeVSwitchAttributesRequest(v_switch_id=vsw_id)).body
    assert (attrs.v_switch_name, attrs.vpc_id) == ("sw", vpc_id)

    def vswitches(**filters: Any) -> list[str]:
        body = client.describe_vswitches(vm.DescribeVSwitchesRequest(vpc_id=vpc_id, **filters)).body
        return [v.v_switch_id for v in body.v_switches.v_switch]

    assert vswitches() == [vsw_id]
    assert vswitches(resource_group_id=audit) == []  # vSwitches are in no resource group
    assert vswitches(enable_ipv_6=True) == [] and vswitches(enable_ipv_6=False) == [vsw_id]
    assert vswitches(v_switch_owner_id=owner) == [vsw_id] and vswitches(v_switch_owner_id=owner + 1) == []
    neither = error_of(lambda: client.describe_vswitches(vm.DescribeVSwitchesRequest()))
    assert neither.code == "MissingParameter.RegionId"

    # Route tables by resource group (the VPC's); route entries by destination list and host type.
    def tables(group: str) -> list[str]:
        body = client.describe_route_table_list(
            vm.DescribeRouteTableListRequest(region_id=REGION, resource_group_id=group)
        ).body
        return [t.vpc_id for t in body.router_table_list.router_table_list_type]

    assert tables(audit) == [vpc_id] and tables("rg-other") == []

    def destinations(**filters: Any) -> list[str]:
        body = client.describe_route_entry_list(
            vm.DescribeRouteEntryListRequest(region_id=REGION, route_table_id=table_id, **filters)
        ).body
        return [e.destination_cidr_block for e in body.route_entrys.route_entry]

    assert destinations(dest_cidr_block_list=["10.71.1.0/24", "10.9.0.0/16"]) == ["10.71.1.0/24"]
    assert destinations(service_type="TR") == []

    # CreateRouteEntry and DeleteRouteEntry without RegionId; NextHopId is checked, not parsed away.
    ecs = tea_ecs(live, fresh_key)
    group_id = ecs.create_security_group(
        em.CreateSecurityGroupRequest(region_id=REGION, vpc_id=vpc_id)
    ).body.security_group_id
    eni_id = ecs.create_network_interface(
        em.CreateNetworkInterfaceRequest(region_id=REGION, v_switch_id=vsw_id, security_group_id=group_id)
    ).body.network_interface_id
    no_hop = error_of(
        lambda: client.create_route_entry(
            vm.CreateRouteEntryRequest(route_table_id=table_id, destination_cidr_block="10.200.0.0/16")
        )
    )
    assert no_hop.code == "MissingParameter.NextHopId"
    entry_id = client.create_route_entry(
        vm.CreateRouteEntryRequest(
            route_table_id=table_id,
            destination_cidr_block="10.200.0.0/16",
            next_hop_type="NetworkInterface",
            next_hop_id=eni_id,
        )
    ).body.route_entry_id
    assert "10.200.0.0/16" in destinations()
    client.delete_route_entry(vm.DeleteRouteEntryRequest(route_entry_id=entry_id))
    assert "10.200.0.0/16" not in destinations()

    # ForceDelete: there are no gateways to force away, so what stands in the way still does.
    ecs.delete_network_interface(
        em.DeleteNetworkInterfaceRequest(region_id=REGION, network_interface_id=eni_id)
    )
    ecs.delete_security_group(em.DeleteSecurityGroupRequest(region_id=REGION, security_group_id=group_id))
    blocked = error_of(lambda: client.delete_vpc(vm.DeleteVpcRequest(vpc_id=vpc_id, force_delete=True)))
    assert blocked.code == "DependencyViolation.VSwitch"
    assert vpcs() == [vpc_id]
    client.delete_vswitch(vm.DeleteVSwitchRequest(v_switch_id=vsw_id))
    # ClientToken: the same delete again gives the first answer, not InvalidVpcId.NotFound.
    request = vm.DeleteVpcRequest(vpc_id=vpc_id, force_delete=True, client_token="delete-audit-vpc")
    client.delete_vpc(request)
    client.delete_vpc(request)
    assert vpcs() == []


def test_move_resource_group_moves_vpcs_eips_gateways_and_tables(
    live: LiveServer, fresh_key: tuple[str, str]
) -> None:
    """MoveResourceGroup (VPC product): a VPC, an EIP, a NAT gateway and a custom route table move
    to another of the account's groups, which their Describe actions then filter by."""
    client = tea_vpc(live, fresh_key)
    audit = live.create_resource_group(fresh_key, "audit")
    vpc_id = client.create_vpc(vm.CreateVpcRequest(region_id=REGION, cidr_block="10.72.0.0/16")).body.vpc_id
    wait_available(client, vpc_id)
    vsw_id = client.create_vswitch(
        vm.CreateVSwitchRequest(vpc_id=vpc_id, zone_id=ZONE, cidr_block="10.72.1.0/24")
    ).body.v_switch_id
    wait_vswitch(client, vsw_id)
    table_id = client.create_route_table(
        vm.CreateRouteTableRequest(region_id=REGION, vpc_id=vpc_id)
    ).body.route_table_id
    gateway_id = client.create_nat_gateway(
        vm.CreateNatGatewayRequest(region_id=REGION, vpc_id=vpc_id, v_switch_id=vsw_id, nat_type="Enhanced")
    ).body.nat_gateway_id
    moved = {"VPC": vpc_id, "ROUTETABLE": table_id, "natgateway": gateway_id}
    for resource_type, resource_id in moved.items():
        client.move_resource_group(
            vm.MoveResourceGroupRequest(
                region_id=REGION,
                resource_type=resource_type,
                resource_id=resource_id,
                new_resource_group_id=audit,
            )
        )
    [vpc] = client.describe_vpcs(
        vm.DescribeVpcsRequest(region_id=REGION, resource_group_id=audit)
    ).body.vpcs.vpc
    assert vpc.vpc_id == vpc_id
    [gateway] = client.describe_nat_gateways(
        vm.DescribeNatGatewaysRequest(region_id=REGION, resource_group_id=audit)
    ).body.nat_gateways.nat_gateway
    assert gateway.nat_gateway_id == gateway_id
    tables = client.describe_route_table_list(
        vm.DescribeRouteTableListRequest(region_id=REGION, vpc_id=vpc_id, route_table_id=table_id)
    ).body.router_table_list.router_table_list_type
    assert [t.resource_group_id for t in tables] == [audit]

    def refused(resource_type: str, resource_id: str, group: str) -> str:
        return str(
            error_of(
                lambda: client.move_resource_group(
                    vm.MoveResourceGroupRequest(
                        region_id=REGION,
                        resource_type=resource_type,
                        resource_id=resource_id,
                        new_resource_group_id=group,
                    )
                )
            ).code
        )

    assert refused("VPC", vpc_id, "rg-acfmnosuchgroup") == "InvalidResourceGroup.NotFound"
    assert refused("VPC", "vpc-nosuchvpc0000000000", audit) == "InvalidVpcId.NotFound"
    assert refused("VSWITCH", vsw_id, audit) == "InvalidParameter.NotSupported"
    assert refused("DISK", vpc_id, audit) == "InvalidResourceType.NotFound"
    other = tea_vpc(live, live.create_account("move-other"))
    assert (
        error_of(
            lambda: other.move_resource_group(
                vm.MoveResourceGroupRequest(
                    region_id=REGION, resource_type="VPC", resource_id=vpc_id, new_resource_group_id=audit
                )
            )
        ).code
        == "InvalidVpcId.NotFound"
    )
    unknown_group = error_of(
        lambda: client.allocate_eip_address(
            vm.AllocateEipAddressRequest(region_id=REGION, resource_group_id="rg-acfmnosuchgroup")
        )
    )
    assert unknown_group.code == "InvalidResourceGroup.NotFound"
