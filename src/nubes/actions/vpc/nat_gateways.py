"""VPC API: CreateNatGateway, DescribeNatGateways, GetNatGatewayAttribute, ModifyNatGatewayAttribute,
DeleteNatGateway (Enhanced Internet NAT gateways, pay-as-you-go)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from nubes.actions.common import CLIENT_TOKEN, DRY_RUN, REGION_ID, TAGS, tag_filter, tag_pairs, tag_set
from nubes.actions.paging import number_paged, page_params
from nubes.api.context import ActionContext
from nubes.api.params import Boolean, Param, String
from nubes.api.registry import ActionTable
from nubes.clock import iso8601_seconds
from nubes.domain.nat_gateways import NatGatewayFilter, NatGatewayRequest, NatGatewayUse
from nubes.store.models import NatGateway

actions = ActionTable("vpc")

NAT_GATEWAY_ID = String("NatGatewayId", required=True, max_length=64)
SPECS = ("Small", "Middle", "Large", "XLarge.1")
EIP_BIND_MODE = String("EipBindMode", choices=("MULTI_BINDED", "NAT"))
# What ECS documents of an Enhanced gateway's capacity (nubes' data plane enforces none of it).
MAX_BANDWIDTH_MBPS = 5120
MAX_SESSION_ESTABLISH_RATE = 100000
MAX_SESSION_QUOTA = 2000000


def off_only(name: str, because: str) -> Param:
    """A switch nubes honours off (false, or left out) and refuses on."""
    return Boolean(name, unsupported_values=(True,), unsupported_because=because)


def _ip_status(ip: str, use: NatGatewayUse) -> str:
    """How a gateway's EIP is used, as ECS words it."""
    by_snat, by_forward = ip in use.snat_ips, ip in use.forward_ips
    if by_snat and by_forward:
        return "UsedByForwardSnatTable"
    return "UsedBySnatTable" if by_snat else "UsedByForwardTable" if by_forward else "Idle"


def render_nat_gateway(
    gateway: NatGateway, use: NatGatewayUse, tags: list[tuple[str, str]]
) -> dict[str, Any]:
    return {
        "NatGatewayId": gateway.id,
        "Name": gateway.name,
        "Description": gateway.description,
        "RegionId": gateway.region_id,
        "VpcId": gateway.vpc_id,
        "Status": gateway.status,
        "BusinessStatus": "Normal",
        "NatType": gateway.nat_type,
        "NetworkType": gateway.network_type,
        "Spec": gateway.spec,
        "InstanceChargeType": "PostPaid",
        "InternetChargeType": gateway.internet_charge_type,
        "AutoPay": False,
        "ExpiredTime": "",
        "CreationTime": iso8601_seconds(gateway.created_at),
        "DeletionProtection": gateway.deletion_protection,
        "EipBindMode": gateway.eip_bind_mode,
        "IcmpReplyEnabled": gateway.icmp_reply_enabled,
        "EcsMetricEnabled": False,
        "EnableSessionLog": "false",
        "SecurityProtectionEnabled": False,
        "PrivateLinkEnabled": False,
        "PrivateLinkMode": "",
        "AvailabilityMode": "",
        "AccessMode": {"ModeValue": "", "TunnelType": ""},
        "ResourceGroupId": gateway.resource_group_id,
        "ForwardTableIds": {"ForwardTableId": [gateway.forward_table_id]},
        "SnatTableIds": {"SnatTableId": [gateway.snat_table_id]},
        "FullNatTableIds": {"FullNatTableId": []},
        "IpLists": {
            "IpList": [
                {
                    "AllocationId": eip.id,
                    "IpAddress": eip.ip_address,
                    "PrivateIpAddress": gateway.private_ip,
                    "SnatEntryEnabled": eip.ip_address in use.snat_ips,
                    "UsingStatus": _ip_status(eip.ip_address, use),
                }
                for eip in use.eips
            ]
        },
        "IpPrefixList": {"IpPrefixList": []},
        "NatGatewayPrivateInfo": {
            "EniInstanceId": "",
            "EniType": "",
            "IzNo": gateway.zone_id,
            "MaxBandwidth": MAX_BANDWIDTH_MBPS,
            "MaxSessionEstablishRate": MAX_SESSION_ESTABLISH_RATE,
            "MaxSessionQuota": MAX_SESSION_QUOTA,
            "PrivateIpAddress": gateway.private_ip,
            "VswitchId": gateway.vswitch_id,
        },
        "Tags": tag_set(tags),
    }


