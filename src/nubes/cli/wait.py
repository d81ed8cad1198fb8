"""`--wait`: after a power action, follow the instances until they reach their new status."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from nubes.client import Credentials, call

# action -> the status it ends in ("" : the instance is gone)
TARGETS = {
    "RunInstances": "Running",
    "CreateInstance": "Stopped",
    "StartInstance": "Running",
    "StartInstances": "Running",
    "StopInstance": "Stopped",
    "StopInstances": "Stopped",
    "RebootInstance": "Running",
    "RebootInstances": "Running",
    "DeleteInstance": "",
    "DeleteInstances": "",
}


def instance_ids(action: str, params: dict[str, str], body: dict[str, Any]) -> list[str]:
    if action == "RunInstances":
        return list(body.get("InstanceIdSets", {}).get("InstanceIdSet", []))
    if action == "CreateInstance":
        return [str(body["InstanceId"])]
    if "InstanceId" in params:
        return [params["InstanceId"]]
    return [v for k, v in sorted(params.items()) if k.startswith("InstanceId.")]


def wait(
    creds: Credentials,
    action: str,
    params: dict[str, str],
    body: dict[str, Any],
    console: Console,
    timeout: float = 1800.0,
) -> bool:
    """Poll until every instance is in the action's end status; False on timeout."""
    target = TARGETS[action]
    ids = instance_ids(action, params, body)
    region = params.get("RegionId", creds.region_id)
    deadline = time.monotonic() + timeout
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(f"waiting for {len(ids)} instance(s) to be {target or 'released'}")
        while time.monotonic() < deadline:
            found = call(
                creds,
                "ecs",
                "DescribeInstances",
                {
                    "RegionId": region,
                    "InstanceIds": "[" + ",".join(f'"{i}"' for i in ids) + "]",
                    "PageSize": "100",
                },
            )
            statuses = {i["InstanceId"]: i["Status"] for i in found.get("Instances", {}).get("Instance", [])}
            summary = ", ".join(f"{i}: {statuses.get(i, 'released')}" for i in ids)
            progress.update(task, description=summary)
            if all((statuses.get(i) == target) if target else i not in statuses for i in ids):
                return True
            time.sleep(1.0)
    return False
