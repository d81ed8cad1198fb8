"""(d) of bench/launch.py: StartInstance of a hibernated instance against a cold StartInstance of
the same instance and against a bare QEMU `-incoming` restore of the same memory image, in one run.

One tiny instance created with HibernationOptions.Configured=true on a vSwitch of its own. Each
round, in an order that alternates between rounds:
  * StopInstance Hibernate=true, until Stopped (the save time is reported); its memory image
    (run/vms/<id>/memory.img) is hard-linked aside;
  * (c) bare: the instance's own QEMU command line (run/vms/<id>/cmdline: the same devices, the
    same tap in the VPC namespace), its serial, QMP socket and pidfile moved to this run's
    directory, its disks replaced by fresh qcow2 overlays on the instance's disk files (so the
    instance's disks stay as saved), plus `-incoming exec:cat <the image>`; once QEMU has loaded
    it (query-status "paused": the guest was saved paused) QMP `cont` -- what any restore of
    such an image must do. Timed from QEMU's exec; then quit and removed;
  * (a) StartInstance of the hibernated instance, timed from the call;
  * (b) StopInstance (ACPI), until Stopped, then StartInstance (a cold boot), timed from the call.
"Guest answering" is the same probe for all three: a TCP connection attempt to a closed port of
the guest's private IP, every 20 ms from inside the VPC namespace, answered (a RST) by the
guest's kernel once it runs again; the namespace holds a permanent neighbour entry for the guest
(else a stale ARP entry, re-probed once a second, would blur the figure). For (b) the ready
marker (after DHCP and the metadata fetch) is reported too. Nothing is asserted."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common import INSTANCE_TYPE, REGION, alive, fmt_s, percentile, ratio, run, verdict_word
from launch_trials import MARKER, LaunchBench, delete_and_wait, net_counter
from servers import NubesServer

PROBE_PORT = 7777  # closed in the tiny guest: its kernel answers with a RST
PROBE_EVERY = 0.02
TARGET_RATIO = 1.2
TARGET_P50 = 0.5
PROBE = r"""
import socket, sys, time
ip, port = sys.argv[1], int(sys.argv[2])
print("ready", flush=True)
for line in sys.stdin:
    deadline, answered = time.time() + float(line), None
    while answered is None and time.time() < deadline:
        s = socket.socket()
        s.settimeout(float(sys.argv[3]))
        try:
            s.connect((ip, port))
            answered = time.time()
        except ConnectionRefusedError:
            answered = time.time()
        except OSError:
            pass
        finally:
            s.close()
    print(answered if answered is not None else "none", flush=True)
