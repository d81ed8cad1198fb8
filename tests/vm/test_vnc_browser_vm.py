"""Done when (issue 14): against a real VM (TCG), the console's remote connection page shows the
guest's screen on noVNC's canvas (its boot text and login prompt, not a blank or firmware-only
screen) and takes keys: a user name typed at the prompt is echoed, and Ctrl+Alt+Del from the
page makes the tiny guest's init reboot it (its serial console shows a second boot)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from nubes.guest.images import ImageManifest
from tests.browser_support import canvas_ink, screenshot, sign_in
from tests.conftest import LiveServer
from tests.e2e.netprobe import eventually
from tests.vm.test_vnc_vm import boots, running_tiny, set_password

pytestmark = [pytest.mark.vm, pytest.mark.browser]

PASSWORD = "Scr33n"


@pytest.fixture(scope="module")
def desk(
    images_dir: Path, tiny_image: ImageManifest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, tuple[str, str], Any, str]]:
    with running_tiny(images_dir, tmp_path_factory.mktemp("vnc-browser"), "10.59.0.0/16") as running:
        server, net, instance_id = running
        yield server, net.key, net.ecs, instance_id


def test_the_remote_connection_page_shows_the_vm(
    desk: tuple[LiveServer, tuple[str, str], Any, str], page: Page, tmp_path: Path
) -> None:
    server, key, ecs, instance_id = desk
    set_password(ecs, instance_id, PASSWORD)
    assert boots(ecs, instance_id) == 1
    sign_in(page, server, key)
    page.goto(f"http://{server.endpoint}/console/instances/{instance_id}/vnc")
    page.fill("#vnc-password", PASSWORD)
    page.click("#vnc-connect-button")
    expect(page.locator("#vnc-status")).to_have_text("connected", timeout=60_000)
    canvas = page.locator("#vnc-screen canvas")
    assert eventually(lambda: canvas_ink(canvas)["ink"] > 0, 30), canvas_ink(canvas)  # not blank
    # the kernel's log and a login prompt: far more than the firmware's two lines of text
    assert eventually(lambda: canvas_ink(canvas)["ink"] > 20_000, 60), canvas_ink(canvas)
    before = canvas_ink(canvas)
    canvas.click()
    page.keyboard.type("root")  # echoed at the login prompt
    assert eventually(lambda: canvas_ink(canvas)["ink"] > before["ink"], 30), (before, canvas_ink(canvas))
    print("the VM's screen on the canvas, before and after typing:", before, canvas_ink(canvas))
    screenshot(page, "vnc", tmp_path)
    page.click("#vnc-ctrl-alt-del")  # busybox init: ::ctrlaltdel: reboot
    deadline = time.monotonic() + 180
    while boots(ecs, instance_id) < 2 and time.monotonic() < deadline:
        time.sleep(1)
    assert boots(ecs, instance_id) >= 2, "Ctrl+Alt+Del from the page did not reboot the guest"
