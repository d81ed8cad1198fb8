"""The domain services of one cloud, as the API actions use them: the store, the catalog, the
clock and one object per resource. Built by the composition root (nubes.services), which also
wires the agents' wake-ups into the notifiers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nubes.catalog.model import Catalog
from nubes.clock import Clock
from nubes.domain.accounts import Accounts
from nubes.domain.auto_snapshot_policies import AutoSnapshotPolicies
from nubes.domain.common import Idempotency
from nubes.domain.consoles import ConsoleOutputs
from nubes.domain.custom_images import CustomImages
from nubes.domain.deployment_sets import DeploymentSets
from nubes.domain.disks import Disks
from nubes.domain.eips import Eips
from nubes.domain.images import Images
from nubes.domain.instance_attributes import InstanceAttributes
from nubes.domain.instances import InstanceChanges, Instances
from nubes.domain.keypairs import KeyPairs
from nubes.domain.launch_templates import LaunchTemplates
from nubes.domain.monitoring import Monitoring, Screenshots
from nubes.domain.nat_entries import ForwardEntries, SnatEntries
from nubes.domain.nat_gateways import NatGateways
from nubes.domain.netstate import bump_generation
from nubes.domain.network_interfaces import NetworkInterfaces
from nubes.domain.public_ips import PublicIps
from nubes.domain.quotas import Quotas
from nubes.domain.resource_group_members import ResourceGroups
from nubes.domain.route_tables import RouteTables
from nubes.domain.routes import Routes
from nubes.domain.security_groups import SecurityGroups
from nubes.domain.snapshots import Snapshots
from nubes.domain.system_events import SystemEvents
from nubes.domain.tags import Tags
from nubes.domain.tasks import Tasks
from nubes.domain.vnc import VncConsoles
from nubes.domain.vpcs import Vpcs
from nubes.store.db import Database


@dataclass
class Notifier:
    """Tells the agents that a resource changed: for networks also in the store (agents in
    other processes poll it), and directly to the agents of this process, which act at once."""

    db: Database
    listeners: list[Callable[[str], None]] = field(default_factory=list)
    bump: bool = True  # record the change in the store (networks); instances are polled anyway

    def __call__(self, key: str) -> None:
        if self.bump:
            bump_generation(self.db, key)
        for listener in self.listeners:
            self.db.after_commit(functools.partial(listener, key))


@dataclass
class Services:
    """The explicit wiring of one server: store, catalog, clock, domain services."""

    db: Database
    catalog: Catalog
    clock: Clock
    data_dir: Path
    quotas: Quotas
    notify: Notifier  # a VPC changed (networks)
    compute_notify: Notifier  # an instance or disk changed (compute, storage)
    accounts: Accounts
    idempotency: Idempotency
    keypairs: KeyPairs
    vpcs: Vpcs
    routes: Routes
    route_tables: RouteTables
    security_groups: SecurityGroups
    network_interfaces: NetworkInterfaces
    images: Images
    instances: Instances
    tags: Tags
    deployment_sets: DeploymentSets
    changes: InstanceChanges
    attributes: InstanceAttributes  # RAM roles, maintenance, private pools, renewal, release
    resource_groups: ResourceGroups
    disks: Disks
    snapshots: Snapshots
    auto_snapshot_policies: AutoSnapshotPolicies
    custom_images: CustomImages
    consoles: ConsoleOutputs  # the console tails the host agents record
    eips: Eips
    public_ips: PublicIps
    launch_templates: LaunchTemplates
    nat_gateways: NatGateways
    snat_entries: SnatEntries
    forward_entries: ForwardEntries
    tasks: Tasks  # ECS tasks (TaskId) of the asynchronous actions
    events: SystemEvents  # instance system events, RedeployInstance
    monitoring: Monitoring  # the samples the host agents record
    screenshots: Screenshots  # asked for by the API, taken by the host agents
    vnc: VncConsoles  # VNC passwords and one-time URLs, opened by the host agents
