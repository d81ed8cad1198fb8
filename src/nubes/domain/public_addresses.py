"""Public addresses in the store: the operator's ranges, taking a free address from them, the rows
an address becomes (an EIP, or an instance's public IP), and what happens to them when the
instance they serve goes away. The EIP and public-IP rules are eips.py and public_ips.py.

Nothing here touches a host: the network agent reconciles every row that has a
`network_interface_id` (1:1 NAT on the uplink, shaped to its bandwidth) when the VPC of the row
is notified, as it does for every other change of a VPC's network."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Address, IPv4Network

from sqlalchemy import select
from sqlalchemy.orm import Session

from nubes import errors, ids
from nubes.clock import Clock
from nubes.errors import ApiError
from nubes.store.db import Database
from nubes.store.models import Instance, NatGateway, NetworkInterface, PublicAddress, PublicAddressPool

ACTIVE, RETIRED = "Active", "Retired"
EIP, PUBLIC_IP = "Eip", "PublicIp"  # PublicAddress.kind
AVAILABLE, ASSOCIATING, IN_USE, UNASSOCIATING = "Available", "Associating", "InUse", "Unassociating"
# PublicAddress.instance_type: what the address serves (Nat: a NAT gateway, instance_id its id)
ECS_INSTANCE, NETWORK_INTERFACE, NAT_GATEWAY = "EcsInstance", "NetworkInterface", "Nat"

NO_RANGE = (
    "nubes has no public address range: the operator starts the server with --public-cidr "
    "(and --uplink, for real instances)."
)


def configure_pools(db: Database, clock: Clock, cidrs: Iterable[str], gateway: str = "") -> None:
    """Make the store's ranges the configured ones (at server start): new ranges are added, the
    configured ones (again) Active, the others Retired (their addresses in use stay theirs)."""
    wanted = {str(IPv4Network(c)): c for c in cidrs}
    with db.session() as s:
        rows = {p.cidr: p for p in s.scalars(select(PublicAddressPool))}
        for cidr in wanted:
            inside = bool(gateway) and IPv4Address(gateway) in IPv4Network(cidr)
            row = rows.get(cidr)
            if row is None:
                row = PublicAddressPool(cidr=cidr, created_at=clock.now())
                s.add(row)
            row.status, row.gateway = ACTIVE, gateway if inside else ""
        for cidr, row in rows.items():
            if cidr not in wanted:
                row.status = RETIRED


@dataclass
class AddressPicker:
    """Free addresses of the active ranges, for one unit of work: what the store holds is read
    once, and each address taken is remembered, so that one launch takes distinct ones. Two API
    processes taking the same address at once is caught by the unique ip_address."""

    pools: list[tuple[IPv4Network, str]]  # (range, its gateway or "")
    used: set[str]
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def load(cls, s: Session, rng: random.Random | None = None) -> AddressPicker:
        pools = [
            (IPv4Network(p.cidr), p.gateway)
            for p in s.scalars(
                select(PublicAddressPool)
                .where(PublicAddressPool.status == ACTIVE)
                .order_by(PublicAddressPool.cidr)
            )
        ]
        return cls(pools, set(s.scalars(select(PublicAddress.ip_address))), rng or random.Random())

    def take(self, none_left: Callable[[str], ApiError], wanted: str | None = None) -> tuple[str, str]:
        """A free address (`wanted` when given) and its range; `none_left` makes the error when
        no range is configured or every address is in use."""
        if not self.pools:
            raise none_left(NO_RANGE)
        if wanted:
            return self._wanted(wanted)
        for network, gateway in self.rng.sample(self.pools, len(self.pools)):
            hosts = network.num_addresses - 2  # not the network and broadcast addresses
            start = self.rng.randrange(hosts)
            for offset in range(hosts):
                ip = str(network[1 + (start + offset) % hosts])
                if ip not in self.used and ip != gateway:
                    self.used.add(ip)
                    return ip, str(network)
        raise none_left("Every address of the public ranges is in use.")

    def _wanted(self, wanted: str) -> tuple[str, str]:
        try:
            ip = IPv4Address(wanted)
        except ValueError:
            raise errors.invalid_parameter("IpAddress", "It must be an IPv4 address.") from None
        for network, gateway in self.pools:
            if ip in network and ip not in (network.network_address, network.broadcast_address):
                if str(ip) == gateway:
                    break
                if str(ip) in self.used:
                    raise errors.ip_in_use()
                self.used.add(str(ip))
                return str(ip), str(network)
        raise errors.invalid_parameter("IpAddress", "It is not an address of the public ranges of nubes.")


def new_address(
    now: datetime,
    address_id: str,
    kind: str,
    taken: tuple[str, str],
    account_id: int,
    region_id: str,
    bandwidth: tuple[int, int],
    internet_charge_type: str,
) -> PublicAddress:
    """The row of an address just taken, not associated yet."""
    return PublicAddress(
        id=address_id,
        kind=kind,
        ip_address=taken[0],
        pool_cidr=taken[1],
        account_id=account_id,
        region_id=region_id,
        name="",
        description="",
        bandwidth_out=bandwidth[0],
        bandwidth_in=bandwidth[1],
        internet_charge_type=internet_charge_type,
        isp="BGP",
        charge_type="PostPaid",
        resource_group_id="",
        status=AVAILABLE,
        instance_type="",
        instance_id="",
        network_interface_id="",
        private_ip="",
        vpc_id="",
        client_token="",
        created_at=now,
        associated_at=None,
    )


def associate(
    row: PublicAddress, now: datetime, instance_type: str, instance_id: str, eni: NetworkInterface
) -> None:
    """Map the address to the interface's private address. InUse at once: the emulator has no data
    plane; the network agent programs the NAT on the VPC's notification."""
    row.instance_type, row.instance_id = instance_type, instance_id
    row.network_interface_id, row.private_ip, row.vpc_id = eni.id, eni.primary_ip, eni.vpc_id
    row.status, row.associated_at = IN_USE, now


