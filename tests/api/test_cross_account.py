"""Account isolation, driven by the action registry: another account's resource ID, in any
parameter of any action, is answered exactly as an ID that does not exist, and leaves the owner's
resources as they were.

Two accounts (A and B) each own one of every resource type. For every action the registry lists
and every parameter of it that names a resource (found from the parameter's name), B calls the
action with A's ID there and, separately, with a made-up ID of the same shape; its other
parameters are B's own resources and plausible values, so the request gets as far as the lookup.
New actions and parameters are covered without touching this file; an ID-like parameter name the
test cannot place fails it (classify it in RESOURCE_STEMS or NOT_RESOURCES)."""

from __future__ import annotations

import json
import os
import random
import re
import string
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nubes.actions import all_tables
from nubes.api.params import Param
from nubes.api.registry import ActionSpec, Registry
from nubes.client import ClientError, Credentials, call

from ..conftest import LiveServer

REGION = "cn-hangzhou"
INSTANCE_TYPE = "ecs.g7.large"
# A's names and descriptions carry this; no answer to B may contain it.
SECRET = "alicesecret"
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGqS8aXgXo1l2kP0P0mXbN4xD1hUj9mB7tQn4i5i1Z7x test"

# ---- which parameters name a resource ------------------------------------------------------

# The stem of an ID parameter's name (lower case, without Id/Ids/Name) -> the kind of resource.
RESOURCE_STEMS = {
    "instance": "instance",
    "disk": "disk",
    "snapshot": "snapshot",
    "image": "image",
    "securitygroup": "securitygroup",
    "sourcegroup": "securitygroup",
    "destgroup": "securitygroup",
    "vpc": "vpc",
    "vswitch": "vswitch",
    "networkinterface": "eni",
    "eni": "eni",
    "deploymentset": "deploymentset",
    "autosnapshotpolicy": "policy",
    "keypair": "keypair",
    "routetable": "routetable",
    "routeentry": "routeentry",
    "vrouter": "vrouter",
    "router": "vrouter",
    "nexthop": "instance",
    "newnexthop": "instance",
    "securitygrouprule": "rule",
    "resource": "resource",  # typed by the action's ResourceType parameter
    "allocation": "eip",
    "associatedinstance": "instance",
    "launchtemplate": "launchtemplate",
    "natgateway": "natgateway",
    "snattable": "snattable",
    "forwardtable": "forwardtable",
    "snatentry": "snatentry",
    "forwardentry": "forwardentry",
    "sourcevswitch": "vswitch",
    "task": "task",
    "event": "event",
}
# ID-like names that are not an account's resource here: places, catalogues, other products'
# resources nubes does not model, and account (not resource) identities.
NOT_RESOURCES = {
    "region",
    "zone",
    "destinationregion",
    "resourcegroup",
    "templateresourcegroup",
    "newresourcegroup",
    "kmskey",
    "dedicatedhost",
    "dedicatedhostcluster",
    "cluster",
    "hpccluster",
    "storageset",
    "portrangelist",
    "sourceprefixlist",
    "destprefixlist",
    "sourcegroupowner",
    "destgroupowner",
    "imageowner",
    "snapshotlink",
    "vpcowner",
    "vswitchowner",
    "dhcpoptionsset",
    "taskgroup",  # nubes makes no task groups
}
# The kinds each product's TagResources and friends take in ResourceType, and where the test finds them.
TAG_TYPES = {
    "ecs": {
        "instance": "instance",
        "disk": "disk",
        "snapshot": "snapshot",
        "image": "image",
        "securitygroup": "securitygroup",
        "eni": "eni",
        "keypair": "keypair",
        "launchtemplate": "launchtemplate",
    },
    "vpc": {
        "VPC": "vpc",
        "VSWITCH": "vswitch",
        "ROUTETABLE": "routetable",
        "EIP": "eip",
        "NATGATEWAY": "natgateway",
    },
}


def id_stem(name: str) -> str | None:
    """'SecurityGroupIds' -> 'securitygroup', 'KeyPairName' -> 'keypair'; None if not ID-like."""
    lower = name.lower()
    for suffix in ("ids", "id", "names", "name"):
        if lower.endswith(suffix):
            stem = lower[: -len(suffix)]
            if suffix.startswith("name") and stem != "keypair":
                return None  # other names are attributes (InstanceName), not references
            return stem
    return None


