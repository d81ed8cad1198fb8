"""The attributes of instances that tools read beside DescribeInstances: the instance RAM role
(nubes has no RAM roles), the maintenance policy, the private pool match mode, the renewal of
subscriptions (nubes has none) and the automatic release time."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from nubes import errors
from nubes.clock import Clock
from nubes.domain import instance_states as states
from nubes.domain import private_ips
from nubes.domain.common import Scope, owned
from nubes.domain.instance_queries import InstanceFilter
from nubes.domain.instances import Instances, primary_eni, replace_groups
from nubes.domain.launch_checks import auto_release_at, security_groups
from nubes.domain.vpcs import AVAILABLE
from nubes.store.db import Database
from nubes.store.models import Instance, NetworkInterface, PublicAddress, RouteEntry, VSwitch

# The maintenance actions of an instance on cloud disks (ECS answers the same SupportedValues);
# AutoRedeploy is for the local-disk types, which nubes does not offer.
AUTO_RECOVER = "AutoRecover"  # the host agent starts the instance again when its VM is lost
MAINTENANCE_ACTIONS = ("Stop", AUTO_RECOVER)
DEFAULT_MAINTENANCE_ACTION = AUTO_RECOVER
# Private pools come from elasticity assurances and capacity reservations, which nubes has not:
# an instance uses none (None), or any open one there is (Open: there is none, so the public pool).
POOL_MATCHES = ("None", "Open")
_HOUR = re.compile(r"([01]\d|2[0-3]):00:00")


@dataclass(frozen=True)
class MaintenanceWindow:
    """A daily window, HH:mm:ss on the hour in UTC+8 as ECS takes it."""

    start: str
    end: str


def check_window(start: str | None, end: str | None) -> MaintenanceWindow:
    """ECS's rule: both times, each on the hour, the end 1 to 23 hours after the start."""
    for name, value in (("StartTime", start), ("EndTime", end)):
        if not value:
            raise errors.missing_parameter(
                f"MaintenanceWindow.1.{name}", message="Give both StartTime and EndTime of the window."
            )
        if not _HOUR.fullmatch(value):
            raise errors.invalid_parameter(
                f"MaintenanceWindow.1.{name}", f"It must be a time on the hour, HH:00:00; got {value[:16]!r}."
            )
    assert start is not None and end is not None
    hours = (int(end[:2]) - int(start[:2])) % 24
    if not 1 <= hours <= 23:
        raise errors.invalid_parameter(
            "MaintenanceWindow.1.EndTime", "The window must end 1 to 23 hours after it starts."
        )
    return MaintenanceWindow(start, end)


