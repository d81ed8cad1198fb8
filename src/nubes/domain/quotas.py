"""Per-account quotas, as DescribeAccountAttributes reports them and launching and creating disks
enforce them. Defaults match ECS's usual ones."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from nubes import errors
from nubes.domain import instance_states as states
from nubes.domain.common import Scope
from nubes.store.db import Database
from nubes.store.models import Disk, Instance, KeyPair


@dataclass(frozen=True)
class Quotas:
    max_security_groups: int = 100
    max_elastic_network_interfaces: int = 100
    max_postpaid_instance_vcpu_count: int = 500
    max_spot_instance_vcpu_count: int = 800
    max_postpaid_yundisk_capacity_gib: int = 20000
    max_dedicated_hosts: int = 100
    max_key_pairs: int = 500
    max_axt_command_count: int = 500
    max_axt_invocation_daily: int = 10000
    max_terminal_session_count: int = 100


def used_key_pairs(db: Database, account_id: int, region_id: str) -> int:
    with db.session() as s:
        count = s.scalar(
            select(func.count(KeyPair.id)).where(
                KeyPair.account_id == account_id, KeyPair.region_id == region_id
            )
        )
        return int(count or 0)


def used_postpaid_vcpus(s: Session, scope: Scope) -> int:
    """The vCPUs of the scope's instances that are not being released (every nubes instance is
    pay-as-you-go: subscriptions and spot instances are refused at launch)."""
    used = s.scalar(
        select(func.sum(Instance.cpu)).where(
            Instance.account_id == scope.account_id,
            Instance.region_id == scope.region_id,
            Instance.desired != states.WANT_DELETED,
        )
    )
    return int(used or 0)


def used_postpaid_disk_gib(s: Session, scope: Scope) -> int:
    """The capacity of the scope's cloud disks (all pay-as-you-go in nubes), but for those that go
    with an instance being released."""
    going = select(Instance.id).where(Instance.desired == states.WANT_DELETED)
    used = s.scalar(
        select(func.sum(Disk.size_gib)).where(
            Disk.account_id == scope.account_id,
            Disk.region_id == scope.region_id,
            or_(Disk.instance_id == "", ~and_(Disk.delete_with_instance, Disk.instance_id.in_(going))),
        )
    )
    return int(used or 0)


def check_vcpus(s: Session, scope: Scope, quotas: Quotas, more: int) -> None:
    """QuotaExceed.ElasticQuota, as ECS, when `more` vCPUs would pass the region's quota."""
    used = used_postpaid_vcpus(s, scope)
    if used + more > quotas.max_postpaid_instance_vcpu_count:
        raise errors.quota_exceed_elastic_quota(
            f"The number of vCPUs assigned to the ECS instances has exceeded the quota: {used} in use, "
            f"{more} more asked, {quotas.max_postpaid_instance_vcpu_count} allowed "
            "(DescribeAccountAttributes: max-postpaid-instance-vcpu-count)."
        )


def check_disk_capacity(s: Session, scope: Scope, quotas: Quotas, more_gib: int) -> None:
    """QuotaExceed.DiskCapacity, as ECS, when `more_gib` GiB of disks would pass the quota."""
    used = used_postpaid_disk_gib(s, scope)
    if used + more_gib > quotas.max_postpaid_yundisk_capacity_gib:
        raise errors.quota_exceed_disk_capacity(
            f"The used capacity of disk type has exceeded the quota in the zone, {used} GiB in use, "
            f"{more_gib} GiB more asked, {quotas.max_postpaid_yundisk_capacity_gib} GiB allowed "
            "(DescribeAccountAttributes: max-postpaid-yundisk-capacity)."
        )


def usage(db: Database, scope: Scope) -> tuple[int, int]:
    """(vCPUs, disk GiB) the scope uses now against its pay-as-you-go quotas."""
    with db.session() as s:
        return used_postpaid_vcpus(s, scope), used_postpaid_disk_gib(s, scope)
