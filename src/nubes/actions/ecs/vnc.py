"""ECS VNC actions: ModifyInstanceVncPasswd and DescribeInstanceVncUrl (nubes.domain.vnc says how
the password and the one-time URLs work; nubes.api.vnc serves the URLs)."""

from __future__ import annotations

from typing import Any

from nubes.actions.common import REGION_ID
from nubes.api.context import ActionContext
from nubes.api.params import String
from nubes.api.registry import ActionTable

actions = ActionTable("ecs")

INSTANCE_ID = String("InstanceId", required=True, max_length=64)
WEBSOCKET_PATH = "/vnc/websocket"  # where nubes.api.vnc's proxy listens


@actions.define(
    "ModifyInstanceVncPasswd", [REGION_ID, INSTANCE_ID, String("VncPassword", required=True, max_length=64)]
)
def modify_instance_vnc_passwd(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The instance's VNC password: 6 characters with upper-case and lower-case letters and digits."""
    ctx.scope(p["RegionId"])
    ctx.services.vnc.set_password(ctx.principal.account_id, p["RegionId"], p["InstanceId"], p["VncPassword"])
    return {}


@actions.define("DescribeInstanceVncUrl", [REGION_ID, INSTANCE_ID])
def describe_instance_vnc_url(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """A websocket URL to a Running instance's display, good for one connection within 15 s."""
    ctx.scope(p["RegionId"])
    token = ctx.services.vnc.issue(ctx.principal.account_id, p["RegionId"], p["InstanceId"])
    return {"VncUrl": f"ws://{ctx.host or 'localhost'}{WEBSOCKET_PATH}?s={token}"}
