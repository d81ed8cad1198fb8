"""Done when (issue 14, VNC): on a real VM, DescribeInstanceVncUrl's one-time URL reaches the
VM's display through nubes' websocket proxy: an RFB client logs on with the password
ModifyInstanceVncPasswd set, receives a framebuffer that is not all one color, and its keys
reach the guest: Ctrl+Alt+Del makes the tiny guest's init reboot it (its serial console shows a
second boot). The screen is the guest's own, as on ECS: the kernel's boot messages and a login
prompt on the framebuffer console the bochs DRM driver gives the QEMU VGA (SeaBIOS alone only
writes the top two text lines), and what is typed at the prompt shows. A new password takes effect at once, the old one
(and none set: nobody) is refused, and a used URL does not connect again."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import websockets
from alibabacloud_ecs20140526 import models as em

from nubes.guest.images import ImageManifest
from tests.conftest import LiveServer, start_server, stop_server
from tests.e2e.conftest import Net, make_net
from tests.rfb_client import ALT_L, CONTROL_L, DELETE, AuthFailed, RfbClient, Screen, connect
from tests.vm.test_instance_lifecycle import REAL_SERVER, REGION, launch_tiny, wait_status

pytestmark = pytest.mark.vm

RETURN = 0xFF0D  # X11 keysym


def kill_leftovers(server: LiveServer) -> None:
    """What a failed test may leave behind: its VMs (stopped by the pid their handles name) and
    its namespaces."""
    for handle in (server.data_dir / "run" / "vms").glob("*/handle.json"):
        try:
            os.kill(int(json.loads(handle.read_text())["pid"]), signal.SIGKILL)
        except (OSError, ValueError, KeyError):
            pass
    from nubes.drivers.network.linux import LinuxNetworkDriver

    LinuxNetworkDriver(server.data_dir / "run" / "network", prefix=server.netns_prefix).sync([])


@contextmanager
def running_tiny(images_dir: Path, data: Path, cidr: str) -> Iterator[tuple[LiveServer, Net, str]]:
    """A real server with one Running tiny instance in a network of its own, all removed after."""
    os.environ["NUBES_IMAGES_DIR"] = str(images_dir)
    server = start_server(data, None, "sqlite", list(REAL_SERVER))
    try:
        net = make_net(server, cidr)
        instance_id = launch_tiny(net.ecs, net.vswitch_id, net.group())
        assert wait_status(net.ecs, instance_id, "Running") == "Running"
        yield server, net, instance_id
        net.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))
    finally:
        stop_server(server)
        kill_leftovers(server)


@pytest.fixture(scope="module")
def vm(
    images_dir: Path, tiny_image: ImageManifest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, Any, str]]:
    with running_tiny(images_dir, tmp_path_factory.mktemp("vnc"), "10.58.0.0/16") as (
        server,
        net,
        instance_id,
    ):
        yield server, net.ecs, instance_id


def vnc_url(ecs: Any, instance_id: str) -> str:
    return str(
        ecs.describe_instance_vnc_url(
            em.DescribeInstanceVncUrlRequest(region_id=REGION, instance_id=instance_id)
        ).body.vnc_url
    )


def set_password(ecs: Any, instance_id: str, password: str) -> None:
    ecs.modify_instance_vnc_passwd(
        em.ModifyInstanceVncPasswdRequest(region_id=REGION, instance_id=instance_id, vnc_password=password)
    )


def boots(ecs: Any, instance_id: str) -> int:
    """How often the guest came up, by the ready lines on its serial console."""
    output = ecs.get_instance_console_output(
        em.GetInstanceConsoleOutputRequest(region_id=REGION, instance_id=instance_id)
    ).body.console_output
    return base64.b64decode(output).decode(errors="replace").count("NUBES-READY")


def log_on_fails(url: str, password: str) -> str:
    """Log on with `password`, expecting a refusal: the server's reason."""

    async def attempt() -> str:
        async with connect(url) as ws:
            with pytest.raises(AuthFailed) as info:
                await RfbClient(ws).log_on(password)
            return str(info.value)

    return asyncio.run(attempt())


