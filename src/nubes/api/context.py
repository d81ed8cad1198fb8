"""What an action receives besides its parameters: who calls, and the services it may use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nubes.catalog.model import Catalog
from nubes.clock import Clock
from nubes.domain.accounts import Accounts, Principal
from nubes.domain.common import Idempotency, Scope
from nubes.domain.keypairs import KeyPairs
from nubes.domain.network_interfaces import NetworkInterfaces
from nubes.domain.quotas import Quotas
from nubes.domain.regions import require_region
from nubes.domain.routes import Routes
from nubes.domain.security_groups import SecurityGroups, SecurityQuotas
from nubes.domain.vpcs import Vpcs
from nubes.domain.netstate import bump_generation
from nubes.store.db import Database


@dataclass
class NetworkNotifier:
    """Records that a VPC's network changed: in the store, for agents in other processes,
    and directly to the agents of this process, which act on it at once."""

    db: Database
    listeners: list[Callable[[str], None]] = field(default_factory=list)

    def __call__(self, vpc_id: str) -> None:
        bump_generation(self.db, vpc_id)
        for listener in self.listeners:
            listener(vpc_id)


@dataclass
class Services:
    """The explicit wiring of one server: store, catalog, clock, domain services."""

    db: Database
    catalog: Catalog
    clock: Clock
    data_dir: Path
    quotas: Quotas
    notify: NetworkNotifier
    accounts: Accounts
    idempotency: Idempotency
    keypairs: KeyPairs
    vpcs: Vpcs
    routes: Routes
    security_groups: SecurityGroups
    network_interfaces: NetworkInterfaces

    @classmethod
    def build(
        cls, db: Database, catalog: Catalog, clock: Clock, data_dir: Path, quotas: Quotas,
        security_quotas: SecurityQuotas | None = None,
    ) -> Services:
        notify = NetworkNotifier(db)
        vpcs = Vpcs(db, clock, catalog, notify)
        security_groups = SecurityGroups(db, clock, notify, security_quotas)
        return cls(
            db=db,
            catalog=catalog,
            clock=clock,
            data_dir=data_dir,
            quotas=quotas,
            notify=notify,
            accounts=Accounts(db, clock),
            idempotency=Idempotency(db, clock),
            keypairs=KeyPairs(db, clock, quotas),
            vpcs=vpcs,
            routes=Routes(db, clock, notify, vpcs.quotas),
            security_groups=security_groups,
            network_interfaces=NetworkInterfaces(db, clock, notify, security_groups.quotas),
        )


@dataclass(frozen=True)
class ActionContext:
    request_id: str
    principal: Principal
    services: Services
    product: str
    action: str

    def scope(self, region_id: str) -> Scope:
        """The caller's resources in a region (which must exist)."""
        require_region(self.services.catalog, region_id)
        return Scope(self.principal.account_id, region_id)
