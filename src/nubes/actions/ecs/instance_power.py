"""ECS instance power actions: Start/Stop/Reboot one instance or many."""

from __future__ import annotations

from typing import Any

from nubes import errors
from nubes.actions.common import CLIENT_TOKEN, DRY_RUN, REGION_ID
from nubes.actions.ecs.instances import INSTANCE_ID
from nubes.api.context import ActionContext
from nubes.api.params import Boolean, String, StringList
from nubes.api.registry import ActionTable, Handler
from nubes.domain.common import Scope

actions = ActionTable("ecs")


# ---- power actions ---------------------------------------------------------------------------------

# DeleteInstance(s): how a Running instance is stopped when Force releases it. nubes pulls the
# plug (ECS's default); a graceful shutdown before release is refused rather than skipped.
FORCE_STOP_ON_DELETE = Boolean("ForceStop", default=True)


def _check_delete_force_stop(p: dict[str, Any]) -> None:
    """ECS reads ForceStop only with Force=true (a Stopped instance needs no stopping)."""
    if p["Force"] and not p["ForceStop"]:
        raise errors.invalid_parameter_not_supported(
            "ForceStop",
            "the value false is not supported yet (a Running instance is released by a forced stop).",
        )


def _power(action: str, summary: str, force_param: str | None = None, stopped_mode: bool = False) -> Handler:
    def handler(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
        force = bool(force_param and p.get(force_param))
        name = action
        if action == "DeleteInstance":
            _check_delete_force_stop(p)
            name = "ForceDeleteInstance" if p["Force"] else action
        if p.get("Hibernate"):
            name = "HibernateInstance"  # (ForceStop: how it is stopped if the save fails)
        ctx.services.instances.act(
            ctx.principal.account_id,
            p["InstanceId"],
            name,
            force=force or bool(p.get("ForceStop")),
            stopped_mode=p.get("StoppedMode") if stopped_mode else None,
            dry_run=p.get("DryRun", False),
        )
        return {}

    handler.__doc__ = summary
    return handler


# InitLocalDisk re-initialises local disks lost with their host: nubes instances have none (cloud
# disks only), so there is nothing to initialise, as in ECS for an instance without local disks.
actions.define("StartInstance", [INSTANCE_ID, DRY_RUN, Boolean("InitLocalDisk", default=False)])(
    _power("StartInstance", "Start a Stopped instance.")
)
actions.define(
    "StopInstance",
    [
        INSTANCE_ID,
        DRY_RUN,
        Boolean("ForceStop", default=False),
        # ECS asks for it only to stop instances of the retired local-disk types (i1, d1, d1ne),
        # which nubes does not offer: it changes nothing for the others, in ECS as here.
        Boolean("ConfirmStop", default=False),
        String("StoppedMode", choices=("StopCharging", "KeepCharging")),
        # Save the VM's memory and devices beside its disks and stop it; StartInstance continues
        # it. Only for instances created with HibernationOptions.Configured=true. (StopInstances
        # has no Hibernate parameter in ECS's API.)
        Boolean("Hibernate", default=False),
    ],
)(
    _power(
        "StopInstance",
        "Stop a Running instance (ACPI power-off; ForceStop pulls the plug; Hibernate saves its memory).",
        "ForceStop",
        True,
    )
)
actions.define("RebootInstance", [INSTANCE_ID, DRY_RUN, Boolean("ForceStop", default=False)])(
    _power("RebootInstance", "Reboot a Running instance: Stopping, Starting, Running.", "ForceStop")
)
actions.define(
    "DeleteInstance",
    [
        INSTANCE_ID,
        DRY_RUN,
        Boolean("Force", default=False),
        FORCE_STOP_ON_DELETE,
        # Releases expired subscriptions; nubes has pay-as-you-go instances only, where ECS
        # ignores it too.
        Boolean("TerminateSubscription", default=False),
    ],
)(_power("DeleteInstance", "Release an instance (Stopped, or any status with Force=true).", "Force"))


def _batch(action: str, summary: str, force_param: str | None = None) -> Handler:
    def handler(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
        name = action
        if action == "DeleteInstance":
            _check_delete_force_stop(p)
            name = "ForceDeleteInstance" if p["Force"] else action
        moves = ctx.services.instances.act_all(
            Scope(ctx.principal.account_id, p["RegionId"]),
            p["InstanceId"],
            name,
            force=bool(force_param and p.get(force_param)) or bool(p.get("ForceStop")),
            stopped_mode=p.get("StoppedMode"),
            dry_run=bool(p.get("DryRun")),
        )
        if action == "DeleteInstance":
            return {}
        return {
            "InstanceResponses": {
                "InstanceResponse": [
                    {
                        "InstanceId": instance_id,
                        "Code": "200",
                        "Message": "success",
                        "PreviousStatus": previous,
                        "CurrentStatus": current,
                    }
                    for instance_id, previous, current in moves
                ]
            }
        }

    handler.__doc__ = summary
    return handler


# Batches are all-or-nothing: every instance is checked before any moves.
BATCH_OPTIMIZATION = String(
    "BatchOptimization",
    choices=("AllTogether", "SuccessFirst"),
    unsupported_values=("SuccessFirst",),
    unsupported_because="batches act on all their instances or on none",
)
_IDS = StringList("InstanceId", required=True, max_items=100, item_max_length=64)
actions.define(
    "StartInstances",
    [REGION_ID, _IDS, DRY_RUN, BATCH_OPTIMIZATION],
)(_batch("StartInstance", "Start up to 100 Stopped instances."))
actions.define(
    "StopInstances",
    [
        REGION_ID,
        _IDS,
        DRY_RUN,
        Boolean("ForceStop", default=False),
        BATCH_OPTIMIZATION,
        String("StoppedMode", choices=("StopCharging", "KeepCharging")),
    ],
)(_batch("StopInstance", "Stop up to 100 Running instances.", "ForceStop"))
actions.define(
    "RebootInstances",
    [
        REGION_ID,
        _IDS,
        DRY_RUN,
        Boolean("ForceReboot", default=False),
        BATCH_OPTIMIZATION,
    ],
)(_batch("RebootInstance", "Reboot up to 100 Running instances.", "ForceReboot"))
actions.define(
    "DeleteInstances",
    [
        REGION_ID,
        _IDS,
        DRY_RUN,
        CLIENT_TOKEN,
        Boolean("Force", default=False),
        FORCE_STOP_ON_DELETE,
        # Releases expired subscriptions; nubes has pay-as-you-go instances only, where ECS
        # ignores it too.
        Boolean("TerminateSubscription", default=False),
    ],
)(_batch("DeleteInstance", "Release up to 100 instances.", "Force"))
