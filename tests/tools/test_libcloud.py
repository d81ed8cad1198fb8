"""apache-libcloud's ECS driver against nubes, through its public calls only."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from ..conftest import ROOT_KEY_ID, ROOT_SECRET, LiveServer, tea_ecs

REGION = "cn-hangzhou"


@pytest.fixture
def driver(server: LiveServer) -> Any:
    from libcloud.compute.providers import get_driver
    from libcloud.compute.types import Provider

    host, port = server.endpoint.split(":")
    return get_driver(Provider.ALIYUN_ECS)(
        ROOT_KEY_ID, ROOT_SECRET, region=REGION, host=host, port=int(port), secure=False
    )


def eventually(check: Callable[[], bool], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def new_node(
    driver: Any, server: LiveServer, network: tuple[str, str], name: str, bandwidth_out: int | None = None
) -> Any:
    from alibabacloud_ecs20140526 import models as em

    vpc_id, vswitch_id = network
    group_id = (
        tea_ecs(server)
        .create_security_group(em.CreateSecurityGroupRequest(region_id=REGION, vpc_id=vpc_id))
        .body.security_group_id
    )
    [image] = [i for i in driver.list_images() if "tiny" in i.id]
    [size] = [s for s in driver.list_sizes() if s.id == "ecs.g7.large"]
    return driver.create_node(
        name=name,
        size=size,
        image=image,
        ex_security_group_id=group_id,
        ex_vswitch_id=vswitch_id,
        ex_internet_charge_type="PayByBandwidth",
        ex_internet_max_bandwidth_out=bandwidth_out,
    )


def state_of(driver: Any, node_id: str) -> str:
    [node] = driver.list_nodes(ex_node_ids=[node_id])
    return str(node.state)


def test_create_node_runs_then_reboot_stop_start_and_destroy(
    driver: Any, server: LiveServer, network: tuple[str, str]
) -> None:
    """create_node sends StartInstance right after CreateInstance, while the instance is Pending."""
    node = new_node(driver, server, network, "lc-node")
    assert state_of(driver, node.id) == "running"
    assert node.id in {n.id for n in driver.list_nodes()}
    assert node.private_ips and node.private_ips[0].startswith("10.77.1.")
    assert driver.reboot_node(node)
    assert driver.stop_node(node, ex_force_stop=True)
    assert state_of(driver, node.id) == "stopped"
    assert driver.start_node(node)
    assert state_of(driver, node.id) == "running"
    assert driver.stop_node(node)
    assert driver.destroy_node(node)
    assert eventually(lambda: driver.list_nodes(ex_node_ids=[node.id]) == [])


def test_a_node_with_public_bandwidth_has_a_public_ip_and_create_public_ip_answers_it(
    driver: Any, server: LiveServer, network: tuple[str, str]
) -> None:
    node = new_node(driver, server, network, "lc-public", bandwidth_out=5)
    assert eventually(lambda: state_of(driver, node.id) == "running")
    [node] = driver.list_nodes(ex_node_ids=[node.id])
    [address] = node.public_ips
    assert address.startswith("198.18.0.")
    assert driver.create_public_ip(node.id) == address  # AllocatePublicIpAddress: the one it has
    assert driver.stop_node(node, ex_force_stop=True)
    assert driver.destroy_node(node)


def test_join_and_leave_a_security_group_by_instance(
    driver: Any, server: LiveServer, network: tuple[str, str]
) -> None:
    from alibabacloud_ecs20140526 import models as em

    node = new_node(driver, server, network, "lc-groups")
    [node] = driver.list_nodes(ex_node_ids=[node.id])
    # libcloud's ex_create_security_group cannot name a VPC; the group comes from the SDK
    extra = (
        tea_ecs(server)
        .create_security_group(em.CreateSecurityGroupRequest(region_id=REGION, vpc_id=network[0]))
        .body.security_group_id
    )

    def groups() -> list[str]:  # libcloud's Node does not carry them
        attribute = tea_ecs(server).describe_instance_attribute(
            em.DescribeInstanceAttributeRequest(instance_id=node.id)
        )
        return list(attribute.body.security_group_ids.security_group_id)

    assert driver.ex_join_security_group(node, group_id=extra)
    assert extra in groups()
    assert driver.ex_leave_security_group(node, group_id=extra)
    assert extra not in groups()


def volume_state(driver: Any, volume_id: str) -> str:
    [volume] = driver.list_volumes(ex_volume_ids=[volume_id])
    return str(volume.state)


def test_volumes_and_snapshots(driver: Any, server: LiveServer, network: tuple[str, str]) -> None:
    node = new_node(driver, server, network, "lc-volumes")
    zone = driver.list_nodes(ex_node_ids=[node.id])[0].extra["zone_id"]
    volume = driver.create_volume(size=20, name="lc-data", ex_zone_id=zone, ex_disk_category="cloud_essd")
    assert volume.size == 20 and volume.name == "lc-data"
    assert eventually(lambda: volume_state(driver, volume.id) == "available")
    assert driver.attach_volume(node, volume)
    assert eventually(lambda: volume_state(driver, volume.id) == "inuse")
    snapshot = driver.create_volume_snapshot(volume, name="lc-snap")
    assert snapshot.extra["snapshot_name"] == "lc-snap"
    assert eventually(lambda: [str(s.state) for s in driver.list_volume_snapshots(volume)] == ["available"])
    assert driver.destroy_volume_snapshot(snapshot)
    assert driver.detach_volume(volume)
    assert eventually(lambda: volume_state(driver, volume.id) == "available")
    assert driver.destroy_volume(volume)
    assert driver.list_volumes(ex_volume_ids=[volume.id]) == []
