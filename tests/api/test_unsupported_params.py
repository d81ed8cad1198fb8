"""No documented parameter is accepted and dropped: through the official SDK, what nubes does not
do is refused by name before anything changes, and what it now does is seen to happen."""

from __future__ import annotations

from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em
from alibabacloud_vpc20160428 import models as vm
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkecs.request.v20140526.DescribeRegionsRequest import DescribeRegionsRequest

from ..conftest import LiveServer, acs_client, tea_vpc
from .test_instances_api import Lab, error_of
from .test_vpc_api import REGION


@pytest.fixture
def lab(live: LiveServer, fresh_key: tuple[str, str]) -> Lab:
    return Lab(live, fresh_key, "10.61.0.0/16")


def instance_ids(lab: Lab) -> set[str]:
    rows = lab.ecs.describe_instances(em.DescribeInstancesRequest(region_id=REGION, page_size=100)).body
    return {i.instance_id for i in rows.instances.instance}


def zone_of(lab: Lab) -> str:
    return str(lab.ecs.describe_zones(em.DescribeZonesRequest(region_id=REGION)).body.zones.zone[0].zone_id)


def test_values_nubes_does_not_do_are_refused_by_name_and_change_nothing(lab: Lab) -> None:
    before = instance_ids(lab)
    refusals: dict[str, Any] = {
        "SystemDisk.KMSKeyId": em.RunInstancesRequestSystemDisk(kmskey_id="key-1"),
        "HttpPutResponseHopLimit": 2,
        "InstanceChargeType": "PrePaid",
        "SpotStrategy": "SpotAsPriceGo",
    }
    fields = {
        "SystemDisk.KMSKeyId": "system_disk",
        "HttpPutResponseHopLimit": "http_put_response_hop_limit",
        "InstanceChargeType": "instance_charge_type",
        "SpotStrategy": "spot_strategy",
    }
    for wire, value in refusals.items():
        error = error_of(lambda field=fields[wire], value=value: lab.run(**{field: value}))
        assert error.code == "InvalidParameter.NotSupported", (wire, error.code)
        assert f'"{wire}"' in error.message, error.message
    assert instance_ids(lab) == before
    # The values nubes does do are accepted as they are.
    [instance_id] = lab.run(
        system_disk=em.RunInstancesRequestSystemDisk(encrypted="false"),
        internet_max_bandwidth_out=0,
        instance_charge_type="PostPaid",
        spot_strategy="NoSpot",
    )
    assert lab.wait(instance_id, "Running") == "Running"
    hibernate = error_of(
        lambda: lab.ecs.stop_instance(em.StopInstanceRequest(instance_id=instance_id, hibernate=True))
    )
    # (honoured: refused for an instance not created with HibernationOptions.Configured=true)
    assert hibernate.code == "InvalidOperation.HibernateNotConfigured"
    assert lab.status(instance_id) == "Running"


def test_a_documented_parameter_nubes_does_not_declare_is_refused(lab: Lab) -> None:
    disk_id = lab.ecs.create_disk(
        em.CreateDiskRequest(region_id=REGION, zone_id=zone_of(lab), size=20, disk_category="cloud_essd")
    ).body.disk_id
    [instance_id] = lab.run()
    lab.wait(instance_id, "Running")
    error = error_of(
        lambda: lab.ecs.attach_disk(
            em.AttachDiskRequest(disk_id=disk_id, instance_id=instance_id, device="/dev/xvdz")
        )
    )
    assert error.code == "InvalidParameter.NotSupported" and '"Device"' in error.message
    disk = lab.ecs.describe_disks(em.DescribeDisksRequest(region_id=REGION, disk_ids=f'["{disk_id}"]')).body
    assert disk.disks.disk[0].status == "Available"


def test_owner_parameters_must_name_the_caller(
    live: LiveServer, lab: Lab, fresh_key: tuple[str, str]
) -> None:
    vpcs = tea_vpc(live, fresh_key).describe_vpcs(vm.DescribeVpcsRequest(region_id=REGION, vpc_id=lab.vpc_id))
    owner_id = str(vpcs.body.vpcs.vpc[0].owner_id)
    client = acs_client(live, fresh_key)

    def describe_regions(owner: str) -> Any:
        request = DescribeRegionsRequest()
        request.add_query_param("OwnerId", owner)
        return client.do_action_with_exception(request)

    assert describe_regions(owner_id)
    try:
        describe_regions(str(int(owner_id) + 1))
    except ServerException as error:
        assert error.get_error_code() == "InvalidParameter" and "OwnerId" in error.get_error_msg()
    else:
        raise AssertionError("another account's OwnerId was accepted")


def test_replace_system_disk_takes_the_new_login(lab: Lab) -> None:
    lab.ecs.create_key_pair(em.CreateKeyPairRequest(region_id=REGION, key_pair_name="kp-new-disk"))
    [instance_id] = lab.run()
    lab.wait(instance_id, "Running")
    lab.ecs.stop_instance(em.StopInstanceRequest(instance_id=instance_id))
    lab.wait(instance_id, "Stopped")
    lab.ecs.replace_system_disk(
        em.ReplaceSystemDiskRequest(
            instance_id=instance_id, image_id=lab.image_id, key_pair_name="kp-new-disk"
        )
    )
    shown = lab.ecs.describe_instances(
        em.DescribeInstancesRequest(region_id=REGION, instance_ids=f'["{instance_id}"]')
    ).body.instances.instance[0]
    assert shown.key_pair_name == "kp-new-disk"
    weak = error_of(
        lambda: lab.ecs.replace_system_disk(
            em.ReplaceSystemDiskRequest(instance_id=instance_id, image_id=lab.image_id, password="short")
        )
    )
    assert weak.code.startswith("InvalidPassword") or weak.code == "InvalidParameter", weak.code


def test_modify_security_group_rule_by_its_fields_changes_the_description(lab: Lab) -> None:
    rule = {"ip_protocol": "tcp", "port_range": "22/22", "source_cidr_ip": "10.9.0.0/16", "priority": "1"}
    lab.ecs.authorize_security_group(
        em.AuthorizeSecurityGroupRequest(region_id=REGION, security_group_id=lab.group_id, **rule)
    )
    lab.ecs.modify_security_group_rule(
        em.ModifySecurityGroupRuleRequest(
            region_id=REGION, security_group_id=lab.group_id, description="ssh from the office", **rule
        )
    )
    permissions = lab.ecs.describe_security_group_attribute(
        em.DescribeSecurityGroupAttributeRequest(region_id=REGION, security_group_id=lab.group_id)
    ).body.permissions.permission
    [changed] = [p for p in permissions if p.source_cidr_ip == "10.9.0.0/16"]
    assert changed.description == "ssh from the office"
    missing = error_of(
        lambda: lab.ecs.modify_security_group_rule(
            em.ModifySecurityGroupRuleRequest(
                region_id=REGION,
                security_group_id=lab.group_id,
                description="x",
                **{**rule, "port_range": "23/23"},
            )
        )
    )
    assert missing.code == "InvalidSecurityGroupRule.RuleNotExist"
