"""The compute agent never leaves an instance in a transient status for ever: a VM that cannot
be started, pass after pass, leaves the instance Stopped (as ECS shows a start that failed)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from nubes.agent.compute import MAX_START_ATTEMPTS, BootFiles, ComputeAgent
from nubes.agent.host import HostAgent
from nubes.agent.images import FAKE_IMAGES
from nubes.agent.network import NetworkAgent
from nubes.agent.storage import StorageWork
from nubes.agent.timers import Timers
from nubes.catalog.model import load_catalog
from nubes.clock import ManualClock
from nubes.domain import instance_states as states
from nubes.domain.quotas import Quotas
from nubes.domain.services import Services
from nubes.drivers.compute.base import ComputeError, PowerState
from nubes.drivers.compute.fake import FakeComputeDriver, FakeHost
from nubes.drivers.network.fake import FakeNetworkDriver
from nubes.drivers.storage.fake import FakeStorage
from nubes.services import build_services
from nubes.store.db import Database
from nubes.store.models import Account, Disk, Host, Image, Instance, SystemEvent

HOST = "h1"


def nowhere(_: Image) -> BootFiles:
    path = Path("/nonexistent")
    return BootFiles(path / "k", path / "i", path / "r", "")


def host_agent(
    services: Services, compute: FakeComputeDriver, storage: FakeStorage, host_id: str
) -> HostAgent:
    """What nubes.services builds, on fake drivers and a manual clock."""
    db, clock = services.db, services.clock
    network = NetworkAgent(db, FakeNetworkDriver(), services.vpcs, "nubes")
    work = StorageWork(db, clock, storage, compute, lambda image: nowhere(image).rootfs, host_id)
    return HostAgent(
        ComputeAgent(
            db, clock, services.instances, services.consoles, compute, work, network, nowhere, host_id
        ),
        work,
        network,
        Timers(clock, services.instances, services.auto_snapshot_policies),
    )


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[HostAgent, FakeHost, Database]]:
    clock = ManualClock(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
    db = Database(f"sqlite:///{tmp_path / 'nubes.db'}")
    db.migrate()
    services = build_services(db, load_catalog(tmp_path), clock, tmp_path, Quotas())
    services.images.register_system(FAKE_IMAGES[0])
    host = FakeHost()
    storage = FakeStorage()
    agent = host_agent(services, FakeComputeDriver(host), storage, HOST)
    with db.session() as s:
        s.add(Host(id=HOST, vcpus=8, memory_mib=16384, heartbeat_at=clock.now()))
        account = Account(name="owner", uid="1000000000000001", created_at=clock.now())
        s.add(account)
        s.flush()
        now = clock.now()
        s.add(
            Instance(
                id="i-1",
                account_id=account.id,
                region_id="cn-hangzhou",
                zone_id="cn-hangzhou-h",
                host_id=HOST,
                instance_type="ecs.g7.large",
                cpu=2,
                memory_mib=8192,
                image_id=FAKE_IMAGES[0].image_id,
                status=states.STARTING,
                desired=states.WANT_RUNNING,
                vpc_id="vpc-1",
                vswitch_id="vsw-1",
                created_at=now,
                status_changed_at=now,
            )
        )
        s.add(
            Disk(
                id="d-sys",
                account_id=account.id,
                region_id="cn-hangzhou",
                zone_id="cn-hangzhou-h",
                instance_id="i-1",
                disk_type="system",
                category="cloud_essd",
                performance_level="PL1",
                size_gib=20,
                status="In_use",
                image_id=FAKE_IMAGES[0].image_id,
                device="/dev/xvda",
                host_id=HOST,
                created_at=now,
                layer="d-sys",
            )
        )
    storage.create_blank("d-sys", 20)
    yield agent, host, db
    agent.stop()
    db.dispose()


def status(db: Database) -> tuple[str, str]:
    with db.session() as s:
        instance = s.get(Instance, "i-1")
        assert instance is not None
        return instance.status, instance.desired


def test_an_instance_whose_vm_keeps_failing_to_start_ends_stopped(
    agent: tuple[HostAgent, FakeHost, Database],
) -> None:
    compute, host, db = agent
    for _ in range(MAX_START_ATTEMPTS):
        host.inject_failure("start", ComputeError("qemu: could not open the disk"), "i-1")
    for attempt in range(1, MAX_START_ATTEMPTS):
        with pytest.raises(ComputeError):
            compute.step("i-1")
        assert status(db) == (states.STARTING, states.WANT_RUNNING), attempt
    compute.step("i-1")
    assert status(db) == (states.STOPPED, states.WANT_STOPPED)
    assert FakeComputeDriver(host).state("i-1") == PowerState.STOPPED


def test_a_start_that_fails_less_than_the_limit_ends_running(
    agent: tuple[HostAgent, FakeHost, Database],
) -> None:
    compute, host, db = agent
    for _ in range(MAX_START_ATTEMPTS - 1):
        host.inject_failure("start", ComputeError("qemu: busy"), "i-1")
    for _ in range(MAX_START_ATTEMPTS - 1):
        with pytest.raises(ComputeError):
            compute.step("i-1")
    compute.step("i-1")
    assert status(db) == (states.RUNNING, states.WANT_RUNNING)


def test_the_first_pass_after_a_start_finds_a_fake_vm_lost_in_a_host_reboot(
    agent: tuple[HostAgent, FakeHost, Database],
) -> None:
    """Fake VMs are not watched pass after pass (they never change by themselves), but one that
    ran before a host reboot is CRASHED when the emulator comes back: the first pass sees it and
    starts it again, recording the SystemFailure.Reboot event."""
    compute, host, db = agent
    compute.step("i-1")
    assert status(db) == (states.RUNNING, states.WANT_RUNNING)
    host.crash("i-1")  # what FakeHost finds of a VM saved under another boot id
    compute.pass_once(wait=True)
    # the maintenance action AutoRecover (ECS's default) starts it again
    assert status(db) == (states.STARTING, states.WANT_RUNNING)
    compute.pass_once(wait=True)
    assert status(db) == (states.RUNNING, states.WANT_RUNNING)
    assert host.vms["i-1"].boots == 2
    with db.session() as s:
        [event] = s.scalars(select(SystemEvent)).all()
        assert (event.instance_id, event.event_type, event.status) == (
            "i-1",
            "SystemFailure.Reboot",
            "Executed",
        )
        assert "started it again" in event.reason


def test_a_lost_vm_of_an_instance_whose_maintenance_action_is_stop_stays_stopped(
    agent: tuple[HostAgent, FakeHost, Database],
) -> None:
    compute, host, db = agent
    compute.step("i-1")
    with db.session() as s:
        instance = s.get(Instance, "i-1")
        assert instance is not None
        instance.maintenance_action = "Stop"
    host.crash("i-1")
    compute.pass_once(wait=True)
    assert status(db) == (states.STOPPED, states.WANT_RUNNING)
    assert host.vms["i-1"].boots == 1


def test_a_guest_that_powers_itself_off_is_stopped_whatever_its_maintenance_action(
    agent: tuple[HostAgent, FakeHost, Database],
) -> None:
    compute, host, db = agent
    compute.step("i-1")
    host.guest_power_off("i-1")
    compute.pass_once(wait=True)
    assert status(db)[0] == states.STOPPED
