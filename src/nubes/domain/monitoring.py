"""Monitoring data and screenshots in the store: what the host agents measure of the resources
they run (nubes.agent.monitor) and the pictures they take, read by the API from any process.

Samples. The agent of a host samples every running VM, its disks and its network interfaces
every `interval` seconds (60 by default, as ECS's finest period; tests use 1 s) and adds the
counter deltas to one `MonitorSample` row per resource per minute (`record`). A query adds the
rows of each period up and divides: rates over the time the samples covered, not the whole
period, so a period in which the instance ran 20 s of 60 is not shown at a third of its load.
Periods of 60, 600 and 3600 s are sums of whole minutes; they start at StartTime (rounded up
to a minute, as ECS does), so a request answers at most (EndTime - StartTime) / Period points,
at most MAX_POINTS. A period without any sample (the instance was stopped, or not yet there)
is left out rather than answered with zeros, as ECS leaves out what it could not measure.

Figures (ECS's units):
* instance: CPU in % of its vCPUs; IntranetRX/TX in kbit over the period and IntranetBandwidth
  in kbit/s (from its interfaces' taps); BPSRead/Write in byte/s and IOPSRead/Write in
  operations/s (the sums over the disks and interfaces it has now: one detached meanwhile
  no longer counts in its past). The taps cannot tell public from private traffic, so
  the Internet* figures are 0; CPU credits are 0 (no burstable instance types).
* disk: BPS* byte/s, IOPS* per second, Latency* the average time of an operation in µs.
* network interface: IntranetRx/Tx in KB over the period, packets and dropped packets counted.

Retention: rows older than RETENTION (7 days and a day of margin) are deleted by the agent
(`prune`, hourly); queries may reach back QUERY_WINDOW (30 days, ECS's limit) and find nothing
that old. The rows of a deleted instance, disk or interface stay until then (nobody can ask for
them: the API answers NotFound). Cost: see the MonitorSample model (about 2.3 MB per instance
with one disk and one interface, for the 8 days kept).

Screenshots. GetInstanceScreenshot asks for one (`Screenshots.take`): a row with the time of
the request, then the agent of the instance's host (told at once through the compute
notifier, or on its next pass) takes it and writes the PNG; the API waits for that, at most
SCREENSHOT_TIMEOUT seconds."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from nubes import errors
from nubes.clock import Clock, as_utc
from nubes.domain import instance_states as states
from nubes.domain.common import Scope, owned
from nubes.domain.disks import owned_disk
from nubes.store.db import Database
from nubes.store.models import Disk, Instance, MonitorSample, NetworkInterface, Screenshot

PERIODS = (60, 600, 3600)
MAX_POINTS = 400
QUERY_WINDOW = timedelta(days=30)
RETENTION = timedelta(days=8)
SCREENSHOT_TIMEOUT = 8.0  # the official SDKs give up reading an answer after 10 s
SCREENSHOT_POLL = 0.1
Answer = TypeVar("Answer")

COUNTERS = (
    "cpu_ms",
    "read_bytes",
    "write_bytes",
    "read_ops",
    "write_ops",
    "read_us",
    "write_us",
    "rx_bytes",
    "tx_bytes",
    "rx_packets",
    "tx_packets",
    "rx_dropped",
    "tx_dropped",
)


@dataclass
class Delta:
    """What one sample measured of one resource since the one before: counter deltas over
    `span_ms` (and, for an instance, its vCPUs). Unset counters stay NULL in the row."""

    resource_id: str
    span_ms: int
    vcpus: int | None = None
    cpu_ms: int | None = None
    read_bytes: int | None = None
    write_bytes: int | None = None
    read_ops: int | None = None
    write_ops: int | None = None
    read_us: int | None = None
    write_us: int | None = None
    rx_bytes: int | None = None
    tx_bytes: int | None = None
    rx_packets: int | None = None
    tx_packets: int | None = None
    rx_dropped: int | None = None
    tx_dropped: int | None = None


@dataclass
class Totals:
    """One resource's rows of one period added up."""

    span_ms: int = 0
    cpu_capacity_ms: int = 0  # span_ms x vCPUs of the rows that carry CPU time
    sums: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))

    def add(self, row: MonitorSample) -> None:
        self.span_ms += row.span_ms
        if row.cpu_ms is not None:
            self.cpu_capacity_ms += row.span_ms * (row.vcpus or 1)
        for name in COUNTERS:
            value = getattr(row, name)
            if value is not None:
                self.sums[name] += int(value)

    def rate(self, name: str) -> float:
        """Per second over the time the samples covered."""
        return self.sums[name] * 1000 / self.span_ms if self.span_ms > 0 else 0.0


