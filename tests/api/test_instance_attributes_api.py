"""Issue 13: the instance attributes tools read beside DescribeInstances, through the official SDK:
RAM roles (nubes has none), maintenance, private pools, renewal, automatic release."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em
from alibabacloud_vpc20160428 import models as vm

from ..conftest import LiveServer, tea_vpc
from .test_instances_api import Lab, error_of
from .test_security_group_api import make_network
from .test_vpc_api import REGION, ZONE, wait_vswitch


@pytest.fixture
def lab(live: LiveServer, fresh_key: tuple[str, str]) -> Lab:
    return Lab(live, fresh_key, "10.62.0.0/16")


def test_ram_roles_are_empty_and_refused(lab: Lab) -> None:
    [instance_id] = lab.run()
    roles = lab.ecs.describe_instance_ram_role(
        em.DescribeInstanceRamRoleRequest(region_id=REGION, instance_ids=f'["{instance_id}"]')
    ).body
    assert (roles.total_count, roles.region_id, roles.instance_ram_role_sets.instance_ram_role_set) == (
        0,
        REGION,
        [],
    )
    unknown = em.DescribeInstanceRamRoleRequest(region_id=REGION, instance_ids='["i-nope"]')
    assert error_of(lambda: lab.ecs.describe_instance_ram_role(unknown)).code == "InvalidInstanceId.NotFound"
    neither = em.DescribeInstanceRamRoleRequest(region_id=REGION)
    assert (
        error_of(lambda: lab.ecs.describe_instance_ram_role(neither)).code == "MissingParameter.InstanceIds"
    )
    attach = em.AttachInstanceRamRoleRequest(
        region_id=REGION, instance_ids=f'["{instance_id}"]', ram_role_name="EcsRole"
    )
    refused = error_of(lambda: lab.ecs.attach_instance_ram_role(attach))
    assert (refused.code, refused.status_code) == ("InvalidRamRole.NotFound", 404)
    assert "no RAM roles" in refused.message
    detach = em.DetachInstanceRamRoleRequest(region_id=REGION, instance_ids=f'["{instance_id}"]')
    assert error_of(lambda: lab.ecs.detach_instance_ram_role(detach)).code == "InvalidRamRole.NotFound"


def _maintenance(lab: Lab, instance_id: str) -> em.DescribeInstanceMaintenanceAttributesResponseBody:
    return lab.ecs.describe_instance_maintenance_attributes(
        em.DescribeInstanceMaintenanceAttributesRequest(region_id=REGION, instance_id=[instance_id])
    ).body


def test_maintenance_attributes(lab: Lab) -> None:
    [instance_id] = lab.run()
    body = _maintenance(lab, instance_id)
    [item] = body.maintenance_attributes.maintenance_attribute
    assert (body.total_count, body.page_number, body.page_size) == (1, 1, 10)
    assert (item.instance_id, item.action_on_maintenance.value, item.notify_on_maintenance) == (
        instance_id,
        "AutoRecover",
        False,
    )
    assert item.action_on_maintenance.default_value == "AutoRecover"
    assert item.action_on_maintenance.supported_values.supported_value == ["Stop", "AutoRecover"]
    assert item.maintenance_windows.maintenance_window == []

    window = em.ModifyInstanceMaintenanceAttributesRequestMaintenanceWindow(
        start_time="02:00:00", end_time="06:00:00"
    )
    lab.ecs.modify_instance_maintenance_attributes(
        em.ModifyInstanceMaintenanceAttributesRequest(
            region_id=REGION,
            instance_id=[instance_id],
            maintenance_window=[window],
            action_on_maintenance="Stop",
            notify_on_maintenance=True,
        )
    )
    [item] = _maintenance(lab, instance_id).maintenance_attributes.maintenance_attribute
    [shown] = item.maintenance_windows.maintenance_window
    assert (
        shown.start_time,
        shown.end_time,
        item.action_on_maintenance.value,
        item.notify_on_maintenance,
    ) == (
        "02:00:00",
        "06:00:00",
        "Stop",
        True,
    )
    every = lab.ecs.describe_instance_maintenance_attributes(
        em.DescribeInstanceMaintenanceAttributesRequest(region_id=REGION)
    ).body
    assert every.total_count == 1

    for bad, code in (
        (
            {
                "maintenance_window": [
                    em.ModifyInstanceMaintenanceAttributesRequestMaintenanceWindow(
                        start_time="02:30:00", end_time="06:00:00"
                    )
                ]
            },
            "InvalidParameter",
        ),
        (
            {
                "maintenance_window": [
                    em.ModifyInstanceMaintenanceAttributesRequestMaintenanceWindow(
                        start_time="02:00:00", end_time="02:00:00"
                    )
                ]
            },
            "InvalidParameter",
        ),
        (
            {
                "maintenance_window": [
                    em.ModifyInstanceMaintenanceAttributesRequestMaintenanceWindow(start_time="02:00:00")
                ]
            },
            "MissingParameter",
        ),
        ({"action_on_maintenance": "AutoRedeploy"}, "InvalidParameter.NotSupported"),
        ({"action_on_maintenance": "Reboot"}, "InvalidParameter"),
    ):
        request = em.ModifyInstanceMaintenanceAttributesRequest(
            region_id=REGION, instance_id=[instance_id], **bad
        )
        assert error_of(lambda r=request: lab.ecs.modify_instance_maintenance_attributes(r)).code.startswith(
            code
        )
    [item] = _maintenance(lab, instance_id).maintenance_attributes.maintenance_attribute
    assert item.action_on_maintenance.value == "Stop"  # nothing changed by the refused calls


def test_attachment_attributes(lab: Lab) -> None:
    [instance_id] = lab.run()

    def describe() -> em.DescribeInstanceAttachmentAttributesResponseBodyInstancesInstance:
        body = lab.ecs.describe_instance_attachment_attributes(
            em.DescribeInstanceAttachmentAttributesRequest(
                region_id=REGION, instance_ids=f'["{instance_id}"]'
            )
        ).body
        [item] = body.instances.instance
        return item

    item = describe()
    assert (item.instance_id, item.private_pool_options_match_criteria, item.private_pool_options_id) == (
        instance_id,
        "None",
        "",
    )
    options = em.ModifyInstanceAttachmentAttributesRequestPrivatePoolOptions
    lab.ecs.modify_instance_attachment_attributes(
        em.ModifyInstanceAttachmentAttributesRequest(
            region_id=REGION, instance_id=instance_id, private_pool_options=options(match_criteria="Open")
        )
    )
    assert describe().private_pool_options_match_criteria == "Open"
    for refused in (options(match_criteria="Target", id="eap-x"), options(match_criteria="Open", id="eap-x")):
        request = em.ModifyInstanceAttachmentAttributesRequest(
            region_id=REGION, instance_id=instance_id, private_pool_options=refused
        )
        error = error_of(lambda r=request: lab.ecs.modify_instance_attachment_attributes(r))
        assert error.code == "InvalidParameter.NotSupported"
        assert "PrivatePoolOptions" in error.message
    assert describe().private_pool_options_match_criteria == "Open"


def test_auto_renew_of_pay_as_you_go(lab: Lab) -> None:
    [instance_id] = lab.run()
    request = em.DescribeInstanceAutoRenewAttributeRequest(region_id=REGION, instance_id=instance_id)
    refused = error_of(lambda: lab.ecs.describe_instance_auto_renew_attribute(request))
    assert (refused.code, refused.status_code) == ("ChargeTypeViolation", 403)
    body = lab.ecs.describe_instance_auto_renew_attribute(
        em.DescribeInstanceAutoRenewAttributeRequest(region_id=REGION, renewal_status="AutoRenewal")
    ).body
    assert (body.total_count, body.instance_renew_attributes.instance_renew_attribute) == (0, [])


def _instance(lab: Lab, instance_id: str) -> em.DescribeInstancesResponseBodyInstancesInstance:
    request = em.DescribeInstancesRequest(region_id=REGION, instance_ids=f'["{instance_id}"]')
    [instance] = lab.ecs.describe_instances(request).body.instances.instance
    return instance


def test_modify_auto_release_time(lab: Lab) -> None:
    [instance_id] = lab.run()
    at = (datetime.now(UTC) + timedelta(days=2)).replace(second=0, microsecond=0)  # shown to the minute
    text = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    lab.ecs.modify_instance_auto_release_time(
        em.ModifyInstanceAutoReleaseTimeRequest(
            region_id=REGION, instance_id=instance_id, auto_release_time=text
        )
    )
    assert _instance(lab, instance_id).auto_release_time == text
    soon = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for bad in (soon, "tomorrow"):
        request = em.ModifyInstanceAutoReleaseTimeRequest(
            region_id=REGION, instance_id=instance_id, auto_release_time=bad
        )
        assert (
            error_of(lambda r=request: lab.ecs.modify_instance_auto_release_time(r)).code
            == "InvalidAutoReleaseTime.Malformed"
        )
    lab.ecs.modify_instance_auto_release_time(
        em.ModifyInstanceAutoReleaseTimeRequest(region_id=REGION, instance_id=instance_id)
    )
    assert _instance(lab, instance_id).auto_release_time == ""


def _vswitch(live: LiveServer, key: tuple[str, str], vpc_id: str, cidr: str, zone: str = ZONE) -> str:
    vpc = tea_vpc(live, key)
    vswitch_id = str(
        vpc.create_vswitch(
            vm.CreateVSwitchRequest(region_id=REGION, vpc_id=vpc_id, zone_id=zone, cidr_block=cidr)
        ).body.v_switch_id
    )
    wait_vswitch(vpc, vswitch_id)
    return vswitch_id


def test_modify_instance_vpc_attribute(lab: Lab, live: LiveServer, fresh_key: tuple[str, str]) -> None:
    [instance_id] = lab.run(private_ip_address="10.62.1.5")
    assert lab.wait(instance_id, "Running") == "Running"
    second = _vswitch(live, fresh_key, lab.vpc_id, "10.62.2.0/24")

    def modify(**fields: Any) -> None:
        lab.ecs.modify_instance_vpc_attribute(
            em.ModifyInstanceVpcAttributeRequest(instance_id=instance_id, **fields)
        )

    running = error_of(lambda: modify(v_switch_id=second))
    assert (running.code, running.status_code) == ("IncorrectInstanceStatus", 403)
    lab.ecs.stop_instance(em.StopInstanceRequest(instance_id=instance_id))
    assert lab.wait(instance_id, "Stopped") == "Stopped"

    modify(v_switch_id=second, private_ip_address="10.62.2.9")
    shown = _instance(lab, instance_id)
    assert (shown.vpc_attributes.v_switch_id, shown.vpc_attributes.private_ip_address.ip_address) == (
        second,
        ["10.62.2.9"],
    )
    assert shown.network_interfaces.network_interface[0].primary_ip_address == "10.62.2.9"
    modify(v_switch_id=second)  # the same vSwitch, no new IP: nothing changes
    assert _instance(lab, instance_id).vpc_attributes.private_ip_address.ip_address == ["10.62.2.9"]

    other_zone = _vswitch(live, fresh_key, lab.vpc_id, "10.62.3.0/24", zone="cn-hangzhou-i")
    other_vpc, other_vpc_vswitch = make_network(live, fresh_key, cidr="10.63.0.0/16")
    other_group = lab.ecs.create_security_group(
        em.CreateSecurityGroupRequest(region_id=REGION, vpc_id=other_vpc)
    ).body.security_group_id
    for fields, code in (
        ({"v_switch_id": other_zone}, "InvalidVSwitchId.Mismatch"),
        ({"v_switch_id": other_vpc_vswitch}, "InvalidVSwitchId.NotFound"),
        ({"v_switch_id": second, "private_ip_address": "10.62.1.5"}, "InvalidPrivateIpAddress.Mismatch"),
        ({"v_switch_id": second, "private_ip_address": "10.62.2.253"}, "InvalidPrivateIpAddress.Reserved"),
        ({"v_switch_id": "vsw-nope"}, "InvalidVSwitchId.NotFound"),
        ({"v_switch_id": other_vpc_vswitch, "vpc_id": other_vpc}, "MissingParameter"),
        (
            {"v_switch_id": other_vpc_vswitch, "vpc_id": other_vpc, "security_group_id": [lab.group_id]},
            "InvalidSecurityGroupId.VpcMismatch",
        ),
    ):
        assert error_of(lambda fields=fields: modify(**fields)).code.startswith(code), fields
    assert _instance(lab, instance_id).vpc_attributes.v_switch_id == second  # nothing changed

    # to another VPC, with that VPC's security group
    modify(v_switch_id=other_vpc_vswitch, vpc_id=other_vpc, security_group_id=[other_group])
    shown = _instance(lab, instance_id)
    assert (shown.vpc_attributes.vpc_id, shown.vpc_attributes.v_switch_id) == (other_vpc, other_vpc_vswitch)
    assert shown.security_group_ids.security_group_id == [other_group]
    assert shown.vpc_attributes.private_ip_address.ip_address[0].startswith("10.63.1.")
    lab.ecs.start_instance(em.StartInstanceRequest(instance_id=instance_id))
    assert lab.wait(instance_id, "Running") == "Running"


def test_modify_instance_deployment(lab: Lab) -> None:
    def new_set(strategy: str) -> str:
        return str(
            lab.ecs.create_deployment_set(
                em.CreateDeploymentSetRequest(region_id=REGION, strategy=strategy)
            ).body.deployment_set_id
        )

    first, second = lab.run(amount=2)
    for instance_id in (first, second):
        assert lab.wait(instance_id, "Running") == "Running"
    spread = new_set("Availability")

    def modify(instance_id: str, **fields: Any) -> None:
        lab.ecs.modify_instance_deployment(
            em.ModifyInstanceDeploymentRequest(region_id=REGION, instance_id=instance_id, **fields)
        )

    modify(first, deployment_set_id=spread)  # while Running: it stays on its host
    assert _instance(lab, first).deployment_set_id == spread
    # the emulator has one host: a second member of an Availability set would share it
    refused = error_of(lambda: modify(second, deployment_set_id=spread))
    assert (refused.code, refused.status_code) == ("DeploymentSet.ModificationFailed", 403)
    forced = error_of(lambda: modify(second, deployment_set_id=spread, force=True))
    assert forced.code == "InvalidParameter.NotSupported" and '"Force"' in forced.message
    assert _instance(lab, second).deployment_set_id == ""

    groups = new_set("AvailabilityGroup")
    modify(second, deployment_set_id=groups, deployment_set_group_no=3)
    shown = _instance(lab, second)
    assert (shown.deployment_set_id, shown.deployment_set_group_no) == (groups, 3)
    assert error_of(lambda: modify(first, deployment_set_id=groups, deployment_set_group_no=3)).code == (
        "DeploymentSet.ModificationFailed"
    )
    modify(first, deployment_set_id=groups, deployment_set_group_no=2)  # another group: allowed

    for fields, code in (
        ({"deployment_set_id": "ds-nope"}, "InvalidDeploymentSetId.NotFound"),
        ({}, "MissingParameter.DeploymentSetId"),
        ({"deployment_set_id": spread, "remove_from_deployment_set": True}, "InvalidParameter"),
        ({"deployment_set_id": spread, "dedicated_host_id": "dh-1"}, "InvalidParameter.NotSupported"),
        ({"deployment_set_id": spread, "tenancy": "host"}, "InvalidParameter.NotSupported"),
    ):
        assert error_of(lambda fields=fields: modify(first, **fields)).code.startswith(code), fields
    modify(first, deployment_set_id=groups, remove_from_deployment_set=True)
    shown = _instance(lab, first)
    assert (shown.deployment_set_id, shown.deployment_set_group_no) == ("", 0)


def test_resource_groups(lab: Lab, live: LiveServer, fresh_key: tuple[str, str]) -> None:
    [instance_id] = lab.run()
    default = _instance(lab, instance_id).resource_group_id
    assert default.startswith("rg-acfm")
    groups = lab.ecs.describe_security_groups(em.DescribeSecurityGroupsRequest(region_id=REGION)).body
    assert {g.resource_group_id for g in groups.security_groups.security_group} == {default}
    lab.ecs.create_key_pair(em.CreateKeyPairRequest(region_id=REGION, key_pair_name="grouped"))
    pairs = lab.ecs.describe_key_pairs(em.DescribeKeyPairsRequest(region_id=REGION)).body
    assert [k.resource_group_id for k in pairs.key_pairs.key_pair] == [default]
    team = live.create_resource_group(fresh_key, "team")
    [grouped] = lab.run(resource_group_id=team)
    assert _instance(lab, grouped).resource_group_id == team

    def in_group(group: str) -> set[str]:
        request = em.DescribeInstancesRequest(region_id=REGION, resource_group_id=group)
        return {i.instance_id for i in lab.ecs.describe_instances(request).body.instances.instance}

    assert (in_group(default), in_group(team)) == ({instance_id}, {grouped})

    def join(resource_type: str, resource_id: str, group: str) -> None:
        lab.ecs.join_resource_group(
            em.JoinResourceGroupRequest(
                region_id=REGION,
                resource_type=resource_type,
                resource_id=resource_id,
                resource_group_id=group,
            )
        )

    join("instance", instance_id, team)
    assert in_group(team) == {instance_id, grouped}
    join("securitygroup", lab.group_id, team)
    join("keypair", "grouped", team)
    pairs = lab.ecs.describe_key_pairs(
        em.DescribeKeyPairsRequest(region_id=REGION, resource_group_id=team)
    ).body
    assert [k.key_pair_name for k in pairs.key_pairs.key_pair] == ["grouped"]
    for args, code in (
        (("instance", instance_id, "rg-nope"), "InvalidResourceGroup.NotFound"),
        (("instance", "i-nope", team), "InvalidInstanceId.NotFound"),
        (("disk", "d-x", team), "InvalidDiskId.NotFound"),
        (("launchtemplate", "lt-x", team), "InvalidLaunchTemplate.NotFound"),
        (("volcano", "x", team), "InvalidResourceType.NotFound"),
    ):
        assert error_of(lambda args=args: join(*args)).code == code, args
    assert error_of(lambda: lab.run(resource_group_id="rg-nope")).code == "InvalidResourceGroup.NotFound"
    other = live.create_account(f"rg-{uuid.uuid4().hex[:8]}")
    theirs = live.create_resource_group(other, "theirs")
    assert error_of(lambda: join("instance", instance_id, theirs)).code == "InvalidResourceGroup.NotFound"
    assert in_group(team) == {instance_id, grouped}


def test_disks_and_snapshots_are_in_the_default_group_until_they_join_another(
    lab: Lab, live: LiveServer, fresh_key: tuple[str, str]
) -> None:
    [instance_id] = lab.run()
    default = _instance(lab, instance_id).resource_group_id
    team = live.create_resource_group(fresh_key, "team")

    def disks(**fields: Any) -> dict[str, str]:
        body = lab.ecs.describe_disks(em.DescribeDisksRequest(region_id=REGION, **fields)).body
        return {d.disk_id: d.resource_group_id for d in body.disks.disk}

    [disk_id] = disks(instance_id=instance_id)
    assert disks() == {disk_id: default} == disks(resource_group_id=default)
    lab.ecs.join_resource_group(
        em.JoinResourceGroupRequest(
            region_id=REGION, resource_type="disk", resource_id=disk_id, resource_group_id=team
        )
    )
    assert (disks(resource_group_id=team), disks(resource_group_id=default)) == ({disk_id: team}, {})
    snapshot_id = lab.ecs.create_snapshot(em.CreateSnapshotRequest(disk_id=disk_id)).body.snapshot_id

    def snapshots(**fields: Any) -> dict[str, str]:
        body = lab.ecs.describe_snapshots(em.DescribeSnapshotsRequest(region_id=REGION, **fields)).body
        return {sn.snapshot_id: sn.resource_group_id for sn in body.snapshots.snapshot}

    assert snapshots() == {snapshot_id: default}
    lab.ecs.join_resource_group(
        em.JoinResourceGroupRequest(
            region_id=REGION, resource_type="snapshot", resource_id=snapshot_id, resource_group_id=team
        )
    )
    assert snapshots(resource_group_id=team) == {snapshot_id: team}
    assert snapshots(resource_group_id=default) == {}


def test_disks_snapshots_and_images_are_made_in_a_group(
    lab: Lab, live: LiveServer, fresh_key: tuple[str, str]
) -> None:
    team = live.create_resource_group(fresh_key, "storage-team")
    disk_id = lab.ecs.create_disk(
        em.CreateDiskRequest(
            region_id=REGION, zone_id=ZONE, size=20, disk_category="cloud_essd", resource_group_id=team
        )
    ).body.disk_id

    def disks_in(group: str) -> list[str]:
        body = lab.ecs.describe_disks(em.DescribeDisksRequest(region_id=REGION, resource_group_id=group)).body
        return [d.disk_id for d in body.disks.disk]

    assert disks_in(team) == [disk_id]
    deadline = time.monotonic() + 30
    while (
        disks_in(team)
        and lab.ecs.describe_disks(em.DescribeDisksRequest(region_id=REGION, disk_ids=f'["{disk_id}"]'))
        .body.disks.disk[0]
        .status
        != "Available"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    snapshot_id = lab.ecs.create_snapshot(
        em.CreateSnapshotRequest(disk_id=disk_id, resource_group_id=team)
    ).body.snapshot_id
    snapshots = lab.ecs.describe_snapshots(
        em.DescribeSnapshotsRequest(region_id=REGION, resource_group_id=team)
    ).body.snapshots.snapshot
    assert [s.snapshot_id for s in snapshots] == [snapshot_id]
    unknown = error_of(
        lambda: lab.ecs.create_disk(
            em.CreateDiskRequest(
                region_id=REGION, zone_id=ZONE, size=20, resource_group_id="rg-acfmnosuchgroup"
            )
        )
    )
    assert unknown.code == "InvalidResourceGroup.NotFound"
    assert disks_in(team) == [disk_id]  # nothing made
