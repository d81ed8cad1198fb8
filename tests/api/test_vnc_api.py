"""ModifyInstanceVncPasswd and DescribeInstanceVncUrl through the official SDK against the
emulator, and the one-time websocket URL: used once, before it expires, while the instance runs
(a refused one is closed with 1008). The emulator's VMs have no display: the URL reaches
nubes.api.vnc_standin, which asks for the instance's VNC password as QEMU would and draws the
keys it is sent; a real VM's screen is tests/vm/test_vnc_vm.py's."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import websockets
from alibabacloud_ecs20140526 import models as em

from ..conftest import LiveServer
from ..rfb_client import AuthFailed, RfbClient, connect
from .test_instances_api import Lab, error_of
from .test_vpc_api import REGION


@pytest.fixture
def lab(live: LiveServer, fresh_key: tuple[str, str]) -> Lab:
    return Lab(live, fresh_key, "10.57.0.0/16")


def set_password(lab: Lab, instance_id: str, password: str) -> None:
    lab.ecs.modify_instance_vnc_passwd(
        em.ModifyInstanceVncPasswdRequest(region_id=REGION, instance_id=instance_id, vnc_password=password)
    )


def vnc_url(lab: Lab, instance_id: str) -> str:
    body = lab.ecs.describe_instance_vnc_url(
        em.DescribeInstanceVncUrlRequest(region_id=REGION, instance_id=instance_id)
    ).body
    assert body.request_id
    return str(body.vnc_url)


def close_code(url: str) -> int | None:
    """How the proxy ends a websocket to `url` at once: its close code."""

    async def attempt() -> int | None:
        async with websockets.connect(url, subprotocols=[websockets.Subprotocol("binary")]) as ws:
            assert ws.subprotocol == "binary"
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            return ws.close_code

    return asyncio.run(attempt())


def session(url: str, password: str) -> tuple[int, int]:
    """Log on to the stand-in display and press a key: the colors of the screen before and after."""

    async def attempt() -> tuple[int, int]:
        async with connect(url) as ws:
            client = RfbClient(ws)
            screen = await client.log_on(password)
            assert (screen.width, screen.height) == (720, 400)
            await client.update(screen)
            before = len(screen.colors())
            await client.key(ord("a"))
            await client.update(screen)
            return before, len(screen.colors())

    return asyncio.run(attempt())


def refused(url: str, password: str) -> bool:
    try:
        session(url, password)
    except AuthFailed:
        return True
    return False


def test_password_rules_and_statuses(lab: Lab) -> None:
    [instance_id] = lab.run()
    assert lab.wait(instance_id, "Running") == "Running"
    for bad in ("abc123", "ABC123", "Abcdef", "Abc12", "Abc1234", "Abc12!", ""):
        e = error_of(lambda bad=bad: set_password(lab, instance_id, bad))
        if bad:
            assert (e.code, e.status_code) == ("IncorrectVncPassword.Malformed", 400), bad
        else:
            assert e.code.startswith("MissingParameter") and e.status_code == 400
    assert refused(vnc_url(lab, instance_id), "Abc123")  # none set yet: nobody logs on
    set_password(lab, instance_id, "Abc123")
    assert refused(vnc_url(lab, instance_id), "Xyz789")
    e = error_of(lambda: set_password(lab, "i-nothere000000000000", "Abc123"))
    assert e.code == "InvalidInstanceId.NotFound"
    lab.ecs.stop_instance(em.StopInstanceRequest(instance_id=instance_id))
    assert lab.wait(instance_id, "Stopped") == "Stopped"
    set_password(lab, instance_id, "Xyz789")  # a stopped instance's password may change
    e = error_of(lambda: vnc_url(lab, instance_id))
    assert (e.code, e.status_code) == ("IncorrectInstanceStatus", 403)


def test_url_is_one_time(live: LiveServer, lab: Lab) -> None:
    [instance_id] = lab.run()
    assert lab.wait(instance_id, "Running") == "Running"
    set_password(lab, instance_id, "Abc123")
    url = vnc_url(lab, instance_id)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("ws", live.endpoint, "/vnc/websocket")
    [token] = parse_qs(parts.query)["s"]
    assert len(token) >= 32
    assert vnc_url(lab, instance_id) != url  # a new ticket each time
    assert session(url, "Abc123") == (2, 3)  # a key press drawn as a block of a third color
    assert close_code(url) == 1008  # used
    assert close_code(url.replace(token, token[:-2] + "xx")) == 1008  # unknown
    assert close_code(f"ws://{live.endpoint}/vnc/websocket") == 1008  # none


def test_url_expires_and_needs_a_running_instance(lab: Lab) -> None:
    [instance_id] = lab.run()
    assert lab.wait(instance_id, "Running") == "Running"
    late = vnc_url(lab, instance_id)
    stopped = vnc_url(lab, instance_id)
    lab.ecs.stop_instance(em.StopInstanceRequest(instance_id=instance_id))
    assert lab.wait(instance_id, "Stopped") == "Stopped"
    assert close_code(stopped) == 1008  # the instance no longer runs
    lab.ecs.start_instance(em.StartInstanceRequest(instance_id=instance_id))
    assert lab.wait(instance_id, "Running") == "Running"
    fresh = vnc_url(lab, instance_id)
    time.sleep(15.5)  # ECS: a VncUrl is valid for 15 s
    assert close_code(late) == 1008
    assert close_code(fresh) == 1008
