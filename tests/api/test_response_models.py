"""Response-model completeness: every field the official SDK's response model declares for an
action is in nubes' answer to it, with the model's type, in JSON and in XML.

The declared shapes are the catalogs' `response_shape` (generated from the SDK models), walked for
EVERY action the registry lists: a new action or a new SDK field is covered without touching this
file. Each action is called once, successfully, against an account owning one of every resource
(test_cross_account's world): reads first, then creations, changes, undoings and deletions, each
retried while what it needs is still settling. A creation's new resource becomes the one the
following actions use, so that deletions take throwaway resources and the world's stay. A list's
item fields are checked in every item the answers hold; lists that stayed empty everywhere are
printed, since their items could not be checked."""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from nubes.actions import all_tables
from nubes.api.registry import ActionSpec, Registry
from nubes.api.signing import sign_v1
from nubes.catalog.official_api import official_actions
from nubes.client import VERSIONS, base_url
from nubes.clock import SystemClock
from nubes.domain.accounts import Accounts

from ..conftest import LiveServer, start_server, stop_server
from .test_cross_account import (
    PUBLIC_KEY,
    REGION,
    RESOURCE_STEMS,
    Tenant,
    base_request,
    build,
    id_stem,
    is_read,
    plausible,
)

WORLD_CIDR = "10.81"  # the world's VPC is 10.81.0.0/16
OTHER_TYPE = "ecs.g7.xlarge"  # ModifyInstanceSpec's new type: not the world's
BUCKET, IMPORTED = "models", "imported.qcow2"  # the "OSS" bucket ImportImage reads and ExportImage fills
SLOW_SECONDS = 1.5  # how late the slow file server answers


class _SlowFile(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(SLOW_SECONDS)
        self.send_response(200)
        self.send_header("Content-Length", "4096")
        self.end_headers()
        self.wfile.write(b"\0" * 4096)

    def log_message(self, *_: Any) -> None:
        pass


_slow_servers: list[http.server.ThreadingHTTPServer] = []


def slow_file_url() -> str:
    """A loopback HTTP server (one per test process) whose files come SLOW_SECONDS late."""
    if not _slow_servers:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowFile)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        _slow_servers.append(server)
    return f"http://127.0.0.1:{_slow_servers[0].server_address[1]}"


# Where the SDK model says something real ECS does not write; each entry says why (none yet).
MODEL_ERRATA: set[str] = set()
# Actions nubes refuses every time, by design until what they act on exists: the code each
# answers instead of an answer to check.
REFUSED_ALWAYS = {
    "ecs:AttachInstanceRamRole": "InvalidRamRole.NotFound",  # nubes has no RAM roles yet
    "ecs:DetachInstanceRamRole": "InvalidRamRole.NotFound",
}
# Reads whose lists stay empty in nubes by design, and why.
LIST_NOTHING = {
    "ecs:DescribeInstanceRamRole": "nubes has no RAM roles yet",
    "ecs:DescribeInstanceAutoRenewAttribute": "nubes has no subscription instances",
}

# ---- the check -------------------------------------------------------------------------------

PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "boolean": (bool,),
    "number": (int, float),
}


@dataclass
class Findings:
    """What one action's answers lack, by dotted path (`Instances.Instance[].CpuOptions.Numa`)."""

    missing: set[str] = field(default_factory=set)
    mistyped: dict[str, str] = field(default_factory=dict)
    empty_lists: set[str] = field(default_factory=set)
    filled_lists: set[str] = field(default_factory=set)
    present: set[str] = field(default_factory=set)  # the leaves (scalars) the answers hold

    def unchecked_lists(self) -> set[str]:
        return self.empty_lists - self.filled_lists

    def lists_nothing(self) -> bool:
        """Whether an answer with lists of things (not only of tags) had none in any of them:
        a read that lists nothing checks nothing inside its items."""
        listed = {p for p in self.empty_lists | self.filled_lists if not p.endswith("Tags.Tag[]")}
        return bool(listed) and not listed & self.filled_lists


