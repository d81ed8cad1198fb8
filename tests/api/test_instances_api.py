"""Instances through the official SDK against the emulator (fake compute): the status machine,
validation and error codes, queries. Real VMs are in tests/vm."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em
from alibabacloud_tea_openapi.exceptions import ClientException

from ..conftest import LiveServer, tea_ecs
from .test_security_group_api import make_network
from .test_vpc_api import REGION

TYPE = "ecs.g7.large"


def error_of(call: Any) -> ClientException:
    with pytest.raises(ClientException) as info:
        call()
    return info.value


class Lab:
    def __init__(self, live: LiveServer, key: tuple[str, str], cidr: str) -> None:
        self.ecs = tea_ecs(live, key)
        self.vpc_id, self.vswitch_id = make_network(live, key, cidr=cidr)
        self.group_id = self.ecs.create_security_group(
            em.CreateSecurityGroupRequest(region_id=REGION, vpc_id=self.vpc_id)
        ).body.security_group_id
        images = self.ecs.describe_images(
            em.DescribeImagesRequest(region_id=REGION, image_owner_alias="system")
        ).body
        self.image_id = next(
            i.image_id for i in images.images.image if i.image_family == "nubes:debian_12_x64"
        )

    def run(self, **fields: Any) -> list[str]:
        request = em.RunInstancesRequest(
            region_id=REGION,
            image_id=self.image_id,
            instance_type=TYPE,
            v_switch_id=self.vswitch_id,
            security_group_id=self.group_id,
        )
        for name, value in fields.items():
            setattr(request, name, value)
        return list(self.ecs.run_instances(request).body.instance_id_sets.instance_id_set)

    def status(self, instance_id: str) -> str:
        return str(
            self.ecs.describe_instance_attribute(
                em.DescribeInstanceAttributeRequest(instance_id=instance_id)
            ).body.status
        )

    def wait(self, instance_id: str, status: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        current = self.status(instance_id)
        while current != status and time.monotonic() < deadline:
            time.sleep(0.1)
            current = self.status(instance_id)
        return current


@pytest.fixture
def lab(live: LiveServer, fresh_key: tuple[str, str]) -> Lab:
    return Lab(live, fresh_key, "10.60.0.0/16")


def test_run_stop_start_reboot_delete(lab: Lab) -> None:
    [instance_id] = lab.run(
        instance_name="web", host_name="web-1", tag=[em.RunInstancesRequestTag(key="env", value="test")]
    )
    assert instance_id.startswith("i-")
    assert lab.wait(instance_id, "Running") == "Running"
    attrs = lab.ecs.describe_instance_attribute(
        em.DescribeInstanceAttributeRequest(instance_id=instance_id)
    ).body
    assert (attrs.instance_name, attrs.host_name, attrs.instance_type, attrs.cpu, attrs.memory) == (
        "web",
        "web-1",
        TYPE,
        2,
        8192,
    )
    assert attrs.vpc_attributes.private_ip_address.ip_address[0].startswith("10.60.1.")
    assert attrs.security_group_ids.security_group_id == [lab.group_id]

    denied = error_of(lambda: lab.ecs.start_instance(em.StartInstanceRequest(instance_id=instance_id)))
    assert (denied.code, denied.status_code) == ("IncorrectInstanceStatus", 403)
    denied = error_of(lambda: lab.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id)))
    assert denied.code == "IncorrectInstanceStatus"

    lab.ecs.stop_instance(em.StopInstanceRequest(instance_id=instance_id))
    assert lab.status(instance_id) in ("Stopping", "Stopped")
    assert lab.wait(instance_id, "Stopped") == "Stopped"
    lab.ecs.start_instance(em.StartInstanceRequest(instance_id=instance_id))
    assert lab.wait(instance_id, "Running") == "Running"
    lab.ecs.reboot_instance(em.RebootInstanceRequest(instance_id=instance_id))
    assert lab.wait(instance_id, "Running") == "Running"
    lab.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))
    gone = error_of(lambda: lab.status(instance_id))
    assert (gone.code, gone.status_code) == ("InvalidInstanceId.NotFound", 404)


def test_create_instance_ends_stopped(lab: Lab) -> None:
    created = lab.ecs.create_instance(
        em.CreateInstanceRequest(
            region_id=REGION,
            image_id=lab.image_id,
            instance_type=TYPE,
            v_switch_id=lab.vswitch_id,
            security_group_id=lab.group_id,
        )
    ).body.instance_id
    assert lab.wait(created, "Stopped") == "Stopped"
    lab.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=created))


def test_batches_names_and_filters(lab: Lab) -> None:
    ids = lab.run(amount=3, instance_name="node-[1,3]", host_name="node-[7,2]")
    for instance_id in ids:
        lab.wait(instance_id, "Running")
    described = lab.ecs.describe_instances(
        em.DescribeInstancesRequest(region_id=REGION, instance_ids=f'["{ids[0]}", "{ids[1]}", "{ids[2]}"]')
    ).body
    assert sorted(i.instance_name for i in described.instances.instance) == [
        "node-001",
        "node-002",
        "node-003",
    ]
    assert sorted(i.host_name for i in described.instances.instance) == ["node-07", "node-08", "node-09"]
    by_name = lab.ecs.describe_instances(
        em.DescribeInstancesRequest(region_id=REGION, instance_name="node-00*")
    ).body
    assert by_name.total_count == 3
    F = em.DescribeInstancesRequestFilter
    future = lab.ecs.describe_instances(
        em.DescribeInstancesRequest(
            region_id=REGION, filter=[F(key="CreationStartTime", value="2099-01-01T00:00Z")]
        )
    ).body
    past = lab.ecs.describe_instances(
        em.DescribeInstancesRequest(
            region_id=REGION, filter=[F(key="CreationStartTime", value="2020-01-01T00:00Z")]
        )
    ).body
    assert (future.total_count, past.total_count) == (0, 3)
    bad = error_of(
        lambda: lab.ecs.describe_instances(
            em.DescribeInstancesRequest(region_id=REGION, filter=[F(key="Colour", value="red")])
        )
    )
    assert bad.code == "InvalidFilterKey.NotFound"
    page = lab.ecs.describe_instances(
        em.DescribeInstancesRequest(region_id=REGION, page_size=2, page_number=2)
    ).body
    assert (page.total_count, len(page.instances.instance), page.page_number) == (3, 1, 2)
    first = lab.ecs.describe_instances(em.DescribeInstancesRequest(region_id=REGION, max_results=2)).body
    second = lab.ecs.describe_instances(
        em.DescribeInstancesRequest(region_id=REGION, max_results=2, next_token=first.next_token)
    ).body
    seen = [i.instance_id for i in first.instances.instance + second.instances.instance]
    assert sorted(seen) == sorted(ids) and second.next_token == ""
    statuses = lab.ecs.describe_instance_status(em.DescribeInstanceStatusRequest(region_id=REGION)).body
    assert {s.instance_id: s.status for s in statuses.instance_statuses.instance_status} == dict.fromkeys(
        ids, "Running"
    )
    lab.ecs.stop_instances(em.StopInstancesRequest(region_id=REGION, instance_id=ids, force_stop=True))
    for instance_id in ids:
        assert lab.wait(instance_id, "Stopped") == "Stopped"
    lab.ecs.delete_instances(em.DeleteInstancesRequest(region_id=REGION, instance_id=ids))
    assert lab.ecs.describe_instances(em.DescribeInstancesRequest(region_id=REGION)).body.total_count == 0


@pytest.mark.parametrize(
    "fields, code",
    [
        ({"instance_type": "ecs.nothere.large"}, "InvalidInstanceType.ValueNotSupported"),
        ({"image_id": "m-nothere"}, "InvalidImageId.NotFound"),
        ({"password": "short"}, "InvalidPassword.Malformed"),
        ({"user_data": "not base64!"}, "InvalidUserData.Base64FormatInvalid"),
        ({"auto_release_time": "tomorrow"}, "InvalidAutoReleaseTime.Malformed"),
        ({"key_pair_name": "nothere"}, "InvalidKeyPairName.NotFound"),
        ({"host_name": "-bad-"}, "InvalidHostName.Malformed"),
        ({"instance_type": "ecs.r8i.32xlarge", "amount": 3}, "OperationDenied.NoStock"),  # 3 TiB
        ({"instance_type": "ecs.g7.32xlarge", "amount": 100}, "QuotaExceed.ElasticQuota"),
        ({"dry_run": True}, "DryRunOperation"),
        ({"v_switch_id": "vsw-nothere"}, "InvalidVSwitchId.NotFound"),
        (
            {"system_disk": em.RunInstancesRequestSystemDisk(category="cloud_essd", size=10)},
            "InvalidSystemDiskSize.LessThanImageSize",
        ),
        (
            {"system_disk": em.RunInstancesRequestSystemDisk(category="cloud_essd", size=3000)},
            "InvalidSystemDiskSize",
        ),
    ],
)
def test_launch_validation(lab: Lab, fields: dict[str, Any], code: str) -> None:
    error = error_of(lambda: lab.run(**fields))
    assert error.code == code


def test_client_token_user_data_and_console(lab: Lab) -> None:
    script = base64.b64encode(b"#!/bin/sh\necho hello\n").decode()
    first = lab.run(client_token="tok-1", user_data=script)
    assert lab.run(client_token="tok-1", user_data=script) == first
    mismatch = error_of(lambda: lab.run(client_token="tok-1", amount=2))
    assert mismatch.code == "IdempotentParameterMismatch"
    data = lab.ecs.describe_user_data(em.DescribeUserDataRequest(region_id=REGION, instance_id=first[0])).body
    assert data.user_data == script
    lab.wait(first[0], "Running")
    console = lab.ecs.get_instance_console_output(
        em.GetInstanceConsoleOutputRequest(region_id=REGION, instance_id=first[0])
    ).body
    base64.b64decode(console.console_output)  # valid Base64 (the emulator's console says it is fake)
    lab.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=first[0], force=True))


def test_min_amount_takes_what_fits(lab: Lab) -> None:
    ids = lab.run(instance_type="ecs.g7.8xlarge", amount=20, min_amount=1)
    assert 1 <= len(ids) < 20
    lab.ecs.delete_instances(em.DeleteInstancesRequest(region_id=REGION, instance_id=ids, force=True))


def test_other_accounts_cannot_touch_an_instance(live: LiveServer, lab: Lab) -> None:
    [instance_id] = lab.run()
    other = tea_ecs(live, live.create_account(f"inst-other-{live.backend}-{time.monotonic_ns()}"))
    for call in (
        lambda: other.describe_instance_attribute(
            em.DescribeInstanceAttributeRequest(instance_id=instance_id)
        ),
        lambda: other.stop_instance(em.StopInstanceRequest(instance_id=instance_id)),
        lambda: other.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True)),
    ):
        assert error_of(call).code == "InvalidInstanceId.NotFound"
    assert other.describe_instances(em.DescribeInstancesRequest(region_id=REGION)).body.total_count == 0
    assert lab.wait(instance_id, "Running") == "Running"
    lab.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))


def test_tags_on_instances(lab: Lab) -> None:
    [instance_id] = lab.run(tag=[em.RunInstancesRequestTag(key="team", value="a")])
    lab.ecs.tag_resources(
        em.TagResourcesRequest(
            region_id=REGION,
            resource_type="instance",
            resource_id=[instance_id],
            tag=[em.TagResourcesRequestTag(key="env", value="prod")],
        )
    )
    listed = lab.ecs.list_tag_resources(
        em.ListTagResourcesRequest(region_id=REGION, resource_type="instance", resource_id=[instance_id])
    ).body
    assert {(t.tag_key, t.tag_value) for t in listed.tag_resources.tag_resource} == {
        ("team", "a"),
        ("env", "prod"),
    }
    by_tag = lab.ecs.describe_instances(
        em.DescribeInstancesRequest(
            region_id=REGION, tag=[em.DescribeInstancesRequestTag(key="env", value="prod")]
        )
    ).body
    assert [i.instance_id for i in by_tag.instances.instance] == [instance_id]
    lab.ecs.untag_resources(
        em.UntagResourcesRequest(
            region_id=REGION, resource_type="instance", resource_id=[instance_id], tag_key=["env"]
        )
    )
    by_tag = lab.ecs.describe_instances(
        em.DescribeInstancesRequest(region_id=REGION, tag=[em.DescribeInstancesRequestTag(key="env")])
    ).body
    assert by_tag.total_count == 0
    missing = error_of(
        lambda: lab.ecs.tag_resources(
            em.TagResourcesRequest(
                region_id=REGION,
                resource_type="instance",
                resource_id=["i-nothere"],
                tag=[em.TagResourcesRequestTag(key="k", value="v")],
            )
        )
    )
    assert missing.code == "InvalidResourceId.NotFound"
    lab.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))


def test_availability_deployment_set_needs_a_host_per_instance(lab: Lab) -> None:
    set_id = lab.ecs.create_deployment_set(
        em.CreateDeploymentSetRequest(region_id=REGION, deployment_set_name="spread", strategy="Availability")
    ).body.deployment_set_id
    [first] = lab.run(deployment_set_id=set_id)
    # The emulator is one host: a second instance of an Availability set has nowhere to go.
    error = error_of(lambda: lab.run(deployment_set_id=set_id))
    assert error.code == "OperationDenied.NoStock"
    sets = lab.ecs.describe_deployment_sets(em.DescribeDeploymentSetsRequest(region_id=REGION)).body
    assert sets.deployment_sets.deployment_set[0].instance_ids.instance_id == [first]
    busy = error_of(
        lambda: lab.ecs.delete_deployment_set(
            em.DeleteDeploymentSetRequest(region_id=REGION, deployment_set_id=set_id)
        )
    )
    assert busy.code == "DependencyViolation.Instance"
    lab.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=first, force=True))
    lab.ecs.delete_deployment_set(em.DeleteDeploymentSetRequest(region_id=REGION, deployment_set_id=set_id))


def test_key_pair_binding_and_spec_changes(lab: Lab) -> None:
    lab.ecs.create_key_pair(em.CreateKeyPairRequest(region_id=REGION, key_pair_name="kp-one"))
    [instance_id] = lab.run()
    lab.wait(instance_id, "Running")
    attached = lab.ecs.attach_key_pair(
        em.AttachKeyPairRequest(region_id=REGION, key_pair_name="kp-one", instance_ids=f'["{instance_id}"]')
    ).body
    assert (attached.total_count, attached.fail_count) == ("1", "0")
    # Effective at the next start, as in ECS: the running instance still shows no key pair.
    assert lab.ecs.describe_instances(
        em.DescribeInstancesRequest(region_id=REGION, instance_ids=f'["{instance_id}"]')
    ).body.instances.instance[0].key_pair_name in ("", None)
    denied = error_of(
        lambda: lab.ecs.modify_instance_spec(
            em.ModifyInstanceSpecRequest(instance_id=instance_id, instance_type="ecs.g7.xlarge")
        )
    )
    assert denied.code == "IncorrectInstanceStatus"
    lab.ecs.stop_instance(em.StopInstanceRequest(instance_id=instance_id))
    lab.wait(instance_id, "Stopped")
    lab.ecs.modify_instance_spec(
        em.ModifyInstanceSpecRequest(instance_id=instance_id, instance_type="ecs.g7.xlarge")
    )
    lab.ecs.modify_instance_attribute(
        em.ModifyInstanceAttributeRequest(
            instance_id=instance_id, instance_name="renamed", password="Passw0rd!", deletion_protection=True
        )
    )
    lab.ecs.start_instance(em.StartInstanceRequest(instance_id=instance_id))
    lab.wait(instance_id, "Running")
    attrs = lab.ecs.describe_instance_attribute(
        em.DescribeInstanceAttributeRequest(instance_id=instance_id)
    ).body
    assert (attrs.instance_type, attrs.cpu, attrs.instance_name) == ("ecs.g7.xlarge", 4, "renamed")
    described = lab.ecs.describe_instances(
        em.DescribeInstancesRequest(region_id=REGION, instance_ids=f'["{instance_id}"]')
    ).body.instances.instance[0]
    assert described.key_pair_name == "kp-one" and described.deletion_protection is True
    protected = error_of(
        lambda: lab.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))
    )
    assert protected.code == "InvalidOperation.DeletionProtection"
    lab.ecs.modify_instance_metadata_options(
        em.ModifyInstanceMetadataOptionsRequest(
            region_id=REGION, instance_id=instance_id, http_tokens="required"
        )
    )
    options = (
        lab.ecs.describe_instances(
            em.DescribeInstancesRequest(region_id=REGION, instance_ids=f'["{instance_id}"]')
        )
        .body.instances.instance[0]
        .metadata_options
    )
    assert options.http_tokens == "required"
    lab.ecs.modify_instance_attribute(
        em.ModifyInstanceAttributeRequest(instance_id=instance_id, deletion_protection=False)
    )
    lab.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))


def test_system_images_are_listed(lab: Lab) -> None:
    images = lab.ecs.describe_images(em.DescribeImagesRequest(region_id=REGION)).body
    families = {i.image_family for i in images.images.image}
    assert {"nubes:debian_12_x64", "nubes:tiny_x64"} <= families
    debian = next(i for i in images.images.image if i.image_family == "nubes:debian_12_x64")
    assert (debian.image_owner_alias, debian.ostype, debian.status, debian.size) == (
        "system",
        "linux",
        "Available",
        20,
    )


def test_join_and_leave_security_groups_by_instance(live: LiveServer, lab: Lab) -> None:
    """The form Terraform, Ansible and libcloud use: InstanceId, and often no RegionId."""
    [instance_id] = lab.run(instance_name="member")
    assert lab.wait(instance_id, "Running") == "Running"
    second = lab.ecs.create_security_group(
        em.CreateSecurityGroupRequest(region_id=REGION, vpc_id=lab.vpc_id)
    ).body.security_group_id

    def groups() -> list[str]:
        body = lab.ecs.describe_instance_attribute(
            em.DescribeInstanceAttributeRequest(instance_id=instance_id)
        )
        return list(body.body.security_group_ids.security_group_id)

    lab.ecs.join_security_group(
        em.JoinSecurityGroupRequest(security_group_id=second, instance_id=instance_id)
    )
    assert groups() == [lab.group_id, second]
    again = error_of(
        lambda: lab.ecs.join_security_group(
            em.JoinSecurityGroupRequest(region_id=REGION, security_group_id=second, instance_id=instance_id)
        )
    )
    assert again.code == "InvalidNetworkInterfaceId.AlreadyInSecurityGroup"
    lab.ecs.leave_security_group(
        em.LeaveSecurityGroupRequest(region_id=REGION, security_group_id=second, instance_id=instance_id)
    )
    assert groups() == [lab.group_id]

    both = error_of(
        lambda: lab.ecs.join_security_group(
            em.JoinSecurityGroupRequest(
                security_group_id=second, instance_id=instance_id, network_interface_id="eni-x"
            )
        )
    )
    assert both.code == "InvalidParameter.Conflict"
    unknown = error_of(
        lambda: lab.ecs.join_security_group(
            em.JoinSecurityGroupRequest(security_group_id=second, instance_id="i-doesnotexist000000")
        )
    )
    assert unknown.code == "InvalidInstanceId.NotFound"


def test_describe_images_takes_status_all_and_says_usable(lab: Lab) -> None:
    """Terraform's alicloud_image reads with Status=ALL and waits on Usable."""
    every = lab.ecs.describe_images(
        em.DescribeImagesRequest(region_id=REGION, status="ALL", page_size=100)
    ).body
    available = lab.ecs.describe_images(em.DescribeImagesRequest(region_id=REGION, page_size=100)).body
    assert {i.image_id for i in available.images.image} <= {i.image_id for i in every.images.image}
    assert lab.image_id in {i.image_id for i in every.images.image}
    assert all(i.usable is (i.status == "Available") for i in every.images.image)
    wrong = error_of(
        lambda: lab.ecs.describe_images(em.DescribeImagesRequest(region_id=REGION, status="Sunny"))
    )
    assert wrong.code == "InvalidParameter"
