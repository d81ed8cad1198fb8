"""An interface attached to an instance, as the host agent carries it out (fake drivers): the
VM's NICs follow the store (hot-plug, unplug, and again after an agent restart), the VPC's
desired state has the port with its secondary addresses, and the metadata service lists every
interface of the instance."""

from __future__ import annotations

import json

from nubes.agent.vpcnet import desired_vpcs
from nubes.drivers.compute.base import ComputeError
from nubes.guest.metadata import interface_tree, lookup
from nubes.store.models import NetworkInterface

from .host_world import HostWorld


def eni_status(world: HostWorld, eni_id: str) -> str:
    return world.services.network_interfaces.get(world.scope, eni_id).status


def running_and_eni(world: HostWorld, secondary_count: int | None = None) -> tuple[str, NetworkInterface]:
    """A Running instance, and a new interface of its vSwitch (not attached)."""
    instance_id = world.launch()
    world.reach(instance_id, "Running")
    eni = world.services.network_interfaces.create(
        world.scope, world.vswitch_id, [world.group_id], None, None, None, secondary_count=secondary_count
    )
    return instance_id, eni


def test_attach_plugs_the_nic_and_the_port_and_detach_takes_them_out(world: HostWorld) -> None:
    instance_id, eni = running_and_eni(world, secondary_count=1)
    enis = world.services.network_interfaces
    [secondary] = [row.ip_address for row in eni.secondary_ips]
    enis.attach(world.scope, eni.id, instance_id)
    world.settle(lambda: eni_status(world, eni.id) == "InUse")
    vm = world.vms.vms[instance_id]
    assert list(vm.nics)[1:] == [eni.id] and vm.nics[eni.id].mac == eni.mac

    [vpc] = desired_vpcs(world.db, "nubes")
    port = next(p for p in vpc.ports if p.port_id == eni.id)
    assert (port.ip, port.secondary_ips, port.kind) == (eni.primary_ip, (secondary,), "tap")

    # the metadata of the instance, asked from the secondary interface's secondary address
    view = interface_tree(world.db, vpc.vpc_id, secondary)
    assert view is not None
    primary_mac = vm.spec.nics[0].mac
    assert lookup(view.tree, "meta-data/mac") == (200, primary_mac)
    status, listing = lookup(view.tree, "meta-data/network/interfaces/macs/")
    assert status == 200 and set(listing.split()) == {f"{primary_mac}/", f"{eni.mac}/"}
    _, addresses = lookup(view.tree, f"meta-data/network/interfaces/macs/{eni.mac}/private-ipv4s")
    assert json.loads(addresses) == [eni.primary_ip, secondary]

    enis.detach(world.scope, eni.id, instance_id)
    world.settle(lambda: eni_status(world, eni.id) == "Available")
    assert list(vm.nics) == [vm.spec.nics[0].port_id]
    [vpc] = desired_vpcs(world.db, "nubes")
    assert eni.id not in {p.port_id for p in vpc.ports}


def test_a_restarted_agent_makes_the_vms_nics_the_stores_again(world: HostWorld) -> None:
    instance_id, eni = running_and_eni(world)
    enis = world.services.network_interfaces
    enis.attach(world.scope, eni.id, instance_id)
    world.settle(lambda: eni_status(world, eni.id) == "InUse")
    vm = world.vms.vms[instance_id]
    # the VM lost the NIC while no agent ran (as if the hot-plug had never been done)
    world.agent.stop()
    vm.nics.pop(eni.id)
    world.agent = world.new_agent()
    world.settle(lambda: eni.id in vm.nics)
    assert eni_status(world, eni.id) == "InUse"


def test_attached_while_stopped_it_is_on_the_next_start(world: HostWorld) -> None:
    instance_id = world.launch()
    world.reach(instance_id, "Running")
    world.act(instance_id, "StopInstance")
    world.reach(instance_id, "Stopped")
    enis = world.services.network_interfaces
    eni = enis.create(world.scope, world.vswitch_id, [world.group_id], None, None, None)
    enis.attach(world.scope, eni.id, instance_id)
    world.settle(lambda: eni_status(world, eni.id) == "InUse")
    world.act(instance_id, "StartInstance")
    world.reach(instance_id, "Running")
    assert [n.port_id for n in world.vms.vms[instance_id].spec.nics][1:] == [eni.id]


def test_an_interface_the_vm_refuses_is_available_again(world: HostWorld) -> None:
    instance_id, eni = running_and_eni(world)
    enis = world.services.network_interfaces
    world.vms.inject_failure("attach_nic", ComputeError("no free hot-plug port"), instance_id)
    enis.attach(world.scope, eni.id, instance_id)
    world.settle(lambda: eni_status(world, eni.id) == "Available")
    assert enis.get(world.scope, eni.id).instance_id == ""
    assert eni.id not in world.vms.vms[instance_id].nics
    [vpc] = desired_vpcs(world.db, "nubes")
    assert eni.id not in {p.port_id for p in vpc.ports}
    # attached again, it is plugged in
    enis.attach(world.scope, eni.id, instance_id)
    world.settle(lambda: eni_status(world, eni.id) == "InUse")
    assert eni.id in world.vms.vms[instance_id].nics
