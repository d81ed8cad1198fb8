"""The SNAT and DNAT (forward) entries of NAT gateways. An entry's public addresses are EIPs
associated with its gateway; an address that an SNAT entry uses may serve DNAT only on ports up
to 1024, unless the DNAT entry sets PortBreak (SNAT takes its source ports above 1024), and never
with IpProtocol any (that maps the whole address). Entries are Available at once; the data plane
converges on the VPC's notification."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from nubes import errors, ids
from nubes.clock import Clock
from nubes.domain import public_addresses as pa
from nubes.domain.common import NotifyNetwork, Scope, check_name, owned, where_given
from nubes.domain.nat_gateways import owned_gateway, snat_ips_of
from nubes.domain.vpcs import AVAILABLE
from nubes.store.db import Database
from nubes.store.models import ForwardEntry, NatGateway, SnatEntry, Vpc, VSwitch

# ECS's default quotas of entries per table.
SNAT_ENTRIES_PER_TABLE = 40
FORWARD_ENTRIES_PER_TABLE = 100
PROTOCOLS = ("tcp", "udp", "any")
ANY = "any"
# SNAT takes source ports above this one: DNAT above it on an SNAT address needs PortBreak.
SNAT_PORT_FLOOR = 1024


def _gateway_ips(s: Session, gateway: NatGateway) -> set[str]:
    """The public addresses of the EIPs associated with the gateway."""
    return {e.ip_address for e in pa.of_nat_gateways(s, [gateway.id])[gateway.id]}


def _ipv4(field: str, value: str) -> str:
    try:
        return str(IPv4Address(value.strip()))
    except ValueError:
        raise errors.invalid_malformed(
            field, f"The specified {field} {value[:64]!r} is not a valid IP address."
        ) from None


def _snat_entries(s: Session, gateway_id: str) -> list[SnatEntry]:
    return list(s.scalars(select(SnatEntry).where(SnatEntry.nat_gateway_id == gateway_id)))


def _forward_entries(s: Session, gateway_id: str) -> list[ForwardEntry]:
    return list(s.scalars(select(ForwardEntry).where(ForwardEntry.nat_gateway_id == gateway_id)))


E = TypeVar("E", SnatEntry, ForwardEntry)


class _Table(Generic[E]):
    """What SNAT and DNAT tables share: finding a table and an entry of it, deleting, listing."""

    model: type[E]
    table_kind: str  # SnatTable | ForwardTable
    entry_kind: str  # SnatEntry | ForwardEntry
    default_quota: int  # entries per table

    def __init__(self, db: Database, clock: Clock, notify: NotifyNetwork, quota: int | None = None) -> None:
        self._db = db
        self._clock = clock
        self._notify = notify  # the VPC whose data plane an entry changes
        self._quota = self.default_quota if quota is None else quota

    def _gateway(self, s: Session, scope: Scope, table_id: str) -> NatGateway:
        """The caller's gateway whose table this is (another account's answers as none)."""
        gateway = s.scalar(select(NatGateway).where(self._names_table(table_id))) if table_id else None
        if gateway is None or gateway.account_id != scope.account_id or gateway.region_id != scope.region_id:
            raise errors.invalid_id_not_found(
                self.table_kind, message=f"The specified {self.table_kind}Id {table_id!r} does not exist."
            )
        return gateway

    @staticmethod
    def _names_table(table_id: str) -> ColumnElement[bool]:
        """Whether a gateway has this table."""
        raise NotImplementedError

    def _entry(self, s: Session, scope: Scope, table_id: str, entry_id: str) -> tuple[NatGateway, E]:
        gateway = self._gateway(s, scope, table_id)
        entry = s.get(self.model, entry_id) if entry_id else None
        if entry is None or entry.nat_gateway_id != gateway.id:
            raise errors.invalid_id_not_found(self.entry_kind, entry_id)
        return gateway, entry

    def delete(self, scope: Scope, table_id: str, entry_id: str) -> None:
        with self._db.session() as s:
            gateway, entry = self._entry(s, scope, table_id, entry_id)
            s.delete(entry)
            vpc_id = gateway.vpc_id
        self._notify(vpc_id)

    def _listed(
        self,
        scope: Scope,
        table_id: str | None,
        nat_gateway_id: str | None,
        conditions: Sequence[tuple[ColumnElement[bool], object]],
    ) -> list[E]:
        """The entries of the caller's table or gateway (one of them is given; both: they must
        agree) meeting each condition whose parameter was given, oldest first."""
        with self._db.session() as s:
            if table_id:
                gateway = self._gateway(s, scope, table_id)
                if nat_gateway_id and nat_gateway_id != gateway.id:
                    return []
                nat_gateway_id = gateway.id
            elif nat_gateway_id:
                owned_gateway(s, scope, nat_gateway_id)
            else:
                raise errors.missing_parameter(
                    self.table_kind + "Id", message=f"Give {self.table_kind}Id or NatGatewayId."
                )
            query = where_given(
                select(self.model).where(self.model.nat_gateway_id == nat_gateway_id), conditions
            )
            return list(s.scalars(query.order_by(self.model.created_at, self.model.id)))


# ---- SNAT -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnatFilter:
    """What DescribeSnatTableEntries narrows by (SnatTableId or NatGatewayId is given)."""

    snat_table_id: str | None = None
    nat_gateway_id: str | None = None
    snat_entry_id: str | None = None
    name: str | None = None
    snat_ip: str | None = None
    source_cidr: str | None = None
    source_vswitch_id: str | None = None


class SnatEntries(_Table[SnatEntry]):
    model = SnatEntry
    table_kind, entry_kind = "SnatTable", "SnatEntry"
    default_quota = SNAT_ENTRIES_PER_TABLE

    @staticmethod
    def _names_table(table_id: str) -> ColumnElement[bool]:
        return NatGateway.snat_table_id == table_id

    def create(
        self,
        scope: Scope,
        table_id: str,
        source: tuple[str | None, str | None],
        snat_ips: str,
        name: str | None,
        eip_affinity: int,
    ) -> str:
        """`source`: SourceVSwitchId and SourceCIDR, exactly one of them."""
        name = check_name("SnatEntryName", name)
        with self._db.session() as s:
            gateway = self._gateway(s, scope, table_id)
            vswitch_id, source_cidr = self._source(s, scope, gateway, *source)
            ips = self._snat_ips(s, gateway, snat_ips)
            entries = _snat_entries(s, gateway.id)
            if any(e.source_cidr == source_cidr for e in entries):
                raise errors.forbidden_source_vswitch_id_duplicated(
                    f"The SNAT table {table_id} already has an entry for the source {source_cidr}."
                )
            if len(entries) >= self._quota:
                raise errors.forbidden_snat_entry_count_limited(
                    f"An SNAT table has at most {self._quota} entries; {table_id} is full."
                )
            entry = SnatEntry(
                id=ids.new_id("snat_entry"),
                nat_gateway_id=gateway.id,
                snat_table_id=gateway.snat_table_id,
                account_id=scope.account_id,
                source_cidr=source_cidr,
                source_vswitch_id=vswitch_id,
                snat_ips=",".join(ips),
                name=name,
                eip_affinity=eip_affinity,
                status=AVAILABLE,
                client_token="",
                created_at=self._clock.now(),
            )
            s.add(entry)
            vpc_id = gateway.vpc_id
        self._notify(vpc_id)
        return entry.id

    @staticmethod
    def _source(
        s: Session, scope: Scope, gateway: NatGateway, vswitch_id: str | None, source_cidr: str | None
    ) -> tuple[str, str]:
        """The entry's vSwitch ("" for a CIDR) and its source CIDR (the vSwitch's)."""
        if vswitch_id and source_cidr:
            raise errors.invalid_parameter_conflict("Give SourceVSwitchId or SourceCIDR, not both.")
        if vswitch_id:
            vswitch = owned(s, VSwitch, scope, vswitch_id, "VSwitch")
            if vswitch.vpc_id != gateway.vpc_id:
                raise errors.invalid_parameter(
                    "SourceVSwitchId",
                    f"The vSwitch {vswitch_id} is not in the VPC {gateway.vpc_id} of the gateway.",
                )
            return vswitch.id, vswitch.cidr
        if not source_cidr:
            raise errors.missing_parameter("SourceVSwitchId", message="Give SourceVSwitchId or SourceCIDR.")
        try:
            network = IPv4Network(source_cidr.strip(), strict=True)
        except ValueError:
            raise errors.invalid_malformed(
                "SourceCIDR", f"The SourceCIDR {source_cidr[:64]!r} is not an IPv4 CIDR block or address."
            ) from None
        return "", str(network)

    @staticmethod
    def _snat_ips(s: Session, gateway: NatGateway, text: str) -> list[str]:
        """SnatIp's addresses: EIPs of the gateway that no DNAT entry maps in a way SNAT cannot share."""
        ips = [_ipv4("SnatIp", part) for part in text.split(",")] if text.strip() else []
        if not ips or len(set(ips)) != len(ips):
            raise errors.invalid_malformed(
                "SnatIp", "SnatIp takes one or more distinct IP addresses separated by commas."
            )
        missing = [ip for ip in ips if ip not in _gateway_ips(s, gateway)]
        if missing:
            raise errors.invalid_snat_ip_not_found(
                f"Specified SnatIp does not found on the NAT Gateway: {', '.join(missing)} is not an EIP "
                f"associated with {gateway.id}."
            )
        for entry in _forward_entries(s, gateway.id):
            if entry.external_ip in ips and not _shares_with_snat(entry):
                raise errors.forbidden_ip_used_in_forward_table(
                    f"The specified SnatIp {entry.external_ip} is used by the forward entry {entry.id} "
                    f"({entry.ip_protocol} {entry.external_port}) that SNAT cannot share."
                )
        return ips

    def modify(
        self,
        scope: Scope,
        table_id: str,
        entry_id: str,
        snat_ips: str | None,
        name: str | None,
        eip_affinity: int | None,
    ) -> None:
        with self._db.session() as s:
            gateway, entry = self._entry(s, scope, table_id, entry_id)
            if snat_ips is not None:
                entry.snat_ips = ",".join(self._snat_ips(s, gateway, snat_ips))
            if name is not None:
                entry.name = check_name("SnatEntryName", name)
            if eip_affinity is not None:
                entry.eip_affinity = eip_affinity
            vpc_id = gateway.vpc_id
        self._notify(vpc_id)

    def describe(self, scope: Scope, f: SnatFilter) -> list[SnatEntry]:
        """The entries of the caller's table or gateway that pass the filter, oldest first."""
        rows = self._listed(
            scope,
            f.snat_table_id,
            f.nat_gateway_id,
            [
                (SnatEntry.id == f.snat_entry_id, f.snat_entry_id),
                (SnatEntry.name == f.name, f.name),
                (SnatEntry.source_cidr == f.source_cidr, f.source_cidr),
                (SnatEntry.source_vswitch_id == f.source_vswitch_id, f.source_vswitch_id),
            ],
        )
        return [r for r in rows if not f.snat_ip or f.snat_ip in snat_ips_of([r])]


