"""Fixtures of the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .host_world import HostWorld


@pytest.fixture
def host_world(tmp_path: Path) -> Iterator[HostWorld]:
    """A store with an account, a VPC, a vSwitch and a group, and a host agent on fake drivers."""
    w = HostWorld(tmp_path)
    try:
        yield w
    finally:
        w.close()
