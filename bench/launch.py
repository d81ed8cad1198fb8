"""Launch benchmark: how long RunInstances takes to a booted guest, what a running instance costs
the host in memory, and how DescribeInstances copes with 10,000 instances. Every figure in one run.

(a) Launch time, side by side on the same machine, image and accelerator:
    * bare QEMU: `qemu-img create` an overlay of the tiny image, then `qemu-system-x86_64` started
      by hand (q35, TCG, 1 vCPU, 512 MiB, virtio disk and NIC, user-mode networking with a
      `guestfwd` of 100.100.100.200:80 to a small metadata server of this script), timed from
      the overlay's creation to the guest's ready marker `NUBES-READY` on its serial console;
    * nubes: RunInstances (official SDK, ecs.t5-lc2m1.nano = 1 vCPU, 512 MiB) against a live
      `nubes server --driver real`, timed from the call to the same marker in the instance's
      serial log (run/vms/<id>/serial.log), read directly; the moment DescribeInstances first
      says Running is reported too.
    Both sides boot the same kernel, initramfs and root image, get an address by DHCP and fetch
    their metadata over HTTP before printing the marker. Amount=1 (single trials) and Amount=10
    (one call; bare: ten QEMUs started back to back), p50/p90 over per-instance times, the ratio
    nubes/bare against the target 1.2. Where nubes' time goes is measured from files the server
    writes (overlay, instance directory, QEMU command line, QEMU's handle) and a 100 ms poll of
    DescribeInstances: API call, Pending work (disk overlay), network sync, QEMU start, guest boot.
    The target "under 1 s p50" is for a KVM host; this machine can only run TCG (software
    emulation), which the output says.
(b) Host memory per running tiny instance: RSS and PSS of each QEMU process, the guest RAM
    configured and the part of it the guest has touched (the RSS of QEMU's guest-RAM mapping,
    from /proc/<pid>/smaps), so RSS - touched RAM is QEMU's own memory (TCG translation cache,
    devices, libraries), plus the drop of MemAvailable per instance.
(c) With `nubes server --driver fake`: 10,000 instances created with RunInstances Amount=100,
    then DescribeInstances p50/p99 at PageSize 100 over random pages, without and with filters
    (InstanceName wildcard, Status, VSwitchId, Tag, all together), and NextToken/MaxResults walks.

(d) Hibernation (bench/hibernate_trials.py): StartInstance of a hibernated instance to the guest
    answering, against a cold StartInstance of the same instance and a bare QEMU `-incoming`
    restore of the same memory image, alternating, p50/p99 and the ratio (a)/(c) against 1.2 and
    (a) p50 against 0.5 s. `--skip-hibernate` skips it; `--trials 0,0` runs it alone.

Nothing is asserted: the figures are measured and printed. Every wait is bounded. The servers,
every QEMU, the metadata servers, the server's network namespaces and dnsmasq daemons and the
temporary directories are removed at the end, on Ctrl-C, on SIGTERM or on error.

Run:  .venv/bin/python bench/launch.py [--trials 5,2] [--skip-real] [--skip-fake] [--skip-hibernate]
      [--hibernate-rounds 10] [--json FILE]
The real part needs root, qemu-system-x86, qemu-utils, socat, iproute2, nftables, dnsmasq and
the tiny image (built once into /var/cache/nubes-test/images, or --images-dir).

The trials of (a)/(b) are in launch_trials.py (the nubes side, watching, CPU and memory) and
bare_qemu.py (the bare side), (c) in launch_scale.py, what all benchmarks share in common.py and servers.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bare_qemu import SYSTEM_DISK_GIB, bare_command, bare_trial
from common import (
    GUEST_RAM_MIB,
    GUEST_VCPUS,
    INSTANCE_TYPE,
    add_images_dir_option,
    add_json_option,
    api_error_code,
    fmt_s,
    interrupt_on_signals,
    machine_line,
    median,
    percentile,
    ratio,
    save_json,
    verdict_word,
    vm_machine_info,
)
from hibernate_trials import hibernate_part, print_hibernate_summary
from launch_scale import fake_part, print_fake_summary
from launch_trials import (
    IMAGE_FAMILY,
    IMAGE_NAME,
    MARKER,
    LaunchBench,
    cpu_note,
    delete_and_wait,
    ensure_capacity,
    nubes_trial,
)

TARGET_RATIO = 1.2
KVM_TARGET_P50 = 1.0  # seconds, on a KVM host
REAL_VPC = ("10.241.0.0/16", "10.241.1.0/24")


# ---- options --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    trials1: int
    trials10: int
    amount: int
    skip_real: bool
    skip_fake: bool
    json_path: Path | None
    images_dir: Path
    fake_instances: int
    requests: int
    deployed_requests: int
    settle: float
    boot_timeout: float
    warmup: bool
    seed: int
    skip_hibernate: bool = False
    hibernate_rounds: int = 10


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--trials",
        default="5,2",
        help="launch trials as N1,N10: N1 single launches and N10 batch launches per side "
        "(bare QEMU and nubes alike; default 5,2)",
    )
    parser.add_argument(
        "--amount", type=int, default=10, help="the batch size of the batch trials (default 10)"
    )
    parser.add_argument("--skip-real", action="store_true", help="skip (a) and (b): no root, no VMs")
    parser.add_argument("--skip-fake", action="store_true", help="skip (c)")
    add_json_option(parser)
    add_images_dir_option(parser, "tiny")
    parser.add_argument("--fake-instances", type=int, default=10000, help="instances for (c) (default 10000)")
    parser.add_argument(
        "--requests", type=int, default=200, help="DescribeInstances requests per case in (c) (default 200)"
    )
    parser.add_argument(
        "--deployed-requests",
        type=int,
        default=30,
        help="(c): requests per case while the server's host agent is busy (default 30; each "
        "takes ~0.3 s there)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=10.0,
        help="(c): seconds to watch the fake agent move instances to Running (default 10)",
    )
    parser.add_argument(
        "--boot-timeout",
        type=float,
        default=180.0,
        help="give up on a launch trial after this many seconds (default 180)",
    )
    parser.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help="skip the untimed warm-up launch of each side",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the random page numbers in (c)")
    parser.add_argument("--skip-hibernate", action="store_true", help="skip (d), the hibernation part")
    parser.add_argument(
        "--hibernate-rounds", type=int, default=10, help="rounds of (d), each (a)+(b)+(c) once (default 10)"
    )
    args = parser.parse_args(argv)
    try:
        parts = [int(x) for x in args.trials.split(",")]
    except ValueError:
        parser.error("--trials takes N1,N10, e.g. 5,2")
    if len(parts) == 1:
        parts.append(parts[0])
    if len(parts) != 2 or not all(0 <= n <= 50 for n in parts) or (sum(parts) == 0 and args.skip_hibernate):
        parser.error("--trials takes N1,N10 with 0 <= N <= 50, not both 0 (unless (d) runs)")
    if not 1 <= args.hibernate_rounds <= 100:
        parser.error("--hibernate-rounds must be in [1, 100]")
    if not 2 <= args.amount <= 100:
        parser.error("--amount must be in [2, 100]")
    if not 100 <= args.fake_instances <= 100000 or not 10 <= args.requests <= 10000:
        parser.error("--fake-instances must be in [100, 100000], --requests in [10, 10000]")
    if not 10 <= args.deployed_requests <= 10000:
        parser.error("--deployed-requests must be in [10, 10000]")
    if not 1 <= args.settle <= 600:
        parser.error("--settle must be in [1, 600]")
    if not 10 <= args.boot_timeout <= 1800:
        parser.error("--boot-timeout must be in [10, 1800]")
    if args.skip_real and args.skip_fake:
        parser.error("nothing to do: both parts skipped")
    return Options(
        parts[0],
        parts[1],
        args.amount,
        args.skip_real,
        args.skip_fake,
        args.json_path,
        args.images_dir,
        args.fake_instances,
        args.requests,
        args.deployed_requests,
        args.settle,
        args.boot_timeout,
        args.warmup,
        args.seed,
        args.skip_hibernate,
        args.hibernate_rounds,
    )


# ---- (a)+(b) the real part ------------------------------------------------------------------------


def real_part(bench: LaunchBench, opts: Options, results: dict[str, Any]) -> None:
    from nubes.guest.images import build_image, load_manifest

    manifest = load_manifest(opts.images_dir, IMAGE_NAME)
    if manifest is None:
        print(
            f"  building the {IMAGE_NAME} image into {opts.images_dir} (once; this takes minutes) ...",
            flush=True,
        )
        manifest = build_image(IMAGE_NAME, opts.images_dir)
    srv = bench.server("real", opts.images_dir)
    vpc_id, vswitch, group = srv.network(*REAL_VPC)  # this vSwitch (x.x.1.0/24) only for the capacity probe
    net = {
        "vpc": vpc_id,
        "vswitch": vswitch,
        "group": group,
        "image": srv.image_id(IMAGE_FAMILY, IMAGE_NAME),
        "next_subnet": "2",
    }
    real: dict[str, Any] = {"server_flags": srv.flags, "image": asdict(manifest), "bare": [], "nubes": []}
    results["real"] = real
    print(f"  nubes   : nubes server {' '.join(srv.flags)} (SQLite store in a temporary directory)")
    print(
        f"  image   : {manifest.image_id} (kernel {manifest.kernel_version}), marker {MARKER.decode()} on ttyS0; "
        f"{INSTANCE_TYPE} = {GUEST_VCPUS} vCPU, {GUEST_RAM_MIB} MiB; system disk {SYSTEM_DISK_GIB} GiB overlay"
    )
    sample = bare_command(manifest, opts.images_dir, Path("<dir>"), Path("<dir>/disk.qcow2"), 0, 0)
    print(
        f"  bare    : qemu-img create -f qcow2 -b <rootfs> <dir>/disk.qcow2 {SYSTEM_DISK_GIB}G; "
        f"{' '.join(a if ' ' not in a else repr(a) for a in sample)}"
    )
    print(
        "            (metadata: a Python HTTP server of this script on 127.0.0.1, reached through guestfwd+socat)"
    )

    # Amount=N of a 1-vCPU type needs N vCPU slots on this host (vCPUs x the store's overcommit).
    def probe() -> str | None:
        try:
            ids = srv.run_instances(net["image"], vswitch, group, opts.amount)
        except Exception as exc:  # noqa: BLE001
            return f"{api_error_code(exc)}: {getattr(exc, 'message', exc)}"
        delete_and_wait(bench, srv, ids, {})
        return None

    if opts.trials1 + opts.trials10 == 0:  # (d) alone
        results["hibernate"] = hibernate_part(bench, srv, net, opts.hibernate_rounds, opts.boot_timeout)
        return
    capacity = ensure_capacity(bench, srv, opts.amount * GUEST_VCPUS, opts.amount * GUEST_RAM_MIB, probe)
    real["capacity"] = capacity
    host = capacity["host"]
    line = (
        f"  host    : {host['vcpus']} vCPUs x {host['cpu_overcommit']:g} overcommit = {capacity['vcpu_slots']:g} "
        f"vCPU slots, {host['memory_mib']} MiB x {host['memory_overcommit']:g}"
    )
    if capacity["adjusted"]:
        line += (
            f"; RunInstances Amount={opts.amount} was refused ({capacity['probe_error']}) -> raised the "
            f"host's cpu_overcommit to {capacity['cpu_overcommit']:g} in the store (no API/CLI for it)"
        )
    print(line, flush=True)
    print()

    if opts.warmup:
        t = bare_trial(bench, manifest, opts.images_dir, 1, "warm")
        n = nubes_trial(bench, srv, net, 1, "warm-up")
        real["warmup"] = {"bare": asdict(t), "nubes": asdict(n)}
        first = next(iter(n.per_instance.values()), {})
        flags = "".join(
            f" !!! {side} guest got no metadata" for side, x in (("bare", t), ("nubes", n)) if x.no_metadata
        )
        print(
            f"  warm-up (not counted): bare {fmt_s(t.per_vm[0]['marker'], 5)} s, nubes "
            f"{fmt_s(first.get('marker'), 5)} s (the first launch also decides the accelerator by a trial "
            f"boot; nubes chose {n.accel or '?'}){flags}",
            flush=True,
        )
    accel_cache = srv.data_dir / "run" / "vms" / "accel.json"
    if accel_cache.exists():
        real["accel_verdict"] = json.loads(accel_cache.read_text())

    plan = [(1, i) for i in range(opts.trials1)] + [(opts.amount, i) for i in range(opts.trials10)]
    for amount, i in plan:
        total = opts.trials1 if amount == 1 else opts.trials10
        label = f"{'x1' if amount == 1 else f'x{amount}'}-{i + 1}"
        order = ("bare", "nubes") if i % 2 == 0 else ("nubes", "bare")  # alternate who goes first
        figures: dict[str, str] = {}
        cpu_notes: dict[str, str] = {}
        for side in order:
            if side == "bare":
                bt = bare_trial(bench, manifest, opts.images_dir, amount, label)
                real["bare"].append(asdict(bt))
                figures["bare"] = f"p50 {fmt_s(median([v['marker'] for v in bt.per_vm]), 5)} s"
                cpu_notes["bare"] = cpu_note(bt.cpu, amount)
                if amount > 1:
                    figures["bare"] += f", last {fmt_s(max(v['marker'] for v in bt.per_vm), 5)} s"
                if bt.no_metadata:
                    figures["bare"] += f" !!! {bt.no_metadata} guest(s) got no metadata"
            else:
                nt = nubes_trial(bench, srv, net, amount, label)
                real["nubes"].append(asdict(nt))
                cpu_notes["nubes"] = cpu_note(nt.cpu, amount)
                marks = [v["marker"] for v in nt.per_instance.values()]
                figures["nubes"] = (
                    f"p50 {fmt_s(median(marks), 5)} s"
                    + (f", last {fmt_s(max(marks), 5)} s" if amount > 1 else "")
                    + f" (Running seen p50 "
                    f"{fmt_s(median([v['seen_running'] for v in nt.per_instance.values()]), 5)} s)"
                    + (f" !!! {nt.no_metadata} guest(s) got no metadata" if nt.no_metadata else "")
                )
        print(
            f"  Amount={amount:<3} trial {i + 1}/{total}: bare {figures['bare']}  |  nubes {figures['nubes']}",
            flush=True,
        )
        print(
            f"      CPU-s to the last marker: bare {cpu_notes['bare']}  |  nubes {cpu_notes['nubes']}",
            flush=True,
        )
    if not opts.skip_hibernate:
        results["hibernate"] = hibernate_part(bench, srv, net, opts.hibernate_rounds, opts.boot_timeout)


# ---- summary -----------------------------------------------------------------------------------------


def print_header(info: dict[str, Any], opts: Options) -> None:
    print("nubes launch benchmark")
    print(machine_line(info))
    print(
        f"  accel   : TCG (software emulation) on both sides. /dev/kvm {info['dev_kvm']}"
        f"{' (' + info['kvm_modules'] + ')' if info['kvm_modules'] else ''}, CPU flags "
        f"{'with' if info['vmx_or_svm'] else 'without'} vmx/svm: KVM cannot run a Debian guest here "
        "(see /work/shared/HOST_NOTES.md), so the KVM target (p50 < 1 s) cannot be measured on this machine."
    )
    print(f"  tools   : {info['qemu']}; python {info['python']}")
    parts = []
    if not opts.skip_real:
        parts.append(
            f"(a)+(b) warm-up {'1+1' if opts.warmup else 'none'}, then {opts.trials1} x Amount=1 and "
            f"{opts.trials10} x Amount={opts.amount} per side, alternating"
        )
    if not opts.skip_real and not opts.skip_hibernate:
        parts.append(f"(d) {opts.hibernate_rounds} hibernation rounds, (a)/(b)/(c) alternating")
    if not opts.skip_fake:
        parts.append(
            f"(c) {opts.fake_instances} fake instances, DescribeInstances {opts.deployed_requests} per case "
            f"with the host agent busy, {opts.requests} per case API alone"
        )
    print(f"  plan    : {'; '.join(parts)}", flush=True)


STAGES = [  # (key, label): a timeline per instance, seconds from the RunInstances call
    ("api_return", "RunInstances answered (API call)"),
    ("disk", "system disk overlay created (Pending work)"),
    ("vm_dir", "boot step began, network synced (Starting)"),
    ("qemu_exec", "QEMU exec'd (command line written)"),
    ("qemu_up", "QEMU up (daemonized, devices set up)"),
    ("marker", "guest printed NUBES-READY (guest boot)"),
    ("seen_running", "DescribeInstances says Running"),
]


def summarize_real(real: dict[str, Any], opts: Options) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for amount in (1, opts.amount):
        bare = [vm for t in real["bare"] if t["count"] == amount for vm in t["per_vm"]]
        nubes = [v for t in real["nubes"] if t["amount"] == amount for v in t["per_instance"].values()]
        if not bare or not nubes:
            continue
        b = [v["marker"] for v in bare]
        n = [v["marker"] for v in nubes]
        r = [v["seen_running"] for v in nubes]
        s = {
            "bare_n": len(b),
            "bare_p50": percentile(b, 0.5),
            "bare_p90": percentile(b, 0.9),
            "bare_min": min(b),
            "bare_max": max(b),
            "nubes_n": len(n),
            "nubes_p50": percentile(n, 0.5),
            "nubes_p90": percentile(n, 0.9),
            "nubes_min": min(n),
            "nubes_max": max(n),
            "running_p50": percentile(r, 0.5),
            "running_p90": percentile(r, 0.9),
            "bare_boot_p50": percentile([v["marker"] - v["qemu_exec"] for v in bare], 0.5),
            "bare_overlay_p50": percentile([v["overlay"] - v["start"] for v in bare], 0.5),
            "bare_exec_p50": percentile([v["qemu_exec"] for v in bare], 0.5),
            "timeline": {k: percentile([v[k] for v in nubes], 0.5) for k, _ in STAGES},
            "stages": {},
        }
        s["ratio_p50"] = ratio(s["nubes_p50"], s["bare_p50"])
        s["ratio_p90"] = ratio(s["nubes_p90"], s["bare_p90"])
        previous = None
        for key, _ in STAGES:
            if previous is None:
                s["stages"][key] = percentile([v[key] for v in nubes], 0.5)
            else:
                s["stages"][key] = percentile([v[key] - v[previous] for v in nubes], 0.5)
            previous = key
        s["nubes_boot_p50"] = percentile([v["marker"] - v["qemu_exec"] for v in nubes], 0.5)
        for side, key, size in (("bare", "bare", "count"), ("nubes", "nubes", "amount")):
            trials = [t for t in real[key] if t[size] == amount and t["cpu"]]
            s[f"cpu_{side}"] = {
                k: median([t["cpu"][k] / amount for t in trials])
                for k in ("qemu", "server", "bench", "other", "machine")
            }
        s["seen_starting_p50"] = percentile([v["seen_starting"] for v in nubes], 0.5)
        summary[str(amount)] = s
    mem: dict[str, Any] = {}
    for side, key in (("nubes", "nubes"), ("bare", "bare")):
        samples = [m for t in real[key] for m in t["memory"]]
        drops = [
            t["mem_available_drop_mib"]
            for t in real[key]
            if (t.get("amount") or t.get("count")) == opts.amount
        ]
        if samples:
            mem[side] = {k: percentile([m[k] for m in samples], 0.5) for k in samples[0]}
            mem[side]["n"] = len(samples)
            mem[side]["mem_available_drop_per_vm"] = median(drops)
    summary["memory"] = mem
    summary["no_metadata_bare"] = sum(t["no_metadata"] for t in real["bare"])
    summary["no_metadata_nubes"] = sum(t["no_metadata"] for t in real["nubes"])
    return summary


def by_amount(summary: dict[str, Any], opts: Options) -> Iterator[tuple[int, dict[str, Any]]]:
    """(amount, its summary) for Amount=1 and the batch size, those that were measured."""
    for amount in (1, opts.amount):
        if str(amount) in summary:
            yield amount, summary[str(amount)]


def print_real_summary(summary: dict[str, Any], opts: Options, accel: str) -> None:
    print("\n(a) Launch to the guest's ready marker, seconds (TCG; per-instance times; p50/p90 interpolated)")
    print("    side                                                   n     p50     p90     min     max")
    for amount, s in by_amount(summary, opts):
        bare_label = "bare QEMU, 1 VM" if amount == 1 else f"bare QEMU, {amount} started back to back"
        print(
            f"    {bare_label:<52} {s['bare_n']:>4} {fmt_s(s['bare_p50'], 7)} {fmt_s(s['bare_p90'], 7)} "
            f"{fmt_s(s['bare_min'], 7)} {fmt_s(s['bare_max'], 7)}"
        )
        print(
            f"    {'nubes RunInstances Amount=' + str(amount) + ' -> marker':<52} {s['nubes_n']:>4} "
            f"{fmt_s(s['nubes_p50'], 7)} {fmt_s(s['nubes_p90'], 7)} {fmt_s(s['nubes_min'], 7)} "
            f"{fmt_s(s['nubes_max'], 7)}"
        )
        print(
            f"    {'nubes RunInstances Amount=' + str(amount) + ' -> Running (API)':<52} {s['nubes_n']:>4} "
            f"{fmt_s(s['running_p50'], 7)} {fmt_s(s['running_p90'], 7)}"
        )
        for q in ("p50", "p90"):
            value = s[f"ratio_{q}"]
            print(
                f"    ratio nubes/bare {q} (marker), Amount={amount:<3}{'':<24} {value:7.2f}x   "
                f"target <= {TARGET_RATIO}x: {verdict_word(value <= TARGET_RATIO)}"
            )
        print()
    for side, key in (("bare", "no_metadata_bare"), ("nubes", "no_metadata_nubes")):
        if summary.get(key):
            print(
                f"    !!! {summary[key]} {side} guest(s) printed the marker without an instance id (no network or "
                "metadata; they waited 20 s for it): their times are in the figures above"
            )
    print(
        f"    Both sides: TCG (nubes' accelerator: {accel or '?'}). The KVM target -- RunInstances to the marker "
        f"under {KVM_TARGET_P50:g} s p50 -- needs a KVM host; only TCG can be measured here: NOT measured."
    )
    print(
        "    bare = qemu-img overlay + QEMU started by hand (slirp NIC + guestfwd metadata); nubes = the "
        "RunInstances call to the marker in run/vms/<id>/serial.log (tap on a vSwitch bridge, dnsmasq DHCP, "
        "nubes' metadata service)."
    )

    print("\n    Where nubes' time goes: median per instance, seconds")
    head = "    stage (timeline from the RunInstances call)            "
    print(head + "".join(f"  Amount={a:<3} (+step)" for a in (1, opts.amount) if str(a) in summary))
    for key, label in STAGES:
        cells = ""
        for _, s in by_amount(summary, opts):
            cells += f"  {fmt_s(s['timeline'][key], 7)} (+{fmt_s(s['stages'][key], 5).strip()})"
            cells = cells.ljust(
                len(cells)
                + max(0, 21 - len(f"{fmt_s(s['timeline'][key], 7)} (+{fmt_s(s['stages'][key], 5).strip()})"))
            )
        print(f"    {label:<55}{cells}")
    for amount, s in by_amount(summary, opts):
        print(
            f"    Amount={amount}: guest boot (QEMU exec -> marker) nubes {fmt_s(s['nubes_boot_p50'], 5).strip()} s "
            f"vs bare {fmt_s(s['bare_boot_p50'], 5).strip()} s; control plane before QEMU exec: nubes "
            f"{fmt_s(s['timeline']['qemu_exec'], 5).strip()} s vs bare {fmt_s(s['bare_exec_p50'], 5).strip()} s "
            f"(overlay {fmt_s(s['bare_overlay_p50'], 5).strip()} s); DescribeInstances first said Starting at "
            f"{fmt_s(s['seen_starting_p50'], 5).strip()} s"
        )
    print(
        "    CPU-seconds per instance from the start to the last marker (medians over trials; 'other' = the whole"
        " machine minus the QEMUs, the server and this script: qemu-img, socat, dnsmasq, ip, and anything else"
        " running on the machine):"
    )
    for amount, s in by_amount(summary, opts):
        for side in ("bare", "nubes"):
            c = s[f"cpu_{side}"]
            print(
                f"      Amount={amount:<3} {side:<6} QEMU {c['qemu']:5.2f}  server {c['server']:5.2f}  this script "
                f"{c['bench']:5.2f}  other {c['other']:5.2f}  machine total {c['machine']:5.2f}"
            )
    print(
        "    (file times: overlay first seen by a 5 ms poll; instance dir = its lock file's mtime; QEMU exec = "
        "mtime of run/vms/<id>/cmdline; QEMU up = mtime of handle.json; statuses by a 100 ms DescribeInstances poll)"
    )

    mem = summary.get("memory", {})
    if mem:
        print(
            f"\n(b) Host memory per running tiny instance (guest RAM {GUEST_RAM_MIB} MiB), MiB, median over the QEMU "
            f"processes sampled once the guests were up"
        )
        print(
            "    side       n     RSS     PSS   RAM touched   RSS-RAM cfg   PSS-RAM cfg   RSS-touched   PSS-touched"
            "   MemAvailable drop/VM"
        )
        for side in ("nubes", "bare"):
            m = mem.get(side)
            if not m:
                continue
            print(
                f"    {side:<8} {m['n']:>3} {m['rss']:7.1f} {m['pss']:7.1f} {m['ram_touched']:13.1f} "
                f"{m['rss'] - m['ram_configured']:13.1f} {m['pss'] - m['ram_configured']:13.1f} "
                f"{m['rss'] - m['ram_touched']:13.1f} {m['pss'] - m['ram_touched_pss']:13.1f} "
                f"{m['mem_available_drop_per_vm']:22.1f}"
            )
        print(
            "    RSS-RAM cfg is negative while the guest has not touched all its RAM, so it bounds nothing; the\n"
            "    overhead beyond guest RAM is RSS minus the resident part of the guest-RAM mapping (RSS-touched):\n"
            "    QEMU's own memory -- TCG translation cache (nubes: tb-size=64 MiB; bare: QEMU's default 1 GiB, both\n"
            "    touched only in part), the kernel/initrd images QEMU keeps, devices, libraries. PSS-touched shares\n"
            "    the pages common to all QEMUs (binary, libraries, the same kernel file). MemAvailable drop/VM is\n"
            f"    system-wide over the Amount={opts.amount} trials (includes page cache and everything else)."
        )


# ---- main ---------------------------------------------------------------------------------------------


def preflight(opts: Options) -> None:
    problems = []
    if not opts.skip_real:
        if os.geteuid() != 0:
            problems.append("the real part needs root (network namespaces, taps; use --skip-real)")
        tools = ["qemu-system-x86_64", "qemu-img", "socat", "ip", "nft", "dnsmasq"]
        missing = [t for t in tools if shutil.which(t) is None]
        if missing:
            problems.append(
                f"missing tools: {', '.join(missing)} (Debian: qemu-system-x86 qemu-utils socat "
                "iproute2 nftables dnsmasq-base)"
            )
    try:
        import alibabacloud_ecs20140526  # noqa: F401
        import alibabacloud_vpc20160428  # noqa: F401
    except ImportError:
        problems.append("the official SDKs are missing: pip install -e '.[test]'")
    if problems:
        print("bench/launch.py: " + "; ".join(problems), file=sys.stderr)
        raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_options(argv)
    preflight(opts)
    interrupt_on_signals()
    info = vm_machine_info()
    bench = LaunchBench(opts.boot_timeout)
    results: dict[str, Any] = {"machine": info}

    def body() -> None:
        print_header(info, opts)
        if not opts.skip_real:
            real_part(bench, opts, results)
        if not opts.skip_fake:
            fake_part(bench, opts, results)

    status = bench.run(body, info)
    if status == 0:
        print("\n================ Summary ================")
        if "real" in results and results["real"]["nubes"]:
            results["real"]["summary"] = summarize_real(results["real"], opts)
            accel = next((t["accel"] for t in results["real"]["nubes"] if t["accel"]), "")
            print_real_summary(results["real"]["summary"], opts, accel)
        if "hibernate" in results:
            print_hibernate_summary(results["hibernate"])
        if "fake" in results:
            print_fake_summary(results["fake"])
    bench.print_footer(
        info, f"servers stopped, VMs killed, {bench.prefix}* namespaces removed, temporary files deleted"
    )
    if opts.json_path and status == 0:
        save_json(
            opts.json_path,
            {
                "options": {
                    **asdict(opts),
                    "json_path": str(opts.json_path),
                    "images_dir": str(opts.images_dir),
                },
                **results,
            },
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
