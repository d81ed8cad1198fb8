"""ECS's name sequences for batches: `web-[1,3]` gives web-001, web-002, ... and UniqueSuffix
appends a sequence number to names without brackets."""

from __future__ import annotations

import re

from nubes import errors

_SEQUENCE = re.compile(r"\[(\d+),(\d+)\]")


def expand(pattern: str, amount: int, unique_suffix: bool, field: str) -> list[str]:
    """The `amount` names a pattern makes (ECS: [begin,bits], at most one such range)."""
    matches = list(_SEQUENCE.finditer(pattern))
    if len(matches) > 1:
        raise errors.invalid_malformed(field, f"{field} may contain at most one [begin,bits] sequence.")
    if matches:
        match = matches[0]
        begin, bits = int(match.group(1)), int(match.group(2))
        if not 1 <= bits <= 8:
            raise errors.invalid_malformed(field, f"The bits of a {field} sequence must be 1 to 8.")
        names = [
            pattern[: match.start()] + str(begin + i).zfill(bits) + pattern[match.end() :]
            for i in range(amount)
        ]
        if len(str(begin + amount - 1)) > bits:
            raise errors.invalid_malformed(field, f"The {field} sequence cannot number {amount} instances.")
        return names
    if unique_suffix and amount > 1:
        return [f"{pattern}{i:03d}" for i in range(1, amount + 1)]
    return [pattern] * amount


_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,62}[A-Za-z0-9])?")


def check_hostname(hostname: str) -> str:
    """Linux host names: 2 to 64 characters, letters, digits, '.' and '-', no '..' or '--' runs at the ends."""
    if (
        len(hostname) < 2
        or not _HOSTNAME.fullmatch(hostname)
        or ".." in hostname
        or ".-" in hostname
        or "-." in hostname
    ):
        raise errors.invalid_host_name_malformed()
    return hostname
