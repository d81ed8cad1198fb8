"""VNC tickets through the store (nubes.domain.vnc) with the host agent on the fake drivers and a
manual clock: the agent gives the VM's VNC server the instance's password (a random one while
none is set) when a URL is asked for, a ticket is redeemed once, not after 15 s, not once the
instance stopped; a driver failure is ServiceUnavailable; and the VNC authentication answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nubes.domain import instance_states as states
from nubes.domain.vnc import Display, VncConsoles
from nubes.drivers.compute.base import ComputeError
from nubes.errors import ApiError
from nubes.rfb import vnc_auth_response
from tests.unit.host_world import HostWorld

REGION = "cn-hangzhou"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[HostWorld]:
    w = HostWorld(tmp_path)

    def agent_told(_key: str) -> None:  # the agent, told at once (here: in the same thread)
        w.monitor.open_vnc_displays()

    w.services.compute_notify.listeners[:] = [agent_told]
    try:
        yield w
    finally:
        w.close()


def running(world: HostWorld) -> str:
    instance_id = world.launch()
    world.reach(instance_id, states.RUNNING)
    return instance_id


def issue(world: HostWorld, instance_id: str) -> str:
    return world.services.vnc.issue(world.scope.account_id, REGION, instance_id)


def test_a_ticket_gives_the_password_and_is_used_once(world: HostWorld) -> None:
    vnc = world.services.vnc
    instance_id = running(world)
    issue(world, instance_id)
    random_one = world.vms.vnc_passwords[instance_id]
    assert len(random_one) == 8  # none set: nobody knows the server's password
    vnc.set_password(world.scope.account_id, REGION, instance_id, "Abc123")
    assert issue(world, instance_id) != issue(world, instance_id)  # a new token each time
    token = issue(world, instance_id)
    assert world.vms.vnc_passwords[instance_id] == "Abc123"
    assert vnc.redeem(token) == Display(f"fake:{instance_id}", "Abc123")
    assert vnc.redeem(token) is None  # once
    assert vnc.redeem("not-a-token") is None


def test_a_ticket_expires_after_15_seconds_and_with_its_instance(world: HostWorld) -> None:
    vnc = world.services.vnc
    instance_id = running(world)
    late, in_time = issue(world, instance_id), issue(world, instance_id)
    world.clock.advance(14.9)
    assert vnc.redeem(in_time) is not None
    world.clock.advance(0.2)
    assert vnc.redeem(late) is None
    stopped = issue(world, instance_id)
    world.act(instance_id, "StopInstance")
    world.reach(instance_id, states.STOPPED)
    assert vnc.redeem(stopped) is None
    with pytest.raises(ApiError) as e:
        issue(world, instance_id)
    assert (e.value.code, e.value.http_status) == ("IncorrectInstanceStatus", 403)
    vnc.set_password(world.scope.account_id, REGION, instance_id, "Xyz789")  # Stopped: allowed


def test_the_password_rule(world: HostWorld) -> None:
    instance_id = running(world)
    for bad in ("abc123", "ABC123", "abcDEF", "123456", "Abc12", "Abc1234", "Abc 12", "Äbc123"):
        with pytest.raises(ApiError) as e:
            world.services.vnc.set_password(world.scope.account_id, REGION, instance_id, bad)
        assert e.value.code == "IncorrectVncPassword.Malformed", bad
    with pytest.raises(ApiError) as e:
        world.services.vnc.set_password(world.scope.account_id, "cn-beijing", instance_id, "Abc123")
    assert e.value.code == "InvalidInstanceId.NotFound"  # another region's name for it


def test_a_display_the_driver_cannot_open_is_unavailable(world: HostWorld) -> None:
    instance_id = running(world)
    world.vms.inject_failure("vnc_display", ComputeError("no VNC server"), instance_id)
    with pytest.raises(ApiError) as e:
        issue(world, instance_id)
    assert (e.value.code, e.value.http_status) == ("ServiceUnavailable", 503)
    assert "no VNC server" in e.value.message
    quiet = VncConsoles(world.db, world.clock, lambda _key: None, timeout=0.0, sleep=lambda _s: None)
    with pytest.raises(ApiError) as e:  # nobody answers
        quiet.issue(world.scope.account_id, REGION, instance_id)
    assert e.value.code == "ServiceUnavailable"


def test_vnc_authentication_answer() -> None:
    # RFB 3.8 7.2.2: DES of the challenge, the key the password's bytes with their bits reversed;
    # the same password gives the same answer, another one another, only 8 bytes count
    challenge = bytes(range(16))
    answer = vnc_auth_response("Abc123", challenge)
    assert len(answer) == 16 and answer != challenge
    assert answer == vnc_auth_response("Abc123", challenge)
    assert answer != vnc_auth_response("Abc124", challenge)
    assert vnc_auth_response("12345678x", challenge) == vnc_auth_response("12345678", challenge)
    # what noVNC's own DES (console/static/novnc/core/crypto/des.js, run under Node) answers
    assert answer.hex() == "9a32f574574adabb51294a09dfc1711f"
