"""What the server says exists: every resource kind the crash load touches, listed through the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .client import Answer, Client


@dataclass(frozen=True)
class Kind:
    """A resource kind as its Describe action lists it, and which of its statuses are passing ones."""

    name: str
    product: str
    describe: str
    path: tuple[str, str]  # {"Instances": {"Instance": [...]}}
    id_field: str
    name_field: str
    transitional: frozenset[str] = frozenset()
    failed: frozenset[str] = frozenset()  # nothing fails in emulator mode: such a status is a finding
    extra: tuple[tuple[str, str], ...] = ()
    page_size: int = 50


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "instance",
            "ecs",
            "DescribeInstances",
            ("Instances", "Instance"),
            "InstanceId",
            "InstanceName",
            frozenset({"Pending", "Starting", "Stopping"}),
        ),
        Kind(
            "disk",
            "ecs",
            "DescribeDisks",
            ("Disks", "Disk"),
            "DiskId",
            "DiskName",
            frozenset({"Creating", "Attaching", "Detaching", "ReIniting"}),
        ),
        Kind(
            "snapshot",
            "ecs",
            "DescribeSnapshots",
            ("Snapshots", "Snapshot"),
            "SnapshotId",
            "SnapshotName",
            frozenset({"progressing"}),
            frozenset({"failed"}),
        ),
        # DescribeImages shows only Available images unless asked for the others
        Kind(
            "image",
            "ecs",
            "DescribeImages",
            ("Images", "Image"),
            "ImageId",
            "ImageName",
            frozenset({"Creating", "Waiting"}),
            frozenset({"CreateFailed"}),
            (
                ("ImageOwnerAlias", "self"),
                ("Status", "Creating,Waiting,Available,UnAvailable,CreateFailed,Deprecated"),
            ),
        ),
        Kind("vpc", "vpc", "DescribeVpcs", ("Vpcs", "Vpc"), "VpcId", "VpcName", frozenset({"Pending"})),
        Kind(
            "vswitch",
            "vpc",
            "DescribeVSwitches",
            ("VSwitches", "VSwitch"),
            "VSwitchId",
            "VSwitchName",
            frozenset({"Pending"}),
        ),
        Kind(
            "sg",
            "ecs",
            "DescribeSecurityGroups",
            ("SecurityGroups", "SecurityGroup"),
            "SecurityGroupId",
            "SecurityGroupName",
        ),
    )
}

Row = dict[str, Any]


@dataclass
class World:
    """One listing of every kind: kind -> id -> row."""

    rows: dict[str, dict[str, Row]] = field(default_factory=dict)

    def find(self, resource_id: str) -> Row | None:
        for by_id in self.rows.values():
            if resource_id in by_id:
                return by_id[resource_id]
        return None

    def named(self, kind: str, name: str) -> list[str]:
        field_name = KINDS[kind].name_field
        return sorted(rid for rid, row in self.rows.get(kind, {}).items() if row.get(field_name) == name)

    def status(self, kind: str, resource_id: str) -> str:
        return str(self.rows.get(kind, {}).get(resource_id, {}).get("Status", ""))


class ListingFailed(Exception):
    def __init__(self, answer: Answer, action: str) -> None:
        super().__init__(f"{action} answered {answer.status}: {answer.body}")
        self.answer = answer
        self.action = action


def observe(client: Client) -> World:
    """List everything (paged). A non-200 answer raises ListingFailed; no answer raises Unreachable."""
    world = World()
    for kind in KINDS.values():
        rows: dict[str, Row] = {}
        page = 1
        while True:
            params = {**dict(kind.extra), "PageNumber": str(page), "PageSize": str(kind.page_size)}
            answer = client.call(kind.product, kind.describe, params)
            if not answer.ok:
                raise ListingFailed(answer, kind.describe)
            items = answer.body.get(kind.path[0], {}).get(kind.path[1], [])
            rows.update({str(item[kind.id_field]): item for item in items})
            if not items or len(rows) >= int(answer.body.get("TotalCount", 0)):
                break
            page += 1
        world.rows[kind.name] = rows
    return world
