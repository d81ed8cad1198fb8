"""api.py's load generator: signed request factories (nubes v1 and v3, moto SigV4), a minimal HTTP/1.1
client over keep-alive connections, and the closed loop that measures one case (a serial warm-up, then
N clients each sending its next request when the last one is answered) into a CaseResult.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode

from common import ECS_VERSION, LOCALHOST, nearest_rank
from servers import v1_path

from nubes.api.signing import sign_v3

if TYPE_CHECKING:
    from collections.abc import Sequence

    from api import ManagedServer, Options

HOST = LOCALHOST
EC2_VERSION = "2016-11-15"
WARMUP_MAX_REQUESTS = 200
MAX_ERROR_SAMPLES = 5


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
    lines = [
        f"POST {path} HTTP/1.1",
        *(f"{name}: {value}" for name, value in headers),
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def count_items(body: bytes, envelope: bytes, item: bytes) -> int:
    if envelope not in body:
        raise ValueError(f"answer lacks {envelope!r}: {body[:200]!r}")
    return body.count(item)


NUBES_ITEMS = {
    "DescribeRegions": (b'"Regions"', b'"RegionId"'),
    "DescribeInstanceTypes": (b'"InstanceTypes"', b'"InstanceTypeId"'),
}
MOTO_ITEMS = {
    "DescribeRegions": (b"<DescribeRegionsResponse", b"<regionName>"),
    "DescribeInstanceTypes": (b"<DescribeInstanceTypesResponse", b"<instanceType>"),
}


@dataclass
class NubesRequest:
    """An ECS call to nubes signed with the root AccessKey; subclasses sign it one way or another."""

    action: str
    host: str
    access_key_id: str
    secret: str

    def check_body(self, body: bytes) -> int:
        return count_items(body, *NUBES_ITEMS[self.action])


@dataclass
class NubesV1(NubesRequest):
    """Like aliyun-python-sdk-core: POST /?<signed parameters>, empty body, HMAC-SHA1."""

    label: str = "nubes v1"

    def build(self) -> bytes:
        params = {"Action": self.action, "Version": ECS_VERSION, "Format": "JSON"}
        return http_request(v1_path(params, (self.access_key_id, self.secret)), [("Host", self.host)])


@dataclass
class NubesV3(NubesRequest):
    """Like the alibabacloud Tea SDKs: ACS3-HMAC-SHA256 in the Authorization header."""

    label: str = "nubes v3"

    def build(self) -> bytes:
        headers = sign_v3("POST", self.host, self.action, ECS_VERSION, {}, self.access_key_id, self.secret)
        return http_request("/", list(headers.items()))


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
            "POST",
            f"http://{self.host}/",
            data=self._body,
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


async def warm_up(port: int, factory: RequestFactory, seconds: float, timeout: float) -> WarmUp:  # noqa: ASYNC109 (per request)
    """Serial requests for `seconds` (at least two); the first (cold) answer's body is checked."""
    conn = Connection(port)
    tally = Tally()
    deadline = time.perf_counter() + seconds
    items, body_bytes, cold = -1, 0, math.nan
    try:
        for _ in range(WARMUP_MAX_REQUESTS):
            body = await asyncio.wait_for(one_request(conn, factory, tally), timeout)
            if body is None:
                raise RuntimeError(
                    f"{factory.label} {factory.action} failed during warm-up: {tally.samples[-1]}"
                )
            if items < 0:
                items, body_bytes = factory.check_body(body), len(body)
                cold = tally.latencies.pop()  # the first request pays for lazy loading: not a serial figure
            elif time.perf_counter() >= deadline:
                break
    except TimeoutError:
        raise RuntimeError(
            f"{factory.label} {factory.action}: no answer within {timeout:.0f}s in warm-up"
        ) from None
    finally:
        conn.close()
    latencies = sorted(tally.latencies) or [cold]
    return WarmUp(items, body_bytes, 1000 * nearest_rank(latencies, 0, 50))


async def client_loop(
    conn: Connection, factory: RequestFactory, tally: Tally, deadline: float, cap: int
) -> None:
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
        await asyncio.gather(
            *(c.open() for c in conns)
        )  # keep-alive servers: connected before the clock starts
        tally = Tally()
        server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
        started = time.perf_counter()
        deadline = started + opts.seconds
        tasks += [
            asyncio.ensure_future(client_loop(c, factory, tally, deadline, opts.max_requests)) for c in conns
        ]
        _, pending = await asyncio.wait(tasks, timeout=opts.seconds + opts.grace)
        for task in pending:  # each pending client has exactly one request in flight
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        abandoned_at = time.perf_counter()
        tally.timeouts = len(pending)
        if pending:
            tally.error(
                f"{len(pending)} request(s) unanswered {opts.seconds + opts.grace:.0f}s after the start"
            )
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


async def run_case(
    server: ManagedServer, factory: RequestFactory, concurrency: int, opts: Options
) -> CaseResult:
    warm = await warm_up(server.port, factory, opts.warmup, opts.seconds + opts.grace)
    tally, window = await measure(server, factory, concurrency, opts)
    return summarize(factory, concurrency, tally, window, warm, opts.grace)
