"""The network driver contract: what the agent asks of a host's networking.

The desired state of every VPC on this host is handed over whole (`sync`), and the driver
makes the machine match it: create what is missing, remove what is no longer wanted,
re-apply the firewall where it changed. Every step is idempotent, so a restarted agent
simply calls `sync` again. Addresses and rules are already decided by the domain; the
driver only realises them.

Isolation model (linux driver): each VPC is a network namespace owned by nubes; each
vSwitch a bridge in it holding the vSwitch gateway address; each network interface a
port on that bridge (a tap for a VM, a veth whose peer sits in a test-host namespace).
Security groups become one nftables ruleset per VPC, applied atomically.

What differs between drivers is declared in `capabilities`; the agent never asks which driver
it has. The plain types here (VpcNet, PortNet, ...) are the driver's input: the agent maps the
store's rows to them (nubes.agent.vpcnet); the domain does not know them."""

from __future__ import annotations

import socket
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

METADATA_ADDRESS = "100.100.100.200"
METADATA_PORT = 80


class NetworkError(RuntimeError):
    """The machine could not be brought to the desired network state."""


@dataclass(frozen=True)
class SecurityRule:
    """One security group rule, direction-neutral: `peer_*` is the source of an ingress
    rule and the destination of an egress rule."""

    rule_id: str
    direction: str  # "ingress" | "egress"
    protocol: str  # "tcp" | "udp" | "icmp" | "gre" | "all"
    port_from: int  # -1 for protocols without ports (and for "all")
    port_to: int
    policy: str  # "accept" | "drop"
    priority: int  # 1 (first) .. 100
    peer_cidr: str | None = None  # IPv4 CIDR, e.g. "10.0.0.0/8" or "0.0.0.0/0"
    peer_group_id: str | None = None  # the rule matches addresses of this group's ports
    # The source ports (tcp, udp) a rule also requires; -1/-1: any.
    source_port_from: int = -1
    source_port_to: int = -1


@dataclass(frozen=True)
class SecurityGroupNet:
    group_id: str
    kind: str  # "normal" | "enterprise"
    inner_access: str  # "accept" | "drop": traffic between ports of this group when no rule matches
    rules: tuple[SecurityRule, ...] = ()


@dataclass(frozen=True)
class PortNet:
    """A network interface plugged into a vSwitch."""

    port_id: str  # the ENI id (eni-...)
    vswitch_id: str
    mac: str  # "00:16:3e:xx:xx:xx"
    ip: str  # primary private IPv4
    security_group_ids: tuple[str, ...]
    kind: str = "tap"  # "tap" (a VM's NIC) | "veth" (a test host)
    # For kind "veth": the namespace that holds the other end (as eth0, with `ip`/prefix, default
    # route via the vSwitch gateway). The driver creates and deletes that namespace.
    host_netns: str | None = None
    hostname: str = ""
    # Secondary private IPv4 addresses (AssignPrivateIpAddresses), of the same vSwitch: the port
    # may send from them and answers ARP for them; traffic to them reaches it like to `ip`.
    secondary_ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class VSwitchNet:
    vswitch_id: str
    cidr: str  # "192.168.1.0/24"
    gateway: str  # the address ECS gives the vSwitch's router: the last usable but one (.253 in a /24)


@dataclass(frozen=True)
class PublicMapping:
    """A public address (an EIP or an instance's public IP) mapped 1:1 to a port's private one:
    inbound to `public_ip` is DNAT-ed to `private_ip`, outbound from `private_ip` SNAT-ed to
    `public_ip`, on the uplink."""

    address_id: str  # the EIP's AllocationId (eip-...)
    public_ip: str
    # The primary private address of a port of the VPC; "" for an EIP of a NAT gateway, which is
    # held on the uplink (and shaped) but mapped to nothing: SNAT and DNAT entries use it.
    private_ip: str
    public_cidr: str  # the operator's range the address comes from ("198.18.0.0/24")
    gateway: str = ""  # the range's next hop on the uplink ("" : none, on-link only)
    bandwidth_out: int = 0  # Mbit/s, instance -> internet (0: unshaped)
    bandwidth_in: int = 0  # Mbit/s, internet -> instance (0: unshaped)
    answers_ping: bool = False  # a NAT gateway's address with IcmpReplyEnabled: echo requests answered


