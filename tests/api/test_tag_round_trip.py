"""Tags round-trip over every resource type either product tags, through the official SDKs:
given at creation (where the Create action documents Tag.N), added with TagResources, seen in
the type's Describe action and in ListTagResources, filtering that Describe, removed with
UntagResources (UnTagResources in the VPC product) and gone.

The types are the ones nubes' tag store accepts per product (nubes.domain.tags.PRODUCT_TYPES):
a type added there without a way to make it here fails test_every_taggable_type_is_covered."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em
from alibabacloud_vpc20160428 import models as vm

from nubes.actions import all_tables
from nubes.catalog.official_api import official_actions
from nubes.domain.tags import PRODUCT_TYPES, VPC_RESOURCE_TYPES

from ..conftest import LiveServer, tea_ecs, tea_vpc
from .test_instances_api import Lab, error_of
from .test_vpc_api import REGION, ZONE, wait_available, wait_vswitch

# Types the store accepts whose resources nubes cannot make yet: the action that would make them.
UNMADE = {"ddh": "AllocateDedicatedHosts"}

Pairs = list[tuple[str, str]]


@dataclass(frozen=True)
class Kind:
    """How the test reaches one taggable type: the Create action that makes it (None: made
    with another resource), its Describe action and the parameter that names one, and the
    field of a described item that holds its id."""

    product: str
    type: str
    create: str | None
    describe: str
    id_param: str
    id_field: str
    id_format: Callable[[str], Any] = str
    # Where the kind's own tags go at creation and in the Describe filter (a launch template's
    # Tag.N are the tags of the instances it launches; its own are TemplateTag.N).
    tag_param: str = "Tag"

    @property
    def wire_type(self) -> str:
        return VPC_RESOURCE_TYPES[self.type] if self.product == "vpc" else self.type

    @property
    def creation_tags(self) -> bool:
        """The Create action documents Tag.N (the official catalog says)."""
        return (
            self.create is not None
            and f"{self.tag_param}.N.Key" in official_actions(self.product)[self.create]["request"]
        )


def _json_list(value: str) -> str:
    return f'["{value}"]'


KINDS = {
    k.type: k
    for k in (
        Kind("ecs", "instance", "RunInstances", "DescribeInstances", "InstanceIds", "InstanceId", _json_list),
        Kind("ecs", "disk", "CreateDisk", "DescribeDisks", "DiskIds", "DiskId", _json_list),
        Kind(
            "ecs", "snapshot", "CreateSnapshot", "DescribeSnapshots", "SnapshotIds", "SnapshotId", _json_list
        ),
        Kind("ecs", "image", "CreateImage", "DescribeImages", "ImageId", "ImageId"),
        Kind(
            "ecs",
            "securitygroup",
            "CreateSecurityGroup",
            "DescribeSecurityGroups",
            "SecurityGroupId",
            "SecurityGroupId",
        ),
        Kind(
            "ecs",
            "eni",
            "CreateNetworkInterface",
            "DescribeNetworkInterfaces",
            "NetworkInterfaceId",
            "NetworkInterfaceId",
            lambda v: [v],
        ),
        Kind("ecs", "keypair", "CreateKeyPair", "DescribeKeyPairs", "KeyPairName", "KeyPairName"),
        Kind(
            "ecs",
            "launchtemplate",
            "CreateLaunchTemplate",
            "DescribeLaunchTemplates",
            "LaunchTemplateId",
            "LaunchTemplateId",
            lambda v: [v],
            tag_param="TemplateTag",
        ),
        Kind("vpc", "vpc", "CreateVpc", "DescribeVpcs", "VpcId", "VpcId"),
        Kind("vpc", "vswitch", "CreateVSwitch", "DescribeVSwitches", "VSwitchId", "VSwitchId"),
        Kind("vpc", "routetable", None, "DescribeRouteTableList", "RouteTableId", "RouteTableId"),
        Kind("vpc", "eip", "AllocateEipAddress", "DescribeEipAddresses", "AllocationId", "AllocationId"),
        Kind("vpc", "natgateway", "CreateNatGateway", "DescribeNatGateways", "NatGatewayId", "NatGatewayId"),
    )
}


class World:
    """One account with what the taggable resources need (a network, a running instance, a
    snapshot of its system disk), made on first use; and the official clients of both products."""

    def __init__(self, live: LiveServer, key: tuple[str, str]) -> None:
        self.live, self.key = live, key
        self.ecs = tea_ecs(live, key)
        self.vpc = tea_vpc(live, key)

    @cached_property
    def lab(self) -> Lab:
        return Lab(self.live, self.key, "10.91.0.0/16")

    @cached_property
    def instance_id(self) -> str:
        [instance_id] = self.lab.run()
        assert self.lab.wait(instance_id, "Running") == "Running"
        return instance_id

    @cached_property
    def system_snapshot(self) -> str:
        system = self.ecs.describe_disks(
            em.DescribeDisksRequest(region_id=REGION, instance_id=self.instance_id, disk_type="system")
        ).body.disks.disk[0]
        snapshot_id = self.ecs.create_snapshot(
            em.CreateSnapshotRequest(disk_id=system.disk_id)
        ).body.snapshot_id
        self.until(lambda: self.described("snapshot", snapshot_id)["Status"] == "accomplished")
        return str(snapshot_id)

    def call(self, product: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """An action through the product's official client, by wire names both ways."""
        client, models = (self.ecs, em) if product == "ecs" else (self.vpc, vm)
        request = getattr(models, f"{action}Request")().from_map({"RegionId": REGION, **params})
        method = getattr(client, official_actions(product)[action]["sdk_method"])
        body: dict[str, Any] = method(request).body.to_map()
        return body

    def until(self, ready: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            assert time.monotonic() < deadline, "the resource did not settle"
            time.sleep(0.05)

    # ---- making one resource of each type, with its creation tags -------------------------------

    def make(self, kind: Kind, tags: Pairs) -> str:
        wire_tags = {kind.tag_param: [{"Key": k, "Value": v} for k, v in tags]} if tags else {}
        if kind.type == "routetable":
            return str(self.call("vpc", "CreateVpc", {"CidrBlock": "10.92.0.0/16"})["RouteTableId"])
        body = self.call(kind.product, str(kind.create), {**self.create_params(kind.type), **wire_tags})
        if kind.type == "instance":
            return str(body["InstanceIdSets"]["InstanceIdSet"][0])
        resource_id = str(body[kind.id_field])
        self.settle(kind.type, resource_id)
        return resource_id

    def create_params(self, kind: str) -> dict[str, Any]:
        lab = self.lab
        made: dict[str, Callable[[], dict[str, Any]]] = {
            "instance": lambda: {
                "ImageId": lab.image_id,
                "InstanceType": "ecs.g7.large",
                "VSwitchId": lab.vswitch_id,
                "SecurityGroupId": lab.group_id,
            },
            "disk": lambda: {"ZoneId": ZONE, "Size": 20, "DiskCategory": "cloud_essd"},
            "snapshot": lambda: {"DiskId": self.make(KINDS["disk"], [])},
            "image": lambda: {"SnapshotId": self.system_snapshot},
            "securitygroup": lambda: {"VpcId": lab.vpc_id},
            "eni": lambda: {"VSwitchId": lab.vswitch_id, "SecurityGroupId": lab.group_id},
            "keypair": lambda: {"KeyPairName": f"kp-{uuid.uuid4().hex[:8]}"},
            "launchtemplate": lambda: {"LaunchTemplateName": f"lt-{uuid.uuid4().hex[:8]}"},
            "vpc": lambda: {"CidrBlock": "10.93.0.0/16"},
            "vswitch": lambda: {"VpcId": lab.vpc_id, "ZoneId": ZONE, "CidrBlock": self.free_cidr()},
            "eip": dict,
            "natgateway": lambda: {"VpcId": lab.vpc_id, "VSwitchId": lab.vswitch_id},
        }
        return made[kind]()

    def free_cidr(self) -> str:
        self._subnet = getattr(self, "_subnet", 100) + 1
        return f"10.91.{self._subnet}.0/24"

    def settle(self, kind: str, resource_id: str) -> None:
        """Wait until a new resource can be worked on (and DescribeImages lists it)."""
        if kind == "vpc":
            wait_available(self.vpc, resource_id)
        elif kind == "vswitch":
            wait_vswitch(self.vpc, resource_id)
        elif kind == "disk":
            self.until(lambda: self.described("disk", resource_id)["Status"] == "Available")
        elif kind == "image":
            self.until(lambda: bool(self.describe(KINDS["image"], {"ImageId": resource_id, "Status": "ALL"})))
            self.until(
                lambda: self.described("image", resource_id, {"Status": "ALL"})["Status"] == "Available"
            )

    # ---- reading ---------------------------------------------------------------------------------

    def describe(self, kind: Kind, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The described items of the kind's Describe action (wherever its answer lists them)."""
        return list(items_with(self.call(kind.product, kind.describe, params), kind.id_field))

    def described(
        self, kind_name: str, resource_id: str, extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        kind = KINDS[kind_name]
        [item] = self.describe(kind, {kind.id_param: kind.id_format(resource_id), **(extra or {})})
        return item

    def ids_tagged(self, kind: Kind, tags: list[tuple[str, str | None]]) -> set[str]:
        """The ids the kind's Describe action answers for a Tag.N filter alone."""
        wire = [{"Key": k, **({"Value": v} if v is not None else {})} for k, v in tags]
        return {str(i[kind.id_field]) for i in self.describe(kind, {kind.tag_param: wire})}

    def listed(self, kind: Kind, resource_id: str) -> Pairs:
        body = self.call(
            kind.product, "ListTagResources", {"ResourceType": kind.wire_type, "ResourceId": [resource_id]}
        )
        rows = body["TagResources"]["TagResource"]
        assert all(r["ResourceId"] == resource_id and r["ResourceType"] == kind.wire_type for r in rows)
        return [(r["TagKey"], r["TagValue"]) for r in rows]

    def shown(self, kind: Kind, resource_id: str) -> Pairs:
        """The Tags the kind's Describe action shows on the resource (ECS's TagKey/TagValue or the
        VPC product's Key/Value)."""
        item = self.described(kind.type, resource_id)
        rows = (item.get("Tags") or {}).get("Tag") or []
        return [(r.get("TagKey", r.get("Key")), r.get("TagValue", r.get("Value"))) for r in rows]

    # ---- writing -----------------------------------------------------------------------------------

    def tag(self, kind: Kind, resource_id: str, tags: Pairs) -> None:
        self.call(
            kind.product,
            "TagResources",
            {
                "ResourceType": kind.wire_type,
                "ResourceId": [resource_id],
                "Tag": [{"Key": k, "Value": v} for k, v in tags],
            },
        )

    def untag(self, kind: Kind, resource_id: str, keys: list[str] | None) -> None:
        action = "UnTagResources" if kind.product == "vpc" else "UntagResources"
        params: dict[str, Any] = {"ResourceType": kind.wire_type, "ResourceId": [resource_id]}
        params.update({"TagKey": keys} if keys is not None else {"All": True})
        self.call(kind.product, action, params)


def items_with(node: Any, id_field: str) -> Iterator[dict[str, Any]]:
    """The dicts of a Describe answer that carry the id field, wherever the answer nests them."""
    if isinstance(node, dict):
        if id_field in node and "Tags" in node:
            yield node
            return
        for child in node.values():
            yield from items_with(child, id_field)
    elif isinstance(node, list):
        for child in node:
            yield from items_with(child, id_field)


@pytest.fixture(scope="module")
def world(live: LiveServer) -> World:
    return World(live, live.create_account(f"t-tags-{uuid.uuid4().hex[:10]}"))


def test_every_taggable_type_is_covered() -> None:
    taggable = {t for types in PRODUCT_TYPES.values() for t in types}
    assert set(KINDS) == taggable - set(UNMADE)
    implemented = {(s.product, s.name) for table in all_tables() for s in table.specs}
    for kind in KINDS.values():
        assert kind.wire_type.lower() == kind.type
        assert (kind.product, kind.describe) in implemented
        assert kind.create is None or (kind.product, kind.create) in implemented
        assert kind.type in PRODUCT_TYPES[kind.product]
    # when one of these can be made, it joins KINDS
    assert not {("ecs", action) for action in UNMADE.values()} & implemented


@pytest.mark.parametrize("name", sorted(KINDS))
def test_tags_round_trip(world: World, name: str) -> None:
    kind = KINDS[name]
    unique = uuid.uuid4().hex[:8]
    at_creation = [("made", f"{name}-{unique}")] if kind.creation_tags else []
    resource_id = world.make(kind, at_creation)
    assert world.listed(kind, resource_id) == at_creation
    assert world.shown(kind, resource_id) == at_creation

    added = [("team", f"t-{unique}"), ("env", "round-trip")]
    world.tag(kind, resource_id, added)
    assert world.listed(kind, resource_id) == at_creation + added
    assert world.shown(kind, resource_id) == at_creation + added

    # Tag.N filters the Describe action: every tag must be carried; a key alone matches any value
    assert world.ids_tagged(kind, [("team", f"t-{unique}")]) == {resource_id}
    assert world.ids_tagged(kind, [("team", f"t-{unique}"), ("env", None)]) == {resource_id}
    assert world.ids_tagged(kind, [("team", f"t-{unique}"), ("env", "other")]) == set()
    assert world.ids_tagged(kind, [("team", f"t-{unique}"), ("absent", None)]) == set()

    # overwrite a value, then remove by key, then every tag
    world.tag(kind, resource_id, [("env", "changed")])
    assert world.shown(kind, resource_id) == [*at_creation, added[0], ("env", "changed")]
    world.untag(kind, resource_id, ["team"])
    assert world.listed(kind, resource_id) == [*at_creation, ("env", "changed")]
    assert world.ids_tagged(kind, [("team", f"t-{unique}")]) == set()
    world.untag(kind, resource_id, None)
    assert world.listed(kind, resource_id) == []
    assert world.shown(kind, resource_id) == []
    assert resource_id not in world.ids_tagged(kind, [("env", "changed")])


def test_vpc_tag_limits_and_errors(world: World) -> None:
    kind = KINDS["vswitch"]
    vswitch_id = world.make(kind, [("k0", "v")])
    world.tag(kind, vswitch_id, [(f"k{i}", "v") for i in range(1, 20)])
    over = error_of(lambda: world.tag(kind, vswitch_id, [("k20", "v")]))
    assert over.code == "InvalidTagCount"
    assert len(world.listed(kind, vswitch_id)) == 20
    # an ECS type is not a VPC one, nor the other way round: neither product's tag actions
    # reach the other's resources
    for product, resource_type in (("vpc", "instance"), ("ecs", "vswitch")):
        request = {"ResourceType": resource_type, "ResourceId": [vswitch_id], "Tag": [{"Key": "a"}]}
        wrong_type = error_of(lambda: world.call(product, "TagResources", request))  # noqa: B023
        assert wrong_type.code == "InvalidResourceType.NotFound"
    # the VPC product's types are case-insensitive on the wire
    world.call("vpc", "UnTagResources", {"ResourceType": "vSwitch", "ResourceId": [vswitch_id], "All": True})
    assert world.listed(kind, vswitch_id) == []
    missing = error_of(lambda: world.call("vpc", "ListTagResources", {"ResourceType": "VPC"}))
    assert missing.code.startswith("MissingParameter")
    # a bad tag refuses the creation as a whole
    before = len(world.describe(KINDS["vpc"], {"PageSize": 50}))
    bad = error_of(lambda: world.make(KINDS["vpc"], [("aliyun:reserved", "x")]))
    assert bad.code.startswith("InvalidTagKey")
    assert len(world.describe(KINDS["vpc"], {"PageSize": 50})) == before


def test_ecs_list_tag_resources_tag_filter(world: World) -> None:
    kind = KINDS["keypair"]
    unique = uuid.uuid4().hex[:8]
    first, second = world.make(kind, []), world.make(kind, [])
    world.tag(kind, first, [(f"tier-{unique}", "web"), ("shared", unique)])
    world.tag(kind, second, [(f"tier-{unique}", "db"), ("shared", unique)])

    def listed(filters: list[dict[str, Any]]) -> set[str]:
        body = world.call("ecs", "ListTagResources", {"ResourceType": "keypair", "TagFilter": filters})
        return {r["ResourceId"] for r in body["TagResources"]["TagResource"]}

    key = f"tier-{unique}"
    assert listed([{"TagKey": key}]) == {first, second}
    assert listed([{"TagKey": key, "TagValues": ["web"]}]) == {first}
    assert listed([{"TagKey": key, "TagValues": ["web", "db"]}]) == {first, second}
    assert listed([{"TagKey": key, "TagValues": ["web"]}, {"TagKey": "shared", "TagValues": [unique]}]) == {
        first
    }
    assert listed([{"TagKey": key, "TagValues": ["cache"]}]) == set()
    both = error_of(
        lambda: world.call(
            "ecs",
            "ListTagResources",
            {"ResourceType": "keypair", "Tag": [{"Key": "a"}], "TagFilter": [{"TagKey": key}]},
        )
    )
    assert both.code.startswith("InvalidParameter")


# The Delete action of the types whose tags the test sees go with them, and its id parameter.
DELETES = {
    "eni": ("DeleteNetworkInterface", "NetworkInterfaceId"),
    "securitygroup": ("DeleteSecurityGroup", "SecurityGroupId"),
    "vswitch": ("DeleteVSwitch", "VSwitchId"),
    "vpc": ("DeleteVpc", "VpcId"),
    "eip": ("ReleaseEipAddress", "AllocationId"),
    "natgateway": ("DeleteNatGateway", "NatGatewayId"),
}


@pytest.mark.parametrize("name", sorted(DELETES))
def test_tags_go_with_their_resource(world: World, name: str) -> None:
    kind = KINDS[name]
    resource_id = world.make(kind, [])
    world.tag(kind, resource_id, [("gone", "soon")])
    assert world.listed(kind, resource_id) == [("gone", "soon")]
    action, id_param = DELETES[name]
    world.call(kind.product, action, {id_param: resource_id})
    assert world.listed(kind, resource_id) == []
