"""Route tables of VPCs: each VPC has its system table (the vRouter's, its `route_table_id`) and
may have custom tables. A vSwitch uses exactly one table: its custom table when associated with
one, else its VPC's system table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nubes import errors, ids
from nubes.clock import Clock
from nubes.domain.common import NotifyNetwork, Scope, check_description, check_name, owned
from nubes.domain.tags import TagMatch, check_tags, drop_tags, where_tagged, write_tags
from nubes.domain.vpcs import AVAILABLE, NetworkQuotas
from nubes.errors import ApiError
from nubes.store.db import Database
from nubes.store.models import RouteEntry, RouteTable, Vpc, VSwitch

SYSTEM = "System"
CUSTOM = "Custom"


@dataclass(frozen=True)
class TableView:
    """One route table as the Describe actions answer it."""

    route_table_id: str
    table_type: str  # System | Custom
    vpc_id: str
    vrouter_id: str
    name: str
    description: str
    status: str
    resource_group_id: str
    created_at: datetime
    vswitch_ids: tuple[str, ...]


def table_not_found(route_table_id: str) -> ApiError:
    return errors.invalid_route_table_id_not_found(
        f"The specified RouteTableId {route_table_id!r} does not exist."
    )


def find_table(s: Session, scope: Scope, route_table_id: str) -> tuple[Vpc, RouteTable | None]:
    """The VPC of the caller's route table in the scope, and the custom table (None: the system
    table). Another account's table is answered exactly as an ID that names nothing."""
    if route_table_id and s.get(RouteTable, route_table_id) is not None:
        table = owned(s, RouteTable, scope, route_table_id, table_not_found)
        return s.get_one(Vpc, table.vpc_id), table
    vpc = s.scalar(
        select(Vpc).where(
            Vpc.route_table_id == route_table_id,
            Vpc.account_id == scope.account_id,
            Vpc.region_id == scope.region_id,
        )
    )
    if vpc is None:
        raise table_not_found(route_table_id)
    return vpc, None


def _custom_table(s: Session, scope: Scope, route_table_id: str) -> tuple[Vpc, RouteTable]:
    """The caller's custom table; the system table of a VPC is IncorrectRouteTableType."""
    vpc, table = find_table(s, scope, route_table_id)
    if table is None:
        raise errors.incorrect_route_table_type()
    return vpc, table


def _association(
    s: Session, scope: Scope, route_table_id: str, vswitch_id: str
) -> tuple[Vpc, RouteTable, VSwitch]:
    """The caller's custom table and a vSwitch of its VPC, to associate or unassociate."""
    vpc, table = _custom_table(s, scope, route_table_id)
    vswitch = owned(s, VSwitch, scope, vswitch_id, "VSwitch")
    if vswitch.vpc_id != vpc.id:
        raise errors.invalid_parameter(
            "VSwitchId", f"The vSwitch {vswitch.id} is not in the VPC {vpc.id} of the route table {table.id}."
        )
    return vpc, table, vswitch


def _available(vpc: Vpc) -> None:
    if vpc.status != AVAILABLE:
        raise errors.incorrect_vpc_status(f"The VPC {vpc.id} is {vpc.status}; wait until it is Available.")


