"""Resource IDs: one prefix table, one generator. Lowercase alphanumerics after the prefix, like ECS."""

from __future__ import annotations

import secrets
import string

PREFIXES = {
    "instance": "i-",
    "disk": "d-",
    "snapshot": "s-",
    "image": "m-",
    "security_group": "sg-",
    "vpc": "vpc-",
    "vswitch": "vsw-",
    "route_table": "vtb-",
    "vrouter": "vrt-",
    "route_entry": "rte-",
    "security_group_rule": "sgr-",
    "network_interface": "eni-",
    "eip": "eip-",
    "nat_gateway": "ngw-",
    "snat_table": "stb-",
    "forward_table": "ftb-",
    "snat_entry": "snat-",
    "forward_entry": "fwd-",
    "deployment_set": "ds-",
    "launch_template": "lt-",
    "auto_snapshot_policy": "sp-",
    "task": "t-",
    "system_event": "e-",
}

_ID_ALPHABET = string.ascii_lowercase + string.digits
_KEY_ALPHABET = string.ascii_letters + string.digits


def new_id(kind: str) -> str:
    """`new_id('instance')` -> 'i-bp1x5...': 20 characters after the prefix, as ECS uses."""
    return PREFIXES[kind] + "".join(secrets.choice(_ID_ALPHABET) for _ in range(20))


def new_access_key_id() -> str:
    return "LTAI" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(20))


def new_access_key_secret() -> str:
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(30))


def new_account_uid() -> str:
    return str(secrets.randbelow(9 * 10**15) + 10**15)


def new_request_id() -> str:
    """ECS request IDs are upper-case UUIDs."""
    raw = secrets.token_hex(16).upper()
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"
