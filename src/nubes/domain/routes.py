"""Route tables of VPCs: one system table per VPC (vRouter), system entries derived from the
vSwitches, custom entries whose next hop is a network interface (or an instance's)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Network

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from nubes import errors, ids
from nubes.clock import Clock
from nubes.domain.common import NotifyNetwork, Scope, check_description, check_name
from nubes.domain.vpcs import AVAILABLE, NetworkQuotas
from nubes.errors import ApiError
from nubes.store.db import Database
from nubes.store.models import NetworkInterface, RouteEntry, Vpc, VSwitch

CLOUD_SERVICES_CIDR = "100.64.0.0/10"
NEXT_HOP_TYPES = ("Instance", "NetworkInterface")


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


class Routes:
    def __init__(self, db: Database, clock: Clock, notify: NotifyNetwork, quotas: NetworkQuotas) -> None:
        self._db = db
        self._clock = clock
        self._notify = notify
        self._quotas = quotas

    def table_vpc(self, s: Session, scope: Scope, route_table_id: str) -> Vpc:
        vpc = s.scalar(
            select(Vpc).where(
                Vpc.route_table_id == route_table_id,
                Vpc.account_id == scope.account_id,
                Vpc.region_id == scope.region_id,
            )
        )
        if vpc is None:
            raise errors.invalid_route_table_id_not_found(
                f"The specified RouteTableId {route_table_id!r} does not exist."
            )
        return vpc

    def table_region(self, account_id: int, route_table_id: str) -> str:
        """The region of the caller's route table, for the route actions whose RegionId is optional."""
        query = select(Vpc.region_id).where(
            Vpc.route_table_id == route_table_id, Vpc.account_id == account_id
        )
        return self._region(
            query,
            lambda: errors.invalid_route_table_id_not_found(
                f"The specified RouteTableId {route_table_id!r} does not exist."
            ),
        )

    def entry_region(self, account_id: int, route_entry_id: str) -> str:
        """The region of the caller's custom route entry (DeleteRouteEntry without RegionId)."""
        query = (
            select(Vpc.region_id)
            .join(RouteEntry, RouteEntry.vpc_id == Vpc.id)
            .where(RouteEntry.id == route_entry_id, RouteEntry.account_id == account_id)
        )
        return self._region(query, errors.invalid_route_entry_not_found)

    def _region(self, query: Select[str], not_found: Callable[[], ApiError]) -> str:
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
            entry = RouteEntry(
                id=ids.new_id("route_entry"),
                route_table_id=route_table_id,
                vpc_id=vpc.id,
                account_id=scope.account_id,
                destination_cidr=str(network),
                next_hop_type=next_hop_type,
                next_hop_id=next_hop_id,
                name=name,
                description=description,
                status="Available",
                created_at=self._clock.now(),
            )
            s.add(entry)
            vpc_id = vpc.id
        self._notify(vpc_id)
        return entry.id

    @staticmethod
    def _check_next_hop(s: Session, scope: Scope, vpc: Vpc, next_hop_type: str, next_hop_id: str) -> None:
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
            query = select(RouteEntry).where(RouteEntry.account_id == scope.account_id)
            if route_entry_id:
                query = query.where(RouteEntry.id == route_entry_id)
                # What else is given must fit the entry: no parameter is taken on trust or ignored.
                if route_table_id:
                    query = query.where(RouteEntry.route_table_id == route_table_id)
                if next_hop_id:
                    query = query.where(RouteEntry.next_hop_id == next_hop_id)
            elif route_table_id and destination:
                query = query.where(
                    RouteEntry.route_table_id == route_table_id, RouteEntry.destination_cidr == destination
                )
                if next_hop_id:
                    query = query.where(RouteEntry.next_hop_id == next_hop_id)
            else:
                raise errors.missing_parameter(
                    message="Give RouteEntryId, or RouteTableId with DestinationCidrBlock."
                )
            entry = s.scalar(query)
            vpc = s.get(Vpc, entry.vpc_id) if entry is not None else None
            if entry is None or vpc is None or vpc.region_id != scope.region_id:
                raise errors.invalid_route_entry_not_found()
            if dry_run:
                raise errors.dry_run_operation()
            vpc_id = entry.vpc_id
            s.delete(entry)
        self._notify(vpc_id)

    def count_custom(self, vpc_id: str) -> int:
        with self._db.session() as s:
            return int(s.scalar(select(func.count(RouteEntry.id)).where(RouteEntry.vpc_id == vpc_id)) or 0)
