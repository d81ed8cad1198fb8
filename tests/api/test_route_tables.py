"""Custom route tables through the official alibabacloud-vpc20160428 client: create, associate
with vSwitches, route entries in them, modify, unassociate, delete, and the errors on the way."""

from __future__ import annotations

from typing import Any

from alibabacloud_ecs20140526 import models as em
from alibabacloud_vpc20160428 import models as vm

from ..conftest import LiveServer, tea_ecs, tea_vpc
from .test_vpc_api import REGION, ZONE, error_of, wait_available, wait_vswitch


def _vpc_with_vswitches(client: Any, prefix: str, count: int) -> tuple[Any, list[str]]:
    created = client.create_vpc(vm.CreateVpcRequest(region_id=REGION, cidr_block=f"{prefix}.0.0/16")).body
    wait_available(client, created.vpc_id)
    vswitches = [
        client.create_vswitch(
            vm.CreateVSwitchRequest(
                region_id=REGION, vpc_id=created.vpc_id, zone_id=ZONE, cidr_block=f"{prefix}.{n + 1}.0/24"
            )
        ).body.v_switch_id
        for n in range(count)
    ]
    for vswitch_id in vswitches:
        wait_vswitch(client, vswitch_id)
    return created, vswitches


def _tables(client: Any, vpc_id: str, **filters: Any) -> dict[str, Any]:
    body = client.describe_route_table_list(
        vm.DescribeRouteTableListRequest(region_id=REGION, vpc_id=vpc_id, **filters)
    ).body
    return {t.route_table_id: t for t in body.router_table_list.router_table_list_type}


def _table_of(client: Any, vswitch_id: str) -> tuple[str, str]:
    body = client.describe_vswitch_attributes(
        vm.DescribeVSwitchAttributesRequest(region_id=REGION, v_switch_id=vswitch_id)
    ).body
    return body.route_table.route_table_id, body.route_table.route_table_type


