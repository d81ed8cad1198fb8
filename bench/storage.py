"""Storage benchmark: how long snapshots and disks from snapshots take, and what a guest gets
out of a throttled cloud disk against the host's own file system. Every figure in one run.

(1) CreateSnapshot of a 20 GiB cloud_essd (PL1) data disk with 1, 4 and 8 GiB written, timed
    from the API call until DescribeSnapshots says `accomplished` (polled every 5 ms over one
    keep-alive connection), several trials each, p50/p90:
    * Available disk (no VM has it open): the data is written on the host with `qemu-io`
      (O_DIRECT, a byte pattern in 256 MiB requests) straight into the disk's top-layer file
      before the first snapshot; snapshots are taken in rounds (1, 4, 8 GiB, 1, 4, 8 GiB, ...);
    * disk attached (hot-plugged) to a RUNNING instance, so the snapshot is a live one through
      QMP: the data is written from inside the guest with `dd oflag=direct` right before that
      size's first snapshot (or with qemu-io before the attach: --live-fill host); then a write
      burst snapshotted at once, and the same after a host `sync` (twice each), to show
      what a live snapshot waits for (QEMU's flush of the old top layer).
    The target is constant in the data written, under 200 ms.
(2) CreateDisk from each size's first snapshot (the one that froze the data), timed until
    DescribeDisks says `Available`; the first new disk of each size is checked with qemu-io
    (the pattern below the written size, zeros above). Target: constant.
(3) fio, the very same binary on both sides (the host's /usr/bin/fio and the shared libraries
    `ldd` lists, copied into the Debian 12 guest under /opt/fio): sequential write, 1 MiB
    blocks, and 4 KiB random read, both O_DIRECT and libaio, on
    * a file of the host's file system, in the directory of nubes' disk layers;
    * a hot-plugged cloud_essd data disk of the guest (the raw /dev/vdX), at a PL1 size whose
      cap (QEMU throttle group: iops-total and bps-total from domain.disk_categories.limits)
      a TCG guest can reach, and at a size whose cap it cannot.
    Ratios guest/host and guest/cap (targets: >= 0.8 of the host where the cap allows, IOPS
    within 10 % of the cap).

Only software emulation (TCG) runs guests on these machines: the guest figures are TCG figures.
Nothing is asserted: the figures are measured and printed. Every wait is bounded. The server,
every QEMU, the server's network namespaces and dnsmasq daemons and the temporary directory are
removed at the end, on Ctrl-C, on SIGTERM or on error (servers.py's `Bench.close`).

Run:  .venv/bin/python bench/storage.py [--trials 8] [--skip-guest] [--json FILE]
Needs root, qemu-system-x86, qemu-utils (qemu-img, qemu-io), iproute2, nftables, dnsmasq,
openssh-client, fio, the official SDKs and the Debian 12 image in /var/cache/nubes-test/images.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from common import (
    first_line,
    fmt_ms,
    fmt_num,
    interrupt_on_signals,
    machine_line,
    percentile,
    ratio,
    save_json,
    verdict_word,
    vm_machine_info,
)
from servers import Bench
from storage_cloud import (
    CATEGORY,
    IMAGE_NAME,
    LEVEL,
    Cloud,
    Guest,
    allocated_mib,
    content_ok,
    delete_guest,
    dirty_mib,
    fill,
    launch_guest,
)
from storage_fio import fio_part
from storage_options import (
    BURSTS,
    CAP_TOLERANCE,
    RATIO_TARGET,
    SETTLE,
    SNAPSHOT_TARGET_S,
    Options,
    parse_options,
)

# ---- (1) and (2): snapshots and disks from snapshots ----------------------------------------------------


def rounds(
    opts: Options,
    label: str,
    entries: dict[str, dict[str, Any]],
    trial: Callable[[int, dict[str, Any], int], dict[str, Any]],
) -> None:
    """opts.trials rounds over the sizes (1, 4, 8, 1, 4, 8, ...): trial(GiB, entry, round) is
    appended to entry["trials"]; one line per round."""
    for k in range(opts.trials):
        line = []
        for gib, entry in entries.items():
            result = trial(int(gib), entry, k)
            entry["trials"].append(result)
            line.append(f"{gib} GiB {fmt_ms(result['seconds'], 1).strip()} ms")
            time.sleep(SETTLE)
        print(f"  {label}round {k + 1}/{opts.trials}: " + ", ".join(line), flush=True)


def snapshot_part(cloud: Cloud, guest: Guest | None, results: dict[str, Any]) -> None:
    opts = cloud.opts
    part: dict[str, Any] = {"available": {}, "live": {}, "create_disk": {}}
    results["snapshots"] = part
    print(
        f"\n(1) CreateSnapshot of a {opts.disk_gib} GiB {CATEGORY} {LEVEL} disk -> 'accomplished' "
        f"(DescribeSnapshots every {opts.poll_interval * 1000:g} ms)",
        flush=True,
    )

    # Available disks: filled on the host, then snapshotted in rounds over the sizes.
    blank_create: list[float] = []
    for gib in opts.written_gib:
        made = cloud.create_disk(opts.disk_gib)
        blank_create.append(made["seconds"])
        path = cloud.layer(made["disk_id"])
        written = fill(path, gib)
        part["available"][str(gib)] = {"disk_id": made["disk_id"], "fill": written, "trials": []}
        print(
            f"  Available {made['disk_id']}: {gib} GiB written with qemu-io in {written['seconds']:.1f} s "
            f"({written['mib_per_s']:.0f} MiB/s), top layer holds {written['allocated_mib']:.0f} MiB",
            flush=True,
        )
    part["create_blank_seconds"] = blank_create

    def snapshot_available(gib: int, entry: dict[str, Any], k: int) -> dict[str, Any]:
        return {**cloud.snapshot(entry["disk_id"]), "chain_depth": k}

    rounds(opts, "Available, ", part["available"], snapshot_available)

    # (2) disks from each size's first snapshot, in rounds too
    print(
        f"\n(2) CreateDisk from the snapshot -> 'Available' (DescribeDisks every {opts.poll_interval * 1000:g} ms)",
        flush=True,
    )
    for gib in opts.written_gib:
        part["create_disk"][str(gib)] = {
            "snapshot_id": part["available"][str(gib)]["trials"][0]["snapshot_id"],
            "trials": [],
        }

    def disk_from_snapshot(gib: int, entry: dict[str, Any], k: int) -> dict[str, Any]:
        made = cloud.create_disk(snapshot_id=entry["snapshot_id"])
        if k == 0:
            entry["content_ok"] = content_ok(cloud.layer(made["disk_id"]), gib)
        return made

    rounds(opts, "", part["create_disk"], disk_from_snapshot)
    checks = {gib: part["create_disk"][str(gib)].get("content_ok") for gib in opts.written_gib}
    print(
        "  content of the first disk from each snapshot (qemu-io: pattern below the written size, zeros above): "
        + ", ".join(f"{gib} GiB {'ok' if ok else '!!! WRONG'}" for gib, ok in checks.items()),
        flush=True,
    )

    if guest is None:
        return
    # Live: attached to the running instance, written, snapshotted through QMP.
    print(
        f"\n(1) live: disks attached to the RUNNING instance {guest.id}, data written "
        f"{'in the guest (dd oflag=direct, 1 MiB blocks)' if opts.live_fill == 'guest' else 'with qemu-io before the attach'}",
        flush=True,
    )
    for gib in opts.written_gib:
        made = cloud.create_disk(opts.disk_gib)
        disk_id = made["disk_id"]
        live: dict[str, Any] = {"disk_id": disk_id, "trials": []}
        part["live"][str(gib)] = live
        if opts.live_fill == "host":
            live["fill"] = fill(cloud.layer(disk_id), gib)
        cloud.attach(disk_id, guest.id)
        device = guest.device(disk_id)
        if opts.live_fill == "guest":
            seconds, line = guest.dd_zero(device, gib * 1024)
            live["fill"] = {"seconds": seconds, "mib_per_s": gib * 1024 / seconds, "dd": line}
        live["fill"]["allocated_mib"] = allocated_mib(cloud.layer(disk_id))
        live["host_dirty_mib_before"] = dirty_mib()
        live["device"] = device
        for k in range(opts.trials):
            live["trials"].append({**cloud.snapshot(disk_id), "chain_depth": k})
            time.sleep(SETTLE)
        times = [t["seconds"] for t in live["trials"]]
        print(
            f"  {disk_id} ({device}): {gib} GiB written in {live['fill']['seconds']:.1f} s "
            f"({live['fill']['mib_per_s']:.0f} MiB/s), top layer {live['fill']['allocated_mib']:.0f} MiB, host "
            f"Dirty {live['host_dirty_mib_before']:.0f} MiB; snapshots: first {fmt_ms(times[0], 1).strip()} ms, "
            f"p50 {fmt_ms(percentile(times, 0.5), 1).strip()} ms, max {fmt_ms(max(times), 1).strip()} ms",
            flush=True,
        )
    if opts.burst_mib:
        first = part["live"][str(opts.written_gib[0])]
        part["live_burst"] = live_burst(cloud, guest, first["disk_id"], first["device"])


def live_burst(cloud: Cloud, guest: Guest, disk_id: str, device: str) -> dict[str, Any]:
    """What a live snapshot waits for: the same write burst, snapshotted at once ("as left") and
    after a host-wide sync (the page cache of the disk's qcow2 file written back first), BURSTS
    times each, alternating."""
    mib = cloud.opts.burst_mib
    found: dict[str, Any] = {"disk_id": disk_id, "mib": mib, "as left": [], "after sync": []}
    for _ in range(BURSTS):
        for case in ("as left", "after sync"):
            seconds, _ = guest.dd_zero(device, mib)
            sync_s = float("nan")
            if case == "after sync":
                t0 = time.perf_counter()
                os.sync()
                sync_s = time.perf_counter() - t0
            found[case].append({**cloud.snapshot(disk_id), "dd_seconds": seconds, "sync_seconds": sync_s})
            time.sleep(SETTLE)
    print(f"  burst: {burst_line(found)}", flush=True)
    return found


def burst_line(found: dict[str, Any]) -> str:
    def case(trials: list[dict[str, Any]]) -> str:
        return (
            ", ".join(fmt_ms(t["seconds"], 1).strip() for t in trials)
            + " ms (host Dirty "
            + ", ".join(f"{t['host_dirty_mib']:.0f}" for t in trials)
            + " MiB)"
        )

    return (
        f"{found['mib']} MiB written by dd in the guest, then the snapshot at once: {case(found['as left'])}; "
        f"the same after a host `sync`: {case(found['after sync'])}"
    )


# ---- summary --------------------------------------------------------------------------------------------


def stats(values: Sequence[float]) -> dict[str, float]:
    good = [v for v in values if not math.isnan(v)]
    return {
        "n": len(good),
        "failed": len(values) - len(good),
        "first": values[0] if values else float("nan"),
        "p50": percentile(good, 0.5),
        "p90": percentile(good, 0.9),
        "min": min(good, default=float("nan")),
        "max": max(good, default=float("nan")),
    }


def summarize(results: dict[str, Any], opts: Options) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    snaps = results.get("snapshots")
    if snaps:
        for case in ("available", "live", "create_disk"):
            rows = {}
            for gib, entry in snaps[case].items():
                if not entry["trials"]:  # an interrupted or failed run
                    continue
                rows[gib] = stats([t["seconds"] for t in entry["trials"]])
                rows[gib]["api_p50"] = percentile([t["api_seconds"] for t in entry["trials"]], 0.5)
                rows[gib]["polls_p50"] = percentile([t["polls"] for t in entry["trials"]], 0.5)
                rows[gib]["dirty_first"] = entry["trials"][0].get("host_dirty_mib", float("nan"))
            if rows:
                summary[case] = rows
    fio = results.get("fio")
    if fio:
        host = fio["host"]
        fio_rows = []
        for row in fio["guest"]:
            seq, rnd = row.get("seqwrite", {}), row.get("randread", {})
            host_seq, host_iops = (
                host.get("seqwrite", {}).get("mib_per_s"),
                host.get("randread", {}).get("iops"),
            )
            reachable_seq = min(host_seq or float("nan"), row["cap_mib_per_s"])
            reachable_iops = min(host_iops or float("nan"), row["cap_iops"])
            fio_rows.append(
                {
                    "disk": f"{row['level']} {row['size_gib']} GiB",
                    "cap_iops": row["cap_iops"],
                    "cap_mib_per_s": row["cap_mib_per_s"],
                    "seq_mib_per_s": seq.get("mib_per_s"),
                    "seq_ratio_host": ratio(seq.get("mib_per_s"), host_seq),
                    "seq_ratio_reachable": ratio(seq.get("mib_per_s"), reachable_seq),
                    "seq_ratio_cap": ratio(seq.get("mib_per_s"), row["cap_mib_per_s"]),
                    "rand_iops": rnd.get("iops"),
                    "rand_ratio_host": ratio(rnd.get("iops"), host_iops),
                    "rand_ratio_reachable": ratio(rnd.get("iops"), reachable_iops),
                    "rand_ratio_cap": ratio(rnd.get("iops"), row["cap_iops"]),
                    "qemu_cpu_seq": seq.get("qemu_cpu_percent"),
                    "qemu_cpu_rand": rnd.get("qemu_cpu_percent"),
                }
            )
        summary["fio"] = fio_rows
    return summary


def verdict_ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    return verdict_word(value < SNAPSHOT_TARGET_S)


def print_summary(results: dict[str, Any], summary: dict[str, Any], opts: Options) -> None:
    titles = {
        "available": "(1) CreateSnapshot, Available disk (no VM)",
        "live": f"(1) CreateSnapshot, disk of a RUNNING instance (live, QMP; data written "
        f"{'by dd in the guest' if opts.live_fill == 'guest' else 'by qemu-io before the attach'})",
        "create_disk": "(2) CreateDisk from the snapshot -> Available",
    }
    for case, title in titles.items():
        rows = summary.get(case)
        if not rows:
            continue
        print(
            f"\n{title}, ms from the API call ({opts.disk_gib} GiB {CATEGORY} {LEVEL}; p50/p90 interpolated)"
        )
        print(
            "    written   n   first     p50     p90     min     max   call p50  polls p50"
            + ("  Dirty@first   p50 < 200 ms" if case != "create_disk" else "")
        )
        for gib, s in rows.items():
            flags = (
                f" {fmt_num(s['dirty_first'], 8)} MiB   {verdict_ms(s['p50'])}"
                if case != "create_disk"
                else ""
            )
            if case != "create_disk" and s["max"] >= SNAPSHOT_TARGET_S:
                flags += f"  !!! max {fmt_ms(s['max'], 1).strip()} ms"
            if s["failed"]:
                flags += f"  !!! {s['failed']} trial(s) failed or timed out"
            print(
                f"    {gib:>3} GiB {s['n']:>4} {fmt_ms(s['first'])} {fmt_ms(s['p50'])} {fmt_ms(s['p90'])} {fmt_ms(s['min'])} "
                f"{fmt_ms(s['max'])} {fmt_ms(s['api_p50'], 10)} {s['polls_p50']:10.0f}{flags}"
            )
        sizes = list(rows)
        if len(sizes) > 1:
            lo, hi = rows[sizes[0]], rows[sizes[-1]]
            print(
                f"    ratio {sizes[-1]} GiB / {sizes[0]} GiB: p50 {ratio(hi['p50'], lo['p50']):.2f}x, p90 "
                f"{ratio(hi['p90'], lo['p90']):.2f}x, first {ratio(hi['first'], lo['first']):.2f}x (target: "
                "constant, 1.0x)"
            )
        burst = (results.get("snapshots") or {}).get("live_burst")
        if case == "live" and burst:
            print(f"    burst: {burst_line(burst)}")
            print(
                "    A live snapshot waits for QEMU's blockdev-snapshot-sync, which drains the disk and flushes the old "
                "top layer (bdrv_flush = fdatasync of a qcow2 file opened with the host's page cache): what the host "
                "has not written back yet (Dirty) adds to its time, the GiB the disk holds do not; the guest's I/O "
                "to that disk waits meanwhile. The kernel writes back a file dirty for 30 s, so a long fill ends "
                "with little dirty data and a short one with much."
            )
    snaps = results.get("snapshots")
    if snaps:
        blank = snaps.get("create_blank_seconds", [])
        if blank:
            print(
                f"    (for scale: CreateDisk of a blank {opts.disk_gib} GiB disk -> Available, p50 "
                f"{fmt_ms(percentile(blank, 0.5), 1).strip()} ms over {len(blank)})"
            )
        print(
            "    'first' = the trial right after the data was written (the data in the disk's top layer); each later "
            "trial snapshots a disk whose chain is one layer deeper. Dirty@first = the host's dirty page cache "
            "(/proc/meminfo Dirty: the whole machine's, other files' too) just before the first trial. The time is taken when the first answer "
            f"saying so arrives; resolution: the {opts.poll_interval * 1000:g} ms pause plus one DescribeSnapshots/"
            "DescribeDisks call (see 'polls p50')."
        )
    rows = summary.get("fio")
    fio = results.get("fio")
    if fio:
        host = fio["host"]
        tool = fio.get("tool", "fio")
        print(
            f"\n(3) Guest data disk against a file of the host ({tool}, the same binary on both sides; TCG guest, "
            f"1 vCPU)"
        )
        hs, hr = host.get("seqwrite", {}), host.get("randread", {})
        print(
            f"    host file            seq write {fmt_num(hs.get('mib_per_s'), 8, 1)} MiB/s     random read "
            f"{fmt_num(hr.get('iops'), 9)} IOPS (clat p50 {fmt_num(hr.get('clat_p50_us'), 1, 0)} us)"
        )
        if rows:
            print(
                "    guest disk           cap MB/s  seq MiB/s  /host  /min(host,cap)  /cap  | cap IOPS  rand IOPS  "
                "/host  /min(host,cap)  /cap   QEMU CPU% seq/rand"
            )
            for r in rows:
                seq_ok = r["seq_ratio_reachable"] >= RATIO_TARGET
                iops_ok = abs(r["rand_ratio_cap"] - 1) <= CAP_TOLERANCE
                print(
                    f"    {r['disk']:<20} {r['cap_mib_per_s']:8d} {fmt_num(r['seq_mib_per_s'], 10, 1)} "
                    f"{fmt_num(r['seq_ratio_host'], 6, 2)} {fmt_num(r['seq_ratio_reachable'], 15, 2)} "
                    f"{fmt_num(r['seq_ratio_cap'], 5, 2)}  | {r['cap_iops']:8d} {fmt_num(r['rand_iops'], 10)} "
                    f"{fmt_num(r['rand_ratio_host'], 6, 2)} {fmt_num(r['rand_ratio_reachable'], 15, 2)} "
                    f"{fmt_num(r['rand_ratio_cap'], 5, 2)}   {fmt_num(r['qemu_cpu_seq'], 5)}/{fmt_num(r['qemu_cpu_rand'], 0)}"
                )
                print(
                    f"    {'':<20} targets: seq >= {RATIO_TARGET} of min(host, cap): "
                    f"{verdict_word(seq_ok)}; IOPS within {CAP_TOLERANCE:.0%} of the cap: "
                    f"{verdict_word(iops_ok)}"
                )
        if fio.get("note"):
            print(f"    !!! {fio['note']}")
        print(
            "    cap = the throttle group nubes gives the disk (limits(): iops-total, bps-total; MB = MiB). "
            "/min(host,cap) is the figure the >= 0.8 target is read against: the cap, where it is below the host. "
            "The guest's O_DIRECT reaches QEMU, whose qcow2 file is opened with the host's page cache "
            "(cache=writeback), while the host's fio bypasses it: the random reads of the guest come from the "
            "host's page cache. QEMU CPU% = the instance's QEMU process (all threads), % of one core: near "
            "100 % per vCPU thread means TCG was the limit."
        )


def print_header(info: dict[str, Any], opts: Options) -> None:
    print("nubes storage benchmark")
    print(machine_line(info))
    print(
        f"  accel   : TCG only (software emulation; /dev/kvm {info['dev_kvm']}): every guest figure is a TCG "
        "figure, the host figures are native"
    )
    print(
        f"  tools   : {info['qemu']}; {first_line(['qemu-img', '--version'])}; "
        f"{first_line(['fio', '--version']) if shutil.which('fio') else 'no fio'}"
    )
    parts = []
    if not opts.skip_snapshots:
        parts.append(
            f"(1)+(2) {opts.trials} trials x {','.join(map(str, opts.written_gib))} GiB written, Available"
            + ("" if opts.skip_guest else " and live")
        )
    if not opts.skip_fio:
        parts.append(
            "(3) host file"
            + (
                ""
                if opts.skip_guest
                else " vs guest " + ", ".join(f"{lv} {sz} GiB" for lv, sz in opts.fio_disks)
            )
        )
    print(f"  plan    : {'; '.join(parts)}", flush=True)


TOOLS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "qemu-io": "qemu-utils",
    "ip": "iproute2",
    "nft": "nftables",
    "dnsmasq": "dnsmasq-base",
    "ssh": "openssh-client",
}


def preflight(opts: Options) -> None:
    """Exit 2, saying what is missing, when the run cannot work; fio alone is optional (dd then)."""
    from importlib.util import find_spec

    problems = [] if os.geteuid() == 0 else ["needs root (network namespaces, taps, nubes ssh)"]
    packages = sorted({package for tool, package in TOOLS.items() if shutil.which(tool) is None})
    if packages:
        problems.append(f"missing Debian packages: {' '.join(packages)}")
    if not all(find_spec(sdk) for sdk in ("alibabacloud_ecs20140526", "alibabacloud_vpc20160428")):
        problems.append("the official SDKs are missing: pip install -e '.[test]'")
    if problems:
        print("bench/storage.py: " + "; ".join(problems), file=sys.stderr)
        raise SystemExit(2)
    if shutil.which("fio") is None and not opts.skip_fio:
        print(
            "bench/storage.py: fio is not installed (Debian package fio): dd stands in, sequential write only",
            file=sys.stderr,
        )


def run_parts(bench: Bench, opts: Options, results: dict[str, Any], guests: list[Guest]) -> None:
    from nubes.guest.images import build_image, load_manifest

    print_header(results["machine"], opts)
    if load_manifest(opts.images_dir, IMAGE_NAME) is None and not opts.skip_guest:
        print(
            f"  building the {IMAGE_NAME} image into {opts.images_dir} (once; this takes minutes) ...",
            flush=True,
        )
        build_image(IMAGE_NAME, opts.images_dir)
    srv = bench.server("real", opts.images_dir)
    results["server_flags"] = srv.flags
    print(
        f"  nubes   : nubes server {' '.join(srv.flags)} (SQLite store, data in {srv.data_dir})", flush=True
    )
    cloud = Cloud(srv, opts)
    guest = None if opts.skip_guest else launch_guest(bench, cloud, results, guests)
    if not opts.skip_snapshots:
        snapshot_part(cloud, guest, results)
    if not opts.skip_fio:
        fio_part(cloud, guest, bench, results)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_options(argv)
    preflight(opts)
    interrupt_on_signals()
    bench = Bench("nubes-bench-storage-", "nbl")
    results: dict[str, Any] = {"machine": vm_machine_info()}
    guests: list[Guest] = []

    def delete_guests() -> None:  # before Bench.close: the server's VMs outlive it by design
        for guest in guests:
            delete_guest(bench, guest)

    info = results["machine"]
    status = bench.run(lambda: run_parts(bench, opts, results, guests), info, before_close=delete_guests)
    results["summary"] = summarize(results, opts)
    if status != 130 and results["summary"]:
        print(
            "\n================ Summary ================"
            + ("" if status == 0 else " (partial: the run failed)")
        )
        print_summary(results, results["summary"], opts)
    bench.print_footer(
        info,
        f"{'instance deleted, ' if guests else ''}server stopped, {bench.prefix}* namespaces "
        "removed, temporary files deleted",
    )
    if opts.json_path:
        options = {**asdict(opts), "json_path": str(opts.json_path), "images_dir": str(opts.images_dir)}
        save_json(opts.json_path, {"options": options, "status": status, **results})
    return status


if __name__ == "__main__":
    sys.exit(main())
