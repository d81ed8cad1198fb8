"""VPC API: AllocateEipAddress, AssociateEipAddress, UnassociateEipAddress, ReleaseEipAddress,
DescribeEipAddresses, ModifyEipAddressAttribute."""

from __future__ import annotations

from typing import Any

from nubes.actions.common import (
    CLIENT_TOKEN,
    CREATION_FILTER,
    DRY_RUN,
    REGION_ID,
    RESOURCE_GROUP_ID,
    TAGS,
    creation_window,
    tag_filter,
    tag_pairs,
    tag_set,
)
from nubes.actions.paging import number_paged, page_params
from nubes.api.context import ActionContext
from nubes.api.params import Boolean, String
from nubes.api.registry import ActionTable
from nubes.clock import iso8601_seconds
from nubes.domain import public_addresses as pa
from nubes.domain.eips import EipFilter, EipRequest
from nubes.store.models import PublicAddress

actions = ActionTable("vpc")

ALLOCATION_ID = String("AllocationId", required=True, max_length=64)
BANDWIDTH = String("Bandwidth", pattern=r"[0-9]{1,5}")  # Mbit/s, typed a string on the wire
ISP = String(
    "ISP",
    choices=("BGP", "BGP_PRO", "ChinaTelecom", "ChinaUnicom", "ChinaMobile", "BGP_FinanceCloud"),
    unsupported_values=("BGP_PRO", "ChinaTelecom", "ChinaUnicom", "ChinaMobile", "BGP_FinanceCloud"),
    unsupported_because="the operator's public ranges are one line type, BGP",
)
INTERNET_CHARGE_TYPE = String("InternetChargeType", choices=("PayByBandwidth", "PayByTraffic"))
# ECS's kinds of what an EIP serves; nubes has instances, their interfaces and NAT gateways (load
# balancers and HAVIPs do not exist yet).
INSTANCE_TYPES = ("EcsInstance", "NetworkInterface", "Nat", "SlbInstance", "HaVip", "IpAddress")
NOT_YET = ("SlbInstance", "HaVip", "IpAddress")


def render_eip(eip: PublicAddress, tags: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "AllocationId": eip.id,
        "IpAddress": eip.ip_address,
        "RegionId": eip.region_id,
        "Status": eip.status,
        "Bandwidth": str(eip.bandwidth_out),
        "EipBandwidth": str(eip.bandwidth_out),
        "InternetChargeType": eip.internet_charge_type,
        "ChargeType": eip.charge_type,
        "ISP": eip.isp,
        "Name": eip.name,
        "Description": eip.description,
        "AllocationTime": iso8601_seconds(eip.created_at),
        "InstanceId": eip.instance_id,
        "InstanceType": eip.instance_type,
        "InstanceRegionId": eip.region_id if eip.instance_id else "",
        "PrivateIpAddress": eip.private_ip,
        "VpcId": eip.vpc_id,
        "Mode": "NAT",
        "Netmode": "public",
        "ResourceGroupId": eip.resource_group_id,
        "ExpiredTime": "",
        "DeletionProtection": False,
        "SecondLimited": False,
        "HDMonitorStatus": "OFF",
        "BusinessStatus": "Normal",
        "BizType": "",
        "BandwidthPackageId": "",
        "BandwidthPackageBandwidth": "",
        "BandwidthPackageType": "",
        "HasReservationData": "false",
        "ReservationActiveTime": "",
        "ReservationBandwidth": "",
        "ReservationInternetChargeType": "",
        "ReservationOrderType": "",
        "PublicIpAddressPoolId": "",
        "SegmentInstanceId": "",
        "ServiceID": 0,
        "ServiceManaged": 0,
        "Zone": "",
        "OperationLocks": {"LockReason": []},
        "SecurityProtectionTypes": {"SecurityProtectionType": []},
        "Tags": tag_set(tags, vpc=True),
    }


