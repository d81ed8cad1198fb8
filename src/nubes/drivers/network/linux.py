"""The linux network driver: VPCs as network namespaces, enforced by the kernel.

Layout on the host (nothing of a VPC ever appears in the host's own namespace):

* VPC  -> network namespace `<prefix>-<vpc_id>` (`ip netns`), the VPC's router: `lo` up
  with 100.100.100.200/32 (the metadata address), ip_forward=1 (vSwitches of a VPC route to
  each other), net.bridge.bridge-nf-call-iptables=1 (bridged IPv4 goes through the inet
  `forward` hook, where the security groups are), IPv6 disabled. `lo`'s ifalias marks the
  namespace as this driver's (`nubes-vpc:<prefix>:<vpc_id>`).
* vSwitch -> a bridge `nbr<hash>` in the VPC namespace holding the gateway address
  (gateway/prefix of the vSwitch CIDR), a fixed MAC, STP off, and one dnsmasq (DHCP only,
  `--port=0`) with a static lease for each of its ports and the gateway as router.
* port, kind "tap" -> a persistent tap `ntp<hash>` (see `tap_name`) created INSIDE the VPC
  namespace, enslaved to the bridge, up. The VM process must open it from inside that
  namespace: start QEMU under `ip netns exec <netns_name(vpc)> qemu-system-x86_64 ...
  -netdev tap,id=n0,ifname=<tap_name(port)>,script=no,downscript=no` (or have a helper
  thread `setns()` into it before opening /dev/net/tun). The tap is single-queue and
  persistent: it survives the VM and is only removed when the port leaves the desired state.
* port, kind "veth" (a test host) -> a veth pair created directly in its two namespaces:
  `nve<hash>` on the bridge, `eth0` in namespace `port.host_netns` (created, marked and
  removed by the driver) with the port's MAC, IP/prefix, `lo` up and a default route via
  the vSwitch gateway.
* the firewall -> `nft.render_ruleset(vpc)` loaded with `nft -f -` inside the namespace.
* custom route entries (`vpc.routes`, next hop a port: an appliance) -> policy routing in the
  namespace (routing.py): a kernel table per route table with its routes and a `throw` per
  vSwitch CIDR, and `ip rule from <vSwitch CIDR> lookup <table>` for the vSwitches that use it;
  the ruleset lets the appliance answer for its routes' destinations and applies its ingress
  rules to what is routed to it.
* public addresses (`vpc.public`, only with an `uplink`) -> the VPC's leg on the uplink: a
  macvlan `npb<hash>` (mode bridge) of the operator's uplink interface, created directly INSIDE
  the VPC namespace (it never exists in the host's), with a fixed MAC, arp_ignore=1 (it answers
  ARP for its public addresses only), each public address as `ip/<range prefix>` and, when the
  range has a gateway, the namespace's default route via it. The 1:1 NAT and the uplink's
  filtering are in the ruleset (see nft.py). The leg goes when the VPC has no public address
  left. Each address's bandwidth is shaped both ways with tc (shaping.py) on the leg and an
  ifb `nib<hash>` beside it. The host namespace keeps no route, address or device of any VPC; the uplink itself is
  only used as the macvlan's parent (it must be up), never configured.

The kernel is the truth: devices carry their ids (and a hash of their configuration) in
their ifalias, so `actual()` and `sync()` read `ip -j` output, not a file. `run_dir/<vpc_id>/`
holds only what the kernel cannot: dnsmasq pid/hosts/lease/log files and the list of
test-host namespaces created for the VPC (so they can be found again for removal).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import shutil
import socket
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nubes.drivers.network import names, nft, routing, shaping, testhosts
from nubes.drivers.network.base import (
    METADATA_ADDRESS,
    METADATA_PORT,
    ActualNetwork,
    Capabilities,
    NetworkDriver,
    NetworkError,
    PortCounters,
    PortNet,
    VpcNet,
    VSwitchNet,
)
from nubes.drivers.network.dnsmasq import DhcpServers
from nubes.drivers.network.proc import (
    CommandError,
    gratuitous_arp,
    in_netns,
    ip,
    ip_batch,
    ip_json,
    list_netns,
    netns_exec,
    netns_exists,
    run,
    write_sysctls,
)

log = logging.getLogger(__name__)

VPC_SYSCTLS = {
    "net.ipv6.conf.all.disable_ipv6": "1",
    "net.ipv6.conf.default.disable_ipv6": "1",
    "net.ipv4.ip_forward": "1",
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.ipv4.conf.all.send_redirects": "0",
    "net.ipv4.conf.default.send_redirects": "0",
}
STATE_FILE = "state.json"


@dataclass
class _Link:
    name: str
    kind: str
    alias: str
    master: str
    up: bool
    mac: str
    addrs: set[str] = field(default_factory=set)  # "a.b.c.d/len"


def _links(netns: str) -> dict[str, _Link]:
    out: dict[str, _Link] = {}
    for entry in ip_json("-d", "addr", "show", netns=netns):
        info: dict[str, Any] = entry.get("linkinfo") or {}
        kind = str(info.get("info_kind", ""))
        if kind == "tun":
            kind = str((info.get("info_data") or {}).get("type", "tun"))
        addrs = {
            f"{a['local']}/{a['prefixlen']}" for a in entry.get("addr_info", []) if a.get("family") == "inet"
        }
        out[entry["ifname"]] = _Link(
            name=entry["ifname"],
            kind=kind,
            alias=str(entry.get("ifalias", "")),
            master=str(entry.get("master", "")),
            up="UP" in entry.get("flags", []),
            mac=str(entry.get("address", "")).lower(),
            addrs=addrs,
        )
    return out


def _fingerprint(*values: object) -> str:
    return names.short_hash(json.dumps([str(v) for v in values]), 10)


def _vswitch_config(vsw: VSwitchNet) -> str:
    return _fingerprint(vsw.cidr, vsw.gateway)


def _port_config(port: PortNet, vsw: VSwitchNet) -> str:
    if port.kind == "tap":
        return _fingerprint("tap")
    return _fingerprint("veth", port.mac.lower(), port.ip, vsw.cidr, vsw.gateway, port.host_netns)


class LinuxNetworkDriver(NetworkDriver):
    """Real networking with namespaces, bridges, taps/veths, nftables and dnsmasq (root).

    `run_dir` holds per-VPC runtime files (`run_dir/<vpc_id>/`); `prefix` starts the name of
    every VPC namespace (`<prefix>-<vpc_id>`) and is part of the ownership marks, so drivers
    with different prefixes never touch each other's VPCs. Thread-safe (one lock)."""

    capabilities = Capabilities(real_isolation=True, dhcp=True, metadata=True)

    def __init__(self, run_dir: Path, prefix: str = "nubes", uplink: str = "") -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", prefix) or ":" in prefix:
            raise ValueError(f"bad namespace prefix {prefix!r}")
        if uplink and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,14}", uplink):
            raise ValueError(f"bad uplink interface name {uplink!r}")
        self.run_dir = Path(run_dir).resolve()
        self.prefix = prefix
        # The operator's interface to the public network ("": no public data plane; public
        # mappings handed over are then ignored, and nothing is created for them).
        self.uplink = uplink
        self._host_seed = socket.gethostname()
        # vpc_id -> digest of the ruleset this object last loaded. Empty after a restart, so
        # the first sync of each VPC always re-applies its ruleset.
        self._applied: dict[str, str] = {}
        self._shaped: dict[str, str] = {}  # vpc_id -> digest of the tc commands last applied
        self._lock = threading.RLock()
        self._dhcp = DhcpServers(self.vpc_dir, self.bridge_name)

    # ---- names ----------------------------------------------------------------------------

    def netns_name(self, vpc_id: str) -> str:
        return names.netns_name(self.prefix, vpc_id)

    def tap_name(self, port_id: str) -> str:
        return names.tap_name(port_id)

    def veth_name(self, port_id: str) -> str:
        return names.veth_name(port_id)

    def bridge_name(self, vswitch_id: str) -> str:
        return names.bridge_name(vswitch_id)

    def vpc_dir(self, vpc_id: str) -> Path:
        return self.run_dir / vpc_id

    def dnsmasq_files(self, vpc_id: str, vswitch_id: str) -> dict[str, Path]:
        return self._dhcp.files(vpc_id, vswitch_id)

    def dnsmasq_pid(self, vpc_id: str, vswitch_id: str) -> int | None:
        """The pid of the vSwitch's dnsmasq if it runs (for tests and diagnostics)."""
        return self._dhcp.pid(vpc_id, vswitch_id)

    def render(self, vpc: VpcNet) -> str:
        return nft.render_ruleset(vpc, tap_name=self.tap_name, veth_name=self.veth_name)

    def public_device(self, vpc_id: str) -> str:
        return names.public_device(vpc_id)

    # ---- discovery ------------------------------------------------------------------------

    def _owned_vpcs(self) -> dict[str, str]:
        """vpc_id -> namespace, for the VPC namespaces of this driver that exist."""
        found: dict[str, str] = {}
        start = self.prefix + "-"
        # test hosts we know of need no look (they may share the prefix: `<prefix>-host-eni-...`)
        hosts = {
            str(h) for vpc_id in self._state_dirs() for h in self._read_state(vpc_id).get("host_netns", [])
        }
        for ns in list_netns():
            if not ns.startswith(start) or ns in hosts:
                continue
            vpc_id = ns[len(start) :]
            alias = self._lo_alias(ns)
            if alias == names.vpc_alias(self.prefix, vpc_id) or (
                alias == "" and self.vpc_dir(vpc_id).is_dir()
            ):
                found[vpc_id] = ns
        return found

    def _lo_alias(self, ns: str) -> str | None:
        try:
            entries = ip_json("link", "show", "dev", "lo", netns=ns)
        except CommandError:
            return None
        return str(entries[0].get("ifalias", "")) if entries else None

    def actual(self) -> ActualNetwork:
        with self._lock:
            result = ActualNetwork()
            for vpc_id, ns in self._owned_vpcs().items():
                vswitches: set[str] = set()
                try:
                    links = _links(ns)
                except CommandError:
                    continue
                for link in links.values():
                    parts = names.parse_alias(link.alias)
                    if parts[0] == names.VSWITCH_MARK and len(parts) >= 2:
                        vswitches.add(parts[1])
                    elif parts[0] == names.PORT_MARK and len(parts) >= 2:
                        result.ports[parts[1]] = vpc_id
                result.vpcs[vpc_id] = vswitches
            return result

    # ---- sync -----------------------------------------------------------------------------

    def sync(self, desired: list[VpcNet]) -> None:
        with self._lock:
            wanted = {vpc.vpc_id for vpc in desired}
            errors: list[str] = []
            stale = set(self._owned_vpcs()) | self._state_dirs()
            for vpc_id in sorted(stale - wanted):
                try:
                    self._remove_vpc(vpc_id)
                except Exception as exc:  # keep going: one broken VPC must not block the rest
                    log.exception("removing VPC %s failed", vpc_id)
                    errors.append(f"remove {vpc_id}: {exc}")
            for vpc in desired:
                try:
                    self._sync_vpc(vpc)
                except Exception as exc:
                    log.exception("syncing VPC %s failed", vpc.vpc_id)
                    errors.append(f"sync {vpc.vpc_id}: {exc}")
            if errors:
                raise NetworkError("; ".join(errors))

    def sync_vpc(self, vpc: VpcNet) -> None:
        with self._lock:
            self._sync_vpc(vpc)

    def remove_vpc(self, vpc_id: str) -> None:
        with self._lock:
            self._remove_vpc(vpc_id)

    def _state_dirs(self) -> set[str]:
        if not self.run_dir.is_dir():
            return set()
        return {p.parent.name for p in self.run_dir.glob(f"*/{STATE_FILE}")}

    def _read_state(self, vpc_id: str) -> dict[str, Any]:
        try:
            data = json.loads((self.vpc_dir(vpc_id) / STATE_FILE).read_text())
            return data if isinstance(data, dict) else {}
        except (FileNotFoundError, ValueError):
            return {}

    def _write_state(self, vpc_id: str, state: dict[str, Any]) -> None:
        path = self.vpc_dir(vpc_id) / STATE_FILE
        text = json.dumps(state, sort_keys=True, indent=1)
        if path.exists() and path.read_text() == text:
            return
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def _sync_vpc(self, vpc: VpcNet) -> None:
        nft.validate_vpc(vpc)  # ValueError: the desired state itself is wrong
        if vpc.public and not self.uplink:
            log.warning("VPC %s has public addresses but nubes has no --uplink: not programmed", vpc.vpc_id)
            vpc = replace(vpc, public=())
        ns = self.netns_name(vpc.vpc_id)
        vpc_dir = self.vpc_dir(vpc.vpc_id)
        vpc_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(vpc_dir, 0o755)
        state = self._read_state(vpc.vpc_id)
        known_hosts: set[str] = set(state.get("host_netns", []))
        wanted_hosts = {p.host_netns for p in vpc.ports if p.kind == "veth" and p.host_netns}
        # Record the test-host namespaces before creating any, so a crash cannot orphan one.
        self._write_state(vpc.vpc_id, {"host_netns": sorted(known_hosts | wanted_hosts)})

        self._ensure_vpc_namespace(vpc.vpc_id, ns)
        # Firewall first: a port attached afterwards is filtered from its first frame.
        self._apply_ruleset(vpc, ns)

        vswitches = {v.vswitch_id: v for v in vpc.vswitches}
        links = _links(ns)
        self._ensure_vpc_links(ns, links)
        batch: list[str] = []
        for vsw in vpc.vswitches:
            batch += self._bridge_commands(vsw, links)
        ip_batch(batch, netns=ns)

        stale_hosts = set(known_hosts - wanted_hosts)
        batch = []
        host_setup: list[PortNet] = []
        wanted_devices: set[str] = set()
        for port in vpc.ports:
            port_vsw = vswitches.get(port.vswitch_id)
            if port_vsw is None:
                raise NetworkError(f"port {port.port_id} names unknown vSwitch {port.vswitch_id}")
            dev = names.port_device(port.port_id, port.kind)
            wanted_devices.add(dev)
            commands, recreate = self._port_commands(vpc.vpc_id, ns, port, port_vsw, links)
            batch += commands
            if recreate and port.kind == "veth":
                host_setup.append(port)
        # Ports no longer wanted (or of the other kind): delete the device (a veth takes its
        # peer with it at once).
        for link in links.values():
            parts = names.parse_alias(link.alias)
            ours = parts[0] == names.PORT_MARK or link.name.startswith(names.PORT_DEVICE_PREFIXES)
            if ours and link.name not in wanted_devices:
                batch.insert(0, f"link del dev {link.name}")
        if batch:
            # veths of recreated test hosts must not meet a stale namespace of the same name
            for port in host_setup:
                assert port.host_netns
                testhosts.prepare_host_netns(self.prefix, vpc.vpc_id, ns, port)
            ip_batch(batch, netns=ns)
            for port in host_setup:
                testhosts.configure_host(port, vswitches[port.vswitch_id])
            ip_batch(
                [
                    f"link set dev {self.veth_name(p.port_id)} alias "
                    + names.port_alias(p.port_id, _port_config(p, vswitches[p.vswitch_id]))
                    for p in host_setup
                ],
                netns=ns,
            )

        for host in sorted(stale_hosts):
            testhosts.delete_host_netns(self.prefix, vpc.vpc_id, host)

        wanted_bridges = {self.bridge_name(v.vswitch_id) for v in vpc.vswitches}
        batch = []
        for link in links.values():
            parts = names.parse_alias(link.alias)
            ours = parts[0] == names.VSWITCH_MARK or link.name.startswith(names.BRIDGE_PREFIX)
            if ours and link.name not in wanted_bridges:
                if parts[0] == names.VSWITCH_MARK and len(parts) >= 2:
                    self._dhcp.stop(vpc.vpc_id, parts[1])
                batch.append(f"link del dev {link.name}")
        ip_batch(batch, netns=ns)

        self._dhcp.sync(vpc, ns)
        self._sync_routes(vpc, ns)
        self._write_state(vpc.vpc_id, {"host_netns": sorted(wanted_hosts)})
        # Last: a missing or broken uplink fails the sync (retried) but never the VPC's own network.
        self._sync_public(vpc, ns, links)

    def _sync_routes(self, vpc: VpcNet, ns: str) -> None:
        """The custom routes of the VPC's route tables, by policy routing (routing.py)."""
        actual = routing.parse(
            ip_json("rule", "show", netns=ns), ip_json("route", "show", "table", "all", netns=ns)
        )
        ip_batch(routing.commands(actual, routing.plan(vpc)), netns=ns)

    # ---- namespace ------------------------------------------------------------------------

    def _ensure_vpc_namespace(self, vpc_id: str, ns: str) -> None:
        if not netns_exists(ns):
            ip("netns", "add", ns)
        write_sysctls(ns, VPC_SYSCTLS)

    def _ensure_vpc_links(self, ns: str, links: dict[str, _Link]) -> None:
        lo = links.get("lo")
        vpc_id = ns[len(self.prefix) + 1 :]
        commands = []
        if lo is None or lo.alias != names.vpc_alias(self.prefix, vpc_id):
            commands.append(f"link set dev lo alias {names.vpc_alias(self.prefix, vpc_id)}")
        if lo is None or not lo.up:
            commands.append("link set dev lo up")
        if lo is None or f"{METADATA_ADDRESS}/32" not in lo.addrs:
            commands.append(f"addr replace {METADATA_ADDRESS}/32 dev lo")
        ip_batch(commands, netns=ns)

    def _apply_ruleset(self, vpc: VpcNet, ns: str) -> None:
        text = self.render(vpc)
        digest = nft.ruleset_digest(text)
        if self._applied.get(vpc.vpc_id) == digest:
            return
        self._applied.pop(vpc.vpc_id, None)
        netns_exec(ns, ["nft", "-f", "-"], input=text)
        self._applied[vpc.vpc_id] = digest

    def applied_digest(self, vpc_id: str) -> str | None:
        """The digest of the ruleset this driver object last loaded for a VPC (tests)."""
        return self._applied.get(vpc_id)

    # ---- bridges --------------------------------------------------------------------------

    def _bridge_commands(self, vsw: VSwitchNet, links: dict[str, _Link]) -> list[str]:
        br = self.bridge_name(vsw.vswitch_id)
        net = ipaddress.IPv4Network(vsw.cidr, strict=False)
        address = f"{vsw.gateway}/{net.prefixlen}"
        alias = names.vswitch_alias(vsw.vswitch_id, _vswitch_config(vsw))
        mac = names.bridge_mac(vsw.vswitch_id)
        link = links.get(br)
        if link is None:
            return [
                f"link add name {br} address {mac} type bridge stp_state 0 forward_delay 0 nf_call_iptables 1",
                f"addr add {address} dev {br}",
                f"link set dev {br} alias {alias} up",
            ]
        commands = []
        if link.alias != alias or link.addrs != {address}:
            commands.append(f"addr flush dev {br}")
            commands.append(f"addr add {address} dev {br}")
            commands.append(f"link set dev {br} alias {alias}")
        if link.mac != mac:
            commands.append(f"link set dev {br} address {mac}")
        if not link.up:
            commands.append(f"link set dev {br} up")
        return commands

    # ---- ports ----------------------------------------------------------------------------

    def _port_commands(
        self, vpc_id: str, ns: str, port: PortNet, vsw: VSwitchNet, links: dict[str, _Link]
    ) -> tuple[list[str], bool]:
        """`ip -n <vpc ns>` commands making a port right; and whether it is (re)created."""
        dev = names.port_device(port.port_id, port.kind)
        br = self.bridge_name(vsw.vswitch_id)
        alias = names.port_alias(port.port_id, _port_config(port, vsw))
        link = links.get(dev)
        commands: list[str] = []
        if link is not None and link.alias == alias:
            if link.master != br:
                commands.append(f"link set dev {dev} master {br}")
            if not link.up:
                commands.append(f"link set dev {dev} up")
            return commands, False
        if link is not None and port.kind != "veth":
            commands.append(f"link del dev {dev}")  # (a veth is deleted by testhosts.prepare_host_netns)
        if port.kind == "tap":
            commands.append(f"tuntap add dev {dev} mode tap")
        elif port.kind == "veth":
            if not port.host_netns:
                raise NetworkError(f"veth port {port.port_id} has no host_netns")
            commands.append(
                f"link add name {dev} type veth peer name eth0 address {port.mac.lower()} netns {port.host_netns}"
            )
        else:
            raise NetworkError(f"port {port.port_id}: unknown kind {port.kind!r}")
        if port.kind == "tap":
            commands.append(f"link set dev {dev} alias {alias} master {br} up")
        else:  # the alias (= "done") is set once the test host is configured too
            commands.append(f"link set dev {dev} master {br} up")
        return commands, True

    # ---- public addresses -----------------------------------------------------------------

    def _sync_public(self, vpc: VpcNet, ns: str, links: dict[str, _Link]) -> None:
        """The VPC's leg on the uplink, its public addresses and default route (see the module
        doc); removed when the VPC has no public address."""
        dev = self.public_device(vpc.vpc_id)
        ifb = names.shaping_device(vpc.vpc_id)
        link = links.get(dev)
        if not vpc.public:
            ip_batch([f"link del dev {d}" for d in (dev, ifb) if d in links], netns=ns)
            self._shaped.pop(vpc.vpc_id, None)
            return
        mac = names.public_mac(f"{self._host_seed}:{self.prefix}:{vpc.vpc_id}")
        alias = names.public_alias(_fingerprint(self.uplink, mac))
        if link is not None and (link.alias != alias or link.kind != "macvlan"):
            ip_batch([f"link del dev {dev}"], netns=ns)
            link = None
        batch: list[str] = []
        have: set[str] = set()
        if ifb not in links:
            batch.append(f"link add name {ifb} type ifb")
            self._shaped.pop(vpc.vpc_id, None)
        if ifb not in links or not links[ifb].up:
            batch.append(f"link set dev {ifb} up")
        if link is None:
            self._shaped.pop(vpc.vpc_id, None)
            create = ["link", "add", "link", self.uplink, "name", dev, "address", mac, "netns", ns]
            ip(*create, "type", "macvlan", "mode", "bridge")
            write_sysctls(
                ns,
                {
                    f"net.ipv4.conf.{dev}.arp_ignore": "1",
                    f"net.ipv4.conf.{dev}.arp_announce": "2",
                    f"net.ipv4.conf.{dev}.promote_secondaries": "1",
                },
            )
            batch.append(f"link set dev {dev} alias {alias} up")
        else:
            have = link.addrs
            if not link.up:
                batch.append(f"link set dev {dev} up")
        want = {
            f"{m.public_ip}/{ipaddress.IPv4Network(m.public_cidr, strict=False).prefixlen}"
            for m in vpc.public
        }
        added = sorted(want - have)
        batch += [f"addr add {a} dev {dev}" for a in added]
        batch += [f"addr del {a} dev {dev}" for a in sorted(have - want)]
        ip_batch(batch, netns=ns)
        if added:  # an address may have been elsewhere a moment ago (another VPC, another host)
            gratuitous_arp(ns, dev, mac, [a.split("/")[0] for a in added])
        gateways = sorted(
            {m.gateway for m in vpc.public if m.gateway}, key=lambda g: int(ipaddress.IPv4Address(g))
        )
        routes = ip_json("route", "show", "default", netns=ns)
        current = (str(routes[0].get("gateway", "")), str(routes[0].get("dev", ""))) if routes else None
        if gateways and current != (gateways[0], dev):
            ip("route", "replace", "default", "via", gateways[0], "dev", dev, "onlink", netns=ns)
        elif not gateways and current is not None:
            ip("route", "del", "default", netns=ns)
        self._apply_shaping(vpc, ns, dev, ifb)

    def _apply_shaping(self, vpc: VpcNet, ns: str, dev: str, ifb: str) -> None:
        """Each public address's bandwidth, both ways (shaping.py), rebuilt when it changed."""
        lines = shaping.render_tc(vpc.public, dev, ifb)
        digest = _fingerprint(*lines)
        if self._shaped.get(vpc.vpc_id) == digest:
            return
        self._shaped.pop(vpc.vpc_id, None)
        for args in shaping.teardown(dev, ifb):
            run(["tc", "-n", ns, *args], check=False)
        if lines:
            run(["tc", "-n", ns, "-batch", "-"], input="\n".join(lines) + "\n")
        self._shaped[vpc.vpc_id] = digest

    def shaping_digest(self, vpc_id: str) -> str | None:
        """The digest of the shaping this driver object last applied for a VPC (tests)."""
        return self._shaped.get(vpc_id)

    # ---- removal --------------------------------------------------------------------------

    def _remove_vpc(self, vpc_id: str) -> None:
        ns = self.netns_name(vpc_id)
        self._dhcp.kill_all(vpc_id)
        for host in self._read_state(vpc_id).get("host_netns", []):
            testhosts.delete_host_netns(self.prefix, vpc_id, str(host))
        if netns_exists(ns):
            try:
                links = _links(ns)
            except CommandError:
                links = {}
            # veths left (a test host we lost track of) go explicitly, so their other ends do
            # not linger; taps and bridges go with the namespace when the kernel reaps it (at
            # once, unless something still holds it: a VM process inside, an open metadata
            # socket). Deleting each device here would cost ~25 ms apiece.
            batch = [f"link del dev {name}" for name, link in links.items() if link.kind == "veth"]
            try:
                ip_batch(batch, netns=ns)
            except CommandError:
                log.warning("deleting devices of %s failed", ns, exc_info=True)
            run(["ip", "netns", "delete", ns], check=False)
            if netns_exists(ns):
                raise NetworkError(f"could not delete namespace {ns}")
        self._applied.pop(vpc_id, None)
        self._shaped.pop(vpc_id, None)
        shutil.rmtree(self.vpc_dir(vpc_id), ignore_errors=True)

    # ---- counters -------------------------------------------------------------------------

    def port_counters(self, vpc_id: str, port_ids: list[str]) -> dict[str, PortCounters]:
        """From `ip -s -j link show` in the VPC namespace (one command for all its taps). A tap
        counts from the host's side: what it receives, the guest sent."""
        ns = self.netns_name(vpc_id)
        if not port_ids or not netns_exists(ns):
            return {}
        taps = {self.tap_name(port_id): port_id for port_id in port_ids}
        try:
            entries = ip_json("-s", "link", "show", netns=ns)
        except CommandError:
            return {}  # the namespace went meanwhile
        found: dict[str, PortCounters] = {}
        for entry in entries:
            port_id = taps.get(str(entry.get("ifname", "")))
            if port_id is None:
                continue
            stats = entry.get("stats64") or entry.get("stats") or {}
            rx, tx = stats.get("rx") or {}, stats.get("tx") or {}
            found[port_id] = PortCounters(
                rx_bytes=int(tx.get("bytes", 0)),
                tx_bytes=int(rx.get("bytes", 0)),
                rx_packets=int(tx.get("packets", 0)),
                tx_packets=int(rx.get("packets", 0)),
                rx_dropped=int(tx.get("dropped", 0)),
                tx_dropped=int(rx.get("dropped", 0)),
            )
        return found

    # ---- metadata -------------------------------------------------------------------------

    def open_metadata_socket(self, vpc_id: str) -> socket.socket | None:
        """A TCP socket listening on 100.100.100.200:80 inside the VPC namespace (created by a
        thread that setns()'d into it; usable from any thread). The caller owns it and must
        close it when the VPC goes: an open socket keeps the deleted namespace (and its
        bridges and taps, cut off from everything) alive in the kernel until it is closed."""
        ns = self.netns_name(vpc_id)
        if not netns_exists(ns):
            raise NetworkError(f"VPC {vpc_id} has no namespace on this host")

        def make() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((METADATA_ADDRESS, METADATA_PORT))
                sock.listen(128)
            except BaseException:
                sock.close()
                raise
            return sock

        return in_netns(ns, make)
