"""ECS elastic network interfaces: create, describe, modify, delete; attach to and detach from
instances; secondary private addresses."""

from __future__ import annotations

from typing import Any

from nubes.actions.common import (
    CLIENT_TOKEN,
    REGION_ID,
    RESOURCE_GROUP_ID,
    TAGS,
    tag_filter,
    tag_pairs,
    tag_set,
)
from nubes.actions.paging import either_page, page_params, token_params
from nubes.api.context import ActionContext
from nubes.api.params import Boolean, Integer, String, StringList
from nubes.api.registry import ActionTable
from nubes.clock import iso8601_seconds
from nubes.domain import public_addresses as pa
from nubes.store.models import NetworkInterface, PublicAddress

actions = ActionTable("ecs")

ENI_ID = String("NetworkInterfaceId", required=True, max_length=64)
INSTANCE_ID = String("InstanceId", required=True, max_length=64)
# Secondary private addresses: named, or a count of free ones (ECS: at most 10 while the interface is
# not attached; the instance type's EniPrivateIpAddressQuantity once it is, checked by the domain).
PRIVATE_IPS = StringList("PrivateIpAddress", max_items=50, item_max_length=64)
SECONDARY_COUNT = Integer("SecondaryPrivateIpAddressCount", minimum=1, maximum=50)


def associated_public_ip(public: PublicAddress | None) -> dict[str, str]:
    """The public address mapped to an interface's address: an EIP (with its AllocationId) or the
    instance's public IP (without), or none."""
    if public is None:
        return {"PublicIpAddress": "", "AllocationId": ""}
    return {"PublicIpAddress": public.ip_address, "AllocationId": public.id if public.kind == pa.EIP else ""}


def render_eni(
    ctx: ActionContext,
    eni: NetworkInterface,
    tags: list[tuple[str, str]],
    public: PublicAddress | None = None,
) -> dict[str, Any]:
    return {
        "NetworkInterfaceId": eni.id,
        "NetworkInterfaceName": eni.name,
        "Description": eni.description,
        "Status": eni.status,
        "Type": eni.eni_type,
        "VpcId": eni.vpc_id,
        "VSwitchId": eni.vswitch_id,
        "ZoneId": eni.zone_id,
        "PrivateIpAddress": eni.primary_ip,
        "MacAddress": eni.mac,
        "InstanceId": eni.instance_id,
        "CreationTime": iso8601_seconds(eni.created_at),
        "ResourceGroupId": eni.resource_group_id,
        "OwnerId": ctx.principal.uid,
        "ServiceManaged": False,
        "ServiceID": 0,  # the Alibaba Cloud service that manages an interface; none does here
        "DeleteOnRelease": False,
        "SourceDestCheck": True,
        "SecurityGroupIds": {"SecurityGroupId": [m.group_id for m in eni.memberships]},
        "PrivateIpSets": {
            "PrivateIpSet": [
                {
                    "PrivateIpAddress": eni.primary_ip,
                    "Primary": True,
                    "PrivateDnsName": "",
                    "AssociatedPublicIp": associated_public_ip(public),
                },
                # (a public address maps to the primary address only: a secondary one has none)
                *(
                    {
                        "PrivateIpAddress": row.ip_address,
                        "Primary": False,
                        "PrivateDnsName": "",
                        "AssociatedPublicIp": associated_public_ip(None),
                    }
                    for row in eni.secondary_ips
                ),
            ]
        },
        "AssociatedPublicIp": associated_public_ip(public),
        "Ipv6Sets": {"Ipv6Set": []},
        "Ipv4PrefixSets": {"Ipv4PrefixSet": []},
        "Ipv6PrefixSets": {"Ipv6PrefixSet": []},
        "Attachment": {
            "InstanceId": eni.instance_id,
            "DeviceIndex": 1 if eni.instance_id and eni.eni_type != "Primary" else 0,
            "NetworkCardIndex": 0,
            "TrunkNetworkInterfaceId": "",
        },
        "NetworkInterfaceTrafficMode": "Standard",  # not HighPerformance: nubes has no eRDMA
        "QueueNumber": 0,  # ECS writes the count only where one was set for the interface
        "QueuePairNumber": 0,
        "Tags": tag_set(tags),
    }


