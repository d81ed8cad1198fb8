"""The composition root: everything one nubes process runs, built here with explicit arguments.

The store (migrated), the catalog, the domain services and their notifiers (`build_services`);
the drivers the settings choose, and the host agent with its peers: compute, storage, network,
timers (`build_host`); the API application (`build_app`). Nothing below this module imports a
global or picks a driver by itself: each piece gets what it uses here, so tests build the same
pieces with other parts (a manual clock, fake drivers)."""

from __future__ import annotations

import functools
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from nubes.actions import all_tables
from nubes.agent.compute import ComputeAgent
from nubes.agent.host import HostAgent
from nubes.agent.images import ImageService
from nubes.agent.monitor import MonitorAgent
from nubes.agent.network import NetworkAgent
from nubes.agent.storage import StorageWork
from nubes.agent.timers import Timers
from nubes.api.app import ApiApp
from nubes.api.auth import Authenticator
from nubes.api.registry import Registry
from nubes.api.throttle import Throttle
from nubes.catalog.model import Catalog, load_catalog
from nubes.clock import Clock, SystemClock
from nubes.config import Settings
from nubes.domain.accounts import Accounts, KeyRecord
from nubes.domain.auto_snapshot_policies import AutoSnapshotPolicies
from nubes.domain.common import Idempotency
from nubes.domain.consoles import ConsoleOutputs
from nubes.domain.custom_images import CustomImages
from nubes.domain.deployment_sets import DeploymentSets
from nubes.domain.disk_keys import MASTER_KEY_FILE, DiskKeys, MasterKey
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
from nubes.domain.network_interfaces import NetworkInterfaces
from nubes.domain.nonces import SignatureNonces
from nubes.domain.public_addresses import configure_pools
from nubes.domain.public_ips import PublicIps
from nubes.domain.quotas import Quotas
from nubes.domain.resource_group_members import ResourceGroups
from nubes.domain.route_tables import RouteTables
from nubes.domain.routes import Routes
from nubes.domain.security_groups import SecurityGroups, SecurityQuotas
from nubes.domain.services import Notifier, Services
from nubes.domain.snapshots import Snapshots
from nubes.domain.system_events import SystemEvents
from nubes.domain.tags import Tags
from nubes.domain.tasks import Tasks
from nubes.domain.vnc import VncConsoles
from nubes.domain.vpcs import Vpcs
from nubes.drivers.compute.base import ComputeDriver
from nubes.drivers.network.base import NetworkDriver
from nubes.drivers.storage.base import StorageDriver
from nubes.guest.metadata import MetadataService, interface_tree
from nubes.store.db import Database

__all__ = ["Notifier", "Services", "build_app", "build_host", "build_node", "build_services", "open_services"]

# The emulator's one host: big enough that code under test meets no stock limits it would not meet
# in ECS, small enough that an absurd request still gets OperationDenied.NoStock.
EMULATOR_HOST = (512, 2 * 1024 * 1024)


# ---- the store and the domain -----------------------------------------------------------------


def build_services(
    db: Database,
    catalog: Catalog,
    clock: Clock,
    data_dir: Path,
    quotas: Quotas,
    security_quotas: SecurityQuotas | None = None,
) -> Services:
    """The domain services on a store (already migrated), with notifiers no agent listens to yet."""
    notify = Notifier(db)
    compute_notify = Notifier(db, bump=False)
    vpcs = Vpcs(db, clock, catalog, notify)
    security_groups = SecurityGroups(db, clock, notify, security_quotas)
    images = Images(db, clock)
    instances = Instances(db, clock, catalog, images, compute_notify, notify, quotas=quotas)
    snapshots = Snapshots(db, clock, compute_notify)
    return Services(
        db=db,
        catalog=catalog,
        clock=clock,
        data_dir=data_dir,
        quotas=quotas,
        notify=notify,
        compute_notify=compute_notify,
        accounts=Accounts(db, clock),
        idempotency=Idempotency(db, clock),
        keypairs=KeyPairs(db, clock, quotas),
        vpcs=vpcs,
        routes=Routes(db, clock, notify, vpcs.quotas),
        route_tables=RouteTables(db, clock, notify, vpcs.quotas),
        security_groups=security_groups,
        network_interfaces=NetworkInterfaces(
            db, clock, notify, security_groups.quotas, catalog, compute_notify
        ),
        images=images,
        instances=instances,
        tags=Tags(db),
        deployment_sets=DeploymentSets(db, clock),
        changes=InstanceChanges(db, clock, catalog, instances, notify),
        attributes=InstanceAttributes(db, clock, instances, notify),
        resource_groups=ResourceGroups(db, clock),
        disks=Disks(db, clock, compute_notify, quotas),
        snapshots=snapshots,
        auto_snapshot_policies=AutoSnapshotPolicies(db, clock, compute_notify),
        custom_images=CustomImages(db, clock, snapshots, compute_notify, data_dir / "oss"),
        consoles=ConsoleOutputs(db, clock),
        eips=Eips(db, clock, notify),
        public_ips=PublicIps(db, clock, notify),
        launch_templates=LaunchTemplates(db, clock),
        nat_gateways=NatGateways(db, clock, notify),
        snat_entries=SnatEntries(db, clock, notify),
        forward_entries=ForwardEntries(db, clock, notify),
        tasks=Tasks(db, clock, compute_notify),
        events=SystemEvents(db, clock, instances),
        monitoring=Monitoring(db, clock),
        screenshots=Screenshots(db, clock, functools.partial(_tell_at_once, compute_notify)),
        vnc=VncConsoles(db, clock, functools.partial(_tell_at_once, compute_notify)),
    )


