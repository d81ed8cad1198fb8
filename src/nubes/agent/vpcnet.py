"""The desired network state of VPCs: the store's rows mapped to the types the network driver
takes (the driver knows neither the store nor the domain; the domain does not know the driver)."""

from __future__ import annotations

from collections import defaultdict
from ipaddress import IPv4Network
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from nubes.domain import cidr
from nubes.domain.netstate import ATTACHED_KINDS, test_host_netns
from nubes.domain.public_addresses import NAT_GATEWAY
from nubes.drivers.network.base import (
    DnatRule,
    PortNet,
    PublicMapping,
    RouteNet,
    SecurityGroupNet,
    SecurityRule,
    SnatRule,
    VpcNet,
    VSwitchNet,
)
from nubes.store.db import Database
from nubes.store.models import (
    ForwardEntry,
    NatGateway,
    NetworkInterface,
    PublicAddress,
    PublicAddressPool,
    RouteEntry,
    SecurityGroup,
    SecurityGroupRule,
    SnatEntry,
    Vpc,
    VSwitch,
)


def rule_net(rule: SecurityGroupRule) -> SecurityRule:
    start, _, end = rule.port_range.partition("/")
    source_start, _, source_end = (rule.source_port_range or "-1/-1").partition("/")
    return SecurityRule(
        rule_id=rule.id,
        direction=rule.direction,
        protocol=rule.ip_protocol.lower(),
        port_from=int(start),
        port_to=int(end),
        policy=rule.policy,
        priority=rule.priority,
        peer_cidr=rule.peer_cidr or None,
        peer_group_id=rule.peer_group_id or None,
        source_port_from=int(source_start),
        source_port_to=int(source_end),
    )


def group_net(group: SecurityGroup) -> SecurityGroupNet:
    return SecurityGroupNet(
        group_id=group.id,
        kind=group.group_type,
        inner_access=group.inner_access_policy.lower(),
        rules=tuple(rule_net(r) for r in group.rules),
    )


def desired_vpcs(db: Database, host_netns_prefix: str, vpc_ids: list[str] | None = None) -> list[VpcNet]:
    """Every VPC (or the ones named) with its vSwitches, plugged-in ports and their groups, and
    the public addresses mapped to those ports (1:1 NAT on the uplink)."""
    with db.session() as s:
        vpc_query = select(Vpc).order_by(Vpc.id)
        if vpc_ids is not None:
            vpc_query = vpc_query.where(Vpc.id.in_(vpc_ids))
        vpcs = list(s.scalars(vpc_query))
        wanted = [v.id for v in vpcs]
        vswitches: dict[str, list[VSwitchNet]] = defaultdict(list)
        system_tables = {v.id: v.route_table_id for v in vpcs}
        table_sources: dict[str, list[str]] = defaultdict(list)  # route table -> its vSwitches' CIDRs
        for vsw in s.scalars(select(VSwitch).where(VSwitch.vpc_id.in_(wanted)).order_by(VSwitch.id)):
            network = IPv4Network(vsw.cidr)
            vswitches[vsw.vpc_id].append(VSwitchNet(vsw.id, vsw.cidr, str(cidr.gateway(network))))
            table_sources[vsw.route_table_id or system_tables[vsw.vpc_id]].append(vsw.cidr)
        ports: dict[str, list[PortNet]] = defaultdict(list)
        used_groups: dict[str, set[str]] = defaultdict(set)
        for eni in s.scalars(
            select(NetworkInterface)
            .where(NetworkInterface.vpc_id.in_(wanted), NetworkInterface.attachment.in_(ATTACHED_KINDS))
            .options(selectinload(NetworkInterface.memberships))
            .order_by(NetworkInterface.id)
        ):
            group_ids = tuple(m.group_id for m in eni.memberships)
            used_groups[eni.vpc_id].update(group_ids)
            test_host = eni.attachment == "testhost"
            ports[eni.vpc_id].append(
                PortNet(
                    port_id=eni.id,
                    vswitch_id=eni.vswitch_id,
                    mac=eni.mac,
                    ip=eni.primary_ip,
                    security_group_ids=group_ids,
                    kind="veth" if test_host else "tap",
                    host_netns=test_host_netns(host_netns_prefix, eni.id) if test_host else None,
                    secondary_ips=tuple(row.ip_address for row in eni.secondary_ips),
                )
            )
        public = _public_mappings(s, wanted, {p.port_id: p for each in ports.values() for p in each})
        snat, dnat = _nat_entries(s, wanted, public)
        routes = _routes(s, wanted, ports, table_sources)
        groups: dict[str, list[SecurityGroupNet]] = defaultdict(list)
        all_used = set().union(*used_groups.values()) if used_groups else set()
        for group in s.scalars(
            select(SecurityGroup)
            .where(SecurityGroup.id.in_(all_used))
            .options(selectinload(SecurityGroup.rules))
            .order_by(SecurityGroup.id)
        ):
            groups[group.vpc_id].append(group_net(group))
        return [
            VpcNet(
                v.id,
                v.cidr,
                tuple(vswitches[v.id]),
                tuple(ports[v.id]),
                tuple(groups[v.id]),
                tuple(public[v.id]),
                tuple(routes[v.id]),
                tuple(snat[v.id]),
                tuple(dnat[v.id]),
            )
            for v in vpcs
        ]


