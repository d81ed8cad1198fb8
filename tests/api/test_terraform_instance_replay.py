"""Issue 13: the calls Terraform's `alicloud_instance` makes (terraform-provider-alicloud,
resource_alicloud_instance.go and service_alicloud_ecs.go), replayed against the emulator as the
provider sends them: a raw RPC client (aliyun-python-sdk-core's CommonRequest, as the provider's
RpcPost), lists flattened to `Name.N` and `Name.N.Field`, the same parameters, in the same order,
for create, read, refresh, update (name, tags, vSwitch and private IP while stopped, auto release
time, deployment set, maintenance) and delete. Each read takes the fields the provider reads, the
way it reads them (a missing one would fail its type assertions), and checks them."""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.request import CommonRequest

from ..conftest import LiveServer, acs_client
from .test_vpc_api import REGION, ZONE

CIDR = "10.84.0.0/16"
TYPE = "ecs.g7.large"


def flatten(params: dict[str, Any]) -> dict[str, str]:
    """The provider's RpcPost form of a request map: a list is Name.1, Name.2, ...; a list of
    maps Name.1.Field; booleans true/false."""
    flat: dict[str, str] = {}
    for name, value in params.items():
        if isinstance(value, list):
            for index, item in enumerate(value, start=1):
                if isinstance(item, dict):
                    flat.update({f"{name}.{index}.{k}": _wire(v) for k, v in item.items()})
                else:
                    flat[f"{name}.{index}"] = _wire(item)
        elif value is not None:
            flat[name] = _wire(value)
    return flat