@actions.define(
    "CreateNatGateway",
    [
        REGION_ID,
        String("VpcId", required=True, max_length=64),
        # required: an Enhanced gateway takes its address in a vSwitch (Normal ones are refused)
        String("VSwitchId", required=True, max_length=64),
        String(
            "NatType",
            choices=("Normal", "Enhanced"),
            default="Enhanced",
            unsupported_values=("Normal",),
            unsupported_because="ECS retired Normal NAT gateways; nubes has Enhanced ones",
        ),
        String(
            "NetworkType",
            choices=("internet", "intranet"),
            default="internet",
            unsupported_values=("intranet",),
            unsupported_because="nubes has Internet NAT gateways; VPC NAT gateways do not exist yet",
        ),
        String(
            "InstanceChargeType",
            choices=("PostPaid", "PrePaid"),
            default="PostPaid",
            unsupported_values=("PrePaid",),
            unsupported_because="NAT gateways are pay-as-you-go; subscriptions do not exist in nubes",
        ),
        String("InternetChargeType", choices=("PayByLcu", "PayBySpec"), default="PayByLcu"),
        String("Spec", choices=SPECS),
        off_only("AutoPay", "there is no subscription order to pay"),
        replace(EIP_BIND_MODE, default="MULTI_BINDED"),
        Boolean("IcmpReplyEnabled", default=True),
        off_only("PrivateLinkEnabled", "nubes has no PrivateLink endpoint services"),
        off_only("SecurityProtectionEnabled", "nubes has no firewall service for NAT gateways"),
        String("Name", max_length=128),
        String("Description", max_length=256),
        CLIENT_TOKEN,
        TAGS,
    ],
    idempotent=True,
)
def create_nat_gateway(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """An Enhanced Internet NAT gateway in a vSwitch of the VPC (Available at once), with a private
    address of the vSwitch and, when the VPC's system table has no default route, a route
    0.0.0.0/0 to it. ECS's quota: 5 NAT gateways per VPC."""
    gateway = ctx.services.nat_gateways.create(
        ctx.scope(p["RegionId"]),
        NatGatewayRequest(
            vpc_id=p["VpcId"],
            vswitch_id=p["VSwitchId"],
            name=p["Name"] or "",
            description=p["Description"] or "",
            internet_charge_type=p["InternetChargeType"],
            spec=p["Spec"] or "",
            eip_bind_mode=p["EipBindMode"],
            icmp_reply_enabled=p["IcmpReplyEnabled"],
            tags=tag_pairs(p),
        ),
    )
    return {
        "NatGatewayId": gateway.id,
        "SnatTableIds": {"SnatTableId": [gateway.snat_table_id]},
        "ForwardTableIds": {"ForwardTableId": [gateway.forward_table_id]},
        "FullNatTableIds": {"FullNatTableId": []},
    }


@actions.define(
    "DescribeNatGateways",
    [
        REGION_ID,
        String("NatGatewayId", max_length=64),
        String("VpcId", max_length=64),
        String("Name", max_length=128),
        String("Status", choices=("Creating", "Available", "Modifying", "Deleting", "Converting")),
        String("Spec", choices=SPECS),
        String("NatType", choices=("Normal", "Enhanced")),
        String("NetworkType", choices=("internet", "intranet")),
        String("InstanceChargeType", choices=("PostPaid", "PrePaid")),
        String("ZoneId", max_length=64),
        String("ResourceGroupId", max_length=64),
        TAGS,
        DRY_RUN,
        *page_params(max_size=50),
    ],
)
def describe_nat_gateways(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The caller's NAT gateways in a region, newest first, with their EIPs and tables. Every nubes
    gateway is an Enhanced, internet, pay-as-you-go one: NatType Normal, NetworkType intranet and
    InstanceChargeType PrePaid match none."""
    scope = ctx.scope(p["RegionId"])
    rows = ctx.services.nat_gateways.describe(
        scope,
        NatGatewayFilter(
            nat_gateway_id=p["NatGatewayId"],
            vpc_id=p["VpcId"],
            name=p["Name"],
            status=p["Status"],
            spec=p["Spec"],
            zone_id=p["ZoneId"],
            resource_group_id=p["ResourceGroupId"],
            tags=tag_filter(p),
        ),
    )
    if p["NatType"] == "Normal" or p["NetworkType"] == "intranet" or p["InstanceChargeType"] == "PrePaid":
        rows = []
    uses = ctx.services.nat_gateways.uses([g.id for g in rows])
    tags = ctx.services.tags.of(scope, "natgateway", (g.id for g in rows))
    return number_paged(
        rows, p, "NatGateways", "NatGateway", lambda g: render_nat_gateway(g, uses[g.id], tags.get(g.id, []))
    )


@actions.define("GetNatGatewayAttribute", [REGION_ID, NAT_GATEWAY_ID])
def get_nat_gateway_attribute(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """One NAT gateway in detail: its tables and their entry counts, its EIPs, its private address."""
    gateway = ctx.services.nat_gateways.get(ctx.scope(p["RegionId"]), p["NatGatewayId"])
    use = ctx.services.nat_gateways.uses([gateway.id])[gateway.id]
    return {
        "NatGatewayId": gateway.id,
        "Name": gateway.name,
        "Description": gateway.description,
        "RegionId": gateway.region_id,
        "VpcId": gateway.vpc_id,
        "Status": gateway.status,
        "BusinessStatus": "Normal",
        "NatType": gateway.nat_type,
        "NetworkType": gateway.network_type,
        "CreationTime": iso8601_seconds(gateway.created_at),
        "ExpiredTime": "",
        "ResourceGroupId": gateway.resource_group_id,
        "EcsMetricEnabled": False,
        "EnableSessionLog": False,
        "PrivateLinkEnabled": False,
        "PrivateLinkMode": "",
        "AvailabilityMode": "",
        "AccessMode": {"ModeValue": "", "TunnelType": ""},
        "BillingConfig": {
            "AutoPay": "false",
            "InstanceChargeType": "PostPaid",
            "InternetChargeType": gateway.internet_charge_type,
            "Spec": gateway.spec,
        },
        "DeletionProtectionInfo": {"Enabled": gateway.deletion_protection},
        "ForwardTable": {
            "ForwardTableId": gateway.forward_table_id,
            "ForwardEntryCount": use.forward_entries,
        },
        "SnatTable": {"SnatTableId": gateway.snat_table_id, "SnatEntryCount": use.snat_entries},
        "FullNatTable": {"FullNatTableId": "", "FullNatEntryCount": 0},
        "IpList": [
            {"AllocationId": e.id, "IpAddress": e.ip_address, "UsingStatus": _ip_status(e.ip_address, use)}
            for e in use.eips
        ],
        "LogDelivery": {
            "LogDeliveryType": "",
            "LogDestination": "",
            "DeliveryStatus": "",
            "DeliverLogsErrorMessage": "",
        },
        "PrivateInfo": {
            "EniInstanceId": "",
            "IzNo": gateway.zone_id,
            "MaxBandwidth": MAX_BANDWIDTH_MBPS,
            "PrivateIpAddress": gateway.private_ip,
            "VswitchId": gateway.vswitch_id,
        },
    }


@actions.define(
    "ModifyNatGatewayAttribute",
    [
        REGION_ID,
        NAT_GATEWAY_ID,
        String("Name", max_length=128),
        String("Description", max_length=256),
        EIP_BIND_MODE,
        Boolean("IcmpReplyEnabled"),
        off_only("EnableSessionLog", "nubes has no log service to deliver NAT session logs to"),
    ],
)
def modify_nat_gateway_attribute(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Rename or describe a NAT gateway, or change its EipBindMode or IcmpReplyEnabled."""
    ctx.services.nat_gateways.modify(
        ctx.scope(p["RegionId"]),
        p["NatGatewayId"],
        p["Name"],
        p["Description"],
        p["EipBindMode"],
        p["IcmpReplyEnabled"],
    )
    return {}


@actions.define("DeleteNatGateway", [REGION_ID, NAT_GATEWAY_ID, Boolean("Force", default=False)])
def delete_nat_gateway(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Delete a NAT gateway and the VPC's default route to it. Its SNAT and DNAT entries, EIPs and
    other routes to it are DependencyViolation errors, unless Force: then they go with it (the
    EIPs are unassociated, Available again)."""
    ctx.services.nat_gateways.delete(ctx.scope(p["RegionId"]), p["NatGatewayId"], p["Force"])
    return {}
