"""VPCs and vSwitches: address plans, statuses (Pending, then Available once the agent has built
them), quotas, and refusal to delete what is still in use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from nubes import errors, ids
from nubes.catalog.model import Catalog
from nubes.clock import Clock
from nubes.domain import cidr, private_ips
from nubes.domain.common import NotifyNetwork, Scope, check_description, check_name, owned
from nubes.domain.regions import require_region, zones_of
from nubes.domain.resource_groups import group_for
from nubes.domain.tags import TagMatch, check_tags, drop_tags, where_tagged, write_tags
from nubes.errors import ApiError
from nubes.store.db import Database
from nubes.store.models import (
    NatGateway,
    NetworkInterface,
    RouteEntry,
    RouteTable,
    SecurityGroup,
    Vpc,
    VSwitch,
)

PENDING = "Pending"
AVAILABLE = "Available"


@dataclass(frozen=True)
class NetworkQuotas:
    vpcs_per_region: int = 10
    vswitches_per_vpc: int = 150
    route_entries_per_table: int = 200
    custom_route_tables_per_vpc: int = 9


class Vpcs:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        catalog: Catalog,
        notify: NotifyNetwork,
        quotas: NetworkQuotas | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._catalog = catalog
        self._notify = notify
        self.quotas = quotas or NetworkQuotas()

    # ---- VPCs ---------------------------------------------------------------------------

    def create_vpc(
        self,
        scope: Scope,
        cidr_block: str | None,
        name: str | None,
        description: str | None,
        resource_group_id: str,
        dry_run: bool = False,
        tags: Sequence[tuple[str, str]] = (),
    ) -> Vpc:
        """A new VPC with its creation tags, in one transaction."""
        require_region(self._catalog, scope.region_id)
        network = cidr.vpc_network(cidr_block)
        name = check_name("VpcName", name)
        description = check_description(description)
        check_tags(tags)
        with self._db.session() as s:
            count = s.scalar(select(func.count(Vpc.id)).where(*_vpc_scope(scope))) or 0
            if count >= self.quotas.vpcs_per_region:
                raise errors.quota_exceeded_vpc(
                    f"You can create at most {self.quotas.vpcs_per_region} VPCs in a region."
                )
            group = group_for(s, scope.account_id, resource_group_id, self._clock)
            if dry_run:
                raise errors.dry_run_operation()
            vpc = Vpc(
                id=ids.new_id("vpc"),
                account_id=scope.account_id,
                region_id=scope.region_id,
                name=name,
                description=description,
                cidr=str(network),
                status=PENDING,
                is_default=False,
                vrouter_id=ids.new_id("vrouter"),
                route_table_id=ids.new_id("route_table"),
                resource_group_id=group,
                created_at=self._clock.now(),
            )
            s.add(vpc)
            write_tags(s, scope, "vpc", vpc.id, tags, created=True)
        self._notify(vpc.id)
        return vpc

    def get_vpc(self, scope: Scope, vpc_id: str, session: Session | None = None) -> Vpc:
        if session is not None:
            return _vpc(session, scope, vpc_id)
        with self._db.session() as s:
            return _vpc(s, scope, vpc_id)

    def region_of(self, account_id: int, vpc_id: str) -> str:
        """The region of the caller's VPC: actions whose RegionId is optional (CreateVSwitch)
        take the region from the VPC they name."""
        with self._db.session() as s:
            return owned(s, Vpc, account_id, vpc_id, "Vpc").region_id

    def vswitch_region_of(self, account_id: int, vswitch_id: str) -> str:
        """The region of the caller's vSwitch, for the vSwitch actions whose RegionId is optional."""
        with self._db.session() as s:
            return owned(s, VSwitch, account_id, vswitch_id, "VSwitch").region_id

    def describe_vpcs(
        self,
        scope: Scope,
        vpc_ids: list[str] | None = None,
        name: str | None = None,
        is_default: bool | None = None,
        resource_group_id: str | None = None,
        tags: Sequence[TagMatch] = (),
        route_table_tags: Sequence[TagMatch] = (),
    ) -> list[Vpc]:
        """The scope's VPCs, filtered; `tags`: the VPC carries them all, `route_table_tags`: its
        route table does."""
        with self._db.session() as s:
            query = select(Vpc).where(*_vpc_scope(scope)).order_by(Vpc.created_at.desc(), Vpc.id)
            if vpc_ids:
                query = query.where(Vpc.id.in_(vpc_ids))
            if name:
                query = query.where(Vpc.name == name)
            if is_default is not None:
                query = query.where(Vpc.is_default == is_default)
            if resource_group_id:
                query = query.where(Vpc.resource_group_id == resource_group_id)
            query = where_tagged(query, scope, "vpc", Vpc.id, tags)
            query = where_tagged(query, scope, "routetable", Vpc.route_table_id, route_table_tags)
            return list(s.scalars(query))

    def vswitch_ids_by_vpc(self, vpc_ids: list[str]) -> dict[str, list[str]]:
        with self._db.session() as s:
            rows = s.execute(
                select(VSwitch.vpc_id, VSwitch.id).where(VSwitch.vpc_id.in_(vpc_ids)).order_by(VSwitch.id)
            )
            result: dict[str, list[str]] = {v: [] for v in vpc_ids}
            for vpc_id, vsw_id in rows:
                result[vpc_id].append(vsw_id)
            return result

    def modify_vpc(self, scope: Scope, vpc_id: str, name: str | None, description: str | None) -> None:
        with self._db.session() as s:
            vpc = _vpc(s, scope, vpc_id)
            if name is not None:
                vpc.name = check_name("VpcName", name)
            if description is not None:
                vpc.description = check_description(description)

    def delete_vpc(self, scope: Scope, vpc_id: str, dry_run: bool = False) -> None:
        with self._db.session() as s:
            vpc = _vpc(s, scope, vpc_id)
            if vpc.status != AVAILABLE:
                raise _incorrect_vpc_status(vpc)
            for model, kind in (
                (NatGateway, "NatGateway"),  # first: its vSwitch and its default route wait for it
                (VSwitch, "VSwitch"),
                (SecurityGroup, "SecurityGroup"),
                (RouteEntry, "RouteEntry"),
                (RouteTable, "RouteTable"),
            ):
                if s.scalar(select(func.count()).select_from(model).where(model.vpc_id == vpc_id)):
                    raise errors.dependency_violation(
                        kind,
                        message=f"The VPC {vpc_id} still has {kind} resources; delete them first.",
                    )
            if dry_run:
                raise errors.dry_run_operation()
            drop_tags(s, vpc.account_id, vpc.region_id, "vpc", vpc.id)
            drop_tags(s, vpc.account_id, vpc.region_id, "routetable", vpc.route_table_id)
            s.delete(vpc)
        self._notify(vpc_id)

    # ---- vSwitches ------------------------------------------------------------------------

    def create_vswitch(
        self,
        scope: Scope,
        vpc_id: str,
        zone_id: str,
        cidr_block: str,
        name: str | None,
        description: str | None,
        tags: Sequence[tuple[str, str]] = (),
    ) -> VSwitch:
        """A new vSwitch with its creation tags, in one transaction."""
        region = require_region(self._catalog, scope.region_id)
        zones_of(region, zone_id)
        name = check_name("VSwitchName", name)
        description = check_description(description)
        check_tags(tags)
        with self._db.session() as s:
            vpc = _vpc(s, scope, vpc_id)
            if vpc.status != AVAILABLE:
                raise _incorrect_vpc_status(vpc)
            siblings = list(s.scalars(select(VSwitch.cidr).where(VSwitch.vpc_id == vpc_id)))
            if len(siblings) >= self.quotas.vswitches_per_vpc:
                raise errors.quota_exceeded_vswitch(
                    f"A VPC can have at most {self.quotas.vswitches_per_vpc} vSwitches."
                )
            network = cidr.vswitch_network(
                cidr_block, IPv4Network(vpc.cidr), [IPv4Network(c) for c in siblings]
            )
            vswitch = VSwitch(
                id=ids.new_id("vswitch"),
                vpc_id=vpc_id,
                account_id=scope.account_id,
                region_id=scope.region_id,
                zone_id=zone_id,
                name=name,
                description=description,
                cidr=str(network),
                status=PENDING,
                created_at=self._clock.now(),
            )
            s.add(vswitch)
            write_tags(s, scope, "vswitch", vswitch.id, tags, created=True)
        self._notify(vpc_id)
        return vswitch

    def get_vswitch(self, scope: Scope, vswitch_id: str, session: Session | None = None) -> VSwitch:
        if session is not None:
            return _vswitch(session, scope, vswitch_id)
        with self._db.session() as s:
            return _vswitch(s, scope, vswitch_id)

    def describe_vswitches(
        self,
        scope: Scope,
        vpc_id: str | None = None,
        vswitch_ids: list[str] | None = None,
        zone_id: str | None = None,
        name: str | None = None,
        tags: Sequence[TagMatch] = (),
    ) -> list[tuple[VSwitch, int]]:
        """vSwitches (carrying every one of `tags`) with the number of private addresses in use in each."""
        with self._db.session() as s:
            used = private_ips.used_count()
            query = (
                select(VSwitch, used)
                .where(VSwitch.account_id == scope.account_id, VSwitch.region_id == scope.region_id)
                .order_by(VSwitch.created_at.desc(), VSwitch.id)
            )
            if vpc_id:
                query = query.where(VSwitch.vpc_id == vpc_id)
            if vswitch_ids:
                query = query.where(VSwitch.id.in_(vswitch_ids))
            if zone_id:
                query = query.where(VSwitch.zone_id == zone_id)
            if name:
                query = query.where(VSwitch.name == name)
            query = where_tagged(query, scope, "vswitch", VSwitch.id, tags)
            return [(v, int(n or 0)) for v, n in s.execute(query)]

    def modify_vswitch(
        self, scope: Scope, vswitch_id: str, name: str | None, description: str | None
    ) -> None:
        with self._db.session() as s:
            vswitch = _vswitch(s, scope, vswitch_id)
            if name is not None:
                vswitch.name = check_name("VSwitchName", name)
            if description is not None:
                vswitch.description = check_description(description)

    def delete_vswitch(self, scope: Scope, vswitch_id: str, dry_run: bool = False) -> None:
        with self._db.session() as s:
            vswitch = _vswitch(s, scope, vswitch_id)
            if vswitch.status != AVAILABLE:
                raise errors.incorrect_vswitch_status(
                    f"The vSwitch {vswitch_id} is {vswitch.status}; wait until it is Available."
                )
            gateways = s.scalar(select(func.count(NatGateway.id)).where(NatGateway.vswitch_id == vswitch_id))
            if gateways:
                raise errors.dependency_violation(
                    "NatGateway",
                    message=f"The vSwitch {vswitch_id} still has {gateways} NAT gateways; delete them first.",
                )
            in_use = s.scalar(
                select(func.count(NetworkInterface.id)).where(NetworkInterface.vswitch_id == vswitch_id)
            )
            if in_use:
                raise errors.dependency_violation(
                    "NetworkInterface",
                    message=f"The vSwitch {vswitch_id} still has {in_use} network interfaces or instances; delete them first.",
                )
            if dry_run:
                raise errors.dry_run_operation()
            vpc_id = vswitch.vpc_id
            drop_tags(s, vswitch.account_id, vswitch.region_id, "vswitch", vswitch.id)
            s.delete(vswitch)
        self._notify(vpc_id)

    # ---- agent --------------------------------------------------------------------------

    def mark_available(self, vpc_ids: list[str]) -> None:
        """The agent has built these VPCs and all their vSwitches on the host."""
        if not vpc_ids:
            return
        with self._db.session() as s:
            for vpc in s.scalars(select(Vpc).where(Vpc.id.in_(vpc_ids), Vpc.status == PENDING)):
                vpc.status = AVAILABLE
            for vswitch in s.scalars(
                select(VSwitch).where(VSwitch.vpc_id.in_(vpc_ids), VSwitch.status == PENDING)
            ):
                vswitch.status = AVAILABLE


def _vpc_scope(scope: Scope) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return (Vpc.account_id == scope.account_id, Vpc.region_id == scope.region_id)


def _vpc(s: Session, scope: Scope, vpc_id: str) -> Vpc:
    return owned(s, Vpc, scope, vpc_id, "Vpc")


def _vswitch(s: Session, scope: Scope, vswitch_id: str) -> VSwitch:
    return owned(s, VSwitch, scope, vswitch_id, "VSwitch")


def _incorrect_vpc_status(vpc: Vpc) -> ApiError:
    return errors.incorrect_vpc_status(f"The VPC {vpc.id} is {vpc.status}; wait until it is Available.")
