"""A store with one account, one VPC and one host, and the host agent nubes.services would build
for it, on the fake drivers: for tests that drive the agent pass by pass."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from nubes.agent.compute import BootFiles, ComputeAgent
from nubes.agent.host import HostAgent
from nubes.agent.images import FAKE_IMAGES
from nubes.agent.monitor import MonitorAgent
from nubes.agent.network import NetworkAgent
from nubes.agent.storage import StorageWork
from nubes.agent.timers import Timers
from nubes.catalog.model import load_catalog
from nubes.clock import ManualClock
from nubes.domain.common import Scope
from nubes.domain.launch import DiskRequest, LaunchRequest
from nubes.domain.quotas import Quotas
from nubes.drivers.compute.fake import FakeComputeDriver, FakeHost
from nubes.drivers.network.fake import FakeNetworkDriver
from nubes.drivers.storage.fake import FakeStorage
from nubes.services import build_services
from nubes.store.db import Database
from nubes.store.models import Host, Image, Instance

HOST = "h1"
REGION = "cn-hangzhou"
KEY_ID, SECRET = "LTAIhostworld00000001", "hostWorldSecret00000000000001"


def nowhere(_: Image) -> BootFiles:
    path = Path("/nonexistent")
    return BootFiles(path / "vmlinux", path / "initrd", path / "root.qcow2", "")


def nowhere_rootfs(image: Image) -> Path:
    return nowhere(image).rootfs


class HostWorld:
    def __init__(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path / 'nubes.db'}"
        self.clock = ManualClock(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
        self.db = Database(self.url)
        self.db.migrate()
        self.services = build_services(self.db, load_catalog(tmp_path), self.clock, tmp_path, Quotas())
        for image in FAKE_IMAGES:
            self.services.images.register_system(image)
        self.services.accounts.ensure_root(KEY_ID, SECRET)
        key = self.services.accounts.lookup_key(KEY_ID)
        assert key is not None
        self.scope = Scope(key.principal.account_id, REGION)
        with self.db.session() as s:
            s.add(
                Host(
                    id=HOST,
                    vcpus=64,
                    memory_mib=262144,
                    cpu_overcommit=1.0,
                    memory_overcommit=1.0,
                    zones="*",
                    compute_driver="fake",
                    accel="none",
                    status="Available",
                    heartbeat_at=self.clock.now(),
                )
            )
        vpcs = self.services.vpcs
        vpc = vpcs.create_vpc(self.scope, "10.0.0.0/16", None, None, "")
        vpcs.mark_available([vpc.id])
        self.vswitch_id = vpcs.create_vswitch(
            self.scope, vpc.id, "cn-hangzhou-h", "10.0.1.0/24", None, None
        ).id
        vpcs.mark_available([vpc.id])
        self.group_id = self.services.security_groups.create(self.scope, vpc.id, None, None, "normal", "").id
        self.vms = FakeHost()
        self.storage = FakeStorage()
        self.agent = self.new_agent()

    def new_agent(self) -> HostAgent:
        """What nubes.services.build_host makes, on this world's fake host (again: an agent restart);
        the fake drivers' counters (monitoring) go with the world's clock."""
        services = self.services
        compute = FakeComputeDriver(self.vms, clock=self.ticks)
        self.net_driver = FakeNetworkDriver(clock=self.ticks)
        network = NetworkAgent(self.db, self.net_driver, services.vpcs, "nubes")
        storage = StorageWork(self.db, self.clock, self.storage, compute, nowhere_rootfs, HOST)
        self.monitor = MonitorAgent(
            self.db,
            self.clock,
            services.monitoring,
            services.screenshots,
            compute,
            self.net_driver,
            HOST,
            vnc=services.vnc,
        )
        agent = HostAgent(
            ComputeAgent(
                self.db,
                self.clock,
                services.instances,
                services.consoles,
                compute,
                storage,
                network,
                nowhere,
                HOST,
            ),
            storage,
            network,
            Timers(self.clock, services.instances, services.auto_snapshot_policies, services.events),
            monitor=self.monitor,
        )
        services.compute_notify.listeners.append(agent.notify)
        services.notify.listeners.append(agent.notify_network)
        return agent

    def ticks(self) -> float:
        return self.clock.now().timestamp()

    def close(self) -> None:
        self.agent.stop()
        self.db.dispose()

    # ---- driving -------------------------------------------------------------------------------

    def launch(
        self, data_disks: list[DiskRequest] | None = None, start: bool = True, hibernation: bool = False
    ) -> str:
        [instance_id] = self.services.instances.launch(
            self.scope,
            LaunchRequest(
                instance_type="ecs.t5-lc2m1.nano",
                image_id=FAKE_IMAGES[1].image_id,
                vswitch_id=self.vswitch_id,
                security_group_ids=[self.group_id],
                data_disks=data_disks or [],
                start=start,
                hibernation_configured=hibernation,
            ),
        )
        return instance_id

    def settle(self, done: Callable[[], bool], passes: int = 40) -> None:
        for _ in range(passes):
            if done():
                return
            self.agent.pass_once(wait=True)
        assert done(), "the agent did not get there"

    def status(self, instance_id: str) -> str | None:
        with self.db.session() as s:
            instance = s.get(Instance, instance_id)
            return instance.status if instance is not None else None

    def reach(self, instance_id: str, status: str | None) -> None:
        self.settle(lambda: self.status(instance_id) == status)

    def act(self, instance_id: str, action: str, force: bool = False) -> None:
        self.services.instances.act(self.scope.account_id, instance_id, action, force=force)

    def disk_status(self, disk_id: str) -> str | None:
        return self.services.disks.get(self.scope.account_id, disk_id).status
