"""Server settings: flags first, then the environment, then defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def default_data_dir() -> Path:
    env = os.environ.get("NUBES_HOME")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "nubes"


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'nubes.db'}"


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8765
    data_dir: Path | None = None
    database_url: str | None = None
    throttle_rate: float = 500.0
    throttle_burst: float = 1000.0
    log_level: str = "info"
    # "real": QEMU, Linux networking (root). "fake": the emulator mode, no root, no KVM.
    driver: str = "real"
    # Prefix of the network namespaces this server owns; two servers on one host need two prefixes.
    netns_prefix: str = "nubes"
    # ECS allows 200 rules per security group; operators (and benchmarks) may allow more.
    max_rules_per_group: int = 200
    # The accelerator of the VMs: auto (KVM when a trial boot proves it works), kvm or tcg.
    accel: str = "auto"
    # This host's name in the store (several hosts: each agent has its own).
    host_id: str = ""
    # Build missing system images in the background at start (they take minutes the first time).
    build_images: bool = True
    # The emulator only: how long each of its system images takes to "build" at the first start,
    # one after the other (0: they are there at once). To try a client against a fresh server.
    fake_image_build_seconds: float = 0.0

    def resolved_data_dir(self) -> Path:
        return (self.data_dir or default_data_dir()).expanduser().resolve()

    def resolved_database_url(self) -> str:
        return (
            self.database_url or os.environ.get("NUBES_DATABASE_URL") or sqlite_url(self.resolved_data_dir())
        )
