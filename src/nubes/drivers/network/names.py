"""Names of the kernel objects the network driver creates.

Interface names are limited to 15 characters (IFNAMSIZ - 1), and ids such as
`eni-2ze8f1kq0a9rb3xwzc5d` are longer, so device names are a 3-letter kind followed by
12 hex digits of a SHA-256 of the id (48 bits: collisions among the few hundred devices of
one namespace are not a practical concern). Every device lives inside a VPC namespace,
never in the host's, so names only need to be unique within one VPC.

The id a device stands for is written into its `ifalias` (see `*_alias` below), so the
driver reads the kernel, not a file, to learn what exists.
"""

from __future__ import annotations

import hashlib
import re

IFNAMSIZ = 15

# ifalias markers. The prefix of the driver is part of the namespace markers, so two
# drivers with different prefixes (tests running side by side) never adopt each other's.
VPC_MARK = "nubes-vpc"
HOST_MARK = "nubes-host"
VSWITCH_MARK = "nubes-vsw"
PORT_MARK = "nubes-port"
PUBLIC_MARK = "nubes-pub"


def short_hash(value: str, length: int = 12) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:length]


def netns_name(prefix: str, vpc_id: str) -> str:
    """The network namespace of a VPC."""
    return f"{prefix}-{vpc_id}"


BRIDGE_PREFIX = "nbr"
TAP_PREFIX = "ntp"
VETH_PREFIX = "nve"
PUBLIC_PREFIX = "npb"
SHAPING_PREFIX = "nib"
PORT_DEVICE_PREFIXES = (TAP_PREFIX, VETH_PREFIX)


def bridge_name(vswitch_id: str) -> str:
    """The bridge of a vSwitch (in the VPC namespace)."""
    return BRIDGE_PREFIX + short_hash(vswitch_id)


def tap_name(port_id: str) -> str:
    """The tap of a VM's network interface (in the VPC namespace)."""
    return TAP_PREFIX + short_hash(port_id)


def veth_name(port_id: str) -> str:
    """The bridge end of a test host's veth pair (in the VPC namespace); the other end is
    `eth0` in the test host's namespace."""
    return VETH_PREFIX + short_hash(port_id)


def public_device(vpc_id: str) -> str:
    """The VPC's leg on the uplink: a macvlan of the uplink, living in the VPC namespace, that
    holds the VPC's public addresses."""
    return PUBLIC_PREFIX + short_hash(vpc_id)


def shaping_device(vpc_id: str) -> str:
    """The ifb the leg's inbound traffic is redirected to, to be shaped (in the VPC namespace)."""
    return SHAPING_PREFIX + short_hash(vpc_id)


def public_mac(seed: str) -> str:
    """A fixed, locally administered unicast MAC for a VPC's uplink leg (`seed` names the VPC
    and the host, so that the legs of one VPC on several hosts differ)."""
    h = short_hash("pub:" + seed, 10)
    return "02:" + ":".join(h[i : i + 2] for i in range(0, 10, 2))


def port_device(port_id: str, kind: str) -> str:
    return tap_name(port_id) if kind == "tap" else veth_name(port_id)


def bridge_mac(vswitch_id: str) -> str:
    """A fixed, locally administered unicast MAC for a vSwitch's bridge (the gateway's MAC).
    Without it a Linux bridge takes the lowest MAC of its ports, which changes as ports come
    and go and would leave stale entries in the guests' ARP caches."""
    h = short_hash("gw:" + vswitch_id, 10)
    return "02:" + ":".join(h[i : i + 2] for i in range(0, 10, 2))


def chain_token(value: str) -> str:
    """An id made safe for an nftables chain name."""
    return re.sub(r"[^A-Za-z0-9_]", "_", value)


# Aliases are colon-separated (no spaces, so they pass through `ip -batch` unquoted); ids
# (vpc-..., vsw-..., eni-...) and prefixes never contain a colon.


def vpc_alias(prefix: str, vpc_id: str) -> str:
    return f"{VPC_MARK}:{prefix}:{vpc_id}"


def host_alias(prefix: str, vpc_id: str, port_id: str) -> str:
    return f"{HOST_MARK}:{prefix}:{vpc_id}:{port_id}"


def vswitch_alias(vswitch_id: str, config: str) -> str:
    return f"{VSWITCH_MARK}:{vswitch_id}:{config}"


def port_alias(port_id: str, config: str) -> str:
    return f"{PORT_MARK}:{port_id}:{config}"


def public_alias(config: str) -> str:
    return f"{PUBLIC_MARK}:{config}"


def parse_alias(alias: str) -> list[str]:
    return alias.split(":")