def kind_of(name: str) -> str | None:
    stem = id_stem(name)
    if stem is None or stem in NOT_RESOURCES:
        return None
    if stem not in RESOURCE_STEMS:
        raise AssertionError(
            f"parameter {name!r} looks like an ID: classify {stem!r} in RESOURCE_STEMS or NOT_RESOURCES"
        )
    return RESOURCE_STEMS[stem]


@dataclass(frozen=True)
class Slot:
    """Where an ID goes in a request: a top-level parameter, or a field of a struct list's first item."""

    param: Param
    field: Param | None = None

    @property
    def name(self) -> str:
        return self.param.name if self.field is None else f"{self.param.name}.1.{self.field.name}"

    @property
    def kind(self) -> str:
        found = kind_of((self.field or self.param).name)
        assert found is not None
        return found


def id_slots(spec: ActionSpec) -> list[Slot]:
    slots = []
    for param in spec.params:
        if param.kind == "list" and param.item is not None and param.item.kind == "struct":
            slots += [Slot(param, f) for f in param.item.fields if kind_of(f.name)]
        elif param.kind == "struct":
            continue  # no declared struct carries an ID today; a list of structs does
        elif kind_of(param.name):
            slots.append(Slot(param))
    return [s for s in slots if not names_the_new_resource(spec, s)]


def names_the_new_resource(spec: ActionSpec, slot: Slot) -> bool:
    """CreateKeyPair's KeyPairName names the key pair it makes; it refers to nothing existing."""
    noun = re.sub(r"^(Create|Import)", "", spec.name)
    return noun != spec.name and id_stem(slot.name) == noun.lower()


def wire(slot: Slot, value: str) -> dict[str, str]:
    """The wire parameters that put one ID in the slot."""
    if slot.field is not None:
        return {slot.name: value}
    param = slot.param
    if param.kind == "list":
        return {param.name: json.dumps([value])} if param.json_array else {f"{param.name}.1": value}
    if param.name.lower().endswith(("ids", "names")):
        return {param.name: json.dumps([value])}  # diskIds='["d-…"]' is a JSON array in a string
    return {param.name: value}


def made_up(real: str) -> str:
    """An ID of the same shape as `real` that names nothing: the same prefix, other characters."""
    head, sep, tail = real.rpartition("-")
    rng = random.Random(real)
    chars = "".join(rng.choice(string.digits if c.isdigit() else string.ascii_lowercase) for c in tail)
    return f"{head}{sep}{chars}"


# ---- requests ------------------------------------------------------------------------------


_ID = re.compile(r"\b[a-z]{1,4}-[a-z0-9]{16,}\b")
_VERSION_MADE = re.compile(r'("LaunchTemplateVersionNumber": )[0-9]+')


@dataclass(frozen=True)
class Answer:
    status: int
    code: str
    message: str
    body: str  # the success body as canonical JSON, without RequestId

    def normalised(self, probed: str, a: Tenant, b: Tenant) -> Answer:
        """The probed ID as <ID>, A's other IDs as <A>, and IDs made by the call (neither A's nor
        B's) as <NEW>: two successful creates differ only in what they made (a new launch
        template version also in its number)."""
        known = set(b.ids.values())

        def clean(text: str) -> str:
            text = text.replace(probed, "<ID>")
            for value in a.ids.values():
                text = text.replace(value, "<A>")
            text = _VERSION_MADE.sub(r"\1<NEW>", text)
            return _ID.sub(lambda m: m.group(0) if m.group(0) in known else "<NEW>", text)

        return Answer(self.status, self.code, clean(self.message), clean(self.body))


@dataclass
class Tenant:
    name: str
    creds: Credentials
    ids: dict[str, str] = field(default_factory=dict)

    def ask(self, product: str, action: str, params: dict[str, str]) -> Answer:
        try:
            body = call(self.creds, product, action, params)
        except ClientError as error:
            return Answer(error.http_status, error.code, error.message, "")
        body.pop("RequestId", None)
        return Answer(200, "", "", json.dumps(body, sort_keys=True))

    def ok(self, product: str, action: str, **params: str) -> dict[str, Any]:
        answer = self.ask(product, action, dict(params))
        assert answer.status == 200, f"{self.name} {action}: {answer}"
        return dict(json.loads(answer.body))

    def ecs(self, action: str, **params: str) -> dict[str, Any]:
        return self.ok("ecs", action, **params)

    def until(self, action: str, done: Callable[[dict[str, Any]], bool], **params: str) -> None:
        deadline = time.monotonic() + 60
        while not done(self.ecs(action, **params)):
            assert time.monotonic() < deadline, f"{self.name}: {action} {params} did not settle"
            time.sleep(0.2)