def check(shape: Any, value: Any, path: str, found: Findings) -> None:
    """Walk a declared shape over an answer, recording every declared field the answer lacks."""
    if isinstance(shape, str):
        found.present.add(path)
        expected = PYTHON_TYPES.get(shape)
        wrong_bool = isinstance(value, bool) and shape in ("integer", "number")
        if expected is not None and (not isinstance(value, expected) or wrong_bool):
            found.mistyped[path] = f"{shape} expected, got {value!r}"
    elif isinstance(shape, list):
        if not isinstance(value, list):
            found.mistyped[path] = f"list expected, got {value!r}"
        elif not value:
            found.empty_lists.add(f"{path}[]")
        else:
            found.filled_lists.add(f"{path}[]")
            for item in value:
                if shape:  # [] is a list the catalog cut at its depth limit
                    check(shape[0], item, f"{path}[]", found)
    elif not isinstance(value, dict):
        found.mistyped[path] = f"object expected, got {value!r}"
    elif list(shape) != ["{key}"]:  # a map's keys are data, not declared fields
        for key, sub in shape.items():
            where = f"{path}.{key}" if path else key
            if key not in value:
                found.missing.add(where)
            else:
                check(sub, value[key], where, found)


def from_xml(shape: Any, element: ET.Element) -> Any:
    """An XML answer read the way the declared shape says (as an SDK's XML reader does): typed
    scalars, a list as the repeated elements of its name (none: an empty list)."""
    if isinstance(shape, str):
        return typed(shape, element.text or "")
    if list(shape) == ["{key}"] or not shape:
        return {child.tag: child.text for child in element}
    out: dict[str, Any] = {}
    for key, sub in shape.items():
        if isinstance(sub, list):
            out[key] = [from_xml(sub[0], e) if sub else e.text for e in element.findall(key)]
        elif (child := element.find(key)) is not None:
            out[key] = from_xml(sub, child)
    return out


def typed(kind: str, text: str) -> Any:
    """The text of an XML scalar as its declared type, or the text itself where it is not one."""
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        return text
    if kind == "boolean" and text in ("true", "false"):
        return text == "true"
    return text


def leaves(shape: Any, path: str = "") -> Iterator[str]:
    """The paths of a declared shape's scalars, as check() names them."""
    if isinstance(shape, str):
        yield path
    elif isinstance(shape, list):
        yield from leaves(shape[0], f"{path}[]") if shape else ()
    elif list(shape) != ["{key}"]:
        for key, sub in shape.items():
            yield from leaves(sub, f"{path}.{key}" if path else key)


def completeness(specs: list[ActionSpec], findings: dict[str, Findings]) -> str:
    """Per product: how many of the declared leaves the answers hold, and how many sit in lists
    no answer filled (so neither held nor missing)."""
    lines = []
    for product in sorted({s.product for s in specs}):
        declared = held = unknown = 0
        for spec in (s for s in specs if s.product == product):
            found = findings.get(f"{spec.product}:{spec.name}", Findings())
            unchecked = tuple(found.unchecked_lists())
            for leaf in set(leaves(shape_of(spec))):
                declared += 1
                held += leaf in found.present
                unknown += leaf not in found.present and leaf.startswith(unchecked)
        checkable = declared - unknown
        lines.append(
            f"{product}: {held} of {checkable} checkable fields ({held / checkable:.1%}); {unknown} in empty lists"
        )
    return "\n".join(lines)


def shape_of(spec: ActionSpec) -> dict[str, Any]:
    shape: dict[str, Any] = official_actions(spec.product)[spec.name]["response_shape"]
    return shape


# ---- calling every action once ------------------------------------------------------------


def stage(spec: ActionSpec) -> int:
    """When an action runs: reads once the world stands (after the changes, so that attachments
    and tags show), creations first, undoings after what they undo, deletions last."""
    verb = next(v for v in VERB_STAGES if spec.name.startswith(v))
    return VERB_STAGES[verb]


VERB_STAGES = {
    "Create": 0,
    "Allocate": 0,
    "Import": 0,
    "Copy": 0,
    "Run": 0,
    "Describe": 2,
    "List": 2,
    "Get": 2,
    "Detach": 3,
    "Revoke": 3,
    "Cancel": 3,
    "Leave": 3,
    "Remove": 3,
    "Untag": 3,
    "Unassociate": 3,
    "Convert": 3,  # the newest instance's public IP becomes an EIP, after the reads of it
    "Stop": 3,
    "Delete": 4,
    "Release": 4,
    "": 1,  # (last: every name starts with it) the changes: Modify, Attach, Start, Reboot, Reset, ...
}