"""


@dataclass
class Round:
    index: int
    order: str
    hibernate_s: float = 0.0  # StopInstance Hibernate=true -> DescribeInstances says Stopped
    image_mib: float = 0.0
    hibernated_start: float | None = None  # (a) StartInstance -> guest answers
    hibernated_running: float | None = None  # (a) StartInstance -> DescribeInstances says Running
    cold_start: float | None = None  # (b) StartInstance -> guest answers
    cold_marker: float | None = None  # (b) StartInstance -> NUBES-READY on the console
    bare_restore: float | None = None  # (c) QEMU exec -> guest answers
    bare_loaded: float | None = None  # (c) QEMU exec -> the image loaded (query-status paused)


@dataclass
class HibernateResult:
    instance_id: str = ""
    netns: str = ""
    rounds: list[Round] = field(default_factory=list)


class Probe:
    """The TCP probe, one process inside the VPC namespace for the whole part."""

    def __init__(self, netns: str, ip: str) -> None:
        self.proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                netns,
                sys.executable,
                "-u",
                "-c",
                PROBE,
                ip,
                str(PROBE_PORT),
                str(PROBE_EVERY),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self._out, self._in = self.proc.stdout, self.proc.stdin
        if self._out.readline().strip() != "ready":
            raise RuntimeError("the probe did not start")

    def answer(self, timeout: float) -> float | None:
        """time.time() when the guest first answered, within `timeout` (None: it did not)."""
        self._in.write(f"{timeout}\n")
        self._in.flush()
        line = self._out.readline().strip()
        return None if line in ("", "none") else float(line)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.proc.kill()
            self.proc.wait(timeout=10)


def _status(srv: NubesServer, instance_id: str) -> str:
    from alibabacloud_ecs20140526 import models as em

    return str(
        srv.ecs.describe_instance_attribute(
            em.DescribeInstanceAttributeRequest(instance_id=instance_id)
        ).body.status
    )


def _wait_status(srv: NubesServer, instance_id: str, wanted: str, timeout: float) -> float:
    """time.time() when DescribeInstanceAttribute first said `wanted` (polled every 50 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _status(srv, instance_id) == wanted:
            return time.time()
        time.sleep(0.05)
    raise RuntimeError(f"{instance_id} not {wanted} within {timeout:.0f} s")


def _wait_marker(serial: Path, offset: int, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), open(serial, "rb") as f:
            f.seek(offset)
            if MARKER in f.read():
                return time.time()
        time.sleep(0.01)
    return None


def _overlaid(node: Any, work: Path, made: list[Path]) -> Any:
    """A -blockdev tree whose top qcow2 reads a fresh overlay on its file (made in `work`)."""
    if node.get("driver") == "throttle":
        return {**node, "file": _overlaid(node["file"], work, made)}
    base = node["file"]["filename"]
    overlay = work / f"bare-{len(made)}.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, str(overlay)])
    made.append(overlay)
    return {**node, "file": {**node["file"], "filename": str(overlay)}}


def bare_argv(vm_dir: Path, image: Path, work: Path, made: list[Path]) -> tuple[list[str], Path, Path]:
    """The instance's QEMU command line for a bare restore of `image`: (argv, QMP socket, pidfile)."""
    argv: list[str] = json.loads((vm_dir / "cmdline").read_text())
    qmp, pidfile = work / "bare-qmp.sock", work / "bare.pid"

    def moved(prev: str, arg: str) -> str:
        if prev == "-pidfile":
            return str(pidfile)
        if prev == "-chardev" and arg.startswith("socket,id=qmp,"):
            return f"socket,id=qmp,path={qmp},server=on,wait=off"
        if prev == "-chardev" and arg.startswith("file,id=serial0,"):
            return f"file,id=serial0,path={work / 'bare-serial.log'},append=on"
        if prev == "-blockdev":
            return json.dumps(_overlaid(json.loads(arg), work, made), separators=(",", ":"))
        return arg

    out: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "-incoming" or (i and argv[i - 1] == "-incoming"):
            continue  # (the instance's last start may have been a restore)
        out.append(moved(argv[i - 1] if i else "", arg))
    return [*out, "-incoming", f"exec:cat {image}"], qmp, pidfile


def bare_restore(
    vm_dir: Path, image: Path, work: Path, probe: Probe, timeout: float
) -> tuple[float | None, float | None]:
    """(c): (exec -> guest answers, exec -> image loaded), seconds; everything removed after."""
    from nubes.drivers.compute.qemu.qmp import QmpClient, QmpError

    made: list[Path] = []
    argv, qmp, pidfile = bare_argv(vm_dir, image, work, made)
    pid = 0
    try:
        t0 = time.time()
        # -daemonize: the first process exits once QEMU is set up (a blocking wait: no polling)
        if subprocess.Popen(argv, stdin=subprocess.DEVNULL).wait() != 0:
            raise RuntimeError("the bare QEMU failed to start")
        pid = int(pidfile.read_text().strip())
        loaded = None
        with QmpClient(qmp, timeout).connect() as q:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                status = str(q.execute("query-status")["status"])
                if status != "inmigrate":
                    loaded = time.time()
                    if status != "running":
                        q.execute("cont")
                    break
                time.sleep(0.005)
        answered = probe.answer(timeout)
        with contextlib.suppress(QmpError), QmpClient(qmp, 5).connect() as q:
            q.execute("quit")
        return (answered - t0 if answered else None), (loaded - t0 if loaded else None)
    finally:
        deadline = time.monotonic() + 10
        while pid and alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid and alive(pid):
            os.kill(pid, signal.SIGKILL)
        for path in [*made, qmp, pidfile, work / "bare-serial.log"]:
            path.unlink(missing_ok=True)


def _hibernate(srv: NubesServer, iid: str, r: Round, vm_dir: Path, work: Path, timeout: float) -> Path:
    from alibabacloud_ecs20140526 import models as em

    t0 = time.time()
    srv.ecs.stop_instance(em.StopInstanceRequest(instance_id=iid, hibernate=True))
    r.hibernate_s = _wait_status(srv, iid, "Stopped", timeout) - t0
    kept = work / "memory.img"
    kept.unlink(missing_ok=True)
    os.link(vm_dir / "memory.img", kept)  # StartInstance removes the instance's own
    r.image_mib = kept.stat().st_size / 2**20
    return kept


def _start(srv: NubesServer, iid: str, probe: Probe, timeout: float) -> tuple[float, float | None]:
    from alibabacloud_ecs20140526 import models as em

    t0 = time.time()
    srv.ecs.start_instance(em.StartInstanceRequest(instance_id=iid))
    answered = probe.answer(timeout)
    return t0, answered


def _cold(srv: NubesServer, iid: str, r: Round, probe: Probe, serial: Path, timeout: float) -> None:
    from alibabacloud_ecs20140526 import models as em

    srv.ecs.stop_instance(em.StopInstanceRequest(instance_id=iid))
    _wait_status(srv, iid, "Stopped", timeout)
    offset = serial.stat().st_size
    t0, answered = _start(srv, iid, probe, timeout)
    r.cold_start = answered - t0 if answered else None
    marker = _wait_marker(serial, offset, timeout)
    r.cold_marker = marker - t0 if marker else None
    _wait_status(srv, iid, "Running", timeout)


def _neighbour(netns: str, ip: str, mac: str) -> None:
    route = json.loads(run(["ip", "-n", netns, "-j", "route", "get", ip]))
    run(
        ["ip", "-n", netns, "neigh", "replace", ip, "lladdr", mac, "dev", route[0]["dev"], "nud", "permanent"]
    )


def hibernate_part(
    bench: LaunchBench, srv: NubesServer, net: dict[str, str], rounds: int, timeout: float
) -> dict[str, Any]:
    from alibabacloud_ecs20140526 import models as em

    cidr = f"10.241.{net_counter(net)}.0/24"
    vswitch = srv.create_vswitch(net["vpc"], cidr)
    # a group of its own that lets the probe in from the vSwitch's gateway (the namespace)
    group = srv.ecs.create_security_group(
        em.CreateSecurityGroupRequest(region_id=REGION, vpc_id=net["vpc"])
    ).body.security_group_id
    srv.ecs.authorize_security_group(
        em.AuthorizeSecurityGroupRequest(
            region_id=REGION,
            security_group_id=group,
            ip_protocol="tcp",
            port_range=f"{PROBE_PORT}/{PROBE_PORT}",
            source_cidr_ip=cidr,
        )
    )
    [iid] = srv.ecs.run_instances(
        em.RunInstancesRequest(
            region_id=REGION,
            image_id=net["image"],
            instance_type=INSTANCE_TYPE,
            v_switch_id=vswitch,
            security_group_id=group,
            hibernation_options=em.RunInstancesRequestHibernationOptions(configured=True),
        )
    ).body.instance_id_sets.instance_id_set
    result = HibernateResult(str(iid))
    vm_dir = srv.data_dir / "run" / "vms" / iid
    serial = vm_dir / "serial.log"
    work = bench.tmp / "hibernate"
    work.mkdir(exist_ok=True)
    probe: Probe | None = None
    try:
        _wait_status(srv, iid, "Running", timeout)
        _wait_marker(serial, 0, timeout)
        [instance] = srv.ecs.describe_instances(
            em.DescribeInstancesRequest(region_id=REGION, instance_ids=json.dumps([iid]))
        ).body.instances.instance
        eni = instance.network_interfaces.network_interface[0]
        argv = json.loads((vm_dir / "cmdline").read_text())
        result.netns = argv[3] if argv[:3] == ["ip", "netns", "exec"] else ""
        _neighbour(result.netns, eni.primary_ip_address, eni.mac_address)
        probe = Probe(result.netns, eni.primary_ip_address)
        if probe.answer(timeout) is None:
            raise RuntimeError(f"the guest {iid} does not answer the probe while it runs")
        print(
            f"  (d) hibernation: instance {iid} ({INSTANCE_TYPE}), probe TCP {eni.primary_ip_address}:{PROBE_PORT} "
            f"from {result.netns}, {rounds} rounds",
            flush=True,
        )
        for i in range(rounds):
            r = Round(i + 1, "hibernate,c,a,b" if i % 2 == 0 else "b,hibernate,c,a")
            if i % 2:
                _cold(srv, iid, r, probe, serial, timeout)
            kept = _hibernate(srv, iid, r, vm_dir, work, timeout)
            r.bare_restore, r.bare_loaded = bare_restore(vm_dir, kept, work, probe, timeout)
            t0, answered = _start(srv, iid, probe, timeout)
            r.hibernated_start = answered - t0 if answered else None
            r.hibernated_running = _wait_status(srv, iid, "Running", timeout) - t0
            kept.unlink()
            if i % 2 == 0:
                _cold(srv, iid, r, probe, serial, timeout)
            result.rounds.append(r)
            print(
                f"    round {r.index:>2} ({r.order}): save {fmt_s(r.hibernate_s, 5)} s ({r.image_mib:.0f} MiB) | "
                f"(a) hibernated start {fmt_s(r.hibernated_start, 5)} s (Running {fmt_s(r.hibernated_running, 5)} s) | "
                f"(b) cold start {fmt_s(r.cold_start, 5)} s (marker {fmt_s(r.cold_marker, 5)} s) | "
                f"(c) bare restore {fmt_s(r.bare_restore, 5)} s (loaded {fmt_s(r.bare_loaded, 5)} s)",
                flush=True,
            )
    finally:
        if probe is not None:
            probe.close()
        delete_and_wait(bench, srv, [iid], {})
    return asdict(result)


def print_hibernate_summary(part: dict[str, Any]) -> None:
    rounds = part["rounds"]
    if not rounds:
        return
    series = [
        ("(a) StartInstance of the hibernated instance -> guest answers", "hibernated_start"),
        ("    ... -> DescribeInstances says Running", "hibernated_running"),
        ("(b) cold StartInstance of the same instance -> guest answers", "cold_start"),
        ("    ... -> ready marker (DHCP + metadata)", "cold_marker"),
        ("(c) bare QEMU -incoming restore of the same image -> answers", "bare_restore"),
        ("    ... -> image loaded (before cont)", "bare_loaded"),
        ("StopInstance Hibernate=true -> Stopped (the save)", "hibernate_s"),
    ]
    print(f"\n(d) Hibernation, seconds (TCG; {len(rounds)} rounds; p50/p99 interpolated)")
    print(f"    {'series':<64}   n     p50     p99     min     max")
    stats: dict[str, tuple[float, float]] = {}
    for label, key in series:
        values = [r[key] for r in rounds if r[key] is not None]
        missing = len(rounds) - len(values)
        if not values:
            print(f"    {label:<64} none answered")
            continue
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        stats[key] = (p50, p99)
        note = f"  ({missing} not answered)" if missing else ""
        print(
            f"    {label:<64} {len(values):>3} {fmt_s(p50, 7)} {fmt_s(p99, 7)} {fmt_s(min(values), 7)} "
            f"{fmt_s(max(values), 7)}{note}"
        )
    image = percentile([r["image_mib"] for r in rounds], 0.5)
    print(f"    memory image: {image:.0f} MiB (p50)")
    if "hibernated_start" in stats and "bare_restore" in stats:
        for q, idx in (("p50", 0), ("p99", 1)):
            value = ratio(stats["hibernated_start"][idx], stats["bare_restore"][idx])
            print(
                f"    ratio (a)/(c) {q}: {value:.2f}x   target <= {TARGET_RATIO}x: {verdict_word(value <= TARGET_RATIO)}"
            )
        p50 = stats["hibernated_start"][0]
        print(f"    (a) p50 {p50:.3f} s   target < {TARGET_P50} s: {verdict_word(p50 < TARGET_P50)}")
    if "hibernated_start" in stats and "cold_start" in stats:
        print(
            f"    cold/hibernated start p50: {ratio(stats['cold_start'][0], stats['hibernated_start'][0]):.1f}x"
        )