def _tell_at_once(notifier: Notifier, key: str) -> None:
    """Tell this process's agents now, not after the request's unit of work commits (a screenshot
    request is written outside it and waited for inside it)."""
    for listener in notifier.listeners:
        listener(key)


def open_services(settings: Settings, clock: Clock | None = None) -> Services:
    """Open the store (migrated to the newest schema) and the catalog."""
    data_dir = settings.resolved_data_dir()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    db = Database(settings.resolved_database_url())
    db.migrate()
    security_quotas = SecurityQuotas(rules_per_group=settings.max_rules_per_group)
    return build_services(
        db,
        load_catalog(data_dir),
        clock or SystemClock(),
        data_dir,
        Quotas(max_postpaid_instance_vcpu_count=settings.max_instance_vcpus),
        security_quotas,
    )


# ---- drivers ------------------------------------------------------------------------------------


def network_driver(settings: Settings, data_dir: Path) -> NetworkDriver:
    if settings.driver == "fake":
        from nubes.drivers.network.fake import FakeNetworkDriver

        return FakeNetworkDriver()
    if os.geteuid() != 0:
        raise SystemExit(
            "nubes: the real drivers need root (network namespaces, nftables, taps). "
            "Run as root, or start the emulator with --driver fake."
        )
    from nubes.drivers.network.linux import LinuxNetworkDriver

    return LinuxNetworkDriver(
        data_dir / "run" / "network", prefix=settings.netns_prefix, uplink=settings.uplink
    )


def compute_drivers(settings: Settings, data_dir: Path) -> tuple[ComputeDriver, StorageDriver]:
    if settings.driver == "fake":
        from nubes.drivers.compute.fake import FakeComputeDriver
        from nubes.drivers.storage.fake import FakeStorage

        # the emulator keeps its VMs and layers in the data dir, to survive restarts as real ones do
        fake = data_dir / "run" / "fake"
        return FakeComputeDriver(state_dir=fake / "vms"), FakeStorage(fake / "layers")
    from nubes.drivers.compute.qemu import QemuDriver
    from nubes.drivers.storage.qcow2 import Qcow2Storage

    return QemuDriver(data_dir / "run" / "vms", accel=settings.accel), Qcow2Storage(data_dir / "disks")


def images_dir(data_dir: Path) -> Path:
    """Built images are big and slow to make: NUBES_IMAGES_DIR lets several data dirs share them."""
    return Path(os.environ.get("NUBES_IMAGES_DIR") or data_dir / "images")


# ---- the host agent -----------------------------------------------------------------------------


@dataclass
class Host:
    """This machine's part: its agent (compute, storage, network, timers) and its system images."""

    agent: HostAgent
    images: ImageService
    emulator: bool  # the fake drivers: registered with EMULATOR_HOST's size

    def start(self, build_images: bool = True) -> None:
        # Before the API serves: every system image is listed from the first request (those
        # still to build as Creating), and a launch from one waits in Pending for it.
        missing = self.images.register(plan=build_images)
        self.images.build_in_background(missing)
        if self.emulator:
            self.agent.compute.register_host(*EMULATOR_HOST)
        self.agent.start()

    def stop(self) -> None:
        self.images.stop()
        self.agent.stop()


