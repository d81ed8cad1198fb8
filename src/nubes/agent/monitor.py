"""The monitoring part of the host agent: samples this host's running instances, their disks
and network interfaces every `interval` seconds into the store (nubes.domain.monitoring), prunes
what is older than the retention, and takes the screenshots GetInstanceScreenshot asks for.

A sample reads each running VM's counters (`ComputeDriver.stats`: the CPU time of its process,
its disks' I/O) and each VPC's taps (`NetworkDriver.port_counters`, one call per VPC), and
records the increase since the previous sample as one delta per resource, added to that
resource's row of the current minute. The previous counters are kept in memory: the first
sample after an agent start, after a VM start (a new `started_at`) or after a counter went
back (a new tap) only sets the baseline. Time comes from the injected clock, so a unit test
steps a manual clock and the fake drivers' counters with it.

The host loop (nubes.agent.host) calls `sample_if_due` and `prune_if_due` on one worker slot
and `take_screenshots` on another, so a slow sample never delays a screenshot."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field

from sqlalchemy import select

from nubes.clock import Clock
from nubes.domain import instance_states as states
from nubes.domain.monitoring import Delta, Monitoring, Screenshots
from nubes.domain.vnc import VncConsoles
from nubes.drivers.compute.base import BlockCounters, ComputeDriver, ComputeError
from nubes.drivers.network.base import NetworkDriver, PortCounters
from nubes.store.db import Database
from nubes.store.models import Instance, NetworkInterface

log = logging.getLogger("nubes.agent.monitor")

DEFAULT_INTERVAL = 60.0  # seconds between samples: ECS's finest period
PRUNE_INTERVAL = 3600.0  # seconds between two deletions of the rows past the retention
# The statuses in which an instance's VM may run: a boot's disk reads and DHCP count too.
SAMPLED = (states.STARTING, states.RUNNING, states.STOPPING)


@dataclass
class _Seen:
    """The counters of the previous sample, per resource."""

    at: float  # clock seconds
    started_at: float = 0.0  # the VM process's (instances and their disks)
    cpu_seconds: float = 0.0
    block: BlockCounters | None = None
    port: PortCounters | None = None


@dataclass
class SampleReport:
    """What one sample did (for tests and logs)."""

    instances: int = 0
    rows: int = 0
    skipped: list[str] = field(default_factory=list)  # resources that only set a baseline


class MonitorAgent:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        monitoring: Monitoring,
        screenshots: Screenshots,
        compute: ComputeDriver,
        network: NetworkDriver,
        host_id: str,
        interval: float = DEFAULT_INTERVAL,
        vnc: VncConsoles | None = None,
    ) -> None:
        self._vnc = vnc
        self._db = db
        self._clock = clock
        self._monitoring = monitoring
        self._screenshots = screenshots
        self._compute = compute
        self._network = network
        self.host_id = host_id
        self.interval = interval
        self._seen: dict[str, _Seen] = {}
        self._last_sample: float | None = None
        self._last_prune: float | None = None

    def _now(self) -> float:
        return self._clock.now().timestamp()

    # ---- sampling ------------------------------------------------------------------------------

    def sample_if_due(self) -> SampleReport | None:
        now = self._now()
        if self._last_sample is not None and now - self._last_sample < self.interval:
            return None
        self._last_sample = now
        return self.sample()

    def prune_if_due(self) -> int:
        now = self._now()
        if self._last_prune is not None and now - self._last_prune < PRUNE_INTERVAL:
            return 0
        self._last_prune = now
        return self._monitoring.prune()

    def sample(self) -> SampleReport:
        """Read every VM of this host (of an instance Starting, Running or Stopping) and its
        interfaces; record the deltas."""
        report = SampleReport()
        with self._db.session() as s:
            running = list(
                s.execute(
                    select(Instance.id, Instance.cpu, Instance.vpc_id).where(
                        Instance.host_id == self.host_id, Instance.status.in_(SAMPLED)
                    )
                )
            )
            enis = list(
                s.execute(
                    select(NetworkInterface.id, NetworkInterface.vpc_id).where(
                        NetworkInterface.instance_id.in_([row[0] for row in running])
                    )
                )
            )
        now = self._now()
        deltas: list[Delta] = []
        live: set[str] = set()
        for instance_id, vcpus, _vpc in running:
            try:
                stats = self._compute.stats(instance_id)
            except ComputeError:
                log.exception("instance %s: no counters this time", instance_id)
                stats = None
            if stats is None:
                continue
            report.instances += 1
            live.add(instance_id)
            seen = self._seen.get(instance_id)
            if (
                seen is not None
                and seen.started_at == stats.started_at
                and stats.cpu_seconds >= seen.cpu_seconds
            ):
                deltas.append(
                    Delta(
                        instance_id,
                        span_ms=_ms(now - seen.at),
                        vcpus=max(1, vcpus),
                        cpu_ms=_ms(stats.cpu_seconds - seen.cpu_seconds),
                    )
                )
            else:
                report.skipped.append(instance_id)
            self._seen[instance_id] = _Seen(now, stats.started_at, stats.cpu_seconds)
            for disk_id, counters in stats.disks.items():
                live.add(disk_id)
                prev = self._seen.get(disk_id)
                delta = _block_delta(disk_id, prev, stats.started_at, counters, now)
                if delta is None:
                    report.skipped.append(disk_id)
                else:
                    deltas.append(delta)
                self._seen[disk_id] = _Seen(now, stats.started_at, block=counters)
        by_vpc: dict[str, list[str]] = {}
        for eni_id, vpc_id in enis:
            by_vpc.setdefault(vpc_id, []).append(eni_id)
        for vpc_id, port_ids in sorted(by_vpc.items()):
            try:
                counters_by_port = self._network.port_counters(vpc_id, sorted(port_ids))
            except Exception:
                log.exception("VPC %s: no tap counters this time", vpc_id)
                continue
            for port_id, port in counters_by_port.items():
                live.add(port_id)
                delta = _port_delta(port_id, self._seen.get(port_id), port, now)
                if delta is None:
                    report.skipped.append(port_id)
                else:
                    deltas.append(delta)
                self._seen[port_id] = _Seen(now, port=port)
        for gone in set(self._seen) - live:
            del self._seen[gone]  # stopped or removed: its next sample starts a new baseline
        # a sample belongs to the minute its span ends in (one that ends on the minute, to the one before)
        report.rows = self._monitoring.record(int(now - 0.001) // 60, deltas)
        return report

    # ---- screenshots ---------------------------------------------------------------------------

    def take_screenshots(self) -> int:
        """Take the screenshots asked for of this host's instances; how many were answered."""
        done = 0
        for instance_id, wake_up in self._screenshots.wanted(self.host_id):
            try:
                image = self._compute.screenshot(instance_id, wake_up)
            except ComputeError as exc:
                log.warning("instance %s: screenshot failed: %s", instance_id, exc)
                self._screenshots.deliver(instance_id, None, str(exc) or type(exc).__name__)
            else:
                self._screenshots.deliver(instance_id, image)
            done += 1
        return done

    # ---- VNC -----------------------------------------------------------------------------------

    def open_vnc_displays(self) -> int:
        """Answer the VNC tickets of this host's instances: their VM's VNC server gets the
        instance's password (a random one while none is set, so that nobody logs on) and the
        ticket its address. How many were answered."""
        if self._vnc is None:
            return 0
        wanted = self._vnc.wanted(self.host_id)
        for ticket in wanted:
            password = ticket.password or secrets.token_hex(4)
            try:
                display = self._compute.vnc_display(ticket.instance_id, password)
            except ComputeError as exc:
                log.warning("instance %s: VNC display: %s", ticket.instance_id, exc)
                self._vnc.answer(ticket.token_hash, "", str(exc) or type(exc).__name__)
            else:
                self._vnc.answer(ticket.token_hash, display)
        return len(wanted)


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _block_delta(
    disk_id: str, prev: _Seen | None, started_at: float, now_counters: BlockCounters, now: float
) -> Delta | None:
    if prev is None or prev.block is None or prev.started_at != started_at:
        return None
    old = prev.block
    if now_counters.read_bytes < old.read_bytes or now_counters.write_bytes < old.write_bytes:
        return None  # the disk was plugged in again: its counters started over
    return Delta(
        disk_id,
        span_ms=_ms(now - prev.at),
        read_bytes=now_counters.read_bytes - old.read_bytes,
        write_bytes=now_counters.write_bytes - old.write_bytes,
        read_ops=max(0, now_counters.read_ops - old.read_ops),
        write_ops=max(0, now_counters.write_ops - old.write_ops),
        read_us=max(0, now_counters.read_ns - old.read_ns) // 1000,
        write_us=max(0, now_counters.write_ns - old.write_ns) // 1000,
    )


def _port_delta(port_id: str, prev: _Seen | None, counters: PortCounters, now: float) -> Delta | None:
    if prev is None or prev.port is None:
        return None
    old = prev.port
    if counters.rx_bytes < old.rx_bytes or counters.tx_bytes < old.tx_bytes:
        return None  # a new tap: its counters started over
    return Delta(
        port_id,
        span_ms=_ms(now - prev.at),
        rx_bytes=counters.rx_bytes - old.rx_bytes,
        tx_bytes=counters.tx_bytes - old.tx_bytes,
        rx_packets=max(0, counters.rx_packets - old.rx_packets),
        tx_packets=max(0, counters.tx_packets - old.tx_packets),
        rx_dropped=max(0, counters.rx_dropped - old.rx_dropped),
        tx_dropped=max(0, counters.tx_dropped - old.tx_dropped),
    )