# ---- DNAT (forward entries) -------------------------------------------------------------------------


@dataclass(frozen=True)
class Forwarding:
    """What a DNAT entry maps: protocol, external address and port(s), internal ones."""

    ip_protocol: str
    external_ip: str
    external_port: str
    internal_ip: str
    internal_port: str
    port_break: bool = False


@dataclass(frozen=True)
class ForwardFilter:
    """What DescribeForwardTableEntries narrows by (ForwardTableId or NatGatewayId is given)."""

    forward_table_id: str | None = None
    nat_gateway_id: str | None = None
    forward_entry_id: str | None = None
    name: str | None = None
    external_ip: str | None = None
    external_port: str | None = None
    internal_ip: str | None = None
    internal_port: str | None = None
    ip_protocol: str | None = None


def protocol_of(value: str) -> str:
    """IpProtocol as stored: tcp, udp or any (ECS takes them in any case: TCP, Any, ...)."""
    protocol = value.strip().lower()
    if protocol not in PROTOCOLS:
        raise errors.invalid_protocal_value_not_supported(
            f"The specified IpProtocol {value[:16]!r} is not supported; use tcp, udp or any."
        )
    return protocol


def _port_range(field: str, value: str) -> tuple[int, int]:
    """A port ("80") or a range ("1000/1010") as (first, last)."""
    parts = value.strip().split("/")
    numbers = [int(p) for p in parts if p.isdigit()]
    if len(parts) not in (1, 2) or len(numbers) != len(parts) or not all(1 <= n <= 65535 for n in numbers):
        raise errors.invalid_malformed(
            field,
            f"The specified {field} {value[:16]!r} is not a valid port: 1-65535, or a range such as 1000/1010.",
        )
    if len(numbers) == 2 and numbers[0] >= numbers[1]:
        raise errors.invalid_malformed(
            field, f"The {field} range {value!r} must go from a lower port to a higher one."
        )
    return numbers[0], numbers[-1]


