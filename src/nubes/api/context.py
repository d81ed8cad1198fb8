"""What an action receives besides its parameters: who calls, and the services it may use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nubes.catalog.model import Catalog
from nubes.clock import Clock
from nubes.domain.accounts import Accounts, Principal
from nubes.domain.keypairs import KeyPairs
from nubes.domain.quotas import Quotas
from nubes.store.db import Database


@dataclass
class Services:
    """The explicit wiring of one server: store, catalog, clock, domain services."""

    db: Database
    catalog: Catalog
    clock: Clock
    data_dir: Path
    accounts: Accounts
    keypairs: KeyPairs
    quotas: Quotas

    @classmethod
    def build(cls, db: Database, catalog: Catalog, clock: Clock, data_dir: Path, quotas: Quotas) -> Services:
        return cls(db, catalog, clock, data_dir, Accounts(db, clock), KeyPairs(db, clock, quotas), quotas)


@dataclass(frozen=True)
class ActionContext:
    request_id: str
    principal: Principal
    services: Services
    product: str
    action: str