@actions.define(
    "AllocateEipAddress",
    [
        REGION_ID,
        BANDWIDTH,
        INTERNET_CHARGE_TYPE,
        ISP,
        String("Name", max_length=128),
        String("Description", max_length=256),
        String("IpAddress", max_length=64),
        String(
            "InstanceChargeType",
            choices=("PrePaid", "PostPaid"),
            default="PostPaid",
            unsupported_values=("PrePaid",),
            unsupported_because="EIPs are pay-as-you-go; subscriptions do not exist in nubes",
        ),
        String("Netmode", choices=("public",)),
        RESOURCE_GROUP_ID,
        CLIENT_TOKEN,
        TAGS,
    ],
    idempotent=True,
)
def allocate_eip_address(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Take an EIP from the operator's public ranges (IpAddress: that address); it is
    Available until associated. ECS's quota: 20 EIPs per region."""
    eip = ctx.services.eips.allocate(
        ctx.scope(p["RegionId"]),
        EipRequest(
            bandwidth=5 if p["Bandwidth"] is None else int(p["Bandwidth"]),
            internet_charge_type=p["InternetChargeType"] or "PayByBandwidth",
            name=p["Name"] or "",
            description=p["Description"] or "",
            resource_group_id=p["ResourceGroupId"],
            ip_address=p["IpAddress"],
            tags=tag_pairs(p),
        ),
    )
    return {
        "AllocationId": eip.id,
        "EipAddress": eip.ip_address,
        "OrderId": 0,
        "ResourceGroupId": eip.resource_group_id,
    }


@actions.define(
    "AssociateEipAddress",
    [
        REGION_ID,
        ALLOCATION_ID,
        String("InstanceId", required=True, max_length=64),
        String(
            "InstanceType",
            choices=INSTANCE_TYPES,
            default="EcsInstance",
            unsupported_values=NOT_YET,
            unsupported_because="EIPs go to instances, network interfaces and NAT gateways",
        ),
        String("PrivateIpAddress", max_length=64),
        String(
            "Mode",
            choices=("NAT", "MULTI_BINDED", "BINDED"),
            unsupported_values=("MULTI_BINDED", "BINDED"),
            unsupported_because="an EIP is mapped to its private address by NAT",
        ),
        CLIENT_TOKEN,
    ],
    idempotent=True,
)
def associate_eip_address(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Map an Available EIP to an instance (Running or Stopped, with no public address yet), to
    a secondary network interface or to a NAT gateway (Nat); PrivateIpAddress, when given, must
    be its address."""
    ctx.services.eips.associate(
        ctx.scope(p["RegionId"]), p["AllocationId"], p["InstanceType"], p["InstanceId"], p["PrivateIpAddress"]
    )
    return {}


@actions.define(
    "UnassociateEipAddress",
    [
        REGION_ID,
        ALLOCATION_ID,
        String("InstanceId", max_length=64),
        String("InstanceType", choices=INSTANCE_TYPES),
        String("PrivateIpAddress", max_length=64),
        Boolean("Force", default=False),
        CLIENT_TOKEN,
    ],
    idempotent=True,
)
def unassociate_eip_address(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Unmap an EIP (InstanceId, InstanceType, PrivateIpAddress: what it must be mapped to). The
    instance must be Running or Stopped, unless Force; a NAT gateway's EIP must be in none of its
    SNAT or DNAT entries."""
    ctx.services.eips.unassociate(
        ctx.scope(p["RegionId"]),
        p["AllocationId"],
        p["InstanceType"],
        p["InstanceId"],
        p["PrivateIpAddress"],
        p["Force"],
    )
    return {}


@actions.define("ReleaseEipAddress", [REGION_ID, ALLOCATION_ID])
def release_eip_address(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Give an Available EIP back to the public ranges (an associated one is refused)."""
    ctx.services.eips.release(ctx.scope(p["RegionId"]), p["AllocationId"])
    return {}


@actions.define(
    "ModifyEipAddressAttribute",
    [
        REGION_ID,
        ALLOCATION_ID,
        BANDWIDTH,
        String("Name", max_length=128),
        String("Description", max_length=256),
    ],
)
def modify_eip_address_attribute(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Change an EIP's bandwidth (at once, also while associated), name or description."""
    ctx.services.eips.modify(
        ctx.scope(p["RegionId"]),
        p["AllocationId"],
        None if p["Bandwidth"] is None else int(p["Bandwidth"]),
        p["Name"],
        p["Description"],
    )
    return {}


def _ids(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@actions.define(
    "DescribeEipAddresses",
    [
        REGION_ID,
        String("AllocationId", max_length=2048),
        String("EipAddress", max_length=2048),
        String("Status", choices=(pa.AVAILABLE, pa.ASSOCIATING, pa.IN_USE, pa.UNASSOCIATING)),
        String("EipName", max_length=128),
        ISP,
        String("AssociatedInstanceType", choices=INSTANCE_TYPES),
        String("AssociatedInstanceId", max_length=64),
        String("ChargeType", choices=("PostPaid", "PrePaid")),
        String("LockReason", choices=("financial", "security")),
        Boolean("SecurityProtectionEnabled"),
        Boolean("IncludeReservationData", default=False),
        String("ResourceGroupId", max_length=64),
        CREATION_FILTER,
        TAGS,
        DRY_RUN,
        *page_params(max_size=100),
    ],
)
def describe_eip_addresses(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The caller's EIPs in a region, newest first. AllocationId and EipAddress take up to 50
    values separated by commas; Filter.N: CreationStartTime/CreationEndTime. No nubes EIP is
    locked, prepaid or under security protection (LockReason, ChargeType=PrePaid and
    SecurityProtectionEnabled=true match none); there is no reservation data to include."""
    scope = ctx.scope(p["RegionId"])
    window = creation_window(p)
    rows = ctx.services.eips.describe(
        scope,
        EipFilter(
            allocation_ids=_ids(p["AllocationId"]),
            ip_addresses=_ids(p["EipAddress"]),
            status=p["Status"],
            name=p["EipName"],
            isp=p["ISP"],
            instance_type=p["AssociatedInstanceType"],
            instance_id=p["AssociatedInstanceId"],
            resource_group_id=p["ResourceGroupId"],
            tags=tag_filter(p),
            nothing=bool(p["LockReason"] or p["ChargeType"] == "PrePaid" or p["SecurityProtectionEnabled"]),
        ),
    )
    rows = [r for r in rows if window.holds(r.created_at)]
    tags = ctx.services.tags.of(scope, "eip", (r.id for r in rows))
    return number_paged(rows, p, "EipAddresses", "EipAddress", lambda r: render_eip(r, tags.get(r.id, [])))