def _routes(
    s: Session, vpc_ids: list[str], ports: dict[str, list[PortNet]], table_sources: dict[str, list[str]]
) -> dict[str, list[RouteNet]]:
    """The custom route entries of each VPC whose next hop is a port plugged in now (an
    instance's is its primary interface), for the vSwitches that use their table."""
    plugged = {p.port_id: p for each in ports.values() for p in each}
    primary: dict[str, str] = {
        instance_id: eni_id
        for instance_id, eni_id in s.execute(
            select(NetworkInterface.instance_id, NetworkInterface.id).where(
                NetworkInterface.vpc_id.in_(vpc_ids),
                NetworkInterface.eni_type == "Primary",
                NetworkInterface.instance_id != "",
            )
        )
    }
    routes: dict[str, list[RouteNet]] = defaultdict(list)
    for entry in s.scalars(select(RouteEntry).where(RouteEntry.vpc_id.in_(vpc_ids)).order_by(RouteEntry.id)):
        port_id = (
            entry.next_hop_id if entry.next_hop_type == "NetworkInterface" else primary.get(entry.next_hop_id)
        )
        hop = plugged.get(port_id or "")
        if hop is not None:
            sources = tuple(table_sources.get(entry.route_table_id, ()))
            routes[entry.vpc_id].append(
                RouteNet(entry.route_table_id, entry.destination_cidr, hop.port_id, hop.ip, sources)
            )
    return routes


def _public_mappings(
    s: Session, vpc_ids: list[str], ports: dict[str, PortNet]
) -> dict[str, list[PublicMapping]]:
    """Per VPC, its addresses associated with a plugged-in port (the port's address is the
    private end; an address whose interface is not plugged in has nothing to map to yet), and
    the addresses of its NAT gateways (mapped to no port: SNAT and forward entries use them)."""
    gateways = {p.cidr: p.gateway for p in s.scalars(select(PublicAddressPool))}
    answering = {
        g.id: g.icmp_reply_enabled
        for g in s.scalars(select(NatGateway).where(NatGateway.vpc_id.in_(vpc_ids)))
    }
    found: dict[str, list[PublicMapping]] = defaultdict(list)
    for row in s.scalars(
        select(PublicAddress).where(PublicAddress.vpc_id.in_(vpc_ids)).order_by(PublicAddress.ip_address)
    ):
        port = ports.get(row.network_interface_id)
        nat_gateway = row.instance_type == NAT_GATEWAY and row.instance_id in answering
        if port is None and not nat_gateway:
            continue
        found[row.vpc_id].append(
            PublicMapping(
                row.id,
                row.ip_address,
                port.ip if port is not None else "",
                row.pool_cidr,
                gateways.get(row.pool_cidr, ""),
                row.bandwidth_out,
                row.bandwidth_in,
                answers_ping=nat_gateway and answering[row.instance_id],
            )
        )
    return found


def _nat_entries(
    s: Session, vpc_ids: list[str], public: dict[str, list[PublicMapping]]
) -> tuple[dict[str, list[SnatRule]], dict[str, list[DnatRule]]]:
    """Per VPC, the SNAT and forward entries of its NAT gateways, with only the addresses the
    gateway holds (an entry left with none translates nothing)."""
    held = {vpc_id: {m.public_ip for m in each if not m.private_ip} for vpc_id, each in public.items()}
    snat: dict[str, list[SnatRule]] = defaultdict(list)
    for entry, vpc_id in _gateway_entries(s, SnatEntry, vpc_ids):
        ips = tuple(ip for ip in entry.snat_ips.split(",") if ip in held.get(vpc_id, ()))
        if ips:
            snat[vpc_id].append(SnatRule(entry.id, (entry.source_cidr,), ips))
    dnat: dict[str, list[DnatRule]] = defaultdict(list)
    for forward, vpc_id in _gateway_entries(s, ForwardEntry, vpc_ids):
        if forward.external_ip in held.get(vpc_id, ()):
            dnat[vpc_id].append(dnat_rule(forward))
    return snat, dnat


Entry = TypeVar("Entry", SnatEntry, ForwardEntry)


def _gateway_entries(s: Session, model: type[Entry], vpc_ids: list[str]) -> list[tuple[Entry, str]]:
    """The entries of one kind of the VPCs' NAT gateways, each with its VPC."""
    rows = s.execute(
        select(model, NatGateway.vpc_id)
        .join(NatGateway, NatGateway.id == model.nat_gateway_id)
        .where(NatGateway.vpc_id.in_(vpc_ids))
        .order_by(model.id)
    )
    return [(entry, vpc_id) for entry, vpc_id in rows]


def dnat_rule(forward: ForwardEntry) -> DnatRule:
    """A forward entry as the driver takes it: ECS writes a port range "1000/1010" and every
    port "any"."""
    if forward.ip_protocol == "any":
        return DnatRule(forward.id, "any", forward.external_ip, "", forward.internal_ip, "")
    return DnatRule(
        forward.id,
        forward.ip_protocol,
        forward.external_ip,
        forward.external_port.replace("/", "-"),
        forward.internal_ip,
        forward.internal_port.replace("/", "-"),
    )
