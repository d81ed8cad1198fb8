"""Chromium for the tests that look at the console in a browser (tests/browser, and the VM
screen test in tests/vm): Playwright drives Debian's Chromium (`./nubes-dev test` installs both;
Playwright cannot download a browser of its own here). The fixtures are registered by
tests/conftest.py; the helpers are imported where they are used.

Screenshots go to docs/screenshots/ when NUBES_SCREENSHOTS=1 (the README shows them), and to the
test's temporary folder otherwise."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page, Playwright, ViewportSize

    from tests.conftest import LiveServer

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
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


# Module scope, not session: while Playwright runs, its event loop is the thread's running loop,
# and a later test on the same worker that calls asyncio.run() would be refused.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def chromium(playwright: Playwright) -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: ./nubes-dev test installs Debian's chromium"
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield browser
    browser.close()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(viewport=DESKTOP)
    context.set_default_timeout(30_000)
    tab = context.new_page()
    yield tab
    context.close()


def sign_in(page: Page, server: LiveServer, key: tuple[str, str]) -> None:
    from playwright.sync_api import expect

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


# How much of a canvas is not its background: the pixels unlike the most common one, counted in
# the page (getImageData), so that a test can tell a drawn screen from a blank one.
INK_SCRIPT = """canvas => {
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    const counts = new Map();
    for (let i = 0; i < data.length; i += 4) {
        const key = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
        counts.set(key, (counts.get(key) || 0) + 1);
    }
    const background = Math.max(...counts.values());
    return { pixels: data.length / 4, ink: data.length / 4 - background, colors: counts.size };
}"""


def canvas_ink(canvas: Locator) -> dict[str, int]:
    """{pixels, ink (pixels unlike the background), colors} of a <canvas>."""
    found: dict[str, int] = canvas.evaluate(INK_SCRIPT)
    return found