def build(live: LiveServer, name: str, cidr: str) -> Tenant:
    """An account owning one of every resource type, each tagged, settled (nothing in progress)."""
    key = live.create_account(f"{name}-{uuid.uuid4().hex[:8]}")
    t = Tenant(name, Credentials(live.endpoint, REGION, key[0], key[1]))
    label = f"{name}{SECRET}" if name == "alice" else name
    ids = t.ids
    vpc = t.ok(
        "vpc",
        "CreateVpc",
        RegionId=REGION,
        CidrBlock=f"{cidr}.0.0/16",
        VpcName=f"{label}-vpc",
        Description=label,
    )
    ids["vpc"], ids["vrouter"], ids["routetable"] = vpc["VpcId"], vpc["VRouterId"], vpc["RouteTableId"]
    zone = t.ecs("DescribeZones", RegionId=REGION)["Zones"]["Zone"][0]["ZoneId"]
    ids["zone"] = zone
    deadline = time.monotonic() + 60
    while t.ok("vpc", "DescribeVpcAttribute", RegionId=REGION, VpcId=ids["vpc"])["Status"] != "Available":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    ids["vswitch"] = t.ok(
        "vpc",
        "CreateVSwitch",
        RegionId=REGION,
        VpcId=ids["vpc"],
        ZoneId=zone,
        CidrBlock=f"{cidr}.1.0/24",
        VSwitchName=f"{label}-vsw",
        Description=label,
    )["VSwitchId"]
    while (
        t.ok("vpc", "DescribeVSwitchAttributes", RegionId=REGION, VSwitchId=ids["vswitch"])["Status"]
        != "Available"
    ):
        assert time.monotonic() < deadline, "the vSwitch stayed Pending"
        time.sleep(0.2)
    ids["securitygroup"] = t.ecs(
        "CreateSecurityGroup",
        RegionId=REGION,
        VpcId=ids["vpc"],
        SecurityGroupName=f"{label}-sg",
        Description=label,
    )["SecurityGroupId"]
    t.ecs(
        "AuthorizeSecurityGroup",
        RegionId=REGION,
        SecurityGroupId=ids["securitygroup"],
        IpProtocol="tcp",
        PortRange="22/22",
        SourceCidrIp="0.0.0.0/0",
        Description=label,
    )
    t.ecs(
        "AuthorizeSecurityGroupEgress",
        RegionId=REGION,
        SecurityGroupId=ids["securitygroup"],
        IpProtocol="tcp",
        PortRange="443/443",
        DestCidrIp="0.0.0.0/0",
        Description=label,
    )
    rules = t.ecs("DescribeSecurityGroupAttribute", RegionId=REGION, SecurityGroupId=ids["securitygroup"])
    ids["rule"] = rules["Permissions"]["Permission"][0]["SecurityGroupRuleId"]
    ids["keypair"] = f"kp-{name}-{uuid.uuid4().hex[:8]}"
    t.ecs("ImportKeyPair", RegionId=REGION, KeyPairName=ids["keypair"], PublicKeyBody=PUBLIC_KEY)
    images = t.ecs("DescribeImages", RegionId=REGION, ImageOwnerAlias="system", PageSize="100")["Images"][
        "Image"
    ]
    ids["system_image"] = next(i["ImageId"] for i in images if i["ImageFamily"] == "nubes:debian_12_x64")
    ids["deploymentset"] = t.ecs(
        "CreateDeploymentSet", RegionId=REGION, DeploymentSetName=f"{label}-ds", Description=label
    )["DeploymentSetId"]
    ids["instance"] = t.ecs(
        "RunInstances",
        RegionId=REGION,
        ImageId=ids["system_image"],
        InstanceType=INSTANCE_TYPE,
        VSwitchId=ids["vswitch"],
        SecurityGroupId=ids["securitygroup"],
        KeyPairName=ids["keypair"],
        InstanceName=f"{label}-vm",
        Description=label,
        UserData="c2VjcmV0",
        DeploymentSetId=ids["deploymentset"],
    )["InstanceIdSets"]["InstanceIdSet"][0]
    t.until("DescribeInstanceAttribute", lambda b: b["Status"] == "Running", InstanceId=ids["instance"])
    t.ecs("StopInstance", InstanceId=ids["instance"])
    t.until("DescribeInstanceAttribute", lambda b: b["Status"] == "Stopped", InstanceId=ids["instance"])
    ids["disk"] = t.ecs(
        "CreateDisk",
        RegionId=REGION,
        ZoneId=zone,
        Size="20",
        DiskCategory="cloud_essd",
        DiskName=f"{label}-disk",
        Description=label,
    )["DiskId"]
    t.until(
        "DescribeDisks",
        lambda b: b["Disks"]["Disk"][0]["Status"] == "Available",
        RegionId=REGION,
        DiskIds=json.dumps([ids["disk"]]),
    )
    ids["snapshot"] = t.ecs(
        "CreateSnapshot", DiskId=ids["disk"], SnapshotName=f"{label}-snap", Description=label
    )["SnapshotId"]
    ids["image"] = t.ecs(
        "CreateImage",
        RegionId=REGION,
        InstanceId=ids["instance"],
        ImageName=f"{label}-image",
        Description=label,
    )["ImageId"]
    t.until(
        "DescribeSnapshots",
        lambda b: all(s["Status"] == "accomplished" for s in b["Snapshots"]["Snapshot"]),
        RegionId=REGION,
    )
    t.until(
        "DescribeImages",
        lambda b: b["Images"]["Image"][0]["Status"] == "Available",
        RegionId=REGION,
        ImageId=ids["image"],
    )
    ids["event"] = t.ecs(
        "CreateSimulatedSystemEvents",
        RegionId=REGION,
        **{"InstanceId.1": ids["instance"]},
        EventType="SystemMaintenance.Reboot",
        NotBefore="2099-01-01T00:00:00Z",
    )["EventIdSet"]["EventId"][0]
    ids["task"] = t.ecs("ExportImage", RegionId=REGION, ImageId=ids["image"], OSSBucket="cross-exports")[
        "TaskId"
    ]
    ids["eni"] = t.ecs(
        "CreateNetworkInterface",
        RegionId=REGION,
        VSwitchId=ids["vswitch"],
        SecurityGroupId=ids["securitygroup"],
        NetworkInterfaceName=f"{label}-eni",
        Description=label,
    )["NetworkInterfaceId"]
    # a custom route table that the vSwitch uses, holding the custom route (the VPC's system
    # table is probed through DescribeVRouters and the VPC's own answers)
    ids["routetable"] = t.ok(
        "vpc",
        "CreateRouteTable",
        RegionId=REGION,
        VpcId=ids["vpc"],
        RouteTableName=f"{label}-table",
        Description=label,
    )["RouteTableId"]
    t.ok(
        "vpc",
        "AssociateRouteTable",
        RegionId=REGION,
        RouteTableId=ids["routetable"],
        VSwitchId=ids["vswitch"],
    )
    ids["routeentry"] = t.ok(
        "vpc",
        "CreateRouteEntry",
        RegionId=REGION,
        RouteTableId=ids["routetable"],
        DestinationCidrBlock="192.168.50.0/24",
        NextHopType="Instance",
        NextHopId=ids["instance"],
        RouteEntryName=f"{label}-route",
        Description=label,
    )["RouteEntryId"]
    eip = t.ok("vpc", "AllocateEipAddress", RegionId=REGION, Name=f"{label}-eip", Description=label)
    ids["eip"] = eip["AllocationId"]
    ids["launchtemplate"] = t.ok(
        "ecs",
        "CreateLaunchTemplate",
        RegionId=REGION,
        LaunchTemplateName=f"{label}-template",
        InstanceType="ecs.g7.large",
        VSwitchId=ids["vswitch"],
    )["LaunchTemplateId"]
    t.ok("vpc", "AssociateEipAddress", RegionId=REGION, AllocationId=ids["eip"], InstanceId=ids["instance"])
    gateway = t.ok(
        "vpc",
        "CreateNatGateway",
        RegionId=REGION,
        VpcId=ids["vpc"],
        VSwitchId=ids["vswitch"],
        Name=f"{label}-ngw",
        Description=label,
    )
    ids["natgateway"] = gateway["NatGatewayId"]
    ids["snattable"] = gateway["SnatTableIds"]["SnatTableId"][0]
    ids["forwardtable"] = gateway["ForwardTableIds"]["ForwardTableId"][0]
    nat_eip = t.ok("vpc", "AllocateEipAddress", RegionId=REGION)
    t.ok(
        "vpc",
        "AssociateEipAddress",
        RegionId=REGION,
        AllocationId=nat_eip["AllocationId"],
        InstanceId=ids["natgateway"],
        InstanceType="Nat",
    )
    ids["nat_ip"] = nat_eip["EipAddress"]
    ids["snatentry"] = t.ok(
        "vpc",
        "CreateSnatEntry",
        RegionId=REGION,
        SnatTableId=ids["snattable"],
        SourceVSwitchId=ids["vswitch"],
        SnatIp=ids["nat_ip"],
        SnatEntryName=f"{label}-snat",
    )["SnatEntryId"]
    ids["internal_ip"] = f"{cidr}.1.20"
    ids["forwardentry"] = t.ok(
        "vpc",
        "CreateForwardEntry",
        RegionId=REGION,
        ForwardTableId=ids["forwardtable"],
        ExternalIp=ids["nat_ip"],
        ExternalPort="80",
        IpProtocol="tcp",
        InternalIp=ids["internal_ip"],
        InternalPort="8080",
        ForwardEntryName=f"{label}-dnat",
    )["ForwardEntryId"]
    ids["policy"] = t.ecs(
        "CreateAutoSnapshotPolicy",
        regionId=REGION,
        autoSnapshotPolicyName=f"{label}-policy",
        timePoints='["3"]',
        repeatWeekdays='["1"]',
        retentionDays="7",
    )["AutoSnapshotPolicyId"]
    t.ecs(
        "ApplyAutoSnapshotPolicy",
        regionId=REGION,
        autoSnapshotPolicyId=ids["policy"],
        diskIds=json.dumps([ids["disk"]]),
    )
    for product, types in TAG_TYPES.items():
        for resource_type, kind in types.items():
            t.ok(
                product,
                "TagResources",
                RegionId=REGION,
                ResourceType=resource_type,
                **{"ResourceId.1": ids[kind]},
                **{"Tag.1.Key": "owner", "Tag.1.Value": label},
            )
    return t