def check_ports(protocol: str, external: str, internal: str) -> tuple[str, str]:
    """The ports as stored: "any" on both sides with protocol any, else ports or equal ranges."""
    if protocol == ANY or ANY in (external.lower(), internal.lower()):
        if protocol != ANY or external.lower() != ANY or internal.lower() != ANY:
            # the first port that disagrees with the protocol
            wrong = "ExternalPort" if (external.lower() == ANY) != (protocol == ANY) else "InternalPort"
            raise errors.invalid_malformed(
                wrong, 'IpProtocol any takes ExternalPort and InternalPort "any", and only it does.'
            )
        return ANY, ANY
    outside, inside = _port_range("ExternalPort", external), _port_range("InternalPort", internal)
    if outside[1] - outside[0] != inside[1] - inside[0]:
        raise errors.invalid_malformed(
            "InternalPort", "ExternalPort and InternalPort ranges must hold as many ports as each other."
        )
    return external.strip(), internal.strip()


def _ports(value: str) -> tuple[int, int]:
    """Stored ports as (first, last); "any" is every port."""
    if value == ANY:
        return 1, 65535
    first, _, last = value.partition("/")
    return int(first), int(last or first)


def _overlap(a: str, b: str) -> bool:
    (a1, a2), (b1, b2) = _ports(a), _ports(b)
    return a1 <= b2 and b1 <= a2