def created_ids(body: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """The resources a creation's answer names, as (kind in the tenant's ids, ID)."""
    for key, value in body.items():
        if key == "InstanceIdSets":
            yield "instance", value["InstanceIdSet"][0]
            continue
        stem = id_stem(key)
        if isinstance(value, str) and value and stem in RESOURCE_STEMS:
            yield RESOURCE_STEMS[stem], value


@dataclass
class Caller:
    """Calls every action once, successfully, keeping what each answered."""

    tenant: Tenant
    tmp: Path
    peer_uid: str  # another account's ID, to share an image with
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    xml_answers: dict[str, ET.Element] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    # A resource kind's earlier IDs, under the newest one (which is tenant.ids[kind]).
    earlier: dict[str, list[str]] = field(default_factory=dict)
    # The custom route table CreateRouteTable made (a new VPC's system table may be newer), and
    # the vSwitch of the world's VPC it is associated with and unassociated from.
    custom_table: str = ""
    free_vswitch_id: str = ""
    monitored_ids: dict[str, str] = field(default_factory=dict)  # see monitored()

    def __post_init__(self) -> None:
        self.world = dict(self.tenant.ids)  # the resources build() made, before any creation here

    def request(self, spec: ActionSpec, optional_ids: bool) -> dict[str, str]:
        """A request of the action: reads ask about the world's resources (the fullest), other
        actions about the newest of each kind; None in extra_params leaves a parameter out."""
        values = plausible(self.tenant, self.tmp)
        about = Tenant(self.tenant.name, self.tenant.creds, self.world) if is_read(spec) else self.tenant
        request: dict[str, str | None] = {**base_request(spec, about, values, optional_ids)}
        request.update(self.extra_params(spec))
        return {key: value for key, value in request.items() if value is not None}

    def slow_import(self) -> str:
        """The task of an ImportImage still fetching its file (from a server that answers late),
        so that CancelTask finds it open."""
        return str(
            self.tenant.ecs(
                "ImportImage",
                RegionId=REGION,
                **{
                    "DiskDeviceMapping.1.OSSObject": f"{slow_file_url()}/disk.raw",
                    "DiskDeviceMapping.1.Format": "raw",
                },
            )["TaskId"]
        )

    def extra_params(self, spec: ActionSpec) -> dict[str, str | None]:
        """What base_request cannot guess: struct items, names of new things, a type for
        ResourceId, one of two alternative IDs, a rule's ID; None: a parameter left out."""
        ids, unique = self.tenant.ids, uuid.uuid4().hex[:8]
        tag = {"Tag.1.Key": "checked", "Tag.1.Value": "yes"}
        # with public bandwidth: a public IP at launch, for AllocatePublicIpAddress and ConvertNatPublicIpToEip
        launch: dict[str, str | None] = {
            "ImageId": self.world["image"],
            "DeploymentSetId": None,
            "InternetMaxBandwidthOut": "5",
        }
        by_action: dict[str, Callable[[], dict[str, str | None]]] = {
            "RunInstances": lambda: launch,
            "CreateInstance": lambda: launch,
            "DeleteRouteEntry": lambda: {
                "RouteTableId": None,
                "NextHopId": None,
                "DestinationCidrBlock": None,
            },
            "AddTags": lambda: {"ResourceType": "instance", "ResourceId": ids["instance"], **tag},
            "RemoveTags": lambda: {
                "ResourceType": "instance",
                "ResourceId": ids["instance"],
                "Tag.1.Key": "checked",
            },
            "TagResources": lambda: {"ResourceType": "instance", "ResourceId.1": ids["instance"], **tag},
            "UntagResources": lambda: {
                "ResourceType": "instance",
                "ResourceId.1": ids["instance"],
                "TagKey.1": "checked",
            },
            # ECS writes a key pair's PublicKey only when asked to (test_keypairs.py holds it to that)
            "DescribeKeyPairs": lambda: {"IncludePublicKey": "true"},
            "ListTagResources": lambda: {"ResourceType": "instance", "ResourceId.1": ids["instance"]},
            "CreateKeyPair": lambda: {"KeyPairName": f"kp-new-{unique}"},
            "CreateLaunchTemplate": lambda: {"LaunchTemplateName": f"lt-new-{unique}"},
            "ModifyLaunchTemplateDefaultVersion": lambda: {"DefaultVersionNumber": "1"},
            "DeleteLaunchTemplateVersion": lambda: {"DeleteVersion.1": self.new_template_version()},
            "ImportKeyPair": lambda: {"KeyPairName": f"kp-imported-{unique}", "PublicKeyBody": PUBLIC_KEY},
            "CreateVSwitch": lambda: {"CidrBlock": f"{WORLD_CIDR}.9.0/24"},
            "CreateImage": lambda: {"InstanceId": ids["instance"], "ImageName": f"image-{unique}"},
            "ImportImage": lambda: {
                "DiskDeviceMapping.1.OSSBucket": BUCKET,
                "DiskDeviceMapping.1.OSSObject": IMPORTED,
                "DiskDeviceMapping.1.Format": "qcow2",
            },
            "ExportImage": lambda: {"ImageId": self.world["image"], "OSSBucket": BUCKET},
            "CancelTask": lambda: {"TaskId": self.slow_import()},
            "CreateSimulatedSystemEvents": lambda: {
                "EventType": "SystemMaintenance.Reboot",
                "NotBefore": "2099-01-01T00:00:00Z",
            },
            # the open events, which DescribeInstanceHistoryEvents leaves out unless asked
            "DescribeInstanceHistoryEvents": lambda: {"InstanceEventCycleStatus.1": "Scheduled"},
            "ModifyInstanceSpec": lambda: {"InstanceType": OTHER_TYPE},
            "AttachInstanceRamRole": lambda: {"RamRoleName": "EcsRole"},
            # the newest instance joins the group it is in (the account's default one)
            "JoinResourceGroup": lambda: {
                "ResourceType": "instance",
                "ResourceId": ids["instance"],
                "ResourceGroupId": self.tenant.ecs("DescribeInstanceAttribute", InstanceId=ids["instance"])[
                    "ResourceGroupId"
                ],
            },
            "ModifyInstanceAttachmentAttributes": lambda: {
                "PrivatePoolOptions.MatchCriteria": "Open",
                "PrivatePoolOptions.Id": None,
            },
            # a pay-as-you-go instance has no renewal attributes (ChargeTypeViolation)
            "DescribeInstanceAutoRenewAttribute": lambda: {
                "InstanceId": None,
                "RenewalStatus": "AutoRenewal",
            },
            # the newest instance (in the newest group) joins and leaves the world's group
            "JoinSecurityGroup": lambda: {
                "SecurityGroupId": self.world["securitygroup"],
                "NetworkInterfaceId": None,
            },
            "LeaveSecurityGroup": lambda: {
                "SecurityGroupId": self.groups_of_instance()[0],
                "NetworkInterfaceId": None,
            },
            "ModifySecurityGroupRule": lambda: {
                "SecurityGroupRuleId": self.rule_id(egress=False),
                "SourceGroupId": self.world["securitygroup"],
            },
            "ModifySecurityGroupEgressRule": lambda: {"SecurityGroupRuleId": self.rule_id(egress=True)},
            # the newest group refers to the world's, for DescribeSecurityGroupReferences
            "AuthorizeSecurityGroup": lambda: {"SourceGroupId": self.world["securitygroup"]},
            "RevokeSecurityGroup": lambda: {"SourceGroupId": self.world["securitygroup"]},
            "ModifyImageSharePermission": lambda: {
                "ImageId": self.world["image"],
                "AddAccount.1": self.peer_uid,
            },
            "AuthorizeSecurityGroupEgress": lambda: {"DestCidrIp": "10.9.0.0/16"},
            "RevokeSecurityGroupEgress": lambda: {"DestCidrIp": "10.9.0.0/16"},
            "ModifyInstanceAttribute": lambda: {"SecurityGroupIds.1": None},  # keeps Join's second group
            "DeleteInstances": lambda: {"Force": "true"},
            # the world's route entry, renamed (its destination and next hop stay)
            "ModifyRouteEntry": lambda: {
                "RouteTableId": None,
                "DestinationCidrBlock": None,
                "NewNextHopType": None,
                "NewNextHopId": None,
                "RouteEntryName": f"route-{unique}",
            },
            "DeleteInstance": lambda: {"Force": "true"},
            "AssignPrivateIpAddresses": lambda: {"SecondaryPrivateIpAddressCount": "1"},
            "UnassignPrivateIpAddresses": self.secondary_ip,
            # a running instance of its own, sampled for a few seconds, with a secondary interface
            "DescribeInstanceMonitorData": lambda: {"InstanceId": self.monitored()["instance"]},
            "DescribeDiskMonitorData": lambda: {"DiskId": self.monitored()["disk"]},
            "DescribeEniMonitorData": lambda: {"InstanceId": self.monitored()["instance"], "EniId": None},
            "GetInstanceScreenshot": lambda: {"InstanceId": self.monitored()["instance"]},
            "DescribeInstanceVncUrl": lambda: {"InstanceId": self.monitored()["instance"]},
            "ModifyInstanceVncPasswd": lambda: {"VncPassword": "Abc123"},
        }
        # the newest EIP goes to the newest (secondary) interface: the newest instance has a public IP
        eip_to_eni: dict[str, str | None] = {"InstanceType": "NetworkInterface", "InstanceId": ids["eni"]}
        vpc_tags = {"ResourceType": "VPC", "ResourceId.1": ids["vpc"]}
        vpc_by_action: dict[str, Callable[[], dict[str, str | None]]] = {
            "TagResources": lambda: {**vpc_tags, **tag},
            "UnTagResources": lambda: {**vpc_tags, "TagKey.1": "checked"},
            "ListTagResources": self.tagged_vpc,
            "AssociateEipAddress": lambda: eip_to_eni,
            # a new custom table of the world's VPC, for a vSwitch of it that uses the system table
            "CreateRouteTable": lambda: {"VpcId": self.world["vpc"], **tag},
            "ModifyRouteTableAttributes": lambda: {"RouteTableId": self.custom_table},
            "AssociateRouteTable": lambda: {
                "RouteTableId": self.custom_table,
                "VSwitchId": self.free_vswitch(),
            },
            "UnassociateRouteTable": lambda: {
                "RouteTableId": self.custom_table,
                "VSwitchId": self.free_vswitch(),
            },
            "DeleteRouteTable": lambda: {"RouteTableId": self.custom_table},
            "UnassociateEipAddress": lambda: eip_to_eni,
            # the world's DNAT entry, not the ports a new one takes (plausible's)
            "DescribeForwardTableEntries": lambda: {"ExternalPort": None, "InternalPort": None},
            # the VPC stays in its group (the one it was made in)
            "MoveResourceGroup": lambda: {
                "ResourceType": "VPC",
                "ResourceId": ids["vpc"],
                "NewResourceGroupId": self.tenant.ok(
                    "vpc", "DescribeVpcAttribute", RegionId=REGION, VpcId=ids["vpc"]
                )["ResourceGroupId"],
            },
        }
        table = {**by_action, **vpc_by_action} if spec.product == "vpc" else by_action
        return table.get(spec.name, dict)()

    def tagged_vpc(self) -> dict[str, str | None]:
        """ListTagResources' parameters for a VPC that carries a tag (the world's carry none)."""
        vpc_id = self.tenant.ids["vpc"]
        self.tenant.ok(
            "vpc",
            "TagResources",
            RegionId=REGION,
            ResourceType="VPC",
            **{"ResourceId.1": vpc_id, "Tag.1.Key": "listed", "Tag.1.Value": "yes"},
        )
        return {"ResourceType": "VPC", "ResourceId.1": vpc_id}

    def monitored(self) -> dict[str, str]:
        """A running instance of the world's network with a secondary interface, made on first use
        and left running until the agent (sampling every second here) has recorded all three."""
        if not self.monitored_ids:
            t, world = self.tenant, self.world
            instance = t.ecs(
                "RunInstances",
                RegionId=REGION,
                ImageId=world["system_image"],
                InstanceType="ecs.g7.large",
                VSwitchId=world["vswitch"],
                SecurityGroupId=world["securitygroup"],
            )["InstanceIdSets"]["InstanceIdSet"][0]
            t.until("DescribeInstanceAttribute", lambda b: b["Status"] == "Running", InstanceId=instance)
            eni = t.ecs(
                "CreateNetworkInterface",
                RegionId=REGION,
                VSwitchId=world["vswitch"],
                SecurityGroupId=world["securitygroup"],
            )["NetworkInterfaceId"]
            t.ecs("AttachNetworkInterface", RegionId=REGION, NetworkInterfaceId=eni, InstanceId=instance)
            disk = t.ecs("DescribeDisks", RegionId=REGION, InstanceId=instance)["Disks"]["Disk"][0]["DiskId"]
            now = time.time()
            span = {
                "StartTime": time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(now - 300)),
                "EndTime": time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(now + 120)),
            }
            t.until(
                "DescribeEniMonitorData",
                lambda b: bool(b["MonitorData"]["EniMonitorData"]),
                RegionId=REGION,
                InstanceId=instance,
                **span,
            )
            self.monitored_ids = {"instance": instance, "disk": disk, "eni": eni}
        return self.monitored_ids

    def new_template_version(self) -> str:
        """A version of the launch template in use that is not its default one (made now)."""
        body = self.tenant.ecs(
            "CreateLaunchTemplateVersion",
            RegionId=REGION,
            LaunchTemplateId=self.tenant.ids["launchtemplate"],
            InstanceType="ecs.g7.large",
        )
        return str(body["LaunchTemplateVersionNumber"])

    def secondary_ip(self) -> dict[str, str | None]:
        """A secondary address given to the newest interface, to take back."""
        body = self.tenant.ecs(
            "AssignPrivateIpAddresses",
            RegionId=REGION,
            NetworkInterfaceId=self.tenant.ids["eni"],
            SecondaryPrivateIpAddressCount="1",
        )
        return {
            "PrivateIpAddress.1": body["AssignedPrivateIpAddressesSet"]["PrivateIpSet"]["PrivateIpAddress"][0]
        }

    def free_vswitch(self) -> str:
        """A vSwitch of the world's VPC that no custom table uses (made once)."""
        if not self.free_vswitch_id:
            self.free_vswitch_id = self.tenant.ok(
                "vpc",
                "CreateVSwitch",
                RegionId=REGION,
                VpcId=self.world["vpc"],
                ZoneId=self.world["zone"],
                CidrBlock=f"{WORLD_CIDR}.8.0/24",
            )["VSwitchId"]
        return self.free_vswitch_id

    def groups_of_instance(self) -> list[str]:
        """The security groups of the newest instance (changes may have set them otherwise)."""
        body = self.tenant.ecs("DescribeInstanceAttribute", InstanceId=self.tenant.ids["instance"])
        return list(body["SecurityGroupIds"]["SecurityGroupId"])

    def rule_id(self, egress: bool) -> str:
        """The ID of a rule of the security group in use, in the direction asked."""
        group = self.tenant.ids["securitygroup"]
        body = self.tenant.ecs("DescribeSecurityGroupAttribute", RegionId=REGION, SecurityGroupId=group)
        direction = "egress" if egress else "ingress"
        rules = [r for r in body["Permissions"]["Permission"] if r["Direction"] == direction]
        return str(rules[0]["SecurityGroupRuleId"]) if rules else ""

    def attempt(self, spec: ActionSpec) -> bool:
        """Call the action, with and without its optional IDs (reads first without: they then
        list everything); keep the first success, or why each try failed."""
        label = f"{spec.product}:{spec.name}"
        tried = []
        for optional_ids in (False, True) if is_read(spec) else (True, False):
            params = self.request(spec, optional_ids)
            answer = self.tenant.ask(spec.product, spec.name, params)
            if answer.status == 200:
                self.settle(spec, params, json.loads(answer.body))
                # (Tenant.ask drops RequestId from the JSON answer; the XML one is checked with it)
                self.answers[label] = {"RequestId": "", **json.loads(answer.body)}
                if is_read(spec):  # read again, as XML, while the same request still answers
                    self.xml_answers[label] = ask_xml(self.tenant, spec.product, spec.name, params)
                self.failures.pop(label, None)
                return True
            tried.append(f"{answer.status} {answer.code} {answer.message[:200]} <- {params}")
            self.failures[label] = "\n    ".join(tried)
            if answer.code.startswith("IncorrectInstanceStatus"):
                self.toggle_power()
        return False

    def settle(self, spec: ActionSpec, params: dict[str, str], body: dict[str, Any]) -> None:
        """A creation's resource becomes the one later actions use; a deletion's, the one before."""
        ids = self.tenant.ids
        if spec.name == "CreateRouteTable":
            self.custom_table = body["RouteTableId"]
        if stage(spec) == 0:
            for kind, new in created_ids(body):
                if new == ids[kind]:
                    continue  # made something in it (a launch template's version), not a new one
                self.earlier.setdefault(kind, []).append(ids[kind])
                ids[kind] = new
        elif stage(spec) == 4:
            for kind, stack in self.earlier.items():
                if stack and any(ids[kind] in v for v in params.values()):
                    ids[kind] = stack.pop()

    def toggle_power(self) -> None:
        """The instance is not in the status the action needs: move it to the other one."""
        instance = self.tenant.ids["instance"]
        status = self.tenant.ecs("DescribeInstanceAttribute", InstanceId=instance)["Status"]
        if status == "Running":
            self.tenant.ask("ecs", "StopInstance", {"InstanceId": instance, "ForceStop": "true"})
        elif status == "Stopped":
            self.tenant.ask("ecs", "StartInstance", {"InstanceId": instance})

    def call_all(self, specs: list[ActionSpec]) -> None:
        """Stage by stage, each action until it succeeds or its stage has had a minute."""
        for number in sorted({stage(s) for s in specs}):
            pending = [s for s in specs if stage(s) == number]
            deadline = time.monotonic() + 60
            while pending and time.monotonic() < deadline:
                pending = [s for s in pending if not self.attempt(s)]
                if pending:
                    time.sleep(0.3)
            print(f"stage {number}: left {[s.name for s in pending]}")


