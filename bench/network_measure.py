"""network.py's two measurements: TCP throughput through a vSwitch and a 200-rule security group
against a bare veth pair (iperf3), and the enforcement latency of AuthorizeSecurityGroup (a prober
inside a test host); see network.py's docstring for what each measures and how.
"""

from __future__ import annotations

import functools
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from common import fmt_ms, percentile, ratio, run, wait_for
from netns_probe import LISTENER, PROBER, LineChild, in_ns, probe_once, prober_once, prober_until
from network_setup import (
    BARE_CLIENT,
    BARE_SERVER,
    FIRST_TRIAL_PORT,
    IPERF_PORT,
    LATENCY_VPC,
    THROUGHPUT_VPC,
    UNUSED_PORT,
    NetBench,
    Rule,
    authorize,
    bare_pair,
    build_net,
    create_group,
    fillers,
    ingress_rule_count,
    revoke,
    test_host,
)

if TYPE_CHECKING:
    from network import Options

TARGET_RATIO = 0.9  # throughput: nubes/bare


# ---- throughput ---------------------------------------------------------------------------------


@dataclass
class IperfRun:
    side: str
    round: int
    bits_per_second: float
    retransmits: int | None
    cpu_sender: float | None
    cpu_receiver: float | None
    mss: int | None = None  # the client socket's, as iperf3 reports it


def iperf_server(bench: NetBench, ns: str, name: str) -> None:
    """An iperf3 server in `ns` (once per namespace and run), waited for until it listens."""
    if ns in bench.iperf_namespaces:
        return
    bench.spawn(in_ns(ns, "iperf3", "-s", "-p", str(IPERF_PORT)), name)
    bench.iperf_namespaces.add(ns)

    def listening() -> bool:
        return bool(run(in_ns(ns, "ss", "-Hltn", f"sport = :{IPERF_PORT}"), check=False, timeout=10).strip())

    wait_for(listening, f"iperf3 server in {ns}", timeout=10)


def iperf_client(ns: str, host: str, seconds: float, extra: Sequence[str] = ()) -> dict[str, Any]:
    """`iperf3 -c host ... -J` inside `ns` (`extra`: more options, e.g. -R, -O 1); its JSON."""
    argv = in_ns(ns, "iperf3", "-c", host, "-p", str(IPERF_PORT), "-t", f"{seconds:g}", "-J", *extra)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    try:
        data: dict[str, Any] = json.loads(proc.stdout)
    except ValueError:
        raise RuntimeError(
            f"iperf3 from {ns} to {host}: no JSON ({proc.returncode}): {proc.stderr.strip()}"
        ) from None
    if "error" in data:
        raise RuntimeError(f"iperf3 from {ns} to {host}: {data['error']}")
    return data


def iperf_run(
    side: str, round_: int, ns: str, host: str, seconds: float, extra: Sequence[str] = ()
) -> IperfRun:
    """One iperf3 run, its figure `end.sum_received.bits_per_second`."""
    data = iperf_client(ns, host, seconds, extra)
    end = data.get("end", {})
    cpu = end.get("cpu_utilization_percent", {})
    return IperfRun(
        side,
        round_,
        float(end["sum_received"]["bits_per_second"]),
        end.get("sum_sent", {}).get("retransmits"),
        cpu.get("host_total"),
        cpu.get("remote_total"),
        data.get("start", {}).get("tcp_mss_default"),
    )


def print_run(run_: IperfRun, runs: int, width: int = 5, mbit: bool = False) -> None:
    figure = (
        f"{run_.bits_per_second / 1e6:8.1f} Mbit/s" if mbit else f"{run_.bits_per_second / 1e9:7.2f} Gbit/s"
    )
    print(
        f"  run {run_.round}/{runs}  {run_.side:<{width}}  {figure}"
        f"  (retransmits {run_.retransmits}, cpu client {_pct(run_.cpu_sender)},"
        f" server {_pct(run_.cpu_receiver)})"
    )


def warm_up(sides: dict[str, tuple[str, str]]) -> None:
    """A first 1-second iperf3 run per side (not counted), retried until one works (bounded)."""
    for side, (ns, host) in sides.items():
        wait_for(
            functools.partial(_iperf_ok, ns, host),
            f"a first iperf3 run on the {side} side",
            timeout=20,
            interval=0.5,
        )


def alternate(sides: dict[str, tuple[str, str]], runs: int, seconds: float) -> list[IperfRun]:
    """`runs` iperf3 runs per side, (namespace, server address) each, the order reversed every
    other round (ABBA...); each run printed as it ends."""
    width = max(len(side) for side in sides)
    results: list[IperfRun] = []
    for r in range(runs):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for side in order:
            ns, host = sides[side]
            results.append(iperf_run(side, r + 1, ns, host, seconds))
            print_run(results[-1], runs, width)
    return results


