"""Issue 13: the calls Terraform's `alicloud_ecs_launch_template` makes
(terraform-provider-alicloud 81c43b67, resource_alicloud_ecs_launch_template.go and
service_alicloud_ecs.go), replayed against the emulator as the provider sends them, through the
raw RPC client of test_terraform_instance_replay (RpcPost's flattening, the same parameters):

- create: DescribeVSwitchAttributes (Vpc) for the vSwitch's VpcId and ZoneId, then
  CreateLaunchTemplate with the whole configuration: `SystemDisk.*` as the provider's map gives
  it (Iops and KMSKeyId empty when unset), `DataDisk.N.*`, instance tags as `Tag.N.*`, template
  tags as `TemplateTag.N.*`, SpotDuration 1 (the schema's default);
- read (after create and update, and a refresh): DescribeLaunchTemplates with
  `LaunchTemplateId.1` (an empty list is gone, no error code), then DescribeLaunchTemplateVersions
  with LaunchTemplateId and `LaunchTemplateVersion.1` = LatestVersionNumber, reading
  LaunchTemplateData the way the provider does, the system disk by its flat `SystemDisk.Category`
  keys (as ECS answers, beside the `SystemDisk` object);
- update: UntagResources / TagResources (ResourceType launchtemplate, `ResourceId.1`) for
  template_tags, DescribeLaunchTemplateVersions (PageSize 50) to count versions, then
  CreateLaunchTemplateVersion with the whole configuration again and, with
  update_default_version_number, ModifyLaunchTemplateDefaultVersion to the new version;
- delete: DeleteLaunchTemplate (LaunchTemplateId and LaunchTemplateName); the read then finds
  nothing, and DescribeLaunchTemplateVersions answers InvalidLaunchTemplate.NotFound, the code its
  service function takes for gone.

Not sent: network_interfaces (NetworkInterface.N) and image_options (ImageOptions.LoginAsNonRoot),
which nubes refuses with InvalidParameter.NotSupported, as it does a non-empty system_disk iops
(SystemDisk.Iops); and the
arguments left unset here (key pair, RAM role, deployment set, prepaid and spot pricing), which
the provider does not send when unset."""

from __future__ import annotations

from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em
from aliyunsdkcore.acs_exception.exceptions import ServerException

from ..conftest import LiveServer
from .test_instances_api import TYPE, Lab
from .test_terraform_instance_replay import Provider
from .test_vpc_api import REGION

OTHER_TYPE = "ecs.g7.xlarge"


@pytest.fixture
def lab(live: LiveServer, fresh_key: tuple[str, str]) -> Lab:
    return Lab(live, fresh_key, "10.67.0.0/16")


@pytest.fixture
def provider(live: LiveServer, fresh_key: tuple[str, str]) -> Provider:
    return Provider(live, fresh_key)


# ---- EcsService ----------------------------------------------------------------------------------


def describe_template(p: Provider, template_id: str) -> dict[str, Any] | None:
    """DescribeEcsLaunchTemplate: None when the list is empty or names another one (NotFound)."""
    found = p.rpc("DescribeLaunchTemplates", {"RegionId": REGION, "LaunchTemplateId": [template_id]})
    sets = found["LaunchTemplateSets"]["LaunchTemplateSet"]
    if not sets or sets[0]["LaunchTemplateId"] != template_id:
        return None
    template: dict[str, Any] = sets[0]
    return template


def describe_version(p: Provider, template_id: str, version: Any) -> dict[str, Any]:
    """DescribeLaunchTemplateVersions(id, version): the one version asked for."""
    answer = p.rpc(
        "DescribeLaunchTemplateVersions",
        {"RegionId": REGION, "LaunchTemplateId": template_id, "LaunchTemplateVersion": [version]},
    )
    sets = answer["LaunchTemplateVersionSets"]["LaunchTemplateVersionSet"]
    assert sets and sets[0]["LaunchTemplateId"] == template_id
    found: dict[str, Any] = sets[0]
    return found


def _tags(tags: list[dict[str, Any]], key: str = "Key", value: str = "Value") -> dict[str, str]:
    """tagsToMap."""
    return {str(t[key]): str(t[value]) for t in tags}


# ---- the resource's functions ----------------------------------------------------------------------


