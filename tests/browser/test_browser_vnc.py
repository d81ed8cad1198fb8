"""The remote connection page in Chromium against the emulator (whose VMs have a stand-in VNC
display: a screen that draws a block for each key press): set the VNC password, connect with it,
see a drawn screen on noVNC's canvas, type, see the screen change; a wrong password is refused.
The same page against a real VM is in tests/vm/test_vnc_browser_vm.py."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from ..api.test_instances_api import Lab
from ..browser_support import canvas_ink, screenshot, sign_in
from ..conftest import LiveServer
from ..e2e.netprobe import eventually

pytestmark = pytest.mark.browser

PASSWORD = "Vnc123"


def test_the_vm_screen_in_the_browser(page: Page, console_server: LiveServer, tmp_path: Path) -> None:
    key = console_server.create_account(f"vnc-{uuid.uuid4().hex[:10]}")
    lab = Lab(console_server, key, "10.31.0.0/16")
    [instance_id] = lab.run(instance_name="desk")
    assert lab.wait(instance_id, "Running") == "Running"
    sign_in(page, console_server, key)
    page.goto(f"http://{console_server.endpoint}/console/instances/{instance_id}")
    page.click("#vnc-link")

    # no password yet: nobody logs on, whatever is typed
    page.fill("#vnc-password", "Wrong1")
    page.click("#vnc-connect-button")
    expect(page.locator("#vnc-status")).not_to_have_text("connecting", timeout=30_000)
    expect(page.locator("#vnc-status")).not_to_have_text("connected")

    page.fill("#vnc-password-form input[name=vnc_password]", PASSWORD)
    page.click("#vnc-password-form button[type=submit]")
    expect(page.locator("#vnc-notice")).to_be_visible()
    page.fill("#vnc-password", PASSWORD)
    page.click("#vnc-connect-button")
    expect(page.locator("#vnc-status")).to_have_text("connected", timeout=30_000)
    canvas = page.locator("#vnc-screen canvas")
    expect(canvas).to_be_visible()
    assert eventually(lambda: canvas_ink(canvas)["colors"] > 1, 10)  # a drawn screen, not a blank one
    before = canvas_ink(canvas)
    canvas.click()
    page.keyboard.type("nubes")
    assert eventually(lambda: canvas_ink(canvas)["ink"] > before["ink"], 10), (before, canvas_ink(canvas))
    screenshot(page, "vnc-emulator", tmp_path)
    page.click("#vnc-disconnect")
    expect(page.locator("#vnc-status")).not_to_have_text("connected")
