"""Network benchmark: what security groups and the public network cost, and how fast changes bite.

Measurements against one live `nubes server --driver real` (needs root), in one run:

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

3. The public network (network_public.py; the server gets `--uplink` = the host end of a veth whose
   other end is an "internet" namespace holding the public range's gateway): TCP throughput from a
   test host with an EIP to the internet through the 1:1 NAT (bandwidth 0, unshaped, written to the
   store: the API's maximum, 500 Mbit/s, is shaped) and through SNAT when the server has NAT
   gateways, alternating with the bare veth pair (target >= 0.9); the shaping's accuracy at
   --rates (5, 50, 500 Mbit/s, set live with ModifyEipAddressAttribute) both ways (target within
   5 %); AssociateEipAddress returning -> first connection from the internet to the EIP, after an
   UnassociateEipAddress, p50/p99/max over --trials (20), with the EIP the VPC's only public
   address and with a second one. --skip-public, or one part with --skip-public-throughput,
   --skip-shaping, --skip-associate.

Nothing is asserted: the figures are measured and printed. All traffic stays inside network
namespaces created here or by the server (no address or route is added to the host's
namespace). Every wait is bounded in time and every loop in count. The server, iperf3,
the probe processes, the namespaces and the dnsmasq daemons the server started are removed
at the end, on Ctrl-C, on SIGTERM or on error.

Run:  ./nubes-dev bench network [--seconds 5] [--trials N] [--json FILE]    (as root)
  or: .venv/bin/python bench/network.py ...
Needs: root, ip (iproute2), nft (nftables), dnsmasq, iperf3 (Debian packages).

The run and what it builds (server, VPCs, groups, test hosts, the bare pair) are in network_setup.py,
the first two measurements in network_measure.py, the public network in network_public.py and its
measurements in network_public_measure.py, the processes inside the namespaces in netns_probe.py.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common import (
    add_json_option,
    cpu_model,
    first_line,
    fmt_ms,
    interrupt_on_signals,
    machine_line,
    nubes_source,
    save_json,
    verdict_word,
)
from network_measure import TARGET_RATIO, measure_latency, measure_throughput
from network_public import (
    PUBLIC_CIDR,
    PUBLIC_GATEWAY,
    PUBLIC_VPC,
    build_public,
    host_leaks,
    internet_namespace,
    server_flags,
    uplink_name,
)
from network_public_measure import (
    DEFAULT_ASSOCIATE_TRIALS,
    measure_associate,
    measure_public_throughput,
    measure_shaping,
    print_associate,
    print_public_throughput,
    print_shaping,
)
from network_setup import NetBench

DEFAULT_RULE_COUNTS = (1, 100, 1000)
DEFAULT_TRIALS = {1: 30, 100: 30, 1000: 20}
FALLBACK_TRIALS = 20  # for rule counts given with --rules that have no default
DEFAULT_RATES = (5, 50, 500)  # Mbit/s: the shaping section's EIP bandwidths


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
    rates: tuple[int, ...] = DEFAULT_RATES
    skip_public_throughput: bool = False
    skip_shaping: bool = False
    skip_associate: bool = False
    shaping_seconds: float = 10.0

    @property
    def public(self) -> bool:
        """Whether any public-network section runs."""
        return not (self.skip_public_throughput and self.skip_shaping and self.skip_associate)

    def trials_for(self, rules: int) -> int:
        return self.trials if self.trials is not None else DEFAULT_TRIALS.get(rules, FALLBACK_TRIALS)


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="iperf3 duration per run (default 5)")
    parser.add_argument("--runs", type=int, default=3, help="iperf3 runs per side, alternating (default 3)")
    parser.add_argument("--trials", type=int, help="enforcement trials per rule count (default 30, 30, 20)")
    parser.add_argument(
        "--rules",
        default=",".join(map(str, DEFAULT_RULE_COUNTS)),
        help="comma-separated rule counts for the latency part (default 1,100,1000)",
    )
    parser.add_argument(
        "--trial-timeout",
        type=float,
        default=30.0,
        help="give up on one trial after this many seconds (default 30)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=0.001,
        help="the prober starts a connect attempt this often, seconds (default 0.001)",
    )
    parser.add_argument(
        "--attempt-timeout",
        type=float,
        default=0.010,
        help="an attempt not connected after this long counts as dropped (default 0.010)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=0.2,
        help="pause after a revoke is enforced, before the next trial (default 0.2)",
    )
    add_json_option(parser)
    parser.add_argument("--skip-throughput", action="store_true", help="do not run the iperf3 part")
    parser.add_argument("--skip-latency", action="store_true", help="do not run the enforcement-latency part")
    parser.add_argument(
        "--rates",
        default=",".join(map(str, DEFAULT_RATES)),
        help="comma-separated EIP bandwidths (Mbit/s, 1-500) for the shaping part (default 5,50,500)",
    )
    parser.add_argument(
        "--shaping-seconds",
        type=float,
        default=10.0,
        help="iperf3 duration per shaping run, after a 1 s not counted (default 10: at 5 Mbit/s the shaper's "
        "queue holds about 0.2 s of data, which shorter runs do not see arrive)",
    )
    parser.add_argument("--skip-public", action="store_true", help="none of the public-network parts")
    parser.add_argument("--skip-public-throughput", action="store_true", help="not the EIP/SNAT iperf3 part")
    parser.add_argument("--skip-shaping", action="store_true", help="not the EIP shaping-accuracy part")
    parser.add_argument("--skip-associate", action="store_true", help="not the associate -> reachable part")
    args = parser.parse_args(argv)
    try:
        counts = tuple(sorted({int(part) for part in args.rules.split(",") if part.strip()}))
    except ValueError:
        parser.error("--rules takes comma-separated integers, e.g. 1,100,1000")
    if not counts or counts[0] < 1 or counts[-1] > 2000:
        parser.error("--rules values must be between 1 and 2000")
    if not 0 < args.seconds <= 120 or not 1 <= args.runs <= 20 or not 1 <= args.shaping_seconds <= 120:
        parser.error("--seconds must be in (0, 120], --shaping-seconds in [1, 120], --runs in [1, 20]")
    if args.trials is not None and not 1 <= args.trials <= 500:
        parser.error("--trials must be in [1, 500]")
    if not 1 <= args.trial_timeout <= 300 or not 0.0002 <= args.interval <= 0.1:
        parser.error("--trial-timeout must be in [1, 300], --interval in [0.0002, 0.1]")
    if not args.interval <= args.attempt_timeout <= 1 or not 0 <= args.settle <= 10:
        parser.error("--attempt-timeout must be in [--interval, 1], --settle in [0, 10]")
    try:
        rates = tuple(int(part) for part in args.rates.split(",") if part.strip())
    except ValueError:
        parser.error("--rates takes comma-separated integers, e.g. 5,50,500")
    if not rates or not all(1 <= r <= 500 for r in rates):
        parser.error("--rates values must be between 1 and 500 (what ModifyEipAddressAttribute takes)")
    public_skips = [args.skip_public or args.skip_public_throughput, args.skip_public or args.skip_shaping]
    public_skips.append(args.skip_public or args.skip_associate)
    if args.skip_throughput and args.skip_latency and all(public_skips):
        parser.error("nothing to do: every part skipped")
    return Options(
        args.seconds,
        args.runs,
        args.trials,
        counts,
        args.trial_timeout,
        args.interval,
        args.attempt_timeout,
        args.settle,
        args.json_path,
        args.skip_throughput,
        args.skip_latency,
        rates,
        skip_public_throughput=public_skips[0],
        skip_shaping=public_skips[1],
        skip_associate=public_skips[2],
        shaping_seconds=args.shaping_seconds,
    )


# ---- header and summary -----------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    return {
        "nproc": first_line(["nproc"]),
        "cpu": cpu_model(),
        "kernel": platform.release(),
        "nft": first_line(["nft", "--version"]),
        "iperf3": first_line(["iperf3", "--version"]),
        "python": platform.python_version(),
        "nubes": nubes_source(),
        "loadavg_start": os.getloadavg(),
    }


def print_header(info: dict[str, Any], opts: Options, flags: list[str]) -> None:
    print("nubes network benchmark")
    print(machine_line(info))
    print(f"  tools   : {info['nft']}; {info['iperf3']}; python {info['python']}")
    print(f"  server  : nubes server {' '.join(flags)} (SQLite store in a temporary directory)")
    print(f"  nubes   : {info['nubes']}")
    parts = []
    if not opts.skip_throughput:
        parts.append(f"throughput {opts.runs} x {opts.seconds:g} s per side")
    if not opts.skip_latency:
        parts.append("latency " + ", ".join(f"{n} rules x {opts.trials_for(n)}" for n in opts.rule_counts))
    if not opts.skip_public_throughput:
        parts.append(f"public throughput {opts.runs} x {opts.seconds:g} s per side")
    if not opts.skip_shaping:
        parts.append(
            f"shaping {'/'.join(map(str, opts.rates))} Mbit/s x 2 ways x {opts.runs} x {opts.shaping_seconds:g} s"
        )
    if not opts.skip_associate:
        parts.append(f"associate 2 cases x {opts.trials or DEFAULT_ASSOCIATE_TRIALS}")
    print(f"  plan    : {'; '.join(parts)}")


def print_summary(results: dict[str, Any], opts: Options) -> None:
    print("\nSummary")
    tp = results.get("throughput")
    if tp:
        print(f"  TCP throughput, iperf3, median of {opts.runs} x {opts.seconds:g} s (alternating)")
        for side, label in (
            ("nubes", "nubes: vSwitch bridge + 200-rule security group"),
            ("bare", "bare veth pair"),
        ):
            low, high = tp["range_bps"][side]
            print(
                f"    {label:<50} {tp[f'median_{side}_bps'] / 1e9:7.2f} Gbit/s"
                f"   (runs {low / 1e9:.2f} - {high / 1e9:.2f})"
            )
        print(
            f"    ratio nubes/bare                                   {tp['ratio']:7.3f}   "
            f"target >= {TARGET_RATIO}: {verdict_word(tp['met'])}"
        )
    lat = results.get("latency")
    if lat:
        print("  Enforcement latency, ms: AuthorizeSecurityGroup returned -> first connection through")
        print(
            "    rules  trials     p50     p99     max     min  | from call start p50  call p50 |"
            "  revoke->blocked p50    p99  (n)"
        )
        for n in opts.rule_counts:
            s = lat["summary"][str(n)]
            print(
                f"    {n:>5}  {s['enforced']:>3}/{s['trials']:<3} {fmt_ms(s['p50'], 6)}  {fmt_ms(s['p99'], 6)}  {fmt_ms(s['max'], 6)}"
                f"  {fmt_ms(s['min'], 6)}  |             {fmt_ms(s['from_call_start_p50'], 6)}    {fmt_ms(s['call_p50'], 6)} |"
                f"               {fmt_ms(s['revoke_p50'], 6)} {fmt_ms(s['revoke_p99'], 6)}  ({s['revoke_measured']})"
            )
        print(
            "    p99 of 20-30 trials is interpolated between the two largest values: it is close to the max."
        )
        print(
            f"    Resolution: one attempt every {opts.interval * 1000:g} ms. A negative value means the rule was "
            "enforced before the API call had returned (the agent is woken as the change commits)."
        )
        early = sum(lat["summary"][str(n)]["before_return"] for n in opts.rule_counts)
        if early:
            print(f"    {early} trial(s) were enforced before the call returned.")
    if "public_throughput" in results:
        print_public_throughput(results["public_throughput"], opts)
    if "shaping" in results:
        print_shaping(results["shaping"], opts)
    if "associate" in results:
        print_associate(results["associate"])


# ---- main ---------------------------------------------------------------------------------------------


def measure_public(bench: NetBench, opts: Options, inet: str, results: dict[str, Any]) -> None:
    """The public-network sections, on one VPC with an EIP (network_public.py)."""
    pub = build_public(bench, inet)
    print(
        f"\n[public] {pub.net.vpc_id}: EIP {pub.eip} on test host {PUBLIC_VPC[2]}; internet namespace {inet} "
        f"({PUBLIC_GATEWAY}) on the uplink {uplink_name(bench)}"
    )
    ceilings: dict[str, float] = {}
    if "throughput" in results:
        ceilings["bare"] = results["throughput"]["median_bare_bps"]
    if not opts.skip_public_throughput:
        tp = measure_public_throughput(bench, opts, pub)
        results["public_throughput"] = tp
        ceilings.update(eip=tp["median_bps"]["eip"], bare=tp["median_bps"]["bare"])
    if not opts.skip_shaping:
        results["shaping"] = measure_shaping(bench, opts, pub, ceilings)
    if not opts.skip_associate:
        results["associate"] = measure_associate(bench, opts, pub)
    leaks = host_leaks()
    results["host_namespace_leaks"] = leaks
    print(
        f"\n  host namespace: address or route in {PUBLIC_CIDR} or {PUBLIC_VPC[0]} after the public parts: "
        + (", ".join(leaks) if leaks else "none")
    )


def preflight(opts: Options) -> None:
    problems = []
    if os.geteuid() != 0:
        problems.append("needs root (network namespaces, nftables)")
    iperf = not (opts.skip_throughput and opts.skip_public_throughput and opts.skip_shaping)
    tools = ["ip", "nft", "dnsmasq", "ss"] + (["iperf3"] if iperf else []) + (["tc"] if opts.public else [])
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        problems.append(
            f"missing tools: {', '.join(missing)} "
            "(Debian: apt-get install iproute2 nftables dnsmasq-base iperf3)"
        )
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
        inet = internet_namespace(bench) if opts.public else ""
        extra = server_flags(bench) if opts.public else []
        flags = bench.start_server(max(1100, max(opts.rule_counts) + 10), extra)
        print_header(info, opts, flags)
        if not opts.skip_throughput:
            results["throughput"] = measure_throughput(bench, opts)
        if not opts.skip_latency:
            results["latency"] = measure_latency(bench, opts)
        if opts.public:
            measure_public(bench, opts, inet, results)

    status = bench.run(body, info)
    if status == 0:
        print_summary(results, opts)
    bench.print_footer(info, f"server stopped, {bench.prefix}-* namespaces and bare pair removed")
    if opts.json_path and status == 0:
        save_json(opts.json_path, {"options": {**asdict(opts), "json_path": str(opts.json_path)}, **results})
    return status


if __name__ == "__main__":
    sys.exit(main())