def _wire(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def token() -> str:
    return f"terraform-{uuid.uuid4().hex[:16]}"  # buildClientToken


class Provider:
    """What the provider's client does on the wire, keeping the sequence of actions it sent."""

    def __init__(self, live: LiveServer, key: tuple[str, str]) -> None:
        self.client = acs_client(live, key)
        self.live, self.key = live, key
        self.endpoint = live.endpoint
        self.calls: list[str] = []

    def rpc(self, action: str, params: dict[str, Any], product: str = "Ecs") -> dict[str, Any]:
        version = "2014-05-26" if product == "Ecs" else "2016-04-28"
        request = CommonRequest(domain=self.endpoint, version=version, action_name=action, product=product)
        request.set_protocol_type("http")
        request.set_method("POST")
        for name, value in flatten(params).items():
            request.add_query_param(name, value)
        self.calls.append(action)
        answer: dict[str, Any] = json.loads(self.client.do_action_with_exception(request))
        return answer

    def wait(self, done: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"timed out; calls: {self.calls[-5:]}"
            time.sleep(0.2)

    # ---- EcsService ------------------------------------------------------------------------------

    def describe_instance(self, instance_id: str) -> dict[str, Any] | None:
        """DescribeInstance / DescribeEcsInstance: None when the list is empty (NotFound)."""
        body = self.rpc(
            "DescribeInstances",
            {
                "RegionId": REGION,
                "InstanceIds": json.dumps([instance_id]),
                "AdditionalAttributes": [
                    "META_OPTIONS",
                    "NETWORK_PRIMARY_ENI_IP",
                    "LOGIN_AS_NON_ROOT",
                    "DISK_HIGH_DENSITY_MODE",
                ],
            },
        )
        found = body["Instances"]["Instance"]
        return found[0] if found else None

    def status(self, instance_id: str) -> str:
        instance = self.describe_instance(instance_id)
        return "" if instance is None else str(instance["Status"])

    def wait_status(self, instance_id: str, status: str) -> None:
        self.wait(lambda: self.status(instance_id) == status)


@pytest.fixture
def provider(live: LiveServer, fresh_key: tuple[str, str]) -> Provider:
    return Provider(live, fresh_key)


def _network(p: Provider) -> tuple[str, str, str, str]:
    """alicloud_vpc, two alicloud_vswitch of one zone, alicloud_security_group."""
    vpc = p.rpc("CreateVpc", {"RegionId": REGION, "CidrBlock": CIDR, "VpcName": "tf-vpc"}, "Vpc")["VpcId"]
    p.wait(
        lambda: (
            p.rpc("DescribeVpcAttribute", {"RegionId": REGION, "VpcId": vpc}, "Vpc")["Status"] == "Available"
        )
    )
    vswitches = []
    for third in (1, 2):
        vswitches.append(
            p.rpc(
                "CreateVSwitch",
                {"RegionId": REGION, "VpcId": vpc, "ZoneId": ZONE, "CidrBlock": f"10.84.{third}.0/24"},
                "Vpc",
            )["VSwitchId"]
        )

    def available(vswitch: str) -> bool:
        answer = p.rpc("DescribeVSwitchAttributes", {"RegionId": REGION, "VSwitchId": vswitch}, "Vpc")
        return bool(answer["Status"] == "Available")

    for vswitch in vswitches:
        p.wait(functools.partial(available, vswitch))
    group = p.rpc("CreateSecurityGroup", {"RegionId": REGION, "VpcId": vpc})["SecurityGroupId"]
    return vpc, vswitches[0], vswitches[1], group


def _image(p: Provider) -> str:
    images = p.rpc("DescribeImages", {"RegionId": REGION, "ImageOwnerAlias": "system", "PageSize": 100})
    return next(
        str(i["ImageId"]) for i in images["Images"]["Image"] if i["ImageFamily"] == "nubes:debian_12_x64"
    )


# ---- the resource's functions ----------------------------------------------------------------------


def create(p: Provider, config: dict[str, Any]) -> str:
    """resourceAliCloudInstanceCreate: RunInstances, wait Running, then Update (new resource)."""
    request: dict[str, Any] = {
        "RegionId": REGION,
        "ClientToken": token(),
        "InstanceType": config["instance_type"],
        "ImageId": config["image_id"],
        "SystemDisk.Category": config["system_disk_category"],
        "SystemDisk.Size": config["system_disk_size"],
        "InstanceName": config["instance_name"],
        "InternetChargeType": "PayByTraffic",
        "InternetMaxBandwidthOut": 0,
        "InstanceChargeType": "PostPaid",
        "SpotStrategy": "NoSpot",
        "AutoReleaseTime": config["auto_release_time"],
        "DeletionProtection": False,
    }
    for count, (key, value) in enumerate(config["tags"].items(), start=1):
        request[f"Tag.{count}.Key"] = key
        request[f"Tag.{count}.Value"] = value
    request["VSwitchId"] = config["vswitch_id"]
    request["PrivateIpAddress"] = config["private_ip"]
    request["SecurityGroupIds"] = config["security_groups"]
    request["DeploymentSetId"] = config["deployment_set_id"]
    if config.get("resource_group_id"):
        request["ResourceGroupId"] = config["resource_group_id"]
    answer = p.rpc("RunInstances", request)
    instance_id = str(answer["InstanceIdSets"]["InstanceIdSet"][0])
    p.wait_status(instance_id, "Running")
    update(p, instance_id, {}, config, is_new=True)
    return instance_id


def read(p: Provider, instance_id: str, new: bool = False) -> dict[str, Any] | None:
    """resourceAliCloudInstanceRead: what it sets in the state, read as the provider reads it."""
    instance = p.describe_instance(instance_id)
    if instance is None:
        return None  # d.SetId(""): gone
    disks = p.rpc("DescribeDisks", {"RegionId": REGION, "InstanceId": instance_id, "DiskType": "system"})
    [disk] = disks["Disks"]["Disk"]
    assert disk["InstanceId"] == instance_id
    state: dict[str, Any] = {
        "system_disk_category": disk["Category"],
        "system_disk_size": disk["Size"],
        "system_disk_id": disk["DiskId"],
        "system_disk_performance_level": disk["PerformanceLevel"],
        "system_disk_auto_snapshot_policy_id": disk["AutoSnapshotPolicyId"],
        "system_disk_encrypted": disk["Encrypted"],
        "volume_tags": {t["TagKey"]: t["TagValue"] for t in disk["Tags"]["Tag"]},
    }
    state.update(
        instance_name=instance["InstanceName"],
        resource_group_id=instance["ResourceGroupId"],
        description=instance["Description"],
        status=instance["Status"],
        availability_zone=instance["ZoneId"],
        host_name=instance["HostName"],
        image_id=instance["ImageId"],
        instance_type=instance["InstanceType"],
        internet_max_bandwidth_out=instance["InternetMaxBandwidthOut"],
        instance_charge_type=instance["InstanceChargeType"],
        key_name=instance["KeyPairName"],
        spot_strategy=instance["SpotStrategy"],
        internet_charge_type=instance["InternetChargeType"],
        deletion_protection=instance["DeletionProtection"],
        credit_specification=instance["CreditSpecification"],
        auto_release_time=instance["AutoReleaseTime"],
        tags={t["TagKey"]: t["TagValue"] for t in instance["Tags"]["Tag"]},
        hpc_cluster_id=instance["HpcClusterId"],
        deployment_set_id=instance["DeploymentSetId"],
        deployment_set_group_no=instance["DeploymentSetGroupNo"],
        stopped_mode=instance["StoppedMode"],
        vswitch_id=instance["VpcAttributes"]["VSwitchId"],
        vpc_id=instance["VpcAttributes"]["VpcId"],
        http_tokens=instance["MetadataOptions"]["HttpTokens"],
        http_endpoint=instance["MetadataOptions"]["HttpEndpoint"],
        cpu=instance["Cpu"],
        memory=instance["Memory"],
        os_type=instance["OSType"],
        dedicated_host_id=instance["DedicatedHostAttribute"]["DedicatedHostId"],
        create_time=instance["CreationTime"],
        expired_time=instance["ExpiredTime"],
        enable_high_density_mode=instance["AdditionalInfo"]["EnableHighDensityMode"],
        login_as_non_root=instance["ImageOptions"]["LoginAsNonRoot"],
        private_ip=instance["VpcAttributes"]["PrivateIpAddress"]["IpAddress"][0],
        security_groups=sorted(instance["SecurityGroupIds"]["SecurityGroupId"]),
    )
    user_data = p.rpc("DescribeUserData", {"RegionId": REGION, "InstanceId": instance_id})
    state["user_data"] = user_data["UserData"]
    if state["vswitch_id"] and not new:
        roles = p.rpc(
            "DescribeInstanceRamRole", {"RegionId": REGION, "InstanceIds": json.dumps([instance_id])}
        )
        sets = roles["InstanceRamRoleSets"]["InstanceRamRoleSet"]
        state["role_name"] = sets[0]["RamRoleName"] if sets else ""
    for eni in instance["NetworkInterfaces"]["NetworkInterface"]:
        if eni["Type"] == "Primary":
            found = p.rpc(
                "DescribeNetworkInterfaces",
                {"RegionId": REGION, "NetworkInterfaceId": [eni["NetworkInterfaceId"]]},
            )["NetworkInterfaceSets"]["NetworkInterfaceSet"]
            assert found[0]["NetworkInterfaceId"] == eni["NetworkInterfaceId"]
            state["network_interface_id"] = eni["NetworkInterfaceId"]
            state["primary_ip_address"] = eni["PrimaryIpAddress"]
            state["secondary_private_ips"] = [
                s["PrivateIpAddress"] for s in found[0]["PrivateIpSets"]["PrivateIpSet"] if not s["Primary"]
            ]
    maintenance = p.rpc(
        "DescribeInstanceMaintenanceAttributes", {"RegionId": REGION, "InstanceId": [instance_id]}
    )
    [attribute] = maintenance["MaintenanceAttributes"]["MaintenanceAttribute"]
    assert attribute["InstanceId"] == instance_id
    state["maintenance_time"] = [
        {"start_time": w["StartTime"], "end_time": w["EndTime"]}
        for w in attribute["MaintenanceWindows"]["MaintenanceWindow"]
    ]
    state["maintenance_action"] = attribute["ActionOnMaintenance"]["Value"]
    state["maintenance_notify"] = attribute["NotifyOnMaintenance"]
    attribute = p.rpc("DescribeInstanceAttribute", {"RegionId": REGION, "InstanceId": instance_id})
    assert attribute["InstanceId"] == instance_id
    state["enable_jumbo_frame"] = attribute["EnableJumboFrame"]
    # instance_charge_type PostPaid: no DescribeInstanceAutoRenewAttribute (renewal_status nil)
    attachment = p.rpc(
        "DescribeInstanceAttachmentAttributes", {"InstanceIds": f'["{instance_id}"]', "RegionId": REGION}
    )["Instances"]["Instance"][0]
    state["private_pool_options_match_criteria"] = attachment["PrivatePoolOptionsMatchCriteria"]
    state["private_pool_options_id"] = attachment["PrivatePoolOptionsId"]
    again = p.describe_instance(instance_id)
    assert again is not None
    state["spot_interruption_behavior"] = again["SpotInterruptionBehavior"]
    state["cpu_options"] = {
        "core_count": again["CpuOptions"]["CoreCount"],
        "threads_per_core": again["CpuOptions"]["ThreadsPerCore"],
        "topology_type": again["CpuOptions"]["TopologyType"],
    }
    return state


def update(
    p: Provider, instance_id: str, old: dict[str, Any], new: dict[str, Any], is_new: bool = False
) -> dict[str, Any] | None:
    """resourceAliCloudInstanceUpdate, for the arguments the test changes, in the provider's order
    (`is_new`: d.IsNewResource(), the update that ends a create)."""

    def changed(name: str) -> bool:
        return old.get(name) != new.get(name)

    if not is_new and changed("tags"):  # setTags -> updateTags: remove, then create
        removed = [k for k, v in old["tags"].items() if new["tags"].get(k) != v]
        if removed:
            p.rpc(
                "UntagResources", {"ResourceType": "instance", "ResourceId": [instance_id], "TagKey": removed}
            )
        created = [{"Key": k, "Value": v} for k, v in new["tags"].items() if old["tags"].get(k) != v]
        if created:
            p.rpc("TagResources", {"ResourceType": "instance", "ResourceId": [instance_id], "Tag": created})
    if not is_new and changed("resource_group_id"):
        p.rpc(
            "JoinResourceGroup",
            {
                "ResourceType": "instance",
                "ResourceId": instance_id,
                "RegionId": REGION,
                "ResourceGroupId": new["resource_group_id"],
            },
        )
    if not is_new and changed("instance_name"):  # modifyInstanceAttribute
        p.rpc(
            "ModifyInstanceAttribute",
            {
                "RegionId": REGION,
                "ClientToken": token(),
                "InstanceId": instance_id,
                "InstanceName": new["instance_name"],
            },
        )
    if not is_new and changed("auto_release_time"):
        p.rpc(
            "ModifyInstanceAutoReleaseTime",
            {"InstanceId": instance_id, "RegionId": REGION, "AutoReleaseTime": new["auto_release_time"]},
        )
    vpc_update = not is_new and (changed("vswitch_id") or changed("private_ip"))
    if vpc_update:
        if p.status(instance_id) == "Running":
            p.rpc("StopInstance", {"InstanceId": instance_id, "ForceStop": False, "RegionId": REGION})
            p.wait_status(instance_id, "Stopped")
        request = {"InstanceId": instance_id, "VSwitchId": new["vswitch_id"]}
        if changed("private_ip"):
            request["PrivateIpAddress"] = new["private_ip"]
        p.rpc("ModifyInstanceVpcAttribute", request)

        def vpc_changed() -> bool:  # WaitForVpcAttributesChanged
            instance = p.describe_instance(instance_id)
            assert instance is not None
            attrs = instance["VpcAttributes"]
            return bool(
                attrs["VSwitchId"] == new["vswitch_id"]
                and (
                    not request.get("PrivateIpAddress")
                    or attrs["PrivateIpAddress"]["IpAddress"][0] == new["private_ip"]
                )
            )

        p.wait(vpc_changed)
        p.rpc("StartInstance", {"InstanceId": instance_id})  # status = "Running" in the configuration
        p.wait_status(instance_id, "Running")
    if not is_new and changed("deployment_set_id"):
        request = {"RegionId": REGION, "InstanceId": instance_id, "ClientToken": token()}
        if new["deployment_set_id"]:
            request["DeploymentSetId"] = new["deployment_set_id"]
        else:
            request["DeploymentSetId"] = old["deployment_set_id"]
            request["RemoveFromDeploymentSet"] = True
        p.rpc("ModifyInstanceDeployment", request)
    if any(changed(k) for k in ("maintenance_time", "maintenance_action", "maintenance_notify")):
        request = {"RegionId": REGION, "InstanceId": [instance_id]}
        request["MaintenanceWindow"] = [
            {"StartTime": w["start_time"], "EndTime": w["end_time"]} for w in new.get("maintenance_time", [])
        ]
        if new.get("maintenance_action"):
            request["ActionOnMaintenance"] = new["maintenance_action"]
        if "maintenance_notify" in new:
            request["NotifyOnMaintenance"] = new["maintenance_notify"]
        p.rpc("ModifyInstanceMaintenanceAttributes", request)
    return read(p, instance_id, new=is_new)


def delete(p: Provider, instance_id: str) -> None:
    """resourceAliCloudInstanceDelete: DeleteInstance Force=true, then wait until it is gone."""
    p.rpc("DeleteInstance", {"InstanceId": instance_id, "Force": True})
    p.wait(lambda: p.describe_instance(instance_id) is None)


# ---- the replay ------------------------------------------------------------------------------------


def _release_time(days: int) -> str:
    at = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=days)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_terraform_alicloud_instance_lifecycle(provider: Provider) -> None:
    p = provider
    vpc, vswitch, other_vswitch, group = _network(p)
    deployment_set = p.rpc(
        "CreateDeploymentSet", {"RegionId": REGION, "Strategy": "Availability", "DeploymentSetName": "tf-ds"}
    )["DeploymentSetId"]
    config: dict[str, Any] = {
        "instance_type": TYPE,
        "image_id": _image(p),
        "system_disk_category": "cloud_essd",
        "system_disk_size": 40,
        "instance_name": "tf-instance",
        "auto_release_time": _release_time(2),
        "tags": {"env": "test", "team": "infra"},
        "vswitch_id": vswitch,
        "private_ip": "10.84.1.10",
        "security_groups": [group],
        "deployment_set_id": deployment_set,
        "maintenance_action": "AutoRecover",
        "maintenance_notify": False,
        "maintenance_time": [{"start_time": "02:00:00", "end_time": "06:00:00"}],
    }

    # apply: create (RunInstances, wait, the new resource's update, read)
    instance_id = create(p, config)
    assert p.calls[p.calls.index("RunInstances") :].count("ModifyInstanceMaintenanceAttributes") == 1
    state = read(p, instance_id, new=True)
    assert state is not None

    def holds(state: dict[str, Any] | None, config: dict[str, Any]) -> None:
        assert state is not None
        for name in (
            "instance_type",
            "image_id",
            "system_disk_category",
            "system_disk_size",
            "instance_name",
            "auto_release_time",
            "tags",
            "vswitch_id",
            "private_ip",
            "deployment_set_id",
            "maintenance_action",
            "maintenance_notify",
            "maintenance_time",
            "resource_group_id",
        ):
            if name in config:
                assert state[name] == config[name], (name, state[name], config[name])
        assert state["security_groups"] == sorted(config["security_groups"])
        assert (state["vpc_id"], state["availability_zone"], state["status"]) == (vpc, ZONE, "Running")
        assert state["private_pool_options_match_criteria"] in ("None", "Open")
        assert state["primary_ip_address"] == config["private_ip"]
        assert state["instance_charge_type"] == "PostPaid"

    holds(state, config)
    assert state["resource_group_id"].startswith("rg-")  # the account's default group (Computed)
    config["resource_group_id"] = state["resource_group_id"]

    # refresh (plan): a read of an existing resource asks for the RAM role too
    state = read(p, instance_id)
    holds(state, config)
    assert state is not None and state["role_name"] == ""

    # update: resource group
    changed = {**config, "resource_group_id": p.live.create_resource_group(p.key, "tf-team")}
    holds(update(p, instance_id, config, changed), changed)
    config = changed

    # update: name and tags
    changed = {**config, "instance_name": "tf-renamed", "tags": {"env": "prod", "owner": "ops"}}
    holds(update(p, instance_id, config, changed), changed)
    config = changed

    # update: vSwitch and private IP (the provider stops the instance, changes, starts it)
    changed = {**config, "vswitch_id": other_vswitch, "private_ip": "10.84.2.20"}
    holds(update(p, instance_id, config, changed), changed)
    config = changed
    changed = {**config, "private_ip": "10.84.2.21"}  # the IP alone, in the same vSwitch
    holds(update(p, instance_id, config, changed), changed)
    config = changed

    # update: auto release time, then none
    for release in (_release_time(3), ""):
        changed = {**config, "auto_release_time": release}
        holds(update(p, instance_id, config, changed), changed)
        config = changed

    # update: out of the deployment set, into another one
    changed = {**config, "deployment_set_id": ""}
    holds(update(p, instance_id, config, changed), changed)
    config = changed
    other_set = p.rpc("CreateDeploymentSet", {"RegionId": REGION, "Strategy": "Availability"})[
        "DeploymentSetId"
    ]
    changed = {**config, "deployment_set_id": other_set}
    holds(update(p, instance_id, config, changed), changed)
    config = changed

    # update: maintenance
    changed = {**config, "maintenance_action": "Stop", "maintenance_notify": True, "maintenance_time": []}
    state = update(p, instance_id, config, changed)
    assert state is not None
    assert (state["maintenance_action"], state["maintenance_notify"]) == ("Stop", True)
    # an empty maintenance_time sends no window: the one set before stays, as in ECS
    assert state["maintenance_time"] == config["maintenance_time"]

    # destroy
    delete(p, instance_id)
    assert read(p, instance_id) is None
    with pytest.raises(ServerException) as gone:
        p.rpc("DescribeInstanceAttribute", {"RegionId": REGION, "InstanceId": instance_id})
    assert gone.value.get_error_code() == "InvalidInstanceId.NotFound"
    expected = {
        "RunInstances",
        "DescribeInstances",
        "DescribeDisks",
        "DescribeUserData",
        "DescribeInstanceRamRole",
        "DescribeNetworkInterfaces",
        "DescribeInstanceMaintenanceAttributes",
        "DescribeInstanceAttribute",
        "DescribeInstanceAttachmentAttributes",
        "ModifyInstanceAttribute",
        "UntagResources",
        "TagResources",
        "StopInstance",
        "ModifyInstanceVpcAttribute",
        "StartInstance",
        "ModifyInstanceAutoReleaseTime",
        "ModifyInstanceDeployment",
        "ModifyInstanceMaintenanceAttributes",
        "JoinResourceGroup",
        "DeleteInstance",
    }
    assert expected <= set(p.calls), expected - set(p.calls)
