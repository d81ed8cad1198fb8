"""A nubes server of their own (emulator, SQLite) for the tests that drive it with the tools
people use for Alibaba Cloud: the tools' behaviour does not depend on the store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..api.test_security_group_api import make_network
from ..conftest import LiveServer, start_server, stop_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    started = start_server(
        tmp_path_factory.mktemp("tools"),
        None,
        "sqlite",
        ["--throttle-rate", "0", "--public-cidr", "198.18.0.0/24"],  # public IPs (libcloud, footmark)
    )
    yield started
    stop_server(started)


@pytest.fixture(scope="module")
def network(server: LiveServer) -> tuple[str, str]:
    """A VPC and a vSwitch of the root account: (vpc id, vswitch id)."""
    return make_network(server, cidr="10.77.0.0/16")
