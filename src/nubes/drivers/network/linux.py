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
import signal
import socket
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any

from nubes.drivers.network import names, nft
from nubes.drivers.network.base import (
    METADATA_ADDRESS,
    METADATA_PORT,
    ActualNetwork,
    Capabilities,
    NetworkDriver,
    PortNet,
    VpcNet,
    VSwitchNet,
)
from nubes.drivers.network.proc import (
    CommandError,
    in_netns,
    ip,
    ip_batch,
    ip_json,
    list_netns,
    netns_exec,
    netns_exists,
    process_alive,
    process_cmdline,
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
HOST_SYSCTLS = {
    "net.ipv6.conf.all.disable_ipv6": "1",
    "net.ipv6.conf.default.disable_ipv6": "1",
}
DHCP_LEASE_TIME = "12h"
STATE_FILE = "state.json"


class NetworkError(RuntimeError):
    pass


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


def _hostname(port: PortNet) -> str:
    name = re.sub(r"[^A-Za-z0-9-]", "-", port.hostname).strip("-")[:63]
    return name


class LinuxNetworkDriver(NetworkDriver):
    """Real networking with namespaces, bridges, taps/veths, nftables and dnsmasq (root).

    `run_dir` holds per-VPC runtime files (`run_dir/<vpc_id>/`); `prefix` starts the name of
    every VPC namespace (`<prefix>-<vpc_id>`) and is part of the ownership marks, so drivers
    with different prefixes never touch each other's VPCs. Thread-safe (one lock)."""

    capabilities = Capabilities(real_isolation=True, dhcp=True, metadata=True)

    def __init__(self, run_dir: Path, prefix: str = "nubes") -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", prefix) or ":" in prefix:
            raise ValueError(f"bad namespace prefix {prefix!r}")
        self.run_dir = Path(run_dir).resolve()
        self.prefix = prefix
        # vpc_id -> digest of the ruleset this object last loaded. Empty after a restart, so
        # the first sync of each VPC always re-applies its ruleset.
        self._applied: dict[str, str] = {}
        self._lock = threading.RLock()

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
        base = self.vpc_dir(vpc_id)
        return {k: base / f"dnsmasq-{vswitch_id}.{k}" for k in ("pid", "hosts", "leases", "log")}

    def render(self, vpc: VpcNet) -> str:
        return nft.render_ruleset(vpc, tap_name=self.tap_name, veth_name=self.veth_name)

    # ---- discovery ------------------------------------------------------------------------

    def _owned_vpcs(self) -> dict[str, str]:
        """vpc_id -> namespace, for the VPC namespaces of this driver that exist."""
        found: dict[str, str] = {}
        start = self.prefix + "-"
        # test hosts we know of need no look (they may share the prefix: `<prefix>-host-eni-...`)
        hosts = {str(h) for vpc_id in self._state_dirs() for h in self._read_state(vpc_id).get("host_netns", [])}
        for ns in list_netns():
            if not ns.startswith(start) or ns in hosts:
                continue
            vpc_id = ns[len(start):]
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
                self._prepare_host_netns(vpc.vpc_id, ns, port)
            ip_batch(batch, netns=ns)
            for port in host_setup:
                self._configure_host(port, vswitches[port.vswitch_id])
            ip_batch(
                [
                    f"link set dev {self.veth_name(p.port_id)} alias "
                    + names.port_alias(p.port_id, _port_config(p, vswitches[p.vswitch_id]))
                    for p in host_setup
                ],
                netns=ns,
            )

        for host in sorted(stale_hosts):
            self._delete_host_netns(vpc.vpc_id, host)

        wanted_bridges = {self.bridge_name(v.vswitch_id) for v in vpc.vswitches}
        batch = []
        for link in links.values():
            parts = names.parse_alias(link.alias)
            ours = parts[0] == names.VSWITCH_MARK or link.name.startswith(names.BRIDGE_PREFIX)
            if ours and link.name not in wanted_bridges:
                if parts[0] == names.VSWITCH_MARK and len(parts) >= 2:
                    self._stop_dnsmasq(vpc.vpc_id, parts[1])
                batch.append(f"link del dev {link.name}")
        ip_batch(batch, netns=ns)

        self._sync_dnsmasq(vpc, ns)
        self._write_state(vpc.vpc_id, {"host_netns": sorted(wanted_hosts)})

    # ---- namespace ------------------------------------------------------------------------

    def _ensure_vpc_namespace(self, vpc_id: str, ns: str) -> None:
        if not netns_exists(ns):
            ip("netns", "add", ns)
        write_sysctls(ns, VPC_SYSCTLS)

    def _ensure_vpc_links(self, ns: str, links: dict[str, _Link]) -> None:
        lo = links.get("lo")
        vpc_id = ns[len(self.prefix) + 1:]
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
            commands.append(f"link del dev {dev}")  # (a veth is deleted by _prepare_host_netns)
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

    def _host_owned(self, vpc_id: str, host: str) -> bool:
        """Whether namespace `host` may be deleted as a test host of this VPC: it carries our
        mark, or no mark and no device but `lo` (created by us, crashed before marking it)."""
        try:
            links = ip_json("link", "show", netns=host)
        except CommandError:
            return False
        lo = next((link for link in links if link.get("ifname") == "lo"), None)
        alias = str(lo.get("ifalias", "")) if lo else ""
        if alias == "":
            return len(links) == 1
        parts = names.parse_alias(alias)
        return parts[0] == names.HOST_MARK and len(parts) >= 3 and parts[1] == self.prefix and parts[2] == vpc_id

    def _prepare_host_netns(self, vpc_id: str, ns: str, port: PortNet) -> None:
        """A fresh, marked test-host namespace for a veth port about to be (re)created."""
        host = port.host_netns
        assert host
        # Deleting a device takes its veth peer at once; deleting a namespace does so only
        # when the kernel reaps it, which would race with creating the new pair.
        ip("link", "del", "dev", self.veth_name(port.port_id), netns=ns, check=False)
        if netns_exists(host):
            if not self._host_owned(vpc_id, host):
                raise NetworkError(f"namespace {host} exists and is not a nubes test host of {vpc_id}")
            ip("link", "del", "dev", "eth0", netns=host, check=False)
            run(["ip", "netns", "delete", host])
        ip("netns", "add", host)
        ip_batch([f"link set dev lo alias {names.host_alias(self.prefix, vpc_id, port.port_id)} up"], netns=host)
        write_sysctls(host, HOST_SYSCTLS)

    def _configure_host(self, port: PortNet, vsw: VSwitchNet) -> None:
        assert port.host_netns
        prefixlen = ipaddress.IPv4Network(vsw.cidr, strict=False).prefixlen
        ip_batch(
            [
                f"addr add {port.ip}/{prefixlen} dev eth0",
                "link set dev eth0 up",
                f"route replace default via {vsw.gateway} dev eth0",
            ],
            netns=port.host_netns,
        )

    def _delete_host_netns(self, vpc_id: str, host: str) -> None:
        if netns_exists(host) and self._host_owned(vpc_id, host):
            # delete eth0 first: the veth pair goes at once, not when the namespace is reaped
            ip("link", "del", "dev", "eth0", netns=host, check=False)
            run(["ip", "netns", "delete", host], check=False)

    # ---- dnsmasq --------------------------------------------------------------------------

    def _dnsmasq_argv(self, vpc_id: str, vsw: VSwitchNet) -> list[str]:
        files = self.dnsmasq_files(vpc_id, vsw.vswitch_id)
        net = ipaddress.IPv4Network(vsw.cidr, strict=False)
        return [
            "dnsmasq",
            "--conf-file=/dev/null",
            "--port=0",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            f"--interface={self.bridge_name(vsw.vswitch_id)}",
            "--except-interface=lo",
            f"--dhcp-range={net.network_address},static,{net.netmask},{DHCP_LEASE_TIME}",
            f"--dhcp-option=option:router,{vsw.gateway}",
            f"--dhcp-hostsfile={files['hosts']}",
            f"--dhcp-leasefile={files['leases']}",
            f"--pid-file={files['pid']}",
            f"--log-facility={files['log']}",
            "--dhcp-authoritative",
            # dnsmasq drops root for user "nobody", who must then be able to re-read the hosts
            # file on SIGHUP; if run_dir is not reachable for others (a 0700 home, a pytest
            # tmp dir), it keeps running as root instead.
            *([] if _others_can_enter(self.vpc_dir(vpc_id)) else ["--user=root"]),
        ]

    def _hosts_text(self, vpc: VpcNet, vswitch_id: str) -> str:
        lines = []
        for port in sorted(vpc.ports, key=lambda p: p.port_id):
            if port.vswitch_id != vswitch_id:
                continue
            fields = [port.mac.lower(), port.ip]
            hostname = _hostname(port)
            if hostname:
                fields.append(hostname)
            lines.append(",".join(fields))
        return "".join(line + "\n" for line in lines)

    def _dnsmasq_pid(self, vpc_id: str, vswitch_id: str, argv: list[str] | None = None) -> int | None:
        """The pid of the running dnsmasq of a vSwitch (with exactly `argv`, if given)."""
        pid_file = self.dnsmasq_files(vpc_id, vswitch_id)["pid"]
        try:
            pid = int(pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if not process_alive(pid):
            return None
        cmdline = process_cmdline(pid)
        if not cmdline or os.path.basename(cmdline[0]) != "dnsmasq":
            return None
        if f"--pid-file={pid_file}" not in cmdline:
            return None
        if argv is not None and cmdline[1:] != argv[1:]:
            return -pid  # ours, but started with another configuration
        return pid

    def dnsmasq_pid(self, vpc_id: str, vswitch_id: str) -> int | None:
        """The pid of the vSwitch's dnsmasq if it runs (for tests and diagnostics)."""
        pid = self._dnsmasq_pid(vpc_id, vswitch_id)
        return pid if pid and pid > 0 else None

    def _sync_dnsmasq(self, vpc: VpcNet, ns: str) -> None:
        wanted = {v.vswitch_id for v in vpc.vswitches}
        for pid_file in self.vpc_dir(vpc.vpc_id).glob("dnsmasq-*.pid"):
            vswitch_id = pid_file.name[len("dnsmasq-"):-len(".pid")]
            if vswitch_id not in wanted:
                self._stop_dnsmasq(vpc.vpc_id, vswitch_id)
        for vsw in vpc.vswitches:
            files = self.dnsmasq_files(vpc.vpc_id, vsw.vswitch_id)
            text = self._hosts_text(vpc, vsw.vswitch_id)
            changed = not files["hosts"].exists() or files["hosts"].read_text() != text
            if changed:
                tmp = files["hosts"].with_suffix(".tmp")
                tmp.write_text(text)
                os.chmod(tmp, 0o644)
                os.replace(tmp, files["hosts"])
            argv = self._dnsmasq_argv(vpc.vpc_id, vsw)
            pid = self._dnsmasq_pid(vpc.vpc_id, vsw.vswitch_id, argv)
            if pid is not None and pid < 0:
                _kill(-pid)
                pid = None
            if pid is not None and changed:
                running = pid
                if _drop_stale_leases(files["leases"], text, before=lambda: _kill(running)):
                    pid = None  # dnsmasq holds leases in memory too: it restarts from the pruned file
            if pid is None:
                self._start_dnsmasq(ns, vpc.vpc_id, vsw, argv)
            elif changed:
                self._reload_dnsmasq(pid, files)

    def _reload_dnsmasq(self, pid: int, files: dict[str, Path]) -> None:
        """SIGHUP makes dnsmasq re-read --dhcp-hostsfile. Wait (briefly) until its log says it
        has, so a guest that asks right after `sync` returns gets its lease."""
        log_file = files["log"]
        offset = log_file.stat().st_size if log_file.exists() else 0
        os.kill(pid, signal.SIGHUP)
        needle = f"read {files['hosts']}".encode()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                with open(log_file, "rb") as f:
                    f.seek(offset)
                    text = f.read()
            except FileNotFoundError:
                return
            if needle in text:
                return
            if b"cannot read" in text:
                log.warning("dnsmasq %d could not re-read %s", pid, files["hosts"])
                return
            time.sleep(0.002)
        log.warning("dnsmasq %d did not confirm re-reading %s", pid, files["hosts"])

    def _start_dnsmasq(self, ns: str, vpc_id: str, vsw: VSwitchNet, argv: list[str]) -> None:
        files = self.dnsmasq_files(vpc_id, vsw.vswitch_id)
        self._kill_all_dnsmasq(vpc_id, files["pid"])  # one whose pid file was lost, if any
        files["pid"].unlink(missing_ok=True)
        # dnsmasq daemonizes; its parent exits once the daemon is set up (or failed).
        netns_exec(ns, argv)
        deadline = time.monotonic() + 5
        while self._dnsmasq_pid(vpc_id, vsw.vswitch_id) is None:
            if time.monotonic() > deadline:
                tail = files["log"].read_text(errors="replace")[-2000:] if files["log"].exists() else ""
                raise NetworkError(f"dnsmasq for {vsw.vswitch_id} did not start: {tail}")
            time.sleep(0.01)

    def _stop_dnsmasq(self, vpc_id: str, vswitch_id: str) -> None:
        pid = self._dnsmasq_pid(vpc_id, vswitch_id)
        if pid is not None:
            _kill(abs(pid))
        for path in self.dnsmasq_files(vpc_id, vswitch_id).values():
            path.unlink(missing_ok=True)

    def _kill_all_dnsmasq(self, vpc_id: str, pid_file: Path | None = None) -> None:
        """Kill every dnsmasq whose pid file lies in this VPC's run dir (or is `pid_file`),
        found in /proc: pid files may be missing after a crash."""
        marker = f"--pid-file={pid_file}" if pid_file else f"--pid-file={self.vpc_dir(vpc_id)}/"
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            cmdline = process_cmdline(int(entry))
            if not cmdline or os.path.basename(cmdline[0]) != "dnsmasq":
                continue
            if any(arg == marker if pid_file else arg.startswith(marker) for arg in cmdline):
                _kill(int(entry))

    # ---- removal --------------------------------------------------------------------------

    def _remove_vpc(self, vpc_id: str) -> None:
        ns = self.netns_name(vpc_id)
        self._kill_all_dnsmasq(vpc_id)
        for host in self._read_state(vpc_id).get("host_netns", []):
            self._delete_host_netns(vpc_id, str(host))
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
        shutil.rmtree(self.vpc_dir(vpc_id), ignore_errors=True)

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


def _others_can_enter(path: Path) -> bool:
    """Whether every directory from / down to `path` is searchable by any user."""
    try:
        return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))
    except OSError:
        return False


def _drop_stale_leases(leases: Path, hosts_text: str, before: Callable[[], None]) -> bool:
    """Remove from a dnsmasq lease file the leases no static host entry backs any more (an
    address whose interface is gone, or given to another MAC). Until they go, dnsmasq refuses
    the address to its new owner. Calls `before` (stopping dnsmasq, which rewrites the file
    from memory) first, and only when there is something to drop. True if it dropped any."""
    try:
        lines = leases.read_text().splitlines()
    except FileNotFoundError:
        return False
    wanted = {tuple(entry.split(",")[:2]) for entry in hosts_text.splitlines()}
    keep = [line for line in lines if tuple(line.split()[1:3]) in wanted]
    if len(keep) == len(lines):
        return False
    before()
    lines = leases.read_text().splitlines() if leases.exists() else []
    keep = [line for line in lines if tuple(line.split()[1:3]) in wanted]
    tmp = leases.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, leases)
    return True


def _kill(pid: int, timeout: float = 2.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() > deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + timeout
        time.sleep(0.005)
