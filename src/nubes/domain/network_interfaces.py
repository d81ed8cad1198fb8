"""Elastic network interfaces: an address on a vSwitch, a MAC, and up to five security groups.

An interface is plugged into the host when something uses it: an instance, or (for tests
and operators) a test host, a network namespace the agent creates behind the port."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from nubes import errors, ids
from nubes.clock import Clock
from nubes.domain import cidr
from nubes.domain.common import NotifyNetwork, Scope, check_description, check_name, owned
from nubes.domain.resource_groups import group_for
from nubes.domain.security_groups import SecurityQuotas
from nubes.domain.tags import TagMatch, check_tags, drop_tags, where_tagged, write_tags
from nubes.domain.vpcs import AVAILABLE
from nubes.store.db import Database
from nubes.store.models import NetworkInterface, NetworkInterfaceGroup, PublicAddress, SecurityGroup, VSwitch

ENI_AVAILABLE = "Available"
ENI_IN_USE = "InUse"
TEST_HOST = "testhost"


def new_mac(s: Session, taken: set[str] | None = None) -> str:
    """Alibaba Cloud's OUI 00:16:3e, then three random octets, unused so far: 16.7 million
    addresses make collisions likely from a few thousand interfaces on (the birthday bound)."""
    while True:
        mac = "00:16:3e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))
        if (taken is None or mac not in taken) and s.scalar(
            select(NetworkInterface.id).where(NetworkInterface.mac == mac)
        ) is None:
            if taken is not None:
                taken.add(mac)
            return mac


class NetworkInterfaces:
    def __init__(self, db: Database, clock: Clock, notify: NotifyNetwork, quotas: SecurityQuotas) -> None:
        self._db = db
        self._clock = clock
        self._notify = notify
        self._quotas = quotas

    def create(
        self,
        scope: Scope,
        vswitch_id: str,
        group_ids: list[str],
        primary_ip: str | None,
        name: str | None,
        description: str | None,
        resource_group_id: str = "",
        eni_type: str = "Secondary",
        tags: Sequence[tuple[str, str]] = (),
    ) -> NetworkInterface:
        """A new interface with its creation tags, in one transaction."""
        name = check_name("NetworkInterfaceName", name)
        description = check_description(description)
        check_tags(tags)
        with self._db.session() as s:
            vswitch = owned(s, VSwitch, scope, vswitch_id, "VSwitch")
            if vswitch.status != AVAILABLE:
                raise errors.incorrect_vswitch_status(f"The vSwitch {vswitch_id} is {vswitch.status}.")
            groups = self._groups(s, scope, vswitch.vpc_id, group_ids)
            address = cidr.allocate(IPv4Network(vswitch.cidr), used_ips(s, vswitch_id), primary_ip)
            eni = NetworkInterface(
                id=ids.new_id("network_interface"),
                account_id=scope.account_id,
                region_id=scope.region_id,
                zone_id=vswitch.zone_id,
                vpc_id=vswitch.vpc_id,
                vswitch_id=vswitch_id,
                name=name,
                description=description,
                mac=new_mac(s),
                primary_ip=str(address),
                status=ENI_AVAILABLE,
                eni_type=eni_type,
                instance_id="",
                attachment="",
                resource_group_id=group_for(s, scope.account_id, resource_group_id, self._clock),
                created_at=self._clock.now(),
            )
            eni.memberships = [NetworkInterfaceGroup(group_id=g.id, position=i) for i, g in enumerate(groups)]
            s.add(eni)
            write_tags(s, scope, "eni", eni.id, tags, created=True)
            s.flush()
            return _loaded(s, eni.id)

    def _groups(
        self, s: Session, scope: Scope | int, vpc_id: str, group_ids: list[str]
    ) -> list[SecurityGroup]:
        if not group_ids:
            raise errors.missing_parameter(
                "SecurityGroupId",
                message="A network interface needs at least one security group.",
            )
        unique = list(dict.fromkeys(group_ids))
        if len(unique) > self._quotas.groups_per_interface:
            raise errors.invalid_security_group_ids_limit_exceeded(
                f"A network interface can be in at most {self._quotas.groups_per_interface} security groups."
            )
        groups = []
        for group_id in unique:
            group = owned(s, SecurityGroup, scope, group_id, "SecurityGroup")
            if group.vpc_id != vpc_id:
                raise errors.invalid_security_group_id_vpc_mismatch(
                    f"The security group {group_id} belongs to another VPC than the vSwitch."
                )
            groups.append(group)
        if len({g.group_type for g in groups}) > 1:
            raise errors.invalid_security_group_type_mixed(
                "A network interface cannot be in normal and enterprise security groups at once."
            )
        return groups

    def get(self, scope: Scope, eni_id: str) -> NetworkInterface:
        with self._db.session() as s:
            _eni(s, scope, eni_id)
            return _loaded(s, eni_id)

    def describe(
        self,
        scope: Scope,
        eni_ids: list[str] | None = None,
        vpc_id: str | None = None,
        vswitch_id: str | None = None,
        group_id: str | None = None,
        instance_id: str | None = None,
        status: str | None = None,
        name: str | None = None,
        primary_ip: str | None = None,
        eni_type: str | None = None,
        tags: Sequence[TagMatch] = (),
        private_ips: Sequence[str] | None = None,
        resource_group_id: str | None = None,
    ) -> list[NetworkInterface]:
        with self._db.session() as s:
            query = (
                select(NetworkInterface)
                .where(
                    NetworkInterface.account_id == scope.account_id,
                    NetworkInterface.region_id == scope.region_id,
                )
                .options(selectinload(NetworkInterface.memberships))
                .order_by(NetworkInterface.created_at.desc(), NetworkInterface.id)
            )
            filters = [
                (eni_ids, NetworkInterface.id.in_(eni_ids or [])),
                (vpc_id, NetworkInterface.vpc_id == vpc_id),
                (vswitch_id, NetworkInterface.vswitch_id == vswitch_id),
                (instance_id, NetworkInterface.instance_id == instance_id),
                (status, NetworkInterface.status == status),
                (name, NetworkInterface.name == name),
                (primary_ip, NetworkInterface.primary_ip == primary_ip),
                (eni_type, NetworkInterface.eni_type == eni_type),
                (private_ips, NetworkInterface.primary_ip.in_(private_ips or [])),
                (resource_group_id, NetworkInterface.resource_group_id == resource_group_id),
            ]
            for wanted, clause in filters:
                if wanted:
                    query = query.where(clause)
            if group_id:
                query = query.where(
                    NetworkInterface.id.in_(
                        select(NetworkInterfaceGroup.interface_id).where(
                            NetworkInterfaceGroup.group_id == group_id
                        )
                    )
                )
            query = where_tagged(query, scope, "eni", NetworkInterface.id, tags)
            return list(s.scalars(query))

    def modify(
        self,
        scope: Scope,
        eni_id: str,
        name: str | None,
        description: str | None,
        group_ids: list[str] | None,
    ) -> None:
        with self._db.session() as s:
            eni = _eni(s, scope, eni_id)
            if name is not None:
                eni.name = check_name("NetworkInterfaceName", name)
            if description is not None:
                eni.description = check_description(description)
            if group_ids:
                groups = self._groups(s, scope, eni.vpc_id, group_ids)
                kept = {m.group_id: m for m in eni.memberships}
                for membership in list(eni.memberships):
                    if membership.group_id not in {g.id for g in groups}:
                        eni.memberships.remove(membership)
                for position, group in enumerate(groups):
                    existing = kept.get(group.id)
                    if existing is None:
                        eni.memberships.append(NetworkInterfaceGroup(group_id=group.id, position=position))
                    else:
                        existing.position = position
            vpc_id = eni.vpc_id
        self._notify(vpc_id)

    def join(self, scope: Scope | int, eni_id: str, group_id: str) -> None:
        """`scope` may be the bare account: JoinSecurityGroup's RegionId is optional, and the
        VPC the group must share with the interface keeps it in one region."""
        with self._db.session() as s:
            eni = _eni(s, scope, eni_id)
            current = [m.group_id for m in eni.memberships]
            if group_id in current:
                raise errors.invalid_network_interface_id_already_in_security_group(
                    f"The network interface {eni_id} is already in the security group {group_id}."
                )
            groups = self._groups(s, scope, eni.vpc_id, [*current, group_id])
            eni.memberships.append(NetworkInterfaceGroup(group_id=groups[-1].id, position=len(current)))
            vpc_id = eni.vpc_id
        self._notify(vpc_id)

    def leave(self, scope: Scope | int, eni_id: str, group_id: str) -> None:
        with self._db.session() as s:
            eni = _eni(s, scope, eni_id)
            # Another account's group is answered as one that does not exist, never as "not in it".
            owned(s, SecurityGroup, scope, group_id, "SecurityGroup")
            membership = next((m for m in eni.memberships if m.group_id == group_id), None)
            if membership is None:
                raise errors.invalid_security_group_id_not_in_this_group(
                    f"The network interface {eni_id} is not in the security group {group_id}."
                )
            if len(eni.memberships) == 1:
                raise errors.invalid_operation_last_security_group()
            eni.memberships.remove(membership)
            vpc_id = eni.vpc_id
        self._notify(vpc_id)

    def delete(self, scope: Scope, eni_id: str) -> None:
        with self._db.session() as s:
            eni = _eni(s, scope, eni_id)
            if eni.status != ENI_AVAILABLE or eni.eni_type == "Primary":
                raise errors.invalid_operation_invalid_eni_state(
                    f"The network interface {eni_id} is {eni.status}; detach it before deleting it."
                )
            eip = s.scalar(select(PublicAddress.id).where(PublicAddress.network_interface_id == eni.id))
            if eip is not None:
                raise errors.invalid_operation_invalid_eni_state(
                    f"The network interface {eni_id} has the EIP {eip} associated; unassociate it first."
                )
            vpc_id = eni.vpc_id
            drop_tags(s, eni.account_id, eni.region_id, "eni", eni.id)
            s.delete(eni)
        self._notify(vpc_id)

    # ---- test hosts (operator) -----------------------------------------------------------------

    def set_test_host(self, eni_id: str, attached: bool) -> str:
        """Plug an interface into a test host (a namespace the agent makes) or unplug it."""
        with self._db.session() as s:
            eni = s.get(NetworkInterface, eni_id)
            if eni is None:
                raise errors.invalid_id_not_found("NetworkInterface", eni_id)
            if attached:
                if eni.status != ENI_AVAILABLE:
                    raise errors.invalid_operation_invalid_eni_state(
                        f"{eni_id} is {eni.status}, not Available."
                    )
                eni.status, eni.attachment = ENI_IN_USE, TEST_HOST
            else:
                if eni.attachment != TEST_HOST:
                    raise errors.invalid_operation_invalid_eni_state(
                        f"{eni_id} is not plugged into a test host."
                    )
                eni.status, eni.attachment = ENI_AVAILABLE, ""
            vpc_id = eni.vpc_id
        self._notify(vpc_id)
        return vpc_id


def used_ips(s: Session, vswitch_id: str) -> set[IPv4Address]:
    """The private addresses the interfaces of a vSwitch hold."""
    return {
        IPv4Address(ip)
        for ip in s.scalars(
            select(NetworkInterface.primary_ip).where(NetworkInterface.vswitch_id == vswitch_id)
        )
    }


def _eni(s: Session, scope: Scope | int, eni_id: str) -> NetworkInterface:
    return owned(s, NetworkInterface, scope, eni_id, "NetworkInterface")


def _loaded(s: Session, eni_id: str) -> NetworkInterface:
    eni = s.scalar(
        select(NetworkInterface)
        .where(NetworkInterface.id == eni_id)
        .options(selectinload(NetworkInterface.memberships))
    )
    assert eni is not None
    return eni
