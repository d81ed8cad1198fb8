"""The console in a real browser against emulator servers (Chromium and its fixtures: see
tests/browser_support.py). Browser behaviour does not depend on the store backend: these tests
run against SQLite only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..conftest import LIVE_PUBLIC_CIDR, LiveServer, start_server, stop_server


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