def _data_request(config: dict[str, Any]) -> dict[str, Any]:
    """The launch data both create and update send, in the provider's order."""
    request: dict[str, Any] = {
        "DataDisk": [
            {
                "Category": d["category"],
                "Description": d["description"],
                "DiskName": d["name"],
                "DeleteWithInstance": d["delete_with_instance"],
                "Encrypted": d["encrypted"],
                "Size": d["size"],
            }
            for d in config["data_disks"]
        ],
        "Description": config["description"],
        "HostName": config["host_name"],
        "ImageId": config["image_id"],
        "InstanceChargeType": config["instance_charge_type"],
        "InstanceName": config["instance_name"],
        "InstanceType": config["instance_type"],
        "InternetChargeType": config["internet_charge_type"],
        "InternetMaxBandwidthOut": config["internet_max_bandwidth_out"],
        "LaunchTemplateName": config["launch_template_name"],
        "NetworkType": config["network_type"],
        "SecurityGroupId": config["security_group_id"],
        "SpotDuration": config["spot_duration"],
        "SpotStrategy": config["spot_strategy"],
    }
    disk = config["system_disk"]
    request.update(
        {
            "SystemDisk.Category": disk["category"],
            "SystemDisk.DeleteWithInstance": disk["delete_with_instance"],
            "SystemDisk.Description": disk["description"],
            "SystemDisk.Iops": disk["iops"],
            "SystemDisk.DiskName": disk["name"],
            "SystemDisk.PerformanceLevel": disk["performance_level"],
            "SystemDisk.Size": disk["size"],
            "SystemDisk.Encrypted": disk["encrypted"],
            "SystemDisk.KMSKeyId": disk["kms_key_id"],
        }
    )
    for count, (key, value) in enumerate(config["tags"].items(), start=1):
        request[f"Tag.{count}.Key"] = key
        request[f"Tag.{count}.Value"] = value
    return request


def create(p: Provider, config: dict[str, Any]) -> str:
    """resourceAliCloudEcsLaunchTemplateCreate, then its read."""
    request = _data_request(config)
    request["RegionId"] = REGION
    for count, (key, value) in enumerate(config["template_tags"].items(), start=1):
        request[f"TemplateTag.{count}.Key"] = key
        request[f"TemplateTag.{count}.Value"] = value
    request["UserData"] = config["user_data"]
    request["VersionDescription"] = config["version_description"]
    vswitch = p.rpc(
        "DescribeVSwitchAttributes", {"RegionId": REGION, "VSwitchId": config["vswitch_id"]}, "Vpc"
    )
    assert vswitch["VSwitchId"] == config["vswitch_id"]
    request["VpcId"] = vswitch["VpcId"]
    request["VSwitchId"] = config["vswitch_id"]
    request["ZoneId"] = vswitch["ZoneId"]
    request["HttpEndpoint"] = config["http_endpoint"]
    request["HttpTokens"] = config["http_tokens"]
    answer = p.rpc("CreateLaunchTemplate", request)
    template_id = str(answer["LaunchTemplateId"])
    assert template_id.startswith("lt-")
    return template_id