def associate_nat_gateway(row: PublicAddress, now: datetime, gateway: NatGateway) -> None:
    """Give the address to a NAT gateway: no interface and no private address of its own (the
    gateway's SNAT and DNAT entries say what it translates); InUse at once, as `associate`."""
    row.instance_type, row.instance_id, row.vpc_id = NAT_GATEWAY, gateway.id, gateway.vpc_id
    row.network_interface_id = row.private_ip = ""
    row.status, row.associated_at = IN_USE, now


def of_nat_gateways(s: Session, gateway_ids: Iterable[str]) -> dict[str, list[PublicAddress]]:
    """The EIPs associated with each of these NAT gateways, oldest association first."""
    wanted = list(gateway_ids)
    found: dict[str, list[PublicAddress]] = {g: [] for g in wanted}
    if not wanted:
        return found
    for row in s.scalars(
        select(PublicAddress)
        .where(PublicAddress.instance_type == NAT_GATEWAY, PublicAddress.instance_id.in_(wanted))
        .order_by(PublicAddress.associated_at, PublicAddress.id)
    ):
        found[row.instance_id].append(row)
    return found


def dissociate(row: PublicAddress) -> str:
    """Undo `associate`; the VPC the address served (to notify), or ""."""
    vpc_id = row.vpc_id
    row.instance_type = row.instance_id = row.network_interface_id = row.private_ip = row.vpc_id = ""
    row.status, row.associated_at = AVAILABLE, None
    return vpc_id


def count_eips(s: Session, account_id: int, region_id: str) -> int:
    """How many EIPs an account has in a region (for the quota)."""
    rows = s.scalars(
        select(PublicAddress.id).where(
            PublicAddress.account_id == account_id,
            PublicAddress.region_id == region_id,
            PublicAddress.kind == EIP,
        )
    )
    return len(rows.all())


def default_bandwidth_in(out: int) -> int:
    """ECS's default inbound bandwidth of an instance: 10 Mbit/s up to 10 outbound, else as much
    as outbound."""
    return max(10, out)


def assign_public_ip(
    s: Session, now: datetime, taken: tuple[str, str], instance: Instance, eni: NetworkInterface
) -> PublicAddress:
    """Give an instance a public IP (`taken` by an AddressPicker), mapped to its primary
    interface and shaped to its public bandwidth."""
    row = new_address(
        now,
        ids.new_id("eip"),  # the id it keeps if ConvertNatPublicIpToEip makes it an EIP
        PUBLIC_IP,
        taken,
        instance.account_id,
        instance.region_id,
        (instance.internet_max_bandwidth_out, instance.internet_max_bandwidth_in),
        instance.internet_charge_type,
    )
    associate(row, now, ECS_INSTANCE, instance.id, eni)
    s.add(row)
    return row


def of_instance(s: Session, instance_id: str) -> list[PublicAddress]:
    """The public IP and the EIP an instance has (by the instance, not its secondary interfaces)."""
    return list(
        s.scalars(
            select(PublicAddress)
            .where(PublicAddress.instance_type == ECS_INSTANCE, PublicAddress.instance_id == instance_id)
            .order_by(PublicAddress.kind)
        )
    )


def release_instance_addresses(s: Session, instance_id: str) -> set[str]:
    """An instance is being released: its public IP goes back to the ranges, its EIP becomes
    Available again (as in ECS). The VPCs whose data plane changes."""
    vpcs = set()
    for row in of_instance(s, instance_id):
        vpcs.add(row.vpc_id)
        if row.kind == PUBLIC_IP:
            s.delete(row)
        else:
            dissociate(row)
    vpcs.discard("")
    return vpcs


def by_interfaces(s: Session, eni_ids: Iterable[str]) -> dict[str, PublicAddress]:
    """The address associated with each of these interfaces (DescribeNetworkInterfaces)."""
    wanted = list(eni_ids)
    if not wanted:
        return {}
    rows = s.scalars(select(PublicAddress).where(PublicAddress.network_interface_id.in_(wanted)))
    return {r.network_interface_id: r for r in rows}


def by_instances(s: Session, instance_ids: Iterable[str]) -> dict[str, dict[str, PublicAddress]]:
    """Per instance, its addresses by kind (DescribeInstances' PublicIpAddress and EipAddress)."""
    wanted = list(instance_ids)
    found: dict[str, dict[str, PublicAddress]] = {}
    if not wanted:
        return found
    for row in s.scalars(
        select(PublicAddress).where(
            PublicAddress.instance_type == ECS_INSTANCE, PublicAddress.instance_id.in_(wanted)
        )
    ):
        found.setdefault(row.instance_id, {})[row.kind] = row
    return found
