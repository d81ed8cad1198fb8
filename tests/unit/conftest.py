"""Fixtures the unit tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .host_world import HostWorld


@pytest.fixture
def world(tmp_path: Path) -> Iterator[HostWorld]:
    """A store with one account, VPC and host, and its host agent on the fake drivers."""
    w = HostWorld(tmp_path)
    try:
        yield w
    finally:
        w.close()
