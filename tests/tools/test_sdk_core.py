"""aliyun-python-sdk-core with the typed requests of aliyun-python-sdk-ecs, through a scenario
against nubes as the older Python code written for ECS calls it: CommonRequest for the VPC
product (it has no typed package here), the typed ECS requests for the rest, answers in JSON
and in XML (`set_accept_format('xml')`), and failures raised as ServerException with the ECS code.

The catalog calls (DescribeRegions, DescribeZones, DescribeInstanceTypes) and the signature
corner cases are tests/api's (test_sdk_catalog.py, test_protocol_errors.py)."""

from __future__ import annotations

import ipaddress
import json
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.request import AcsRequest, CommonRequest
from aliyunsdkecs.request.v20140526.AuthorizeSecurityGroupRequest import AuthorizeSecurityGroupRequest
from aliyunsdkecs.request.v20140526.CreateSecurityGroupRequest import CreateSecurityGroupRequest
from aliyunsdkecs.request.v20140526.DeleteInstanceRequest import DeleteInstanceRequest
from aliyunsdkecs.request.v20140526.DescribeImagesRequest import DescribeImagesRequest
from aliyunsdkecs.request.v20140526.DescribeInstancesRequest import DescribeInstancesRequest
from aliyunsdkecs.request.v20140526.DescribeZonesRequest import DescribeZonesRequest
from aliyunsdkecs.request.v20140526.RunInstancesRequest import RunInstancesRequest
from aliyunsdkecs.request.v20140526.StartInstanceRequest import StartInstanceRequest
from aliyunsdkecs.request.v20140526.StopInstanceRequest import StopInstanceRequest

from ..conftest import LiveServer, acs_client

REGION = "cn-hangzhou"
CIDR = "10.83.0.0/16"
VSWITCH_CIDR = "10.83.4.0/24"


class Session:
    """An AcsClient on nubes and the few helpers every script written with it has."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.client = acs_client(server)

    def call(self, request: AcsRequest) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.client.do_action_with_exception(request))
        return result

    def common(self, product: str, version: str, action: str, **params: Any) -> dict[str, Any]:
        request = CommonRequest(
            domain=self.server.endpoint, version=version, action_name=action, product=product
        )
        request.set_protocol_type("http")
        request.set_method("POST")
        for name, value in params.items():
            request.add_query_param(name, value)
        return self.call(request)

    def xml(self, request: AcsRequest) -> ET.Element:
        """The answer in XML: do_action_with_exception asks for JSON whatever was set, so XML
        takes the SDK's older do_action, which says it is deprecated and returns any body."""
        request.set_accept_format("xml")
        with pytest.warns(DeprecationWarning, match="do_action"):
            body = self.client.do_action(request)
        return ET.fromstring(body)

    def failure(self, request: AcsRequest) -> ServerException:
        with pytest.raises(ServerException) as info:
            self.client.do_action_with_exception(request)
        error = info.value
        assert error.get_request_id(), str(error)
        return error

    def instances(self, ids: list[str]) -> list[dict[str, Any]]:
        request = DescribeInstancesRequest()
        request.set_InstanceIds(json.dumps(ids))
        request.set_PageSize(100)
        answer = self.call(request)
        assert answer["TotalCount"] == len(answer["Instances"]["Instance"])
        found: list[dict[str, Any]] = answer["Instances"]["Instance"]
        return found

    def status(self, instance_id: str) -> str:
        found = self.instances([instance_id])
        return str(found[0]["Status"]) if found else "gone"


