"""DryRun=true checks a request and changes nothing: the actions that once acted anyway."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from alibabacloud_ecs20140526 import models as em
from alibabacloud_vpc20160428 import models as vm

from nubes.clock import SystemClock
from nubes.domain.accounts import Accounts

from ..conftest import LiveServer, tea_vpc
from .test_instances_api import Lab, error_of
from .test_vpc_api import REGION, ZONE, wait_vswitch


def dry_run(call: Callable[[], Any]) -> None:
    error = error_of(call)
    assert (error.code, error.status_code) == ("DryRunOperation", 400), error.message


def images_named(lab: Lab, name: str) -> list[Any]:
    body = lab.ecs.describe_images(
        em.DescribeImagesRequest(
            region_id=REGION,
            image_name=name,
            image_owner_alias="self",
            status="Creating,Waiting,Available,UnAvailable,CreateFailed",
        )
    ).body
    return list(body.images.image)


def test_vswitch_and_route_entry_dry_runs_change_nothing(
    live: LiveServer, fresh_key: tuple[str, str]
) -> None:
    lab = Lab(live, fresh_key, "10.66.0.0/16")
    vpc = tea_vpc(live, fresh_key)
    spare = vpc.create_vswitch(
        vm.CreateVSwitchRequest(region_id=REGION, vpc_id=lab.vpc_id, zone_id=ZONE, cidr_block="10.66.2.0/24")
    ).body.v_switch_id
    wait_vswitch(vpc, spare)
    dry_run(
        lambda: vpc.delete_vswitch(vm.DeleteVSwitchRequest(region_id=REGION, v_switch_id=spare, dry_run=True))
    )
    assert wait_vswitch(vpc, spare).status == "Available"

    [instance_id] = lab.run()
    tables = vpc.describe_route_table_list(
        vm.DescribeRouteTableListRequest(region_id=REGION, vpc_id=lab.vpc_id)
    ).body.router_table_list.router_table_list_type
    table_id = tables[0].route_table_id

    def entries() -> list[str]:
        body = vpc.describe_route_entry_list(
            vm.DescribeRouteEntryListRequest(
                region_id=REGION, route_table_id=table_id, route_entry_type="Custom"
            )
        ).body
        return [e.destination_cidr_block for e in body.route_entrys.route_entry]

    create = vm.CreateRouteEntryRequest(
        region_id=REGION,
        route_table_id=table_id,
        destination_cidr_block="192.168.50.0/24",
        next_hop_type="Instance",
        next_hop_id=instance_id,
    )
    create.dry_run = True
    dry_run(lambda: vpc.create_route_entry(create))
    assert entries() == []
    create.dry_run = False
    vpc.create_route_entry(create)
    delete = vm.DeleteRouteEntryRequest(
        region_id=REGION, route_table_id=table_id, destination_cidr_block="192.168.50.0/24", dry_run=True
    )
    dry_run(lambda: vpc.delete_route_entry(delete))
    assert entries() == ["192.168.50.0/24"]


def test_image_dry_runs_change_nothing(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    lab = Lab(live, fresh_key, "10.67.0.0/16")
    [instance_id] = lab.run()
    assert lab.wait(instance_id, "Running") == "Running"
    dry_run(
        lambda: lab.ecs.create_image(
            em.CreateImageRequest(region_id=REGION, instance_id=instance_id, image_name="dry", dry_run=True)
        )
    )
    assert images_named(lab, "dry") == []
    image_id = lab.ecs.create_image(
        em.CreateImageRequest(region_id=REGION, instance_id=instance_id, image_name="kept")
    ).body.image_id
    deadline = time.monotonic() + 60
    while images_named(lab, "kept")[0].status != "Available" and time.monotonic() < deadline:
        time.sleep(0.2)

    dry_run(
        lambda: lab.ecs.modify_image_attribute(
            em.ModifyImageAttributeRequest(
                region_id=REGION, image_id=image_id, image_name="renamed", dry_run=True
            )
        )
    )
    other = f"dry-{uuid.uuid4().hex[:8]}"
    live.create_account(other)
    other_uid = next(a.uid for a in Accounts(live.store, SystemClock()).all() if a.name == other)
    dry_run(
        lambda: lab.ecs.modify_image_share_permission(
            em.ModifyImageSharePermissionRequest(
                region_id=REGION, image_id=image_id, add_account=[other_uid], dry_run=True
            )
        )
    )
    dry_run(
        lambda: lab.ecs.delete_image(em.DeleteImageRequest(region_id=REGION, image_id=image_id, dry_run=True))
    )
    [kept] = images_named(lab, "kept")
    assert (kept.image_id, kept.image_name, kept.status) == (image_id, "kept", "Available")
    shared = lab.ecs.describe_image_share_permission(
        em.DescribeImageSharePermissionRequest(region_id=REGION, image_id=image_id)
    ).body
    assert list(shared.accounts.account) == []


def test_public_address_dry_runs_change_nothing(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    """RunInstances with public bandwidth takes no address; DescribeEipAddresses answers
    DryRunOperation; ModifyInstanceSpec's bandwidth change is not made."""
    lab = Lab(live, fresh_key, "10.67.0.0/16")
    vpc = tea_vpc(live, fresh_key)
    dry_run(lambda: lab.run(internet_max_bandwidth_out=5, dry_run=True))
    dry_run(
        lambda: vpc.describe_eip_addresses(vm.DescribeEipAddressesRequest(region_id=REGION, dry_run=True))
    )
    [instance_id] = lab.run()
    assert lab.wait(instance_id, "Running") == "Running"
    dry_run(
        lambda: lab.ecs.modify_instance_spec(
            em.ModifyInstanceSpecRequest(instance_id=instance_id, internet_max_bandwidth_out=5, dry_run=True)
        )
    )
    found = lab.ecs.describe_instances(em.DescribeInstancesRequest(region_id=REGION)).body.instances.instance
    assert [(i.instance_id, i.internet_max_bandwidth_out, i.public_ip_address.ip_address) for i in found] == [
        (instance_id, 0, [])
    ]
