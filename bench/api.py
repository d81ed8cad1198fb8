"""Side-by-side API benchmark: nubes (ECS OpenAPI) against moto's standalone server (EC2).

For DescribeRegions and DescribeInstanceTypes, with 8 and 64 concurrent keep-alive clients,
it measures requests per second and p50/p99 latency of
  - nubes, every request signed with signature v1 (HMAC-SHA1, parameters in the query),
  - nubes, every request signed with signature v3 (ACS3-HMAC-SHA256, Authorization header),
  - moto's standalone server answering the EC2 calls of the same name (SigV4-signed),
in the same run on the same machine, and prints each nubes row beside the moto row with the
ratios and a verdict against the target: nubes at least 3x moto's throughput, with a lower p99.

Nothing is asserted: the figures are measured and printed. Load goes to 127.0.0.1 only.
Each measured phase is bounded by a duration (--seconds) and a request count (--max-requests);
requests still in flight --grace seconds after the window closes are abandoned and counted as
timeouts (their latency counts as infinite in the percentiles).

Both servers run as subprocesses on free ports with temporary data directories, one at a time
(so they never compete for the CPU), and are stopped on exit, Ctrl-C or error.

With --baseline REF (a git commit, e.g. HEAD~1 or main), nubes as it was at REF runs in the same
run beside the working tree's nubes (checked out into the temporary directory, same flags), and
each nubes row is printed against its baseline row: the cost of a change, measured side by side.

Run:  ./nubes-dev bench api [--seconds 5] [--concurrency 8,64] [--only nubes|moto] [--baseline REF] [--json FILE]
  or: .venv/bin/python bench/api.py ...     (after: pip install -e '.[bench]')
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import math
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

from common import (
    ECS_VERSION,
    LOCALHOST,
    NUBES_CLI,
    Ratio,
    ServerProcess,
    cpu_model,
    interrupt,
    loadavg_text,
    nearest_rank,
    save_json,
    v1_path,
)

from nubes.api.signing import sign_v3

HOST = LOCALHOST  # the only address this script ever sends load to
EC2_VERSION = "2016-11-15"
ACTIONS = ("DescribeRegions", "DescribeInstanceTypes")
TARGET_THROUGHPUT_RATIO = 3.0
STOP_TIMEOUT = 15.0
WARMUP_MAX_REQUESTS = 200
MAX_ERROR_SAMPLES = 5


# ---- options --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    seconds: float
    warmup: float
    grace: float
    max_requests: int
    concurrency: tuple[int, ...]
    only: str | None
    json_path: Path | None
    baseline: str | None = None


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured window per case (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="serial warm-up per case, seconds (default 1)")
    parser.add_argument(
        "--grace", type=float, default=15.0,
        help="seconds in-flight requests may still finish after the window; later ones are timeouts (default 15)",
    )
    parser.add_argument("--max-requests", type=int, default=200_000, help="request cap per case (default 200000)")
    parser.add_argument("--concurrency", default="8,64", help="comma-separated client counts (default 8,64)")
    parser.add_argument("--only", choices=("nubes", "moto"), help="benchmark one server only")
    parser.add_argument("--json", dest="json_path", type=Path, help="also save the raw figures to this file")
    parser.add_argument("--baseline", metavar="REF",
                        help="also run nubes as of this git commit, side by side, and print the ratios")
    args = parser.parse_args(argv)
    try:
        concurrency = tuple(int(part) for part in args.concurrency.split(",") if part.strip())
    except ValueError:
        parser.error("--concurrency takes comma-separated integers, e.g. 8,64")
    if not concurrency or min(concurrency) < 1 or max(concurrency) > 1024:
        parser.error("--concurrency values must be between 1 and 1024")
    if args.seconds <= 0 or args.seconds > 600 or args.warmup < 0 or args.grace < 0 or args.max_requests < 1:
        parser.error("--seconds must be in (0, 600], --warmup and --grace >= 0, --max-requests >= 1")
    return Options(args.seconds, args.warmup, args.grace, args.max_requests, concurrency, args.only, args.json_path,
                   args.baseline)


# ---- servers ----------------------------------------------------------------------------------


@dataclass
class ServerSpec:
    name: str
    command: Callable[[int, Path], list[str]]
    env: dict[str, str]
    health_path: str | None  # GET path answering 200 when ready; None: ready when the port accepts


class ManagedServer:
    """The server of one ServerSpec; each start gets a new port, data directory and log file."""

    def __init__(self, spec: ServerSpec, workdir: Path) -> None:
        self.spec = spec
        self.workdir = workdir
        self.process = ServerProcess(spec.name)
        self.starts = 0

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def host_header(self) -> str:
        return self.process.endpoint

    def start(self) -> None:
        self.starts += 1
        data_dir = self.workdir / f"{self.spec.name}-data-{self.starts}"
        data_dir.mkdir()
        self.process.start(lambda port: self.spec.command(port, data_dir), {**os.environ, **self.spec.env},
                           self.workdir / f"{self.spec.name}-{self.starts}.log", self.spec.health_path)

    def stop(self) -> None:
        self.process.stop(STOP_TIMEOUT)

    def cpu_seconds(self) -> float:
        """CPU time (user + system, all threads) the server process has used so far."""
        return self.process.cpu_seconds()

    def restart(self) -> None:
        self.stop()
        self.start()


NUBES_SERVER = [*NUBES_CLI, "server"]


def nubes_extra_flags() -> list[str]:
    """Flags the installed nubes needs besides the basic ones: when it has real VM/network drivers,
    the benchmark runs the emulator ('--driver fake') so it never touches this machine's networking."""
    try:
        help_text = subprocess.run([*NUBES_SERVER, "--help"], capture_output=True, text=True, timeout=60,
                                   check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return ["--driver", "fake"] if "--driver" in help_text and "fake" in help_text else []


def nubes_spec(access_key_id: str, secret: str, extra_flags: Sequence[str], name: str = "nubes",
               source: Path | None = None) -> ServerSpec:
    """nubes as installed, or (with `source`) the nubes of another checkout's src directory."""
    def command(port: int, data_dir: Path) -> list[str]:
        return [
            *NUBES_SERVER,
            "--host", HOST, "--port", str(port), "--data-dir", str(data_dir), "--throttle-rate", "0", *extra_flags,
        ]

    env = {"NUBES_ACCESS_KEY_ID": access_key_id, "NUBES_ACCESS_KEY_SECRET": secret}
    if source is not None:
        env["PYTHONPATH"] = str(source)
    return ServerSpec(name, command, env, "/healthz")


@contextlib.contextmanager
def baseline_checkout(ref: str, workdir: Path) -> Iterator[Path]:
    """The src directory of nubes as of git commit `ref`, in a detached worktree removed afterwards."""
    repo = Path(__file__).resolve().parent.parent
    tree = workdir / "baseline"
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", "--quiet", str(tree), ref],
                   check=True, capture_output=True, timeout=120)
    try:
        yield tree / "src"
    finally:
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)],
                       capture_output=True, timeout=120, check=False)


