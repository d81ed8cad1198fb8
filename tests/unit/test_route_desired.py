"""The custom routes the agent asks the network driver for: the entries of the tables in use,
for the vSwitches that use them, to next hops plugged in now."""

from __future__ import annotations

from nubes.agent.vpcnet import desired_vpcs
from nubes.drivers.network.base import RouteNet
from nubes.drivers.network.nft import render_ruleset, validate_vpc

from .host_world import HostWorld


def test_routes_follow_entries_associations_and_next_hops(world: HostWorld) -> None:
    instance_id = world.launch()
    world.reach(instance_id, "Running")
    scope, routes, tables = world.scope, world.services.routes, world.services.route_tables
    [vpc] = desired_vpcs(world.db, "nubes")
    [eni] = vpc.ports
    [vsw] = vpc.vswitches
    assert vpc.routes == ()
    vpc_row = world.services.vpcs.get_vswitch(scope, world.vswitch_id)
    system = world.services.vpcs.get_vpc(scope, vpc_row.vpc_id).route_table_id

    # a route of the system table, to the instance: the vSwitch (on the system table) uses it
    to_instance = routes.create(scope, system, "0.0.0.0/0", "Instance", instance_id, None, None)
    [vpc] = desired_vpcs(world.db, "nubes")
    assert vpc.routes == (RouteNet(system, "0.0.0.0/0", eni.port_id, eni.ip, (vsw.cidr,)),)
    validate_vpc(vpc)
    assert "jump in_" in render_ruleset(vpc)

    # a custom table's route applies once the vSwitch is associated with it (and leaves the system table)
    custom = tables.create(scope, vpc_row.vpc_id, "appliance", None)
    routes.create(scope, custom, "172.16.0.0/12", "NetworkInterface", eni.port_id, None, None)
    [vpc] = desired_vpcs(world.db, "nubes")
    assert {(r.route_table_id, r.sources) for r in vpc.routes} == {(system, (vsw.cidr,)), (custom, ())}
    tables.associate(scope, custom, world.vswitch_id)
    [vpc] = desired_vpcs(world.db, "nubes")
    assert {(r.route_table_id, r.sources) for r in vpc.routes} == {(system, ()), (custom, (vsw.cidr,))}
    tables.unassociate(scope, custom, world.vswitch_id)
    routes.delete(scope, to_instance, None, None, None)
    [vpc] = desired_vpcs(world.db, "nubes")
    assert [(r.route_table_id, r.sources) for r in vpc.routes] == [(custom, ())]
