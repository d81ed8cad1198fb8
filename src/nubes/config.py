"""Server settings: flags first, then the environment, then defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
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
    # The public network: the host interface (or bridge) on the network that stands for the
    # internet, the operator's public ranges (public IPs and EIPs are taken from them) and the
    # next hop on that network. Without ranges, every public feature answers an error; the
    # emulator takes ranges without an uplink (it keeps addresses and statuses only).
    uplink: str = ""
    public_cidrs: tuple[str, ...] = ()
    public_gateway: str = ""
    # Seconds between two monitoring samples of this host's instances (ECS's finest period is 60 s;
    # tests sample every second). The API answers 60, 600 and 3600 s periods whatever it is.
    monitor_interval: float = 60.0
    # A console session ends after this many seconds without a request (the ECS console's idle
    # sign-out), and in any case SESSION_SECONDS after sign-in.
    console_idle_seconds: float = 1800.0
    # The vCPUs of pay-as-you-go instances an account may hold in a region (ECS: 500 by default,
    # raised on request; operators and benchmarks may set their own).
    max_instance_vcpus: int = 500

    def check_public_network(self) -> None:
        """The public flags make sense together: well-formed IPv4 ranges, a gateway inside one of
        them, and an uplink for the real drivers (the emulator has no data plane)."""
        networks: list[IPv4Network] = []
        for cidr in self.public_cidrs:
            try:
                network = IPv4Network(cidr, strict=True)
            except ValueError as e:
                raise SystemExit(f"nubes: --public-cidr {cidr}: {e}") from None
            if network.num_addresses < 4:
                raise SystemExit(f"nubes: --public-cidr {cidr}: a range needs at least 4 addresses (/30)")
            if any(network.overlaps(other) for other in networks):
                raise SystemExit(f"nubes: --public-cidr {cidr} overlaps another --public-cidr")
            networks.append(network)
        if self.public_gateway:
            try:
                gateway = IPv4Address(self.public_gateway)
            except ValueError as e:
                raise SystemExit(f"nubes: --public-gateway: {e}") from None
            if not any(gateway in n for n in networks):
                raise SystemExit("nubes: --public-gateway must be an address of a --public-cidr range")
        if self.driver != "fake" and networks and not self.uplink:
            raise SystemExit(
                "nubes: --public-cidr needs --uplink IFACE (the interface to the public network)"
            )
        if self.uplink and not networks:
            raise SystemExit("nubes: --uplink needs at least one --public-cidr")

    def resolved_data_dir(self) -> Path:
        return (self.data_dir or default_data_dir()).expanduser().resolve()

    def resolved_database_url(self) -> str:
        return (
            self.database_url or os.environ.get("NUBES_DATABASE_URL") or sqlite_url(self.resolved_data_dir())
        )
