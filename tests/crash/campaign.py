"""The crash campaign: kill -9 an emulator-mode server at seeded random points under a mixed load,
restart it on the same store, and check after every restart that

- every acknowledged create exists and every acknowledged delete is gone (or goes within the bound);
- a retry with the same ClientToken and parameters answers the same IDs, for requests acknowledged
  before the kill and for requests in flight at it, and makes no duplicate (counted by name);
- no resource stays in a passing status (Pending, progressing, Creating, ...) for more than
  STUCK_AFTER seconds of server uptime, none ends up failed, and a Running instance nobody touched
  is still Running;
- nothing answers 5xx, no request goes unanswered while the server lives, the server logs no traceback.

The seed fixes each worker's stream of requests and parameters and each kill moment (the request
count at which it fires, and the delay after it); thread interleaving still varies between runs, so a
timing-dependent finding may need its seed run a few times. Shared by tests/crash/test_crash.py (CI)
and scripts/crash.py (on demand)."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import ROOT_KEY_ID, ROOT_SECRET, LiveServer, start_server

from .client import Answer, Client, Unreachable
from .load import BASE_VPC_CIDR, BASE_VSWITCH_CIDR, DELETES, ZONE, Base, Generator, Op, Pool
from .world import KINDS, ListingFailed, World, observe

STUCK_AFTER = 30.0  # seconds of server uptime a passing status may last (emulator mode is instant)
WORKERS = 3
KILL_AFTER = (3, 40)  # the kill fires once this many requests (drawn in the range) were sent in the round...
KILL_DELAY = (0.0, 0.03)  # ...plus this many seconds, so that it lands in the middle of requests
ROUND_TIMEOUT = 20.0  # a kill fires after this long even if the load sent fewer requests
# Acknowledged creates of earlier rounds retried after each restart (all of the last round's are).
OLD_RETRIES = 5
TRACEBACK = re.compile(r"^Traceback \(most recent call last\):$")
RESOURCE_ID = re.compile(r"\b(i|d|s|m|sg|vpc|vsw|vrt|vtb|eni)-[a-z0-9]{8,}\b")
NUMBER = re.compile(r"\b\d+\b")


@dataclass(frozen=True)
class Violation:
    kind: str
    round: int
    detail: str

    def __str__(self) -> str:
        return f"[{self.kind}] round {self.round}: {self.detail}"


@dataclass
class Report:
    seed: int
    kill_points: int = 0
    calls: int = 0  # load requests and retries (listings not counted)
    acknowledged: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # 4xx codes
    unknown: int = 0  # no answer: in flight at a kill
    retries: int = 0
    listings: int = 0
    violations: list[Violation] = field(default_factory=list)
    elapsed: float = 0.0

    def by_kind(self) -> Counter[str]:
        return Counter(v.kind for v in self.violations)

    def summary(self) -> str:
        lines = [
            f"seed {self.seed}: {self.kill_points} kill points in {self.elapsed:.0f}s",
            (
                f"  calls {self.calls}, acknowledged {self.acknowledged}, "
                f"refused (4xx) {sum(self.refused.values())}, "
                f"unknown outcome {self.unknown}, retries {self.retries}, listings {self.listings}"
            ),
            f"  refusals by code: {dict(self.refused.most_common(8))}",
            f"  violations {len(self.violations)}: {dict(sorted(self.by_kind().items()))}",
        ]
        shown: Counter[str] = Counter()
        for violation in self.violations:
            shown[violation.kind] += 1
            if shown[violation.kind] <= 3:  # the first few of each kind; the counts say the rest
                lines.append(f"    {violation}")
        if self.violations:
            lines.append(f"  reproduce: scripts/crash.py --seed {self.seed} --kill-points {self.kill_points}")
        return "\n".join(lines)


def _fresh_postgres(server_url: str) -> str:
    """A new database on the PostgreSQL server `server_url` names, so that runs do not see each other."""
    import psycopg

    name = f"nubes_crash_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"


def _tracebacks(text: str) -> list[str]:
    """Each traceback in a server log, as "<log line before it> :: <exception line>"."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        if TRACEBACK.match(line):
            end = i + 1
            while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()):
                end += 1
            cause = lines[i - 1].strip() if i else ""
            found.append(f"{cause[:200]} :: {lines[end].strip()[:300] if end < len(lines) else '?'}")
    return found