@actions.define(
    "CreateNetworkInterface",
    [
        REGION_ID,
        String("VSwitchId", required=True, max_length=64),
        String("SecurityGroupId", max_length=64),
        StringList("SecurityGroupIds", max_items=10, item_max_length=64),
        String("PrimaryIpAddress", max_length=64),
        String("NetworkInterfaceName", max_length=128),
        String("Description", max_length=256),
        RESOURCE_GROUP_ID,
        CLIENT_TOKEN,
        Boolean(
            "DeleteOnRelease",
            default=False,
            unsupported_values=(True,),
            unsupported_because="nubes keeps a secondary network interface when its instance is released "
            "(it is detached and Available again)",
        ),
        TAGS,
        PRIVATE_IPS,
        SECONDARY_COUNT,
    ],
    idempotent=True,
)
def create_network_interface(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Create an interface on a vSwitch, in one to five security groups of its VPC."""
    groups = ([p["SecurityGroupId"]] if p["SecurityGroupId"] else []) + list(p["SecurityGroupIds"] or [])
    scope = ctx.scope(p["RegionId"])
    eni = ctx.services.network_interfaces.create(
        scope,
        p["VSwitchId"],
        groups,
        p["PrimaryIpAddress"],
        p["NetworkInterfaceName"],
        p["Description"],
        p["ResourceGroupId"],
        tags=tag_pairs(p),
        secondary_ips=p["PrivateIpAddress"] or (),
        secondary_count=p["SecondaryPrivateIpAddressCount"],
    )
    return render_eni(
        ctx,
        eni,
        ctx.services.tags.of(scope, "eni", [eni.id]).get(eni.id, []),
        ctx.services.eips.of_interfaces([eni.id]).get(eni.id),
    )


@actions.define(
    "DescribeNetworkInterfaces",
    [
        REGION_ID,
        StringList("NetworkInterfaceId", max_items=100, item_max_length=64),
        String("VpcId", max_length=64),
        String("VSwitchId", max_length=64),
        String("SecurityGroupId", max_length=64),
        String("InstanceId", max_length=64),
        String("Status", choices=("Available", "Attaching", "InUse", "Detaching", "Deleting")),
        String("Type", choices=("Primary", "Secondary")),
        String("NetworkInterfaceName", max_length=128),
        String("PrimaryIpAddress", max_length=64),
        StringList("PrivateIpAddress", max_items=100, item_max_length=64),
        StringList("Ipv6Address", max_items=100, item_max_length=64),
        String("ResourceGroupId", max_length=64),
        Boolean("ServiceManaged"),
        TAGS,
        *page_params(max_size=500, default_size=None),
        *token_params(max_results=500, min_results=10),
    ],
)
def describe_network_interfaces(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The caller's interfaces, filtered (Tag.N: carrying every tag), in either paging style.
    PrivateIpAddress.N: having one of these private addresses (primary or secondary);
    Ipv6Address.N and ServiceManaged=true match nothing: no interface has an IPv6 address or is
    managed by a cloud service."""
    scope = ctx.scope(p["RegionId"])
    enis = ctx.services.network_interfaces.describe(
        scope,
        p["NetworkInterfaceId"],
        p["VpcId"],
        p["VSwitchId"],
        p["SecurityGroupId"],
        p["InstanceId"],
        p["Status"],
        p["NetworkInterfaceName"],
        p["PrimaryIpAddress"],
        p["Type"],
        tag_filter(p),
        private_ips=p["PrivateIpAddress"],
        resource_group_id=p["ResourceGroupId"],
    )
    if p["Ipv6Address"] or p["ServiceManaged"]:
        enis = []
    tags = ctx.services.tags.of(scope, "eni", (e.id for e in enis))
    public = ctx.services.eips.of_interfaces(e.id for e in enis)
    items = [render_eni(ctx, e, tags.get(e.id, []), public.get(e.id)) for e in enis]
    body: dict[str, Any] = {"TotalCount": len(items)}
    body.update(either_page(items, p, "NetworkInterfaceSets", "NetworkInterfaceSet"))
    return body


@actions.define("DescribeNetworkInterfaceAttribute", [REGION_ID, ENI_ID])
def describe_network_interface_attribute(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """One interface, with the fields only this action reports (nubes has no bonding, QoS or
    enhanced networking, and keeps the kernel's connection tracking timeouts). Attribute (a part
    to return alone) and Tag.N are refused (undeclared)."""
    scope = ctx.scope(p["RegionId"])
    eni = ctx.services.network_interfaces.get(scope, p["NetworkInterfaceId"])
    body = render_eni(
        ctx,
        eni,
        ctx.services.tags.of(scope, "eni", [eni.id]).get(eni.id, []),
        ctx.services.eips.of_interfaces([eni.id]).get(eni.id),
    )
    body["Attachment"]["MemberNetworkInterfaceIds"] = {"MemberNetworkInterfaceId": []}
    body.update(
        {
            "BondInterfaceSpecification": {
                "BondMode": "",
                "SlaveInterfaceSpecification": {"SlaveInterfaceSpecificationSet": []},
            },
            "SlaveInterfaceSpecification": {
                "BondNetworkInterfaceId": "",
                "SlaveNetworkInterfaceId": "",
                "WorkState": "",
            },
            # the Linux defaults nubes' VPC routers keep (nf_conntrack_*_timeout)
            "ConnectionTrackingConfiguration": {
                "TcpClosedAndTimeWaitTimeout": 120,
                "TcpEstablishedTimeout": 432000,
                "UdpTimeout": 30,
            },
            "EnhancedNetwork": {
                "EnableExpress": False,
                "EnableRss": False,
                "EnableSriov": False,
                "VirtualFunctionQuantity": 0,
                "VirtualFunctionTotalQueueNumber": 0,
            },
            "NetworkInterfaceTrafficConfig": {
                "NetworkInterfaceTrafficMode": "Standard",
                "QueueNumber": 0,
                "QueuePairNumber": 0,
            },
            "QoSConfig": {
                "EnableQoS": False,
                "QoS": {
                    "BandwidthRx": 0,
                    "BandwidthTx": 0,
                    "ConcurrentConnections": 0,
                    "PpsRx": 0,
                    "PpsTx": 0,
                },
            },
            "TcpOptionAddressEnabled": "",
        }
    )
    return body


@actions.define(
    "ModifyNetworkInterfaceAttribute",
    [
        REGION_ID,
        ENI_ID,
        String("NetworkInterfaceName", max_length=128),
        String("Description", max_length=256),
        StringList("SecurityGroupId", max_items=10, item_max_length=64),
    ],
)
def modify_network_interface_attribute(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Rename an interface, or replace its security groups (SecurityGroupId.N)."""
    ctx.services.network_interfaces.modify(
        ctx.scope(p["RegionId"]),
        p["NetworkInterfaceId"],
        p["NetworkInterfaceName"],
        p["Description"],
        p["SecurityGroupId"],
    )
    return {}


@actions.define("DeleteNetworkInterface", [REGION_ID, ENI_ID])
def delete_network_interface(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Delete an interface that nothing uses."""
    ctx.services.network_interfaces.delete(ctx.scope(p["RegionId"]), p["NetworkInterfaceId"])
    return {}


@actions.define(
    "AttachNetworkInterface",
    [
        REGION_ID,
        ENI_ID,
        INSTANCE_ID,
        Integer(
            "NetworkCardIndex",
            minimum=0,
            unsupported_from=1,
            unsupported_because="a nubes instance has one network card (index 0)",
        ),
    ],
)
def attach_network_interface(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Attach a secondary interface to an instance of its VPC and zone (Attaching, then InUse).
    TrunkNetworkInstanceId and WaitForNetworkConfigurationReady are refused (undeclared): nubes
    has no trunk interfaces, and the attachment is asynchronous as in ECS."""
    ctx.services.network_interfaces.attach(ctx.scope(p["RegionId"]), p["NetworkInterfaceId"], p["InstanceId"])
    return {}


@actions.define("DetachNetworkInterface", [REGION_ID, ENI_ID, INSTANCE_ID])
def detach_network_interface(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Detach a secondary interface from its instance (Detaching, then Available)."""
    ctx.services.network_interfaces.detach(ctx.scope(p["RegionId"]), p["NetworkInterfaceId"], p["InstanceId"])
    return {}


@actions.define(
    "AssignPrivateIpAddresses",
    [REGION_ID, ENI_ID, PRIVATE_IPS, SECONDARY_COUNT, CLIENT_TOKEN],
    idempotent=True,
)
def assign_private_ip_addresses(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Give an interface secondary private addresses of its vSwitch (named, or a count)."""
    assigned = ctx.services.network_interfaces.assign_private_ips(
        ctx.scope(p["RegionId"]),
        p["NetworkInterfaceId"],
        p["PrivateIpAddress"] or (),
        p["SecondaryPrivateIpAddressCount"],
    )
    return {
        "AssignedPrivateIpAddressesSet": {
            "NetworkInterfaceId": p["NetworkInterfaceId"],
            "PrivateIpSet": {"PrivateIpAddress": assigned},
            "Ipv4PrefixSet": {"Ipv4Prefixes": []},  # Ipv4Prefix.N / Ipv4PrefixCount are refused
        }
    }


@actions.define("UnassignPrivateIpAddresses", [REGION_ID, ENI_ID, PRIVATE_IPS])
def unassign_private_ip_addresses(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Take secondary private addresses from an interface."""
    ctx.services.network_interfaces.unassign_private_ips(
        ctx.scope(p["RegionId"]), p["NetworkInterfaceId"], p["PrivateIpAddress"] or ()
    )
    return {}
