"""The instance status machine of ECS, in one table.

Statuses: Pending (created, being built) -> Starting -> Running -> Stopping -> Stopped.
An API action may start only from the statuses listed for it; it then sets the status it
leads to and what the owner wants (`desired`), and the host agent carries it out, moving
the status on (Starting -> Running once the guest is up; Stopping -> Stopped once it is off).
Reboot is Stopping -> Starting -> Running.

Hibernation (StopInstance Hibernate=true, "HibernateInstance" here) is Running -> Stopping ->
Stopped like a stop, with `desired` "hibernated": the host saves the VM's memory and device
state and marks the instance `hibernated` as it moves it to Stopped (ECS shows a hibernated
instance as Stopped). Its next StartInstance restores that image instead of booting. A save
that fails ends in a plain stop (as ECS: "if an instance fails to be hibernated, it is
stopped"). While an instance is hibernated, what would make the saved devices differ from
the VM's on restore is refused (FORBIDDEN_WHILE_HIBERNATED, IncorrectInstanceStatus):
changing its type, its disks' set, size or content (attach, detach, resize, reset,
re-initialise, replace the system disk) and its network interfaces. Snapshots of its disks
are allowed: they do not change what the disks hold."""

from __future__ import annotations

from dataclasses import dataclass

from nubes import errors
from nubes.domain.state_tables import refuse

PENDING, STARTING, RUNNING, STOPPING, STOPPED = "Pending", "Starting", "Running", "Stopping", "Stopped"
STATUSES = (PENDING, STARTING, RUNNING, STOPPING, STOPPED)

# desired power states the agent drives towards
WANT_RUNNING, WANT_STOPPED, WANT_REBOOT, WANT_DELETED = "running", "stopped", "rebooting", "deleted"
WANT_HIBERNATED = "hibernated"


@dataclass(frozen=True)
class Transition:
    allowed_from: frozenset[str]
    to: str | None  # None: the status does not change (the action changes something else)
    desired: str | None  # what the agent is asked to do next, if anything
    # Statuses from which the action is queued: the status stays, and the agent carries out
    # `desired` once its current step ends (StartInstance while Pending, as libcloud's
    # create_node and Terraform send it right after CreateInstance).
    queued_from: frozenset[str] = frozenset()

    def status_after(self, status: str) -> str:
        if self.to is None or status in self.queued_from:
            return status
        return self.to


TRANSITIONS: dict[str, Transition] = {
    "StartInstance": Transition(
        frozenset({STOPPED, PENDING}), STARTING, WANT_RUNNING, queued_from=frozenset({PENDING})
    ),
    "StopInstance": Transition(frozenset({RUNNING, STARTING}), STOPPING, WANT_STOPPED),
    # StopInstance Hibernate=true: only a Running guest has a state worth saving
    "HibernateInstance": Transition(frozenset({RUNNING}), STOPPING, WANT_HIBERNATED),
    "RebootInstance": Transition(frozenset({RUNNING}), STOPPING, WANT_REBOOT),
    "DeleteInstance": Transition(frozenset({STOPPED, PENDING}), None, WANT_DELETED),
    "ForceDeleteInstance": Transition(
        frozenset({STOPPED, PENDING, RUNNING, STARTING, STOPPING}), None, WANT_DELETED
    ),
    "ModifyInstanceSpec": Transition(frozenset({STOPPED}), None, None),
    "ModifyInstanceDeployment": Transition(frozenset({STOPPED, RUNNING}), None, None),
    "ModifyInstanceVpcAttribute": Transition(frozenset({STOPPED}), None, None),
    "ModifyInstanceAttribute.Password": Transition(frozenset({STOPPED, RUNNING}), None, None),
    "ReplaceSystemDisk": Transition(frozenset({STOPPED}), None, None),
    "AttachKeyPair": Transition(frozenset({STOPPED, RUNNING}), None, None),
    "JoinSecurityGroup": Transition(frozenset({STOPPED, RUNNING}), None, None),
    "LeaveSecurityGroup": Transition(frozenset({STOPPED, RUNNING}), None, None),
    # public addresses: ECS maps and unmaps them while the instance runs or is stopped
    "AssociateEipAddress": Transition(frozenset({STOPPED, RUNNING}), None, None),
    "UnassociateEipAddress": Transition(frozenset({STOPPED, RUNNING}), None, None),
    "AllocatePublicIpAddress": Transition(frozenset({STOPPED, RUNNING}), None, None),
    "ModifyInstanceNetworkSpec": Transition(frozenset({STOPPED, RUNNING}), None, None),
    "ConvertNatPublicIpToEip": Transition(frozenset({STOPPED, RUNNING}), None, None),
    # stopped (forcibly with ForceStop) and started again: Stopping -> Starting -> Running, also
    # from Stopped, as ECS brings a redeployed instance back Running
    "RedeployInstance": Transition(frozenset({RUNNING, STOPPED}), STOPPING, WANT_REBOOT),
}