@dataclass(frozen=True)
class RouteNet:
    """A custom route entry of a route table, as the VPC router applies it: traffic from the
    vSwitches that use the table (`sources`, their CIDR blocks) to `destination` is sent to the
    port at `next_hop_ip` (an appliance: an instance or network interface of the VPC)."""

    route_table_id: str
    destination: str  # "0.0.0.0/0", "192.168.0.0/16"
    next_hop_port_id: str
    next_hop_ip: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class SnatRule:
    """An SNAT entry of a NAT gateway: what leaves by the uplink from `sources` (CIDR blocks of
    the VPC) takes one of `public_ips` (public addresses of the VPC held for NAT gateways), the
    same one for a given source address. A port with its own public address keeps it (ECS: an
    EIP takes precedence over SNAT)."""

    entry_id: str  # snat-...
    sources: tuple[str, ...]
    public_ips: tuple[str, ...]


@dataclass(frozen=True)
class DnatRule:
    """A forward (DNAT) entry of a NAT gateway: what arrives on the uplink for `public_ip`
    (and, unless `protocol` is "any", `protocol` to `public_ports`) goes to `private_ip`
    (`private_ports`). Ports are "80" or a range "1000-1010" of the same length on both sides;
    "" for protocol any (every port, unchanged)."""

    entry_id: str  # fwd-...
    protocol: str  # "tcp" | "udp" | "any"
    public_ip: str
    public_ports: str
    private_ip: str
    private_ports: str


@dataclass(frozen=True)
class VpcNet:
    vpc_id: str
    cidr: str
    vswitches: tuple[VSwitchNet, ...] = ()
    ports: tuple[PortNet, ...] = ()
    security_groups: tuple[SecurityGroupNet, ...] = ()  # every group a port of this VPC uses
    public: tuple[PublicMapping, ...] = ()  # 1:1 NAT of the VPC's ports on the uplink
    routes: tuple[RouteNet, ...] = ()  # custom route entries whose next hop is a port here
    snat: tuple[SnatRule, ...] = ()  # the SNAT entries of the VPC's NAT gateways
    dnat: tuple[DnatRule, ...] = ()  # their forward entries


@dataclass(frozen=True)
class Capabilities:
    """What differs between network drivers, for the agent to read instead of asking which
    driver it has."""

    real_isolation: bool  # traffic is really filtered by the kernel (else the rules are only rendered)
    dhcp: bool  # guests get their addresses by DHCP on their vSwitch
    metadata: bool  # `open_metadata_socket` gives a socket (else None: no guest could reach one)


@dataclass(frozen=True)
class PortCounters:
    """A port's traffic counters as the guest sees them (rx: what reached the guest, tx: what
    it sent), monotonic while the port exists; a new port (tap) starts from zero."""

    rx_bytes: int = 0
    tx_bytes: int = 0
    rx_packets: int = 0
    tx_packets: int = 0
    rx_dropped: int = 0
    tx_dropped: int = 0


@dataclass
class ActualNetwork:
    """What exists on the host, as the driver finds it."""

    vpcs: dict[str, set[str]] = field(default_factory=dict)  # vpc_id -> vswitch ids
    ports: dict[str, str] = field(default_factory=dict)  # port_id -> vpc_id


class NetworkDriver(ABC):
    capabilities: Capabilities

    @abstractmethod
    def sync(self, desired: list[VpcNet]) -> None:
        """Make the host match `desired` exactly: every VPC, vSwitch and port in it exists and
        is configured (addresses, DHCP entries, firewall); every nubes-owned VPC, vSwitch, port
        or test-host namespace not in it is removed. Idempotent; safe after a crash."""

    @abstractmethod
    def sync_vpc(self, vpc: VpcNet) -> None:
        """Like `sync`, for one VPC only (the others are left alone)."""

    @abstractmethod
    def remove_vpc(self, vpc_id: str) -> None:
        """Remove a VPC and everything in it. Removing one that does not exist succeeds."""

    @abstractmethod
    def actual(self) -> ActualNetwork:
        """The nubes-owned VPCs, vSwitches and ports that exist now."""

    @abstractmethod
    def tap_name(self, port_id: str) -> str:
        """The device name a VM's tap for this port has (QEMU opens it by this name)."""

    @abstractmethod
    def netns_name(self, vpc_id: str) -> str:
        """The network namespace of a VPC (for `ip netns exec`)."""

    @abstractmethod
    def open_metadata_socket(self, vpc_id: str) -> socket.socket | None:
        """A listening TCP socket bound to 100.100.100.200:80 inside the VPC's namespace, for
        the metadata service; None where the driver has no real network (fake)."""

    @abstractmethod
    def port_counters(self, vpc_id: str, port_ids: list[str]) -> dict[str, PortCounters]:
        """The traffic counters of these ports of the VPC now (linux: its taps' statistics in
        the VPC namespace, read in one call), for the monitoring sampler. A port that does not
        exist here is left out; so are all of them when the VPC has no namespace here."""
