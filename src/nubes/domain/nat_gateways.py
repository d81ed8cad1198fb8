"""Enhanced Internet NAT gateways of VPCs: create (a private address in its vSwitch, its SNAT and
DNAT tables, the VPC's default route when it has none), describe, modify, delete (Force: with its
entries, EIPs and routes). Available at once: the data plane converges on the VPC's notification,
as for EIPs. The SNAT and DNAT entries are nat_entries.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from nubes import errors, ids
from nubes.clock import Clock
from nubes.domain import private_ips
from nubes.domain import public_addresses as pa
from nubes.domain.common import NotifyNetwork, Scope, check_description, check_name, owned, where_given
from nubes.domain.routes import DEFAULT_ROUTE, NAT_GATEWAY, custom_entry
from nubes.domain.tags import TagMatch, check_tags, drop_tags, where_tagged, write_tags
from nubes.domain.vpcs import AVAILABLE
from nubes.store.db import Database
from nubes.store.models import ForwardEntry, NatGateway, PublicAddress, RouteEntry, SnatEntry, Vpc, VSwitch

# ECS's default quota of Internet NAT gateways per VPC.
NAT_GATEWAYS_PER_VPC = 5
# ECS's default specification of a PayBySpec gateway.
DEFAULT_SPEC = "Small"


@dataclass(frozen=True)
class NatGatewayRequest:
    """What CreateNatGateway takes (the values nubes honours)."""

    vpc_id: str
    vswitch_id: str
    name: str = ""
    description: str = ""
    internet_charge_type: str = "PayByLcu"
    spec: str = ""
    eip_bind_mode: str = "MULTI_BINDED"
    icmp_reply_enabled: bool = True
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class NatGatewayFilter:
    """What DescribeNatGateways narrows by; an empty field narrows nothing."""

    nat_gateway_id: str | None = None
    vpc_id: str | None = None
    name: str | None = None
    status: str | None = None
    spec: str | None = None
    zone_id: str | None = None
    resource_group_id: str | None = None
    tags: Sequence[TagMatch] = ()


@dataclass(frozen=True)
class NatGatewayUse:
    """What hangs off a gateway, for its answers: its EIPs and the addresses its entries use."""

    eips: list[PublicAddress] = field(default_factory=list)
    snat_ips: frozenset[str] = frozenset()
    forward_ips: frozenset[str] = frozenset()
    snat_entries: int = 0
    forward_entries: int = 0


def gateway_not_found(nat_gateway_id: str) -> errors.ApiError:
    return errors.invalid_id_not_found(
        "NatGateway", message=f"The specified NatGatewayId {nat_gateway_id!r} does not exist in our records."
    )


def owned_gateway(s: Session, scope: Scope, nat_gateway_id: str) -> NatGateway:
    return owned(s, NatGateway, scope, nat_gateway_id, gateway_not_found)


def snat_ips_of(entries: Sequence[SnatEntry]) -> set[str]:
    return {ip for e in entries for ip in e.snat_ips.split(",") if ip}


class NatGateways:
    def __init__(self, db: Database, clock: Clock, notify: NotifyNetwork, quota: int = NAT_GATEWAYS_PER_VPC):
        self._db = db
        self._clock = clock
        self._notify = notify  # the VPC whose data plane a gateway changes
        self._quota = quota

    def create(self, scope: Scope, request: NatGatewayRequest) -> NatGateway:
        """A gateway in the vSwitch, with its tables, its private address and, when the VPC's
        system table has no default route, the route 0.0.0.0/0 to it (as ECS adds one)."""
        name = check_name("Name", request.name)
        description = check_description(request.description)
        check_tags(request.tags)
        with self._db.session() as s:
            vpc = owned(s, Vpc, scope, request.vpc_id, "Vpc")
            vswitch = owned(s, VSwitch, scope, request.vswitch_id, "VSwitch")
            if vswitch.vpc_id != vpc.id:
                raise errors.invalid_parameter(
                    "VSwitchId", f"The vSwitch {vswitch.id} is not in the VPC {vpc.id}."
                )
            if vpc.status != AVAILABLE:
                raise errors.incorrect_vpc_status(
                    f"The VPC {vpc.id} is {vpc.status}; wait until it is Available."
                )
            if vswitch.status != AVAILABLE:
                raise errors.incorrect_vswitch_status(
                    f"The vSwitch {vswitch.id} is {vswitch.status}; wait until it is Available."
                )
            count = s.scalar(select(func.count(NatGateway.id)).where(NatGateway.vpc_id == vpc.id)) or 0
            if count >= self._quota:
                raise errors.quota_exceeded_nat_gateway(
                    f"A VPC has at most {self._quota} NAT gateways; {vpc.id} has {count}."
                )
            [address] = private_ips.allocate(s, vswitch, [None])
            spec = request.spec or (DEFAULT_SPEC if request.internet_charge_type == "PayBySpec" else "")
            gateway = NatGateway(
                id=ids.new_id("nat_gateway"),
                account_id=scope.account_id,
                region_id=scope.region_id,
                zone_id=vswitch.zone_id,
                vpc_id=vpc.id,
                vswitch_id=vswitch.id,
                name=name,
                description=description,
                nat_type="Enhanced",
                spec=spec,
                network_type="internet",
                internet_charge_type=request.internet_charge_type,
                eip_bind_mode=request.eip_bind_mode,
                icmp_reply_enabled=request.icmp_reply_enabled,
                deletion_protection=False,
                status=AVAILABLE,
                snat_table_id=ids.new_id("snat_table"),
                forward_table_id=ids.new_id("forward_table"),
                private_ip=str(address),
                resource_group_id=vpc.resource_group_id,
                client_token="",
                created_at=self._clock.now(),
            )
            s.add(gateway)
            if self._default_route(s, vpc) is None:
                s.add(
                    custom_entry(
                        self._clock.now(), vpc.route_table_id, vpc, DEFAULT_ROUTE, (NAT_GATEWAY, gateway.id)
                    )
                )
            write_tags(s, scope, "natgateway", gateway.id, request.tags, created=True)
        self._notify(vpc.id)
        return gateway

    @staticmethod
    def _default_route(s: Session, vpc: Vpc) -> RouteEntry | None:
        return s.scalar(
            select(RouteEntry).where(
                RouteEntry.route_table_id == vpc.route_table_id, RouteEntry.destination_cidr == DEFAULT_ROUTE
            )
        )

    def get(self, scope: Scope, nat_gateway_id: str) -> NatGateway:
        with self._db.session() as s:
            return owned_gateway(s, scope, nat_gateway_id)

    def describe(self, scope: Scope, f: NatGatewayFilter) -> list[NatGateway]:
        """The scope's gateways that pass the filter, newest first."""
        query = select(NatGateway).where(
            NatGateway.account_id == scope.account_id, NatGateway.region_id == scope.region_id
        )
        query = where_given(
            query,
            [
                (NatGateway.id == f.nat_gateway_id, f.nat_gateway_id),
                (NatGateway.vpc_id == f.vpc_id, f.vpc_id),
                (NatGateway.name == f.name, f.name),
                (NatGateway.status == f.status, f.status),
                (NatGateway.spec == f.spec, f.spec),
                (NatGateway.zone_id == f.zone_id, f.zone_id),
                (NatGateway.resource_group_id == f.resource_group_id, f.resource_group_id),
            ],
        )
        query = where_tagged(query, scope, "natgateway", NatGateway.id, f.tags)
        with self._db.session() as s:
            return list(s.scalars(query.order_by(NatGateway.created_at.desc(), NatGateway.id)))

    def uses(self, gateway_ids: Sequence[str]) -> dict[str, NatGatewayUse]:
        """Per gateway: its EIPs and what its SNAT and DNAT entries use."""
        with self._db.session() as s:
            eips = pa.of_nat_gateways(s, gateway_ids)
            snats: dict[str, list[SnatEntry]] = {g: [] for g in gateway_ids}
            for entry in s.scalars(select(SnatEntry).where(SnatEntry.nat_gateway_id.in_(gateway_ids))):
                snats[entry.nat_gateway_id].append(entry)
            forwards: dict[str, list[str]] = {g: [] for g in gateway_ids}
            for gateway_id, ip in s.execute(
                select(ForwardEntry.nat_gateway_id, ForwardEntry.external_ip).where(
                    ForwardEntry.nat_gateway_id.in_(gateway_ids)
                )
            ):
                forwards[gateway_id].append(ip)
            return {
                g: NatGatewayUse(
                    eips[g],
                    frozenset(snat_ips_of(snats[g])),
                    frozenset(forwards[g]),
                    len(snats[g]),
                    len(forwards[g]),
                )
                for g in gateway_ids
            }

    def modify(
        self,
        scope: Scope,
        nat_gateway_id: str,
        name: str | None,
        description: str | None,
        eip_bind_mode: str | None,
        icmp_reply_enabled: bool | None,
    ) -> None:
        """Rename or describe a gateway, or change how it binds EIPs and answers pings (the data
        plane follows on the VPC's notification)."""
        with self._db.session() as s:
            gateway = owned_gateway(s, scope, nat_gateway_id)
            if name is not None:
                gateway.name = check_name("Name", name)
            if description is not None:
                gateway.description = check_description(description)
            if eip_bind_mode is not None:
                gateway.eip_bind_mode = eip_bind_mode
            if icmp_reply_enabled is not None:
                gateway.icmp_reply_enabled = icmp_reply_enabled
            vpc_id = gateway.vpc_id
        if eip_bind_mode is not None or icmp_reply_enabled is not None:
            self._notify(vpc_id)

    def delete(self, scope: Scope, nat_gateway_id: str, force: bool) -> None:
        """Delete a gateway and the VPC's default route to it. What else depends on it (SNAT and
        DNAT entries, EIPs, other routes to it) is refused without Force, and with Force goes
        with it (the EIPs stay, Available again)."""
        with self._db.session() as s:
            gateway = owned_gateway(s, scope, nat_gateway_id)
            vpc = s.get_one(Vpc, gateway.vpc_id)
            own_route = self._default_route(s, vpc)
            routes = select(RouteEntry).where(
                RouteEntry.next_hop_type == NAT_GATEWAY, RouteEntry.next_hop_id == gateway.id
            )
            dependents = (
                ("SnatEntry", select(SnatEntry).where(SnatEntry.nat_gateway_id == gateway.id)),
                ("ForwardEntry", select(ForwardEntry).where(ForwardEntry.nat_gateway_id == gateway.id)),
                (
                    "EIPS",
                    select(PublicAddress).where(
                        PublicAddress.instance_type == pa.NAT_GATEWAY, PublicAddress.instance_id == gateway.id
                    ),
                ),
                ("RouterEntry", routes.where(RouteEntry.id != (own_route.id if own_route else ""))),
            )
            for kind, query in dependents:
                rows = list(s.scalars(query))
                if rows and not force:
                    raise errors.dependency_violation(
                        kind,
                        message=f"The NAT gateway {gateway.id} still has {len(rows)} {kind} dependents; "
                        "remove them first, or delete it with Force.",
                    )
                for row in rows:
                    if isinstance(row, PublicAddress):
                        pa.dissociate(row)
                    else:
                        s.delete(row)
            s.execute(delete(RouteEntry).where(RouteEntry.next_hop_id == gateway.id))
            drop_tags(s, gateway.account_id, gateway.region_id, "natgateway", gateway.id)
            s.delete(gateway)
            vpc_id = gateway.vpc_id
        self._notify(vpc_id)
