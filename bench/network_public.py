"""network.py's public network: the "internet" namespace on the server's uplink, the VPC with public
addresses and its test hosts, the EIP calls, the shaping the data plane applied (read back with tc),
and the hook for the SNAT side (a NAT gateway, when the server has the API).

The uplink is one veth pair this script makes: its host end (`<prefix>u`) is what the server gets as
`--uplink` (up, no address, IPv6 disabled: the host namespace never gains an address or a route in
the public range), its other end `eth0` of the internet namespace `<prefix>-inet`, which holds the
public range's gateway address. The VPC's leg (a macvlan of the uplink) lives in the VPC's namespace.
"""

from __future__ import annotations

import ipaddress
import json
import re
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import REGION, list_netns, parse_tc_rate, run, wait_for
from netns_probe import LISTENER, in_ns, probe_once
from network_measure import iperf_server
from network_setup import Net, NetBench, Rule, authorize, build_net, create_group, create_test_host

from nubes.drivers.network import names

# TEST-NET-2: never routed, and not the range the other benchmarks or the net tests use.
PUBLIC_CIDR, PUBLIC_GATEWAY = "198.51.100.0/24", "198.51.100.1"
# VPC, vSwitch, the host with the EIP, the holder of a second EIP (made for the associate part).
PUBLIC_VPC = ("10.234.0.0/16", "10.234.1.0/24", "10.234.1.10", "10.234.1.11")
# The SNAT side's own VPC (its NAT gateway's EIP must not be a second public address of PUBLIC_VPC):
# VPC, vSwitch, the source host (no public address of its own).
SNAT_VPC = ("10.235.0.0/16", "10.235.1.0/24", "10.235.1.10")
LISTEN_PORT = 8080  # served in the EIP's test host, authorized from the internet
MAX_BANDWIDTH = 500  # Mbit/s: the most AllocateEipAddress takes (PayByBandwidth; PayByTraffic 200)
APPLY_TIMEOUT = 30.0  # a bandwidth change showing in tc


class ApiFailure(RuntimeError):
    def __init__(self, action: str, code: str, message: str) -> None:
        super().__init__(f"{action}: {code}: {message}")
        self.code = code


def vpc_call(bench: NetBench, action: str, **params: str) -> dict[str, Any]:
    """A VPC API call through the raw v1 client (nothing between the answer and the caller but
    json.loads); ApiFailure with the error code when it is not HTTP 200."""
    raw = bench.nubes.raw
    assert raw is not None
    status, body, _ = raw.call(action, params, product="vpc")
    data: dict[str, Any] = json.loads(body or b"{}")
    if status != 200:
        raise ApiFailure(action, str(data.get("Code", status)), str(data.get("Message", "")))
    return data


# ---- the internet -------------------------------------------------------------------------------


def uplink_name(bench: NetBench) -> str:
    return f"{bench.prefix}u"  # at most 13 characters (IFNAMSIZ allows 15)


def internet_namespace(bench: NetBench) -> str:
    """The internet: a namespace holding PUBLIC_GATEWAY on a veth whose host end is the uplink."""
    ns, uplink = f"{bench.prefix}-inet", uplink_name(bench)
    if ns in list_netns() or Path(f"/sys/class/net/{uplink}").exists():
        raise RuntimeError(f"namespace {ns} or device {uplink} exists already")
    bench.own_netns.append(ns)  # before creating them: cleanup knows them even if this half-works
    bench.own_links.append(uplink)
    run(["ip", "netns", "add", ns])
    run(["ip", "link", "add", uplink, "type", "veth", "peer", "name", "eth0", "netns", ns])
    # No IPv6 on the host end before it is up: no link-local address, no route of it in the host.
    Path(f"/proc/sys/net/ipv6/conf/{uplink}/disable_ipv6").write_text("1")
    run(["ip", "link", "set", "dev", uplink, "up"])
    for args in (
        ["link", "set", "dev", "lo", "up"],
        ["link", "set", "dev", "eth0", "up"],
        ["addr", "add", f"{PUBLIC_GATEWAY}/{PUBLIC_CIDR.split('/')[1]}", "dev", "eth0"],
    ):
        run(["ip", "-n", ns, *args])
    return ns


