"""Issue 11 for the compute actions, through the official SDK: every declared parameter takes
visible effect, and the ones nubes does not do are refused by name and change nothing."""

from __future__ import annotations

from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em

from ..conftest import LiveServer
from .test_instances_api import Lab, error_of
from .test_vpc_api import REGION


@pytest.fixture
def lab(live: LiveServer, fresh_key: tuple[str, str]) -> Lab:
    return Lab(live, fresh_key, "10.61.0.0/16")


def _attributes(lab: Lab) -> dict[str, str]:
    body = lab.ecs.describe_account_attributes(em.DescribeAccountAttributesRequest(region_id=REGION)).body
    return {
        item.attribute_name: item.attribute_values.value_item[0].value
        for item in body.account_attribute_items.account_attribute_item
        if item.attribute_values.value_item
    }


def _disk_gib(lab: Lab) -> int:
    disks = lab.ecs.describe_disks(em.DescribeDisksRequest(region_id=REGION, page_size=100)).body
    return sum(d.size for d in disks.disks.disk)


def _instances(lab: Lab, **fields: Any) -> list[Any]:
    request = em.DescribeInstancesRequest(region_id=REGION, **fields)
    return list(lab.ecs.describe_instances(request).body.instances.instance)


def test_account_attributes_count_the_callers_usage(lab: Lab) -> None:
    before = _attributes(lab)
    assert (before["used-postpaid-instance-vcpu-count"], before["used-postpaid-yundisk-capacity"]) == (
        "0",
        "0",
    )
    lab.run(amount=2, data_disk=[em.RunInstancesRequestDataDisk(size=30, category="cloud_essd")])
    after = _attributes(lab)
    assert after["used-postpaid-instance-vcpu-count"] == "4"  # 2 x ecs.g7.large
    assert int(after["used-postpaid-yundisk-capacity"]) == _disk_gib(lab) > 60


def test_vcpu_quota_is_enforced_at_launch(lab: Lab) -> None:
    error = error_of(lambda: lab.run(instance_type="ecs.g8i.48xlarge", amount=3))  # 576 > 500 vCPUs
    assert error.code == "QuotaExceed.ElasticQuota"
    assert _instances(lab) == []
    assert _attributes(lab)["used-postpaid-instance-vcpu-count"] == "0"


def test_disk_capacity_quota_is_enforced(lab: Lab) -> None:
    [instance_id] = lab.run()
    zone = lab.ecs.describe_instance_attribute(em.DescribeInstanceAttributeRequest(instance_id=instance_id))
    used = _disk_gib(lab)
    request = em.CreateDiskRequest(
        region_id=REGION, zone_id=zone.body.zone_id, disk_category="cloud_essd", size=20000 - used + 1
    )
    assert error_of(lambda: lab.ecs.create_disk(request)).code == "QuotaExceed.DiskCapacity"
    assert _disk_gib(lab) == used
    big = [em.RunInstancesRequestDataDisk(size=20000, category="cloud_essd")]
    assert error_of(lambda: lab.run(data_disk=big)).code == "QuotaExceed.DiskCapacity"
    assert len(_instances(lab)) == 1
    request.size = 20000 - used
    lab.ecs.create_disk(request)  # exactly up to the quota
    assert _attributes(lab)["used-postpaid-yundisk-capacity"] == "20000"


def test_describe_instances_time_and_address_filters(lab: Lab) -> None:
    [instance_id] = lab.run()
    [instance] = _instances(lab)
    ip = instance.vpc_attributes.private_ip_address.ip_address[0]

    def matching(key: str, value: str) -> int:
        return len(_instances(lab, filter=[em.DescribeInstancesRequestFilter(key=key, value=value)]))

    assert instance.expired_time == "2099-12-31T15:59Z"
    assert matching("ExpiredEndTime", "2099-12-31T16:00Z") == 1
    assert matching("ExpiredEndTime", "2099-12-31T15:00Z") == 0
    assert matching("ExpiredStartTime", "2099-12-31T15:00Z") == 1
    assert matching("ExpiredStartTime", "2099-12-31T16:00Z") == 0
    assert [i.instance_id for i in _instances(lab, private_ip_addresses=f'["{ip}"]')] == [instance_id]
    # a VPC instance has no classic-network inner address: it shows none and matches none
    assert instance.inner_ip_address.ip_address == []
    assert _instances(lab, inner_ip_addresses=f'["{ip}"]') == []


