"""The cloud disk status machine of ECS, in one table.

Statuses: Creating -> Available <-> (Attaching -> In_use -> Detaching); ReIniting while a disk
is re-initialised. An action may start only from the statuses listed for it; the agent moves
a transient status (Creating, Attaching, Detaching, ReIniting) on once the work is done."""

from __future__ import annotations

from dataclasses import dataclass

from nubes import errors
from nubes.domain.state_tables import refuse

CREATING, AVAILABLE, ATTACHING, IN_USE, DETACHING, REINITING = (
    "Creating",
    "Available",
    "Attaching",
    "In_use",
    "Detaching",
    "ReIniting",
)
STATUSES = (CREATING, AVAILABLE, ATTACHING, IN_USE, DETACHING, REINITING)


@dataclass(frozen=True)
class Transition:
    allowed_from: frozenset[str]
    to: str | None  # None: the status does not change


TRANSITIONS: dict[str, Transition] = {
    "AttachDisk": Transition(frozenset({AVAILABLE}), ATTACHING),
    "DetachDisk": Transition(frozenset({IN_USE}), DETACHING),
    "DeleteDisk": Transition(frozenset({AVAILABLE}), None),
    "ResizeDisk": Transition(frozenset({AVAILABLE, IN_USE}), None),
    "ReInitDisk": Transition(frozenset({IN_USE}), REINITING),
    "ResetDisk": Transition(frozenset({AVAILABLE, IN_USE}), None),
    "CreateSnapshot": Transition(frozenset({AVAILABLE, IN_USE}), None),
    "ModifyDiskSpec": Transition(frozenset({AVAILABLE, IN_USE}), None),
}

# The agent's moves (AGENT_MOVES, checked by `agent_move`). When it has done the work of a
# transient status, the disk is in the second status.
SETTLED = {CREATING: AVAILABLE, ATTACHING: IN_USE, DETACHING: AVAILABLE, REINITING: IN_USE}
# When the work fails for good, the disk is back in the status the action found it in.
UNDONE = {CREATING: AVAILABLE, ATTACHING: AVAILABLE, DETACHING: IN_USE, REINITING: IN_USE}
# A disk kept when its instance is deleted is Available, whatever it was doing (RELEASED).
RELEASED = frozenset({CREATING, ATTACHING, IN_USE, DETACHING, REINITING})
AGENT_MOVES: frozenset[tuple[str, str]] = frozenset(
    set(SETTLED.items())
    | set(UNDONE.items())
    | {(status, AVAILABLE) for status in RELEASED}
    | {
        (CREATING, ATTACHING),  # made for an instance (CreateDisk with InstanceId): its attach comes next
        (REINITING, AVAILABLE),  # re-initialised after it left its instance
    }
)


def check(action: str, disk_id: str, status: str) -> Transition:
    """The transition of `action`, or IncorrectDiskStatus (403) when the status forbids it."""
    transition = TRANSITIONS[action]
    if status not in transition.allowed_from:
        allowed = " or ".join(sorted(transition.allowed_from))
        raise errors.incorrect_disk_status(
            f"The current status of the disk {disk_id} is {status}; {action} needs it to be {allowed}."
        )
    return transition


def agent_move(disk_id: str, status: str, to: str) -> str:
    """`to`, when the agent may move a disk from `status` to it (staying is no move). Every disk
    status move of the agent goes through here: one not in AGENT_MOVES is a bug, refused
    (IllegalStatusMove)."""
    if to != status and (status, to) not in AGENT_MOVES:
        refuse("disk", disk_id, status, to)
    return to