def _image_snapshots(row: dict[str, object]) -> list[str]:
    mappings = row.get("DiskDeviceMappings", {})
    items = mappings.get("DiskDeviceMapping", []) if isinstance(mappings, dict) else []
    return [str(m["SnapshotId"]) for m in items if isinstance(m, dict) and m.get("SnapshotId")]


def _source(world: World, kind: str, row: dict[str, object]) -> str:
    """What a snapshot or image was made from, and what became of it: the likely cause of a finding."""
    if kind == "snapshot":
        disk = str(row.get("SourceDiskId", ""))
        return f"; its disk {disk} is {world.status('disk', disk) or 'gone'}"
    if kind == "image":
        return "; its snapshots: " + ", ".join(
            f"{sid} {world.status('snapshot', sid) or 'gone'}" for sid in _image_snapshots(row)
        )
    return ""


def _source_lost(world: World, kind: str, row: dict[str, object]) -> bool:
    """A snapshot whose disk was deleted under it, or an image on such a snapshot, may rightly fail;
    with its source still there, nothing in emulator mode should."""
    if kind == "snapshot":
        return not world.status("disk", str(row.get("SourceDiskId", "")))
    if kind == "image":
        return any(world.status("snapshot", sid) in ("", "failed") for sid in _image_snapshots(row))
    return False


