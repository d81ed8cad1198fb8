"""Assemble and run one nubes server: store, catalog, API, in the foreground."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from nubes.actions import all_tables
from nubes.api.app import ApiApp
from nubes.api.auth import Authenticator
from nubes.api.context import Services
from nubes.api.registry import Registry
from nubes.api.throttle import Throttle
from nubes.catalog.model import load_catalog
from nubes.clock import Clock, SystemClock
from nubes.config import Settings
from nubes.domain.accounts import KeyRecord
from nubes.domain.nonces import SignatureNonces
from nubes.domain.quotas import Quotas
from nubes.domain.security_groups import SecurityQuotas
from nubes.drivers.network.base import NetworkDriver
from nubes.agent.compute import ComputeAgent
from nubes.agent.images import ImageService
from nubes.agent.network import NetworkAgent
from nubes.drivers.compute.base import ComputeDriver
from nubes.drivers.storage.base import StorageDriver
from nubes.guest.metadata import MetadataService, interface_tree
from nubes.store.db import Database

log = logging.getLogger("nubes")


def open_services(settings: Settings, clock: Clock | None = None) -> Services:
    """Open the store (migrated to the newest schema) and the catalog."""
    data_dir = settings.resolved_data_dir()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    db = Database(settings.resolved_database_url())
    db.migrate()
    security_quotas = SecurityQuotas(rules_per_group=settings.max_rules_per_group)
    return Services.build(db, load_catalog(data_dir), clock or SystemClock(), data_dir, Quotas(), security_quotas)


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

    return LinuxNetworkDriver(data_dir / "run" / "network", prefix=settings.netns_prefix)


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


# The emulator's one host: big enough that code under test meets no stock limits it would not meet
# in ECS, small enough that an absurd request still gets OperationDenied.NoStock.
EMULATOR_HOST = (512, 2 * 1024 * 1024)


@dataclass
class Agents:
    """The local host agent: networks, images and instances of this machine."""

    network: NetworkAgent
    compute: ComputeAgent
    images: ImageService

    def stop(self) -> None:
        self.compute.stop()
        self.network.stop()


def start_agents(services: Services, settings: Settings, build_images: bool = True) -> Agents:
    driver = network_driver(settings, services.data_dir)
    metadata = MetadataService(lambda vpc_id, ip: interface_tree(services.db, vpc_id, ip))
    network = NetworkAgent(
        services.db, driver, services.vpcs, host_netns_prefix=settings.netns_prefix, metadata=metadata
    )
    services.notify.listeners.append(network.notify)
    network.start()
    image_service = ImageService(services.images, images_dir(services.data_dir), fake=settings.driver == "fake")
    missing = image_service.register()
    if build_images:
        image_service.build_in_background(missing)
    compute_driver, storage = compute_drivers(settings, services.data_dir)
    compute = ComputeAgent(
        services.db, services.clock, services.instances, compute_driver, storage, driver,
        sync_network=lambda vpc_id: network.reconcile({vpc_id}), boot_files=image_service.boot_files,
        host_id=settings.host_id or None,
    )
    services.compute_notify.listeners.append(compute.notify)
    services.console = compute_driver.console_output
    if settings.driver == "fake":
        compute.register_host(*EMULATOR_HOST)
    compute.start()
    return Agents(network, compute, image_service)


def build_app(services: Services, settings: Settings) -> ApiApp:
    registry = Registry(all_tables())
    authenticator = Authenticator(services.accounts, services.clock, SignatureNonces(services.db))
    return ApiApp(services, registry, authenticator, Throttle(settings.throttle_rate, settings.throttle_burst))


def write_credentials(path: Path, key: KeyRecord) -> None:
    """The generated root key, readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"[default]\naccess_key_id = {key.access_key_id}\naccess_key_secret = {key.secret}\n")
    os.chmod(path, 0o600)


def bootstrap_root(services: Services) -> None:
    """First start: the root account, with the AccessKey from the environment or a new one."""
    env_id = os.environ.get("NUBES_ACCESS_KEY_ID")
    env_secret = os.environ.get("NUBES_ACCESS_KEY_SECRET")
    if bool(env_id) != bool(env_secret):
        raise SystemExit("nubes: set both NUBES_ACCESS_KEY_ID and NUBES_ACCESS_KEY_SECRET, or neither.")
    created = services.accounts.ensure_root(env_id, env_secret)
    if created is not None and not env_id:
        path = services.data_dir / "credentials"
        write_credentials(path, created)
        # Printed once, on the terminal, never logged.
        print(
            f"nubes: created the root account's AccessKey (saved to {path}, mode 0600):\n"
            f"  AccessKeyId:     {created.access_key_id}\n  AccessKeySecret: {created.secret}",
            file=sys.stderr,
            flush=True,
        )


def serve(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    services = open_services(settings)
    bootstrap_root(services)
    agents = start_agents(services, settings, build_images=settings.build_images)
    app = build_app(services, settings)
    log.info(
        "nubes listening on http://%s:%d (data %s, store %s)",
        settings.host,
        settings.port,
        services.data_dir,
        services.db.engine.url.render_as_string(hide_password=True),
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_level=settings.log_level,
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    try:
        uvicorn.Server(config).run()
    finally:
        agents.stop()