def test_the_display_through_the_one_time_url(vm: tuple[LiveServer, Any, str]) -> None:
    server, ecs, instance_id = vm
    # no password set yet: the VNC server has a random one, nobody logs on
    print("refused without a password:", log_on_fails(vnc_url(ecs, instance_id), "Abc123"))
    set_password(ecs, instance_id, "Abc123")  # while it runs: at once (an I/O optimized instance)
    url = vnc_url(ecs, instance_id)
    assert boots(ecs, instance_id) == 1
    assert url.startswith(f"ws://{server.endpoint}/vnc/websocket?s=")

    async def session() -> tuple[int, int, int, str]:
        async with connect(url) as ws:
            assert ws.subprotocol == "binary"
            client = RfbClient(ws)
            screen = await client.log_on("Abc123")
            colors: set[bytes] = set()
            deadline = time.monotonic() + 60
            while len(colors) < 2 and time.monotonic() < deadline:
                await client.update(screen)
                colors = screen.colors()
            await client.key(RETURN)
            await client.key(ord("a"))
            assert await client.update(screen) >= 1  # still served after the key events
            await client.chord(CONTROL_L, ALT_L, DELETE)  # busybox init: ::ctrlaltdel: reboot
            return screen.width, screen.height, len(screen.colors()), screen.name

    width, height, colors, name = asyncio.run(session())
    print(f"VNC screen {width}x{height} {name!r}: {colors} colors")
    assert width >= 320 and height >= 200
    assert colors >= 2, "the framebuffer is all one color"
    deadline = time.monotonic() + 180
    while boots(ecs, instance_id) < 2 and time.monotonic() < deadline:
        time.sleep(1)
    assert boots(ecs, instance_id) >= 2, "Ctrl+Alt+Del did not reboot the guest"
    assert wait_status(ecs, instance_id, "Running") == "Running"

    async def reuse() -> int | None:
        async with connect(url) as ws:
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            return ws.close_code

    assert asyncio.run(reuse()) == 1008  # the URL was used

    set_password(ecs, instance_id, "Xyz789")
    log_on_fails(vnc_url(ecs, instance_id), "Abc123")

    async def again() -> None:
        async with connect(vnc_url(ecs, instance_id)) as ws:
            await RfbClient(ws).log_on("Xyz789")

    asyncio.run(again())


def lower_half_lit(screen: Screen) -> int:
    """How many pixels of the lower half of `screen` are not the background (top left's color)."""
    step = screen.bytes_per_pixel
    background = bytes(screen.pixels[:step])
    lower = screen.pixels[(screen.height // 2) * screen.width * step :]
    return sum(1 for i in range(0, len(lower), step) if lower[i : i + step] != background)


def test_the_screen_shows_the_boot_and_a_login_prompt(vm: tuple[LiveServer, Any, str]) -> None:
    _server, ecs, instance_id = vm
    # the guest's boot up to its ready line (after the test above: its second, Ctrl+Alt+Del's)
    deadline = time.monotonic() + 180
    while boots(ecs, instance_id) < 1 and time.monotonic() < deadline:
        time.sleep(1)
    assert boots(ecs, instance_id) >= 1
    set_password(ecs, instance_id, "Abc123")
    url = vnc_url(ecs, instance_id)

    async def session() -> tuple[int, int, int, int]:
        async with connect(url) as ws:
            client = RfbClient(ws)
            screen = await client.log_on("Abc123")
            lit = 0
            deadline = time.monotonic() + 60  # the boot messages follow the ready line
            while lit == 0 and time.monotonic() < deadline:
                await client.update(screen)
                lit = lower_half_lit(screen)
                if lit == 0:
                    await asyncio.sleep(1)
            before = bytes(screen.pixels)
            for char in "root":
                await client.key(ord(char))
            changed = 0
            deadline = time.monotonic() + 30
            while not changed and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                await client.update(screen)
                changed = sum(1 for a, b in zip(before, screen.pixels, strict=True) if a != b)
            return screen.width, screen.height, lit, changed

    width, height, lit, changed = asyncio.run(session())
    print(f"VNC screen {width}x{height}: {lit} lit pixels in the lower half; typing changed {changed} bytes")
    assert lit > 0, "the lower half of the screen is blank: only the firmware wrote to it"
    assert changed > 0, "typing at the login prompt did not show"
