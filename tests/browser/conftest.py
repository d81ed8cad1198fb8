"""The console in a real browser: Playwright drives Debian's Chromium (`./nubes-dev test`
installs both; Playwright cannot download a browser of its own here) against emulator servers.

Browser behaviour does not depend on the store backend: these tests run against SQLite only.
Screenshots of the main pages go to docs/screenshots/ when NUBES_SCREENSHOTS=1 (the README shows
them), and to the test's temporary folder otherwise."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, ViewportSize, expect, sync_playwright

from ..conftest import LIVE_PUBLIC_CIDR, LiveServer, start_server, stop_server

CHROMIUM = "/usr/bin/chromium"
# As root, without a display, on a machine whose network is closed: no sandbox, no GPU, and none
# of the background connections to Google's hosts that would be refused many at a time.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def chromium(playwright: Playwright) -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: ./nubes-dev test installs Debian's chromium"
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path_factory.mktemp("browser"),
        None,
        "sqlite",
        ["--throttle-rate", "0", "--public-cidr", LIVE_PUBLIC_CIDR],
    )
    yield server
    stop_server(server)


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(viewport=DESKTOP)
    context.set_default_timeout(30_000)
    tab = context.new_page()
    yield tab
    context.close()


def sign_in(page: Page, server: LiveServer, key: tuple[str, str]) -> None:
    page.goto(f"http://{server.endpoint}/console/")
    expect(page).to_have_url(f"http://{server.endpoint}/console/signin")
    page.fill("input[name=access_key_id]", key[0])
    page.fill("input[name=access_key_secret]", key[1])
    page.click("button[type=submit]")
    expect(page).to_have_url(f"http://{server.endpoint}/console/")


def screenshot(page: Page, name: str, tmp_path: Path) -> Path:
    """The page as a PNG: into docs/screenshots/ with NUBES_SCREENSHOTS=1, else into tmp_path."""
    folder = SCREENSHOTS if os.environ.get("NUBES_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def fits(page: Page, width: int) -> bool:
    """Nothing makes the page wider than the window (wide tables scroll inside their own box)."""
    return bool(page.evaluate(f"document.documentElement.scrollWidth <= {width}"))