def host_leaks() -> list[str]:
    """The host namespace's IPv4 addresses and routes (any table) in the public range or the public
    VPC's range: there must be none."""
    ranges = [ipaddress.IPv4Network(c) for c in (PUBLIC_CIDR, PUBLIC_VPC[0])]

    def inside(value: str) -> bool:
        if not value or value == "default":
            return False
        net = ipaddress.IPv4Network(value, strict=False)
        return any(net.overlaps(r) for r in ranges)

    found = []
    for link in json.loads(run(["ip", "-j", "-4", "addr", "show"]) or "[]"):
        found += [
            f"address {a['local']} on {link['ifname']}"
            for a in link.get("addr_info", [])
            if inside(a["local"])
        ]
    for route in json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]) or "[]"):
        if inside(route.get("dst", "")):
            found.append(f"route {route['dst']} (table {route.get('table', 'main')})")
    return found


def server_flags(bench: NetBench) -> list[str]:
    return ["--uplink", uplink_name(bench), "--public-cidr", PUBLIC_CIDR, "--public-gateway", PUBLIC_GATEWAY]


# ---- EIPs -----------------------------------------------------------------------------------------


def allocate(bench: NetBench, bandwidth: int) -> tuple[str, str]:
    """AllocateEipAddress: (allocation id, address)."""
    data = vpc_call(bench, "AllocateEipAddress", Bandwidth=str(bandwidth))
    return str(data["AllocationId"]), str(data["EipAddress"])


def associate(bench: NetBench, allocation: str, eni: str) -> None:
    vpc_call(
        bench, "AssociateEipAddress", AllocationId=allocation, InstanceId=eni, InstanceType="NetworkInterface"
    )


def unassociate(bench: NetBench, allocation: str, eni: str) -> None:
    vpc_call(
        bench,
        "UnassociateEipAddress",
        AllocationId=allocation,
        InstanceId=eni,
        InstanceType="NetworkInterface",
    )


def set_bandwidth(bench: NetBench, allocation: str, mbit: int) -> None:
    vpc_call(bench, "ModifyEipAddressAttribute", AllocationId=allocation, Bandwidth=str(mbit))


def set_unshaped(bench: NetBench, allocation: str, vpc_id: str) -> None:
    """Bandwidth 0 both ways, which the data plane leaves unshaped but the API never sets (1 to 500):
    written to the server's store, then the VPC's generation bumped so that the agent resyncs it
    (what a change from another process does)."""
    with sqlite3.connect(bench.nubes.db_path, timeout=30) as conn:
        conn.execute(
            "UPDATE public_addresses SET bandwidth_out = 0, bandwidth_in = 0 WHERE id = ?", (allocation,)
        )
        bumped = conn.execute(
            "UPDATE network_generations SET generation = generation + 1 WHERE vpc_id = ?", (vpc_id,)
        ).rowcount
        if not bumped:
            conn.execute("INSERT INTO network_generations (vpc_id, generation) VALUES (?, 1)", (vpc_id,))


_CLASS = re.compile(r"^class htb \S+ .*?\brate (\S+)", re.MULTILINE)


def shaped_rates(vpc_ns: str, vpc_id: str) -> tuple[list[float], list[float]]:
    """The HTB class rates (bit/s) on the VPC's leg (outbound) and its ifb (inbound), as the kernel has
    them; empty lists when nothing is shaped (or the devices do not exist)."""
    found = []
    for dev in (names.public_device(vpc_id), names.shaping_device(vpc_id)):
        out = run(["tc", "-n", vpc_ns, "class", "show", "dev", dev], check=False, timeout=10)
        found.append([parse_tc_rate(m) for m in _CLASS.findall(out)])
    return found[0], found[1]


def wait_shaped(vpc_ns: str, vpc_id: str, out_bps: float | None, in_bps: float | None) -> float:
    """Wait until the leg's and ifb's only classes have these rates (None: no class); the seconds."""
    want = ([out_bps] if out_bps else [], [in_bps] if in_bps else [])
    t0 = time.monotonic()
    wait_for(
        lambda: shaped_rates(vpc_ns, vpc_id) == want,
        f"the shaping of {vpc_id} to become out {want[0]} in {want[1]} bit/s",
        timeout=APPLY_TIMEOUT,
        interval=0.02,
    )
    return time.monotonic() - t0


# ---- the VPC with public addresses ----------------------------------------------------------------


@dataclass
class PublicNet:
    net: Net
    group: str
    inet: str  # the internet namespace
    vpc_ns: str
    host: str  # the namespace of the test host with the EIP
    eni: str
    allocation: str
    eip: str
    spare_ip: str  # for a second test host, made when needed (holder of a second EIP)


