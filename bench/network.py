"""Network benchmark: what security groups cost in throughput, and how fast a new rule bites.

Two measurements against one live `nubes server --driver real` (needs root), in one run:

1. TCP throughput (iperf3, Debian's) between two test hosts on one vSwitch of a VPC, through
   the vSwitch bridge, br_netfilter, conntrack and a security group of 200 ingress rules
   (199 that do not match plus one accept for the iperf3 port from the client's /32; the
   group's inner access is Drop, so that rule is what lets the traffic through), against a
   bare veth pair between two namespaces of this script's own. The two sides alternate
   (ABBA...), --runs times each, --seconds each; the script prints the medians and the
   ratio nubes/bare against the target 0.9.

2. Enforcement latency: the time from AuthorizeSecurityGroup returning to the first TCP
   connection that the new rule lets through, with 1, 100 and 1000 rules in the group
   (N-1 fillers plus the authorized one). A prober process inside host A starts a
   non-blocking connect every --interval (1 ms), each given 10 ms; the latency is the start
   time of the first attempt that got through (CLOCK_MONOTONIC, shared by all namespaces)
   minus the moment the API call returned. The rule is then revoked and the script waits
   until the port is blocked again (that time, revoke -> blocked, is printed as well); each
   trial uses a new port so no conntrack entry can help. p50/p99/max per N.

Nothing is asserted: the figures are measured and printed. All traffic stays inside network
namespaces created here or by the server (no address or route is added to the host's
namespace). Every wait is bounded in time and every loop in count. The server, iperf3,
the probe processes, the namespaces and the dnsmasq daemons the server started are removed
at the end, on Ctrl-C, on SIGTERM or on error.

Run:  ./nubes-dev bench network [--seconds 5] [--trials N] [--json FILE]    (as root)
  or: .venv/bin/python bench/network.py ...
Needs: root, ip (iproute2), nft (nftables), dnsmasq, iperf3 (Debian packages).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common import (
    REGION,
    Bench,
    NubesServer,
    add_json_option,
    cpu_model,
    first_line,
    fmt_ms,
    interrupt_on_signals,
    list_netns,
    machine_line,
    percentile,
    ratio,
    run,
    save_json,
    verdict_word,
    wait_for,
)
from netns_probe import LISTENER, PROBER, LineChild, in_ns, probe_once, stop_process

TARGET_RATIO = 0.9
DEFAULT_RULE_COUNTS = (1, 100, 1000)
DEFAULT_TRIALS = {1: 30, 100: 30, 1000: 20}
FALLBACK_TRIALS = 20  # for rule counts given with --rules that have no default
RULES_PER_CALL = 100  # AuthorizeSecurityGroup takes at most 100 Permissions

# Addresses: only ever configured inside namespaces (the VPCs' by the server, the bare pair's here).
THROUGHPUT_VPC = ("10.231.0.0/16", "10.231.1.0/24", "10.231.1.10", "10.231.1.11")
LATENCY_VPC = ("10.232.0.0/16", "10.232.1.0/24", "10.232.1.10", "10.232.1.11")
BARE_CLIENT, BARE_SERVER, BARE_PREFIXLEN = "10.233.0.1", "10.233.0.2", 30
FILLER_SOURCES = "198.18"  # 198.18.0.0/15 (benchmarking range): never an address of a test host
IPERF_PORT = 5201
UNUSED_PORT = 5202  # not authorized, nothing listens: must be dropped by the group
FIRST_TRIAL_PORT = 30001  # trial ports; fillers use 1000-2999, so they never overlap


# ---- options --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    seconds: float
    runs: int
    trials: int | None
    rule_counts: tuple[int, ...]
    trial_timeout: float
    interval: float
    attempt_timeout: float
    settle: float
    json_path: Path | None
    skip_throughput: bool
    skip_latency: bool

    def trials_for(self, rules: int) -> int:
        return self.trials if self.trials is not None else DEFAULT_TRIALS.get(rules, FALLBACK_TRIALS)


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="iperf3 duration per run (default 5)")
    parser.add_argument("--runs", type=int, default=3, help="iperf3 runs per side, alternating (default 3)")
    parser.add_argument("--trials", type=int, help="enforcement trials per rule count (default 30, 30, 20)")
    parser.add_argument("--rules", default=",".join(map(str, DEFAULT_RULE_COUNTS)),
                        help="comma-separated rule counts for the latency part (default 1,100,1000)")
    parser.add_argument("--trial-timeout", type=float, default=30.0,
                        help="give up on one trial after this many seconds (default 30)")
    parser.add_argument("--interval", type=float, default=0.001,
                        help="the prober starts a connect attempt this often, seconds (default 0.001)")
    parser.add_argument("--attempt-timeout", type=float, default=0.010,
                        help="an attempt not connected after this long counts as dropped (default 0.010)")
    parser.add_argument("--settle", type=float, default=0.2,
                        help="pause after a revoke is enforced, before the next trial (default 0.2)")
    add_json_option(parser)
    parser.add_argument("--skip-throughput", action="store_true", help="do not run the iperf3 part")
    parser.add_argument("--skip-latency", action="store_true", help="do not run the enforcement-latency part")
    args = parser.parse_args(argv)
    try:
        counts = tuple(sorted({int(part) for part in args.rules.split(",") if part.strip()}))
    except ValueError:
        parser.error("--rules takes comma-separated integers, e.g. 1,100,1000")
    if not counts or counts[0] < 1 or counts[-1] > 2000:
        parser.error("--rules values must be between 1 and 2000")
    if not 0 < args.seconds <= 120 or not 1 <= args.runs <= 20:
        parser.error("--seconds must be in (0, 120], --runs in [1, 20]")
    if args.trials is not None and not 1 <= args.trials <= 500:
        parser.error("--trials must be in [1, 500]")
    if not 1 <= args.trial_timeout <= 300 or not 0.0002 <= args.interval <= 0.1:
        parser.error("--trial-timeout must be in [1, 300], --interval in [0.0002, 0.1]")
    if not args.interval <= args.attempt_timeout <= 1 or not 0 <= args.settle <= 10:
        parser.error("--attempt-timeout must be in [--interval, 1], --settle in [0, 10]")
    if args.skip_throughput and args.skip_latency:
        parser.error("nothing to do: both parts skipped")
    return Options(args.seconds, args.runs, args.trials, counts, args.trial_timeout, args.interval,
                   args.attempt_timeout, args.settle, args.json_path, args.skip_throughput, args.skip_latency)


# ---- the run: server, resources, cleanup ------------------------------------------------------


class NetBench(Bench):
    """common.Bench with one `nubes server --driver real` (`nubes`), plus the script's own processes
    (iperf3, the listener, the prober), stopped first, and the bare pair's namespaces."""

    def __init__(self) -> None:
        super().__init__("nubes-bench-net-", "nbn")
        self.processes: list[subprocess.Popen[Any]] = []
        self.children: list[LineChild] = []

    @property
    def nubes(self) -> NubesServer:
        assert self.servers, "the server has not been started"
        return self.servers[0]

    def start_server(self, max_rules: int) -> list[str]:
        flags = ("--throttle-rate", "0", "--max-rules-per-group", str(max_rules))
        return self.server("real", None, flags=flags, sdk_read_timeout_ms=60000).flags

    def spawn(self, argv: list[str], name: str) -> subprocess.Popen[Any]:
        with open(self.tmp / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
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

    group = str(bench.nubes.ecs.create_security_group(em.CreateSecurityGroupRequest(
        region_id=REGION, vpc_id=net.vpc_id, security_group_type="normal")).body.security_group_id)
    bench.nubes.ecs.modify_security_group_policy(em.ModifySecurityGroupPolicyRequest(
        region_id=REGION, security_group_id=group, inner_access_policy="Drop"))
    return group


@dataclass(frozen=True)
class Rule:
    port: int
    cidr: str

    def fields(self) -> dict[str, str]:
        return {"ip_protocol": "tcp", "port_range": f"{self.port}/{self.port}", "source_cidr_ip": self.cidr,
                "policy": "accept", "priority": "1"}


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
        chunk = rules[i:i + RULES_PER_CALL]
        bench.nubes.ecs.authorize_security_group(em.AuthorizeSecurityGroupRequest(
            region_id=REGION, security_group_id=group,
            permissions=[em.AuthorizeSecurityGroupRequestPermissions(**r.fields()) for r in chunk]))


def revoke(bench: NetBench, group: str, rules: Sequence[Rule]) -> None:
    from alibabacloud_ecs20140526 import models as em

    bench.nubes.ecs.revoke_security_group(em.RevokeSecurityGroupRequest(
        region_id=REGION, security_group_id=group,
        permissions=[em.RevokeSecurityGroupRequestPermissions(**r.fields()) for r in rules]))


def ingress_rule_count(bench: NetBench, group: str) -> int | None:
    from alibabacloud_ecs20140526 import models as em

    try:
        body = bench.nubes.ecs.describe_security_group_attribute(em.DescribeSecurityGroupAttributeRequest(
            region_id=REGION, security_group_id=group, direction="ingress")).body
        return len(body.permissions.permission or [])
    except Exception:  # noqa: BLE001 - informational only
        return None


def test_host(bench: NetBench, net: Net, group: str, ip: str) -> str:
    """An interface with this address in `group`, plugged into a test host; its namespace."""
    from alibabacloud_ecs20140526 import models as em

    eni = bench.nubes.ecs.create_network_interface(em.CreateNetworkInterfaceRequest(
        region_id=REGION, v_switch_id=net.vswitch_id, security_group_ids=[group],
        primary_ip_address=ip)).body.network_interface_id
    ns = bench.nubes.admin("test-host", "attach", eni, "--netns-prefix", bench.prefix).strip()
    if not ns.startswith(bench.prefix + "-"):
        raise RuntimeError(f"unexpected test-host namespace {ns!r}")

    def has_ip() -> bool:
        if ns not in list_netns():
            return False
        out = run(["ip", "-n", ns, "-4", "addr", "show", "dev", "eth0"], check=False, timeout=10)
        return f"inet {ip}/" in out

    wait_for(has_ip, f"test host {ns} to get {ip}")
    return ns


def bare_pair(bench: NetBench) -> tuple[str, str]:
    """Two namespaces of our own joined by one veth pair (eth0 in each); nothing in the host's."""
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
    return client, server


# ---- throughput ---------------------------------------------------------------------------------


@dataclass
class IperfRun:
    side: str
    round: int
    bits_per_second: float
    retransmits: int | None
    cpu_sender: float | None
    cpu_receiver: float | None


def iperf_server(bench: NetBench, ns: str, name: str) -> None:
    bench.spawn(in_ns(ns, "iperf3", "-s", "-p", str(IPERF_PORT)), name)

    def listening() -> bool:
        return bool(run(in_ns(ns, "ss", "-Hltn", f"sport = :{IPERF_PORT}"), check=False, timeout=10).strip())

    wait_for(listening, f"iperf3 server in {ns}", timeout=10)


def iperf_client(ns: str, host: str, seconds: float) -> dict[str, Any]:
    argv = in_ns(ns, "iperf3", "-c", host, "-p", str(IPERF_PORT), "-t", f"{seconds:g}", "-J")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    try:
        data: dict[str, Any] = json.loads(proc.stdout)
    except ValueError:
        raise RuntimeError(f"iperf3 from {ns} to {host}: no JSON ({proc.returncode}): {proc.stderr.strip()}") from None
    if "error" in data:
        raise RuntimeError(f"iperf3 from {ns} to {host}: {data['error']}")
    return data


def measure_throughput(bench: NetBench, opts: Options) -> dict[str, Any]:
    print("\n[throughput] iperf3 TCP, one stream, client -> server")
    t_setup = time.monotonic()
    net = build_net(bench, THROUGHPUT_VPC)
    _, vsw_cidr, client_ip, server_ip = THROUGHPUT_VPC
    group = create_group(bench, net)
    authorize(bench, group, fillers(199, vsw_cidr) + [Rule(IPERF_PORT, f"{client_ip}/32")])
    rule_count = ingress_rule_count(bench, group)
    client_ns = test_host(bench, net, group, client_ip)
    server_ns = test_host(bench, net, group, server_ip)
    bare_client, bare_server = bare_pair(bench)
    iperf_server(bench, server_ns, "iperf3-nubes")
    iperf_server(bench, bare_server, "iperf3-bare")
    sides = {
        "nubes": (client_ns, server_ip),
        "bare": (bare_client, BARE_SERVER),
    }
    print(f"  nubes: {client_ip} -> {server_ip}, both on vSwitch {net.vswitch_id} of {net.vpc_id}, "
          f"group {group} with {rule_count if rule_count is not None else '?'} ingress rules, inner access Drop")
    print(f"  bare : {BARE_CLIENT} -> {BARE_SERVER}, one veth pair between two namespaces, no firewall")

    # The group must be what decides: an unauthorized port is dropped, the iperf3 port is not.
    # (Retried for a while: the agent applies the group's ruleset asynchronously.)
    enforced = wait_for(lambda: probe_once(client_ns, server_ip, UNUSED_PORT) == "dropped",
                        f"tcp {UNUSED_PORT} to be dropped by {group}", timeout=10, interval=0.2)
    print(f"  check: tcp {UNUSED_PORT} (no rule) from the client is dropped by the group: {'yes' if enforced else 'NO'}")
    print(f"  set-up took {time.monotonic() - t_setup:.1f} s; warm-up 1 s per side (not counted)")
    for side, (ns, host) in sides.items():
        wait_for(functools.partial(_iperf_ok, ns, host), f"a first iperf3 run on the {side} side", timeout=20,
                 interval=0.5)

    runs: list[IperfRun] = []
    for r in range(opts.runs):
        order = ["nubes", "bare"] if r % 2 == 0 else ["bare", "nubes"]
        for side in order:
            ns, host = sides[side]
            data = iperf_client(ns, host, opts.seconds)
            end = data.get("end", {})
            cpu = end.get("cpu_utilization_percent", {})
            result = IperfRun(side, r + 1, float(end["sum_received"]["bits_per_second"]),
                              end.get("sum_sent", {}).get("retransmits"), cpu.get("host_total"),
                              cpu.get("remote_total"))
            runs.append(result)
            print(f"  run {r + 1}/{opts.runs}  {side:<5}  {result.bits_per_second / 1e9:7.2f} Gbit/s"
                  f"  (retransmits {result.retransmits}, cpu sender {_pct(result.cpu_sender)},"
                  f" receiver {_pct(result.cpu_receiver)})")
    nubes = statistics.median(x.bits_per_second for x in runs if x.side == "nubes")
    bare = statistics.median(x.bits_per_second for x in runs if x.side == "bare")
    nubes_bare = ratio(nubes, bare)
    spread = {side: (min(x.bits_per_second for x in runs if x.side == side),
                     max(x.bits_per_second for x in runs if x.side == side)) for side in sides}
    return {"vpc": net.vpc_id, "group": group, "rules": rule_count, "runs": [asdict(x) for x in runs],
            "median_nubes_bps": nubes, "median_bare_bps": bare, "range_bps": spread, "ratio": nubes_bare,
            "target": TARGET_RATIO, "met": nubes_bare >= TARGET_RATIO}


def _iperf_ok(ns: str, host: str) -> bool:
    try:
        iperf_client(ns, host, 1)
        return True
    except RuntimeError:
        return False


def _pct(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}%"


# ---- enforcement latency --------------------------------------------------------------------------


@dataclass
class Trial:
    rules: int
    port: int
    call_start: float
    call_end: float
    enforced_at: float | None  # start of the first attempt that got through
    attempts: int
    latency: float | None  # enforced_at - call_end
    revoke_call_end: float | None = None
    blocked_at: float | None = None
    revoke_latency: float | None = None
    notes: list[str] = field(default_factory=list)


class Latency:
    def __init__(self, bench: NetBench, opts: Options) -> None:
        self.bench, self.opts = bench, opts
        self.next_port = FIRST_TRIAL_PORT
        self.prober: LineChild | None = None
        self.group = ""
        self.target_ip = ""
        self.source_cidr = ""

    def port(self) -> int:
        port = self.next_port
        self.next_port += 1
        return port

    def once(self, port: int, timeout: float = 0.1) -> str:
        assert self.prober is not None
        self.prober.send({"cmd": "once", "port": port, "timeout": timeout})
        return str(self.prober.recv(timeout + 10)["outcome"])

    def until(self, port: int, want: str, action: Any) -> tuple[float, float, dict[str, Any]]:
        """Start the prober's loop, then call `action`; returns (call start, call end, result)."""
        assert self.prober is not None
        self.prober.send({"cmd": "until", "port": port, "want": want, "limit": self.opts.trial_timeout})
        self.prober.recv(10)  # ack: the loop runs
        start = time.monotonic()
        action()
        end = time.monotonic()
        return start, end, self.prober.recv(self.opts.trial_timeout + 10)

    def trial(self, rules: int) -> Trial:
        port = self.port()
        rule = Rule(port, self.source_cidr)
        notes = []
        # 1. the port must be blocked before the rule exists
        outcome = self.once(port)
        if outcome != "dropped":
            notes.append(f"port {port} was {outcome} before the rule was authorized")
        # 2. authorize, and time the first connection that gets through
        start, end, res = self.until(port, "open", lambda: authorize(self.bench, self.group, [rule]))
        got = res["result"] == "open"
        trial = Trial(rules, port, start, end, res["t"] if got else None, res["attempts"],
                      res["t"] - end if got else None, notes=notes)
        if not got:
            notes.append(f"not enforced within {self.opts.trial_timeout:.0f} s")
        # 3. revoke, and wait until the port is blocked again (confirmed with a slower probe)
        _, trial.revoke_call_end, res = self.until(port, "closed", lambda: revoke(self.bench, self.group, [rule]))
        if res["result"] == "closed":
            trial.blocked_at = res["t"]
            trial.revoke_latency = res["t"] - trial.revoke_call_end
        deadline = time.monotonic() + self.opts.trial_timeout
        while self.once(port, 0.1) != "dropped":
            trial.revoke_latency = None
            if time.monotonic() > deadline:
                raise RuntimeError(f"port {port} still open {self.opts.trial_timeout:.0f} s after the revoke")
            time.sleep(0.02)
        if trial.revoke_latency is None:
            notes.append("revoke -> blocked not measured (the fast probe's answer was not confirmed)")
        time.sleep(self.opts.settle)
        return trial


def measure_latency(bench: NetBench, opts: Options) -> dict[str, Any]:
    print("\n[enforcement latency] AuthorizeSecurityGroup returning -> first connection let through")
    net = build_net(bench, LATENCY_VPC)
    _, vsw_cidr, a_ip, b_ip = LATENCY_VPC
    lat = Latency(bench, opts)
    lat.group = create_group(bench, net)
    lat.target_ip, lat.source_cidr = b_ip, f"{a_ip}/32"
    host_a = test_host(bench, net, lat.group, a_ip)
    host_b = test_host(bench, net, lat.group, b_ip)
    total_trials = sum(opts.trials_for(n) + 1 for n in opts.rule_counts)
    ports = [str(FIRST_TRIAL_PORT + i) for i in range(total_trials)]
    listener = bench.line_child(in_ns(host_b, sys.executable, "-c", LISTENER, *ports), "listener")
    if listener.line(30) != "ready":
        raise RuntimeError("the listener did not start")
    lat.prober = bench.line_child(in_ns(host_a, sys.executable, "-u", "-c", PROBER, b_ip, str(opts.interval),
                                        str(opts.attempt_timeout)), "prober")
    print(f"  {a_ip} (prober) -> {b_ip} (listener on {len(ports)} ports), vSwitch {net.vswitch_id} of {net.vpc_id}, "
          f"group {lat.group}, inner access Drop")
    print(f"  a connect attempt every {opts.interval * 1000:g} ms, each given {opts.attempt_timeout * 1000:g} ms; "
          f"{opts.settle * 1000:g} ms pause after each revoke; one warm-up trial per rule count (not counted)")

    results: dict[int, list[Trial]] = {}
    have = 0
    for n in opts.rule_counts:
        authorize(bench, lat.group, fillers(n - 1 - have, vsw_cidr, start=have))
        have = n - 1
        warm = lat.trial(n)  # also: the fillers are in once its rule works (one atomic ruleset)
        if warm.latency is None:
            raise RuntimeError(f"warm-up trial with {n} rules failed: {warm.notes}")
        count = opts.trials_for(n)
        trials: list[Trial] = []
        t_start = time.monotonic()
        for i in range(count):
            trials.append(lat.trial(n))
            last = trials[-1]
            if last.notes:
                print(f"    N={n} trial {i + 1}: {'; '.join(last.notes)}")
        results[n] = trials
        lats = [t.latency for t in trials if t.latency is not None]
        print(f"  N={n:<5} {len(trials)} trials in {time.monotonic() - t_start:5.1f} s: "
              f"p50 {fmt_ms(percentile(lats, 0.5), 6)}  p99 {fmt_ms(percentile(lats, 0.99), 6)}  max {fmt_ms(max(lats, default=float('nan')), 6)}"
              f"   (rules in the group: {ingress_rule_count(bench, lat.group)} with the trial rule revoked)")
    lat.prober.send({"cmd": "quit"})
    return {"vpc": net.vpc_id, "group": lat.group, "interval": opts.interval, "attempt_timeout": opts.attempt_timeout,
            "trials": {str(n): [asdict(t) for t in ts] for n, ts in results.items()},
            "summary": {str(n): summarize(ts) for n, ts in results.items()}}


def summarize(trials: list[Trial]) -> dict[str, Any]:
    lats = [t.latency for t in trials if t.latency is not None]
    from_start = [t.enforced_at - t.call_start for t in trials if t.enforced_at is not None]
    calls = [t.call_end - t.call_start for t in trials]
    revokes = [t.revoke_latency for t in trials if t.revoke_latency is not None]
    return {
        "trials": len(trials), "enforced": len(lats),
        "p50": percentile(lats, 0.5), "p99": percentile(lats, 0.99),
        "max": max(lats, default=float("nan")), "min": min(lats, default=float("nan")),
        "before_return": sum(1 for x in lats if x < 0),
        "from_call_start_p50": percentile(from_start, 0.5), "from_call_start_p99": percentile(from_start, 0.99),
        "call_p50": percentile(calls, 0.5), "call_p99": percentile(calls, 0.99),
        "revoke_measured": len(revokes), "revoke_p50": percentile(revokes, 0.5),
        "revoke_p99": percentile(revokes, 0.99), "revoke_max": max(revokes, default=float("nan")),
    }


# ---- header and summary -----------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    return {
        "nproc": first_line(["nproc"]),
        "cpu": cpu_model(),
        "kernel": platform.release(),
        "nft": first_line(["nft", "--version"]),
        "iperf3": first_line(["iperf3", "--version"]),
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
    }