def _shares_with_snat(entry: ForwardEntry | Forwarding) -> bool:
    """Whether an SNAT entry may use this DNAT entry's external address too."""
    return entry.ip_protocol != ANY and (
        entry.port_break or _ports(entry.external_port)[1] <= SNAT_PORT_FLOOR
    )


class ForwardEntries(_Table[ForwardEntry]):
    model = ForwardEntry
    table_kind, entry_kind = "ForwardTable", "ForwardEntry"
    default_quota = FORWARD_ENTRIES_PER_TABLE

    @staticmethod
    def _names_table(table_id: str) -> ColumnElement[bool]:
        return NatGateway.forward_table_id == table_id

    def _check(self, s: Session, gateway: NatGateway, wanted: Forwarding, itself: str = "") -> Forwarding:
        """The mapping checked against the gateway, its VPC and its other entries."""
        protocol = protocol_of(wanted.ip_protocol)
        external_ip = _ipv4("ExternalIp", wanted.external_ip)
        internal_ip = _ipv4("InternalIp", wanted.internal_ip)
        external_port, internal_port = check_ports(protocol, wanted.external_port, wanted.internal_port)
        mapping = Forwarding(
            protocol, external_ip, external_port, internal_ip, internal_port, wanted.port_break
        )
        if external_ip not in _gateway_ips(s, gateway):
            raise errors.invalid_ip_not_in_natgw(
                f"The specified ExternalIp {external_ip} is not an EIP associated with {gateway.id}."
            )
        vpc = s.get_one(Vpc, gateway.vpc_id)
        if IPv4Address(internal_ip) not in IPv4Network(vpc.cidr):
            raise errors.forbidden_internal_ip_out_of_vpc_cidr(
                f"The specified InternalIp {internal_ip} is not in the CIDR block {vpc.cidr} of the VPC {vpc.id}."
            )
        snat = snat_ips_of(_snat_entries(s, gateway.id))
        if external_ip in snat and not _shares_with_snat(mapping):
            raise errors.forbidden_external_ip_used_in_snat_table(
                f"The specified ExternalIp {external_ip} is used by an SNAT entry: it forwards only ports up "
                "to 1024, or others with PortBreak, and never with IpProtocol any."
            )
        others = [e for e in _forward_entries(s, gateway.id) if e.id != itself]
        for other in others:
            same_protocol = ANY in (protocol, other.ip_protocol) or protocol == other.ip_protocol
            if not same_protocol:
                continue
            if other.external_ip == external_ip and _overlap(other.external_port, external_port):
                raise errors.invalid_parameter_conflict(
                    f"The forward entry {other.id} already maps {external_ip} {other.ip_protocol} "
                    f"{other.external_port}: an external address, port and protocol map to one place."
                )
            if other.internal_ip == internal_ip and _overlap(other.internal_port, internal_port):
                raise errors.invalid_parameter_conflict(
                    f"The forward entry {other.id} already forwards to {internal_ip} {other.ip_protocol} "
                    f"{other.internal_port}: an internal address, port and protocol take one mapping."
                )
        if not itself and len(others) >= self._quota:
            raise errors.quota_exceeded(f"A forward table has at most {self._quota} entries; it is full.")
        return mapping

    def create(self, scope: Scope, table_id: str, wanted: Forwarding, name: str | None) -> str:
        name = check_name("ForwardEntryName", name)
        with self._db.session() as s:
            gateway = self._gateway(s, scope, table_id)
            mapping = self._check(s, gateway, wanted)
            entry = ForwardEntry(
                id=ids.new_id("forward_entry"),
                nat_gateway_id=gateway.id,
                forward_table_id=gateway.forward_table_id,
                account_id=scope.account_id,
                external_ip=mapping.external_ip,
                external_port=mapping.external_port,
                internal_ip=mapping.internal_ip,
                internal_port=mapping.internal_port,
                ip_protocol=mapping.ip_protocol,
                name=name,
                port_break=mapping.port_break,
                status=AVAILABLE,
                client_token="",
                created_at=self._clock.now(),
            )
            s.add(entry)
            vpc_id = gateway.vpc_id
        self._notify(vpc_id)
        return entry.id

    def modify(
        self,
        scope: Scope,
        table_id: str,
        entry_id: str,
        changes: dict[str, Any],
        name: str | None,
    ) -> None:
        """Change what a DNAT entry maps (`changes`: Forwarding's fields, None for unchanged) or
        its name; the result is checked as a new entry would be."""
        fields = [f.name for f in dataclasses.fields(Forwarding)]
        with self._db.session() as s:
            gateway, entry = self._entry(s, scope, table_id, entry_id)
            current = Forwarding(*(getattr(entry, f) for f in fields))
            wanted = dataclasses.replace(current, **{k: v for k, v in changes.items() if v is not None})
            mapping = self._check(s, gateway, wanted, itself=entry.id)
            for f in fields:
                setattr(entry, f, getattr(mapping, f))
            if name is not None:
                entry.name = check_name("ForwardEntryName", name)
            vpc_id = gateway.vpc_id
        self._notify(vpc_id)

    def describe(self, scope: Scope, f: ForwardFilter) -> list[ForwardEntry]:
        """The entries of the caller's table or gateway that pass the filter, oldest first."""
        return self._listed(
            scope,
            f.forward_table_id,
            f.nat_gateway_id,
            [
                (ForwardEntry.id == f.forward_entry_id, f.forward_entry_id),
                (ForwardEntry.name == f.name, f.name),
                (ForwardEntry.external_ip == f.external_ip, f.external_ip),
                (ForwardEntry.external_port == f.external_port, f.external_port),
                (ForwardEntry.internal_ip == f.internal_ip, f.internal_ip),
                (ForwardEntry.internal_port == f.internal_port, f.internal_port),
                (ForwardEntry.ip_protocol == (f.ip_protocol or "").lower(), f.ip_protocol),
            ],
        )


def ip_uses(s: Session, gateway_id: str, ip: str) -> tuple[bool, bool]:
    """Whether an SNAT entry, and whether a DNAT entry, of the gateway uses this address."""
    snat = snat_ips_of(_snat_entries(s, gateway_id))
    forward = s.scalar(
        select(func.count(ForwardEntry.id)).where(
            ForwardEntry.nat_gateway_id == gateway_id, ForwardEntry.external_ip == ip
        )
    )
    return ip in snat, bool(forward)
