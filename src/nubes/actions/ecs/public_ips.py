"""ECS public IPs of instances: AllocatePublicIpAddress, ModifyInstanceNetworkSpec,
ConvertNatPublicIpToEip (RunInstances gives one with InternetMaxBandwidthOut > 0)."""

from __future__ import annotations

from typing import Any

from nubes.actions.common import CLIENT_TOKEN, REGION_ID
from nubes.actions.ecs.instances import INSTANCE_ID
from nubes.api.context import ActionContext
from nubes.api.params import Boolean, Integer, String
from nubes.api.registry import ActionTable

actions = ActionTable("ecs")

# ECS's ranges of an instance's public bandwidth, Mbit/s.
BANDWIDTH_OUT = Integer("InternetMaxBandwidthOut", minimum=0, maximum=100)
BANDWIDTH_IN = Integer("InternetMaxBandwidthIn", minimum=1, maximum=10240)


@actions.define("AllocatePublicIpAddress", [INSTANCE_ID, String("IpAddress", max_length=64)])
def allocate_public_ip_address(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Give a Running or Stopped instance with public bandwidth (InternetMaxBandwidthOut > 0) and
    no EIP a public IP (IpAddress: that address of the public ranges); an instance that has one
    already is answered with it."""
    address = ctx.services.public_ips.allocate(ctx.principal.account_id, p["InstanceId"], p["IpAddress"])
    return {"IpAddress": address}


@actions.define(
    "ModifyInstanceNetworkSpec",
    [
        INSTANCE_ID,
        BANDWIDTH_OUT,
        BANDWIDTH_IN,
        String("NetworkChargeType", choices=("PayByBandwidth", "PayByTraffic")),
        Boolean("AllocatePublicIp", default=False),
        CLIENT_TOKEN,
    ],
    idempotent=True,
)
def modify_instance_network_spec(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Change a Running or Stopped instance's public bandwidth and its charge type, live;
    AllocatePublicIp gives it a public IP too (it needs InternetMaxBandwidthOut > 0). Down to 0
    Mbit/s outbound, the instance's public IP is released."""
    ctx.services.public_ips.modify_network_spec(
        ctx.principal.account_id,
        p["InstanceId"],
        p["InternetMaxBandwidthOut"],
        p["InternetMaxBandwidthIn"],
        p["NetworkChargeType"],
        p["AllocatePublicIp"],
    )
    return {"OrderId": ""}


@actions.define("ConvertNatPublicIpToEip", [REGION_ID, INSTANCE_ID])
def convert_nat_public_ip_to_eip(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Make a Running or Stopped instance's public IP an EIP, associated with it (same address,
    with the instance's outbound bandwidth); the EIP quota applies."""
    ctx.services.public_ips.convert_to_eip(ctx.scope(p["RegionId"]), p["InstanceId"])
    return {}