def print_header(info: dict[str, Any], opts: Options, flags: list[str]) -> None:
    print("nubes network benchmark")
    print(machine_line(info))
    print(f"  tools   : {info['nft']}; {info['iperf3']}; python {info['python']}")
    print(f"  server  : nubes server {' '.join(flags)} (SQLite store in a temporary directory)")
    parts = []
    if not opts.skip_throughput:
        parts.append(f"throughput {opts.runs} x {opts.seconds:g} s per side")
    if not opts.skip_latency:
        parts.append("latency " + ", ".join(f"{n} rules x {opts.trials_for(n)}" for n in opts.rule_counts))
    print(f"  plan    : {'; '.join(parts)}")


def print_summary(results: dict[str, Any], opts: Options) -> None:
    print("\nSummary")
    tp = results.get("throughput")
    if tp:
        print(f"  TCP throughput, iperf3, median of {opts.runs} x {opts.seconds:g} s (alternating)")
        for side, label in (("nubes", "nubes: vSwitch bridge + 200-rule security group"), ("bare", "bare veth pair")):
            low, high = tp["range_bps"][side]
            print(f"    {label:<50} {tp[f'median_{side}_bps'] / 1e9:7.2f} Gbit/s"
                  f"   (runs {low / 1e9:.2f} - {high / 1e9:.2f})")
        print(f"    ratio nubes/bare                                   {tp['ratio']:7.3f}   "
              f"target >= {TARGET_RATIO}: {verdict_word(tp['met'])}")
    lat = results.get("latency")
    if lat:
        print("  Enforcement latency, ms: AuthorizeSecurityGroup returned -> first connection through")
        print("    rules  trials     p50     p99     max     min  | from call start p50  call p50 |"
              "  revoke->blocked p50    p99  (n)")
        for n in opts.rule_counts:
            s = lat["summary"][str(n)]
            print(f"    {n:>5}  {s['enforced']:>3}/{s['trials']:<3} {fmt_ms(s['p50'], 6)}  {fmt_ms(s['p99'], 6)}  {fmt_ms(s['max'], 6)}"
                  f"  {fmt_ms(s['min'], 6)}  |             {fmt_ms(s['from_call_start_p50'], 6)}    {fmt_ms(s['call_p50'], 6)} |"
                  f"               {fmt_ms(s['revoke_p50'], 6)} {fmt_ms(s['revoke_p99'], 6)}  ({s['revoke_measured']})")
        print("    p99 of 20-30 trials is interpolated between the two largest values: it is close to the max.")
        print(f"    Resolution: one attempt every {opts.interval * 1000:g} ms. A negative value means the rule was "
              "enforced before the API call had returned (the agent is woken as the change commits).")
        early = sum(lat["summary"][str(n)]["before_return"] for n in opts.rule_counts)
        if early:
            print(f"    {early} trial(s) were enforced before the call returned.")


