"""The public IP of an instance (ECS's static public IP): AllocatePublicIpAddress, the public
bandwidth (ModifyInstanceNetworkSpec) and ConvertNatPublicIpToEip. RunInstances gives one at
launch when InternetMaxBandwidthOut > 0 (launch.py, through public_addresses.assign_public_ip)."""

from __future__ import annotations

import random

from sqlalchemy import select
from sqlalchemy.orm import Session

from nubes import errors
from nubes.clock import Clock
from nubes.domain import instance_states as states
from nubes.domain import public_addresses as pa
from nubes.domain.common import NotifyNetwork, Scope, owned
from nubes.domain.eips import EIP_QUOTA, inbound_bandwidth
from nubes.store.db import Database
from nubes.store.models import Instance, NetworkInterface, PublicAddress


class PublicIps:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        notify: NotifyNetwork,
        eip_quota: int = EIP_QUOTA,
        rng: random.Random | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._notify = notify
        self._eip_quota = eip_quota
        self._rng = rng or random.Random()

    @staticmethod
    def _instance(s: Session, scope: Scope | int, instance_id: str, action: str) -> Instance:
        instance = owned(
            s, Instance, scope, instance_id, "Instance", usable=lambda i: i.desired != states.WANT_DELETED
        )
        states.check(action, instance.id, instance.status)
        return instance

    @staticmethod
    def _addresses(s: Session, instance_id: str) -> tuple[PublicAddress | None, PublicAddress | None]:
        """The instance's (public IP, EIP)."""
        found = {row.kind: row for row in pa.of_instance(s, instance_id)}
        return found.get(pa.PUBLIC_IP), found.get(pa.EIP)

    @staticmethod
    def _primary(s: Session, instance_id: str) -> NetworkInterface:
        eni = s.scalar(
            select(NetworkInterface).where(
                NetworkInterface.instance_id == instance_id, NetworkInterface.eni_type == "Primary"
            )
        )
        assert eni is not None, f"instance {instance_id} has no primary network interface"
        return eni

    def allocate(self, account_id: int, instance_id: str, ip_address: str | None) -> str:
        """The instance's public IP: the one it has already (as ECS answers), else a new one."""
        with self._db.session() as s:
            instance = self._instance(s, account_id, instance_id, "AllocatePublicIpAddress")
            public_ip, eip = self._addresses(s, instance.id)
            if public_ip is not None:
                return public_ip.ip_address
            if eip is not None:
                raise errors.operation_denied(
                    f"The instance {instance_id} has the EIP {eip.ip_address}: an instance with an EIP "
                    "gets no public IP."
                )
            if instance.internet_max_bandwidth_out <= 0:
                raise errors.operation_denied(
                    f"The public bandwidth of {instance_id} is 0 Mbit/s: raise InternetMaxBandwidthOut "
                    "with ModifyInstanceNetworkSpec first."
                )
            taken = pa.AddressPicker.load(s, self._rng).take(errors.insufficient_public_ip, ip_address)
            row = pa.assign_public_ip(s, self._clock.now(), taken, instance, self._primary(s, instance.id))
            address, vpc_id = row.ip_address, row.vpc_id
        self._notify(vpc_id)
        return address

    def modify_network_spec(
        self,
        account_id: int,
        instance_id: str,
        bandwidth_out: int | None,
        bandwidth_in: int | None,
        charge_type: str | None,
        allocate_public_ip: bool,
    ) -> None:
        """Change the public bandwidth, live. Out from 0 up gives no public IP unless
        AllocatePublicIp (pay-as-you-go, as ECS); out down to 0 releases the public IP."""
        with self._db.session() as s:
            instance = self._instance(s, account_id, instance_id, "ModifyInstanceNetworkSpec")
            public_ip, eip = self._addresses(s, instance.id)
            out = instance.internet_max_bandwidth_out if bandwidth_out is None else bandwidth_out
            if allocate_public_ip and out <= 0:
                raise errors.invalid_internet_max_bandwidth_out_value_not_supported(
                    "AllocatePublicIp needs InternetMaxBandwidthOut greater than 0."
                )
            if allocate_public_ip and eip is not None:
                raise errors.operation_denied(
                    f"The instance {instance_id} has the EIP {eip.ip_address}: an instance with an EIP "
                    "gets no public IP."
                )
            if bandwidth_out is not None and bandwidth_out != instance.internet_max_bandwidth_out:
                instance.internet_max_bandwidth_out = bandwidth_out
                if bandwidth_in is None:
                    instance.internet_max_bandwidth_in = pa.default_bandwidth_in(bandwidth_out) if out else 0
            if bandwidth_in is not None:
                instance.internet_max_bandwidth_in = bandwidth_in
            if charge_type:
                instance.internet_charge_type = charge_type
            if public_ip is not None and out <= 0:
                s.delete(public_ip)  # no public bandwidth, no public IP
                public_ip = None
            elif public_ip is None and allocate_public_ip:
                public_ip = pa.assign_public_ip(
                    s,
                    self._clock.now(),
                    pa.AddressPicker.load(s, self._rng).take(errors.insufficient_public_ip),
                    instance,
                    self._primary(s, instance.id),
                )
            if public_ip is not None:
                public_ip.bandwidth_out = instance.internet_max_bandwidth_out
                public_ip.bandwidth_in = instance.internet_max_bandwidth_in
                public_ip.internet_charge_type = instance.internet_charge_type
            vpc_id = instance.vpc_id
        self._notify(vpc_id)

    def convert_to_eip(self, scope: Scope, instance_id: str) -> None:
        """The instance's public IP becomes an EIP associated with it (same address, its
        bandwidth the instance's outbound bandwidth, which drops to 0)."""
        with self._db.session() as s:
            instance = self._instance(s, scope, instance_id, "ConvertNatPublicIpToEip")
            public_ip, _ = self._addresses(s, instance.id)
            if public_ip is None:
                raise errors.operation_denied(f"The instance {instance_id} has no public IP to convert.")
            if pa.count_eips(s, scope.account_id, scope.region_id) >= self._eip_quota:
                raise errors.quota_exceeded_eip()
            public_ip.kind = pa.EIP
            public_ip.bandwidth_in = inbound_bandwidth(public_ip.bandwidth_out)
            public_ip.internet_charge_type = instance.internet_charge_type
            instance.internet_max_bandwidth_out = instance.internet_max_bandwidth_in = 0
            vpc_id = instance.vpc_id
        self._notify(vpc_id)
