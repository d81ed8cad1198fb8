"""network.py's run and what it builds: the server and the script's own processes (`NetBench`), VPCs,
vSwitches and security groups through the official SDKs, the group's rules, test hosts plugged into a
vSwitch, and the bare veth pair it is compared with. The addresses and ports of the benchmark are here:
every address is only ever configured inside a network namespace.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import REGION, list_netns, run, wait_for
from netns_probe import LineChild, stop_process
from servers import Bench, NubesServer

RULES_PER_CALL = 100  # AuthorizeSecurityGroup takes at most 100 Permissions

# Addresses: only ever configured inside namespaces (the VPCs' by the server, the bare pair's here).
THROUGHPUT_VPC = ("10.231.0.0/16", "10.231.1.0/24", "10.231.1.10", "10.231.1.11")
LATENCY_VPC = ("10.232.0.0/16", "10.232.1.0/24", "10.232.1.10", "10.232.1.11")
BARE_CLIENT, BARE_SERVER, BARE_PREFIXLEN = "10.233.0.1", "10.233.0.2", 30
FILLER_SOURCES = "198.18"  # 198.18.0.0/15 (benchmarking range): never an address of a test host
IPERF_PORT = 5201
UNUSED_PORT = 5202  # not authorized, nothing listens: must be dropped by the group
FIRST_TRIAL_PORT = 30001  # trial ports; fillers use 1000-2999, so they never overlap


# ---- the run: server, resources, cleanup ------------------------------------------------------


class NetBench(Bench):
    """servers.Bench with one `nubes server --driver real` (`nubes`), plus the script's own processes
    (iperf3, the listener, the prober), stopped first, and the bare pair's namespaces."""

    def __init__(self) -> None:
        super().__init__("nubes-bench-net-", "nbn")
        self.processes: list[subprocess.Popen[Any]] = []
        self.children: list[LineChild] = []
        self.own_links: list[str] = []  # devices of the host namespace made here (the uplink's veth)
        self.bare: tuple[str, str] | None = None  # the bare pair, once made (shared by the sections)
        self.iperf_namespaces: set[str] = set()  # where an iperf3 server runs already

    @property
    def nubes(self) -> NubesServer:
        assert self.servers, "the server has not been started"
        return self.servers[0]

    def start_server(self, max_rules: int, extra: Sequence[str] = ()) -> list[str]:
        # --no-build-images: the real server would otherwise debootstrap its system images into the
        # empty data directory during the measurements (and leave a proc mount if stopped mid-way).
        flags = ("--no-build-images", "--throttle-rate", "0", "--max-rules-per-group", str(max_rules), *extra)
        return self.server("real", None, flags=flags, sdk_read_timeout_ms=60000).flags

    def spawn(self, argv: list[str], name: str) -> subprocess.Popen[Any]:
        with open(self.tmp / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.processes.append(proc)
        return proc

    def line_child(self, argv: list[str], name: str) -> LineChild:
        child = LineChild(argv, name, self.tmp / f"{name}.log")
        self.children.append(child)
        return child

    def stop_own(self) -> None:
        for child in reversed(self.children):
            try:
                child.stop()
            except Exception as exc:  # noqa: BLE001 - keep cleaning
                self.notes.append(f"stopping {child.name}: {exc}")
        for proc in reversed(self.processes):
            try:
                stop_process(proc)
            except Exception as exc:  # noqa: BLE001
                self.notes.append(f"stopping pid {proc.pid}: {exc}")

    def close(self) -> None:
        """Bench.close, then the host namespace's own devices (a veth usually went with its peer's
        namespace already; deleted here at once in case that namespace is still being reaped)."""
        super().close()
        for link in self.own_links:
            run(["ip", "link", "del", "dev", link], check=False)
            if Path(f"/sys/class/net/{link}").exists():
                self.notes.append(f"could not delete the host's device {link}")


# ---- building networks through the official SDKs ----------------------------------------------


@dataclass
class Net:
    vpc_id: str
    vswitch_id: str
    vpc_netns: str


def build_net(bench: NetBench, cidrs: tuple[str, str, str, str]) -> Net:
    vpc_cidr, vsw_cidr, _, _ = cidrs
    vpc_id = bench.nubes.create_vpc(vpc_cidr)
    return Net(vpc_id, bench.nubes.create_vswitch(vpc_id, vsw_cidr), f"{bench.prefix}-{vpc_id}")


def create_group(bench: NetBench, net: Net) -> str:
    from alibabacloud_ecs20140526 import models as em

    group = str(
        bench.nubes.ecs.create_security_group(
            em.CreateSecurityGroupRequest(region_id=REGION, vpc_id=net.vpc_id, security_group_type="normal")
        ).body.security_group_id
    )
    bench.nubes.ecs.modify_security_group_policy(
        em.ModifySecurityGroupPolicyRequest(
            region_id=REGION, security_group_id=group, inner_access_policy="Drop"
        )
    )
    return group


@dataclass(frozen=True)
class Rule:
    port: int
    cidr: str

    def fields(self) -> dict[str, str]:
        return {
            "ip_protocol": "tcp",
            "port_range": f"{self.port}/{self.port}",
            "source_cidr_ip": self.cidr,
            "policy": "accept",
            "priority": "1",
        }


def fillers(count: int, vswitch_cidr: str, start: int = 0) -> list[Rule]:
    """Rules that match nothing the benchmark sends: even ones from other /32s (198.18.x.y, no
    test host has such an address), odd ones from the vSwitch's own /24 to ports 1000-2999."""
    rules = []
    for i in range(start, start + count):
        if i % 2 == 0:
            rules.append(Rule(IPERF_PORT, f"{FILLER_SOURCES}.{i // 250}.{i % 250 + 1}/32"))
        else:
            rules.append(Rule(1000 + i, vswitch_cidr))
    return rules


def authorize(bench: NetBench, group: str, rules: Sequence[Rule]) -> None:
    from alibabacloud_ecs20140526 import models as em

    for i in range(0, len(rules), RULES_PER_CALL):
        chunk = rules[i : i + RULES_PER_CALL]
        bench.nubes.ecs.authorize_security_group(
            em.AuthorizeSecurityGroupRequest(
                region_id=REGION,
                security_group_id=group,
                permissions=[em.AuthorizeSecurityGroupRequestPermissions(**r.fields()) for r in chunk],
            )
        )


def revoke(bench: NetBench, group: str, rules: Sequence[Rule]) -> None:
    from alibabacloud_ecs20140526 import models as em

    bench.nubes.ecs.revoke_security_group(
        em.RevokeSecurityGroupRequest(
            region_id=REGION,
            security_group_id=group,
            permissions=[em.RevokeSecurityGroupRequestPermissions(**r.fields()) for r in rules],
        )
    )


def ingress_rule_count(bench: NetBench, group: str) -> int | None:
    from alibabacloud_ecs20140526 import models as em

    try:
        body = bench.nubes.ecs.describe_security_group_attribute(
            em.DescribeSecurityGroupAttributeRequest(
                region_id=REGION, security_group_id=group, direction="ingress"
            )
        ).body
        return len(body.permissions.permission or [])
    except Exception:  # noqa: BLE001 - informational only
        return None


def test_host(bench: NetBench, net: Net, group: str, ip: str) -> str:
    """An interface with this address in `group`, plugged into a test host; its namespace."""
    return create_test_host(bench, net, group, ip)[1]


def create_test_host(bench: NetBench, net: Net, group: str, ip: str) -> tuple[str, str]:
    """An interface with this address in `group`, plugged into a test host: (its id, the namespace)."""
    from alibabacloud_ecs20140526 import models as em

    eni = bench.nubes.ecs.create_network_interface(
        em.CreateNetworkInterfaceRequest(
            region_id=REGION, v_switch_id=net.vswitch_id, security_group_ids=[group], primary_ip_address=ip
        )
    ).body.network_interface_id
    ns = bench.nubes.admin("test-host", "attach", eni, "--netns-prefix", bench.prefix).strip()
    if not ns.startswith(bench.prefix + "-"):
        raise RuntimeError(f"unexpected test-host namespace {ns!r}")

    def has_ip() -> bool:
        if ns not in list_netns():
            return False
        out = run(["ip", "-n", ns, "-4", "addr", "show", "dev", "eth0"], check=False, timeout=10)
        return f"inet {ip}/" in out

    wait_for(has_ip, f"test host {ns} to get {ip}")
    return str(eni), ns


def bare_pair(bench: NetBench) -> tuple[str, str]:
    """Two namespaces of our own joined by one veth pair (eth0 in each); nothing in the host's.
    Made once per run (the sections that compare with it share it)."""
    if bench.bare is not None:
        return bench.bare
    tag = bench.prefix.replace("nbn", "nbbare", 1)
    client, server = f"{tag}-c", f"{tag}-s"
    for ns in (client, server):
        if ns in list_netns():
            raise RuntimeError(f"namespace {ns} exists already")
        bench.own_netns.append(ns)  # before creating it: cleanup knows it even if `add` half-works
        run(["ip", "netns", "add", ns])
        run(["ip", "-n", ns, "link", "set", "dev", "lo", "up"])
    # Created inside the client's namespace, the peer moved straight into the server's.
    run(["ip", "-n", client, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", server])
    for ns, ip in ((client, BARE_CLIENT), (server, BARE_SERVER)):
        run(["ip", "-n", ns, "addr", "add", f"{ip}/{BARE_PREFIXLEN}", "dev", "eth0"])
        run(["ip", "-n", ns, "link", "set", "dev", "eth0", "up"])
    bench.bare = (client, server)
    return bench.bare