def build_public(bench: NetBench, inet: str) -> PublicNet:
    """A VPC with one vSwitch and a group that lets the internet's gateway reach LISTEN_PORT; test host A
    with an EIP (Bandwidth MAX_BANDWIDTH) and a listener on LISTEN_PORT; an iperf3 server in the
    internet. Returns once the internet reaches A's listener through the EIP."""
    vpc_cidr, vsw_cidr, a_ip, b_ip = PUBLIC_VPC
    net = build_net(bench, (vpc_cidr, vsw_cidr, a_ip, b_ip))
    group = create_group(bench, net)
    authorize(bench, group, [Rule(LISTEN_PORT, f"{PUBLIC_GATEWAY}/32")])
    eni, host = create_test_host(bench, net, group, a_ip)
    listener = bench.line_child(
        in_ns(host, sys.executable, "-c", LISTENER, str(LISTEN_PORT)), "public-listener"
    )
    if listener.line(30) != "ready":
        raise RuntimeError("the listener in the EIP's test host did not start")
    allocation, eip = allocate(bench, MAX_BANDWIDTH)
    associate(bench, allocation, eni)
    iperf_server(bench, inet, "iperf3-inet")
    pub = PublicNet(net, group, inet, net.vpc_netns, host, eni, allocation, eip, b_ip)
    wait_for(
        lambda: reachable(pub), f"{eip}:{LISTEN_PORT} reachable from the internet", timeout=30, interval=0.2
    )
    return pub


def reachable(pub: PublicNet, timeout: float = 0.3) -> bool:
    return probe_once(pub.inet, pub.eip, LISTEN_PORT, timeout) == "open"


def leg_exists(pub: PublicNet) -> bool:
    """Whether the VPC's leg on the uplink exists (it goes with the VPC's last public address)."""
    dev = names.public_device(pub.net.vpc_id)
    return bool(
        run(["ip", "-n", pub.vpc_ns, "-br", "link", "show", "dev", dev], check=False, timeout=10).strip()
    )


def neighbour_state(pub: PublicNet) -> str:
    """The internet namespace's neighbour (ARP) entry for the EIP: its state, "none" without one."""
    out = run(["ip", "-n", pub.inet, "neigh", "show", pub.eip], check=False, timeout=10).split()
    return out[-1] if out else "none"


# ---- the SNAT side (a NAT gateway) -----------------------------------------------------------------


def snat_side(bench: NetBench) -> tuple[str, str] | str:
    """The hook for the SNAT side of the throughput comparison: a VPC of its own (SNAT_VPC) whose test
    host (no public address) reaches the internet through a NAT gateway's SNAT entry for its vSwitch,
    the gateway's EIP unshaped. (namespace, iperf3 server address), or why it is not measured: any
    failure of ECS's calls (CreateNatGateway, AssociateEipAddress with InstanceType Nat,
    CreateSnatEntry) is a reason, not an error."""
    vpc_cidr, vsw_cidr, source_ip = SNAT_VPC
    net = build_net(bench, (vpc_cidr, vsw_cidr, source_ip, source_ip))
    source = create_test_host(bench, net, create_group(bench, net), source_ip)[1]
    try:
        ngw = str(
            vpc_call(
                bench,
                "CreateNatGateway",
                RegionId=REGION,
                VpcId=net.vpc_id,
                VSwitchId=net.vswitch_id,
                NatType="Enhanced",
                NetworkType="internet",
            )["NatGatewayId"]
        )
    except ApiFailure as exc:
        return "no NAT gateway API" if exc.code == "InvalidAction.NotFound" else str(exc)
    try:

        def gateway() -> dict[str, Any] | None:
            data = vpc_call(bench, "DescribeNatGateways", NatGatewayId=ngw)
            found = data.get("NatGateways", {}).get("NatGateway", [])
            return found[0] if found and found[0].get("Status") == "Available" else None

        described = wait_for(gateway, f"NAT gateway {ngw} Available", interval=0.2)
        table = described["SnatTableIds"]["SnatTableId"][0]
        allocation, address = allocate(bench, MAX_BANDWIDTH)
        vpc_call(bench, "AssociateEipAddress", AllocationId=allocation, InstanceId=ngw, InstanceType="Nat")
        set_unshaped(bench, allocation, net.vpc_id)
        vpc_call(bench, "CreateSnatEntry", SnatTableId=table, SourceVSwitchId=net.vswitch_id, SnatIp=address)
    except (ApiFailure, RuntimeError, KeyError, IndexError) as exc:
        return f"NAT gateway set-up failed: {exc}"
    return source, PUBLIC_GATEWAY