def wait_for(read: Callable[[], Any], want: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    seen = read()
    while seen != want and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = read()
    return seen


def typed(request: AcsRequest, **fields: Any) -> AcsRequest:
    """Fill a typed request through its own setters, as code written with the SDK does."""
    for name, value in fields.items():
        getattr(request, f"set_{name}")(value)
    return request


def run_request(image_id: str, group_id: str, vswitch_id: str, **fields: Any) -> AcsRequest:
    return typed(
        RunInstancesRequest(),
        ImageId=image_id,
        InstanceType="ecs.g7.large",
        SecurityGroupId=group_id,
        VSwitchId=vswitch_id,
        InstanceName="core-vm",
        SystemDiskCategory="cloud_essd",
        SystemDiskSize="20",
        DataDisks=[{"Size": 25, "Category": "cloud_essd", "DeleteWithInstance": True}],
        Tags=[{"Key": "sdk", "Value": "core"}],
        **fields,
    )


def test_sdk_core_scenario(server: LiveServer) -> None:
    s = Session(server)

    # the network, through CommonRequest on the VPC product
    [zone, *_] = [z["ZoneId"] for z in s.call(DescribeZonesRequest())["Zones"]["Zone"]]
    vpc_id = s.common("Vpc", "2016-04-28", "CreateVpc", RegionId=REGION, CidrBlock=CIDR, VpcName="core")[
        "VpcId"
    ]

    def vpc_status() -> str:
        [vpc] = s.common("Vpc", "2016-04-28", "DescribeVpcs", RegionId=REGION, VpcId=vpc_id)["Vpcs"]["Vpc"]
        return str(vpc["Status"])

    assert wait_for(vpc_status, "Available") == "Available"
    vswitch_id = s.common(
        "Vpc", "2016-04-28", "CreateVSwitch", VpcId=vpc_id, ZoneId=zone, CidrBlock=VSWITCH_CIDR
    )["VSwitchId"]

    def vswitch() -> dict[str, Any]:
        answer = s.common("Vpc", "2016-04-28", "DescribeVSwitches", RegionId=REGION, VSwitchId=vswitch_id)
        [found] = answer["VSwitches"]["VSwitch"]
        return dict(found)

    assert wait_for(lambda: vswitch()["Status"], "Available") == "Available"
    assert (vswitch()["VpcId"], vswitch()["ZoneId"], vswitch()["CidrBlock"]) == (vpc_id, zone, VSWITCH_CIDR)

    # a security group and a rule, through the typed requests
    group_id = s.call(typed(CreateSecurityGroupRequest(), VpcId=vpc_id, SecurityGroupName="core"))[
        "SecurityGroupId"
    ]
    s.call(
        typed(
            AuthorizeSecurityGroupRequest(),
            SecurityGroupId=group_id,
            IpProtocol="tcp",
            PortRange="80/80",
            SourceCidrIp="192.168.0.0/16",
        )
    )
    rules = s.common("Ecs", "2014-05-26", "DescribeSecurityGroupAttribute", SecurityGroupId=group_id)
    assert [
        (r["IpProtocol"], r["PortRange"], r["SourceCidrIp"]) for r in rules["Permissions"]["Permission"]
    ] == [("TCP", "80/80", "192.168.0.0/16")]

    images = s.call(typed(DescribeImagesRequest(), ImageOwnerAlias="system", PageSize=100))["Images"]["Image"]
    image_id = next(i["ImageId"] for i in images if "tiny" in i["ImageId"])

    # DryRun: refused with DryRunOperation, nothing launched
    dry = s.failure(run_request(image_id, group_id, vswitch_id, Amount=1, DryRun=True))
    assert (dry.get_error_code(), dry.get_http_status()) == ("DryRunOperation", 400)

    # two instances; the same ClientToken sent again answers with the same two
    token = f"core-{uuid.uuid4().hex}"
    launched = s.call(run_request(image_id, group_id, vswitch_id, Amount=2, ClientToken=token))
    ids: list[str] = launched["InstanceIdSets"]["InstanceIdSet"]
    assert len(set(ids)) == 2 and all(i.startswith("i-") for i in ids)
    again = s.call(run_request(image_id, group_id, vswitch_id, Amount=2, ClientToken=token))
    assert again["InstanceIdSets"]["InstanceIdSet"] == ids
    assert [wait_for(partial(s.status, i), "Running") for i in ids] == ["Running", "Running"]

    described = {i["InstanceId"]: i for i in s.instances(ids)}
    assert sorted(described) == sorted(ids)
    for instance in described.values():
        assert (instance["Status"], instance["InstanceName"], instance["ImageId"]) == (
            "Running",
            "core-vm",
            image_id,
        )
        assert (instance["InstanceType"], instance["Cpu"], instance["Memory"]) == ("ecs.g7.large", 2, 8192)
        assert instance["VpcAttributes"]["VpcId"] == vpc_id and instance["ZoneId"] == zone
        assert instance["SecurityGroupIds"]["SecurityGroupId"] == [group_id]
        assert [(t["TagKey"], t["TagValue"]) for t in instance["Tags"]["Tag"]] == [("sdk", "core")]
        [ip] = instance["VpcAttributes"]["PrivateIpAddress"]["IpAddress"]
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(VSWITCH_CIDR)

    # the same answer in XML: the same instances, values and list shapes
    xml_request = DescribeInstancesRequest()
    xml_request.set_InstanceIds(json.dumps(ids))
    root = s.xml(xml_request)
    assert root.tag == "DescribeInstancesResponse" and root.findtext("RequestId")
    assert root.findtext("TotalCount") == "2"
    for node in root.iterfind("Instances/Instance"):
        instance = described[node.findtext("InstanceId", "")]
        assert node.findtext("Status") == "Running" and node.findtext("Cpu") == "2"
        assert node.findtext("VpcAttributes/VSwitchId") == vswitch_id
        assert [e.text for e in node.iterfind("VpcAttributes/PrivateIpAddress/IpAddress")] == instance[
            "VpcAttributes"
        ]["PrivateIpAddress"]["IpAddress"]
        assert [e.text for e in node.iterfind("SecurityGroupIds/SecurityGroupId")] == [group_id]
        assert [(e.findtext("TagKey"), e.findtext("TagValue")) for e in node.iterfind("Tags/Tag")] == [
            ("sdk", "core")
        ]
    assert len(root.findall("Instances/Instance")) == 2

    # each has its system disk and the data disk that goes with it
    first, second = ids
    disks = s.common("Ecs", "2014-05-26", "DescribeDisks", RegionId=REGION, InstanceId=first)["Disks"]["Disk"]
    assert sorted((d["Type"], d["Size"], d["DeleteWithInstance"]) for d in disks) == [
        ("data", 25, True),
        ("system", 20, True),
    ]
    data_disk = next(d["DiskId"] for d in disks if d["Type"] == "data")

    # stop one; stopping it again is refused with the status it is in
    s.call(typed(StopInstanceRequest(), InstanceId=first, ForceStop=True))
    assert wait_for(lambda: s.status(first), "Stopped") == "Stopped"
    refused = s.failure(typed(StopInstanceRequest(), InstanceId=first))
    assert (refused.get_error_code(), refused.get_http_status()) == ("IncorrectInstanceStatus", 403)
    assert s.status(second) == "Running"

    # a running instance is released only with Force; a stopped one without
    refused = s.failure(typed(DeleteInstanceRequest(), InstanceId=second))
    assert (refused.get_error_code(), refused.get_http_status()) == ("IncorrectInstanceStatus", 403)
    s.call(typed(DeleteInstanceRequest(), InstanceId=second, Force=True))
    s.call(typed(DeleteInstanceRequest(), InstanceId=first))
    assert wait_for(lambda: s.instances(ids), []) == []
    # the data disk went with its instance (DeleteWithInstance=True as the SDK spells it)
    gone = wait_for(
        lambda: s.common(
            "Ecs", "2014-05-26", "DescribeDisks", RegionId=REGION, DiskIds=json.dumps([data_disk])
        )["TotalCount"],
        0,
    )
    assert gone == 0

    # what no longer exists: ServerException in JSON, <Error> in XML
    missing = s.failure(typed(StartInstanceRequest(), InstanceId=first))
    assert (missing.get_error_code(), missing.get_http_status()) == ("InvalidInstanceId.NotFound", 404)
    assert first in missing.get_error_msg()
    error = s.xml(typed(DeleteInstanceRequest(), InstanceId=second))
    assert error.tag == "Error" and error.findtext("Code") == "InvalidInstanceId.NotFound"
    assert error.findtext("RequestId") and second in error.findtext("Message", "")
