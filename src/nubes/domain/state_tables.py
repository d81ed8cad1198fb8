"""What the state tables (instance_states, disk_states) share: the refusal of a status move a
table does not allow. Such a move is a bug in whoever asked for it, never a user's error: it is
logged and raised, and the status stays as it was."""

from __future__ import annotations

import logging
from typing import NoReturn

log = logging.getLogger("nubes.domain.state_tables")


class IllegalStatusMove(RuntimeError):
    """A status move the resource's state table does not allow (a bug)."""


def refuse(resource: str, resource_id: str, status: str, move: str) -> NoReturn:
    message = f"{resource} {resource_id}: {status} -> {move} is not in the status table"
    log.error("BUG: %s", message)
    raise IllegalStatusMove(message)