class RouteTables:
    def __init__(self, db: Database, clock: Clock, notify: NotifyNetwork, quotas: NetworkQuotas) -> None:
        self._db = db
        self._clock = clock
        self._notify = notify
        self._quotas = quotas

    def create(
        self,
        scope: Scope,
        vpc_id: str,
        name: str | None,
        description: str | None,
        tags: Sequence[tuple[str, str]] = (),
    ) -> str:
        """A new custom table of the VPC, associated with nothing, with its creation tags."""
        name = check_name("RouteTableName", name)
        description = check_description(description)
        check_tags(tags)
        with self._db.session() as s:
            vpc = owned(s, Vpc, scope, vpc_id, "Vpc")
            _available(vpc)
            count = s.scalar(select(func.count(RouteTable.id)).where(RouteTable.vpc_id == vpc.id)) or 0
            if count >= self._quotas.custom_route_tables_per_vpc:
                raise errors.quota_exceeded_route_table(
                    f"A VPC has at most {self._quotas.custom_route_tables_per_vpc} custom route tables."
                )
            table = RouteTable(
                id=ids.new_id("route_table"),
                vpc_id=vpc.id,
                account_id=scope.account_id,
                region_id=scope.region_id,
                name=name,
                description=description,
                status="Available",
                resource_group_id=vpc.resource_group_id,
                created_at=self._clock.now(),
            )
            s.add(table)
            write_tags(s, scope, "routetable", table.id, tags, created=True)
            return table.id

    def modify(self, scope: Scope, route_table_id: str, name: str | None, description: str | None) -> None:
        """Rename or describe a custom table (the system table has neither)."""
        with self._db.session() as s:
            _, table = _custom_table(s, scope, route_table_id)
            if name is not None:
                table.name = check_name("RouteTableName", name)
            if description is not None:
                table.description = check_description(description)

    def delete(self, scope: Scope, route_table_id: str) -> None:
        """Delete a custom table no vSwitch uses and with no custom entries left."""
        with self._db.session() as s:
            _, table = _custom_table(s, scope, route_table_id)
            if s.scalar(select(func.count(VSwitch.id)).where(VSwitch.route_table_id == table.id)):
                raise errors.dependency_violation(
                    "VSwitch",
                    message=f"The route table {table.id} is still associated with vSwitches; "
                    "unassociate them first.",
                )
            if s.scalar(select(func.count(RouteEntry.id)).where(RouteEntry.route_table_id == table.id)):
                raise errors.incorrect_route_table_status_route_entry_exist()
            drop_tags(s, table.account_id, table.region_id, "routetable", table.id)
            s.delete(table)

    def associate(self, scope: Scope, route_table_id: str, vswitch_id: str) -> None:
        """Make the custom table the vSwitch's (moving it off its VPC's system table)."""
        with self._db.session() as s:
            vpc, table, vswitch = _association(s, scope, route_table_id, vswitch_id)
            if vswitch.route_table_id == table.id:
                return  # already so: associating again changes nothing
            if vswitch.route_table_id is not None:
                raise errors.resource_already_associated_route_table(
                    f"The vSwitch {vswitch.id} is associated with the route table "
                    f"{vswitch.route_table_id}; unassociate it first."
                )
            vswitch.route_table_id = table.id
            vpc_id = vpc.id
        self._notify(vpc_id)

    def unassociate(self, scope: Scope, route_table_id: str, vswitch_id: str) -> None:
        """Give the vSwitch back to its VPC's system table."""
        with self._db.session() as s:
            vpc, table, vswitch = _association(s, scope, route_table_id, vswitch_id)
            if vswitch.route_table_id != table.id:
                raise errors.resource_not_associated_route_table(
                    f"The vSwitch {vswitch.id} is not associated with the route table {table.id}."
                )
            vswitch.route_table_id = None
            vpc_id = vpc.id
        self._notify(vpc_id)

    def tables(
        self,
        scope: Scope,
        vpc_id: str | None = None,
        resource_group_id: str | None = None,
        tags: Sequence[TagMatch] = (),
    ) -> list[TableView]:
        """The scope's route tables, each VPC's system table then its custom ones, with the
        vSwitches that use each; Tag.N: the tables carrying every tag."""
        with self._db.session() as s:
            vpcs = select(Vpc).where(Vpc.account_id == scope.account_id, Vpc.region_id == scope.region_id)
            customs = select(RouteTable).where(
                RouteTable.account_id == scope.account_id, RouteTable.region_id == scope.region_id
            )
            if vpc_id:
                vpcs = vpcs.where(Vpc.id == vpc_id)
                customs = customs.where(RouteTable.vpc_id == vpc_id)
            if resource_group_id:
                vpcs = vpcs.where(Vpc.resource_group_id == resource_group_id)
                customs = customs.where(RouteTable.resource_group_id == resource_group_id)
            vpcs = where_tagged(vpcs, scope, "routetable", Vpc.route_table_id, tags)
            customs = where_tagged(customs, scope, "routetable", RouteTable.id, tags)
            all_vpcs = {
                v.id: v
                for v in s.scalars(
                    select(Vpc).where(Vpc.account_id == scope.account_id, Vpc.region_id == scope.region_id)
                )
            }
            users: dict[str, list[str]] = {}
            for vswitch in s.scalars(
                select(VSwitch).where(VSwitch.vpc_id.in_(list(all_vpcs))).order_by(VSwitch.id)
            ):
                table_id = vswitch.route_table_id or all_vpcs[vswitch.vpc_id].route_table_id
                users.setdefault(table_id, []).append(vswitch.id)
            views = [
                TableView(
                    v.route_table_id,
                    SYSTEM,
                    v.id,
                    v.vrouter_id,
                    "",
                    "",
                    "Available",
                    v.resource_group_id,
                    v.created_at,
                    tuple(users.get(v.route_table_id, ())),
                )
                for v in s.scalars(vpcs.order_by(Vpc.created_at.desc(), Vpc.id))
            ]
            views += [
                TableView(
                    t.id,
                    CUSTOM,
                    t.vpc_id,
                    all_vpcs[t.vpc_id].vrouter_id,
                    t.name,
                    t.description,
                    t.status,
                    t.resource_group_id,
                    t.created_at,
                    tuple(users.get(t.id, ())),
                )
                for t in s.scalars(customs.order_by(RouteTable.created_at, RouteTable.id))
            ]
            return views

    def of_vswitches(self, vswitch_ids: list[str]) -> dict[str, tuple[str, str]]:
        """The route table each vSwitch uses: (its ID, System or Custom)."""
        with self._db.session() as s:
            rows = s.execute(
                select(VSwitch.id, VSwitch.route_table_id, Vpc.route_table_id)
                .join(Vpc, Vpc.id == VSwitch.vpc_id)
                .where(VSwitch.id.in_(vswitch_ids))
            )
            return {vsw: (custom, CUSTOM) if custom else (system, SYSTEM) for vsw, custom, system in rows}
