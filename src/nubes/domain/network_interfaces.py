"""Elastic network interfaces: an address on a vSwitch, a MAC, and up to five security groups.

An interface is plugged into the host when something uses it: an instance, or (for tests
and operators) a test host, a network namespace the agent creates behind the port."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from ipaddress import IPv4Address

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from nubes import errors, ids
from nubes.catalog.model import Catalog
from nubes.clock import Clock
from nubes.domain import instance_states as states
from nubes.domain import private_ips as vswitch_addresses
from nubes.domain.common import NotifyNetwork, Scope, check_description, check_name, owned
from nubes.domain.resource_groups import group_for
from nubes.domain.security_groups import SecurityQuotas
from nubes.domain.tags import TagMatch, check_tags, drop_tags, where_tagged, write_tags
from nubes.domain.vpcs import AVAILABLE
from nubes.store.db import Database
from nubes.store.models import (
    Instance,
    NetworkInterface,
    NetworkInterfaceGroup,
    NetworkInterfacePrivateIp,
    PublicAddress,
    SecurityGroup,
    VSwitch,
)

ENI_AVAILABLE = "Available"
ENI_ATTACHING = "Attaching"
ENI_IN_USE = "InUse"
ENI_DETACHING = "Detaching"
TEST_HOST = "testhost"
ON_INSTANCE = "instance"  # `attachment` of an interface plugged in for an instance (see netstate)

# The interface statuses each action may start from, and the one it leads to (None: unchanged).
# The agent finishes Attaching -> InUse and Detaching -> Available (nubes.agent.compute). A
# detach may be asked again while one is under way (ECS: re-issue it when it seems stuck).
ENI_TRANSITIONS: dict[str, tuple[frozenset[str], str | None]] = {
    "AttachNetworkInterface": (frozenset({ENI_AVAILABLE}), ENI_ATTACHING),
    "DetachNetworkInterface": (frozenset({ENI_IN_USE, ENI_DETACHING}), ENI_DETACHING),
    "AssignPrivateIpAddresses": (frozenset({ENI_AVAILABLE, ENI_IN_USE}), None),
    "UnassignPrivateIpAddresses": (frozenset({ENI_AVAILABLE, ENI_IN_USE}), None),
}
# The instance statuses in which interfaces may be attached to or detached from it.
INSTANCE_STEADY = frozenset({states.RUNNING, states.STOPPED})
# ECS: an interface not attached to an instance takes up to 10 secondary private addresses; an
# attached one as many as its instance type's EniPrivateIpAddressQuantity (which counts the primary).
UNATTACHED_SECONDARY_IPS = 10
DEFAULT_ENI_QUANTITY = 2  # (a type the catalog gives no EniQuantity: a primary and one more)
DEFAULT_IPS_PER_ENI = 6


def eni_step(eni: NetworkInterface, action: str) -> str:
    """The status `action` leads the interface to, or InvalidOperation.InvalidEniState."""
    allowed, to = ENI_TRANSITIONS[action]
    if eni.status not in allowed or eni.attachment == TEST_HOST:
        raise errors.invalid_operation_invalid_eni_state(
            f"{action} is not allowed while the network interface {eni.id} is {eni.status}"
            + (" (plugged into a test host)." if eni.attachment == TEST_HOST else ".")
        )
    return to or eni.status


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
    def __init__(
        self,
        db: Database,
        clock: Clock,
        notify: NotifyNetwork,
        quotas: SecurityQuotas,
        catalog: Catalog | None = None,
        notify_compute: NotifyNetwork | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._notify = notify
        self._quotas = quotas
        self._catalog = catalog
        # an instance whose interfaces change: its host's agent plugs them in or out
        self._notify_compute = notify_compute or (lambda _key: None)

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
        secondary_ips: Sequence[str] = (),
        secondary_count: int | None = None,
    ) -> NetworkInterface:
        """A new interface with its creation tags and its secondary private addresses (the ones
        named, or `secondary_count` free ones), in one transaction."""
        wanted = _secondary_request(secondary_ips, secondary_count)
        _check_secondary_quota(0, len(wanted), UNATTACHED_SECONDARY_IPS, "an unattached network interface")
        name = check_name("NetworkInterfaceName", name)
        description = check_description(description)
        check_tags(tags)
        with self._db.session() as s:
            vswitch = owned(s, VSwitch, scope, vswitch_id, "VSwitch")
            if vswitch.status != AVAILABLE:
                raise errors.incorrect_vswitch_status(f"The vSwitch {vswitch_id} is {vswitch.status}.")
            groups = self._groups(s, scope, vswitch.vpc_id, group_ids)
            taken: set[IPv4Address] = set()
            # the named addresses first, so that a free one picked for another never takes one of them
            named = vswitch_addresses.allocate(s, vswitch, [ip for ip in wanted if ip], taken)
            [address] = vswitch_addresses.allocate(s, vswitch, [primary_ip], taken)
            secondary = named + vswitch_addresses.allocate(s, vswitch, [ip for ip in wanted if not ip], taken)
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
            eni.secondary_ips = [
                NetworkInterfacePrivateIp(vswitch_id=vswitch_id, ip_address=str(ip)) for ip in secondary
            ]
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
                (
                    private_ips,
                    NetworkInterface.primary_ip.in_(private_ips or [])
                    | NetworkInterface.id.in_(
                        select(NetworkInterfacePrivateIp.interface_id).where(
                            NetworkInterfacePrivateIp.ip_address.in_(private_ips or [])
                        )
                    ),
                ),
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

    # ---- attachment to instances ---------------------------------------------------------------

    def attach(self, scope: Scope, eni_id: str, instance_id: str) -> None:
        """Attach a secondary interface to an instance of its VPC and zone (Running or Stopped):
        Attaching until the instance's agent has plugged it in (hot-plugged into a running VM, or
        on the command line of its next start), then InUse."""
        with self._db.session() as s:
            eni = _eni(s, scope, eni_id, "Eni")
            instance = _instance(s, scope, instance_id)
            if eni.eni_type == "Primary":
                raise errors.invalid_operation_invalid_eni_type(
                    f"The network interface {eni_id} is the primary interface of an instance."
                )
            status = eni_step(eni, "AttachNetworkInterface")
            _check_instance_steady(instance, "attached to")
            states.check_not_hibernated("AttachNetworkInterface", instance_id, instance.hibernated)
            if eni.vpc_id != instance.vpc_id:
                raise errors.invalid_operation_vpc_mismatch(
                    f"The network interface {eni_id} is in {eni.vpc_id}, the instance {instance_id} in "
                    f"{instance.vpc_id}."
                )
            if eni.zone_id != instance.zone_id:
                raise errors.invalid_operation_availability_zone_mismatch(
                    f"The network interface {eni_id} is in {eni.zone_id}, the instance {instance_id} in "
                    f"{instance.zone_id}."
                )
            limit, per_eni = self._type_limits(instance.instance_type)
            attached = s.scalar(
                select(func.count(NetworkInterface.id)).where(NetworkInterface.instance_id == instance_id)
            )
            if (attached or 0) >= limit:
                raise errors.eni_per_instance_limit_exceeded(
                    f"The instance type {instance.instance_type} takes at most {limit} network interfaces "
                    f"(its primary one included); {instance_id} has {attached}."
                )
            _check_secondary_quota(
                len(eni.secondary_ips), 0, per_eni - 1, f"an interface of {instance.instance_type}"
            )
            eni.status, eni.instance_id, eni.attachment = status, instance_id, ON_INSTANCE
            vpc_id = eni.vpc_id
        self._notify(vpc_id)
        self._notify_compute(instance_id)

    def detach(self, scope: Scope, eni_id: str, instance_id: str) -> None:
        """Detach a secondary interface from its instance (Running or Stopped): Detaching until
        the agent has unplugged it (the guest released the hot-plugged NIC), then Available."""
        with self._db.session() as s:
            eni = _eni(s, scope, eni_id, "Eni")
            instance = _instance(s, scope, instance_id)
            if eni.eni_type == "Primary":
                raise errors.invalid_operation_detach_primary_eni_not_allowed()
            status = eni_step(eni, "DetachNetworkInterface")
            if eni.instance_id != instance_id:
                raise errors.invalid_operation_invalid_eni_state(
                    f"The network interface {eni_id} is not attached to the instance {instance_id}."
                )
            _check_instance_steady(instance, "detached from")
            states.check_not_hibernated("DetachNetworkInterface", instance_id, instance.hibernated)
            eni.status = status
        self._notify_compute(instance_id)

    def _type_limits(self, type_id: str) -> tuple[int, int]:
        """(interfaces per instance, private IPv4 addresses per interface) of an instance type."""
        itype = self._catalog.instance_type(type_id) if self._catalog is not None else None
        fields = itype.fields if itype is not None else {}
        return (
            int(fields.get("EniQuantity") or DEFAULT_ENI_QUANTITY),
            int(fields.get("EniPrivateIpAddressQuantity") or DEFAULT_IPS_PER_ENI),
        )

    # ---- secondary private addresses -----------------------------------------------------------

    def assign_private_ips(
        self, scope: Scope, eni_id: str, addresses: Sequence[str], count: int | None
    ) -> list[str]:
        """Give the interface secondary private addresses of its vSwitch: the ones named, or
        `count` free ones. The new addresses, in order."""
        wanted = _secondary_request(addresses, count)
        if not wanted:
            raise errors.missing_parameter(
                message="Give PrivateIpAddress.N or SecondaryPrivateIpAddressCount: the addresses to assign."
            )
        with self._db.session() as s:
            eni = _eni(s, scope, eni_id, "Eni")
            eni_step(eni, "AssignPrivateIpAddresses")
            limit, where = UNATTACHED_SECONDARY_IPS, "an unattached network interface"
            if eni.instance_id:
                instance = s.get(Instance, eni.instance_id)
                if instance is not None:
                    if eni.eni_type == "Primary":
                        _check_instance_steady(instance, "given addresses on its primary interface")
                    limit = self._type_limits(instance.instance_type)[1] - 1
                    where = f"an interface of {instance.instance_type}"
            _check_secondary_quota(len(eni.secondary_ips), len(wanted), limit, where)
            vswitch = s.get(VSwitch, eni.vswitch_id)
            assert vswitch is not None  # (a vSwitch with interfaces is never deleted)
            taken: set[IPv4Address] = set()
            named = vswitch_addresses.allocate(s, vswitch, [ip for ip in wanted if ip], taken)
            new = named + vswitch_addresses.allocate(s, vswitch, [ip for ip in wanted if not ip], taken)
            eni.secondary_ips.extend(
                NetworkInterfacePrivateIp(vswitch_id=vswitch.id, ip_address=str(ip)) for ip in new
            )
            vpc_id = eni.vpc_id
        self._notify(vpc_id)
        return [str(ip) for ip in new]

    def unassign_private_ips(self, scope: Scope, eni_id: str, addresses: Sequence[str]) -> None:
        """Take secondary private addresses from the interface (back to the vSwitch)."""
        if not addresses:
            raise errors.missing_parameter(message="PrivateIpAddress.N names the addresses to unassign.")
        with self._db.session() as s:
            eni = _eni(s, scope, eni_id, "Eni")
            eni_step(eni, "UnassignPrivateIpAddresses")
            held = {row.ip_address: row for row in eni.secondary_ips}
            for address in addresses:
                if address not in held:
                    raise errors.invalid_ip_ip_unassigned(
                        f"The address {address} is not a secondary private address of {eni_id}"
                        + (" (it is its primary address)." if address == eni.primary_ip else ".")
                    )
            for address in dict.fromkeys(addresses):
                eni.secondary_ips.remove(held[address])
            vpc_id = eni.vpc_id
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


def _eni(s: Session, scope: Scope | int, eni_id: str, kind: str = "NetworkInterface") -> NetworkInterface:
    """`kind`: the NotFound error's name (the attachment and address actions say InvalidEniId)."""
    return owned(s, NetworkInterface, scope, eni_id, kind)


