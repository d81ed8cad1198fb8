"""network.py's public-network measurements (see network.py's docstring): TCP throughput through an
EIP's 1:1 NAT (and through SNAT, when the server has NAT gateways) against the bare veth pair, the
accuracy of the EIP's bandwidth shaping both ways, and AssociateEipAddress returning -> the EIP
reachable from the internet.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from common import fmt_ms, median, percentile, ratio, relative_error, verdict_word, wire_bps
from netns_probe import PROBER, LineChild, in_ns, prober_once, prober_until
from network_measure import (
    TARGET_RATIO,
    IperfRun,
    Trial,
    alternate,
    iperf_run,
    iperf_server,
    print_run,
    side_figures,
    summarize,
    warm_up,
)
from network_public import (
    LISTEN_PORT,
    MAX_BANDWIDTH,
    PUBLIC_GATEWAY,
    SNAT_VPC,
    PublicNet,
    allocate,
    associate,
    leg_exists,
    neighbour_state,
    set_bandwidth,
    set_unshaped,
    snat_side,
    unassociate,
    wait_shaped,
)
from network_setup import BARE_SERVER, NetBench, bare_pair, create_test_host

from nubes.domain.eips import inbound_bandwidth

if TYPE_CHECKING:
    from network import Options

TARGET_SHAPING = 0.05  # |measured / set - 1| at most
DEFAULT_ASSOCIATE_TRIALS = 20
SLOW = 0.2  # seconds: an associate trial this slow is printed with the internet's ARP state
OMIT = ("-O", "1")  # iperf3: the first second (slow start, the shaper's first burst) not counted


# ---- throughput through the EIP (and SNAT) against the bare pair --------------------------------


def measure_public_throughput(bench: NetBench, opts: Options, pub: PublicNet) -> dict[str, Any]:
    print("\n[public throughput] iperf3 TCP, one stream, test host -> internet, against the bare veth pair")
    print(
        f"  An EIP's Bandwidth is 1-{MAX_BANDWIDTH} Mbit/s through the API and always shaped; 0 (unshaped) is what the"
    )
    print(
        "  data plane takes for no limit: this section writes 0 to the store (then resyncs the VPC) to measure the"
    )
    print(f"  NAT path itself; the shaping section measures {MAX_BANDWIDTH} Mbit/s and below.")
    set_unshaped(bench, pub.allocation, pub.net.vpc_id)
    applied = wait_shaped(pub.vpc_ns, pub.net.vpc_id, None, None)
    print(
        f"  EIP {pub.eip} ({pub.allocation}) unshaped: no tc class left on its leg after {applied * 1000:.0f} ms"
    )
    bare_client, bare_server = bare_pair(bench)
    iperf_server(bench, bare_server, "iperf3-bare")
    sides = {"eip": (pub.host, PUBLIC_GATEWAY)}
    snat = snat_side(bench)
    if isinstance(snat, tuple):
        sides["snat"] = snat
    sides["bare"] = (bare_client, BARE_SERVER)
    print(
        f"  eip  : {pub.net.vpc_id} test host -> vSwitch bridge -> VPC router (SNAT to {pub.eip}) -> macvlan leg"
        f" -> uplink veth -> {PUBLIC_GATEWAY} (internet namespace)"
    )
    print(
        "  snat : "
        + (
            f"{SNAT_VPC[2]} (no public address) -> a NAT gateway's SNAT entry (EIP unshaped) -> {PUBLIC_GATEWAY}"
            if isinstance(snat, tuple)
            else f"SNAT: not measured ({snat})"
        )
    )
    print(f"  bare : one veth pair between two namespaces, no firewall -> {BARE_SERVER}")
    warm_up(sides)
    runs = alternate(sides, opts.runs, opts.seconds)
    medians, spread = side_figures(runs, list(sides))
    set_bandwidth(bench, pub.allocation, MAX_BANDWIDTH)  # back to what the API can say
    ratios = {side: ratio(medians[side], medians["bare"]) for side in sides if side != "bare"}
    by_side = {side: [x.bits_per_second for x in runs if x.side == side] for side in sides}
    paired = {side: median([ratio(a, b) for a, b in zip(by_side[side], by_side["bare"])]) for side in ratios}
    return {
        "eip": pub.eip,
        "snat": None if isinstance(snat, tuple) else snat,
        "runs": [asdict(x) for x in runs],
        "median_bps": medians,
        "range_bps": spread,
        "ratios": ratios,
        "paired_ratio_medians": paired,
        "target": TARGET_RATIO,
        "met": {side: r >= TARGET_RATIO for side, r in ratios.items()},
    }


def print_public_throughput(tp: dict[str, Any], opts: Options) -> None:
    print(
        f"  TCP throughput to the internet, iperf3, median of {opts.runs} x {opts.seconds:g} s (alternating)"
    )
    labels = {
        "eip": "EIP 1:1 NAT (unshaped, bandwidth 0 in the store)",
        "snat": "SNAT through a NAT gateway",
        "bare": "bare veth pair",
    }
    for side, value in tp["median_bps"].items():
        low, high = tp["range_bps"][side]
        print(f"    {labels[side]:<50} {value / 1e9:7.2f} Gbit/s   (runs {low / 1e9:.2f} - {high / 1e9:.2f})")
    for side, value in tp["ratios"].items():
        print(
            f"    ratio {side}/bare{'':<40} {value:7.3f}   target >= {TARGET_RATIO}: {verdict_word(tp['met'][side])}"
            f"   (median of the per-round ratios {tp['paired_ratio_medians'][side]:.3f})"
        )
    if tp["snat"]:
        print(f"    SNAT: not measured ({tp['snat']})")


# ---- shaping accuracy ---------------------------------------------------------------------------


def measure_shaping(
    bench: NetBench, opts: Options, pub: PublicNet, ceilings: dict[str, float]
) -> dict[str, Any]:
    """Per rate: ModifyEipAddressAttribute, wait until tc has it, then --runs iperf3 runs each way
    (out: test host -> internet; in: -R, internet -> test host), out/in alternating."""
    print("\n[shaping] EIP bandwidth (ModifyEipAddressAttribute, live) against iperf3 TCP, both ways")
    print(
        "  out = test host -> internet (HTB on the leg), in = internet -> test host (iperf3 -R; HTB on the ifb);"
    )
    print("  inbound is max(10, Bandwidth) as on ECS. First second of each run not counted (iperf3 -O 1).")
    if "bare" not in ceilings:
        bare_client, bare_server = bare_pair(bench)
        iperf_server(bench, bare_server, "iperf3-bare")
        ceilings["bare"] = iperf_run("bare", 1, bare_client, BARE_SERVER, opts.seconds).bits_per_second
    rows = []
    for mbit in opts.rates:
        t0 = time.monotonic()
        set_bandwidth(bench, pub.allocation, mbit)
        want = {"out": mbit * 1e6, "in": inbound_bandwidth(mbit) * 1e6}
        applied = time.monotonic() - t0 + wait_shaped(pub.vpc_ns, pub.net.vpc_id, want["out"], want["in"])
        print(
            f"  Bandwidth {mbit} Mbit/s: tc has out {mbit}, in {inbound_bandwidth(mbit)} Mbit/s {applied * 1000:.0f} ms after the call"
        )
        runs: list[IperfRun] = []
        for r in range(opts.runs):
            for way in ("out", "in") if r % 2 == 0 else ("in", "out"):
                extra = OMIT if way == "out" else ("-R", *OMIT)
                runs.append(iperf_run(way, r + 1, pub.host, PUBLIC_GATEWAY, opts.shaping_seconds, extra))
                print_run(runs[-1], opts.runs, 3, mbit=True)
        for way in ("out", "in"):
            measured = statistics.median(x.bits_per_second for x in runs if x.side == way)
            mss = next((x.mss for x in runs if x.side == way and x.mss), 1448)
            wire = wire_bps(measured, mss)
            rows.append(
                {
                    "bandwidth": mbit,
                    "way": way,
                    "set_bps": want[way],
                    "goodput_bps": measured,
                    "goodput_error": relative_error(measured, want[way]),
                    "mss": mss,
                    "wire_bps": wire,
                    "wire_error": relative_error(wire, want[way]),
                    "met": abs(relative_error(wire, want[way])) <= TARGET_SHAPING,
                    "applied_seconds": applied,
                    "runs": [asdict(x) for x in runs if x.side == way],
                }
            )
    set_bandwidth(bench, pub.allocation, MAX_BANDWIDTH)
    return {"rows": rows, "ceilings_bps": ceilings, "target": TARGET_SHAPING}


def print_shaping(sh: dict[str, Any], opts: Options) -> None:
    print(f"  EIP shaping, iperf3 TCP, median of {opts.runs} x {opts.shaping_seconds:g} s per rate and way")
    print("    Mbit/s  way     set  goodput   error |  on the wire   error | target within 5 %")
    for row in sh["rows"]:
        print(
            f"    {row['bandwidth']:>6}  {row['way']:<3} {row['set_bps'] / 1e6:7.0f}  {row['goodput_bps'] / 1e6:7.2f}"
            f"  {_signed_pct(row['goodput_error'])} |  {row['wire_bps'] / 1e6:9.2f}  {_signed_pct(row['wire_error'])} |"
            f" {verdict_word(row['met'])}"
        )
    print(
        "    goodput = iperf3's payload rate; on the wire = the Ethernet frames carrying it (payload + 66 bytes"
    )
    print(
        "    per MSS-sized segment), what tc's HTB counts: a perfect shaper gives wire = set and goodput 4.4 % below."
    )
    ceilings = sh["ceilings_bps"]
    parts = [f"bare veth pair {ceilings['bare'] / 1e6:.0f} Mbit/s"]
    if "eip" in ceilings:
        parts.append(f"EIP unshaped {ceilings['eip'] / 1e6:.0f} Mbit/s")
    print(f"    ceilings on this machine (out, medians): {', '.join(parts)}")


def _signed_pct(value: float) -> str:
    return "      -" if math.isnan(value) else f"{value * 100:+6.1f}%"


# ---- AssociateEipAddress returning -> reachable -------------------------------------------------


def measure_associate(bench: NetBench, opts: Options, pub: PublicNet) -> dict[str, Any]:
    """Trials of UnassociateEipAddress (until the internet's connects to EIP:LISTEN_PORT are dropped)
    then AssociateEipAddress (until one connects), with the EIP the VPC's only public address (its
    leg is made each time) and with a second EIP on another test host (the leg stays)."""
    trials = opts.trials or DEFAULT_ASSOCIATE_TRIALS
    print("\n[associate] AssociateEipAddress returning -> first connection from the internet to the EIP")
    prober = bench.line_child(
        in_ns(
            pub.inet,
            sys.executable,
            "-u",
            "-c",
            PROBER,
            pub.eip,
            str(opts.interval),
            str(opts.attempt_timeout),
        ),
        "public-prober",
    )
    print(
        f"  prober in the internet namespace -> {pub.eip}:{LISTEN_PORT} (listener in the test host); a connect"
        f" attempt every {opts.interval * 1000:g} ms, each given {opts.attempt_timeout * 1000:g} ms; one warm-up trial per case"
    )
    cases: dict[str, list[Trial]] = {}
    neighbours: dict[str, list[str]] = {}
    for case in ("only address (leg made)", "second address (leg there)"):
        if case.startswith("second"):
            eni, _ = create_test_host(bench, pub.net, pub.group, pub.spare_ip)
            associate(bench, allocate(bench, MAX_BANDWIDTH)[0], eni)
        trial_of = len(cases)
        associate_trial(bench, opts, pub, prober, trial_of)  # warm-up
        t_start = time.monotonic()
        cases[case], neighbours[case] = [], []
        for _ in range(trials):
            trial, neighbour = associate_trial(bench, opts, pub, prober, trial_of)
            cases[case].append(trial)
            neighbours[case].append(neighbour)
        for i, t in enumerate(cases[case]):
            if t.notes or (t.latency or 0) > SLOW:
                lat = fmt_ms(t.latency, 0).strip()
                print(
                    f"    {case} trial {i + 1}: {lat} ms; the internet's ARP entry for the EIP before the call: "
                    f"{neighbours[case][i]}{'; ' if t.notes else ''}{'; '.join(t.notes)}"
                )
        lats = [t.latency for t in cases[case] if t.latency is not None]
        print(
            f"  {case:<27} {trials} trials in {time.monotonic() - t_start:5.1f} s: p50 {fmt_ms(percentile(lats, 0.5), 6)}"
            f"  p99 {fmt_ms(percentile(lats, 0.99), 6)}  max {fmt_ms(max(lats, default=math.nan), 6)} ms"
        )
    prober.send({"cmd": "quit"})
    return {
        "eip": pub.eip,
        "port": LISTEN_PORT,
        "fields": "revoke_*: UnassociateEipAddress returned -> first of 3 dropped connects",
        "trials": {case: [asdict(t) for t in ts] for case, ts in cases.items()},
        "neighbour_before_associate": neighbours,
        "summary": {case: summarize(ts) for case, ts in cases.items()},
    }


def associate_trial(
    bench: NetBench, opts: Options, pub: PublicNet, prober: LineChild, case: int
) -> tuple[Trial, str]:
    """One trial (`case` 0: the leg must be gone once the EIP is unassociated, 1: it must stay), and
    the internet's neighbour state for the EIP just before AssociateEipAddress."""
    notes = []
    limit = opts.trial_timeout
    _, unassociated, res = prober_until(
        prober, LISTEN_PORT, "closed", lambda: unassociate(bench, pub.allocation, pub.eni), limit
    )
    unreachable = res["t"] - unassociated if res["result"] == "closed" else None
    deadline = time.monotonic() + limit
    while prober_once(prober, LISTEN_PORT, 0.1) in ("open", "refused"):
        unreachable = None
        if time.monotonic() > deadline:
            raise RuntimeError(f"{pub.eip} still reachable {limit:.0f} s after UnassociateEipAddress")
        time.sleep(0.02)
    if unreachable is None:
        notes.append("unassociate -> unreachable not measured (the fast probe's answer was not confirmed)")
    if leg_exists(pub) != bool(case):
        notes.append(
            f"the VPC's leg {'is still there' if case == 0 else 'is gone'} after UnassociateEipAddress"
        )
    neighbour = neighbour_state(pub)
    start, end, res = prober_until(
        prober, LISTEN_PORT, "open", lambda: associate(bench, pub.allocation, pub.eni), limit
    )
    trial = Trial.opened(case, LISTEN_PORT, start, end, res, notes)
    if trial.latency is None:
        notes.append(f"not reachable within {limit:.0f} s")
    if unreachable is not None:
        trial.revoke_call_end, trial.revoke_latency = unassociated, unreachable
        trial.blocked_at = unassociated + unreachable
    time.sleep(opts.settle)
    return trial, neighbour


def print_associate(assoc: dict[str, Any]) -> None:
    print("  AssociateEipAddress returned -> first connection from the internet, ms")
    print(
        "    case                          trials     p50     p99     max     min  | from call start p50  call p50 |"
        "  unassociate->unreachable p50    p99"
    )
    for case, s in assoc["summary"].items():
        print(
            f"    {case:<28}  {s['enforced']:>3}/{s['trials']:<3} {fmt_ms(s['p50'], 6)}  {fmt_ms(s['p99'], 6)}"
            f"  {fmt_ms(s['max'], 6)}  {fmt_ms(s['min'], 6)}  |             {fmt_ms(s['from_call_start_p50'], 6)}"
            f"    {fmt_ms(s['call_p50'], 6)} |                        {fmt_ms(s['revoke_p50'], 6)} {fmt_ms(s['revoke_p99'], 6)}"
        )
