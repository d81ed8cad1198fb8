"""Deployment sets: groups of instances the scheduler spreads (Availability, AvailabilityGroup)
or draws together (LowLatency)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nubes import errors, ids
from nubes.clock import Clock
from nubes.domain.common import Scope, check_description, check_name, owned
from nubes.domain.instance_states import WANT_DELETED
from nubes.store.db import Database
from nubes.store.models import DeploymentSet, Instance

STRATEGIES = ("Availability", "AvailabilityGroup", "LowLatency")
MAX_SETS = 150


class DeploymentSets:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def create(
        self, scope: Scope, name: str | None, description: str | None, strategy: str, group_count: int
    ) -> str:
        with self._db.session() as s:
            count = (
                s.scalar(
                    select(func.count(DeploymentSet.id)).where(
                        DeploymentSet.account_id == scope.account_id,
                        DeploymentSet.region_id == scope.region_id,
                    )
                )
                or 0
            )
            if count >= MAX_SETS:
                raise errors.quota_exceed_deployment_set(f"At most {MAX_SETS} deployment sets per region.")
            row = DeploymentSet(
                id=ids.new_id("deployment_set"),
                account_id=scope.account_id,
                region_id=scope.region_id,
                name=check_name("DeploymentSetName", name),
                description=check_description(description),
                strategy=strategy,
                domain="Default",
                granularity="Host",
                group_count=group_count,
                created_at=self._clock.now(),
            )
            s.add(row)
            return row.id

    def get(self, s: Session, scope: Scope, set_id: str) -> DeploymentSet:
        return owned(
            s,
            DeploymentSet,
            scope,
            set_id,
            lambda missing: errors.invalid_deployment_set_id_not_found(
                f"The deployment set {missing!r} does not exist."
            ),
        )

    def describe(
        self, scope: Scope, set_ids: list[str] | None, name: str | None, strategy: str | None
    ) -> list[tuple[DeploymentSet, list[str]]]:
        with self._db.session() as s:
            query = select(DeploymentSet).where(
                DeploymentSet.account_id == scope.account_id, DeploymentSet.region_id == scope.region_id
            )
            if set_ids:
                query = query.where(DeploymentSet.id.in_(set_ids))
            if name:
                query = query.where(DeploymentSet.name == name)
            if strategy:
                query = query.where(DeploymentSet.strategy == strategy)
            sets = list(s.scalars(query.order_by(DeploymentSet.created_at.desc())))
            members: dict[str, list[str]] = {d.id: [] for d in sets}
            for instance_id, set_id in s.execute(
                select(Instance.id, Instance.deployment_set_id).where(
                    Instance.deployment_set_id.in_(list(members)), Instance.desired != WANT_DELETED
                )
            ):
                members[set_id].append(instance_id)
            return [(d, members[d.id]) for d in sets]

    def modify(self, scope: Scope, set_id: str, name: str | None, description: str | None) -> None:
        with self._db.session() as s:
            row = self.get(s, scope, set_id)
            if name is not None:
                row.name = check_name("DeploymentSetName", name)
            if description is not None:
                row.description = check_description(description)

    def delete(self, scope: Scope, set_id: str) -> None:
        with self._db.session() as s:
            row = self.get(s, scope, set_id)
            used = s.scalar(
                select(func.count(Instance.id)).where(
                    Instance.deployment_set_id == set_id, Instance.desired != WANT_DELETED
                )
            )
            if used:
                raise errors.dependency_violation(
                    "Instance",
                    message=f"The deployment set {set_id} still holds {used} instances.",
                )
            s.delete(row)
