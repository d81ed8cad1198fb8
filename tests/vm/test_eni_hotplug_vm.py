"""Done when (ENI attach, issue 12): an interface attached to a Running instance is hot-plugged
into its VM; the guest sees a new NIC with the interface's MAC and gets the interface's address by
DHCP, and a host of the VPC reaches it there; the agent, killed and restarted meanwhile, still
knows the NIC; detaching takes it out of the guest again. Attached while the instance is
Stopped, it is there from the next start, and detaching takes it out of the running VM."""

from __future__ import annotations

import base64
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em

from nubes.guest.images import ImageManifest
from tests.conftest import tea_ecs
from tests.e2e.conftest import make_net
from tests.e2e.netprobe import eventually

from .test_instance_lifecycle import REGION, _start, _teardown, launch_tiny, qemu_processes, wait_status

pytestmark = pytest.mark.vm


def console(ecs: Any, instance_id: str) -> str:
    output = ecs.get_instance_console_output(
        em.GetInstanceConsoleOutputRequest(region_id=REGION, instance_id=instance_id)
    ).body.console_output
    return base64.b64decode(output).decode(errors="replace")


def eni_status(ecs: Any, eni_id: str) -> str:
    return str(
        ecs.describe_network_interface_attribute(
            em.DescribeNetworkInterfaceAttributeRequest(region_id=REGION, network_interface_id=eni_id)
        ).body.status
    )


def pings(netns: str, ip: str) -> bool:
    """One ICMP echo from a host of the VPC (busybox's ping: the host has no other)."""
    result = subprocess.run(
        ["ip", "netns", "exec", netns, "busybox", "ping", "-c", "1", "-W", "2", ip],
        check=False,
        capture_output=True,
        timeout=30,
    )
    return result.returncode == 0


def test_eni_hot_plugged_into_a_running_instance(
    images_dir: Path, tiny_image: ImageManifest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("eni-hotplug")
    server = _start(tmp, images_dir)
    try:
        net = make_net(server, "10.84.0.0/16")
        ecs = net.ecs
        group = net.group()
        ecs.authorize_security_group(
            em.AuthorizeSecurityGroupRequest(
                region_id=REGION,
                security_group_id=group,
                ip_protocol="icmp",
                port_range="-1/-1",
                source_cidr_ip="0.0.0.0/0",
            )
        )
        instance_id = launch_tiny(ecs, net.vswitch_id, group)
        assert wait_status(ecs, instance_id, "Running", 300) == "Running"
        eni = ecs.create_network_interface(
            em.CreateNetworkInterfaceRequest(
                region_id=REGION, v_switch_id=net.vswitch_id, security_group_id=group
            )
        ).body
        eni_id, mac, address = eni.network_interface_id, eni.mac_address, eni.private_ip_address
        peer = net.host("10.84.1.200", group)
        assert not pings(peer, address)

        ecs.attach_network_interface(
            em.AttachNetworkInterfaceRequest(
                region_id=REGION, network_interface_id=eni_id, instance_id=instance_id
            )
        )
        assert eventually(lambda: eni_status(ecs, eni_id) == "InUse", timeout=120)
        # the guest saw the NIC with the interface's MAC, and DHCP gave it the interface's address
        assert eventually(lambda: f"nubes: nic eth1 {mac} added" in console(ecs, instance_id), timeout=60)
        assert eventually(lambda: f"nubes: eth1 {address}/" in console(ecs, instance_id), timeout=90)
        assert eventually(lambda: pings(peer, address), timeout=30)

        # the agent dies and comes back: the VM runs on with its NIC, and the agent knows it
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=30)
        server = _start(tmp, images_dir, server.netns_prefix)
        ecs = tea_ecs(server, net.key)
        assert wait_status(ecs, instance_id, "Running", 120) == "Running"
        assert len(qemu_processes(instance_id)) == 1
        assert eni_status(ecs, eni_id) == "InUse"
        assert eventually(lambda: pings(peer, address), timeout=30)

        ecs.detach_network_interface(
            em.DetachNetworkInterfaceRequest(
                region_id=REGION, network_interface_id=eni_id, instance_id=instance_id
            )
        )
        assert eventually(lambda: eni_status(ecs, eni_id) == "Available", timeout=120)
        assert eventually(lambda: "nubes: nic eth1 removed" in console(ecs, instance_id), timeout=60)
        assert eventually(lambda: not pings(peer, address), timeout=30)

        # attached while Stopped, it is there from the start (in a root port of its own), and
        # still comes out of the running VM
        ecs.stop_instance(em.StopInstanceRequest(instance_id=instance_id))
        assert wait_status(ecs, instance_id, "Stopped", 120) == "Stopped"
        ecs.attach_network_interface(
            em.AttachNetworkInterfaceRequest(
                region_id=REGION, network_interface_id=eni_id, instance_id=instance_id
            )
        )
        assert eventually(lambda: eni_status(ecs, eni_id) == "InUse", timeout=60)
        leases = console(ecs, instance_id).count(f"nubes: eth1 {address}/")
        ecs.start_instance(em.StartInstanceRequest(instance_id=instance_id))
        assert wait_status(ecs, instance_id, "Running", 300) == "Running"
        assert eventually(
            lambda: console(ecs, instance_id).count(f"nubes: eth1 {address}/") > leases, timeout=90
        )
        assert eventually(lambda: pings(peer, address), timeout=30)
        removals = console(ecs, instance_id).count("nubes: nic eth1 removed")
        ecs.detach_network_interface(
            em.DetachNetworkInterfaceRequest(
                region_id=REGION, network_interface_id=eni_id, instance_id=instance_id
            )
        )
        assert eventually(lambda: eni_status(ecs, eni_id) == "Available", timeout=120)
        assert eventually(
            lambda: console(ecs, instance_id).count("nubes: nic eth1 removed") > removals, timeout=60
        )
        ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))
    finally:
        _teardown(server)