def _instance(s: Session, scope: Scope, instance_id: str) -> Instance:
    # InvalidEcsId.NotFound, as the interface actions name it; an instance being deleted is gone
    return owned(s, Instance, scope, instance_id, "Ecs", usable=lambda i: i.desired != states.WANT_DELETED)


def _check_instance_steady(instance: Instance, what: str) -> None:
    if instance.status not in INSTANCE_STEADY:
        raise errors.invalid_operation_invalid_ecs_state(
            f"The instance {instance.id} is {instance.status}; interfaces are {what} it only while it "
            "is Running or Stopped."
        )


def _secondary_request(addresses: Sequence[str], count: int | None) -> list[str | None]:
    """PrivateIpAddress.N or SecondaryPrivateIpAddressCount, as the addresses to allocate (None:
    any free one). Never both; a name given twice is refused."""
    if addresses and count is not None:
        raise errors.invalid_parameter(
            message="PrivateIpAddress.N and SecondaryPrivateIpAddressCount cannot be given together."
        )
    if len(set(addresses)) != len(addresses):
        raise errors.invalid_ip_ip_repeated("A private address is named twice in PrivateIpAddress.N.")
    return list(addresses) if addresses else [None] * (count or 0)


def _check_secondary_quota(held: int, more: int, limit: int, where: str) -> None:
    if held + more > limit:
        raise errors.invalid_operation_ipv4_count_exceeded(
            f"{where.capitalize()} takes at most {limit} secondary private addresses; it has {held} "
            f"and {more} more were asked for."
        )


def _loaded(s: Session, eni_id: str) -> NetworkInterface:
    eni = s.scalar(
        select(NetworkInterface)
        .where(NetworkInterface.id == eni_id)
        .options(selectinload(NetworkInterface.memberships))
    )
    assert eni is not None
    return eni
