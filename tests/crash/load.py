"""The mixed load: which request a worker sends next, and what the workers know exists.

Creates carry a ClientToken and a name of their own (`r3w1n17`), so that after a crash the
resources one request made can be counted by name: a retry must not add to them."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .client import Answer
from .world import World

ZONE = "cn-hangzhou-h"
INSTANCE_TYPE = "ecs.g7.large"
BASE_VPC_CIDR = "10.0.0.0/16"
BASE_VSWITCH_CIDR = "10.0.1.0/24"  # CreateVSwitch in the load draws 10.0.2-250.0/24
# Caps on what the load keeps alive: at a cap, a create of that kind becomes a delete.
CAPS = {"instance": 12, "disk": 24, "snapshot": 30, "image": 10, "vpc": 5, "vswitch": 8, "sg": 8}


def _ids_run(body: dict[str, Any]) -> list[str]:
    return [str(i) for i in body.get("InstanceIdSets", {}).get("InstanceIdSet", [])]


def _ids_of(field_name: str) -> Callable[[dict[str, Any]], list[str]]:
    return lambda body: [str(body[field_name])] if body.get(field_name) else []


@dataclass(frozen=True)
class Create:
    kind: str
    product: str
    ids: Callable[[dict[str, Any]], list[str]]


CREATES: dict[str, Create] = {
    "RunInstances": Create("instance", "ecs", _ids_run),
    "CreateInstance": Create("instance", "ecs", _ids_of("InstanceId")),
    "CreateDisk": Create("disk", "ecs", _ids_of("DiskId")),
    "CreateSnapshot": Create("snapshot", "ecs", _ids_of("SnapshotId")),
    "CreateImage": Create("image", "ecs", _ids_of("ImageId")),
    "CreateVpc": Create("vpc", "vpc", _ids_of("VpcId")),
    "CreateVSwitch": Create("vswitch", "vpc", _ids_of("VSwitchId")),
    "CreateSecurityGroup": Create("sg", "ecs", _ids_of("SecurityGroupId")),
}
DELETES: dict[str, tuple[str, str, str]] = {  # action -> (kind, product, id parameter)
    "DeleteInstance": ("instance", "ecs", "InstanceId"),
    "DeleteDisk": ("disk", "ecs", "DiskId"),
    "DeleteSnapshot": ("snapshot", "ecs", "SnapshotId"),
    "DeleteImage": ("image", "ecs", "ImageId"),
    "DeleteVpc": ("vpc", "vpc", "VpcId"),
    "DeleteVSwitch": ("vswitch", "vpc", "VSwitchId"),
    "DeleteSecurityGroup": ("sg", "ecs", "SecurityGroupId"),
}
POWER = ("StartInstance", "StopInstance", "RebootInstance")
# action -> weight; deletes are drawn per kind below
MIX: dict[str, int] = {
    "RunInstances": 6,
    "CreateInstance": 3,
    "CreateDisk": 5,
    "CreateSnapshot": 7,
    "CreateImage": 4,
    "CreateVpc": 2,
    "CreateVSwitch": 2,
    "CreateSecurityGroup": 2,
    "StartInstance": 4,
    "StopInstance": 4,
    "RebootInstance": 3,
    "AttachDisk": 3,
    "DetachDisk": 2,
    "DeleteInstance": 4,
    "DeleteInstances": 1,
    "DeleteDisk": 4,
    "DeleteSnapshot": 4,
    "DeleteImage": 2,
    "DeleteVpc": 1,
    "DeleteVSwitch": 1,
    "DeleteSecurityGroup": 1,
}


@dataclass
class Op:
    """One request and what became of it."""

    round: int
    name: str  # unique per request; also the name of what a create makes
    product: str
    action: str
    params: dict[str, str]
    targets: tuple[str, ...] = ()  # the IDs a non-create acts on
    outcome: str = "pending"  # ok | refused (4xx) | error (5xx) | unknown (no answer)
    answer: Answer | None = None
    retried: bool = False

    @property
    def create(self) -> Create | None:
        return CREATES.get(self.action)

    @property
    def expected(self) -> int:
        """How many resources this create makes when it succeeds."""
        return int(self.params.get("Amount", "1"))

    def ids(self) -> list[str]:
        create = self.create
        return create.ids(self.answer.body) if create and self.answer and self.answer.ok else []

    def record(self, answer: Answer) -> None:
        self.answer = answer
        self.outcome = "ok" if answer.ok else "error" if answer.status >= 500 else "refused"


@dataclass
class Base:
    """The fixed network instances launch into, and the system image."""

    vpc_id: str
    vswitch_id: str
    group_id: str
    image_id: str


@dataclass
class Pool:
    """What the load believes exists (the last listing, plus acknowledged creates, minus acknowledged
    deletes). Shared by the workers under one lock."""

    base: Base
    ids: dict[str, set[str]] = field(default_factory=dict)
    system_disks: set[str] = field(default_factory=set)
    system_snapshots: set[str] = field(default_factory=set)
    attached: dict[str, str] = field(default_factory=dict)  # data disk -> instance
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self, world: World) -> None:
        base = {self.base.vpc_id, self.base.vswitch_id, self.base.group_id}
        with self.lock:
            self.ids = {kind: {rid for rid in rows if rid not in base} for kind, rows in world.rows.items()}
            disks = world.rows.get("disk", {})
            self.system_disks = {
                rid for rid, row in disks.items() if str(row.get("Type", "")).lower() == "system"
            }
            self.system_snapshots = {
                rid
                for rid, row in world.rows.get("snapshot", {}).items()
                if row.get("SourceDiskId") in self.system_disks
            }
            self.attached = {
                rid: str(row["InstanceId"])
                for rid, row in disks.items()
                if row.get("InstanceId") and rid not in self.system_disks
            }

    def learn(self, op: Op) -> None:
        """Fold an acknowledged answer in."""
        if op.outcome != "ok":
            return
        with self.lock:
            if create := op.create:
                self.ids.setdefault(create.kind, set()).update(op.ids())
                if op.action == "CreateSnapshot" and op.params["DiskId"] in self.system_disks:
                    self.system_snapshots.update(op.ids())
            elif op.action in DELETES or op.action == "DeleteInstances":
                for kind_ids in self.ids.values():
                    kind_ids.difference_update(op.targets)
            elif op.action == "AttachDisk":
                self.attached[op.params["DiskId"]] = op.params["InstanceId"]
            elif op.action == "DetachDisk":
                self.attached.pop(op.params["DiskId"], None)


class Generator:
    """Draws the next request of one worker from its own seeded stream."""

    def __init__(self, pool: Pool, round_no: int, worker: int, rng: random.Random) -> None:
        self.pool = pool
        self.round = round_no
        self.worker = worker
        self.rng = rng
        self.count = 0

    def _pick(self, kind: str, among: set[str] | None = None) -> str | None:
        with self.pool.lock:
            choices = sorted(among if among is not None else self.pool.ids.get(kind, set()))
        return self.rng.choice(choices) if choices else None

    def _size(self, kind: str) -> int:
        with self.pool.lock:
            return len(self.pool.ids.get(kind, set()))

    def next(self) -> Op:
        self.count += 1
        name = f"r{self.round}w{self.worker}n{self.count}"
        for _ in range(20):  # draw until an action has something to act on
            action = self.rng.choices(list(MIX), weights=list(MIX.values()))[0]
            create = CREATES.get(action)
            if create and self._size(create.kind) >= CAPS[create.kind]:
                action = next(a for a, (kind, _, _) in DELETES.items() if kind == create.kind)
            op = self._build(action, name)
            if op is not None:
                return op
        return self._build("CreateVpc", name) or Op(self.round, name, "vpc", "DescribeVpcs", {})

    def _build(self, action: str, name: str) -> Op | None:
        base, rng = self.pool.base, self.rng
        token = {"ClientToken": f"crash-{name}"}
        create = CREATES.get(action)
        params: dict[str, str]
        if action == "RunInstances":
            params = {
                "ImageId": base.image_id,
                "InstanceType": INSTANCE_TYPE,
                "VSwitchId": base.vswitch_id,
                "SecurityGroupId": base.group_id,
                "InstanceName": name,
                "Amount": str(rng.randint(1, 4)),
            }
        elif action == "CreateInstance":
            params = {
                "ImageId": base.image_id,
                "InstanceType": INSTANCE_TYPE,
                "VSwitchId": base.vswitch_id,
                "SecurityGroupId": base.group_id,
                "InstanceName": name,
            }
        elif action == "CreateDisk":
            params = {
                "ZoneId": ZONE,
                "DiskCategory": "cloud_essd",
                "Size": str(rng.choice([20, 40])),
                "DiskName": name,
            }
        elif action == "CreateSnapshot":
            if (disk := self._pick("disk")) is None:
                return None
            params = {"DiskId": disk, "SnapshotName": name}
        elif action == "CreateImage":
            source = self._pick("snapshot", self.pool.system_snapshots) if rng.random() < 0.6 else None
            if source is not None:
                params = {"SnapshotId": source, "ImageName": name}
            elif (instance := self._pick("instance")) is not None:
                params = {"InstanceId": instance, "ImageName": name}
            else:
                return None
        elif action == "CreateVpc":
            params = {"CidrBlock": rng.choice(["172.16.0.0/16", "192.168.0.0/16"]), "VpcName": name}
        elif action == "CreateVSwitch":
            params = {
                "VpcId": base.vpc_id,
                "ZoneId": ZONE,
                "CidrBlock": f"10.0.{rng.randint(2, 250)}.0/24",
                "VSwitchName": name,
            }
        elif action == "CreateSecurityGroup":
            params = {"VpcId": base.vpc_id, "SecurityGroupName": name}
        else:
            return self._build_other(action, name)
        assert create is not None
        return Op(self.round, name, create.product, action, {**params, **token})

    def _build_other(self, action: str, name: str) -> Op | None:
        rng = self.rng
        if action in POWER:
            if (instance := self._pick("instance")) is None:
                return None
            params = {"InstanceId": instance}
            if action != "StartInstance" and rng.random() < 0.5:
                params["ForceStop"] = "true"
            return Op(self.round, name, "ecs", action, params, (instance,))
        if action == "DeleteInstances":
            with self.pool.lock:
                instances = sorted(self.pool.ids.get("instance", set()))
            if not instances:
                return None
            chosen = rng.sample(instances, min(len(instances), rng.randint(1, 3)))
            params = {f"InstanceId.{i}": iid for i, iid in enumerate(chosen, 1)}
            return Op(self.round, name, "ecs", action, {**params, "Force": "true"}, tuple(chosen))
        if action == "AttachDisk":
            with self.pool.lock:
                free = self.pool.ids.get("disk", set()) - self.pool.system_disks - set(self.pool.attached)
            disk, instance = self._pick("disk", free), self._pick("instance")
            if disk is None or instance is None:
                return None
            return Op(self.round, name, "ecs", action, {"DiskId": disk, "InstanceId": instance}, (disk,))
        if action == "DetachDisk":
            with self.pool.lock:
                attached = dict(self.pool.attached)
            if not attached:
                return None
            disk = rng.choice(sorted(attached))
            params = {"DiskId": disk, "InstanceId": attached[disk]}
            return Op(self.round, name, "ecs", action, params, (disk,))
        kind, product, id_param = DELETES[action]
        with self.pool.lock:
            among = self.pool.ids.get(kind, set()) - (self.pool.system_disks if kind == "disk" else set())
        if (target := self._pick(kind, among)) is None:
            return None
        params = {id_param: target}
        if action == "DeleteInstance":
            params["Force"] = "true"
        return Op(self.round, name, product, action, params, (target,))
