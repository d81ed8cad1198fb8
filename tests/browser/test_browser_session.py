"""Signing in and out of the console in Chromium, and what a session refuses: a form posted
without its CSRF token, a session left idle past the server's timeout."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from ..api.test_instances_api import Lab
from ..browser_support import DESKTOP, PHONE, fits, screenshot, sign_in
from ..conftest import LIVE_PUBLIC_CIDR, LiveServer, start_server, stop_server

pytestmark = pytest.mark.browser

IDLE_SECONDS = 3


def new_key(server: LiveServer) -> tuple[str, str]:
    return server.create_account(f"b-{uuid.uuid4().hex[:12]}")


def test_sign_in_shows_the_overview_and_sign_out_ends_the_session(
    page: Page, console_server: LiveServer, tmp_path: Path
) -> None:
    base = f"http://{console_server.endpoint}/console"
    page.goto(f"{base}/")
    expect(page).to_have_url(f"{base}/signin")
    screenshot(page, "signin", tmp_path)
    key = new_key(console_server)
    page.fill("input[name=access_key_id]", key[0])
    page.fill("input[name=access_key_secret]", "not-the-secret")
    page.click("button[type=submit]")
    expect(page.locator(".error-code")).to_have_text("SignatureDoesNotMatch")
    sign_in(page, console_server, key)
    expect(page.locator("h1")).to_contain_text("Overview")
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["nubes_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert key[1] not in session["value"]
    assert page.evaluate("document.cookie") == ""  # nothing the page's scripts can read
    page.click("text=Sign out")
    expect(page).to_have_url(f"{base}/signin")
    page.goto(f"{base}/instances")
    expect(page).to_have_url(f"{base}/signin")  # the old cookie no longer opens anything


def test_a_form_without_its_csrf_token_is_refused(page: Page, console_server: LiveServer) -> None:
    sign_in(page, console_server, new_key(console_server))
    page.evaluate("document.querySelectorAll('input[name=csrf_token]').forEach(e => e.value = 'forged')")
    with page.expect_response(lambda r: r.url.endswith("/console/signout")) as answer:
        page.click("text=Sign out")
    assert answer.value.status == 403
    expect(page.locator("body")).to_contain_text("CSRF")
    page.goto(f"http://{console_server.endpoint}/console/")
    expect(page.locator("h1")).to_contain_text("Overview")  # still signed in: the forged post did nothing


@pytest.fixture(scope="module")
def impatient_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path_factory.mktemp("idle"),
        None,
        "sqlite",
        ["--public-cidr", LIVE_PUBLIC_CIDR, "--console-idle-timeout", str(IDLE_SECONDS)],
    )
    yield server
    stop_server(server)


def test_an_idle_session_expires(page: Page, impatient_server: LiveServer) -> None:
    sign_in(page, impatient_server, new_key(impatient_server))
    page.click("nav >> text=Instances")
    expect(page.locator("h1")).to_contain_text("Instances")
    time.sleep(IDLE_SECONDS + 1)
    page.click("nav >> text=Overview")
    expect(page).to_have_url(f"http://{impatient_server.endpoint}/console/signin")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390px"])
def test_every_page_fits(
    chromium: Browser, console_server: LiveServer, viewport: ViewportSize, tmp_path: Path
) -> None:
    """Every page the navigation bar leads to, and the create wizard, is no wider than the window
    (wide tables scroll inside their own box) and keeps the navigation in reach."""
    context = chromium.new_context(viewport=viewport)
    try:
        tab = context.new_page()
        key = new_key(console_server)
        lab = Lab(console_server, key, "10.33.0.0/16")  # something in the tables
        [instance_id] = lab.run(instance_name="fits")
        sign_in(tab, console_server, key)
        links = tab.locator("header nav a")
        paths = [links.nth(n).get_attribute("href") or "" for n in range(links.count())]
        assert len(paths) >= 10, paths
        for path in [*paths, "/console/instances/new", f"/console/instances/{instance_id}"]:
            answer = tab.goto(f"http://{console_server.endpoint}{path}")
            assert answer is not None and answer.status == 200, path
            assert fits(tab, viewport["width"]), path
            expect(tab.locator("header nav")).to_be_visible()
        if viewport == PHONE:
            tab.goto(f"http://{console_server.endpoint}/console/instances")
            screenshot(tab, "instances-phone", tmp_path)
    finally:
        context.close()
