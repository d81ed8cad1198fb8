"""Elastic IP addresses: allocate, associate with an instance, a secondary interface or a NAT gateway,
unassociate, release, describe, modify. Statuses move through one table (TRANSITIONS); every
lookup comes before any check, so that another account's IDs answer as IDs that name nothing."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from nubes import errors, ids
from nubes.clock import Clock
from nubes.domain import instance_states
from nubes.domain import public_addresses as pa
from nubes.domain.common import NotifyNetwork, Scope, check_description, check_name, owned, where_given
from nubes.domain.nat_entries import ip_uses
from nubes.domain.nat_gateways import owned_gateway
from nubes.domain.resource_groups import group_for
from nubes.domain.tags import TagMatch, check_tags, drop_tags, where_tagged, write_tags
from nubes.store.db import Database
from nubes.store.models import Instance, NetworkInterface, PublicAddress

# ECS's default quota of EIPs per account and region.
EIP_QUOTA = 20
# Bandwidth (Mbit/s) by InternetChargeType, as ECS allows it for pay-as-you-go EIPs.
MAX_BANDWIDTH = {"PayByBandwidth": 500, "PayByTraffic": 200}

# action -> (statuses it may start from, the status it leads to or None for unchanged)
TRANSITIONS: dict[str, tuple[frozenset[str], str | None]] = {
    "AssociateEipAddress": (frozenset({pa.AVAILABLE}), pa.IN_USE),
    "UnassociateEipAddress": (frozenset({pa.IN_USE}), pa.AVAILABLE),
    "ReleaseEipAddress": (frozenset({pa.AVAILABLE}), None),
    "ModifyEipAddressAttribute": (frozenset({pa.AVAILABLE, pa.IN_USE}), None),
}


def check_status(action: str, row: PublicAddress) -> None:
    allowed, _ = TRANSITIONS[action]
    if row.status not in allowed:
        raise errors.incorrect_eip_status(
            f"The EIP {row.id} is {row.status}; {action} needs it to be {' or '.join(sorted(allowed))}."
        )


def inbound_bandwidth(bandwidth: int) -> int:
    """ECS gives an EIP 10 Mbit/s inbound up to 10 outbound, and as much as outbound above."""
    return max(10, bandwidth)


def check_bandwidth(bandwidth: int, charge_type: str) -> None:
    top = MAX_BANDWIDTH[charge_type]
    if not 1 <= bandwidth <= top:
        raise errors.invalid_parameter(
            message=f'Specified value of "Bandwidth" is not valid: {charge_type} allows 1 to {top} Mbit/s.'
        )


@dataclass(frozen=True)
class EipRequest:
    """What AllocateEipAddress takes."""

    bandwidth: int = 5
    internet_charge_type: str = "PayByBandwidth"
    name: str = ""
    description: str = ""
    resource_group_id: str = ""
    ip_address: str | None = None
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class EipFilter:
    """What DescribeEipAddresses narrows by; an empty field narrows nothing."""

    allocation_ids: Sequence[str] = ()
    ip_addresses: Sequence[str] = ()
    status: str | None = None
    name: str | None = None
    isp: str | None = None
    instance_type: str | None = None
    instance_id: str | None = None
    resource_group_id: str | None = None
    tags: Sequence[TagMatch] = ()
    nothing: bool = False  # a filter on what nubes EIPs never have (locks, protection, PrePaid)


class Eips:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        notify: NotifyNetwork,
        quota: int = EIP_QUOTA,
        rng: random.Random | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._notify = notify  # the VPC whose data plane an association changes
        self._quota = quota
        self._rng = rng or random.Random()

    def _eip(self, s: Session, scope: Scope, allocation_id: str) -> PublicAddress:
        return owned(s, PublicAddress, scope, allocation_id, "Allocation", usable=lambda r: r.kind == pa.EIP)

    def allocate(self, scope: Scope, request: EipRequest) -> PublicAddress:
        check_bandwidth(request.bandwidth, request.internet_charge_type)
        name = check_name("Name", request.name)
        description = check_description(request.description)
        check_tags(request.tags)
        with self._db.session() as s:
            if pa.count_eips(s, scope.account_id, scope.region_id) >= self._quota:
                raise errors.quota_exceeded_eip(
                    f"Elastic IP address quota exceeded: {self._quota} EIPs per account and region."
                )
            taken = pa.AddressPicker.load(s, self._rng).take(errors.reserve_ip_fail, request.ip_address)
            row = pa.new_address(
                self._clock.now(),
                ids.new_id("eip"),
                pa.EIP,
                taken,
                scope.account_id,
                scope.region_id,
                (request.bandwidth, inbound_bandwidth(request.bandwidth)),
                request.internet_charge_type,
            )
            group = group_for(s, scope.account_id, request.resource_group_id, self._clock)
            row.name, row.description, row.resource_group_id = name, description, group
            s.add(row)
            write_tags(s, scope, "eip", row.id, request.tags, created=True)
            return row

    def associate(
        self, scope: Scope, allocation_id: str, instance_type: str, instance_id: str, private_ip: str | None
    ) -> None:
        with self._db.session() as s:
            row = self._eip(s, scope, allocation_id)
            if instance_type == pa.NAT_GATEWAY:
                self._associate_nat_gateway(s, scope, row, instance_id, private_ip)
                vpc_id = row.vpc_id
            else:
                vpc_id = self._associate_interface(s, scope, row, instance_type, instance_id, private_ip)
        self._notify(vpc_id)

    def _associate_nat_gateway(
        self, s: Session, scope: Scope, row: PublicAddress, nat_gateway_id: str, private_ip: str | None
    ) -> None:
        """Give the EIP to a NAT gateway; PrivateIpAddress, when given, must be the gateway's."""
        gateway = owned_gateway(s, scope, nat_gateway_id)
        check_status("AssociateEipAddress", row)
        if private_ip and private_ip != gateway.private_ip:
            raise errors.invalid_private_ip_address_mismatch(
                f"The PrivateIpAddress {private_ip} is not the address of {nat_gateway_id}."
            )
        pa.associate_nat_gateway(row, self._clock.now(), gateway)

    def _associate_interface(
        self,
        s: Session,
        scope: Scope,
        row: PublicAddress,
        instance_type: str,
        instance_id: str,
        private_ip: str | None,
    ) -> str:
        """Map the EIP to an instance's primary interface or a secondary one; its VPC."""
        eni, instance = self._target(s, scope, instance_type, instance_id)
        check_status("AssociateEipAddress", row)
        if instance is not None:
            instance_states.check("AssociateEipAddress", instance.id, instance.status)
        if private_ip and private_ip != eni.primary_ip:
            raise errors.invalid_private_ip_address_mismatch(
                f"The PrivateIpAddress {private_ip} is not an address of {instance_id}."
            )
        if self._holder(s, instance_type, instance_id) is not None:
            raise errors.invalid_association_duplicated(
                f"Specified instance already is associated: {instance_id} has a public address; "
                "an instance's public IP becomes an EIP with ConvertNatPublicIpToEip."
            )
        pa.associate(row, self._clock.now(), instance_type, instance_id, eni)
        return eni.vpc_id

    @staticmethod
    def _target(
        s: Session, scope: Scope, instance_type: str, instance_id: str
    ) -> tuple[NetworkInterface, Instance | None]:
        """The interface an association maps to, and the instance when it is one."""
        if instance_type == pa.NETWORK_INTERFACE:
            eni = owned(s, NetworkInterface, scope, instance_id, "NetworkInterface")
            if eni.eni_type == "Primary":
                raise errors.invalid_instance_type_value_not_supported(
                    f"{instance_id} is the primary interface of {eni.instance_id}: associate the EIP "
                    "with the instance (InstanceType EcsInstance)."
                )
            return eni, None
        instance = owned(
            s,
            Instance,
            scope,
            instance_id,
            "Instance",
            usable=lambda i: i.desired != instance_states.WANT_DELETED,
        )
        primary = s.scalar(
            select(NetworkInterface).where(
                NetworkInterface.instance_id == instance.id, NetworkInterface.eni_type == "Primary"
            )
        )
        assert primary is not None, f"instance {instance.id} has no primary network interface"
        return primary, instance

    @staticmethod
    def _holder(s: Session, instance_type: str, instance_id: str) -> PublicAddress | None:
        """The address (EIP or public IP) the instance or interface has already, if any."""
        return s.scalar(
            select(PublicAddress).where(
                PublicAddress.instance_type == instance_type, PublicAddress.instance_id == instance_id
            )
        )

    def unassociate(
        self,
        scope: Scope,
        allocation_id: str,
        instance_type: str | None,
        instance_id: str | None,
        private_ip: str | None,
        force: bool,
    ) -> None:
        """Unassociate an EIP; InstanceId/InstanceType/PrivateIpAddress, when given, must name
        what it is associated with. Without Force, an instance must be Running or Stopped."""
        with self._db.session() as s:
            row = self._eip(s, scope, allocation_id)
            instance = None
            target_type = instance_type or row.instance_type or pa.ECS_INSTANCE
            mapped_ip = row.private_ip
            if target_type == pa.NAT_GATEWAY and (instance_id or row.instance_type == pa.NAT_GATEWAY):
                gateway = owned_gateway(s, scope, instance_id or row.instance_id)
                mapped_ip = gateway.private_ip
            elif instance_id:
                _, instance = self._target(s, scope, target_type, instance_id)
            check_status("UnassociateEipAddress", row)
            if (
                (instance_id and instance_id != row.instance_id)
                or (instance_type and instance_type != row.instance_type)
                or (private_ip and private_ip != mapped_ip)
            ):
                raise errors.incorrect_eip_status(
                    f"The EIP {allocation_id} is not associated with what the request names."
                )
            if instance is None and row.instance_type == pa.ECS_INSTANCE:
                instance = s.get(Instance, row.instance_id)
            if instance is not None and not force:
                instance_states.check("UnassociateEipAddress", instance.id, instance.status)
            if row.instance_type == pa.NAT_GATEWAY:
                self._check_unused(s, row)
            vpc_id = pa.dissociate(row)
        self._notify(vpc_id)

    @staticmethod
    def _check_unused(s: Session, row: PublicAddress) -> None:
        """A NAT gateway's EIP leaves it only once no SNAT or DNAT entry uses it (Force or not)."""
        by_snat, by_forward = ip_uses(s, row.instance_id, row.ip_address)
        if by_snat:
            raise errors.invalid_ip_status_has_been_used_by_snat_table(
                f"The removed ip address {row.ip_address} has been used by snat table of {row.instance_id}."
            )
        if by_forward:
            raise errors.invalid_ip_status_has_been_used_by_forward_entry(
                f"The specified address {row.ip_address} has been used by forward table of {row.instance_id}."
            )

    def release(self, scope: Scope, allocation_id: str) -> None:
        with self._db.session() as s:
            row = self._eip(s, scope, allocation_id)
            check_status("ReleaseEipAddress", row)
            drop_tags(s, row.account_id, row.region_id, "eip", row.id)
            s.delete(row)

    def modify(
        self,
        scope: Scope,
        allocation_id: str,
        bandwidth: int | None,
        name: str | None,
        description: str | None,
    ) -> None:
        """Bandwidth applies at once (the data plane reshapes on the VPC's notification)."""
        with self._db.session() as s:
            row = self._eip(s, scope, allocation_id)
            check_status("ModifyEipAddressAttribute", row)
            if bandwidth is not None:
                check_bandwidth(bandwidth, row.internet_charge_type)
                row.bandwidth_out, row.bandwidth_in = bandwidth, inbound_bandwidth(bandwidth)
            if name is not None:
                row.name = check_name("Name", name)
            if description is not None:
                row.description = check_description(description)
            vpc_id = row.vpc_id
        if vpc_id and bandwidth is not None:
            self._notify(vpc_id)

    def of_interfaces(self, eni_ids: Iterable[str]) -> dict[str, PublicAddress]:
        """The public address (EIP or public IP) mapped to each of these interfaces."""
        with self._db.session() as s:
            return pa.by_interfaces(s, eni_ids)

    def describe(self, scope: Scope, f: EipFilter) -> list[PublicAddress]:
        """The scope's EIPs that pass the filter, newest first."""
        if f.nothing:
            return []
        query = select(PublicAddress).where(
            PublicAddress.account_id == scope.account_id,
            PublicAddress.region_id == scope.region_id,
            PublicAddress.kind == pa.EIP,
        )
        if f.allocation_ids:
            query = query.where(PublicAddress.id.in_(f.allocation_ids))
        if f.ip_addresses:
            query = query.where(PublicAddress.ip_address.in_(f.ip_addresses))
        query = where_given(
            query,
            [
                (PublicAddress.status == f.status, f.status),
                (PublicAddress.name == f.name, f.name),
                (PublicAddress.isp == f.isp, f.isp),
                (PublicAddress.instance_type == f.instance_type, f.instance_type),
                (PublicAddress.instance_id == f.instance_id, f.instance_id),
                (PublicAddress.resource_group_id == f.resource_group_id, f.resource_group_id),
            ],
        )
        query = where_tagged(query, scope, "eip", PublicAddress.id, f.tags)
        with self._db.session() as s:
            return list(s.scalars(query.order_by(PublicAddress.created_at.desc(), PublicAddress.id)))
