"""The official Node.js Tea SDKs (@alicloud/ecs20140526 and @alicloud/vpc20160428) against nubes.

tests/tools/node/scenario.mjs does what their users do (a network, a security group, two
instances through stop, start and reboot, a data disk and its snapshot, the errors they catch,
the release and the tear-down) and prints what the SDKs returned; this test checks it, once on
each of the SDK's signing paths: the default ACS3-HMAC-SHA256 and `signatureAlgorithm: "v2"`
(HMAC-SHA1). Each raw answer is also checked against the JSON types the SDK's models declare.
`./nubes-dev test` installs Node.js and the SDKs (`npm ci` from the committed lock file)."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em
from alibabacloud_vpc20160428 import models as vm

from nubes.catalog.model import load_catalog

from ..conftest import ROOT_KEY_ID, ROOT_SECRET, LiveServer, tea_ecs, tea_vpc

NODE_DIR = Path(__file__).parent / "node"
REGION = "cn-hangzhou"


def run_scenario(server: LiveServer, algorithm: str, cidr: str) -> dict[str, Any]:
    node = shutil.which("node")
    assert node, "Node.js is missing: ./nubes-dev test installs it"
    assert (NODE_DIR / "node_modules" / "@alicloud" / "ecs20140526" / "package.json").is_file(), (
        "the Node.js SDKs are missing: ./nubes-dev test installs them (npm ci in tests/tools/node)"
    )
    env = {
        **os.environ,
        "NUBES_ENDPOINT": server.endpoint,
        "NUBES_ACCESS_KEY_ID": ROOT_KEY_ID,
        "NUBES_ACCESS_KEY_SECRET": ROOT_SECRET,
        "NUBES_REGION": REGION,
        "NUBES_CIDR": cidr,
        "NUBES_SIGNATURE_ALGORITHM": algorithm,
    }
    done = subprocess.run(
        [node, "scenario.mjs"],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize(
    ("algorithm", "path", "string_to_sign"),
    [("", "doRequest", "ACS3-HMAC-SHA256"), ("v2", "doRPCRequest", "POST&%2F&AccessKeyId")],
    ids=["acs3-hmac-sha256", "v2-hmac-sha1"],
)
def test_node_tea_sdk_scenario(server: LiveServer, algorithm: str, path: str, string_to_sign: str) -> None:
    cidr = "10.81.0.0/16" if algorithm else "10.82.0.0/16"
    out = run_scenario(server, algorithm, cidr)

    # every answer has the JSON types the SDK's models declare (no digit strings for numbers)
    assert out["typeProblems"] == []
    # every call took the signing path asked for, and nubes verified it
    assert out["paths"][path] > 20 and sum(out["paths"].values()) == out["paths"][path]
    wrong = out["wrongSecret"]
    assert (wrong["code"], wrong["statusCode"]) == ("SignatureDoesNotMatch", 400)
    assert f"server string to sign is:{string_to_sign}" in wrong["message"]

    assert set(out["regions"]["ids"]) == {r.region_id for r in load_catalog().regions}
    assert out["regions"]["requestId"]
    zone = out["zoneId"]
    assert zone.startswith(f"{REGION}-")

    vpc_id = out["vpc"]["vpcId"]
    assert vpc_id.startswith("vpc-") and out["vpc"]["status"] == "Available"
    vswitch = out["vswitch"]
    vswitch_cidr = ipaddress.ip_network(vswitch["cidrBlock"])
    assert vswitch["vswitchId"].startswith("vsw-") and vswitch["status"] == "Available"
    assert (vswitch["vpcId"], vswitch["zoneId"]) == (vpc_id, zone)
    assert vswitch_cidr == ipaddress.ip_network(cidr.replace(".0.0/16", ".1.0/24"))

    group = out["securityGroup"]
    assert group["groupId"].startswith("sg-") and (group["vpcId"], group["name"]) == (vpc_id, "node-sg")
    assert [(r["ipProtocol"], r["portRange"], r["sourceCidrIp"], r["priority"]) for r in group["rules"]] == [
        ("TCP", "22/22", "0.0.0.0/0", "1"),
        ("TCP", "443/443", "10.0.0.0/8", "2"),
    ]
    assert {(r["direction"], r["policy"]) for r in group["rules"]} == {("ingress", "Accept")}

    assert (out["dryRun"]["code"], out["dryRun"]["statusCode"]) == ("DryRunOperation", 400)

    run = out["run"]
    ids = run["instanceIds"]
    assert len(set(ids)) == 2 and all(i.startswith("i-") for i in ids) and run["requestId"]
    assert run["statuses"] == dict.fromkeys(ids, "Running") and run["totalCount"] == 2
    assert sorted(i["instanceId"] for i in run["instances"]) == sorted(ids)
    ips = set()
    for instance in run["instances"]:
        assert instance["status"] == "Running" and instance["instanceName"] == "node-vm"
        assert (instance["instanceType"], instance["cpu"], instance["memory"]) == ("ecs.g7.large", 2, 8192)
        assert (instance["imageId"], instance["zoneId"]) == (out["imageId"], zone)
        assert (instance["vpcId"], instance["vSwitchId"]) == (vpc_id, vswitch["vswitchId"])
        assert instance["securityGroupIds"] == [group["groupId"]]
        assert instance["tags"] == [["sdk", "node"]]
        [ip] = instance["privateIps"]
        assert ipaddress.ip_address(ip) in vswitch_cidr
        ips.add(ip)
    assert len(ips) == 2

    first = ids[0]
    attribute = out["attribute"]
    assert (attribute["instanceId"], attribute["status"], attribute["vpcId"]) == (first, "Running", vpc_id)
    assert attribute["privateIps"] == next(
        i["privateIps"] for i in run["instances"] if i["instanceId"] == first
    )
    assert attribute["securityGroupIds"] == [group["groupId"]] and attribute["instanceType"] == "ecs.g7.large"
    assert out["instanceStatus"] == {"totalCount": 2, "statuses": dict.fromkeys(ids, "Running")}

    power = out["power"]
    assert (power["stopped"], power["restarted"]) == ("Stopped", "Running")
    assert (power["rebooted"], power["otherStatus"]) == ("Running", "Running")
    refused = power["stoppedAgain"]
    assert (refused["code"], refused["statusCode"]) == ("IncorrectInstanceStatus", 403)
    assert first in refused["message"]

    disks = out["disks"]
    disk_id = disks["diskId"]
    assert disk_id.startswith("d-") and (disks["available"], disks["inUse"]) == ("Available", "In_use")
    by_type = {d["type"]: d for d in disks["ofInstance"]}
    assert disks["totalCount"] == 2 and set(by_type) == {"system", "data"}
    assert {d["instanceId"] for d in disks["ofInstance"]} == {first}
    assert (by_type["data"]["diskId"], by_type["data"]["size"], by_type["data"]["status"]) == (
        disk_id,
        30,
        "In_use",
    )
    assert (by_type["system"]["size"], by_type["system"]["category"]) == (20, "cloud_essd")
    assert by_type["data"]["device"] != by_type["system"]["device"]

    snapshot = out["snapshot"]
    assert snapshot["snapshotId"].startswith("s-") and snapshot["status"] == "accomplished"
    assert (snapshot["sourceDiskId"], snapshot["sourceDiskSize"], snapshot["name"]) == (
        disk_id,
        "30",
        "node-snap",
    )

    errors = {name: (e["code"], e["statusCode"]) for name, e in out["errors"].items()}
    assert errors == {
        "badInstanceId": ("InvalidInstanceId.NotFound", 404),
        "badImage": ("InvalidImageId.NotFound", 404),
        "badVpc": ("InvalidVpcId.NotFound", 404),
    }
    assert all(e["requestId"] for e in out["errors"].values())

    assert out["deleted"]["remaining"] == 0
    assert (out["deleted"]["disk"], out["deleted"]["diskInstanceId"]) == ("Available", "")

    teardown = out["teardown"]
    assert (teardown["disksLeft"], teardown["vswitchesLeft"], teardown["vpcsLeft"]) == (0, 0, 0)
    assert (teardown["vpcInUse"]["code"], teardown["vpcInUse"]["statusCode"]) == (
        "DependencyViolation.VSwitch",
        400,
    )

    # what the Python SDK sees afterwards agrees: nothing of the scenario is left
    ecs = tea_ecs(server)
    listed = ecs.describe_instances(
        em.DescribeInstancesRequest(region_id=REGION, instance_ids=json.dumps(ids))
    )
    assert listed.body.total_count == 0
    disks_left = ecs.describe_disks(em.DescribeDisksRequest(region_id=REGION, disk_ids=json.dumps([disk_id])))
    assert disks_left.body.total_count == 0
    snapshots_left = ecs.describe_snapshots(
        em.DescribeSnapshotsRequest(region_id=REGION, snapshot_ids=json.dumps([snapshot["snapshotId"]]))
    )
    assert snapshots_left.body.total_count == 0
    vpcs_left = tea_vpc(server).describe_vpcs(vm.DescribeVpcsRequest(region_id=REGION, vpc_id=vpc_id))
    assert vpcs_left.body.total_count == 0