class Campaign:
    def __init__(
        self,
        seed: int,
        kill_points: int,
        workdir: Path,
        database_url: str | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.seed = seed
        self.kill_points = kill_points
        self.workdir = workdir
        self.database_url = _fresh_postgres(database_url) if database_url else None
        self.progress = progress or (lambda _: None)
        self.report = Report(seed)
        self.rng = random.Random(seed)
        self.ops: list[Op] = []
        self.lock = threading.RLock()  # the workers' answers and the figures
        self.maybe_gone: set[str] = set()  # targets of deletes that may have happened
        self.deleted_at: dict[str, float] = {}  # acknowledged deletes -> uptime at the answer
        self.passing_since: dict[str, tuple[str, float]] = {}  # id -> (status, uptime first seen in it)
        self.reported: set[tuple[str, str]] = set()  # (violation kind, id): each reported once
        self.running: set[str] = set()  # instances Running at the last listing...
        self.touched: set[str] = set()  # ...and those a request may have acted on since
        self.up_total = 0.0
        self.up_since: float | None = None
        self.incarnation = 0
        self.tracebacks: dict[str, tuple[int, str]] = {}  # shape -> (incarnation, first line of that shape)
        self.traceback_counts: Counter[str] = Counter()
        self.server: LiveServer | None = None
        self.pool: Pool | None = None

    # ---- the run -----------------------------------------------------------------------------

    def run(self) -> Report:
        started = time.monotonic()
        backend = "postgres" if self.database_url else "sqlite"
        self.server = start_server(self.workdir, self.database_url, backend, ["--throttle-rate", "0"])
        self.up_since = time.monotonic()
        try:
            self.pool = Pool(self._setup())
            self._recover(-1)
            for round_no in range(self.kill_points):
                self._load_and_kill(round_no)
                self.report.kill_points += 1
                self._restart()
                self._recover(round_no)
                self.progress(
                    f"kill point {round_no + 1}/{self.kill_points}: "
                    f"{len(self.report.violations)} violations so far"
                )
            self._settle(self.kill_points)
        finally:
            self._stop()
            self._report_tracebacks()
            self._write_journal()
            self.report.elapsed = time.monotonic() - started
        return self.report

    def _write_journal(self) -> None:
        """Every request and its outcome, one JSON object a line, next to the server logs: the evidence
        behind a finding (which requests touched the resource it names)."""
        with open(self.workdir / "ops.jsonl", "w") as journal:
            for op in self.ops:
                answer = op.answer
                journal.write(
                    json.dumps(
                        {
                            "round": op.round,
                            "name": op.name,
                            "action": op.action,
                            "params": op.params,
                            "outcome": op.outcome,
                            "retried": op.retried,
                            "status": answer.status if answer else None,
                            "body": answer.body if answer else None,
                        }
                    )
                    + "\n"
                )

    def _client(self) -> Client:
        assert self.server is not None
        return Client(self.server.endpoint, (ROOT_KEY_ID, ROOT_SECRET))

    def uptime(self) -> float:
        return self.up_total + (time.monotonic() - self.up_since if self.up_since is not None else 0.0)

    def violate(self, kind: str, round_no: int, detail: str) -> None:
        self.report.violations.append(Violation(kind, round_no, detail))

    def _setup(self) -> Base:
        """The network instances launch into, created before the first kill."""
        client = self._client()

        def must(product: str, action: str, params: dict[str, str], wanted: str) -> str:
            answer = client.call(product, action, params)
            if not answer.ok:
                raise RuntimeError(f"setup: {action} answered {answer.status} {answer.body}")
            return str(answer.body[wanted])

        vpc_id = must("vpc", "CreateVpc", {"CidrBlock": BASE_VPC_CIDR, "VpcName": "base"}, "VpcId")
        self._wait_status(client, "vpc", "DescribeVpcAttribute", {"VpcId": vpc_id})
        vswitch = {"VpcId": vpc_id, "ZoneId": ZONE, "CidrBlock": BASE_VSWITCH_CIDR, "VSwitchName": "base"}
        vswitch_id = must("vpc", "CreateVSwitch", vswitch, "VSwitchId")
        self._wait_status(client, "vpc", "DescribeVSwitchAttributes", {"VSwitchId": vswitch_id})
        group_id = must(
            "ecs", "CreateSecurityGroup", {"VpcId": vpc_id, "SecurityGroupName": "base"}, "SecurityGroupId"
        )
        images = client.call("ecs", "DescribeImages", {"ImageOwnerAlias": "system", "PageSize": "100"})
        image_id = next(
            str(i["ImageId"])
            for i in images.body["Images"]["Image"]
            if i.get("ImageFamily") == "nubes:debian_12_x64"
        )
        return Base(vpc_id, vswitch_id, group_id, image_id)

    @staticmethod
    def _wait_status(client: Client, product: str, action: str, params: dict[str, str]) -> None:
        deadline = time.monotonic() + 15
        while client.call(product, action, params).body.get("Status") != "Available":
            if time.monotonic() > deadline:
                raise RuntimeError(f"setup: {action} {params} not Available in 15s")
            time.sleep(0.1)

    # ---- load and kill -----------------------------------------------------------------------

    def _load_and_kill(self, round_no: int) -> None:
        assert self.server is not None and self.pool is not None
        process, pool = self.server.process, self.pool
        target = self.rng.randint(*KILL_AFTER)
        delay = self.rng.uniform(*KILL_DELAY)
        sent = 0
        sent_lock = threading.Lock()
        enough = threading.Event()
        fired = threading.Event()
        client = self._client()

        def worker(index: int) -> None:
            nonlocal sent
            generator = Generator(pool, round_no, index, random.Random(f"{self.seed}:{round_no}:{index}"))
            while not fired.is_set():
                op = generator.next()
                with sent_lock:
                    sent += 1
                    if sent >= target:
                        enough.set()
                with self.lock:
                    self.ops.append(op)
                    self.report.calls += 1
                try:
                    answer = client.call(op.product, op.action, op.params)
                except Unreachable as error:
                    with self.lock:
                        op.outcome = "unknown"
                        self.report.unknown += 1
                        self._may_have_acted(op)
                    if not fired.is_set():
                        self._unanswered(round_no, op, error)
                    return
                with self.lock:
                    self._answered(round_no, op, answer, retry=False)

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(WORKERS)]
        for thread in threads:
            thread.start()
        enough.wait(ROUND_TIMEOUT)
        time.sleep(delay)
        fired.set()
        process.kill()  # SIGKILL: no shutdown hook runs
        process.wait()
        self._went_down()
        for thread in threads:
            thread.join(60)

    def _unanswered(self, round_no: int, op: Op, error: Unreachable) -> None:
        """No answer while the server should be up: a hang, or the server died on its own."""
        assert self.server is not None
        died = self.server.process.poll() is not None
        kind = "server_died" if died else "timeout" if error.timed_out else "unanswered"
        self.violate(kind, round_no, f"{op.action} {op.params}: {error}")

    def _answered(self, round_no: int, op: Op, answer: Answer, retry: bool) -> None:
        assert self.pool is not None
        op.record(answer)
        if op.outcome == "ok":
            self.report.acknowledged += 1
        elif op.outcome == "refused":
            self.report.refused[answer.code] += 1
        elif not retry:  # _retry reported it
            self.violate("5xx", round_no, f"{op.action} {op.params} answered {answer.status} {answer.body}")
        if op.outcome != "refused":  # a 5xx may have acted before failing
            self._may_have_acted(op)
        if op.outcome == "ok" and (op.action in DELETES or op.action == "DeleteInstances"):
            for target in op.targets:
                self.deleted_at.setdefault(target, self.uptime())
        self.pool.learn(op)

    def _may_have_acted(self, op: Op) -> None:
        self.touched.update(op.targets)
        if op.action in DELETES or op.action == "DeleteInstances":
            self.maybe_gone.update(op.targets)

    # ---- restart -----------------------------------------------------------------------------

    def _went_down(self) -> None:
        if self.up_since is not None:
            self.up_total += time.monotonic() - self.up_since
            self.up_since = None
        self._scan_log(self.incarnation)

    def _restart(self) -> None:
        """The same command on the same store, data dir and netns prefix; a log file per incarnation."""
        server = self.server
        assert server is not None
        self.incarnation += 1
        server.log_path = server.data_dir.parent / f"server-{self.incarnation}.log"
        env = {**os.environ, "NUBES_ACCESS_KEY_ID": ROOT_KEY_ID, "NUBES_ACCESS_KEY_SECRET": ROOT_SECRET}
        with open(server.log_path, "wb") as log_file:
            server.process = subprocess.Popen(server.args, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://{server.endpoint}/healthz", timeout=1):
                    break
            except OSError:
                if server.process.poll() is not None or time.monotonic() > deadline:
                    server.process.kill()
                    raise RuntimeError(
                        f"nubes server did not restart (seed {self.seed}):\n{server.log()}"
                    ) from None
                time.sleep(0.05)
        self.up_since = time.monotonic()

    def _stop(self) -> None:
        if self.server is not None and self.server.process.poll() is None:
            self.server.process.terminate()
            try:
                self.server.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.server.process.kill()
            self._went_down()

    def _scan_log(self, incarnation: int) -> None:
        """Collect the incarnation's tracebacks, grouped by their shape (IDs and counters blanked)."""
        assert self.server is not None
        for line in _tracebacks(self.server.log()):
            shape = NUMBER.sub("N", RESOURCE_ID.sub("<id>", line.split(" ", 2)[-1]))
            if shape not in self.tracebacks:
                self.tracebacks[shape] = (incarnation, line)
            self.traceback_counts[shape] += 1

    def _report_tracebacks(self) -> None:
        for shape, (incarnation, line) in self.tracebacks.items():
            self.violate(
                "server_traceback",
                incarnation - 1,
                f"{self.traceback_counts[shape]}x, first in server-{incarnation}.log: {line}",
            )

    # ---- after a restart: retries and checks ---------------------------------------------------

    def _recover(self, round_no: int) -> None:
        client = self._client()
        unknown = [op for op in self.ops if op.round == round_no and op.outcome == "unknown" and op.create]
        acked = [op for op in self.ops if op.outcome == "ok" and op.create]
        last = [op for op in acked if op.round == round_no]
        older = [op for op in acked if op.round != round_no]
        sample = last + self.rng.sample(older, min(OLD_RETRIES, len(older)))
        retry_answers: dict[int, Answer] = {}
        for op in unknown:
            answer = self._retry(client, round_no, op)
            if answer is not None:
                retry_answers[id(op)] = answer
        for op in sample:
            self._retry_acknowledged(client, round_no, op)
        world = self._observe(client, round_no)
        if world is None:
            return
        for op in unknown:
            if id(op) in retry_answers:
                self._check_in_flight(round_no, op, retry_answers[id(op)], world)
        for op in sample:
            self._check_no_more(round_no, op, world)
        self._check_world(round_no, world, final=False)

    def _retry(self, client: Client, round_no: int, op: Op) -> Answer | None:
        self.report.retries += 1
        self.report.calls += 1
        try:
            answer = client.call(op.product, op.action, op.params)
        except Unreachable as error:
            self._unanswered(round_no, op, error)
            return None
        if answer.status >= 500:
            self.violate(
                "5xx", round_no, f"{op.action} {op.params} (retry) answered {answer.status} {answer.body}"
            )
        elif answer.code == "IdempotentParameterMismatch":
            self.violate(
                "retry_mismatch",
                round_no,
                f"{op.action} {op.params}: same token and parameters refused: {answer.body.get('Message')}",
            )
        return answer

    def _retry_acknowledged(self, client: Client, round_no: int, op: Op) -> None:
        assert op.answer is not None
        answer = self._retry(client, round_no, op)
        if answer is None or answer.status >= 500 or answer.code == "IdempotentParameterMismatch":
            return
        first = {k: v for k, v in op.answer.body.items() if k != "RequestId"}
        again = {k: v for k, v in answer.body.items() if k != "RequestId"}
        if again != first:
            self.violate(
                "retry_changed",
                round_no,
                f"{op.action} {op.name} acknowledged {first}, retry answered {answer.status} {again}",
            )

    def _check_in_flight(self, round_no: int, op: Op, answer: Answer, world: World) -> None:
        """A request in flight at the kill, retried: it happened once or not at all."""
        create = op.create
        assert create is not None
        named = world.named(create.kind, op.name)
        op.retried = True
        self._answered(round_no, op, answer, retry=True)
        if answer.ok:
            ids = sorted(op.ids())
            if len(named) > op.expected:
                self._once(
                    "duplicate",
                    op.name,
                    round_no,
                    f"{op.action} {op.name} (Amount {op.expected}) retried after the kill: "
                    f"{len(named)} {create.kind}s {named}, retry answered {ids}",
                )
            elif named != ids:
                self.violate(
                    "retry_ids",
                    round_no,
                    f"{op.action} {op.name} retried: answered {ids}, the store has {named}",
                )
        elif named:
            self.violate(
                "orphan",
                round_no,
                f"{op.action} {op.name} retried after the kill was refused ({answer.code}) but made {named}",
            )

    def _check_no_more(self, round_no: int, op: Op, world: World) -> None:
        """An acknowledged create, retried: still only what it made (fewer if some were deleted since)."""
        create = op.create
        assert create is not None
        named = world.named(create.kind, op.name)
        if set(named) - set(op.ids()):
            self._once(
                "duplicate",
                op.name,
                round_no,
                f"{op.action} {op.name} acknowledged {op.ids()}, retried: the store has {named}",
            )

    def _observe(self, client: Client, round_no: int) -> World | None:
        self.report.listings += len(KINDS)
        try:
            return observe(client)
        except ListingFailed as failed:
            kind = "5xx" if failed.answer.status >= 500 else "listing_refused"
            self.violate(kind, round_no, str(failed))
        except Unreachable as error:
            self.violate("unanswered", round_no, f"listing: {error}")
        return None

    def _check_world(self, round_no: int, world: World, final: bool) -> None:
        """The checks on one listing; `final`: nothing may still be passing (the bound has run out)."""
        assert self.pool is not None
        now = self.uptime()
        for op in self.ops:
            if op.outcome != "ok" or not op.create:
                continue
            for rid in op.ids():
                if rid not in self.maybe_gone and world.find(rid) is None:
                    self._once(
                        "lost_create",
                        rid,
                        round_no,
                        f"{op.action} {op.name} acknowledged {rid}; it is gone and nothing deleted it",
                    )
        for rid, at in self.deleted_at.items():
            row = world.find(rid)
            if row is not None and (final or now - at > STUCK_AFTER):
                self._once(
                    "delete_lingers",
                    rid,
                    round_no,
                    f"{rid} deleted (acknowledged) {now - at:.0f}s of uptime ago, "
                    f"still listed as {row.get('Status')}",
                )
        seen: set[str] = set()
        for kind in KINDS.values():
            for rid, row in world.rows.get(kind.name, {}).items():
                status = str(row.get("Status", ""))
                if status in kind.failed and not _source_lost(world, kind.name, row):
                    self._once(
                        "failed_status",
                        rid,
                        round_no,
                        f"{kind.name} {rid} is {status}{_source(world, kind.name, row)}",
                    )
                if status not in kind.transitional:
                    continue
                seen.add(rid)
                first_status, since = self.passing_since.setdefault(rid, (status, now))
                if final or now - since > STUCK_AFTER:
                    self._once(
                        f"stuck_{kind.name}",
                        rid,
                        round_no,
                        f"{kind.name} {rid} {status} for {now - since:.0f}s of uptime "
                        f"(first seen {first_status}){_source(world, kind.name, row)}",
                    )
        for rid in set(self.passing_since) - seen:
            del self.passing_since[rid]
        instances = world.rows.get("instance", {})
        for rid in sorted(self.running - self.touched):
            status = str(instances.get(rid, {}).get("Status", "gone"))
            if status in ("Stopped", "Stopping") or (status == "gone" and rid not in self.maybe_gone):
                self._once(
                    "power_lost",
                    rid,
                    round_no,
                    f"instance {rid} was Running, nothing stopped it, after the restart it is {status}",
                )
        self.running = {rid for rid, row in instances.items() if row.get("Status") == "Running"}
        self.touched = set()
        self.pool.refresh(world)

    def _once(self, kind: str, rid: str, round_no: int, detail: str) -> None:
        if (kind, rid) not in self.reported:
            self.reported.add((kind, rid))
            self.violate(kind, round_no, detail)

    def _settle(self, round_no: int) -> None:
        """After the last restart: give passing statuses and deletes the bound, then hold them to it."""
        client = self._client()
        deadline = self.up_since + STUCK_AFTER if self.up_since is not None else time.monotonic()
        while time.monotonic() < deadline:
            world = self._observe(client, round_no)
            if world is None:
                return
            self._check_world(round_no, world, final=False)
            if not self._unsettled(world):
                return
            time.sleep(0.5)
        world = self._observe(client, round_no)
        if world is not None:
            self._check_world(round_no, world, final=True)

    def _unsettled(self, world: World) -> bool:
        """Something passing or deleted-but-listed that is not already reported."""
        reported_ids = {rid for _, rid in self.reported}
        passing = any(rid not in reported_ids for rid in self.passing_since)
        lingering = any(world.find(rid) is not None and rid not in reported_ids for rid in self.deleted_at)
        return passing or lingering


def run(
    seed: int,
    kill_points: int,
    workdir: Path,
    database_url: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    return Campaign(seed, kill_points, workdir, database_url, progress).run()