class InstanceAttributes:
    def __init__(
        self, db: Database, clock: Clock, instances: Instances, notify_network: Callable[[str], None]
    ) -> None:
        self._db = db
        self._clock = clock
        self._instances = instances
        self._notify_network = notify_network

    def _all_owned(self, s: Session, scope: Scope, instance_ids: Sequence[str]) -> list[Instance]:
        """The caller's instances by ID, in the order given; one that is not theirs is NotFound."""
        return [self._instances.owned(s, scope.account_id, i, scope.region_id) for i in instance_ids]

    def page(
        self, scope: Scope, instance_ids: Sequence[str], offset: int, limit: int
    ) -> tuple[int, list[Instance]]:
        """The scope's instances (those of `instance_ids` only, when given): how many, and a page."""
        return self._instances.find(scope, InstanceFilter(instance_ids=instance_ids), offset, limit)

    # ---- RAM roles ------------------------------------------------------------------------------

    def ram_roles(self, scope: Scope, instance_ids: Sequence[str]) -> list[tuple[str, str]]:
        """(instance, role) pairs: none, as nubes has no RAM roles; the instances must be the caller's."""
        with self._db.session() as s:
            self._all_owned(s, scope, instance_ids)
        return []

    def attach_ram_role(self, scope: Scope, instance_ids: Sequence[str], role_name: str | None) -> None:
        """Refused: no role name names a role in nubes (InvalidRamRole.NotFound)."""
        with self._db.session() as s:
            self._all_owned(s, scope, instance_ids)
        raise errors.invalid_ram_role_not_found(
            f"The RAM role {(role_name or '')[:64]!r} does not exist: nubes has no RAM roles yet, "
            "so no instance has one to take or to give back."
        )

    # ---- maintenance ----------------------------------------------------------------------------

    def modify_maintenance(
        self,
        scope: Scope,
        instance_ids: Sequence[str],
        window: MaintenanceWindow | None,
        action: str | None,
        notify: bool | None,
    ) -> None:
        with self._db.session() as s:
            for instance in self._all_owned(s, scope, instance_ids):
                if window is not None:
                    instance.maintenance_start, instance.maintenance_end = window.start, window.end
                if action is not None:
                    instance.maintenance_action = action
                if notify is not None:
                    instance.maintenance_notify = notify

    # ---- private pools --------------------------------------------------------------------------

    def modify_pool_match(self, scope: Scope, instance_id: str, match: str) -> None:
        with self._db.session() as s:
            self._instances.owned(
                s, scope.account_id, instance_id, scope.region_id
            ).private_pool_match = match

    # ---- renewal and release --------------------------------------------------------------------

    def renewals(self, scope: Scope, instance_ids: Sequence[str]) -> list[Instance]:
        """The subscription instances among these: none, nubes has pay-as-you-go instances only,
        and asking for one of them is ChargeTypeViolation, as in ECS."""
        with self._db.session() as s:
            for instance in self._all_owned(s, scope, instance_ids):
                raise errors.charge_type_violation(
                    f"The instance {instance.id} is pay-as-you-go ({instance.charge_type}): it has no "
                    "renewal attributes."
                )
        return []

    def modify_auto_release_time(self, scope: Scope, instance_id: str, text: str | None) -> None:
        """Set (30 minutes to 3 years ahead) or, with an empty time, cancel the automatic release;
        the host agent's timers release the instance when it comes (Instances.release_due)."""
        with self._db.session() as s:
            instance = self._instances.owned(s, scope.account_id, instance_id, scope.region_id)
            instance.auto_release_time = auto_release_at(text, self._clock.now())

    # ---- network --------------------------------------------------------------------------------

    def modify_vpc_attribute(
        self,
        account_id: int,
        instance_id: str,
        vswitch_id: str,
        private_ip: str | None,
        vpc_id: str | None,
        group_ids: Sequence[str],
    ) -> None:
        """ModifyInstanceVpcAttribute: a Stopped instance's primary interface moves to another
        vSwitch of the same zone (of another VPC too, with VpcId and that VPC's security groups)
        and/or to another private address; the data plane of the VPCs follows."""
        with self._db.session() as s:
            instance = self._instances.owned(s, account_id, instance_id)
            scope = Scope(account_id, instance.region_id)
            states.check("ModifyInstanceVpcAttribute", instance_id, instance.status)
            vswitch = owned(s, VSwitch, scope, vswitch_id, "VSwitch")
            target_vpc = vpc_id or instance.vpc_id
            if vswitch.vpc_id != target_vpc:
                raise errors.invalid_id_not_found(
                    "VSwitch",
                    message=f"The vSwitch {vswitch_id} is not in the VPC {target_vpc}"
                    + ("" if vpc_id else " of the instance (give VpcId to move it to another VPC)."),
                )
            if vswitch.zone_id != instance.zone_id:
                raise errors.invalid_vswitch_id_mismatch(
                    f"The vSwitch {vswitch_id} is in zone {vswitch.zone_id}; the instance is in {instance.zone_id}."
                )
            if vswitch.status != AVAILABLE:
                raise errors.incorrect_vswitch_status(f"The vSwitch {vswitch_id} is {vswitch.status}.")
            moves_vpc = target_vpc != instance.vpc_id
            if moves_vpc and not group_ids:
                raise errors.missing_parameter(
                    "SecurityGroupId.N", message="Moving to another VPC needs security groups of that VPC."
                )
            groups = security_groups(s, scope, target_vpc, list(group_ids)) if group_ids else None
            eni = primary_eni(s, instance_id)
            assert eni is not None, f"instance {instance_id} has no primary network interface"
            if moves_vpc:
                self._check_movable(s, instance, eni.id)
            if private_ip or vswitch.id != eni.vswitch_id:
                # (its own address may stay)
                [allocated] = private_ips.allocate(s, vswitch, [private_ip], released=[eni.primary_ip])
                address = str(allocated)
            else:
                address = eni.primary_ip
            before = instance.vpc_id
            instance.vpc_id, instance.vswitch_id = target_vpc, vswitch.id
            eni.vpc_id, eni.vswitch_id, eni.primary_ip = target_vpc, vswitch.id, address
            if groups is not None:
                replace_groups(eni, [g.id for g in groups])
            for row in s.scalars(select(PublicAddress).where(PublicAddress.network_interface_id == eni.id)):
                row.private_ip, row.vpc_id = address, target_vpc
        for changed in dict.fromkeys((before, target_vpc)):
            self._notify_network(changed)

    @staticmethod
    def _check_movable(s: Session, instance: Instance, eni_id: str) -> None:
        """What ECS refuses in a VPC change: secondary interfaces, routes through the instance."""
        if s.scalar(
            select(NetworkInterface.id).where(
                NetworkInterface.instance_id == instance.id, NetworkInterface.eni_type != "Primary"
            )
        ):
            raise errors.operation_denied(
                f"The instance {instance.id} has secondary network interfaces: detach them before it changes VPC."
            )
        if s.scalar(select(RouteEntry.id).where(RouteEntry.next_hop_id.in_((instance.id, eni_id)))):
            raise errors.operation_denied(
                f"Routes of the VPC {instance.vpc_id} go through the instance {instance.id}: delete them "
                "before it changes VPC."
            )
