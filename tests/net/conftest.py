"""Real-namespace fixtures and probes for the linux network driver (root only).

Every test gets its own driver prefix (`nt<pid><n>`), so its namespaces are
`nt<pid><n>-<vpc_id>` and its test hosts `nt<pid><n>-h<i>`; teardown removes all of them and
every dnsmasq started under the test's run dir, even when the test failed. Without root or
without `ip`/`nft`/`dnsmasq` the tests skip — except under CI=1, where they fail."""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import shutil
import signal
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nubes.drivers.network import names
from nubes.drivers.network.base import PortNet, SecurityGroupNet, SecurityRule, VpcNet, VSwitchNet
from nubes.drivers.network.linux import LinuxNetworkDriver
from nubes.drivers.network.proc import in_netns, ip, ip_json, list_netns, process_cmdline, run, write_sysctls

PROBE_TIMEOUT = 0.3  # a dropped SYN / datagram / echo is reported after this long
_counter = itertools.count()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "net: needs root; builds real network namespaces, bridges and nftables"
    )


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, nftables)"
    for tool in ("ip", "nft", "dnsmasq"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    if not os.path.isdir("/proc/sys/net/bridge"):
        return "the kernel has no br_netfilter (/proc/sys/net/bridge missing)"
    return None


def require_net() -> None:
    reason = _missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"net tests cannot run under CI: {reason}")
        pytest.skip(reason)


# ---- building desired state by hand --------------------------------------------------------


def rule(
    direction: str,
    protocol: str,
    ports: str = "-1/-1",
    policy: str = "accept",
    priority: int = 1,
    cidr: str | None = None,
    group: str | None = None,
    rule_id: str | None = None,
) -> SecurityRule:
    low, high = (int(p) for p in ports.split("/"))
    if cidr is None and group is None:
        cidr = "0.0.0.0/0"
    return SecurityRule(
        rule_id or f"sgr-{next(_counter)}",
        direction,
        protocol,
        low,
        high,
        policy,
        priority,
        peer_cidr=cidr,
        peer_group_id=group,
    )


def group(
    group_id: str, *rules: SecurityRule, kind: str = "normal", inner: str | None = None
) -> SecurityGroupNet:
    inner_access = inner or ("accept" if kind == "normal" else "drop")
    return SecurityGroupNet(group_id, kind, inner_access, tuple(rules))


def mac_for(ip: str) -> str:
    _, b, c, d = (int(x) for x in ip.split("."))
    return f"00:16:3e:{b:02x}:{c:02x}:{d:02x}"


@dataclass
class NetEnv:
    driver: LinuxNetworkDriver
    prefix: str
    run_dir: Path
    closers: list[Callable[[], None]] = field(default_factory=list)

    def host(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def port(
        self,
        port_id: str,
        vswitch: VSwitchNet,
        ip: str,
        *groups: str,
        host: str | None = None,
        kind: str = "veth",
        hostname: str = "",
    ) -> PortNet:
        return PortNet(
            port_id,
            vswitch.vswitch_id,
            mac_for(ip),
            ip,
            tuple(groups),
            kind=kind,
            host_netns=self.host(host or port_id) if kind == "veth" else None,
            hostname=hostname,
        )

    # ---- listeners -----------------------------------------------------------------------

    def tcp_listen(self, ns: str | None, port: int, addr: str = "0.0.0.0") -> socket.socket:
        """A listening TCP socket in `ns` (None: the host namespace). The kernel completes
        handshakes without accept(), so a connect() that succeeds reached it."""

        def make() -> socket.socket:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, port))
            s.listen(64)
            return s

        sock = make() if ns is None else in_netns(ns, make)
        self.closers.append(sock.close)
        return sock

    def udp_echo(self, ns: str | None, port: int) -> socket.socket:
        """A UDP echo server in `ns` (None: the host namespace) until teardown."""

        def make() -> socket.socket:
            return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

        sock = make() if ns is None else in_netns(ns, make)
        sock.bind(("0.0.0.0", port))
        sock.settimeout(0.1)
        stop = threading.Event()

        def serve() -> None:
            while not stop.is_set():
                try:
                    data, peer = sock.recvfrom(2048)
                except TimeoutError:
                    continue
                except OSError:
                    return
                sock.sendto(data, peer)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()

        def close() -> None:
            stop.set()
            thread.join(1)
            sock.close()

        self.closers.append(close)
        return sock

    def tcp_listeners(self, hosts: list[str], ports: list[int]) -> None:
        for h in hosts:
            for p in ports:
                self.tcp_listen(h, p)

    def close_all(self) -> None:
        for close in reversed(self.closers):
            with contextlib.suppress(OSError, RuntimeError):
                close()
        self.closers.clear()