def side_figures(
    runs: list[IperfRun], sides: Sequence[str]
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """Per side: the median bits/s, and the (lowest, highest) run."""
    values = {side: [x.bits_per_second for x in runs if x.side == side] for side in sides}
    return (
        {side: statistics.median(v) for side, v in values.items()},
        {side: (min(v), max(v)) for side, v in values.items()},
    )


def measure_throughput(bench: NetBench, opts: Options) -> dict[str, Any]:
    print("\n[throughput] iperf3 TCP, one stream, client -> server")
    t_setup = time.monotonic()
    net = build_net(bench, THROUGHPUT_VPC)
    _, vsw_cidr, client_ip, server_ip = THROUGHPUT_VPC
    group = create_group(bench, net)
    authorize(bench, group, [*fillers(199, vsw_cidr), Rule(IPERF_PORT, f"{client_ip}/32")])
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
    print(
        f"  nubes: {client_ip} -> {server_ip}, both on vSwitch {net.vswitch_id} of {net.vpc_id}, "
        f"group {group} with {rule_count if rule_count is not None else '?'} ingress rules, inner access Drop"
    )
    print(f"  bare : {BARE_CLIENT} -> {BARE_SERVER}, one veth pair between two namespaces, no firewall")

    # The group must be what decides: an unauthorized port is dropped, the iperf3 port is not.
    # (Retried for a while: the agent applies the group's ruleset asynchronously.)
    enforced = wait_for(
        lambda: probe_once(client_ns, server_ip, UNUSED_PORT) == "dropped",
        f"tcp {UNUSED_PORT} to be dropped by {group}",
        timeout=10,
        interval=0.2,
    )
    print(
        f"  check: tcp {UNUSED_PORT} (no rule) from the client is dropped by the group: {'yes' if enforced else 'NO'}"
    )
    print(f"  set-up took {time.monotonic() - t_setup:.1f} s; warm-up 1 s per side (not counted)")
    warm_up(sides)
    runs = alternate(sides, opts.runs, opts.seconds)
    medians, spread = side_figures(runs, list(sides))
    nubes_bare = ratio(medians["nubes"], medians["bare"])
    return {
        "vpc": net.vpc_id,
        "group": group,
        "rules": rule_count,
        "runs": [asdict(x) for x in runs],
        "median_nubes_bps": medians["nubes"],
        "median_bare_bps": medians["bare"],
        "range_bps": spread,
        "ratio": nubes_bare,
        "target": TARGET_RATIO,
        "met": nubes_bare >= TARGET_RATIO,
    }


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

    @classmethod
    def opened(
        cls, rules: int, port: int, start: float, end: float, res: dict[str, Any], notes: list[str]
    ) -> Trial:
        """A trial from the prober's "until open" result for a call made from `start` to `end`."""
        got = res["result"] == "open"
        t = res["t"] if got else None
        return cls(rules, port, start, end, t, res["attempts"], None if t is None else t - end, notes=notes)


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
        return prober_once(self.prober, port, timeout)

    def until(self, port: int, want: str, action: Any) -> tuple[float, float, dict[str, Any]]:
        """Start the prober's loop, then call `action`; returns (call start, call end, result)."""
        assert self.prober is not None
        return prober_until(self.prober, port, want, action, self.opts.trial_timeout)

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
        trial = Trial.opened(rules, port, start, end, res, notes)
        if trial.latency is None:
            notes.append(f"not enforced within {self.opts.trial_timeout:.0f} s")
        # 3. revoke, and wait until the port is blocked again (confirmed with a slower probe)
        _, trial.revoke_call_end, res = self.until(
            port, "closed", lambda: revoke(self.bench, self.group, [rule])
        )
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
    lat.prober = bench.line_child(
        in_ns(
            host_a, sys.executable, "-u", "-c", PROBER, b_ip, str(opts.interval), str(opts.attempt_timeout)
        ),
        "prober",
    )
    print(
        f"  {a_ip} (prober) -> {b_ip} (listener on {len(ports)} ports), vSwitch {net.vswitch_id} of {net.vpc_id}, "
        f"group {lat.group}, inner access Drop"
    )
    print(
        f"  a connect attempt every {opts.interval * 1000:g} ms, each given {opts.attempt_timeout * 1000:g} ms; "
        f"{opts.settle * 1000:g} ms pause after each revoke; one warm-up trial per rule count (not counted)"
    )

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
        print(
            f"  N={n:<5} {len(trials)} trials in {time.monotonic() - t_start:5.1f} s: "
            f"p50 {fmt_ms(percentile(lats, 0.5), 6)}  p99 {fmt_ms(percentile(lats, 0.99), 6)}  max {fmt_ms(max(lats, default=float('nan')), 6)}"
            f"   (rules in the group: {ingress_rule_count(bench, lat.group)} with the trial rule revoked)"
        )
    lat.prober.send({"cmd": "quit"})
    return {
        "vpc": net.vpc_id,
        "group": lat.group,
        "interval": opts.interval,
        "attempt_timeout": opts.attempt_timeout,
        "trials": {str(n): [asdict(t) for t in ts] for n, ts in results.items()},
        "summary": {str(n): summarize(ts) for n, ts in results.items()},
    }


def summarize(trials: list[Trial]) -> dict[str, Any]:
    lats = [t.latency for t in trials if t.latency is not None]
    from_start = [t.enforced_at - t.call_start for t in trials if t.enforced_at is not None]
    calls = [t.call_end - t.call_start for t in trials]
    revokes = [t.revoke_latency for t in trials if t.revoke_latency is not None]
    return {
        "trials": len(trials),
        "enforced": len(lats),
        "p50": percentile(lats, 0.5),
        "p99": percentile(lats, 0.99),
        "max": max(lats, default=float("nan")),
        "min": min(lats, default=float("nan")),
        "before_return": sum(1 for x in lats if x < 0),
        "from_call_start_p50": percentile(from_start, 0.5),
        "from_call_start_p99": percentile(from_start, 0.99),
        "call_p50": percentile(calls, 0.5),
        "call_p99": percentile(calls, 0.99),
        "revoke_measured": len(revokes),
        "revoke_p50": percentile(revokes, 0.5),
        "revoke_p99": percentile(revokes, 0.99),
        "revoke_max": max(revokes, default=float("nan")),
    }
