"""Small pieces of nft syntax the ruleset renderers share. Pure."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable


def comment(text: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.:/ -]", "_", text)[:120]
    return f'comment "{safe}"'


def ip_sort_key(ip: str) -> int:
    return int(ipaddress.IPv4Address(ip))


def set_literal(items: Iterable[str]) -> str:
    values = list(items)
    return values[0] if len(values) == 1 else "{ " + ", ".join(values) + " }"


def address_set(items: Iterable[str]) -> list[str]:
    """Addresses and CIDR blocks as nft wants them in one anonymous set, which refuses
    overlapping intervals: a block inside another one left out, a /32 written as an address."""
    networks = sorted({ipaddress.IPv4Network(i, strict=False) for i in items})
    kept = [n for n in networks if not any(n != other and n.subnet_of(other) for other in networks)]
    return [str(n.network_address) if n.prefixlen == 32 else str(n) for n in kept]