def test_custom_route_table_lifecycle(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    client = tea_vpc(live, fresh_key)
    vpc, (first, second) = _vpc_with_vswitches(client, "10.61", 2)
    system = vpc.route_table_id
    request = vm.CreateRouteTableRequest(
        region_id=REGION,
        vpc_id=vpc.vpc_id,
        route_table_name="appliances",
        description="through the firewall",
        client_token="table-1",
        tag=[vm.CreateRouteTableRequestTag(key="env", value="lab")],
    )
    table_id = client.create_route_table(request).body.route_table_id
    assert table_id.startswith("vtb-") and table_id != system
    again = client.create_route_table(request).body.route_table_id
    assert again == table_id  # ClientToken: created once

    tables = _tables(client, vpc.vpc_id)
    assert set(tables) == {system, table_id}
    router = client.describe_vrouters(
        vm.DescribeVRoutersRequest(region_id=REGION, vrouter_id=vpc.vrouter_id)
    ).body.vrouters.vrouter[0]
    assert router.route_table_ids.route_table_id == [system, table_id]
    custom = tables[table_id]
    assert (custom.route_table_type, custom.route_table_name, custom.description, custom.status) == (
        "Custom",
        "appliances",
        "through the firewall",
        "Available",
    )
    assert (custom.router_id, custom.associate_type) == (vpc.vrouter_id, "VSwitch")
    assert custom.v_switch_ids.v_switch_id == []
    assert [(t.key, t.value) for t in custom.tags.tag] == [("env", "lab")]
    assert sorted(tables[system].v_switch_ids.v_switch_id) == sorted([first, second])
    assert set(_tables(client, vpc.vpc_id, route_table_type="Custom")) == {table_id}
    assert set(_tables(client, vpc.vpc_id, route_table_name="appliances")) == {table_id}
    tagged = vm.DescribeRouteTableListRequestTag(key="env", value="lab")
    assert set(_tables(client, vpc.vpc_id, tag=[tagged])) == {table_id}

    # associating moves the vSwitch off the system table; again changes nothing
    for _ in range(2):
        client.associate_route_table(
            vm.AssociateRouteTableRequest(region_id=REGION, route_table_id=table_id, v_switch_id=first)
        )
    tables = _tables(client, vpc.vpc_id)
    assert tables[table_id].v_switch_ids.v_switch_id == [first]
    assert tables[system].v_switch_ids.v_switch_id == [second]
    assert _table_of(client, first) == (table_id, "Custom")
    assert _table_of(client, second) == (system, "System")
    listed = client.describe_vswitches(
        vm.DescribeVSwitchesRequest(region_id=REGION, vpc_id=vpc.vpc_id, route_table_id=table_id)
    ).body
    assert [v.v_switch_id for v in listed.v_switches.v_switch] == [first]

    client.modify_route_table_attributes(
        vm.ModifyRouteTableAttributesRequest(
            region_id=REGION, route_table_id=table_id, route_table_name="renamed", description="new"
        )
    )
    renamed = _tables(client, vpc.vpc_id)[table_id]
    assert (renamed.route_table_name, renamed.description) == ("renamed", "new")

    # a route in the custom table, to a network interface of the VPC, then moved to another
    ecs = tea_ecs(live, fresh_key)
    group = ecs.create_security_group(
        em.CreateSecurityGroupRequest(region_id=REGION, vpc_id=vpc.vpc_id)
    ).body.security_group_id
    enis = [
        ecs.create_network_interface(
            em.CreateNetworkInterfaceRequest(region_id=REGION, v_switch_id=second, security_group_id=group)
        ).body.network_interface_id
        for _ in range(2)
    ]
    entry_id = client.create_route_entry(
        vm.CreateRouteEntryRequest(
            region_id=REGION,
            route_table_id=table_id,
            destination_cidr_block="0.0.0.0/0",
            next_hop_type="NetworkInterface",
            next_hop_id=enis[0],
        )
    ).body.route_entry_id
    client.modify_route_entry(
        vm.ModifyRouteEntryRequest(
            region_id=REGION,
            route_entry_id=entry_id,
            route_entry_name="egress",
            description="via the appliance",
            new_next_hop_type="NetworkInterface",
            new_next_hop_id=enis[1],
        )
    )
    entries = client.describe_route_entry_list(
        vm.DescribeRouteEntryListRequest(region_id=REGION, route_table_id=table_id, route_entry_type="Custom")
    ).body.route_entrys.route_entry
    assert [(e.route_entry_id, e.route_entry_name, e.description) for e in entries] == [
        (entry_id, "egress", "via the appliance")
    ]
    assert entries[0].next_hops.next_hop[0].next_hop_id == enis[1]
    # the system table does not have it
    system_entries = client.describe_route_entry_list(
        vm.DescribeRouteEntryListRequest(region_id=REGION, route_table_id=system, route_entry_type="Custom")
    ).body.route_entrys.route_entry
    assert system_entries == []

    old = client.describe_route_tables(
        vm.DescribeRouteTablesRequest(region_id=REGION, type="Custom", vrouter_id=vpc.vrouter_id)
    ).body
    assert old.total_count == 1
    described = old.route_tables.route_table[0]
    assert (described.route_table_id, described.route_table_type) == (table_id, "Custom")
    assert described.v_switch_ids.v_switch_id == [first]
    custom_routes = [e for e in described.route_entrys.route_entry if e.type == "Custom"]
    assert [(e.route_entry_id, e.instance_id, e.next_hop_type) for e in custom_routes] == [
        (entry_id, enis[1], "NetworkInterface")
    ]

    # a VPC with a custom table, or a table in use, is not deleted
    assert error_of(
        lambda: client.delete_vpc(vm.DeleteVpcRequest(region_id=REGION, vpc_id=vpc.vpc_id))
    ).code.startswith("DependencyViolation")
    delete = vm.DeleteRouteTableRequest(region_id=REGION, route_table_id=table_id)
    assert error_of(lambda: client.delete_route_table(delete)).code == "DependencyViolation.VSwitch"
    client.unassociate_route_table(
        vm.UnassociateRouteTableRequest(region_id=REGION, route_table_id=table_id, v_switch_id=first)
    )
    assert _table_of(client, first) == (system, "System")
    assert error_of(lambda: client.delete_route_table(delete)).code == (
        "IncorrectRouteTableStatus.RouteEntryExist"
    )
    client.delete_route_entry(vm.DeleteRouteEntryRequest(region_id=REGION, route_entry_id=entry_id))
    client.delete_route_table(delete)
    assert set(_tables(client, vpc.vpc_id)) == {system}
    assert error_of(lambda: client.delete_route_table(delete)).code == "InvalidRouteTableId.NotFound"


def test_route_table_errors(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    client = tea_vpc(live, fresh_key)
    vpc, (vswitch,) = _vpc_with_vswitches(client, "10.62", 1)
    other, (elsewhere,) = _vpc_with_vswitches(client, "10.63", 1)

    def create() -> str:
        return str(
            client.create_route_table(
                vm.CreateRouteTableRequest(region_id=REGION, vpc_id=vpc.vpc_id)
            ).body.route_table_id
        )

    first, second = create(), create()

    # the system table is not managed by these actions
    system = vpc.route_table_id
    for call in (
        lambda: client.delete_route_table(
            vm.DeleteRouteTableRequest(region_id=REGION, route_table_id=system)
        ),
        lambda: client.associate_route_table(
            vm.AssociateRouteTableRequest(region_id=REGION, route_table_id=system, v_switch_id=vswitch)
        ),
        lambda: client.modify_route_table_attributes(
            vm.ModifyRouteTableAttributesRequest(region_id=REGION, route_table_id=system, description="x")
        ),
    ):
        assert error_of(call).code == "IncorrectRouteTableType"

    # a vSwitch of another VPC; a vSwitch already using another custom table; one not associated
    assert (
        error_of(
            lambda: client.associate_route_table(
                vm.AssociateRouteTableRequest(region_id=REGION, route_table_id=first, v_switch_id=elsewhere)
            )
        ).code
        == "InvalidParameter"
    )
    client.associate_route_table(
        vm.AssociateRouteTableRequest(region_id=REGION, route_table_id=first, v_switch_id=vswitch)
    )
    assert (
        error_of(
            lambda: client.associate_route_table(
                vm.AssociateRouteTableRequest(region_id=REGION, route_table_id=second, v_switch_id=vswitch)
            )
        ).code
        == "ResourceAlreadyAssociated.RouteTable"
    )
    assert (
        error_of(
            lambda: client.unassociate_route_table(
                vm.UnassociateRouteTableRequest(region_id=REGION, route_table_id=second, v_switch_id=vswitch)
            )
        ).code
        == "ResourceNotAssociated.RouteTable"
    )
    assert _table_of(client, vswitch) == (first, "Custom")

    # names are checked; the VPC must exist
    bad_name = error_of(
        lambda: client.create_route_table(
            vm.CreateRouteTableRequest(region_id=REGION, vpc_id=vpc.vpc_id, route_table_name="1bad")
        )
    )
    assert bad_name.code == "InvalidRouteTableName.Malformed"
    assert (
        error_of(
            lambda: client.create_route_table(
                vm.CreateRouteTableRequest(region_id=REGION, vpc_id="vpc-doesnotexist0000")
            )
        ).code
        == "InvalidVpcId.NotFound"
    )

    # ModifyRouteEntry: DryRun checks and changes nothing
    ecs = tea_ecs(live, fresh_key)
    group = ecs.create_security_group(
        em.CreateSecurityGroupRequest(region_id=REGION, vpc_id=vpc.vpc_id)
    ).body.security_group_id
    eni = ecs.create_network_interface(
        em.CreateNetworkInterfaceRequest(region_id=REGION, v_switch_id=vswitch, security_group_id=group)
    ).body.network_interface_id
    entry_id = client.create_route_entry(
        vm.CreateRouteEntryRequest(
            region_id=REGION,
            route_table_id=first,
            destination_cidr_block="192.168.0.0/16",
            next_hop_type="NetworkInterface",
            next_hop_id=eni,
            route_entry_name="before",
        )
    ).body.route_entry_id
    dry = error_of(
        lambda: client.modify_route_entry(
            vm.ModifyRouteEntryRequest(
                region_id=REGION, route_entry_id=entry_id, route_entry_name="after", dry_run=True
            )
        )
    )
    assert dry.code == "DryRunOperation"
    # the custom table says the region when RegionId is left out
    second_entry = client.create_route_entry(
        vm.CreateRouteEntryRequest(
            route_table_id=first,
            destination_cidr_block="172.16.0.0/12",
            next_hop_type="NetworkInterface",
            next_hop_id=eni,
        )
    ).body.route_entry_id
    client.delete_route_entry(vm.DeleteRouteEntryRequest(route_entry_id=second_entry))
    missing_hop = error_of(
        lambda: client.modify_route_entry(
            vm.ModifyRouteEntryRequest(
                region_id=REGION,
                route_entry_id=entry_id,
                new_next_hop_type="NetworkInterface",
                new_next_hop_id="eni-doesnotexist0000",
            )
        )
    )
    assert missing_hop.code == "InvalidNextHopId.NotFound"
    # by table and destination
    client.modify_route_entry(
        vm.ModifyRouteEntryRequest(
            region_id=REGION, route_table_id=first, destination_cidr_block="192.168.0.0/16", description="d"
        )
    )
    entry = client.describe_route_entry_list(
        vm.DescribeRouteEntryListRequest(region_id=REGION, route_table_id=first, route_entry_id=entry_id)
    ).body.route_entrys.route_entry[0]
    assert (entry.route_entry_name, entry.description) == ("before", "d")

    # the quota of custom tables per VPC
    for _ in range(7):
        create()
    assert error_of(create).code == "QuotaExceeded.RouteTable"
    assert other.vpc_id  # (the other VPC's quota is its own)
    client.create_route_table(vm.CreateRouteTableRequest(region_id=REGION, vpc_id=other.vpc_id))


def test_another_accounts_table_is_answered_as_one_that_does_not_exist(live: LiveServer) -> None:
    mine = tea_vpc(live, live.create_account(f"rt-a-{live.backend}"))
    theirs = tea_vpc(live, live.create_account(f"rt-b-{live.backend}"))
    vpc, (vswitch,) = _vpc_with_vswitches(mine, "10.64", 1)
    table_id = mine.create_route_table(
        vm.CreateRouteTableRequest(region_id=REGION, vpc_id=vpc.vpc_id, route_table_name="mine")
    ).body.route_table_id
    _, (their_vswitch,) = _vpc_with_vswitches(theirs, "10.65", 1)
    made_up = "vtb-" + "0" * (len(table_id) - 4)

    def calls(target: str) -> list[Any]:
        return [
            lambda: theirs.delete_route_table(
                vm.DeleteRouteTableRequest(region_id=REGION, route_table_id=target)
            ),
            lambda: theirs.modify_route_table_attributes(
                vm.ModifyRouteTableAttributesRequest(region_id=REGION, route_table_id=target, description="x")
            ),
            lambda: theirs.associate_route_table(
                vm.AssociateRouteTableRequest(
                    region_id=REGION, route_table_id=target, v_switch_id=their_vswitch
                )
            ),
            lambda: theirs.describe_route_entry_list(
                vm.DescribeRouteEntryListRequest(region_id=REGION, route_table_id=target)
            ),
        ]

    for target in (table_id, made_up):
        for call in calls(target):
            error = error_of(call)
            assert error.code == "InvalidRouteTableId.NotFound"
            assert "The specified RouteTableId 'ID' does not exist." in error.message.replace(target, "ID")
    listed = theirs.describe_route_table_list(
        vm.DescribeRouteTableListRequest(region_id=REGION, route_table_id=table_id)
    ).body
    assert listed.total_count == 0
    assert _tables(mine, vpc.vpc_id)[table_id].route_table_name == "mine"
    assert _table_of(mine, vswitch)[1] == "System"