# ---- main ---------------------------------------------------------------------------------------------


def preflight(opts: Options) -> None:
    problems = []
    if os.geteuid() != 0:
        problems.append("needs root (network namespaces, nftables)")
    tools = ["ip", "nft", "dnsmasq", "ss"] + ([] if opts.skip_throughput else ["iperf3"])
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        problems.append(f"missing tools: {', '.join(missing)} "
                        "(Debian: apt-get install iproute2 nftables dnsmasq-base iperf3)")
    if problems:
        print("bench/network.py: " + "; ".join(problems), file=sys.stderr)
        raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_options(argv)
    preflight(opts)
    interrupt_on_signals()
    info = machine_info()
    bench = NetBench()
    results: dict[str, Any] = {"machine": info}

    def body() -> None:
        flags = bench.start_server(max(1100, max(opts.rule_counts) + 10))
        print_header(info, opts, flags)
        if not opts.skip_throughput:
            results["throughput"] = measure_throughput(bench, opts)
        if not opts.skip_latency:
            results["latency"] = measure_latency(bench, opts)

    status = bench.run(body, info)
    if status == 0:
        print_summary(results, opts)
    bench.print_footer(info, f"server stopped, {bench.prefix}-* namespaces and bare pair removed")
    if opts.json_path and status == 0:
        save_json(opts.json_path, {"options": {**asdict(opts), "json_path": str(opts.json_path)}, **results})
    return status


if __name__ == "__main__":
    sys.exit(main())
