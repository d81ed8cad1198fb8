"""What an action receives besides its parameters: who calls, and the services it may use."""

from __future__ import annotations

import functools
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
from nubes.domain.images import Images
from nubes.domain.deployment_sets import DeploymentSets
from nubes.domain.custom_images import CustomImages
from nubes.domain.auto_snapshot_policies import AutoSnapshotPolicies
from nubes.domain.disks import Disks
from nubes.domain.snapshots import Snapshots
from nubes.domain.instances import InstanceChanges, Instances
from nubes.domain.tags import Tags
from nubes.domain.vpcs import Vpcs
from nubes.domain.netstate import bump_generation
from nubes.store.db import Database


@dataclass
class Notifier:
    """Tells the agents that a resource changed: for networks also in the store (agents in
    other processes poll it), and directly to the agents of this process, which act at once."""

    db: Database
    listeners: list[Callable[[str], None]] = field(default_factory=list)
    bump: bool = True  # record the change in the store (networks); instances are polled anyway

    def __call__(self, vpc_id: str) -> None:
        if self.bump:
            bump_generation(self.db, vpc_id)
        for listener in self.listeners:
            self.db.after_commit(functools.partial(listener, vpc_id))


@dataclass
class Services:
    """The explicit wiring of one server: store, catalog, clock, domain services."""

    db: Database
    catalog: Catalog
    clock: Clock
    data_dir: Path
    quotas: Quotas
    notify: Notifier
    accounts: Accounts
    idempotency: Idempotency
    keypairs: KeyPairs
    vpcs: Vpcs
    routes: Routes
    security_groups: SecurityGroups
    network_interfaces: NetworkInterfaces
    images: Images
    instances: Instances
    compute_notify: Notifier
    tags: Tags
    deployment_sets: DeploymentSets
    changes: InstanceChanges
    disks: Disks
    snapshots: Snapshots
    auto_snapshot_policies: AutoSnapshotPolicies
    custom_images: CustomImages
    # The serial console of an instance on this host (set by the server that runs the agent).
    console: Callable[[str], bytes] = lambda _instance_id: b""

    @classmethod
    def build(
        cls, db: Database, catalog: Catalog, clock: Clock, data_dir: Path, quotas: Quotas,
        security_quotas: SecurityQuotas | None = None,
    ) -> Services:
        notify = Notifier(db)
        compute_notify = Notifier(db, bump=False)
        vpcs = Vpcs(db, clock, catalog, notify)
        security_groups = SecurityGroups(db, clock, notify, security_quotas)
        images = Images(db, clock)
        instances = Instances(db, clock, catalog, images, compute_notify, notify)
        snapshots = Snapshots(db, clock, compute_notify)
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
            images=images,
            instances=instances,
            compute_notify=compute_notify,
            tags=Tags(db),
            deployment_sets=DeploymentSets(db, clock),
            changes=InstanceChanges(db, clock, catalog, instances, notify),
            disks=Disks(db, clock, compute_notify),
            snapshots=snapshots,
            auto_snapshot_policies=AutoSnapshotPolicies(db, clock, compute_notify),
            custom_images=CustomImages(db, clock, snapshots, compute_notify, data_dir / "oss"),
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
