"""Per-account quotas, as DescribeAccountAttributes reports them. Defaults match ECS's usual ones."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from nubes.store.db import Database
from nubes.store.models import KeyPair


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