def test_deployment_set_groups_are_stored_shown_and_checked(lab: Lab) -> None:
    set_id = lab.ecs.create_deployment_set(
        em.CreateDeploymentSetRequest(region_id=REGION, strategy="AvailabilityGroup")
    ).body.deployment_set_id
    sets = lab.ecs.describe_deployment_sets(
        em.DescribeDeploymentSetsRequest(region_id=REGION, deployment_set_ids=f'["{set_id}"]')
    ).body.deployment_sets.deployment_set
    assert sets[0].group_count == 3  # ECS's default for AvailabilityGroup
    [second] = lab.run(deployment_set_id=set_id, deployment_set_group_no=2)
    [first] = lab.run(deployment_set_id=set_id)  # the group with the fewest members
    shown = {i.instance_id: i.deployment_set_group_no for i in _instances(lab)}
    assert shown == {second: 2, first: 1}
    error = error_of(lambda: lab.run(deployment_set_id=set_id, deployment_set_group_no=4))
    assert error.code == "InvalidParameter" and "DeploymentSetGroupNo" in error.message
    assert len(_instances(lab)) == 2


@pytest.mark.parametrize("field", ["type", "affinity"])
def test_undocumented_deployment_set_parameters_are_refused(lab: Lab, field: str) -> None:
    request = em.CreateDeploymentSetRequest(region_id=REGION)
    setattr(request, field, "x" if field == "type" else 1)
    error = error_of(lambda: lab.ecs.create_deployment_set(request))
    assert error.code == "InvalidParameter.NotSupported" and field.capitalize() in error.message
    body = lab.ecs.describe_deployment_sets(em.DescribeDeploymentSetsRequest(region_id=REGION)).body
    assert body.total_count == 0


def test_delete_with_graceful_stop_is_refused(lab: Lab) -> None:
    [instance_id] = lab.run()
    lab.wait(instance_id, "Running")
    request = em.DeleteInstanceRequest(instance_id=instance_id, force=True, force_stop=False)
    error = error_of(lambda: lab.ecs.delete_instance(request))
    assert error.code == "InvalidParameter.NotSupported" and "ForceStop" in error.message
    many = em.DeleteInstancesRequest(
        region_id=REGION, instance_id=[instance_id], force=True, force_stop=False
    )
    assert error_of(lambda: lab.ecs.delete_instances(many)).code == "InvalidParameter.NotSupported"
    assert lab.status(instance_id) == "Running"
    lab.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))
    assert _instances(lab) == []


def test_modify_instance_deployment_refuses_instance_type(lab: Lab) -> None:
    [instance_id] = lab.run()
    request = em.ModifyInstanceDeploymentRequest(
        region_id=REGION,
        instance_id=instance_id,
        instance_type="ecs.g7.xlarge",
        remove_from_deployment_set=True,
    )
    error = error_of(lambda: lab.ecs.modify_instance_deployment(request))
    assert error.code == "InvalidParameter.NotSupported" and "InstanceType" in error.message
    assert _instances(lab)[0].instance_type == "ecs.g7.large"


def test_describe_regions_by_resource_type(lab: Lab) -> None:
    def regions(resource_type: str) -> int:
        request = em.DescribeRegionsRequest(resource_type=resource_type)
        return len(lab.ecs.describe_regions(request).body.regions.region)

    assert regions("instance") == regions("disk") > 0
    assert regions("reservedinstance") == regions("scu") == 0


def test_available_resource_narrows_by_cores_and_memory(lab: Lab) -> None:
    def supported(**fields: Any) -> int:
        request = em.DescribeAvailableResourceRequest(region_id=REGION, destination_resource="Zone", **fields)
        zones = lab.ecs.describe_available_resource(request).body.available_zones.available_zone
        return sum(
            len(r.supported_resources.supported_resource)
            for z in zones
            for r in z.available_resources.available_resource
        )

    assert supported(cores=2, memory=8.0) > 0
    assert supported(cores=2, memory=1000.0) == 0
    assert supported(cores=999) == 0


def test_min_amount_takes_what_the_vcpu_quota_leaves(lab: Lab) -> None:
    ids = lab.run(instance_type="ecs.g7.8xlarge", amount=20, min_amount=1)  # 32 vCPUs each
    assert len(ids) <= 15  # 500 // 32
    assert _attributes(lab)["used-postpaid-instance-vcpu-count"] == str(32 * len(ids))
    lab.ecs.delete_instances(em.DeleteInstancesRequest(region_id=REGION, instance_id=ids, force=True))
    assert _attributes(lab)["used-postpaid-instance-vcpu-count"] == "0"  # the host has room again


def test_run_instances_without_instance_type_is_missing_parameter(lab: Lab) -> None:
    error = error_of(lambda: lab.run(instance_type=None))
    assert error.code == "MissingParameter.InstanceType"
    assert _instances(lab) == []