def read(p: Provider, template_id: str) -> dict[str, Any] | None:
    """resourceAliCloudEcsLaunchTemplateRead: what it sets in the state, read as it reads it (a
    field it reads and the answer lacks is a KeyError here)."""
    template = describe_template(p, template_id)
    if template is None:
        return None  # d.SetId(""): gone
    state: dict[str, Any] = {
        "launch_template_name": template["LaunchTemplateName"],
        "default_version_number": template["DefaultVersionNumber"],
        "latest_version_number": template["LatestVersionNumber"],
    }
    version = describe_version(p, template_id, template["LatestVersionNumber"])
    data = version["LaunchTemplateData"]
    state["data_disks"] = [
        {
            "category": d["Category"],
            "delete_with_instance": d["DeleteWithInstance"],
            "description": d["Description"],
            "encrypted": d["Encrypted"],
            "kms_key_id": d["KMSKeyId"],
            "name": d["DiskName"],
            "performance_level": d["PerformanceLevel"],
            "size": d["Size"],
            "snapshot_id": d["SnapshotId"],
            "device": d["Device"],
        }
        for d in data["DataDisks"]["DataDisk"]
    ]
    for name, field in (
        ("auto_release_time", "AutoReleaseTime"),
        ("deployment_set_id", "DeploymentSetId"),
        ("description", "Description"),
        ("enable_vm_os_config", "EnableVmOsConfig"),
        ("host_name", "HostName"),
        ("image_id", "ImageId"),
        ("image_owner_alias", "ImageOwnerAlias"),
        ("instance_charge_type", "InstanceChargeType"),
        ("instance_name", "InstanceName"),
        ("instance_type", "InstanceType"),
        ("internet_charge_type", "InternetChargeType"),
        ("internet_max_bandwidth_in", "InternetMaxBandwidthIn"),
        ("internet_max_bandwidth_out", "InternetMaxBandwidthOut"),
        ("io_optimized", "IoOptimized"),
        ("key_pair_name", "KeyPairName"),
        ("auto_renew", "AutoRenew"),
        ("auto_renew_period", "AutoRenewPeriod"),
        ("network_type", "NetworkType"),
        ("password_inherit", "PasswordInherit"),
        ("period", "Period"),
        ("period_unit", "PeriodUnit"),
        ("private_ip_address", "PrivateIpAddress"),
        ("ram_role_name", "RamRoleName"),
        ("security_enhancement_strategy", "SecurityEnhancementStrategy"),
        ("security_group_id", "SecurityGroupId"),
        ("spot_price_limit", "SpotPriceLimit"),
        ("spot_strategy", "SpotStrategy"),
        ("vpc_id", "VpcId"),
        ("resource_group_id", "ResourceGroupId"),
        ("user_data", "UserData"),
        ("vswitch_id", "VSwitchId"),
        ("zone_id", "ZoneId"),
        ("http_endpoint", "HttpEndpoint"),
        ("http_tokens", "HttpTokens"),
        ("http_put_response_hop_limit", "HttpPutResponseHopLimit"),
    ):
        state[name] = data[field]
    state["network_interfaces"] = [
        {
            "description": n["Description"],
            "name": n["NetworkInterfaceName"],
            "primary_ip": n["PrimaryIpAddress"],
            "security_group_id": n["SecurityGroupId"],
            "vswitch_id": n["VSwitchId"],
        }
        for n in data["NetworkInterfaces"]["NetworkInterface"]
    ]
    state["security_group_ids"] = data["SecurityGroupIds"]["SecurityGroupId"]
    state["spot_duration"] = str(data["SpotDuration"])  # fmt.Sprint(formatInt(...))
    state["system_disk_category"] = data["SystemDisk.Category"]
    state["system_disk_size"] = data["SystemDisk.Size"]
    state["system_disk_description"] = data["SystemDisk.Description"]
    state["system_disk_name"] = data["SystemDisk.DiskName"]
    state["system_disk"] = {
        "category": data["SystemDisk.Category"],
        "delete_with_instance": data["SystemDisk.DeleteWithInstance"],
        "description": data["SystemDisk.Description"],
        "iops": data.get("SystemDisk.Iops"),  # nil (unset) is "" in the state's string
        "name": data["SystemDisk.DiskName"],
        "performance_level": data["SystemDisk.PerformanceLevel"],
        "size": data["SystemDisk.Size"],
        "encrypted": data["SystemDisk.Encrypted"],
        "kms_key_id": data["SystemDisk.KMSKeyId"],
    }
    if template["Tags"] is not None:
        state["template_tags"] = _tags(template["Tags"]["Tag"], "TagKey", "TagValue")
    state["version_description"] = version["VersionDescription"]
    state["tags"] = _tags(data["Tags"]["InstanceTag"])
    state["login_as_non_root"] = data["ImageOptions"]["LoginAsNonRoot"]
    return state