@dataclass(frozen=True)
class Window:
    """The periods a request asks for: `count` periods of `period` seconds from `start`."""

    start: datetime
    period: int
    count: int

    def stamp(self, index: int) -> str:
        moment = self.start + timedelta(seconds=index * self.period)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(name: str, value: str) -> datetime:
    for layout in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%MZ"):
        try:
            moment = datetime.strptime(value, layout).replace(tzinfo=UTC)
        except ValueError:
            continue
        if moment.second or moment.microsecond:  # ECS: rounded up to the next minute
            moment = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        return moment
    raise errors.invalid_malformed(
        name,
        f'The specified parameter "{name}" is not valid: use a UTC time as yyyy-MM-ddTHH:mm:ssZ, '
        f"got {value[:64]!r}.",
    )


def window(start_text: str, end_text: str, period: int | None, now: datetime) -> Window:
    """The request's StartTime, EndTime and Period checked as ECS checks them."""
    period = 60 if period is None else period
    if period not in PERIODS:
        raise errors.invalid_parameter("Period", f"Valid values: {', '.join(map(str, PERIODS))}.")
    start = _parse_time("StartTime", start_text)
    end = _parse_time("EndTime", end_text)
    if end <= start:
        raise errors.invalid_parameter("EndTime", "The end time must be later than the start time.")
    if start < as_utc(now) - QUERY_WINDOW:
        raise errors.invalid_parameter(
            "StartTime", "Monitoring data can be queried for the last 30 days only."
        )
    seconds = int((end - start).total_seconds())
    count = -(-seconds // period)
    if count > MAX_POINTS:
        raise errors.invalid_parameter_too_many_data_queried()
    return Window(start, period, count)


class Monitoring:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    # ---- the agent's side ----------------------------------------------------------------------

    def record(self, minute: int, deltas: Iterable[Delta]) -> int:
        """Add the deltas to their resources' rows of this minute (epoch seconds // 60); the
        number of rows written. Only the agent of a resource's host writes its rows."""
        deltas = [d for d in deltas if d.span_ms > 0]
        if not deltas:
            return 0
        with self._db.session() as s:
            rows = {
                row.resource_id: row
                for row in s.scalars(
                    select(MonitorSample).where(
                        MonitorSample.minute == minute,
                        MonitorSample.resource_id.in_([d.resource_id for d in deltas]),
                    )
                )
            }
            for delta in deltas:
                row = rows.get(delta.resource_id)
                if row is None:
                    row = MonitorSample(resource_id=delta.resource_id, minute=minute, span_ms=0)
                    s.add(row)
                    rows[delta.resource_id] = row
                row.span_ms += delta.span_ms
                if delta.vcpus is not None:
                    row.vcpus = delta.vcpus
                for name in COUNTERS:
                    value = getattr(delta, name)
                    if value is not None:
                        setattr(row, name, (getattr(row, name) or 0) + value)
        return len(deltas)

    def prune(self) -> int:
        """Delete the rows older than RETENTION; how many."""
        cutoff = int((self._clock.now() - RETENTION).timestamp()) // 60
        with self._db.session() as s:
            result = s.execute(delete(MonitorSample).where(MonitorSample.minute < cutoff))
            return int(getattr(result, "rowcount", 0) or 0)

    # ---- queries -------------------------------------------------------------------------------

    def _totals(self, resource_ids: list[str], w: Window) -> dict[str, dict[int, Totals]]:
        """resource -> period index -> its rows added up (periods without rows absent)."""
        first = int(w.start.timestamp()) // 60
        last = first + w.count * w.period // 60
        found: dict[str, dict[int, Totals]] = defaultdict(dict)
        if not resource_ids:
            return found
        with self._db.session() as s:
            for row in s.scalars(
                select(MonitorSample).where(
                    MonitorSample.resource_id.in_(resource_ids),
                    MonitorSample.minute >= first,
                    MonitorSample.minute < last,
                )
            ):
                index = (row.minute - first) * 60 // w.period
                found[row.resource_id].setdefault(index, Totals()).add(row)
        return found

    def instance_data(self, account_id: int, instance_id: str, w: Window) -> list[dict[str, object]]:
        with self._db.session() as s:
            instance = _instance(s, account_id, instance_id)
            disk_ids = list(s.scalars(select(Disk.id).where(Disk.instance_id == instance.id)))
            eni_ids = list(
                s.scalars(select(NetworkInterface.id).where(NetworkInterface.instance_id == instance.id))
            )
        totals = self._totals([instance.id, *disk_ids, *eni_ids], w)
        indexes = sorted({i for per in totals.values() for i in per})
        points: list[dict[str, object]] = []
        for index in indexes:
            cpu = totals[instance.id].get(index) if instance.id in totals else None
            disks = [totals[d][index] for d in disk_ids if index in totals.get(d, {})]
            enis = [totals[e][index] for e in eni_ids if index in totals.get(e, {})]
            rx = sum(t.sums["rx_bytes"] for t in enis)
            tx = sum(t.sums["tx_bytes"] for t in enis)
            bandwidth = sum((t.rate("rx_bytes") + t.rate("tx_bytes")) * 8 / 1000 for t in enis)
            percent = 100 * cpu.sums["cpu_ms"] / cpu.cpu_capacity_ms if cpu and cpu.cpu_capacity_ms else 0.0
            points.append(
                {
                    "InstanceId": instance.id,
                    "TimeStamp": w.stamp(index),
                    "CPU": min(100, round(percent)),
                    "IntranetRX": round(rx * 8 / 1000),
                    "IntranetTX": round(tx * 8 / 1000),
                    "IntranetBandwidth": round(bandwidth),
                    "InternetRX": 0,
                    "InternetTX": 0,
                    "InternetBandwidth": 0,
                    "BPSRead": round(sum(t.rate("read_bytes") for t in disks)),
                    "BPSWrite": round(sum(t.rate("write_bytes") for t in disks)),
                    "IOPSRead": round(sum(t.rate("read_ops") for t in disks)),
                    "IOPSWrite": round(sum(t.rate("write_ops") for t in disks)),
                    "CPUCreditUsage": 0.0,
                    "CPUCreditBalance": 0.0,
                    "CPUAdvanceCreditBalance": 0.0,
                    "CPUNotpaidSurplusCreditUsage": 0.0,
                }
            )
        return points

    def disk_data(self, account_id: int, disk_id: str, w: Window) -> list[dict[str, object]]:
        with self._db.session() as s:
            disk = owned_disk(s, account_id, disk_id)
        per = self._totals([disk.id], w).get(disk.id, {})
        points: list[dict[str, object]] = []
        for index in sorted(per):
            t = per[index]
            read_ops, write_ops = t.sums["read_ops"], t.sums["write_ops"]
            bps_read, bps_write = round(t.rate("read_bytes")), round(t.rate("write_bytes"))
            iops_read, iops_write = round(t.rate("read_ops")), round(t.rate("write_ops"))
            points.append(
                {
                    "DiskId": disk.id,
                    "TimeStamp": w.stamp(index),
                    "BPSRead": bps_read,
                    "BPSWrite": bps_write,
                    "BPSTotal": bps_read + bps_write,
                    "IOPSRead": iops_read,
                    "IOPSWrite": iops_write,
                    "IOPSTotal": iops_read + iops_write,
                    "LatencyRead": round(t.sums["read_us"] / read_ops) if read_ops else 0,
                    "LatencyWrite": round(t.sums["write_us"] / write_ops) if write_ops else 0,
                }
            )
        return points

    def eni_data(
        self, account_id: int, region_id: str, instance_id: str, eni_id: str | None, w: Window
    ) -> list[dict[str, object]]:
        """The instance's secondary interfaces (ECS's default), or the one `eni_id` names (which
        must be the instance's)."""
        with self._db.session() as s:
            instance = _instance(s, account_id, instance_id, region_id)
            enis = list(
                s.scalars(
                    select(NetworkInterface)
                    .where(NetworkInterface.instance_id == instance.id)
                    .order_by(NetworkInterface.id)
                )
            )
        if eni_id:
            chosen = [e.id for e in enis if e.id == eni_id]
            if not chosen:
                raise errors.invalid_id_not_found("Eni", eni_id)
        else:
            chosen = [e.id for e in enis if e.eni_type != "Primary"]
        totals = self._totals(chosen, w)
        points: list[dict[str, object]] = []
        for index in sorted({i for per in totals.values() for i in per}):
            for eid in chosen:
                t = totals.get(eid, {}).get(index)
                if t is None:
                    continue
                points.append(
                    {
                        "EniId": eid,
                        "TimeStamp": w.stamp(index),
                        "IntranetRx": str(round(t.sums["rx_bytes"] / 1024)),
                        "IntranetTx": str(round(t.sums["tx_bytes"] / 1024)),
                        "PacketRx": str(t.sums["rx_packets"]),
                        "PacketTx": str(t.sums["tx_packets"]),
                        "DropPacketRx": str(t.sums["rx_dropped"]),
                        "DropPacketTx": str(t.sums["tx_dropped"]),
                    }
                )
        return points


def _instance(s: Session, account_id: int, instance_id: str, region_id: str | None = None) -> Instance:
    scope = Scope(account_id, region_id) if region_id is not None else account_id
    return owned(
        s,
        Instance,
        scope,
        instance_id,
        "Instance",
        usable=lambda i: i.desired != states.WANT_DELETED,
    )


# ---- screenshots -------------------------------------------------------------------------------


@contextmanager
def own_session(db: Database) -> Iterator[Session]:
    """A transaction of its own, committed when the block ends, even inside a unit of work."""
    with Session(db.engine, expire_on_commit=False) as session, session.begin():
        yield session


class AgentErrands:
    """Requests the API writes for the agent of an instance's host and waits for (a screenshot, a
    VNC display opened): told at once through `notify`, answered within `timeout` seconds."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        notify: Callable[[str], None],
        timeout: float = SCREENSHOT_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._db = db
        self._clock = clock
        self._notify = notify
        self._timeout = timeout
        self._sleep = sleep

    def _await_answer(
        self, instance_id: str, answer: Callable[[Session], Answer | None], poll: float, late: str
    ) -> Answer:
        """Tell the agent of the instance's host, then wait for its answer: `answer` reads it in a
        transaction of its own (None: not yet; it raises for a failed or vanished request);
        ServiceUnavailable with `late` after `timeout` seconds."""
        self._notify(instance_id)
        deadline = time.monotonic() + self._timeout
        while True:
            with own_session(self._db) as s:
                found = answer(s)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise errors.service_unavailable(late)
            self._sleep(poll)


class Screenshots(AgentErrands):
    def take(self, account_id: int, region_id: str, instance_id: str, wake_up: bool) -> tuple[str, bytes]:
        """Ask the agent of the instance's host for a PNG of its display and wait for it: (the
        instance ID, the PNG). The instance must be Running."""
        # Outside the request's unit of work: the agent must see the request before the action
        # ends, and the action reads what the agent wrote meanwhile.
        with own_session(self._db) as s:
            instance = _instance(s, account_id, instance_id, region_id)
            if instance.status != states.RUNNING:
                raise errors.incorrect_instance_status(
                    "The current status of the resource does not support this operation."
                )
            asked = self._clock.now()
            row = s.get(Screenshot, instance.id)
            if row is None:
                row = Screenshot(instance_id=instance.id, requested_at=asked)
                s.add(row)
            row.requested_at, row.wake_up, row.taken_at, row.png, row.error = asked, wake_up, None, None, ""
            found_id = instance.id

        def taken(s: Session) -> tuple[str, bytes] | None:
            row = s.get(Screenshot, found_id)
            if row is None:
                raise errors.invalid_instance_id_not_found(
                    f"The specified instance {found_id!r} does not exist."
                )
            if row.taken_at is None:
                return None
            if row.png is None:
                raise errors.service_unavailable(f"The screenshot failed: {row.error}")
            return found_id, bytes(row.png)

        return self._await_answer(
            found_id, taken, SCREENSHOT_POLL, "The instance's host did not take the screenshot in time."
        )

    # ---- the agent's side ----------------------------------------------------------------------

    def wanted(self, host_id: str) -> list[tuple[str, bool]]:
        """The screenshots asked for of this host's instances and not taken yet: (instance, wake up)."""
        with self._db.session() as s:
            return [
                (instance_id, bool(wake_up))
                for instance_id, wake_up in s.execute(
                    select(Screenshot.instance_id, Screenshot.wake_up)
                    .join(Instance, Instance.id == Screenshot.instance_id)
                    .where(Instance.host_id == host_id, Screenshot.taken_at.is_(None))
                )
            ]

    def deliver(self, instance_id: str, png: bytes | None, error: str = "") -> None:
        with self._db.session() as s:
            row = s.get(Screenshot, instance_id)
            if row is not None and row.taken_at is None:
                row.png, row.error, row.taken_at = png, error[:256], self._clock.now()


__all__ = [
    "MAX_POINTS",
    "PERIODS",
    "RETENTION",
    "Delta",
    "Monitoring",
    "Screenshots",
    "Window",
    "window",
]
