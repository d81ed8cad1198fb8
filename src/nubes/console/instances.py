"""The instance detail page (/console/instances/<id>) and its actions: Start, Stop (optionally
hibernating), Reboot and Release, each a POST form with the session's CSRF token.

Everything comes from the API, signed with the session's AccessKey: an unknown ID, or another
account's, is the API's InvalidInstanceId.NotFound, shown with its Code and Message and its
HTTP status. An action redirects (303) back to the page, which shows the status it moved to; an
action the API refuses is shown on the page, with the refusal's status."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from nubes.client import ClientError
from nubes.console.api import ApiCaller
from nubes.console.sessions import Session
from nubes.console.web import PREFIX, Page, plain, redirect

INSTANCE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
ACTIONS = ("start", "stop", "reboot", "release")
BATCH_ACTIONS = {"start": "StartInstances", "stop": "StopInstances"}
MAX_BATCH = 100

Render = Callable[..., Page]


class InstancePages:
    def __init__(self, api: ApiCaller, render: Render) -> None:
        self.api = api
        self.render = render

    async def _call(self, session: Session, product: str, action: str, **params: str) -> dict[str, Any]:
        return await self.api.call(
            (session.access_key_id, session.access_key_secret), product, action, params
        )

    async def get(self, session: Session, rest: str) -> Page:
        if not INSTANCE_ID.match(rest):
            return plain(404, "Not found")
        return await self.detail(session, rest)

    async def post(self, session: Session, rest: str, form: dict[str, str]) -> Page:
        instance_id, _, action = rest.partition("/")
        if not INSTANCE_ID.match(instance_id) or action not in ACTIONS:
            return plain(404, "Not found")
        try:
            if action == "release":
                if form.get("confirm") != "yes":
                    error = ClientError("ConfirmationRequired", "Tick the box to confirm the release.", 400)
                    return await self.detail(session, instance_id, error)
                attribute = await self._call(
                    session, "ecs", "DescribeInstanceAttribute", InstanceId=instance_id
                )
                force = "true" if attribute.get("Status") == "Running" else "false"
                await self._call(session, "ecs", "DeleteInstance", InstanceId=instance_id, Force=force)
                return redirect(f"{PREFIX}/instances")
            if action == "stop":
                hibernate = "true" if form.get("hibernate") == "yes" else "false"
                await self._call(session, "ecs", "StopInstance", InstanceId=instance_id, Hibernate=hibernate)
            else:
                await self._call(session, "ecs", f"{action.capitalize()}Instance", InstanceId=instance_id)
        except ClientError as error:
            return await self.detail(session, instance_id, error)
        return redirect(f"{PREFIX}/instances/{instance_id}")

    async def batch(self, session: Session, form: dict[str, str]) -> ClientError | None:
        """Start or stop the rows selected in the instance list (select.N = an instance ID), in one
        StartInstances/StopInstances call: all of them or, refused, none. The refusal, if any."""
        action = BATCH_ACTIONS.get(form.get("action", ""))
        ids = [v for k, v in form.items() if k.startswith("select.") and INSTANCE_ID.match(v)][:MAX_BATCH]
        if action is None:
            return ClientError("InvalidAction", "Choose Start or Stop.", 400)
        if not ids:
            return ClientError("NoInstanceSelected", "Select the instances to act on.", 400)
        params = {f"InstanceId.{n}": instance_id for n, instance_id in enumerate(ids, 1)}
        try:
            await self._call(session, "ecs", action, RegionId=session.region_id, **params)
        except ClientError as error:
            return error
        return None

    async def detail(
        self, session: Session, instance_id: str, action_error: ClientError | None = None
    ) -> Page:
        try:
            instance = await self._call(session, "ecs", "DescribeInstanceAttribute", InstanceId=instance_id)
            disks = await self._call(
                session,
                "ecs",
                "DescribeDisks",
                RegionId=str(instance.get("RegionId", session.region_id)),
                InstanceId=instance_id,
                PageSize="100",
            )
        except ClientError as error:
            status = error.http_status or 502
            return self.render(
                "instance.html", http_status=status, session=session, error=error, instance=None
            )
        context = _detail(instance, disks)
        status = (action_error.http_status or 400) if action_error else 200
        return self.render(
            "instance.html", http_status=status, session=session, error=action_error, **context
        )


def _detail(instance: dict[str, Any], disks: dict[str, Any]) -> dict[str, Any]:
    vpc = instance.get("VpcAttributes", {})
    eip = instance.get("EipAddress", {}).get("IpAddress", "")
    overview = {
        "id": instance.get("InstanceId", ""),
        "name": instance.get("InstanceName", ""),
        "status": instance.get("Status", ""),
        "type": instance.get("InstanceType", ""),
        "cpu": instance.get("Cpu", ""),
        "memory_gib": round(int(instance.get("Memory", 0)) / 1024, 1),
        "zone": instance.get("ZoneId", ""),
        "vpc": vpc.get("VpcId", ""),
        "vswitch": vpc.get("VSwitchId", ""),
        "private_ips": list(vpc.get("PrivateIpAddress", {}).get("IpAddress", [])),
        "public_ips": [*instance.get("PublicIpAddress", {}).get("IpAddress", []), *([eip] if eip else [])],
        "image": instance.get("ImageId", ""),
        "created": instance.get("CreationTime", ""),
        "hibernation": bool(instance.get("HibernationOptions", {}).get("Configured")),
    }
    interfaces = [
        {
            "id": e.get("NetworkInterfaceId", ""),
            "type": e.get("Type", ""),
            "mac": e.get("MacAddress", ""),
            "ips": [
                p.get("PrivateIpAddress", "") for p in e.get("PrivateIpSets", {}).get("PrivateIpSet", [])
            ],
        }
        for e in instance.get("NetworkInterfaces", {}).get("NetworkInterface", [])
    ]
    disk_rows = [
        {
            "id": d.get("DiskId", ""),
            "name": d.get("DiskName", ""),
            "type": d.get("Type", ""),
            "category": d.get("Category", ""),
            "size": d.get("Size", ""),
            "device": d.get("Device", ""),
            "status": d.get("Status", ""),
        }
        for d in disks.get("Disks", {}).get("Disk", [])
    ]
    groups = list(instance.get("SecurityGroupIds", {}).get("SecurityGroupId", []))
    return {"instance": overview, "disks": disk_rows, "interfaces": interfaces, "groups": groups}