def build_host(services: Services, settings: Settings) -> Host:
    """The drivers the settings choose and the agent that drives them, listening to the services'
    notifiers (not started)."""
    data_dir = services.data_dir
    host_id = settings.host_id or socket.gethostname()
    net_driver = network_driver(settings, data_dir)
    compute_driver, storage_driver = compute_drivers(settings, data_dir)
    images = ImageService(
        services.images,
        images_dir(data_dir),
        fake=settings.driver == "fake",
        fake_build_seconds=settings.fake_image_build_seconds,
        notify=services.compute_notify,
    )
    metadata = MetadataService(functools.partial(interface_tree, services.db))
    network = NetworkAgent(
        services.db, net_driver, services.vpcs, host_netns_prefix=settings.netns_prefix, metadata=metadata
    )
    keys = DiskKeys(services.db, services.clock, MasterKey(data_dir / MASTER_KEY_FILE))
    storage = StorageWork(
        services.db, services.clock, storage_driver, compute_driver, images.rootfs, host_id, keys
    )
    compute = ComputeAgent(
        services.db,
        services.clock,
        services.instances,
        services.consoles,
        compute_driver,
        storage,
        network,
        images.boot_files,
        host_id,
    )
    timers = Timers(services.clock, services.instances, services.auto_snapshot_policies, services.events)
    monitor = MonitorAgent(
        services.db,
        services.clock,
        services.monitoring,
        services.screenshots,
        compute_driver,
        net_driver,
        host_id,
        interval=settings.monitor_interval,
        vnc=services.vnc,
    )
    agent = HostAgent(compute, storage, network, timers, monitor=monitor)
    services.notify.listeners.append(agent.notify_network)
    services.compute_notify.listeners.append(agent.notify)
    return Host(agent, images, emulator=settings.driver == "fake")


# ---- the API ------------------------------------------------------------------------------------


def build_app(services: Services, settings: Settings) -> ApiApp:
    registry = Registry(all_tables())
    authenticator = Authenticator(services.accounts, services.clock, SignatureNonces(services.db))
    return ApiApp(
        services, registry, authenticator, Throttle(settings.throttle_rate, settings.throttle_burst)
    )


def write_credentials(path: Path, key: KeyRecord) -> None:
    """The generated root key, readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"[default]\naccess_key_id = {key.access_key_id}\naccess_key_secret = {key.secret}\n")
    os.chmod(path, 0o600)


def bootstrap_root(accounts: Accounts, data_dir: Path) -> None:
    """First start: the root account, with the AccessKey from the environment or a new one."""
    env_id = os.environ.get("NUBES_ACCESS_KEY_ID")
    env_secret = os.environ.get("NUBES_ACCESS_KEY_SECRET")
    if bool(env_id) != bool(env_secret):
        raise SystemExit("nubes: set both NUBES_ACCESS_KEY_ID and NUBES_ACCESS_KEY_SECRET, or neither.")
    created = accounts.ensure_root(env_id, env_secret)
    if created is not None and not env_id:
        path = data_dir / "credentials"
        write_credentials(path, created)
        # Printed once, on the terminal, never logged.
        print(
            f"nubes: created the root account's AccessKey (saved to {path}, mode 0600):\n"
            f"  AccessKeyId:     {created.access_key_id}\n  AccessKeySecret: {created.secret}",
            file=sys.stderr,
            flush=True,
        )


# ---- one server ---------------------------------------------------------------------------------


@dataclass
class Node:
    """One `nubes server`: the API, its store and the local host agent."""

    services: Services
    host: Host
    app: ApiApp
    build_images: bool

    def start(self) -> None:
        self.host.start(self.build_images)

    def stop(self) -> None:
        self.host.stop()


def build_node(settings: Settings) -> Node:
    """The store (with its root account), the host agent and the API app of one server."""
    settings.check_public_network()
    services = open_services(settings)
    bootstrap_root(services.accounts, services.data_dir)
    # the public ranges are the server's flags: every start makes the store's ranges those
    configure_pools(services.db, services.clock, settings.public_cidrs, settings.public_gateway)
    host = build_host(services, settings)
    return Node(services, host, build_app(services, settings), settings.build_images)