# ---- XML --------------------------------------------------------------------------------------


def ask_xml(tenant: Tenant, product: str, action: str, params: dict[str, str]) -> ET.Element:
    """The same request with Format=XML, signed as nubes.client.call signs (it reads only JSON)."""
    creds = tenant.creds
    query = {"Action": action, "Version": VERSIONS[product], **params, "Format": "XML"}
    signed = sign_v1("POST", query, creds.access_key_id, creds.access_key_secret)
    request = urllib.request.Request(
        f"{base_url(creds.endpoint)}/?{urlencode(signed)}", data=b"", method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return ET.fromstring(response.read())


# ---- the test ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """An emulator of its own: the test deletes what it makes, and the store does not matter."""
    started = start_server(
        tmp_path_factory.mktemp("models"),
        None,
        "sqlite",
        ["--throttle-rate", "0", "--public-cidr", "198.19.0.0/24", "--monitor-interval", "1"],
    )
    yield started
    stop_server(started)


def report(findings: dict[str, Findings]) -> list[str]:
    """One line per missing or mistyped field."""
    lines = []
    for label, found in sorted(findings.items()):
        lines += [f"{label}: missing {path}" for path in sorted(found.missing - MODEL_ERRATA)]
        lines += [f"{label}: {path}: {why}" for path, why in sorted(found.mistyped.items())]
    return lines


def test_every_answer_has_every_field_of_the_sdk_model(server: LiveServer, tmp_path: Path) -> None:
    """Every implemented action answers once; the answers lack no field of their SDK models."""
    tenant = build(server, "models", WORLD_CIDR)
    bucket = server.data_dir / "oss" / BUCKET
    bucket.mkdir(parents=True)
    (bucket / IMPORTED).write_bytes(b"QFI\xfb" + bytes(508))  # read by the agent, after the answer
    specs = Registry(all_tables()).all()
    peer = Accounts(server.store, SystemClock()).create(f"peer-{uuid.uuid4().hex[:8]}")
    caller = Caller(tenant, tmp_path, peer.uid)
    caller.call_all(specs)

    findings: dict[str, Findings] = {}
    xml_findings: dict[str, Findings] = {}
    for spec in specs:
        label = f"{spec.product}:{spec.name}"
        if label in caller.answers:
            check(shape_of(spec), caller.answers[label], "", findings.setdefault(label, Findings()))
        if label in caller.xml_answers:
            answer = from_xml(shape_of(spec), caller.xml_answers[label])
            check(shape_of(spec), answer, "", xml_findings.setdefault(f"{label} (XML)", Findings()))

    failed = [
        f"{label}: no successful answer: {why}"
        for label, why in sorted(caller.failures.items())
        if label not in REFUSED_ALWAYS or f" {REFUSED_ALWAYS[label]} " not in why
    ]
    failed += [
        f"{label}: answered, but it is refused always" for label in REFUSED_ALWAYS if label in caller.answers
    ]
    failed += [
        f"{label}: answered with every list empty: give the world something for it to list"
        for label, found in sorted(findings.items())
        if label.split(":")[1].startswith(("Describe", "List"))
        and found.lists_nothing()
        and label not in LIST_NOTHING
    ]
    unchecked = sorted(f"{label}: {p}" for label, f in findings.items() for p in f.unchecked_lists())
    print(completeness(specs, findings))
    print("lists no answer filled (their items unchecked):\n  " + "\n  ".join(unchecked))
    problems = failed + report(findings) + report(xml_findings)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)