# ---- probes --------------------------------------------------------------------------------


def tcp_probe(
    ns: str, ip: str, port: int, timeout: float = PROBE_TIMEOUT, source_port: int = 0, source: str = "0.0.0.0"
) -> str:
    """ "open" (handshake done), "refused" (RST), "timeout" (dropped) or "unreachable"; from
    `source_port` and the address `source` (which `ns` must hold) when given (else the kernel's
    choice)."""
    sock = in_netns(ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    sock.settimeout(timeout)
    try:
        if source_port or source != "0.0.0.0":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((source, source_port))
        sock.connect((ip, port))
        return "open"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "unreachable"
        raise
    finally:
        sock.close()


def udp_probe(ns: str, ip: str, port: int, timeout: float = PROBE_TIMEOUT) -> str:
    """ "open" when the echo server answered, else "timeout" (or "refused"/"unreachable")."""
    sock = in_netns(ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sock.settimeout(timeout)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    try:
        sock.connect((ip, port))
        sock.send(b"nubes-probe")
        return "open" if sock.recv(2048) == b"nubes-probe" else "garbled"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "unreachable"
        raise
    finally:
        sock.close()


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def icmp_probe(ns: str, ip: str, timeout: float = PROBE_TIMEOUT) -> str:
    """An ICMP echo through a raw socket: "open" when the echo reply came back."""
    ident = (os.getpid() + next(_counter)) & 0xFFFF
    sock = in_netns(ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    try:
        header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
        payload = b"nubes-icmp-probe"
        packet = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, 1) + payload
        sock.sendto(packet, (ip, 0))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            sock.settimeout(left)
            try:
                data, peer = sock.recvfrom(2048)
            except TimeoutError:
                return "timeout"
            ihl = (data[0] & 0x0F) * 4
            icmp_type, _, _, rid, _ = struct.unpack("!BBHHH", data[ihl : ihl + 8])
            if icmp_type == 0 and rid == ident and (peer[0] == ip or ip == "255.255.255.255"):
                return "open"
    finally:
        sock.close()


Probe = tuple[str, str, str, int]  # (protocol, source namespace, destination ip, port)


def probe(spec: Probe) -> str:
    protocol, ns, ip, port = spec
    if protocol == "tcp":
        return tcp_probe(ns, ip, port)
    if protocol == "udp":
        return udp_probe(ns, ip, port)
    if protocol == "icmp":
        return icmp_probe(ns, ip)
    raise ValueError(protocol)


def check_reach(expected: dict[Probe, bool]) -> None:
    """Run all probes in parallel; fail listing every probe whose reachability is wrong."""
    specs = list(expected)
    with ThreadPoolExecutor(max_workers=min(16, len(specs) or 1)) as pool:
        outcomes = list(pool.map(probe, specs))
    wrong = [
        f"{p[0]} {p[1]} -> {p[2]}:{p[3]}: got {got}, expected {'open' if expected[p] else 'blocked'}"
        for p, got in zip(specs, outcomes)
        if (got == "open") != expected[p]
    ]
    assert not wrong, "reachability differs:\n  " + "\n  ".join(wrong)


def pending_peers(listener: socket.socket) -> set[str]:
    """The source addresses of the connections queued on a listener."""
    listener.setblocking(False)
    peers: set[str] = set()
    while True:
        try:
            conn, peer = listener.accept()
        except BlockingIOError:
            return peers
        peers.add(peer[0])
        conn.close()


def host_view() -> tuple[object, ...]:
    """The host namespace's routes (every table) and addresses, to compare before and after."""
    routes = sorted(
        tuple(str(r.get(k, "")) for k in ("type", "dst", "gateway", "dev", "table"))
        for r in ip_json("route", "show", "table", "all")
    )
    addrs = sorted(
        (link["ifname"], str(a.get("local")), str(a.get("prefixlen")))
        for link in ip_json("addr", "show")
        for a in link.get("addr_info", [])
    )
    return tuple(routes), tuple(addrs)


# ---- fixtures ------------------------------------------------------------------------------


def force_cleanup(prefix: str, run_dir: Path) -> None:
    """Whatever a failed test left behind: dnsmasq processes of the run dir, namespaces."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            cmdline = process_cmdline(int(entry))
            if (
                cmdline
                and os.path.basename(cmdline[0]) == "dnsmasq"
                and any(str(run_dir) in a for a in cmdline)
            ):
                try:
                    os.kill(int(entry), signal.SIGKILL)
                except ProcessLookupError:
                    pass
    for ns in list_netns():
        if ns.startswith(prefix + "-"):
            run(["ip", "netns", "delete", ns], check=False)


@pytest.fixture
def net() -> Iterator[NetEnv]:
    require_net()
    prefix = f"nt{os.getpid() % 10000}{next(_counter)}"
    # Under /run (searchable by all) so dnsmasq runs unprivileged, as it would in production.
    base = Path(
        tempfile.mkdtemp(prefix=f"nubes-{prefix}-", dir="/run" if os.access("/run", os.W_OK) else None)
    )
    os.chmod(base, 0o755)
    env = NetEnv(LinuxNetworkDriver(base, prefix=prefix), prefix, base)
    try:
        yield env
    finally:
        env.close_all()
        try:
            env.driver.sync([])
        finally:
            force_cleanup(prefix, base)
            shutil.rmtree(base, ignore_errors=True)


def vswitch(vswitch_id: str, cidr: str) -> VSwitchNet:
    """A vSwitch whose gateway is what ECS gives: the last usable address but one (.253)."""
    import ipaddress

    net = ipaddress.IPv4Network(cidr)
    return VSwitchNet(vswitch_id, cidr, str(net.broadcast_address - 2))


def vpc(
    vpc_id: str, cidr: str, vswitches: list[VSwitchNet], ports: list[PortNet], groups: list[SecurityGroupNet]
) -> VpcNet:
    return VpcNet(vpc_id, cidr, tuple(vswitches), tuple(ports), tuple(groups))


# ---- the internet, for public addresses ------------------------------------------------------

RANGE = "198.18.0.0/24"
GATEWAY = "198.18.0.1"


def public_host_view() -> tuple[object, ...]:
    """The host namespace's routes and addresses, and any uplink leg in it (there must be none)."""
    legs = [
        link["ifname"] for link in ip_json("link", "show") if link["ifname"].startswith(names.PUBLIC_PREFIX)
    ]
    return host_view(), tuple(legs)


@pytest.fixture
def inet(net: NetEnv) -> Iterator[str]:
    """The internet namespace; the driver's uplink is the host end of its veth."""
    ns = net.host("inet")
    uplink = f"{net.prefix}u0"
    ip("netns", "add", ns)
    try:
        ip("link", "add", uplink, "type", "veth", "peer", "name", "eth0", "netns", ns)
        with open(f"/proc/sys/net/ipv6/conf/{uplink}/disable_ipv6", "w") as f:
            f.write("1")  # no link-local address or route of it in the host namespace
        ip("link", "set", uplink, "up")
        ip("link", "set", "lo", "up", netns=ns)
        ip("link", "set", "eth0", "up", netns=ns)
        ip("addr", "add", f"{GATEWAY}/24", "dev", "eth0", netns=ns)
        write_sysctls(ns, {"net.ipv4.ip_forward": "1"})
        net.driver.uplink = uplink
        yield ns
    finally:
        net.close_all()
        net.driver.sync([])
        ip("link", "del", uplink, check=False)  # at once (a namespace is reaped later)
        ip("netns", "delete", ns, check=False)
