"""The checks a launch shares with the instance changes: user data, instance type, security
groups, deployment set, disk sizes and the auto-release time."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from nubes import errors
from nubes.catalog.model import Catalog, InstanceType
from nubes.domain.common import Scope, owned
from nubes.domain.disk_categories import CATEGORIES, DATA, SYSTEM, size_range
from nubes.domain.instance_states import WANT_DELETED
from nubes.store.models import (
    DeploymentSet,
    Image,
    Instance,
    SecurityGroup,
)

USER_DATA_MAX_BYTES = 32 * 1024


def check_user_data(text: str | None) -> str:
    if not text:
        return ""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise errors.invalid_user_data_base64_format_invalid() from None
    if len(raw) > USER_DATA_MAX_BYTES:
        raise errors.invalid_user_data_size_exceeded()
    return text


def offered_type(catalog: Catalog, families: tuple[str, ...], type_id: str) -> InstanceType:
    """The instance type, if the region offers its family."""
    itype = catalog.instance_type(type_id)
    if itype is None or itype.family not in families:
        raise errors.invalid_instance_type_value_not_supported(
            f"The instance type {type_id!r} is not offered in this region; DescribeInstanceTypes and "
            "DescribeZones list what is.",
        )
    return itype


def security_groups(s: Session, scope: Scope, vpc_id: str, group_ids: list[str]) -> list[SecurityGroup]:
    """The groups an instance joins: the caller's, of the instance's VPC, at most 5, of one type."""
    if not group_ids:
        raise errors.missing_parameter(
            "SecurityGroupId",
            message="Give SecurityGroupId or SecurityGroupIds.N.",
        )
    groups = []
    for group_id in dict.fromkeys(group_ids):
        group = owned(s, SecurityGroup, scope, group_id, "SecurityGroup")
        if group.vpc_id != vpc_id:
            raise errors.invalid_security_group_id_vpc_mismatch(
                f"The security group {group_id} is in another VPC than the vSwitch."
            )
        groups.append(group)
    if len(groups) > 5:
        raise errors.invalid_security_group_ids_limit_exceeded(
            "An instance can be in at most 5 security groups."
        )
    if len({g.group_type for g in groups}) > 1:
        raise errors.invalid_security_group_type_mixed(
            "Normal and enterprise security groups cannot be mixed."
        )
    return groups


def deployment_set(s: Session, scope: Scope, set_id: str | None) -> DeploymentSet | None:
    if not set_id:
        return None
    return owned(
        s,
        DeploymentSet,
        scope,
        set_id,
        lambda missing: errors.invalid_deployment_set_id_not_found(
            f"The deployment set {missing!r} does not exist."
        ),
    )


def group_numbers(s: Session, deployment: DeploymentSet | None, asked: int | None, count: int) -> list[int]:
    """The deployment set group of each of `count` new members of a set: 0 outside an
    AvailabilityGroup set (ECS reads DeploymentSetGroupNo for that strategy only); the asked
    group, which the set must have; else, one by one, the group with the fewest members."""
    if deployment is None or deployment.strategy != "AvailabilityGroup":
        return [0] * count
    if asked is not None:
        if asked > deployment.group_count:
            raise errors.invalid_parameter(
                "DeploymentSetGroupNo",
                f"The deployment set {deployment.id} has {deployment.group_count} groups; got {asked}.",
            )
        return [asked] * count
    members = dict.fromkeys(range(1, deployment.group_count + 1), 0)
    for group in s.scalars(
        select(Instance.deployment_set_group_no).where(
            Instance.deployment_set_id == deployment.id, Instance.desired != WANT_DELETED
        )
    ):
        if group in members:
            members[group] += 1
    chosen = []
    for _ in range(count):
        group = min(members, key=lambda g: (members[g], g))
        members[group] += 1
        chosen.append(group)
    return chosen


# ---- launch: the checks of the request alone -----------------------------------------------------


def disk_size(category: str, size: int | None, minimum: int, system: bool, level: str | None) -> int:
    """A launch disk's size (the smallest allowed when none is given), checked against its
    category's range with RunInstances' error codes."""
    kind = "SystemDisk" if system else "DataDisk"
    if category not in CATEGORIES:
        raise errors.invalid_category_value_not_supported(
            kind, f"The disk category {category!r} is not supported."
        )
    allowed = size_range(category, level or "", SYSTEM if system else DATA)
    low = max(allowed.min_gib, minimum) if system else allowed.min_gib
    value = size if size is not None else low
    if not low <= value <= allowed.max_gib:
        refuse = (
            errors.invalid_system_disk_size if system else errors.invalid_data_disk_size_value_not_supported
        )
        if system and value < minimum:
            refuse = errors.invalid_system_disk_size_less_than_image_size
        raise refuse(f"The {category} disk size must be from {low} to {allowed.max_gib} GiB; got {value}.")
    return value


def image_snapshots(image: Image | None) -> list[str]:
    if image is None:
        return []
    return [image.snapshot_id, *(str(m["SnapshotId"]) for m in json.loads(image.disk_mappings or "[]"))]


def auto_release_at(text: str | None, now: datetime) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=now.tzinfo)
    except ValueError:
        try:
            moment = datetime.strptime(text, "%Y-%m-%dT%H:%MZ").replace(tzinfo=now.tzinfo)
        except ValueError:
            raise errors.invalid_auto_release_time_malformed(
                "AutoReleaseTime must read yyyy-MM-ddTHH:mm:ssZ (UTC)."
            ) from None
    if not now + timedelta(minutes=30) <= moment <= now + timedelta(days=3 * 365):
        raise errors.invalid_auto_release_time_malformed(
            "AutoReleaseTime must be at least 30 minutes and at most three years after now."
        )
    return moment
