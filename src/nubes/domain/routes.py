"""Route tables of VPCs: one system table per VPC (vRouter), system entries derived from the
vSwitches, custom entries whose next hop is a network interface (or an instance's) or a NAT
gateway of the VPC."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Network

from sqlalchemy import CompoundSelect, Select, func, select
from sqlalchemy.orm import Session

from nubes import errors, ids
from nubes.clock import Clock
from nubes.domain.common import NotifyNetwork, Scope, check_description, check_name
from nubes.domain.route_tables import find_table, table_not_found
from nubes.domain.vpcs import AVAILABLE, NetworkQuotas
from nubes.errors import ApiError
from nubes.store.db import Database
from nubes.store.models import NatGateway, NetworkInterface, RouteEntry, RouteTable, Vpc, VSwitch

CLOUD_SERVICES_CIDR = "100.64.0.0/10"
NAT_GATEWAY = "NatGateway"
NEXT_HOP_TYPES = ("Instance", "NetworkInterface", NAT_GATEWAY)
DEFAULT_ROUTE = "0.0.0.0/0"


@dataclass(frozen=True)
class RouteView:
    route_table_id: str
    route_entry_id: str
    destination: str
    next_hop_type: str
    next_hop_id: str
    entry_type: str  # System | Custom
    status: str
    name: str
    description: str


def custom_entry(
    now: datetime,
    route_table_id: str,
    vpc: Vpc,
    destination: str,
    next_hop: tuple[str, str],
    name: str = "",
    description: str = "",
) -> RouteEntry:
    """A new custom entry of a table of the VPC; `next_hop`: its type and ID."""
    return RouteEntry(
        id=ids.new_id("route_entry"),
        route_table_id=route_table_id,
        vpc_id=vpc.id,
        account_id=vpc.account_id,
        destination_cidr=destination,
        next_hop_type=next_hop[0],
        next_hop_id=next_hop[1],
        name=name,
        description=description,
        status="Available",
        created_at=now,
    )


class Routes:
    def __init__(self, db: Database, clock: Clock, notify: NotifyNetwork, quotas: NetworkQuotas) -> None:
        self._db = db
        self._clock = clock
        self._notify = notify
        self._quotas = quotas

    def table_vpc(self, s: Session, scope: Scope, route_table_id: str) -> Vpc:
        """The VPC of the caller's route table (its system table or a custom one)."""
        return find_table(s, scope, route_table_id)[0]

    def table_region(self, account_id: int, route_table_id: str) -> str:
        """The region of the caller's route table, for the route actions whose RegionId is optional."""
        query = select(Vpc.region_id).where(
            Vpc.route_table_id == route_table_id, Vpc.account_id == account_id
        )
        custom = select(RouteTable.region_id).where(
            RouteTable.id == route_table_id, RouteTable.account_id == account_id
        )
        return self._region(query.union(custom), lambda: table_not_found(route_table_id))

    def entry_region(self, account_id: int, route_entry_id: str) -> str:
        """The region of the caller's custom route entry (DeleteRouteEntry without RegionId)."""
        query = (
            select(Vpc.region_id)
            .join(RouteEntry, RouteEntry.vpc_id == Vpc.id)
            .where(RouteEntry.id == route_entry_id, RouteEntry.account_id == account_id)
        )
        return self._region(query, errors.invalid_route_entry_not_found)

    def _region(self, query: Select[str] | CompoundSelect[str], not_found: Callable[[], ApiError]) -> str:
        with self._db.session() as s:
            region = s.scalar(query)
        if region is None:
            raise not_found()
        return region

    def entries(self, scope: Scope, route_table_id: str) -> list[RouteView]:
        with self._db.session() as s:
            vpc = self.table_vpc(s, scope, route_table_id)
            views = [
                RouteView(route_table_id, "", v.cidr, "local", "", "System", "Available", "", "")
                for v in s.scalars(select(VSwitch).where(VSwitch.vpc_id == vpc.id).order_by(VSwitch.cidr))
            ]
            views.append(
                RouteView(
                    route_table_id, "", CLOUD_SERVICES_CIDR, "service", "", "System", "Available", "", ""
                )
            )
            for e in s.scalars(
                select(RouteEntry)
                .where(RouteEntry.route_table_id == route_table_id)
                .order_by(RouteEntry.created_at)
            ):
                views.append(
                    RouteView(
                        route_table_id,
                        e.id,
                        e.destination_cidr,
                        e.next_hop_type,
                        e.next_hop_id,
                        "Custom",
                        e.status,
                        e.name,
                        e.description,
                    )
                )
            return views

    def create(
        self,
        scope: Scope,
        route_table_id: str,
        destination: str,
        next_hop_type: str,
        next_hop_id: str | None,
        name: str | None,
        description: str | None,
        dry_run: bool = False,
    ) -> str:
        if not next_hop_id:  # optional in ECS for the next hop types nubes has none of (NextHopList)
            raise errors.missing_parameter(
                "NextHopId", message="Give NextHopId: the instance or network interface the route leads to."
            )
        name = check_name("RouteEntryName", name)
        description = check_description(description)
        try:
            network = IPv4Network(destination, strict=True)
        except ValueError:
            raise errors.invalid_destination_cidr_block_malformed(
                f"{destination!r} is not an IPv4 CIDR block."
            ) from None
        if next_hop_type not in NEXT_HOP_TYPES:
            raise errors.invalid_next_hop_type_not_supported(
                f"NextHopType {next_hop_type!r} is not supported here; use {' or '.join(NEXT_HOP_TYPES)}."
            )
        with self._db.session() as s:
            vpc = self.table_vpc(s, scope, route_table_id)
            if vpc.status != AVAILABLE:
                raise errors.incorrect_vpc_status(
                    f"The VPC {vpc.id} is {vpc.status}; wait until it is Available."
                )
            system = {IPv4Network(c) for c in s.scalars(select(VSwitch.cidr).where(VSwitch.vpc_id == vpc.id))}
            if network.subnet_of(IPv4Network(CLOUD_SERVICES_CIDR)) or network in system:
                raise errors.invalid_destination_cidr_block_conflict(
                    f"{network} is a system route's destination (a vSwitch CIDR block, or inside "
                    f"{CLOUD_SERVICES_CIDR}).",
                )
            existing = list(s.scalars(select(RouteEntry).where(RouteEntry.route_table_id == route_table_id)))
            if any(e.destination_cidr == str(network) for e in existing):
                raise errors.invalid_cidr_block_duplicate(
                    f"The route table already has an entry for {network}."
                )
            if len(existing) >= self._quotas.route_entries_per_table:
                raise errors.quota_exceeded_route_entry()
            self._check_next_hop(s, scope, vpc, next_hop_type, next_hop_id)
            if dry_run:
                raise errors.dry_run_operation()
            entry = custom_entry(
                self._clock.now(),
                route_table_id,
                vpc,
                str(network),
                (next_hop_type, next_hop_id),
                name,
                description,
            )
            s.add(entry)
            vpc_id = vpc.id
        self._notify(vpc_id)
        return entry.id

    @staticmethod
    def _check_next_hop(s: Session, scope: Scope, vpc: Vpc, next_hop_type: str, next_hop_id: str) -> None:
        if next_hop_type == NAT_GATEWAY:
            gateway = s.get(NatGateway, next_hop_id)
            if gateway is None or gateway.account_id != scope.account_id or gateway.vpc_id != vpc.id:
                raise errors.invalid_next_hop_id_not_found(
                    f"The next hop {next_hop_id!r} is not a NAT gateway of the VPC {vpc.id}."
                )
            return
        column = NetworkInterface.id if next_hop_type == "NetworkInterface" else NetworkInterface.instance_id
        eni = s.scalar(
            select(NetworkInterface).where(
                column == next_hop_id, NetworkInterface.account_id == scope.account_id
            )
        )
        if eni is None or eni.vpc_id != vpc.id:
            raise errors.invalid_next_hop_id_not_found(
                f"The next hop {next_hop_id!r} does not exist in the VPC {vpc.id}."
            )

    @staticmethod
    def _entry(
        s: Session,
        scope: Scope,
        route_entry_id: str | None,
        route_table_id: str | None,
        destination: str | None,
        next_hop_id: str | None = None,
    ) -> RouteEntry:
        """The caller's custom entry, by its ID or by table and destination; what else is given
        must fit the entry: no parameter is taken on trust or ignored."""
        query = select(RouteEntry).where(RouteEntry.account_id == scope.account_id)
        if route_entry_id:
            query = query.where(RouteEntry.id == route_entry_id)
            if route_table_id:
                query = query.where(RouteEntry.route_table_id == route_table_id)
            if destination:
                query = query.where(RouteEntry.destination_cidr == destination)
        elif route_table_id and destination:
            query = query.where(
                RouteEntry.route_table_id == route_table_id, RouteEntry.destination_cidr == destination
            )
        else:
            raise errors.missing_parameter(
                message="Give RouteEntryId, or RouteTableId with DestinationCidrBlock."
            )
        if next_hop_id:
            query = query.where(RouteEntry.next_hop_id == next_hop_id)
        entry = s.scalar(query)
        vpc = s.get(Vpc, entry.vpc_id) if entry is not None else None
        if entry is None or vpc is None or vpc.region_id != scope.region_id:
            raise errors.invalid_route_entry_not_found()
        return entry

    def delete(
        self,
        scope: Scope,
        route_entry_id: str | None,
        route_table_id: str | None,
        destination: str | None,
        next_hop_id: str | None,
        dry_run: bool = False,
    ) -> None:
        with self._db.session() as s:
            if route_entry_id:
                destination = None  # DeleteRouteEntry by ID: the destination is not a filter
            entry = self._entry(s, scope, route_entry_id, route_table_id, destination, next_hop_id)
            if dry_run:
                raise errors.dry_run_operation()
            vpc_id = entry.vpc_id
            s.delete(entry)
        self._notify(vpc_id)

    def modify(
        self,
        scope: Scope,
        route_entry_id: str | None,
        route_table_id: str | None,
        destination: str | None,
        name: str | None,
        description: str | None,
        new_next_hop_type: str | None,
        new_next_hop_id: str | None,
    ) -> None:
        """Rename or describe a custom entry, or move it to another next hop of its VPC (DryRun:
        the unit of work of the action rolls back)."""
        if bool(new_next_hop_type) != bool(new_next_hop_id):
            raise errors.missing_parameter(
                "NewNextHopId" if new_next_hop_type else "NewNextHopType",
                message="Give NewNextHopType and NewNextHopId together.",
            )
        if new_next_hop_type and new_next_hop_type not in NEXT_HOP_TYPES:
            raise errors.invalid_next_hop_type_not_supported(
                f"NextHopType {new_next_hop_type!r} is not supported here; use {' or '.join(NEXT_HOP_TYPES)}."
            )
        name = check_name("RouteEntryName", name) if name is not None else None
        description = check_description(description) if description is not None else None
        with self._db.session() as s:
            entry = self._entry(s, scope, route_entry_id, route_table_id, destination)
            vpc = s.get_one(Vpc, entry.vpc_id)
            if new_next_hop_type and new_next_hop_id:
                self._check_next_hop(s, scope, vpc, new_next_hop_type, new_next_hop_id)
            if name is not None:
                entry.name = name
            if description is not None:
                entry.description = description
            if new_next_hop_type and new_next_hop_id:
                entry.next_hop_type, entry.next_hop_id = new_next_hop_type, new_next_hop_id
            vpc_id = vpc.id
        self._notify(vpc_id)

    def count_custom(self, vpc_id: str) -> int:
        with self._db.session() as s:
            return int(s.scalar(select(func.count(RouteEntry.id)).where(RouteEntry.vpc_id == vpc_id)) or 0)