# ---- plausible values for the parameters that are not IDs ----------------------------------


def plausible(b: Tenant, tmp: Path) -> dict[str, str]:
    """Values that get a request of B past validation (by parameter name, case-insensitive)."""
    values = {
        "regionid": REGION,
        "zoneid": b.ids["zone"],
        "instancetype": INSTANCE_TYPE,
        "cidrblock": "172.31.77.0/24",
        "destinationcidrblock": "192.168.77.0/24",
        "nexthoptype": "Instance",
        "newnexthoptype": "Instance",
        "ipprotocol": "tcp",
        "portrange": "80/80",
        "size": "20",
        "newsize": "40",
        "timepoints": '["5"]',
        "repeatweekdays": '["2"]',
        "retentiondays": "3",
        "inneraccesspolicy": "Accept",
        "destinationresource": "InstanceType",
        "publickeybody": PUBLIC_KEY,
        "ossbucket": str(tmp),
        "diskcategory": "cloud_essd",
        # B's own NAT gateway's EIP and an address of B's VPC, on ports B's entry does not take
        "snatip": b.ids["nat_ip"],
        "externalip": b.ids["nat_ip"],
        "internalip": b.ids["internal_ip"],
        "externalport": "81",
        "internalport": "8081",
        # the monitoring actions: the last hour, and the minutes still to come
        "starttime": (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:00Z"),
        "endtime": (datetime.now(UTC) + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:00Z"),
    }
    return values


def base_request(
    spec: ActionSpec, b: Tenant, values: dict[str, str], optional_ids: bool = True
) -> dict[str, str]:
    """Every required parameter and every parameter with a plausible value filled with B's own
    resources and values; optional ID parameters too unless `optional_ids` is false (some are
    alternatives to each other: JoinSecurityGroup's InstanceId and NetworkInterfaceId)."""
    request: dict[str, str] = {}
    for param in spec.params:
        if param.kind == "list" and param.item is not None and param.item.kind == "struct":
            continue  # items only where a slot needs one
        kind = kind_of(param.name)
        if kind in b.ids and not names_the_new_resource(spec, Slot(param)):
            if param.required or optional_ids:
                request.update(wire(Slot(param), b.ids[kind]))
        elif kind is None:
            value = values.get(param.name.lower())
            if param.required and param.choices:
                request[param.name] = param.choices[0]
            elif value is not None and (param.choices is None or value in param.choices):
                # (a name several actions share may take other values: AssociateEipAddress's
                # InstanceType is a kind of resource, not an instance type)
                request[param.name] = value
    return request


def struct_item(slot: Slot, values: dict[str, str]) -> dict[str, str]:
    """The other fields of a struct item, where the test knows a plausible value."""
    assert slot.field is not None and slot.param.item is not None
    return {
        f"{slot.param.name}.1.{f.name}": values[f.name.lower()]
        for f in slot.param.item.fields
        if f is not slot.field and f.name.lower() in values
    }


@dataclass(frozen=True)
class Probe:
    action: ActionSpec
    slot: Slot
    resource_type: str | None  # for ResourceId: the ResourceType it is sent with

    @property
    def label(self) -> str:
        typed = f" ({self.resource_type})" if self.resource_type else ""
        return f"{self.action.product}:{self.action.name} {self.slot.name}{typed}"


def probes(spec: ActionSpec) -> Iterator[Probe]:
    for slot in id_slots(spec):
        if slot.kind == "resource":
            for resource_type in TAG_TYPES[spec.product]:
                yield Probe(spec, slot, resource_type)
        else:
            yield Probe(spec, slot, None)


def probe_request(
    probe: Probe, b: Tenant, values: dict[str, str], value: str, optional_ids: bool
) -> dict[str, str]:
    request = base_request(probe.action, b, values, optional_ids)
    request.pop(probe.slot.param.name, None)
    for key in [k for k in request if k.startswith(f"{probe.slot.param.name}.")]:
        del request[key]
    if probe.slot.field is not None:
        request.update(struct_item(probe.slot, values))
    if probe.resource_type:
        request["ResourceType"] = probe.resource_type
    request.update(wire(probe.slot, value))
    return request


def target(probe: Probe, a: Tenant) -> str:
    kind = TAG_TYPES[probe.action.product][probe.resource_type] if probe.resource_type else probe.slot.kind
    return a.ids[kind]


# ---- A's state ---------------------------------------------------------------------------


def is_read(spec: ActionSpec) -> bool:
    return spec.name.startswith(("Describe", "List", "Get"))


def state_of(a: Tenant, specs: list[ActionSpec], values: dict[str, str]) -> dict[str, str]:
    """Every read action A can make about its own resources, answered."""
    state = {}
    for spec in specs:
        if not is_read(spec):
            continue
        request = base_request(spec, a, values)
        if any(p.name == "ResourceType" and p.required for p in spec.params):
            for resource_type, kind in TAG_TYPES[spec.product].items():
                answer = a.ask(
                    spec.product,
                    spec.name,
                    {**request, "ResourceType": resource_type, "ResourceId.1": a.ids[kind]},
                )
                state[f"{spec.name} {resource_type}"] = f"{answer.status} {answer.code} {stable(answer.body)}"
            continue
        answer = a.ask(spec.product, spec.name, request)
        state[spec.name] = f"{answer.status} {answer.code} {stable(answer.body)}"
    return state


# Fields that are the time of the request, not state (GetInstanceConsoleOutput's LastUpdateTime).
VOLATILE = {"LastUpdateTime"}


def stable(body: str) -> str:
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in VOLATILE}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return json.dumps(strip(json.loads(body)), sort_keys=True) if body else body


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return [
        f"{name}:\n    before {before[name][:600]}\n    after  {after.get(name, '')[:600]}"
        for name in before
        if before[name] != after.get(name)
    ]


# ---- the tests ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tenants(live: LiveServer) -> tuple[Tenant, Tenant]:
    return build(live, "alice", "10.71"), build(live, "bob", "10.72")


def test_every_action_answers_another_accounts_ids_as_ids_that_do_not_exist(
    tenants: tuple[Tenant, Tenant], tmp_path: Path
) -> None:
    a, b = tenants
    specs = Registry(all_tables()).all()
    values = plausible(b, tmp_path)
    a_values = {**values, "zoneid": a.ids["zone"]}
    failures: list[str] = []
    before = state_of(a, specs, a_values)
    probed = 0
    for spec in specs:
        for probe in probes(spec):
            real = target(probe, a)
            fake = made_up(real)
            for optional_ids in (True, False):
                theirs = b.ask(spec.product, spec.name, probe_request(probe, b, values, real, optional_ids))
                nobody = b.ask(spec.product, spec.name, probe_request(probe, b, values, fake, optional_ids))
                theirs, nobody = theirs.normalised(real, a, b), nobody.normalised(fake, a, b)
                probed += 1
                # XACCT_DUMP=file: every probe's answer, to see how far each request gets (coverage).
                if os.environ.get("XACCT_DUMP"):
                    with open(os.environ["XACCT_DUMP"], "a") as dump:
                        dump.write(
                            f"{probe.label} {optional_ids}: {theirs.status} {theirs.code} "
                            f"{theirs.message[:150]} {theirs.body[:100]}\n"
                        )
                if theirs != nobody:
                    failures.append(f"{probe.label}: A's ID answers {theirs}, a made-up one {nobody}")
                elif SECRET in json.dumps(theirs.__dict__):
                    failures.append(f"{probe.label}: the answer shows A's resource: {theirs}")
        if not is_read(spec) and list(probes(spec)):
            after = state_of(a, specs, a_values)
            failures += [f"{spec.name} changed A's {change}" for change in changes(before, after)]
            before = after
    assert probed > 100
    assert not failures, f"{len(failures)} leaks:\n" + "\n".join(failures)


def test_tags_of_same_named_key_pairs_stay_with_their_account(live: LiveServer) -> None:
    """Key pairs are named per account: B tagging and untagging its `shared` leaves A's alone."""
    name = f"shared-{uuid.uuid4().hex[:8]}"
    a, b = (
        Tenant(n, Credentials(live.endpoint, REGION, *live.create_account(f"{n}-{uuid.uuid4().hex[:8]}")))
        for n in ("ta", "tb")
    )
    for t in (a, b):
        t.ecs("ImportKeyPair", RegionId=REGION, KeyPairName=name, PublicKeyBody=PUBLIC_KEY)
    a.ecs(
        "TagResources",
        RegionId=REGION,
        ResourceType="keypair",
        **{
            "ResourceId.1": name,
            "Tag.1.Key": "env",
            "Tag.1.Value": "prod",
            "Tag.2.Key": "team",
            "Tag.2.Value": "a",
        },
    )

    def tags(t: Tenant) -> list[tuple[str, str]]:
        body = t.ecs("ListTagResources", RegionId=REGION, ResourceType="keypair", **{"ResourceId.1": name})
        return [(r["TagKey"], r["TagValue"]) for r in body["TagResources"]["TagResource"]]

    mine = [("env", "prod"), ("team", "a")]
    b.ecs(
        "TagResources",
        RegionId=REGION,
        ResourceType="keypair",
        **{"ResourceId.1": name, "Tag.1.Key": "env", "Tag.1.Value": "dev"},
    )
    b.ecs(
        "AddTags",
        RegionId=REGION,
        ResourceType="keypair",
        ResourceId=name,
        **{"Tag.1.Key": "team", "Tag.1.Value": "b"},
    )
    assert tags(a) == mine and tags(b) == [("env", "dev"), ("team", "b")]
    b.ecs("RemoveTags", RegionId=REGION, ResourceType="keypair", ResourceId=name, **{"Tag.1.Key": "team"})
    b.ecs("UntagResources", RegionId=REGION, ResourceType="keypair", All="true", **{"ResourceId.1": name})
    assert tags(a) == mine and tags(b) == []
    b.ecs("DeleteKeyPairs", RegionId=REGION, KeyPairNames=json.dumps([name]))
    assert tags(a) == mine
    b.ecs("ImportKeyPair", RegionId=REGION, KeyPairName=name, PublicKeyBody=PUBLIC_KEY)
    assert tags(b) == [], "a key pair made again does not inherit its earlier namesake's tags"