def update(p: Provider, template_id: str, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
    """resourceAliCloudEcsLaunchTemplateUpdate, for what the test changes."""
    if old["template_tags"] != new["template_tags"]:  # SetResourceTemplateTags
        removed = [k for k, v in old["template_tags"].items() if new["template_tags"].get(k) != v]
        added = {k: v for k, v in new["template_tags"].items() if old["template_tags"].get(k) != v}
        base = {"RegionId": REGION, "ResourceType": "launchtemplate", "ResourceId.1": template_id}
        if removed:
            p.rpc("UntagResources", {**base, "TagKey": removed})
        if added:
            p.rpc("TagResources", {**base, "Tag": [{"Key": k, "Value": v} for k, v in added.items()]})
    versions = p.rpc(  # getLaunchTemplateVersions: the oldest goes when there are 30
        "DescribeLaunchTemplateVersions",
        {"LaunchTemplateId": template_id, "PageSize": 50, "RegionId": REGION},
    )["LaunchTemplateVersionSets"]["LaunchTemplateVersionSet"]
    assert 1 <= len(versions) < 30
    assert all(isinstance(v["DefaultVersion"], bool) and v["VersionNumber"] >= 1 for v in versions)
    latest = old["latest_version_number"]
    data_names = set(new) - {"template_tags", "update_default_version_number", "latest_version_number"}
    if any(old.get(name) != new.get(name) for name in data_names):
        request = {"LaunchTemplateId": template_id, "RegionId": REGION, **_data_request(new)}
        for name, field in (  # the state's values, every one sent again
            ("user_data", "UserData"),
            ("vswitch_id", "VSwitchId"),
            ("version_description", "VersionDescription"),
            ("vpc_id", "VpcId"),
            ("zone_id", "ZoneId"),
            ("http_endpoint", "HttpEndpoint"),
            ("http_tokens", "HttpTokens"),
        ):
            request[field] = new[name]
        latest = p.rpc("CreateLaunchTemplateVersion", request)["LaunchTemplateVersionNumber"]
        assert isinstance(latest, int)
    if new["update_default_version_number"]:
        p.rpc(
            "ModifyLaunchTemplateDefaultVersion",
            {"LaunchTemplateId": template_id, "RegionId": REGION, "DefaultVersionNumber": latest},
        )
    return read(p, template_id)


def delete(p: Provider, template_id: str, name: str) -> None:
    """resourceAliCloudEcsLaunchTemplateDelete."""
    p.rpc(
        "DeleteLaunchTemplate",
        {"LaunchTemplateId": template_id, "LaunchTemplateName": name, "RegionId": REGION},
    )


# ---- the replay ------------------------------------------------------------------------------------


def holds(state: dict[str, Any] | None, config: dict[str, Any]) -> None:
    """The state the read sets is the configuration (no diff on the next plan)."""
    assert state is not None
    for name, value in config.items():
        if name in ("system_disk", "data_disks", "update_default_version_number"):
            continue
        assert state[name] == value, (name, state[name], value)
    disk = config["system_disk"]
    read_disk = state["system_disk"]
    for field in ("category", "description", "name", "performance_level", "size", "delete_with_instance"):
        assert read_disk[field] == disk[field], (field, read_disk[field], disk[field])
    assert read_disk["encrypted"] in ("false", False)
    assert read_disk["kms_key_id"] == "" and read_disk["iops"] in (None, "", 0)
    assert (state["system_disk_category"], state["system_disk_size"]) == (disk["category"], disk["size"])
    assert (state["system_disk_name"], state["system_disk_description"]) == (
        disk["name"],
        disk["description"],
    )
    assert [
        {k: d[k] for k in ("category", "description", "name", "delete_with_instance", "size")}
        for d in state["data_disks"]
    ] == [
        {k: d[k] for k in ("category", "description", "name", "delete_with_instance", "size")}
        for d in config["data_disks"]
    ]
    assert all(d["encrypted"] == "false" and d["snapshot_id"] == "" for d in state["data_disks"])
    assert state["network_interfaces"] == [] and state["security_group_ids"] == []
    for name in ("internet_max_bandwidth_in", "auto_renew_period", "period", "http_put_response_hop_limit"):
        assert isinstance(state[name], int), name
    for name in ("auto_renew", "password_inherit", "enable_vm_os_config", "login_as_non_root"):
        assert state[name] is False, name
    assert isinstance(state["spot_price_limit"], (int, float))
    assert state["resource_group_id"] == ""  # none given: the template's data holds none


def test_terraform_alicloud_ecs_launch_template_lifecycle(lab: Lab, provider: Provider) -> None:
    p = provider
    config: dict[str, Any] = {
        "launch_template_name": "tf-launch-template",
        "description": "made by terraform",
        "image_id": lab.image_id,
        "host_name": "tf-host",
        "instance_charge_type": "PostPaid",
        "instance_name": "tf-instance",
        "instance_type": TYPE,
        "internet_charge_type": "PayByTraffic",
        "internet_max_bandwidth_out": 5,
        "network_type": "vpc",
        "security_group_id": lab.group_id,
        "spot_strategy": "NoSpot",
        "spot_duration": "1",
        "system_disk": {
            "category": "cloud_essd",
            "delete_with_instance": True,
            "description": "the system disk",
            "iops": "",
            "name": "tf-system",
            "performance_level": "PL0",
            "size": 40,
            "encrypted": False,
            "kms_key_id": "",
        },
        "data_disks": [
            {
                "category": "cloud_essd",
                "description": "a data disk",
                "name": "tf-data",
                "delete_with_instance": True,
                "encrypted": False,
                "size": 20,
            }
        ],
        "tags": {"env": "test", "team": "infra"},
        "template_tags": {"owner": "ops", "stage": "dev"},
        "user_data": "IyEvYmluL3NoCmVjaG8gaGVsbG8K",
        "version_description": "first",
        "vswitch_id": lab.vswitch_id,
        "vpc_id": lab.vpc_id,
        "zone_id": "",
        "http_endpoint": "enabled",
        "http_tokens": "required",
        "update_default_version_number": True,
    }

    # apply: create, then its read
    template_id = create(p, config)
    state = read(p, template_id)
    assert state is not None
    config["zone_id"] = state["zone_id"]  # Computed from the vSwitch
    assert config["zone_id"]
    holds(state, config)
    assert (state["latest_version_number"], state["default_version_number"]) == (1, 1)

    # refresh (plan): the same read, the same state
    assert read(p, template_id) == state

    # an instance launches from it (alicloud_instance's launch_template_id): what only a template
    # holds (NetworkType, SpotDuration, SystemDisk.DeleteWithInstance) stays with the template
    [launched] = lab.ecs.run_instances(
        em.RunInstancesRequest(region_id=REGION, launch_template_id=template_id)
    ).body.instance_id_sets.instance_id_set
    instance = lab.ecs.describe_instance_attribute(
        em.DescribeInstanceAttributeRequest(instance_id=launched)
    ).body
    assert (instance.instance_type, instance.instance_name) == (TYPE, config["instance_name"])

    # update: the instance type, name, system disk, instance tags and template tags: a new
    # version, made the default one
    changed = {
        **config,
        "instance_type": OTHER_TYPE,
        "instance_name": "tf-renamed",
        "system_disk": {**config["system_disk"], "size": 60},
        "tags": {"env": "prod", "owner": "ops"},
        "template_tags": {"owner": "platform", "cost": "shared"},
        "version_description": "second",
        "latest_version_number": 1,
    }
    state = update(p, template_id, {**config, "latest_version_number": 1}, changed)
    holds(state, {k: v for k, v in changed.items() if k != "latest_version_number"})
    assert state is not None
    assert (state["latest_version_number"], state["default_version_number"]) == (2, 2)
    config = {k: v for k, v in changed.items() if k != "latest_version_number"}

    # update: template tags only: no new version, the default stays
    changed = {**config, "template_tags": {"owner": "platform"}, "latest_version_number": 2}
    state = update(p, template_id, {**config, "latest_version_number": 2}, changed)
    assert state is not None and state["template_tags"] == {"owner": "platform"}
    assert (state["latest_version_number"], state["default_version_number"]) == (2, 2)

    # destroy: gone for the read, and for DescribeLaunchTemplateVersions by its error code
    delete(p, template_id, config["launch_template_name"])
    assert read(p, template_id) is None
    with pytest.raises(ServerException) as gone:
        describe_version(p, template_id, 2)
    assert gone.value.get_error_code() == "InvalidLaunchTemplate.NotFound"
    expected = {
        "DescribeVSwitchAttributes",
        "CreateLaunchTemplate",
        "DescribeLaunchTemplates",
        "DescribeLaunchTemplateVersions",
        "UntagResources",
        "TagResources",
        "CreateLaunchTemplateVersion",
        "ModifyLaunchTemplateDefaultVersion",
        "DeleteLaunchTemplate",
    }
    assert expected == set(p.calls), set(p.calls) ^ expected