def moto_spec() -> ServerSpec:
    def command(port: int, data_dir: Path) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]

    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    return ServerSpec("moto", command, env, None)


@contextlib.contextmanager
def running(server: ManagedServer) -> Iterator[ManagedServer]:
    try:
        server.start()
        yield server
    finally:
        server.stop()


# ---- signed requests ----------------------------------------------------------------------------


class RequestFactory(Protocol):
    label: str
    action: str

    def build(self) -> bytes:
        """The bytes of one freshly signed HTTP/1.1 request."""
        ...

    def check_body(self, body: bytes) -> int:
        """Raise if the body is not a real answer to the action; return how many items it lists."""
        ...


def http_request(path: str, headers: Sequence[tuple[str, str]], body: bytes = b"") -> bytes:
    lines = [f"POST {path} HTTP/1.1", *(f"{name}: {value}" for name, value in headers), f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def count_items(body: bytes, envelope: bytes, item: bytes) -> int:
    if envelope not in body:
        raise ValueError(f"answer lacks {envelope!r}: {body[:200]!r}")
    return body.count(item)


NUBES_ITEMS = {"DescribeRegions": (b'"Regions"', b'"RegionId"'),
               "DescribeInstanceTypes": (b'"InstanceTypes"', b'"InstanceTypeId"')}
MOTO_ITEMS = {"DescribeRegions": (b"<DescribeRegionsResponse", b"<regionName>"),
              "DescribeInstanceTypes": (b"<DescribeInstanceTypesResponse", b"<instanceType>")}


@dataclass
class NubesV1:
    """Like aliyun-python-sdk-core: POST /?<signed parameters>, empty body, HMAC-SHA1."""

    action: str
    host: str
    access_key_id: str
    secret: str
    label: str = "nubes v1"

    def build(self) -> bytes:
        params = {"Action": self.action, "Version": ECS_VERSION, "Format": "JSON"}
        return http_request(v1_path(params, (self.access_key_id, self.secret)), [("Host", self.host)])

    def check_body(self, body: bytes) -> int:
        return count_items(body, *NUBES_ITEMS[self.action])


@dataclass
class NubesV3:
    """Like the alibabacloud Tea SDKs: ACS3-HMAC-SHA256 in the Authorization header."""

    action: str
    host: str
    access_key_id: str
    secret: str
    label: str = "nubes v3"

    def build(self) -> bytes:
        headers = sign_v3("POST", self.host, self.action, ECS_VERSION, {}, self.access_key_id, self.secret)
        return http_request("/", list(headers.items()))

    def check_body(self, body: bytes) -> int:
        return count_items(body, *NUBES_ITEMS[self.action])


class MotoSigV4:
    """EC2 query API: form body, SigV4 (service ec2, us-east-1) by botocore, as boto3 signs it."""

    label = "moto"

    def __init__(self, action: str, host: str) -> None:
        from botocore.auth import SigV4Auth  # type: ignore[import-untyped, unused-ignore]
        from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped, unused-ignore]
        from botocore.credentials import Credentials  # type: ignore[import-untyped, unused-ignore]

        self.action = action
        self.host = host
        self._request_class: Any = AWSRequest
        self._signer: Any = SigV4Auth(Credentials("testing", "testing"), "ec2", "us-east-1")
        self._body = urlencode({"Action": action, "Version": EC2_VERSION}).encode()

    def build(self) -> bytes:
        request = self._request_class(
            "POST", f"http://{self.host}/", data=self._body,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
        self._signer.add_auth(request)
        headers = [("Host", self.host), *((str(k), str(v)) for k, v in request.headers.items())]
        return http_request("/", headers, self._body)

    def check_body(self, body: bytes) -> int:
        return count_items(body, *MOTO_ITEMS[self.action])


# ---- a minimal HTTP/1.1 client --------------------------------------------------------------------


class HttpError(Exception):
    pass


@dataclass
class Reply:
    status: int
    body: bytes
    keep_alive: bool


class Connection:
    """One keep-alive connection; reconnects when the server closes it (moto closes every one)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.connects = 0

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        self.connects += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def roundtrip(self, request: bytes) -> Reply:
        if self.writer is None:
            await self.open()
        reader, writer = self.reader, self.writer
        assert reader is not None and writer is not None
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status, headers = parse_head(head)
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await read_chunked(reader)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        else:
            body = await reader.read()  # delimited by close
            headers["connection"] = "close"
        keep_alive = headers.get("connection", "").lower() != "close"
        if not keep_alive:
            self.close()
        return Reply(status, body, keep_alive)


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise HttpError(f"bad status line {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if parts[0] == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
        headers["connection"] = "close"
    return int(parts[1]), headers


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailer fields, then the empty line
                pass
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)


# ---- measurement ---------------------------------------------------------------------------------


@dataclass
class Tally:
    """What the clients of one phase saw."""

    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    issued: int = 0
    ok: int = 0
    bad_status: int = 0
    failures: int = 0  # connection or protocol errors
    timeouts: int = 0  # still in flight at the end of the grace period
    response_bytes: int = 0
    last_end: float = 0.0
    samples: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        if len(self.samples) < MAX_ERROR_SAMPLES:
            self.samples.append(message)

    @property
    def errors(self) -> int:
        return self.bad_status + self.failures + self.timeouts


@dataclass
class CaseResult:
    server: str  # "nubes v1", "nubes v3", "moto"
    action: str
    concurrency: int
    seconds: float  # from the start of the window to the last answer (or the abandonment)
    requests: int
    ok: int
    errors: int
    timeouts: int
    rps: float
    p50_ms: float  # inf when over half the requests timed out
    p99_ms: float
    max_ms: float
    bytes_per_response: int
    items_per_response: int
    serial_ms: float  # median latency with one client, from the warm-up
    censored_above_ms: float  # an unanswered request waited at least this long (inf latencies)
    connects: int
    server_cpu_pct: float  # percent of one core over `seconds`
    client_cpu_pct: float  # this process (the load generator), same window
    error_samples: list[str]


async def one_request(conn: Connection, factory: RequestFactory, tally: Tally) -> bytes | None:
    request = factory.build()  # signed afresh: every request carries a new nonce and timestamp
    started = time.perf_counter()
    try:
        reply = await conn.roundtrip(request)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, HttpError, ValueError) as exc:
        conn.close()
        tally.failures += 1
        tally.error(f"{type(exc).__name__}: {exc}")
        return None
    ended = time.perf_counter()
    tally.last_end = ended
    if reply.status != 200:
        tally.bad_status += 1
        tally.error(f"HTTP {reply.status}: {reply.body[:300]!r}")
        return None
    tally.ok += 1
    tally.latencies.append(ended - started)
    tally.response_bytes += len(reply.body)
    return reply.body


@dataclass
class WarmUp:
    items: int  # items listed in the first answer
    body_bytes: int  # size of the first answer
    serial_ms: float  # median latency of the warm-up's one-at-a-time requests


async def warm_up(port: int, factory: RequestFactory, seconds: float, timeout: float) -> WarmUp:
    """Serial requests for `seconds` (at least two); the first (cold) answer's body is checked."""
    conn = Connection(port)
    tally = Tally()
    deadline = time.perf_counter() + seconds
    items, body_bytes, cold = -1, 0, math.nan
    try:
        for _ in range(WARMUP_MAX_REQUESTS):
            body = await asyncio.wait_for(one_request(conn, factory, tally), timeout)
            if body is None:
                raise RuntimeError(f"{factory.label} {factory.action} failed during warm-up: {tally.samples[-1]}")
            if items < 0:
                items, body_bytes = factory.check_body(body), len(body)
                cold = tally.latencies.pop()  # the first request pays for lazy loading: not a serial figure
            elif time.perf_counter() >= deadline:
                break
    except TimeoutError:
        raise RuntimeError(f"{factory.label} {factory.action}: no answer within {timeout:.0f}s in warm-up") from None
    finally:
        conn.close()
    latencies = sorted(tally.latencies) or [cold]
    return WarmUp(items, body_bytes, 1000 * nearest_rank(latencies, 0, 50))


async def client_loop(conn: Connection, factory: RequestFactory, tally: Tally, deadline: float, cap: int) -> None:
    while tally.issued < cap and time.perf_counter() < deadline:
        tally.issued += 1
        await one_request(conn, factory, tally)


async def measure(
    server: ManagedServer, factory: RequestFactory, concurrency: int, opts: Options
) -> tuple[Tally, Window]:
    """Closed loop: `concurrency` clients, each sends its next request when the last one is answered."""
    conns = [Connection(server.port) for _ in range(concurrency)]
    tasks: list[asyncio.Future[None]] = []
    try:
        await asyncio.gather(*(c.open() for c in conns))  # keep-alive servers: connected before the clock starts
        tally = Tally()
        server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
        started = time.perf_counter()
        deadline = started + opts.seconds
        tasks += [asyncio.ensure_future(client_loop(c, factory, tally, deadline, opts.max_requests)) for c in conns]
        _, pending = await asyncio.wait(tasks, timeout=opts.seconds + opts.grace)
        for task in pending:  # each pending client has exactly one request in flight
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        abandoned_at = time.perf_counter()
        tally.timeouts = len(pending)
        if pending:
            tally.error(f"{len(pending)} request(s) unanswered {opts.seconds + opts.grace:.0f}s after the start")
        end = abandoned_at if pending else max(tally.last_end, started)
        server_cpu, client_cpu = server.cpu_seconds() - server_cpu, time.process_time() - client_cpu
        return tally, Window(end - started, sum(c.connects for c in conns), server_cpu, client_cpu)
    finally:  # also on Ctrl-C: no client outlives its phase
        for task in tasks:
            task.cancel()
        for conn in conns:
            conn.close()


@dataclass
class Window:
    """What one measured phase yields besides the tally."""

    elapsed: float
    connects: int
    server_cpu: float
    client_cpu: float


def summarize(
    factory: RequestFactory, concurrency: int, tally: Tally, window: Window, warm: WarmUp, grace: float
) -> CaseResult:
    latencies = sorted(tally.latencies)
    censored = tally.timeouts

    def ms(value: float) -> float:
        return value * 1000 if math.isfinite(value) else value

    return CaseResult(
        server=factory.label,
        action=factory.action,
        concurrency=concurrency,
        seconds=window.elapsed,
        requests=tally.issued,
        ok=tally.ok,
        errors=tally.errors,
        timeouts=tally.timeouts,
        rps=tally.ok / window.elapsed if window.elapsed > 0 else 0.0,
        p50_ms=ms(nearest_rank(latencies, censored, 50)),
        p99_ms=ms(nearest_rank(latencies, censored, 99)),
        max_ms=math.inf if censored else ms(latencies[-1] if latencies else math.nan),
        bytes_per_response=tally.response_bytes // tally.ok if tally.ok else warm.body_bytes,
        items_per_response=warm.items,
        serial_ms=warm.serial_ms,
        censored_above_ms=grace * 1000,
        connects=window.connects,
        server_cpu_pct=100 * window.server_cpu / window.elapsed if window.elapsed > 0 else math.nan,
        client_cpu_pct=100 * window.client_cpu / window.elapsed if window.elapsed > 0 else math.nan,
        error_samples=list(tally.samples),
    )


async def run_case(server: ManagedServer, factory: RequestFactory, concurrency: int, opts: Options) -> CaseResult:
    warm = await warm_up(server.port, factory, opts.warmup, opts.seconds + opts.grace)
    tally, window = await measure(server, factory, concurrency, opts)
    return summarize(factory, concurrency, tally, window, warm, opts.grace)


# ---- report -----------------------------------------------------------------------------------------


def fmt_ms(value: float, censored_above_ms: float = math.nan) -> str:
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return f">{censored_above_ms:.0f}" if math.isfinite(censored_above_ms) else "timeout"
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def throughput_ratio(nubes: CaseResult, moto: CaseResult) -> Ratio:
    if moto.ok > 0:
        return Ratio(nubes.rps / moto.rps)
    if moto.seconds > 0:  # moto answered nothing in its window: its rate was below 1/window
        return Ratio(nubes.rps * moto.seconds, ">")
    return Ratio(math.nan)


def p99_ratio(nubes: CaseResult, moto: CaseResult) -> Ratio:
    if not math.isfinite(nubes.p99_ms) or math.isnan(moto.p99_ms):
        return Ratio(math.nan)
    if math.isinf(moto.p99_ms):  # moto's p99 request went unanswered for longer than this
        return Ratio(nubes.p99_ms / moto.censored_above_ms, "<")
    return Ratio(nubes.p99_ms / moto.p99_ms)


def verdict(nubes: CaseResult, moto: CaseResult) -> tuple[bool, str]:
    if nubes.errors:
        return False, f"INVALID: nubes had {nubes.errors} error(s)"
    tr = throughput_ratio(nubes, moto)
    faster = tr.value >= TARGET_THROUGHPUT_RATIO
    lower = nubes.p99_ms < moto.p99_ms
    met = faster and lower
    reasons = [f"throughput {tr} {'>=' if faster else '<'} {TARGET_THROUGHPUT_RATIO:.0f}x",
               f"p99 {fmt_ms(nubes.p99_ms)} ms {'<' if lower else '>='} {fmt_ms(moto.p99_ms, moto.censored_above_ms)} ms"]
    if moto.timeouts:
        reasons.append(f"moto left {moto.timeouts} request(s) unanswered")
    return met, ("MET" if met else "MISSED") + " (" + ", ".join(reasons) + ")"


HEADER = (f"  {'server':<9} {'ok':>7} {'errors':>6} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'1-cli ms':>8} {'KiB/resp':>8} {'items':>5} {'conns':>6} {'cpu% srv/cli':>12}")


def row(r: CaseResult) -> str:
    c = r.censored_above_ms
    return (f"  {r.server:<9} {r.ok:>7} {r.errors:>6} {r.rps:>9.1f} {fmt_ms(r.p50_ms, c):>8} {fmt_ms(r.p99_ms, c):>8} "
            f"{fmt_ms(r.max_ms, c):>8} {fmt_ms(r.serial_ms):>8} {r.bytes_per_response / 1024:>8.1f} "
            f"{r.items_per_response:>5} {r.connects:>6} {f'{r.server_cpu_pct:.0f}/{r.client_cpu_pct:.0f}':>12}")


def report(results: list[CaseResult], opts: Options) -> list[dict[str, Any]]:
    """Print the grouped table; return the pairs with their ratios."""
    pairs: list[dict[str, Any]] = []
    for action in ACTIONS:
        for concurrency in opts.concurrency:
            group = [r for r in results if r.action == action and r.concurrency == concurrency]
            if not group:
                continue
            print(f"\n{action}, {concurrency} concurrent clients")
            print(HEADER)
            for r in group:
                print(row(r))
            moto = next((r for r in group if r.server == "moto"), None)
            for nubes in (r for r in group if r.server != "moto"):
                if moto is None:
                    continue
                met, text = verdict(nubes, moto)
                tr, pr = throughput_ratio(nubes, moto), p99_ratio(nubes, moto)
                print(f"  {nubes.server} / moto: throughput {tr}, p99 {pr}  -> {'MET' if met else 'MISSED'}")
                pairs.append({"action": action, "concurrency": concurrency, "nubes": nubes.server,
                              "throughput_ratio": str(tr), "p99_ratio": str(pr), "met": met, "verdict": text})
            sizes = [r.bytes_per_response for r in group if r.bytes_per_response]
            if moto is not None and sizes and max(sizes) > 2 * min(sizes):
                print("  note: the answers differ in size (see KiB/resp, items): the ratio compares the calls "
                      "as a client makes them, not equal work")
            for r in group:
                if r.errors:
                    print(f"  !!! {r.server}: {r.errors} ERROR(S) ({r.timeouts} timeouts = unanswered "
                          f"{r.censored_above_ms / 1000:.0f}s after the window); first: {r.error_samples}")
    return pairs


def report_baseline(results: list[CaseResult], baseline: str) -> list[dict[str, Any]]:
    """Each nubes row beside the same case of nubes@baseline: throughput and p99 ratios."""
    prefix = f"nubes@{baseline}"
    rows: list[dict[str, Any]] = []
    ours = [r for r in results if r.server.startswith("nubes ")]
    if not ours:
        return rows
    print(f"\nnubes (this tree) / {prefix}, same machine, same run:")
    for r in ours:
        base = next((b for b in results if b.server == r.server.replace("nubes", prefix, 1)
                     and b.action == r.action and b.concurrency == r.concurrency), None)
        if base is None or not base.rps:
            continue
        throughput, p99 = r.rps / base.rps, r.p99_ms / base.p99_ms if base.p99_ms else math.nan
        print(f"  {r.server:<9} {r.action:<22} c={r.concurrency:<4} {r.rps:9.1f} vs {base.rps:9.1f} req/s "
              f"= {throughput:.3f}x; p99 {fmt_ms(r.p99_ms)} vs {fmt_ms(base.p99_ms)} ms = {p99:.2f}x")
        rows.append({"server": r.server, "action": r.action, "concurrency": r.concurrency,
                     "throughput_ratio": throughput, "p99_ratio": p99})
    if rows:
        mean = sum(x["throughput_ratio"] for x in rows) / len(rows)
        print(f"  => mean throughput ratio {mean:.3f} over {len(rows)} cases")
    return rows


def print_verdicts(pairs: list[dict[str, Any]]) -> None:
    if not pairs:
        return
    print(f"\nTarget: nubes >= {TARGET_THROUGHPUT_RATIO:.0f}x moto's throughput, with a lower p99")
    for p in pairs:
        print(f"  {p['action']:<22} c={p['concurrency']:<4} {p['nubes']}: {p['verdict']}")
    met = sum(1 for p in pairs if p["met"])
    print(f"  => target met in {met} of {len(pairs)} pairs")


def version_of(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_info(uvloop_used: bool) -> dict[str, Any]:
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu_model(platform.processor() or "unknown"),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "nubes": version_of("nubes"),
        "moto": version_of("moto"),
        "botocore": version_of("botocore"),
        "uvicorn": version_of("uvicorn"),
        "client_loop": "uvloop" if uvloop_used else "asyncio",
        "loadavg_start": os.getloadavg(),
    }


def print_header(info: dict[str, Any], opts: Options, nubes_flags: Sequence[str]) -> None:
    print("nubes vs moto API benchmark (closed loop, keep-alive HTTP/1.1, load on 127.0.0.1 only)")
    print(f"  machine: nproc={info['nproc']}  cpu={info['cpu']}  {info['platform']}")
    print(f"  python {info['python']}; nubes {info['nubes']}, moto {info['moto']}, botocore {info['botocore']}, "
          f"uvicorn {info['uvicorn']}; client event loop: {info['client_loop']}")
    print(f"  load average at start: {loadavg_text(info['loadavg_start'])}")
    if info["loadavg_start"][0] > 0.5:
        print("  !!! the machine is not idle (1-minute load above 0.5): other work competes for the CPU;"
              " the figures will be noisy")
    print("  nubes: THROTTLING OFF (--throttle-rate 0), default log level, SQLite in a temp dir, one uvicorn process"
          + (f"; extra flags: {' '.join(nubes_flags)}" if nubes_flags else ""))
    print("  moto:  moto.server (Werkzeug, threaded), EC2 query API 2016-11-15, SigV4 ec2/us-east-1;"
          " it closes every connection, so each moto request includes a TCP connect")
    print(f"  per case: {opts.warmup:g}s serial warm-up (first answer checked), then {opts.seconds:g}s window, "
          f"cap {opts.max_requests} requests, {opts.grace:g}s grace; every request signed afresh (new nonce)")
    print("  servers run one at a time; 'conns' = TCP connections opened in the window;"
          " 'cpu% srv/cli' = CPU of the server process / of this load generator, % of one core;"
          " '1-cli ms' = median latency of the serial warm-up (one client at a time);"
          f" '>N' = unanswered after N ms ({opts.grace:g}s grace), counted as infinite")


# ---- main ----------------------------------------------------------------------------------------------


def loop_factory() -> tuple[Callable[[], asyncio.AbstractEventLoop], bool]:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop, False
    return uvloop.new_event_loop, True


def run_server_cases(
    runner: Callable[[Coroutine[Any, Any, CaseResult]], CaseResult],
    server: ManagedServer,
    factories: Callable[[str, str], list[RequestFactory]],
    opts: Options,
) -> list[CaseResult]:
    results: list[CaseResult] = []
    with running(server):
        for action in ACTIONS:
            for concurrency in opts.concurrency:
                for factory in factories(action, server.host_header):
                    print(f"  {factory.label:<9} {action:<22} c={concurrency:<4} ...", end="", flush=True)
                    result = runner(run_case(server, factory, concurrency, opts))
                    results.append(result)
                    flag = f"  !!! {result.errors} errors" if result.errors else ""
                    c = result.censored_above_ms
                    print(f" {result.rps:9.1f} req/s  p50 {fmt_ms(result.p50_ms, c)} ms  p99 {fmt_ms(result.p99_ms, c)} ms"
                          f"{flag}", flush=True)
                    if result.timeouts:  # the server is still busy with abandoned requests: start afresh
                        server.restart()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_options(argv)
    signal.signal(signal.SIGTERM, interrupt)  # SIGTERM, like Ctrl-C, runs the cleanup below
    make_loop, uvloop_used = loop_factory()
    info = machine_info(uvloop_used)
    nubes_flags = nubes_extra_flags() if opts.only != "moto" else []
    info["nubes_flags"] = nubes_flags
    print_header(info, opts, nubes_flags)
    access_key_id, secret = "LTAIbench" + secrets.token_hex(6), secrets.token_hex(15)

    def nubes_factories(action: str, host: str) -> list[RequestFactory]:
        return [NubesV1(action, host, access_key_id, secret), NubesV3(action, host, access_key_id, secret)]

    def moto_factories(action: str, host: str) -> list[RequestFactory]:
        return [MotoSigV4(action, host)]

    def baseline_factories(ref: str) -> Callable[[str, str], list[RequestFactory]]:
        def factories(action: str, host: str) -> list[RequestFactory]:
            made = nubes_factories(action, host)
            for factory in made:
                factory.label = factory.label.replace("nubes", f"nubes@{ref}", 1)
            return made
        return factories

    results: list[CaseResult] = []
    with tempfile.TemporaryDirectory(prefix="nubes-bench-") as tmp, asyncio.Runner(loop_factory=make_loop) as runner, \
            contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        plan: list[tuple[ServerSpec, Callable[[str, str], list[RequestFactory]], str]] = [
            (nubes_spec(access_key_id, secret, nubes_flags), nubes_factories, "nubes")]
        if opts.baseline and opts.only != "moto":
            source = stack.enter_context(baseline_checkout(opts.baseline, workdir))
            plan.append((nubes_spec(access_key_id, secret, nubes_flags, f"nubes@{opts.baseline}", source),
                         baseline_factories(opts.baseline), "nubes"))
        plan.append((moto_spec(), moto_factories, "moto"))
        for spec, factories, kind in plan:
            if opts.only and opts.only != kind:
                continue
            print(f"\n[{spec.name}]")
            results += run_server_cases(runner.run, ManagedServer(spec, workdir), factories, opts)

    info["loadavg_end"] = os.getloadavg()
    print(f"\nload average at end: {loadavg_text(info['loadavg_end'])}")
    pairs = report([r for r in results if "@" not in r.server], opts)
    print_verdicts(pairs)
    baseline_rows = report_baseline(results, opts.baseline) if opts.baseline else []
    failed = [r for r in results if r.errors]
    if failed:
        print(f"\n!!! {len(failed)} case(s) had errors: "
              + ", ".join(f"{r.server} {r.action} c={r.concurrency} ({r.errors})" for r in failed)
              + " - read those figures with care")
    if opts.json_path:
        payload = {"machine": info, "options": {**asdict(opts), "json_path": str(opts.json_path)},
                   "cases": [asdict(r) for r in results], "pairs": pairs,
                   "baseline": baseline_rows}
        save_json(opts.json_path, payload)
    return 1 if any(r.errors for r in results if r.server != "moto") else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped, temporary files removed", file=sys.stderr)
        sys.exit(130)
    except RuntimeError as exc:  # a server that does not start, or answers the warm-up wrongly
        print(f"\n!!! benchmark aborted: {exc}", file=sys.stderr)
        sys.exit(2)
