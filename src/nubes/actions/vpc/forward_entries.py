"""VPC API: CreateForwardEntry, ModifyForwardEntry, DeleteForwardEntry, DescribeForwardTableEntries
(the DNAT entries of NAT gateways)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from nubes.actions.common import CLIENT_TOKEN, DRY_RUN, REGION_ID
from nubes.actions.paging import number_paged, page_params
from nubes.api.context import ActionContext
from nubes.api.params import Boolean, String
from nubes.api.registry import ActionTable
from nubes.domain.nat_entries import ForwardFilter, Forwarding
from nubes.store.models import ForwardEntry

actions = ActionTable("vpc")

FORWARD_TABLE_ID = String("ForwardTableId", required=True, max_length=64)
FORWARD_ENTRY_ID = String("ForwardEntryId", required=True, max_length=64)
FORWARD_ENTRY_NAME = String("ForwardEntryName", max_length=128)
# Taken in any case (TCP, Any, ...) and checked by the domain, which answers ECS's own code.
IP_PROTOCOL = String("IpProtocol", max_length=16)
EXTERNAL_IP = String("ExternalIp", max_length=64)
INTERNAL_IP = String("InternalIp", max_length=64)
EXTERNAL_PORT = String("ExternalPort", max_length=16)
INTERNAL_PORT = String("InternalPort", max_length=16)
PORT_BREAK = Boolean("PortBreak")
MAPPING = [IP_PROTOCOL, EXTERNAL_IP, EXTERNAL_PORT, INTERNAL_IP, INTERNAL_PORT, PORT_BREAK]
REQUIRED_MAPPING = [replace(param, required=True) for param in MAPPING[:-1]]


def render_forward_entry(entry: ForwardEntry) -> dict[str, Any]:
    return {
        "ForwardTableId": entry.forward_table_id,
        "ForwardEntryId": entry.id,
        "ForwardEntryName": entry.name,
        "ExternalIp": entry.external_ip,
        "ExternalPort": entry.external_port,
        "IpProtocol": entry.ip_protocol,
        "InternalIp": entry.internal_ip,
        "InternalPort": entry.internal_port,
        "Status": entry.status,
        "NatGatewayId": entry.nat_gateway_id,
    }


@actions.define(
    "CreateForwardEntry",
    [
        REGION_ID,
        FORWARD_TABLE_ID,
        *REQUIRED_MAPPING,
        PORT_BREAK,
        FORWARD_ENTRY_NAME,
        CLIENT_TOKEN,
        DRY_RUN,
    ],
    idempotent=True,
)
def create_forward_entry(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Forward what reaches ExternalIp (an EIP of the gateway) on ExternalPort (a port, a range
    a/b, or any with IpProtocol any) to InternalIp (an address of the VPC) on InternalPort;
    Available at once."""
    entry_id = ctx.services.forward_entries.create(
        ctx.scope(p["RegionId"]),
        p["ForwardTableId"],
        Forwarding(
            p["IpProtocol"],
            p["ExternalIp"],
            p["ExternalPort"],
            p["InternalIp"],
            p["InternalPort"],
            bool(p["PortBreak"]),
        ),
        p["ForwardEntryName"],
    )
    return {"ForwardEntryId": entry_id}


@actions.define(
    "ModifyForwardEntry",
    [REGION_ID, FORWARD_TABLE_ID, FORWARD_ENTRY_ID, *MAPPING, FORWARD_ENTRY_NAME, CLIENT_TOKEN, DRY_RUN],
    idempotent=True,
)
def modify_forward_entry(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Change what a DNAT entry maps, or its name; the result is checked as a new entry is."""
    ctx.services.forward_entries.modify(
        ctx.scope(p["RegionId"]),
        p["ForwardTableId"],
        p["ForwardEntryId"],
        {
            "ip_protocol": p["IpProtocol"],
            "external_ip": p["ExternalIp"],
            "external_port": p["ExternalPort"],
            "internal_ip": p["InternalIp"],
            "internal_port": p["InternalPort"],
            "port_break": p["PortBreak"],
        },
        p["ForwardEntryName"],
    )
    return {}


@actions.define(
    "DeleteForwardEntry", [REGION_ID, FORWARD_TABLE_ID, FORWARD_ENTRY_ID, CLIENT_TOKEN], idempotent=True
)
def delete_forward_entry(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Remove a DNAT entry from its table."""
    ctx.services.forward_entries.delete(ctx.scope(p["RegionId"]), p["ForwardTableId"], p["ForwardEntryId"])
    return {}


@actions.define(
    "DescribeForwardTableEntries",
    [
        REGION_ID,
        String("ForwardTableId", max_length=64),
        String("NatGatewayId", max_length=64),
        String("ForwardEntryId", max_length=64),
        FORWARD_ENTRY_NAME,
        *MAPPING[:-1],
        *page_params(max_size=50),
    ],
)
def describe_forward_table_entries(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The DNAT entries of a table (ForwardTableId) or a gateway (NatGatewayId), oldest first."""
    rows = ctx.services.forward_entries.describe(
        ctx.scope(p["RegionId"]),
        ForwardFilter(
            forward_table_id=p["ForwardTableId"],
            nat_gateway_id=p["NatGatewayId"],
            forward_entry_id=p["ForwardEntryId"],
            name=p["ForwardEntryName"],
            external_ip=p["ExternalIp"],
            external_port=p["ExternalPort"],
            internal_ip=p["InternalIp"],
            internal_port=p["InternalPort"],
            ip_protocol=p["IpProtocol"],
        ),
    )
    return number_paged(rows, p, "ForwardTableEntries", "ForwardTableEntry", render_forward_entry)