# Agent-side progress: from -> to, when the host reports the step done.
AGENT_STEPS: dict[tuple[str, str], str] = {
    (PENDING, "built_running"): STARTING,
    (PENDING, "built_stopped"): STOPPED,
    (STARTING, "guest_up"): RUNNING,
    (STOPPING, "powered_off"): STOPPED,
    (STOPPING, "hibernated"): STOPPED,  # the memory image is complete and the VM is gone
    (STOPPING, "reboot_off"): STARTING,
    (RUNNING, "powered_off"): STOPPED,  # the guest shut itself down (or crashed, maintenance action Stop)
    # the VM was lost under a Running instance (a crash, a host reboot) and its maintenance
    # action is AutoRecover: it starts again (SystemFailure.Reboot)
    (RUNNING, "vm_died"): STARTING,
    (STARTING, "powered_off"): STOPPED,
    (STARTING, "start_failed"): STOPPED,  # the VM could not be started, again and again
}


def check(action: str, instance_id: str, status: str) -> Transition:
    """The transition of `action`, or IncorrectInstanceStatus when the status forbids it."""
    transition = TRANSITIONS[action]
    if status not in transition.allowed_from:
        allowed = ", ".join(sorted(transition.allowed_from))
        raise errors.incorrect_instance_status(
            f"The current status of the instance {instance_id} is {status}; {action.partition('.')[0]} needs it to be "
            f"{allowed}.",
        )
    return transition


# What a hibernated instance may not do: anything that changes the devices or disk contents the
# memory image was saved with (the restored VM must have the very same ones).
FORBIDDEN_WHILE_HIBERNATED = frozenset(
    {
        "ModifyInstanceSpec",
        "ReplaceSystemDisk",
        "AttachDisk",
        "DetachDisk",
        "ResizeDisk",
        "ResetDisk",
        "ReInitDisk",
        "AttachNetworkInterface",
        "DetachNetworkInterface",
    }
)


def check_not_hibernated(action: str, instance_id: str, hibernated: bool) -> None:
    """IncorrectInstanceStatus (403) when `action` would change a hibernated instance's devices."""
    if hibernated and action in FORBIDDEN_WHILE_HIBERNATED:
        raise errors.incorrect_instance_status(
            f"The instance {instance_id} is hibernated; {action} is possible once it has been started "
            "(or stopped without hibernation)."
        )


def next_status(status: str, event: str) -> str | None:
    """The status an agent event leads to, or None when the event does not apply."""
    return AGENT_STEPS.get((status, event))


def agent_step(instance_id: str, status: str, event: str) -> str:
    """The status the agent's `event` moves an instance in `status` to. Every status move of the
    agent goes through here: one the table does not have is a bug, refused (IllegalStatusMove)."""
    after = AGENT_STEPS.get((status, event))
    if after is None:
        refuse("instance", instance_id, status, event)
    return after
