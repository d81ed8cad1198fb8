"""Public addresses on real namespaces: 1:1 NAT between an uplink and a VPC's ports.

The "internet" is a namespace `<prefix>-inet` holding 198.18.0.1/24 (the public range's gateway,
forwarding, with routes towards the VPCs' private ranges via their public addresses: the worst
neighbour a VPC can have). The uplink is a veth the test creates: one end in the host namespace
(named to the driver as its uplink, up, no address), the other end `eth0` of the internet."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time

import pytest

from nubes.drivers.network import names
from nubes.drivers.network.base import PublicMapping, VpcNet
from nubes.drivers.network.linux import LinuxNetworkDriver
from nubes.drivers.network.proc import CommandError, in_netns, ip, ip_json, run

from .conftest import (
    GATEWAY,
    RANGE,
    NetEnv,
    check_reach,
    group,
    pending_peers,
    public_host_view,
    rule,
    tcp_probe,
    vpc,
    vswitch,
)

pytestmark = pytest.mark.net


def mapping(address_id: str, public_ip: str, private_ip: str, gateway: str = GATEWAY) -> PublicMapping:
    return PublicMapping(address_id, public_ip, private_ip, RANGE, gateway, 5, 10)


def web_vpc(net: NetEnv, vpc_id: str, cidr: str, *public: PublicMapping) -> VpcNet:
    """One vSwitch, port `a` at .10 (tcp 80 open to all) and port `b` at .11, same group."""
    base = cidr.split("/", maxsplit=1)[0].rsplit(".", 2)[0]
    vsw = vswitch(f"vsw-{vpc_id}", f"{base}.0.0/24")
    sg = group(f"sg-{vpc_id}", rule("ingress", "tcp", "80/80"), rule("egress", "all"))
    ports = [
        net.port(f"eni-{vpc_id}-a", vsw, f"{base}.0.10", sg.group_id),
        net.port(f"eni-{vpc_id}-b", vsw, f"{base}.0.11", sg.group_id),
    ]
    return dataclasses.replace(vpc(vpc_id, cidr, [vsw], ports, [sg]), public=tuple(public))


def test_public_ip_is_1_to_1_nat_both_ways_and_goes_with_the_mapping(net: NetEnv, inet: str) -> None:
    before = public_host_view()
    one = web_vpc(net, "vpc-1", "10.60.0.0/16", mapping("eip-1", "198.18.0.10", "10.60.0.10"))
    net.driver.sync([one])
    assert public_host_view() == before  # no route, address or device of the VPC in the host namespace
    A, B = net.host("eni-vpc-1-a"), net.host("eni-vpc-1-b")
    web = net.tcp_listen(A, 80)
    net.tcp_listen(A, 22)
    outside = net.tcp_listen(inet, 8080)
    # The worst neighbour: routes to the VPC's private range and metadata via its public address.
    ip("route", "add", "10.60.0.0/16", "via", "198.18.0.10", netns=inet)
    ip("route", "add", "100.100.100.200/32", "via", "198.18.0.10", netns=inet)
    metadata = net.driver.open_metadata_socket("vpc-1")
    assert metadata is not None
    net.closers.append(metadata.close)

    check_reach(
        {
            ("tcp", inet, "198.18.0.10", 80): True,  # DNAT to a, whose group opens 80
            ("tcp", inet, "198.18.0.10", 22): False,  # the security group still decides
            ("tcp", inet, "10.60.0.10", 80): False,  # no routing into the private range
            ("tcp", inet, "10.60.0.253", 80): False,  # nor to the VPC router
            ("tcp", inet, "100.100.100.200", 80): False,  # nor to the metadata service
            ("tcp", A, GATEWAY, 8080): True,  # SNAT out through the uplink
            ("tcp", B, GATEWAY, 8080): False,  # b has no public address: no way out
        }
    )
    assert pending_peers(web) == {GATEWAY}  # the guest sees the internet's real address
    assert pending_peers(outside) == {"198.18.0.10"}  # the internet sees the public address
    leg = names.public_device("vpc-1")
    ns = net.driver.netns_name("vpc-1")
    assert {
        a["local"] for link in ip_json("addr", "show", "dev", leg, netns=ns) for a in link["addr_info"]
    } == {"198.18.0.10"}
    assert [r.get("gateway") for r in ip_json("route", "show", "default", netns=ns)] == [GATEWAY]

    # A second address, then the first one goes: only the mapping that is left works.
    net.driver.sync_vpc(dataclasses.replace(one, public=(mapping("eip-2", "198.18.0.11", "10.60.0.11"),)))
    net.tcp_listen(B, 80)
    check_reach(
        {
            ("tcp", inet, "198.18.0.10", 80): False,
            ("tcp", inet, "198.18.0.11", 80): True,
            ("tcp", A, GATEWAY, 8080): False,
            ("tcp", B, GATEWAY, 8080): True,
        }
    )
    assert pending_peers(outside) == {"198.18.0.11"}

    # Unassociated: nothing is left of the public path, the host namespace is as it was.
    net.driver.sync_vpc(dataclasses.replace(one, public=()))
    check_reach(
        {
            ("tcp", inet, "198.18.0.10", 80): False,
            ("tcp", inet, "198.18.0.11", 80): False,
            ("tcp", A, GATEWAY, 8080): False,
            ("tcp", B, GATEWAY, 8080): False,
        }
    )
    left = {link["ifname"] for link in ip_json("link", "show", netns=ns)}
    assert leg not in left and names.shaping_device("vpc-1") not in left
    assert ip_json("route", "show", "default", netns=ns) == []
    assert public_host_view() == before


def test_two_vpcs_meet_only_through_public_addresses(net: NetEnv, inet: str) -> None:
    one = web_vpc(net, "vpc-1", "10.60.0.0/16", mapping("eip-1", "198.18.0.10", "10.60.0.10"))
    two = web_vpc(net, "vpc-2", "10.61.0.0/16", mapping("eip-2", "198.18.0.20", "10.61.0.10"))
    net.driver.sync([one, two])
    for private, public in (("10.60.0.0/16", "198.18.0.10"), ("10.61.0.0/16", "198.18.0.20")):
        ip("route", "add", private, "via", public, netns=inet)
    A1, A2 = net.host("eni-vpc-1-a"), net.host("eni-vpc-2-a")
    web1 = net.tcp_listen(A1, 80)
    net.tcp_listen(A2, 80)
    net.tcp_listen(net.host("eni-vpc-1-b"), 80)
    check_reach(
        {
            ("tcp", A2, "198.18.0.10", 80): True,  # public to public: as over the internet
            ("tcp", A2, "10.60.0.10", 80): False,  # never a private address of another VPC
            ("tcp", A2, "10.60.0.11", 80): False,
            ("tcp", A1, "10.61.0.10", 80): False,
            ("tcp", A1, "198.18.0.20", 80): True,
        }
    )
    assert pending_peers(web1) == {"198.18.0.20"}  # the other VPC arrives by its public address


def test_without_uplink_public_mappings_are_not_programmed(net: NetEnv) -> None:
    before = public_host_view()
    one = web_vpc(net, "vpc-1", "10.60.0.0/16", mapping("eip-1", "198.18.0.10", "10.60.0.10"))
    net.driver.sync([one])  # the fixture's driver has no uplink
    ns = net.driver.netns_name("vpc-1")
    assert names.public_device("vpc-1") not in {link["ifname"] for link in ip_json("link", "show", netns=ns)}
    assert ip_json("route", "show", "default", netns=ns) == []
    assert public_host_view() == before
    assert tcp_probe(net.host("eni-vpc-1-a"), GATEWAY, 80) == "unreachable"


def throughput(sender: str, receiver: str, connect_to: str, seconds: float = 2.0) -> float:
    """Mbit/s received by a TCP sink in `receiver` from a bulk sender in `sender` (connecting to
    `connect_to`), over `seconds` after a 0.5 s start (the shaper's first burst left out)."""
    sink = in_netns(receiver, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sink.bind(("0.0.0.0", 5201))
    sink.listen(1)
    source = in_netns(sender, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    stop = threading.Event()

    def send() -> None:
        chunk = b"x" * 65536
        try:
            source.connect((connect_to, 5201))
            while not stop.is_set():
                source.send(chunk)
        except OSError:
            pass

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    sink.settimeout(3)
    try:
        conn, _ = sink.accept()
        conn.settimeout(1)
        start = time.monotonic()
        counted, window_start = 0, start + 0.5
        while (now := time.monotonic()) < window_start + seconds:
            data = conn.recv(1 << 20)
            if not data:
                break
            if now >= window_start:
                counted += len(data)
        conn.close()
        return counted * 8 / seconds / 1e6
    finally:
        stop.set()
        source.close()
        sink.close()
        thread.join(2)


def test_bandwidth_is_shaped_both_ways_and_changed_live(net: NetEnv, inet: str) -> None:
    shaped = PublicMapping("eip-1", "198.18.0.10", "10.60.0.10", RANGE, GATEWAY, 5, 10)
    one = web_vpc(net, "vpc-1", "10.60.0.0/16", shaped)
    # the guest's group must let the sink's port in
    sg = dataclasses.replace(one.security_groups[0], rules=(rule("ingress", "all"), rule("egress", "all")))
    one = dataclasses.replace(one, security_groups=(sg,))
    net.driver.sync([one])
    A = net.host("eni-vpc-1-a")
    public = "198.18.0.10"
    # within 10% of the set bandwidth, as the issue asks of the data plane
    assert 4.5 <= wire_rate(A, inet, GATEWAY, 4.5) <= 5.5
    assert 9.0 <= wire_rate(inet, A, public, 9.0) <= 11.0
    ns = net.driver.netns_name("vpc-1")
    assert "rate 5Mbit" in run(["tc", "-n", ns, "class", "show", "dev", names.public_device("vpc-1")])
    # ModifyEipAddressAttribute: the new bandwidth applies to the running VPC at once
    net.driver.sync_vpc(
        dataclasses.replace(one, public=(dataclasses.replace(shaped, bandwidth_out=50, bandwidth_in=50),))
    )
    assert 45.0 <= wire_rate(A, inet, GATEWAY, 45.0) <= 55.0
    assert 45.0 <= wire_rate(inet, A, public, 45.0) <= 55.0


# Bytes on the wire (what HTB counts: the Ethernet frame) per byte of TCP payload, for full-sized
# segments on a 1500-byte MTU with timestamps: 1514 / 1448.
WIRE_PER_PAYLOAD = 1514 / 1448


def wire_rate(sender: str, receiver: str, connect_to: str, low: float) -> float:
    """The shaped rate in Mbit/s on the wire, from the payload a TCP sink receives. Measured again,
    over longer, when it reads below `low`: a receiver starved of CPU on a loaded machine reads
    low, while a shaper never lets more through than its rate (the upper bound always holds)."""
    rate = throughput(sender, receiver, connect_to) * WIRE_PER_PAYLOAD
    if rate < low:
        rate = max(rate, throughput(sender, receiver, connect_to, seconds=4.0) * WIRE_PER_PAYLOAD)
    return rate


def test_an_address_moved_to_another_vpc_is_reachable_there_at_once(net: NetEnv, inet: str) -> None:
    eip = mapping("eip-1", "198.18.0.10", "10.60.0.10")
    one = web_vpc(net, "vpc-1", "10.60.0.0/16", eip)
    two = web_vpc(net, "vpc-2", "10.61.0.0/16")
    net.driver.sync([one, two])
    first = net.tcp_listen(net.host("eni-vpc-1-a"), 80)
    second = net.tcp_listen(net.host("eni-vpc-2-a"), 80)
    assert tcp_probe(inet, "198.18.0.10", 80) == "open"  # the internet has learnt vpc-1's MAC
    assert pending_peers(first) == {GATEWAY}
    # unassociated from vpc-1's instance, associated with vpc-2's (the VPC without public
    # addresses goes first, as the agent's sorted pass may do)
    net.driver.sync(
        [
            dataclasses.replace(one, public=()),
            dataclasses.replace(two, public=(dataclasses.replace(eip, private_ip="10.61.0.10"),)),
        ]
    )
    assert tcp_probe(inet, "198.18.0.10", 80, timeout=1.0) == "open"  # no wait for a stale ARP entry
    assert pending_peers(second) == {GATEWAY}
    assert pending_peers(first) == set()


def test_a_restarted_driver_keeps_the_leg_and_reapplies_shaping(net: NetEnv, inet: str) -> None:
    one = web_vpc(net, "vpc-1", "10.60.0.0/16", mapping("eip-1", "198.18.0.10", "10.60.0.10"))
    net.driver.sync([one])
    ns, leg = net.driver.netns_name("vpc-1"), names.public_device("vpc-1")

    def leg_index() -> int:
        return int(ip_json("link", "show", "dev", leg, netns=ns)[0]["ifindex"])

    before = leg_index()
    restarted = LinuxNetworkDriver(net.run_dir, prefix=net.prefix, uplink=net.driver.uplink)
    assert restarted.shaping_digest("vpc-1") is None
    restarted.sync([one])
    assert leg_index() == before  # adopted, not recreated
    assert restarted.shaping_digest("vpc-1") == net.driver.shaping_digest("vpc-1")
    net.tcp_listen(net.host("eni-vpc-1-a"), 80)
    assert tcp_probe(inet, "198.18.0.10", 80) == "open"
    assert "rate 5Mbit" in run(["tc", "-n", ns, "class", "show", "dev", leg])


def test_a_missing_uplink_fails_the_sync_but_not_the_private_network(net: NetEnv) -> None:
    net.driver.uplink = f"{net.prefix}nx"  # no such interface
    one = web_vpc(net, "vpc-1", "10.60.0.0/16", mapping("eip-1", "198.18.0.10", "10.60.0.10"))
    with pytest.raises(CommandError):
        net.driver.sync_vpc(one)
    assert net.driver.dnsmasq_pid("vpc-1", "vsw-vpc-1") is not None  # DHCP is up all the same
    net.tcp_listen(net.host("eni-vpc-1-b"), 80)
    assert tcp_probe(net.host("eni-vpc-1-a"), "10.60.0.11", 80) == "open"
