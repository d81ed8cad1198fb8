"""The linux network driver against the real kernel: namespaces, bridges, nftables, dnsmasq.

Test hosts are veth ports whose other end sits in a namespace of their own; probes are
sockets created inside those namespaces (setns in a helper thread), so "reachable" means a
real TCP handshake, UDP echo or ICMP echo reply went both ways through the VPC namespace."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import struct
import subprocess
import threading
import time

import pytest

from nubes.drivers.network import names
from nubes.drivers.network.base import METADATA_ADDRESS, PortNet, SecurityRule, VpcNet
from nubes.drivers.network.linux import LinuxNetworkDriver
from nubes.drivers.network.proc import (
    in_netns,
    ip_json,
    list_netns,
    process_alive,
    process_cmdline,
    read_sysctl,
    run,
)

from .conftest import NetEnv, check_reach, group, host_view, pending_peers, rule, tcp_probe, vpc, vswitch

pytestmark = pytest.mark.net

ETH_P_ALL = 0x0003


# ---- security group semantics ----------------------------------------------------------------


def test_rules_on_one_vswitch_tcp_udp_icmp(net: NetEnv) -> None:
    vsw = vswitch("vsw-a", "10.1.0.0/24")
    sg_b = group(
        "sg-b",
        rule("ingress", "tcp", "22/22"),
        rule("ingress", "tcp", "8000/8010", cidr="10.1.0.10/32"),
        rule("ingress", "udp", "53/53"),
        rule("ingress", "icmp"),
        rule("ingress", "tcp", "9000/9000", policy="drop"),
    )
    sg_a = group(
        "sg-a",
        rule("egress", "tcp", "8005/8005", policy="drop", cidr="10.1.0.11/32"),
        rule("egress", "tcp", "23/23", policy="accept"),  # egress accept cannot open b's ingress
    )
    a = net.port("eni-a", vsw, "10.1.0.10", "sg-a")
    b = net.port("eni-b", vsw, "10.1.0.11", "sg-b")
    c = net.port("eni-c", vsw, "10.1.0.12", "sg-a")
    net.driver.sync([vpc("vpc-1", "10.1.0.0/16", [vsw], [a, b, c], [sg_a, sg_b])])
    A, B, C = net.host("eni-a"), net.host("eni-b"), net.host("eni-c")
    net.tcp_listeners([B], [22, 23, 8000, 8005, 8010, 8011, 9000])
    net.tcp_listeners([A], [22])
    net.udp_echo(B, 53)
    net.udp_echo(B, 54)
    check_reach(
        {
            ("tcp", A, "10.1.0.11", 22): True,
            ("tcp", A, "10.1.0.11", 23): False,  # egress accept, no ingress rule: dropped
            ("tcp", A, "10.1.0.11", 8000): True,
            ("tcp", A, "10.1.0.11", 8005): False,  # a's egress drop wins over b's ingress accept
            ("tcp", A, "10.1.0.11", 8010): True,
            ("tcp", A, "10.1.0.11", 8011): False,
            ("tcp", A, "10.1.0.11", 9000): False,
            ("tcp", C, "10.1.0.11", 8000): False,  # cidr 10.1.0.10/32 only
            ("tcp", C, "10.1.0.11", 22): True,
            ("udp", A, "10.1.0.11", 53): True,
            ("udp", A, "10.1.0.11", 54): False,
            ("icmp", A, "10.1.0.11", 0): True,
            ("tcp", B, "10.1.0.10", 22): False,  # sg-a has no ingress rule; b is not in sg-a
            ("icmp", B, "10.1.0.10", 0): False,
            ("tcp", C, "10.1.0.10", 22): True,  # c shares normal group sg-a with a: inner access
            ("icmp", A, vsw.gateway, 0): True,
        }
    )


def test_source_port_range_narrows_a_rule(net: NetEnv) -> None:
    """A rule with SourcePortRange (ECS quintuple rules) admits only connections from those ports."""
    vsw = vswitch("vsw-a", "10.1.0.0/24")
    narrow = dataclasses.replace(rule("ingress", "tcp", "22/22"), source_port_from=7000, source_port_to=7010)
    a = net.port("eni-a", vsw, "10.1.0.10", "sg-a")
    b = net.port("eni-b", vsw, "10.1.0.11", "sg-b")
    net.driver.sync([vpc("vpc-1", "10.1.0.0/16", [vsw], [a, b], [group("sg-a"), group("sg-b", narrow)])])
    A, B = net.host("eni-a"), net.host("eni-b")
    net.tcp_listeners([B], [22])
    assert tcp_probe(A, "10.1.0.11", 22, source_port=7005) == "open"
    assert tcp_probe(A, "10.1.0.11", 22, source_port=7011) == "timeout"
    assert tcp_probe(A, "10.1.0.11", 22) == "timeout"  # an ephemeral port, far above 7010


def test_priority_drop_before_accept_and_multi_group_merge(net: NetEnv) -> None:
    vsw = vswitch("vsw-a", "10.1.0.0/24")
    sg_b = group(
        "sg-b",
        rule("ingress", "tcp", "22/22", priority=1),
        rule("ingress", "tcp", "24/24", priority=10),
        rule("ingress", "tcp", "23/23", policy="accept", priority=5),
        rule("ingress", "tcp", "23/23", policy="drop", priority=5),  # same priority: drop first
        rule("ingress", "udp", "53/53", priority=1),
        rule("ingress", "tcp", "25/25", policy="accept", priority=3),
    )
    # a second group of b: its prio 5 drop-all for a sits between sg-b's prio 1 and prio 10 rules
    sg_b2 = group(
        "sg-b2",
        rule("ingress", "all", policy="drop", priority=5, cidr="10.1.0.10/32"),
        rule("ingress", "tcp", "25/25", policy="drop", priority=2),
    )
    sg_x = group("sg-x")
    a = net.port("eni-a", vsw, "10.1.0.10", "sg-x")
    b = net.port("eni-b", vsw, "10.1.0.11", "sg-b", "sg-b2")
    c = net.port("eni-c", vsw, "10.1.0.12", "sg-x")
    net.driver.sync([vpc("vpc-1", "10.1.0.0/16", [vsw], [a, b, c], [sg_b, sg_b2, sg_x])])
    A, B, C = net.host("eni-a"), net.host("eni-b"), net.host("eni-c")
    net.tcp_listeners([B], [22, 23, 24, 25])
    net.udp_echo(B, 53)
    check_reach(
        {
            ("tcp", A, "10.1.0.11", 22): True,  # prio 1 accept before prio 5 drop-all
            ("udp", A, "10.1.0.11", 53): True,
            ("tcp", A, "10.1.0.11", 24): False,  # prio 10 accept after prio 5 drop-all (other group)
            ("tcp", C, "10.1.0.11", 24): True,  # the drop-all is for a only
            ("tcp", C, "10.1.0.11", 23): False,  # accept and drop at prio 5: drop wins
            ("tcp", C, "10.1.0.11", 25): False,  # prio 2 drop of sg-b2 before prio 3 accept of sg-b
            ("icmp", C, "10.1.0.11", 0): False,  # nothing matches: ingress default drop
        }
    )


def test_group_peer_and_inner_access_normal_vs_enterprise(net: NetEnv) -> None:
    vsw = vswitch("vsw-a", "10.1.0.0/24")
    sg_n = group("sg-n", kind="normal")  # inner access accept
    sg_e = group("sg-e", kind="enterprise")  # inner access drop
    sg_app = group(
        "sg-app",
        rule("ingress", "tcp", "5432/5432", group="sg-n"),
        rule("ingress", "tcp", "6000/6000", group="sg-empty"),  # no members: skipped
        kind="normal",
    )
    sg_empty = group("sg-empty")
    ports = [
        net.port("eni-a", vsw, "10.1.0.10", "sg-n"),
        net.port("eni-b", vsw, "10.1.0.11", "sg-n"),
        net.port("eni-c", vsw, "10.1.0.12", "sg-e"),
        net.port("eni-d", vsw, "10.1.0.13", "sg-e"),
        net.port("eni-e", vsw, "10.1.0.14", "sg-app"),
    ]
    net.driver.sync([vpc("vpc-1", "10.1.0.0/16", [vsw], ports, [sg_n, sg_e, sg_app, sg_empty])])
    A, B, C, D, E = (net.host(f"eni-{x}") for x in "abcde")
    net.tcp_listeners([A, B, C, D], [22])
    net.tcp_listeners([E], [22, 5432, 6000])
    check_reach(
        {
            ("tcp", A, "10.1.0.11", 22): True,  # normal group: members talk freely
            ("tcp", B, "10.1.0.10", 22): True,
            ("icmp", A, "10.1.0.11", 0): True,
            ("tcp", C, "10.1.0.13", 22): False,  # enterprise group: they do not
            ("tcp", D, "10.1.0.12", 22): False,
            ("icmp", C, "10.1.0.13", 0): False,
            ("tcp", A, "10.1.0.12", 22): False,  # no shared group
            ("tcp", A, "10.1.0.14", 5432): True,  # group peer: a is in sg-n
            ("tcp", B, "10.1.0.14", 5432): True,
            ("tcp", C, "10.1.0.14", 5432): False,
            ("tcp", A, "10.1.0.14", 22): False,
            ("tcp", A, "10.1.0.14", 6000): False,  # the empty-group rule matches nobody
        }
    )
    ruleset = run(["ip", "netns", "exec", net.driver.netns_name("vpc-1"), "nft", "list", "ruleset"])
    assert "6000" not in ruleset


def test_enterprise_group_with_rule_for_its_own_members(net: NetEnv) -> None:
    """In an enterprise group, members reach each other only through an explicit rule."""
    vsw = vswitch("vsw-a", "10.1.0.0/24")
    sg_e = group("sg-e", rule("ingress", "tcp", "80/80", group="sg-e"), kind="enterprise")
    ports = [net.port("eni-a", vsw, "10.1.0.10", "sg-e"), net.port("eni-b", vsw, "10.1.0.11", "sg-e")]
    net.driver.sync([vpc("vpc-1", "10.1.0.0/16", [vsw], ports, [sg_e])])
    A, B = net.host("eni-a"), net.host("eni-b")
    net.tcp_listeners([B], [80, 81])
    check_reach({("tcp", A, "10.1.0.11", 80): True, ("tcp", A, "10.1.0.11", 81): False})


def test_revoke_applies_at_once_to_new_connections(net: NetEnv) -> None:
    vsw = vswitch("vsw-a", "10.1.0.0/24")
    allow = rule("ingress", "tcp", "22/22")
    a = net.port("eni-a", vsw, "10.1.0.10", "sg-a")
    b = net.port("eni-b", vsw, "10.1.0.11", "sg-b")

    def desired(*rules: SecurityRule) -> list[VpcNet]:
        return [vpc("vpc-1", "10.1.0.0/16", [vsw], [a, b], [group("sg-a"), group("sg-b", *rules)])]

    net.driver.sync(desired(allow))
    A, B = net.host("eni-a"), net.host("eni-b")
    listener = net.tcp_listen(B, 22)
    assert tcp_probe(A, "10.1.0.11", 22) == "open"
    # an established connection, to see that it survives the revoke (as in ECS)
    client = in_netns(A, lambda: socket.create_connection(("10.1.0.11", 22), timeout=1))
    listener.settimeout(1)
    while True:  # the probe's connection is queued first
        server, peer = listener.accept()
        if peer == client.getsockname():
            break
        server.close()
    try:
        net.driver.sync(desired())  # revoke
        assert tcp_probe(A, "10.1.0.11", 22) == "timeout"
        client.sendall(b"still-there")
        server.settimeout(1)
        assert server.recv(100) == b"still-there"
        server.sendall(b"and-back")
        assert client.recv(100) == b"and-back"
        net.driver.sync(desired(allow))  # authorize again
        assert tcp_probe(A, "10.1.0.11", 22) == "open"
    finally:
        client.close()
        server.close()


def test_two_vswitches_route_subject_to_rules(net: NetEnv) -> None:
    vsw1 = vswitch("vsw-1", "10.2.1.0/24")
    vsw2 = vswitch("vsw-2", "10.2.2.0/24")
    sg_a = group("sg-a")
    sg_b = group(
        "sg-b",
        rule("ingress", "tcp", "22/22", cidr="10.2.1.0/24"),
        rule("ingress", "icmp", cidr="10.2.1.0/24"),
    )
    a = net.port("eni-a", vsw1, "10.2.1.10", "sg-a")
    b = net.port("eni-b", vsw2, "10.2.2.10", "sg-b")
    net.driver.sync([vpc("vpc-1", "10.2.0.0/16", [vsw1, vsw2], [a, b], [sg_a, sg_b])])
    A, B = net.host("eni-a"), net.host("eni-b")
    net.tcp_listeners([B], [22, 23])
    net.tcp_listeners([A], [22])
    check_reach(
        {
            ("tcp", A, "10.2.2.10", 22): True,
            ("icmp", A, "10.2.2.10", 0): True,
            ("tcp", A, "10.2.2.10", 23): False,
            ("tcp", B, "10.2.1.10", 22): False,  # a has no ingress rules
            ("icmp", A, vsw1.gateway, 0): True,
            ("icmp", A, vsw2.gateway, 0): True,  # the router answers on all its gateways
            ("icmp", B, vsw1.gateway, 0): True,
        }
    )


def test_two_vpcs_have_no_path_even_with_allow_all_and_overlapping_cidrs(net: NetEnv) -> None:
    allow_all = [rule("ingress", "all"), rule("egress", "all")]
    vsw1 = vswitch("vsw-1", "10.3.0.0/24")
    vsw2 = vswitch("vsw-2", "10.3.0.0/24")  # same CIDR in the other VPC
    a = net.port("eni-a", vsw1, "10.3.0.10", "sg-1")
    b = net.port("eni-b", vsw1, "10.3.0.11", "sg-1")
    c = net.port("eni-c", vsw2, "10.3.0.20", "sg-2")
    d = net.port("eni-d", vsw2, "10.3.0.10", "sg-2")  # same address as a
    net.driver.sync(
        [
            vpc("vpc-1", "10.3.0.0/16", [vsw1], [a, b], [group("sg-1", *allow_all)]),
            vpc("vpc-2", "10.3.0.0/16", [vsw2], [c, d], [group("sg-2", *allow_all)]),
        ]
    )
    A, B, C, D = (net.host(f"eni-{x}") for x in "abcd")
    net.tcp_listeners([A, B], [22])
    c_listener = net.tcp_listen(C, 22)
    d_listener = net.tcp_listen(D, 2222)
    net.udp_echo(C, 53)
    check_reach(
        {
            ("tcp", A, "10.3.0.11", 22): True,  # inside a VPC: allowed by the rules
            ("tcp", C, "10.3.0.10", 2222): True,
            ("tcp", A, "10.3.0.20", 22): False,  # across VPCs: nothing
            ("udp", A, "10.3.0.20", 53): False,
            ("icmp", A, "10.3.0.20", 0): False,
            ("tcp", B, "10.3.0.10", 2222): False,  # reaches a (refused), never d
            ("tcp", C, "10.3.0.11", 22): False,
        }
    )
    assert pending_peers(c_listener) == set()
    assert pending_peers(d_listener) == {"10.3.0.20"}  # c, its neighbour; never b


def test_no_path_from_a_guest_to_the_host_namespace(net: NetEnv) -> None:
    vsw = vswitch("vsw-1", "10.250.0.0/24")
    allow_all = group("sg-1", rule("ingress", "all"), rule("egress", "all"))
    a = net.port("eni-a", vsw, "10.250.0.10", "sg-1")

    before = host_view()
    net.driver.sync([vpc("vpc-1", "10.250.0.0/16", [vsw], [a], [allow_all])])
    assert host_view() == before  # no route, address or device of the VPC in the host namespace
    A = net.host("eni-a")
    host_listener = net.tcp_listen(None, 0)  # a free port, on every address of the host
    port = host_listener.getsockname()[1]
    host_addrs = {
        info["local"]
        for link in ip_json("addr", "show")
        for info in link.get("addr_info", [])
        if info.get("family") == "inet"
    }
    targets = host_addrs | {vsw.gateway, "127.0.0.1", METADATA_ADDRESS, "10.250.0.1", "255.255.255.255"}
    udp_port = net.udp_echo(None, 0).getsockname()[1]
    probes: dict[tuple[str, str, str, int], bool] = {}
    for target in sorted(targets):
        if target != "255.255.255.255":
            probes[("tcp", A, target, port)] = False
        probes[("udp", A, target, udp_port)] = False
        if not target.startswith("127."):  # (the guest's own loopback answers that)
            probes[("icmp", A, target, 0)] = target == vsw.gateway
    check_reach(probes)
    assert pending_peers(host_listener) == set()
    # and no route to anywhere outside the VPC from the router either
    routes = ip_json("route", "show", netns=net.driver.netns_name("vpc-1"))
    assert not any(r.get("dst") == "default" for r in routes)
    # nothing of the VPC exists in the host namespace
    host_links = [link["ifname"] for link in ip_json("link", "show")]
    assert not [n for n in host_links if n.startswith(("nbr", "ntp", "nve"))]


# ---- DHCP, metadata ---------------------------------------------------------------------------


def _dhcp_discover_frame(mac: str, xid: int, eth_src: str | None = None) -> bytes:
    hw = bytes.fromhex(mac.replace(":", ""))
    src = bytes.fromhex((eth_src or mac).replace(":", ""))
    bootp = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s",
        1,
        1,
        6,
        0,
        xid,
        0,
        0x8000,
        b"\0" * 4,
        b"\0" * 4,
        b"\0" * 4,
        b"\0" * 4,
        hw + b"\0" * 10,
        b"\0" * 64,
        b"\0" * 128,
    )
    options = bytes([99, 130, 83, 99, 53, 1, 1, 55, 2, 1, 3, 255])
    payload = bootp + options
    udp = struct.pack("!HHHH", 68, 67, 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, b"\0" * 4, b"\xff" * 4)
    header = header[:10] + struct.pack("!H", _ip_checksum(header)) + header[12:]
    return b"\xff" * 6 + src + b"\x08\x00" + header + udp


def _ip_checksum(data: bytes) -> int:
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _dhcp_offer(host_ns: str, mac: str) -> tuple[str, str] | None:
    """Send a DHCPDISCOVER from 0.0.0.0 (raw frame, as a booting guest does) and return
    (offered address, router option) from the answer, or None."""
    xid = int.from_bytes(os.urandom(4), "big")

    def sockets() -> tuple[socket.socket, socket.socket]:
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        rx.bind(("0.0.0.0", 68))
        tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        tx.bind(("eth0", 0))
        return rx, tx

    rx, tx = in_netns(host_ns, sockets)
    try:
        deadline = time.monotonic() + 3
        next_send = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() >= next_send:  # re-sent as a client does
                tx.send(_dhcp_discover_frame(mac, xid))
                next_send = time.monotonic() + 0.5
            rx.settimeout(0.1)
            try:
                data = rx.recv(4096)
            except TimeoutError:
                continue
            offer = _parse_offer(data, xid)
            if offer:
                return offer
        return None
    finally:
        rx.close()
        tx.close()


def _parse_offer(bootp: bytes, xid: int) -> tuple[str, str] | None:
    if len(bootp) < 240 or bootp[0] != 2 or struct.unpack("!I", bootp[4:8])[0] != xid:
        return None
    options, i, router = bootp[240:], 0, ""
    while i < len(options) and options[i] != 255:
        if options[i] == 0:
            i += 1
            continue
        code, length = options[i], options[i + 1]
        if code == 3:
            router = socket.inet_ntoa(options[i + 2 : i + 6])
        i += 2 + length
    return socket.inet_ntoa(bootp[16:20]), router


def _dhcp_via_tap(vpc_ns: str, tap: str, mac: str, spoof_src: str) -> tuple[tuple[str, str] | None, bool]:
    """Be the VM: open the persistent tap from inside the VPC namespace, as QEMU does, and send
    DHCPDISCOVERs (re-sent every 0.2 s like a client: the bridge port starts forwarding only
    once the kernel's link watcher has seen the carrier come up). Returns the offer to the
    honest request, and whether the same request in a frame with Ethernet source `spoof_src`
    (sent once the port is known to forward) got an answer."""
    import fcntl
    import select

    tunsetiff, iff_tap, iff_no_pi = 0x400454CA, 0x0002, 0x1000

    def open_tap() -> int:
        fd = os.open("/dev/net/tun", os.O_RDWR)
        fcntl.ioctl(fd, tunsetiff, struct.pack("16sH", tap.encode(), iff_tap | iff_no_pi))
        return fd

    def exchange(fd: int, frame: bytes, xid: int, timeout: float, resend: float) -> tuple[str, str] | None:
        deadline = time.monotonic() + timeout
        next_send = 0.0
        while (left := deadline - time.monotonic()) > 0:
            if time.monotonic() >= next_send:
                os.write(fd, frame)
                next_send = time.monotonic() + resend
            if not select.select([fd], [], [], min(left, resend))[0]:
                continue
            reply = os.read(fd, 4096)
            if reply[12:14] != b"\x08\x00" or reply[23] != 17:
                continue
            udp = reply[14 + (reply[14] & 0x0F) * 4 :]
            if struct.unpack("!H", udp[2:4])[0] == 68 and (offer := _parse_offer(udp[8:], xid)):
                return offer
        return None

    fd = in_netns(vpc_ns, open_tap)
    try:
        xid = int.from_bytes(os.urandom(4), "big")
        honest = exchange(fd, _dhcp_discover_frame(mac, xid), xid, 5, 0.2)
        xid = int.from_bytes(os.urandom(4), "big")
        spoofed = exchange(fd, _dhcp_discover_frame(mac, xid, spoof_src), xid, 0.6, 10)
        return honest, spoofed is not None
    finally:
        os.close(fd)


def _netns_inode(path: str) -> int:
    return os.stat(path).st_ino


def test_dhcp_dnsmasq_serves_static_leases(net: NetEnv) -> None:
    vsw = vswitch("vsw-1", "10.5.0.0/24")
    sg = group("sg-1")
    a = net.port("eni-a", vsw, "10.5.0.10", "sg-1", hostname="web-1")
    tap = net.port("eni-t", vsw, "10.5.0.30", "sg-1", kind="tap")
    ns = net.driver.netns_name("vpc-1")
    net.driver.sync([vpc("vpc-1", "10.5.0.0/16", [vsw], [a, tap], [sg])])
    pid = net.driver.dnsmasq_pid("vpc-1", "vsw-1")
    assert pid is not None and process_alive(pid)
    # it runs inside the VPC namespace ...
    assert _netns_inode(f"/proc/{pid}/ns/net") == _netns_inode(f"/run/netns/{ns}")
    # ... listens on udp 67 there, and not in the host namespace
    listening = run(["ip", "netns", "exec", ns, "ss", "-H", "-ulnp", "sport", "=", ":67"])
    assert f"pid={pid}," in listening
    hosts = net.driver.dnsmasq_files("vpc-1", "vsw-1")["hosts"].read_text()
    assert f"{a.mac},10.5.0.10,web-1" in hosts.splitlines()
    assert f"{tap.mac},10.5.0.30" in hosts.splitlines()
    # a real DHCP exchange from 0.0.0.0 through the anti-spoofing rules
    assert _dhcp_offer(net.host("eni-a"), a.mac) == ("10.5.0.10", vsw.gateway)
    # and through a tap opened the way a VM process opens it (inside the VPC namespace); the
    # same request in a frame with another Ethernet source is dropped by the bridge
    offer, spoof_answered = _dhcp_via_tap(ns, net.driver.tap_name("eni-t"), tap.mac, "00:16:3e:77:77:77")
    assert offer == ("10.5.0.30", vsw.gateway)
    assert not spoof_answered

    # a new port: the hosts file is rewritten and re-read (SIGHUP), dnsmasq keeps running
    b = net.port("eni-b", vsw, "10.5.0.11", "sg-1")
    net.driver.sync([vpc("vpc-1", "10.5.0.0/16", [vsw], [a, b, tap], [sg])])
    assert net.driver.dnsmasq_pid("vpc-1", "vsw-1") == pid
    assert f"{b.mac},10.5.0.11" in net.driver.dnsmasq_files("vpc-1", "vsw-1")["hosts"].read_text()
    assert _dhcp_offer(net.host("eni-b"), b.mac) == ("10.5.0.11", vsw.gateway)

    # a dead dnsmasq is restarted by the next sync
    os.kill(pid, 9)
    deadline = time.monotonic() + 2
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    net.driver.sync([vpc("vpc-1", "10.5.0.0/16", [vsw], [a, b, tap], [sg])])
    new_pid = net.driver.dnsmasq_pid("vpc-1", "vsw-1")
    assert new_pid is not None and new_pid != pid
    assert _dhcp_offer(net.host("eni-a"), a.mac) == ("10.5.0.10", vsw.gateway)


def _dhcp_lease(host_ns: str) -> bool:
    """Take a full lease (DISCOVER, OFFER, REQUEST, ACK) with busybox's udhcpc on eth0 of
    `host_ns`, as a guest's init does; the server then holds it in its leases."""
    done = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            host_ns,
            "busybox",
            "udhcpc",
            "-i",
            "eth0",
            "-f",
            "-q",
            "-n",
            "-t",
            "6",
            "-T",
            "1",
            "-s",
            "/bin/true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.returncode == 0 and "obtained" in done.stderr


def test_dhcp_address_reused_by_another_mac(net: NetEnv) -> None:
    """An address released by one interface and given to a new one (a deleted instance's IP
    goes to the next launched) is offered to the new MAC at once, not held for the old lease."""
    vsw = vswitch("vsw-1", "10.5.0.0/24")
    sg = group("sg-1")
    old = net.port("eni-old", vsw, "10.5.0.10", "sg-1")
    net.driver.sync([vpc("vpc-1", "10.5.0.0/16", [vsw], [old], [sg])])
    assert _dhcp_lease(net.host("eni-old"))
    leases = net.driver.dnsmasq_files("vpc-1", "vsw-1")["leases"]
    assert f"{old.mac} 10.5.0.10" in leases.read_text()

    new = dataclasses.replace(net.port("eni-new", vsw, "10.5.0.10", "sg-1"), mac="00:16:3e:aa:00:10")
    net.driver.sync([vpc("vpc-1", "10.5.0.0/16", [vsw], [new], [sg])])
    assert old.mac not in leases.read_text()
    assert _dhcp_offer(net.host("eni-new"), new.mac) == ("10.5.0.10", vsw.gateway)
    assert _dhcp_lease(net.host("eni-new"))
    assert f"{new.mac} 10.5.0.10" in leases.read_text()


def test_metadata_socket_serves_guests(net: NetEnv) -> None:
    vsw = vswitch("vsw-1", "10.6.0.0/24")
    # security groups that block everything do not block the metadata service (as in ECS)
    sg = group("sg-1", rule("egress", "all", policy="drop"), kind="enterprise")
    a = net.port("eni-a", vsw, "10.6.0.10", "sg-1")
    net.driver.sync([vpc("vpc-1", "10.6.0.0/16", [vsw], [a], [sg])])
    A = net.host("eni-a")
    sock = net.driver.open_metadata_socket("vpc-1")
    assert sock is not None
    net.closers.append(sock.close)
    assert sock.getsockname() == (METADATA_ADDRESS, 80)

    def serve() -> None:
        conn, _ = sock.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 14\r\n\r\nhello-metadata")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    def fetch() -> bytes:
        with socket.create_connection((METADATA_ADDRESS, 80), timeout=2) as c:
            c.sendall(b"GET / HTTP/1.0\r\nHost: 100.100.100.200\r\n\r\n")
            chunks = []
            while chunk := c.recv(4096):
                chunks.append(chunk)
            return b"".join(chunks)

    body = in_netns(A, fetch)
    thread.join(2)
    assert body.startswith(b"HTTP/1.0 200 OK") and body.endswith(b"hello-metadata")
    # something else listening on the metadata address is not reachable
    net.tcp_listen(net.driver.netns_name("vpc-1"), 8080, METADATA_ADDRESS)
    assert tcp_probe(A, METADATA_ADDRESS, 8080) == "timeout"
    # the router is reachable only where input allows
    net.tcp_listen(net.driver.netns_name("vpc-1"), 22, vsw.gateway)
    assert tcp_probe(A, vsw.gateway, 22) == "timeout"


# ---- anti-spoofing ----------------------------------------------------------------------------


def _arp_frame(src_mac: str, sender_mac: str, sender_ip: str, marker_ip: str) -> bytes:
    """A broadcast ARP reply (gratuitous) with the given sender; `marker_ip` as target IP."""
    s = bytes.fromhex(src_mac.replace(":", ""))
    sm = bytes.fromhex(sender_mac.replace(":", ""))
    arp = struct.pack(
        "!HHBBH6s4s6s4s",
        1,
        0x0800,
        6,
        4,
        2,
        sm,
        socket.inet_aton(sender_ip),
        b"\xff" * 6,
        socket.inet_aton(marker_ip),
    )
    return b"\xff" * 6 + s + b"\x08\x06" + arp


def _udp_frame(
    src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, port: int, payload: bytes, sport: int = 40000
) -> bytes:
    udp = struct.pack("!HHHH", sport, port, 8 + len(payload), 0) + payload
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        0,
        0,
        64,
        17,
        0,
        socket.inet_aton(src_ip),
        socket.inet_aton(dst_ip),
    )
    header = header[:10] + struct.pack("!H", _ip_checksum(header)) + header[12:]
    macs = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", ""))
    return macs + b"\x08\x00" + header + udp


