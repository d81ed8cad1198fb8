"""GetInstanceConsoleOutput reads only the store: the agent of the instance's host records the
tail of the VM's serial console there (when it changes, at most every CONSOLE_INTERVAL
seconds, and always before the instance is called Running), and an API process with no driver
at all (here: another store connection, no agent, no driver) answers from it."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from nubes.agent import compute as compute_agent
from nubes.api.app import ApiApp
from nubes.api.signing import sign_v1
from nubes.catalog.model import load_catalog
from nubes.clock import SystemClock
from nubes.config import Settings
from nubes.domain import instance_states as states
from nubes.domain.consoles import CONSOLE_TAIL
from nubes.domain.disks import DiskSpec
from nubes.domain.quotas import Quotas
from nubes.drivers.compute.base import ComputeDriver
from nubes.drivers.compute.fake import FakeComputeDriver
from nubes.drivers.network.base import NetworkDriver
from nubes.drivers.storage.base import StorageDriver
from nubes.services import build_app, build_services
from nubes.store.db import Database
from nubes.store.models import ConsoleOutput
from tests.unit.host_world import KEY_ID, REGION, SECRET, HostWorld


@pytest.fixture
def world(tmp_path: Path) -> Iterator[HostWorld]:
    world = HostWorld(tmp_path)
    yield world
    world.close()


@pytest.fixture
def api(world: HostWorld, tmp_path: Path) -> Iterator[ApiApp]:
    """The API of another process: its own store connection, and no host agent, so no driver."""
    db = Database(world.url)
    services = build_services(db, load_catalog(tmp_path), SystemClock(), tmp_path, Quotas())
    drivers = (ComputeDriver, StorageDriver, NetworkDriver)
    assert not any(isinstance(value, drivers) for value in vars(services).values())
    assert services.compute_notify.listeners == [] and services.notify.listeners == []  # no agent here
    yield build_app(services, Settings(throttle_rate=0))
    db.dispose()


def console_output(app: ApiApp, instance_id: str, **extra: str) -> dict[str, Any]:
    params = {
        "Action": "GetInstanceConsoleOutput",
        "Version": "2014-05-26",
        "Format": "JSON",
        "RegionId": REGION,
        "InstanceId": instance_id,
        **extra,
    }
    response = app.handle("GET", "/", urlencode(sign_v1("GET", params, KEY_ID, SECRET)).encode(), [], b"")
    body: dict[str, Any] = json.loads(response.body)
    assert response.status == 200, body
    return body


def vm_console(world: HostWorld, instance_id: str) -> bytes:
    return FakeComputeDriver(world.vms).console_output(instance_id)


def test_the_api_answers_from_the_store_with_no_driver(
    world: HostWorld, api: ApiApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance_id = world.launch()
    assert console_output(api, instance_id)["ConsoleOutput"] == ""  # nothing printed yet
    world.reach(instance_id, states.RUNNING)
    body = console_output(api, instance_id)
    assert set(body) == {"RequestId", "InstanceId", "ConsoleOutput", "LastUpdateTime"}
    assert body["InstanceId"] == instance_id and body["LastUpdateTime"].endswith(":00Z")
    assert base64.b64decode(body["ConsoleOutput"]) == vm_console(
        world, instance_id
    )  # recorded before Running
    assert b"no virtual machine runs here" in base64.b64decode(body["ConsoleOutput"])

    # a change of the console reaches the store on a later pass
    monkeypatch.setattr(compute_agent, "CONSOLE_INTERVAL", 0.0)
    disk_id = world.services.disks.create(
        world.scope, DiskSpec(zone_id=None, category="cloud_essd", size_gib=20, instance_id=instance_id)
    )
    world.settle(lambda: world.disk_status(disk_id) == "In_use")
    world.agent.pass_once(wait=True)
    output = base64.b64decode(console_output(api, instance_id)["ConsoleOutput"])
    assert output == vm_console(world, instance_id) and f"disk {disk_id} plugged in".encode() in output

    symbols = base64.b64decode(console_output(api, instance_id, RemoveSymbols="true")["ConsoleOutput"])
    assert symbols == bytes(b for b in output if b in (9, 10, 13) or 32 <= b < 127)


def test_the_console_is_recorded_when_it_changes_at_a_bounded_rate(
    world: HostWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance_id = world.launch()
    world.reach(instance_id, states.RUNNING)
    compute = world.agent.compute
    recorded = world.services.consoles.tail(instance_id)
    assert recorded == vm_console(world, instance_id)

    monkeypatch.setattr(compute_agent, "CONSOLE_INTERVAL", 3600.0)
    disk_id = world.services.disks.create(
        world.scope, DiskSpec(zone_id=None, category="cloud_essd", size_gib=20, instance_id=instance_id)
    )
    world.settle(lambda: world.disk_status(disk_id) == "In_use")
    plugged = f"disk {disk_id} plugged in".encode()
    assert plugged in vm_console(world, instance_id)
    assert world.services.consoles.tail(instance_id) == recorded  # too soon after the last recording
    wanted, _ = compute.instances_to_step(everything=False)
    assert instance_id in wanted  # a steady fake instance, looked at until its console is recorded
    monkeypatch.setattr(compute_agent, "CONSOLE_INTERVAL", 0.0)
    world.agent.pass_once(wait=True)
    assert plugged in world.services.consoles.tail(instance_id)
    assert instance_id not in compute.instances_to_step(everything=False)[0]

    # a fake VM's console changes only through the driver's calls (or a test hook): the first
    # pass after an agent start looks at it, and the store keeps the tail only
    world.vms.say(instance_id, "x" * CONSOLE_TAIL)
    world.agent.stop()
    world.agent = world.new_agent()
    world.agent.pass_once(wait=True)
    assert world.services.consoles.tail(instance_id) == b"x" * (CONSOLE_TAIL - 1) + b"\n"


def test_a_deleted_instance_takes_its_console_along(world: HostWorld) -> None:
    instance_id = world.launch()
    world.reach(instance_id, states.RUNNING)
    world.act(instance_id, "ForceDeleteInstance", force=True)
    world.reach(instance_id, None)
    with world.db.session() as s:
        assert s.get(ConsoleOutput, instance_id) is None
    assert world.services.consoles.record(instance_id, b"late") is False  # nothing for a gone instance
    assert world.services.consoles.tail(instance_id) == b""
