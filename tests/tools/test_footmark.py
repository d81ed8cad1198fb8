"""footmark, the library under Ansible's alicloud modules, against nubes as its users call it.

footmark builds an AcsClient per request from the region's public endpoint; pointing it at
nubes takes an AcsClient that knows nubes' endpoint, and nothing else is changed."""

from __future__ import annotations

from typing import Any

import pytest

from ..conftest import ROOT_KEY_ID, ROOT_SECRET, LiveServer

REGION = "cn-hangzhou"


@pytest.fixture
def ecs(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    import footmark.connection
    from aliyunsdkcore.client import AcsClient
    from footmark.ecs.connection import ECSConnection

    class NubesAcsClient(AcsClient):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            for product in ("Ecs", "Vpc"):
                self.add_endpoint(self.get_region_id(), product, server.endpoint)

    monkeypatch.setattr(footmark.connection.client, "AcsClient", NubesAcsClient)
    return ECSConnection(acs_access_key_id=ROOT_KEY_ID, acs_secret_access_key=ROOT_SECRET, region=REGION)


def tiny_image(ecs: Any) -> str:
    [image] = [i for i in ecs.describe_images(image_owner_alias="system") if "tiny" in i.image_id]
    return str(image.image_id)


def test_security_group_create_authorize_and_describe(ecs: Any, network: tuple[str, str]) -> None:
    vpc_id, _ = network
    group = ecs.create_security_group(security_group_name="web", description="footmark", vpc_id=vpc_id)
    assert group.vpc_id == vpc_id and group.security_group_name == "web"
    assert ecs.authorize_security_group(
        security_group_id=group.id, ip_protocol="tcp", port_range="22/22", source_cidr_ip="0.0.0.0/0"
    )
    found = [g for g in ecs.describe_security_groups(vpc_id=vpc_id) if g.id == group.id]
    assert len(found) == 1
    rules = ecs.describe_security_group_attribute(security_group_id=group.id).permissions
    assert [(r["ip_protocol"].lower(), r["port_range"]) for r in rules] == [("tcp", "22/22")]


def test_run_describe_stop_start_and_delete_instances(ecs: Any, network: tuple[str, str]) -> None:
    vpc_id, vswitch_id = network
    group = ecs.create_security_group(security_group_name="app", vpc_id=vpc_id)
    launched = ecs.run_instances(
        image_id=tiny_image(ecs),
        instance_type="ecs.g7.large",
        security_group_id=group.id,
        vswitch_id=vswitch_id,
        instance_name="fm-1",
        amount=1,
        client_token="footmark-run-1",
        tags={"team": "ops"},
    )
    [instance] = launched
    # the attributes footmark derives (its Instance recursed into itself on nubes' field order)
    assert instance.id.startswith("i-") and instance.name == "fm-1"
    assert instance.vpc_id == vpc_id and instance.vswitch_id == vswitch_id
    assert instance.private_ip_address.startswith("10.77.1.")
    assert instance.public_ip_address == "" and instance.tags == {"team": "ops"}
    ecs.wait_for_instance_status(instance.id, "Running", delay=1, timeout=60)

    [described] = ecs.describe_instances(instance_ids=[instance.id])
    assert described.state == "running" and described.security_group_ids["security_group_id"] == [group.id]

    assert ecs.stop_instances(instance_ids=[instance.id], force_stop=True)
    assert ecs.describe_instances(instance_ids=[instance.id])[0].state == "stopped"
    assert ecs.start_instances(instance_ids=[instance.id])
    assert ecs.describe_instances(instance_ids=[instance.id])[0].state == "running"
    assert ecs.delete_instances(instance_ids=[instance.id], force=True)
    assert ecs.describe_instances(instance_ids=[instance.id]) == []


def test_create_attach_and_delete_a_disk(ecs: Any, network: tuple[str, str]) -> None:
    vpc_id, vswitch_id = network
    group = ecs.create_security_group(security_group_name="disks", vpc_id=vpc_id)
    [instance] = ecs.run_instances(
        image_id=tiny_image(ecs),
        instance_type="ecs.g7.large",
        security_group_id=group.id,
        vswitch_id=vswitch_id,
        amount=1,
        client_token="footmark-disk-1",
    )
    disk = ecs.create_disk(zone_id=instance.zone_id, disk_name="data-1", disk_category="cloud_essd", size=20)
    assert disk.size == 20
    ecs.wait_for_disk_status(disk.id, "Available", delay=1, timeout=60)
    assert ecs.attach_disk(instance_id=instance.id, disk_id=disk.id)
    [attached] = ecs.describe_disks(disk_ids=[disk.id])
    assert attached.instance_id == instance.id
    ecs.detach_disk(instance_id=instance.id, disk_id=disk.id)
    ecs.wait_for_disk_status(disk.id, "Available", delay=1, timeout=60)
    assert ecs.delete_disk(disk_id=disk.id)
