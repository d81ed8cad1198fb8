"""VPC API: CreateSnatEntry, ModifySnatEntry, DeleteSnatEntry, DescribeSnatTableEntries."""

from __future__ import annotations

from typing import Any

from nubes.actions.common import CLIENT_TOKEN, DRY_RUN, REGION_ID
from nubes.actions.paging import number_paged, page_params
from nubes.api.context import ActionContext
from nubes.api.params import Integer, String
from nubes.api.registry import ActionTable
from nubes.domain.nat_entries import SnatFilter
from nubes.store.models import SnatEntry

actions = ActionTable("vpc")

SNAT_TABLE_ID = String("SnatTableId", required=True, max_length=64)
SNAT_ENTRY_ID = String("SnatEntryId", required=True, max_length=64)
SNAT_ENTRY_NAME = String("SnatEntryName", max_length=128)
EIP_AFFINITY = Integer("EipAffinity", minimum=0, maximum=1)


def render_snat_entry(entry: SnatEntry) -> dict[str, Any]:
    return {
        "SnatTableId": entry.snat_table_id,
        "SnatEntryId": entry.id,
        "SnatEntryName": entry.name,
        "SourceVSwitchId": entry.source_vswitch_id,
        "SourceCIDR": entry.source_cidr,
        "SnatIp": entry.snat_ips,
        "Status": entry.status,
        "NatGatewayId": entry.nat_gateway_id,
        "EipAffinity": str(entry.eip_affinity),
        "NetworkInterfaceId": "",
    }


@actions.define(
    "CreateSnatEntry",
    [
        REGION_ID,
        SNAT_TABLE_ID,
        String("SnatIp", required=True, max_length=1024),
        String("SourceVSwitchId", max_length=64),
        String("SourceCIDR", max_length=64),
        SNAT_ENTRY_NAME,
        EIP_AFFINITY,
        CLIENT_TOKEN,
        DRY_RUN,
    ],
    idempotent=True,
)
def create_snat_entry(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Translate what leaves a vSwitch (SourceVSwitchId) or a CIDR block (SourceCIDR), exactly one
    of them, to the gateway's EIPs in SnatIp (separated by commas); Available at once."""
    entry_id = ctx.services.snat_entries.create(
        ctx.scope(p["RegionId"]),
        p["SnatTableId"],
        (p["SourceVSwitchId"], p["SourceCIDR"]),
        p["SnatIp"],
        p["SnatEntryName"],
        p["EipAffinity"] or 0,
    )
    return {"SnatEntryId": entry_id}


@actions.define(
    "ModifySnatEntry",
    [
        REGION_ID,
        SNAT_TABLE_ID,
        SNAT_ENTRY_ID,
        String("SnatIp", max_length=1024),
        SNAT_ENTRY_NAME,
        EIP_AFFINITY,
        CLIENT_TOKEN,
        DRY_RUN,
    ],
    idempotent=True,
)
def modify_snat_entry(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Change an SNAT entry's EIPs, name or EipAffinity."""
    ctx.services.snat_entries.modify(
        ctx.scope(p["RegionId"]),
        p["SnatTableId"],
        p["SnatEntryId"],
        p["SnatIp"],
        p["SnatEntryName"],
        p["EipAffinity"],
    )
    return {}


@actions.define("DeleteSnatEntry", [REGION_ID, SNAT_TABLE_ID, SNAT_ENTRY_ID, CLIENT_TOKEN], idempotent=True)
def delete_snat_entry(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Remove an SNAT entry from its table."""
    ctx.services.snat_entries.delete(ctx.scope(p["RegionId"]), p["SnatTableId"], p["SnatEntryId"])
    return {}


@actions.define(
    "DescribeSnatTableEntries",
    [
        REGION_ID,
        String("SnatTableId", max_length=64),
        String("NatGatewayId", max_length=64),
        String("SnatEntryId", max_length=64),
        SNAT_ENTRY_NAME,
        String("SnatIp", max_length=64),
        String("SourceCIDR", max_length=64),
        String("SourceVSwitchId", max_length=64),
        *page_params(max_size=100),
    ],
)
def describe_snat_table_entries(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The SNAT entries of a table (SnatTableId) or a gateway (NatGatewayId), oldest first."""
    rows = ctx.services.snat_entries.describe(
        ctx.scope(p["RegionId"]),
        SnatFilter(
            snat_table_id=p["SnatTableId"],
            nat_gateway_id=p["NatGatewayId"],
            snat_entry_id=p["SnatEntryId"],
            name=p["SnatEntryName"],
            snat_ip=p["SnatIp"],
            source_cidr=p["SourceCIDR"],
            source_vswitch_id=p["SourceVSwitchId"],
        ),
    )
    return number_paged(rows, p, "SnatTableEntries", "SnatTableEntry", render_snat_entry)