def test_anti_spoofing(net: NetEnv) -> None:
    vsw = vswitch("vsw-1", "10.4.0.0/24")
    allow_all = group("sg-1", rule("ingress", "all"), rule("egress", "all"))
    a = net.port("eni-a", vsw, "10.4.0.10", "sg-1")
    b = net.port("eni-b", vsw, "10.4.0.11", "sg-1")
    c = net.port("eni-c", vsw, "10.4.0.12", "sg-1")
    net.driver.sync([vpc("vpc-1", "10.4.0.0/16", [vsw], [a, b, c], [allow_all])])
    A, B, C = (net.host(f"eni-{x}") for x in "abc")
    net.tcp_listeners([A, B], [22])
    check_reach({("tcp", A, "10.4.0.11", 22): True, ("tcp", C, "10.4.0.11", 22): True})

    # ARP and foreign ethertypes, watched from b: only a's honest ARP gets through
    def sniffer() -> socket.socket:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind(("eth0", 0))
        return s

    sniff = in_netns(B, sniffer)
    sender = in_netns(A, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
    try:
        sender.bind(("eth0", 0))
        sender.send(_arp_frame(a.mac, a.mac, "10.4.0.10", "10.4.0.201"))  # honest
        sender.send(_arp_frame(a.mac, a.mac, "10.4.0.12", "10.4.0.202"))  # claims c's IP
        sender.send(_arp_frame(a.mac, c.mac, "10.4.0.12", "10.4.0.203"))  # ARP sender MAC of c
        sender.send(_arp_frame(c.mac, c.mac, "10.4.0.12", "10.4.0.204"))  # Ethernet source of c
        ipv6 = (
            b"\xff" * 6
            + bytes.fromhex(a.mac.replace(":", ""))
            + b"\x86\xdd"
            + b"\x60"
            + b"\0" * 39
            + b"nubes-v6"
        )
        sender.send(ipv6)
        seen = b""
        sniff.settimeout(0.05)
        deadline = time.monotonic() + 0.4
        while time.monotonic() < deadline:
            try:
                seen += sniff.recv(2048) + b"|"
            except TimeoutError:
                pass
    finally:
        sniff.close()
        sender.close()
    assert socket.inet_aton("10.4.0.201") in seen
    for marker in ("10.4.0.202", "10.4.0.203", "10.4.0.204"):
        assert socket.inet_aton(marker) not in seen, marker
    assert b"nubes-v6" not in seen

    # IPv4 with a forged source (c's address, a free one, 0.0.0.0) in frames with a's true MAC,
    # and a's address in a frame with a forged MAC, straight to b's MAC: b receives only the
    # honest datagram
    sink = in_netns(B, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sink.bind(("0.0.0.0", 5000))
    sink.settimeout(0.05)
    sender = in_netns(A, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
    try:
        sender.bind(("eth0", 0))
        for source in ("10.4.0.10", "10.4.0.12", "10.4.0.99", "0.0.0.0"):
            sender.send(_udp_frame(a.mac, b.mac, source, "10.4.0.11", 5000, f"from {source}".encode()))
        sender.send(_udp_frame("00:16:3e:99:99:98", b.mac, "10.4.0.10", "10.4.0.11", 5000, b"forged mac"))
        # from udp port 67: guests may not act as DHCP servers
        sender.send(_udp_frame(a.mac, b.mac, "10.4.0.10", "10.4.0.11", 5000, b"dhcp server", sport=67))
        got = set()
        deadline = time.monotonic() + 0.4
        while time.monotonic() < deadline:
            try:
                data, peer = sink.recvfrom(100)
                got.add((peer[0], data))
            except TimeoutError:
                pass
    finally:
        sink.close()
        sender.close()
    assert got == {("10.4.0.10", b"from 10.4.0.10")}

    # a changes its IP: it can reach nothing any more, even with b's MAC known statically
    run(["ip", "-n", A, "addr", "flush", "dev", "eth0"])
    run(["ip", "-n", A, "addr", "replace", "10.4.0.50/24", "dev", "eth0"])
    run(["ip", "-n", A, "route", "replace", "default", "via", vsw.gateway])
    run(["ip", "-n", A, "neigh", "replace", "10.4.0.11", "lladdr", b.mac, "dev", "eth0"])
    run(["ip", "-n", A, "neigh", "replace", vsw.gateway, "lladdr", names.bridge_mac("vsw-1"), "dev", "eth0"])
    # c changes its MAC
    run(["ip", "-n", C, "link", "set", "eth0", "address", "00:16:3e:99:99:99"])
    check_reach(
        {
            ("tcp", A, "10.4.0.11", 22): False,
            ("icmp", A, "10.4.0.11", 0): False,
            ("icmp", A, vsw.gateway, 0): False,
            ("tcp", A, METADATA_ADDRESS, 80): False,
            ("tcp", C, "10.4.0.11", 22): False,
            ("icmp", C, vsw.gateway, 0): False,
            ("tcp", B, "10.4.0.10", 22): False,  # and nothing reaches a at its old address
        }
    )


# ---- lifecycle ---------------------------------------------------------------------------------


def _snapshot(driver: LinuxNetworkDriver, vpcs: list[VpcNet]) -> dict[str, object]:
    """What a sync must not change when nothing changed: namespaces, device ifindexes, pids."""
    state: dict[str, object] = {"netns": sorted(n for n in list_netns() if n.startswith(driver.prefix + "-"))}
    for v in vpcs:
        ns = driver.netns_name(v.vpc_id)
        state[ns] = sorted((link["ifname"], link["ifindex"]) for link in ip_json("link", "show", netns=ns))
        for vsw in v.vswitches:
            state[f"dnsmasq {vsw.vswitch_id}"] = driver.dnsmasq_pid(v.vpc_id, vsw.vswitch_id)
        for port in v.ports:
            if port.host_netns:
                state[port.host_netns] = [
                    (link["ifname"], link["ifindex"])
                    for link in ip_json("addr", "show", netns=port.host_netns)
                ]
    return state


def _dnsmasq_of(run_dir: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            cmd = process_cmdline(int(entry))
            if cmd and os.path.basename(cmd[0]) == "dnsmasq" and any(run_dir in arg for arg in cmd):
                pids.append(int(entry))
    return pids


def test_sync_is_idempotent_survives_restart_and_removes_what_is_gone(net: NetEnv) -> None:
    vsw1 = vswitch("vsw-1", "10.7.1.0/24")
    vsw2 = vswitch("vsw-2", "10.7.2.0/24")
    vsw3 = vswitch("vsw-3", "10.8.0.0/24")
    sg = group("sg-1", rule("ingress", "tcp", "22/22"))
    ports1: list[PortNet] = [
        net.port("eni-a", vsw1, "10.7.1.10", "sg-1"),
        net.port("eni-b", vsw2, "10.7.2.10", "sg-1"),
        net.port("eni-t", vsw1, "10.7.1.20", "sg-1", kind="tap"),
    ]
    v1 = vpc("vpc-1", "10.7.0.0/16", [vsw1, vsw2], ports1, [sg])
    v2 = vpc("vpc-2", "10.8.0.0/16", [vsw3], [net.port("eni-c", vsw3, "10.8.0.10", "sg-1")], [sg])
    driver = net.driver
    t0 = time.monotonic()
    driver.sync([v1, v2])
    first = time.monotonic() - t0
    before = _snapshot(driver, [v1, v2])
    digest = driver.applied_digest("vpc-1")
    t0 = time.monotonic()
    driver.sync([v1, v2])
    second = time.monotonic() - t0
    assert _snapshot(driver, [v1, v2]) == before
    assert driver.applied_digest("vpc-1") == digest
    assert first < 5 and second < 2, (first, second)

    actual = driver.actual()
    assert actual.vpcs == {"vpc-1": {"vsw-1", "vsw-2"}, "vpc-2": {"vsw-3"}}
    assert actual.ports == {"eni-a": "vpc-1", "eni-b": "vpc-1", "eni-t": "vpc-1", "eni-c": "vpc-2"}

    # the tap is in the VPC namespace, on its bridge, up, persistent
    ns1 = driver.netns_name("vpc-1")
    tap = ip_json("-d", "link", "show", "dev", driver.tap_name("eni-t"), netns=ns1)[0]
    assert tap["master"] == driver.bridge_name("vsw-1") and "UP" in tap["flags"]
    assert tap["linkinfo"]["info_data"]["type"] == "tap" and tap["linkinfo"]["info_data"]["persist"]

    # an agent restart: a new driver object re-applies the rules but changes nothing else
    restarted = LinuxNetworkDriver(net.run_dir, prefix=net.prefix)
    net.driver = restarted
    assert restarted.applied_digest("vpc-1") is None
    restarted.sync([v1, v2])
    assert restarted.applied_digest("vpc-1") == digest
    assert _snapshot(restarted, [v1, v2]) == before

    # rules changed behind our back are not noticed (the digest is ours), but a restart heals them
    # -- and deleting a device behind our back is repaired by the next sync
    run(["ip", "-n", ns1, "link", "del", driver.veth_name("eni-a")])
    restarted.sync([v1, v2])
    assert tcp_probe(net.host("eni-b"), "10.7.1.10", 22) in ("refused", "open")

    # shrink: vpc-1 loses vsw-2 (and eni-b) and the tap; vpc-2 goes entirely
    pid_vsw2 = restarted.dnsmasq_pid("vpc-1", "vsw-2")
    assert pid_vsw2 is not None
    v1_small = vpc("vpc-1", "10.7.0.0/16", [vsw1], [ports1[0]], [sg])
    restarted.sync([v1_small])
    assert restarted.actual().vpcs == {"vpc-1": {"vsw-1"}}
    assert restarted.actual().ports == {"eni-a": "vpc-1"}
    assert not process_alive(pid_vsw2)
    assert sorted(n for n in list_netns() if n.startswith(net.prefix + "-")) == sorted(
        [ns1, net.host("eni-a")]
    )
    links = {link["ifname"] for link in ip_json("link", "show", netns=ns1)}
    assert links == {"lo", driver.bridge_name("vsw-1"), driver.veth_name("eni-a")}
    assert len(_dnsmasq_of(str(net.run_dir))) == 1
    assert sorted(p.name for p in (net.run_dir).iterdir()) == ["vpc-1"]

    # everything goes -- but a namespace that only looks like ours (no mark, no state) stays
    foreign = f"{net.prefix}-vpc-notours"
    run(["ip", "netns", "add", foreign])
    restarted.sync([])
    assert list_netns().count(foreign) == 1
    run(["ip", "netns", "delete", foreign])
    assert [n for n in list_netns() if n.startswith(net.prefix + "-")] == []
    assert _dnsmasq_of(str(net.run_dir)) == []
    assert restarted.actual().vpcs == {}
    assert list(net.run_dir.iterdir()) == []
    host_links = [link["ifname"] for link in ip_json("link", "show")]
    assert not [n for n in host_links if n.startswith(("nbr", "ntp", "nve"))]
    restarted.remove_vpc("vpc-1")  # removing what is gone succeeds


def test_ruleset_in_kernel_is_the_rendered_one(net: NetEnv) -> None:
    vsw = vswitch("vsw-1", "10.9.0.0/24")
    sg = group("sg-1", rule("ingress", "tcp", "22/22", rule_id="sgr-ssh"))
    v = vpc("vpc-1", "10.9.0.0/16", [vsw], [net.port("eni-a", vsw, "10.9.0.10", "sg-1")], [sg])
    net.driver.sync([v])
    listing = json.loads(
        run(["ip", "netns", "exec", net.driver.netns_name("vpc-1"), "nft", "-j", "list", "ruleset"])
    )
    tables = {(t["table"]["family"], t["table"]["name"]) for t in listing["nftables"] if "table" in t}
    assert tables == {("bridge", "nubes_guard"), ("inet", "nubes")}
    text = run(["ip", "netns", "exec", net.driver.netns_name("vpc-1"), "nft", "list", "ruleset"])
    assert 'comment "sg-1/sgr-ssh prio 1"' in text
    for key in ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables"):
        assert read_sysctl(net.driver.netns_name("vpc-1"), key) == "1"
