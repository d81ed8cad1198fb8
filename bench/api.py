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

The load generator (signed requests, the HTTP/1.1 client, the closed loop) is in api_load.py, what all
benchmarks share in common.py and servers.py.

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
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from api_load import CaseResult, MotoSigV4, NubesV1, NubesV3, RequestFactory, run_case
from common import LOCALHOST, NUBES_CLI, Ratio, add_json_option, cpu_model, interrupt, loadavg_text, save_json
from servers import ServerProcess

HOST = LOCALHOST  # the only address this script ever sends load to
ACTIONS = ("DescribeRegions", "DescribeInstanceTypes")
TARGET_THROUGHPUT_RATIO = 3.0
STOP_TIMEOUT = 15.0


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
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="serial warm-up per case, seconds (default 1)"
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=15.0,
        help="seconds in-flight requests may still finish after the window; later ones are timeouts (default 15)",
    )
    parser.add_argument(
        "--max-requests", type=int, default=200_000, help="request cap per case (default 200000)"
    )
    parser.add_argument("--concurrency", default="8,64", help="comma-separated client counts (default 8,64)")
    parser.add_argument("--only", choices=("nubes", "moto"), help="benchmark one server only")
    add_json_option(parser)
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also run nubes as of this git commit, side by side, and print the ratios",
    )
    args = parser.parse_args(argv)
    try:
        concurrency = tuple(int(part) for part in args.concurrency.split(",") if part.strip())
    except ValueError:
        parser.error("--concurrency takes comma-separated integers, e.g. 8,64")
    if not concurrency or min(concurrency) < 1 or max(concurrency) > 1024:
        parser.error("--concurrency values must be between 1 and 1024")
    if args.seconds <= 0 or args.seconds > 600 or args.warmup < 0 or args.grace < 0 or args.max_requests < 1:
        parser.error("--seconds must be in (0, 600], --warmup and --grace >= 0, --max-requests >= 1")
    return Options(
        args.seconds,
        args.warmup,
        args.grace,
        args.max_requests,
        concurrency,
        args.only,
        args.json_path,
        args.baseline,
    )


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
        self.process.start(
            lambda port: self.spec.command(port, data_dir),
            {**os.environ, **self.spec.env},
            self.workdir / f"{self.spec.name}-{self.starts}.log",
            self.spec.health_path,
        )

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
        help_text = subprocess.run(
            [*NUBES_SERVER, "--help"], capture_output=True, text=True, timeout=60, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return ["--driver", "fake"] if "--driver" in help_text and "fake" in help_text else []


def nubes_spec(
    access_key_id: str,
    secret: str,
    extra_flags: Sequence[str],
    name: str = "nubes",
    source: Path | None = None,
) -> ServerSpec:
    """nubes as installed, or (with `source`) the nubes of another checkout's src directory."""

    def command(port: int, data_dir: Path) -> list[str]:
        return [
            *NUBES_SERVER,
            "--host",
            HOST,
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--throttle-rate",
            "0",
            *extra_flags,
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
    subprocess.run(
        ["git", "-C", str(repo), "worktree", "add", "--detach", "--quiet", str(tree), ref],
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        yield tree / "src"
    finally:
        subprocess.run(
            ["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)],
            capture_output=True,
            timeout=120,
            check=False,
        )


def moto_spec() -> ServerSpec:
    def command(port: int, data_dir: Path) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]

    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    return ServerSpec("moto", command, env, None)


@contextlib.contextmanager
def running(server: ManagedServer) -> Iterator[ManagedServer]:
    try:
        server.start()
        yield server
    finally:
        server.stop()


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
    reasons = [
        f"throughput {tr} {'>=' if faster else '<'} {TARGET_THROUGHPUT_RATIO:.0f}x",
        f"p99 {fmt_ms(nubes.p99_ms)} ms {'<' if lower else '>='} {fmt_ms(moto.p99_ms, moto.censored_above_ms)} ms",
    ]
    if moto.timeouts:
        reasons.append(f"moto left {moto.timeouts} request(s) unanswered")
    return met, ("MET" if met else "MISSED") + " (" + ", ".join(reasons) + ")"


HEADER = (
    f"  {'server':<9} {'ok':>7} {'errors':>6} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
    f"{'1-cli ms':>8} {'KiB/resp':>8} {'items':>5} {'conns':>6} {'cpu% srv/cli':>12}"
)


def row(r: CaseResult) -> str:
    c = r.censored_above_ms
    return (
        f"  {r.server:<9} {r.ok:>7} {r.errors:>6} {r.rps:>9.1f} {fmt_ms(r.p50_ms, c):>8} {fmt_ms(r.p99_ms, c):>8} "
        f"{fmt_ms(r.max_ms, c):>8} {fmt_ms(r.serial_ms):>8} {r.bytes_per_response / 1024:>8.1f} "
        f"{r.items_per_response:>5} {r.connects:>6} {f'{r.server_cpu_pct:.0f}/{r.client_cpu_pct:.0f}':>12}"
    )


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
                pairs.append(
                    {
                        "action": action,
                        "concurrency": concurrency,
                        "nubes": nubes.server,
                        "throughput_ratio": str(tr),
                        "p99_ratio": str(pr),
                        "met": met,
                        "verdict": text,
                    }
                )
            sizes = [r.bytes_per_response for r in group if r.bytes_per_response]
            if moto is not None and sizes and max(sizes) > 2 * min(sizes):
                print(
                    "  note: the answers differ in size (see KiB/resp, items): the ratio compares the calls "
                    "as a client makes them, not equal work"
                )
            for r in group:
                if r.errors:
                    print(
                        f"  !!! {r.server}: {r.errors} ERROR(S) ({r.timeouts} timeouts = unanswered "
                        f"{r.censored_above_ms / 1000:.0f}s after the window); first: {r.error_samples}"
                    )
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
        base = next(
            (
                b
                for b in results
                if b.server == r.server.replace("nubes", prefix, 1)
                and b.action == r.action
                and b.concurrency == r.concurrency
            ),
            None,
        )
        if base is None or not base.rps:
            continue
        throughput, p99 = r.rps / base.rps, r.p99_ms / base.p99_ms if base.p99_ms else math.nan
        print(
            f"  {r.server:<9} {r.action:<22} c={r.concurrency:<4} {r.rps:9.1f} vs {base.rps:9.1f} req/s "
            f"= {throughput:.3f}x; p99 {fmt_ms(r.p99_ms)} vs {fmt_ms(base.p99_ms)} ms = {p99:.2f}x"
        )
        rows.append(
            {
                "server": r.server,
                "action": r.action,
                "concurrency": r.concurrency,
                "throughput_ratio": throughput,
                "p99_ratio": p99,
            }
        )
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
    print(
        f"  python {info['python']}; nubes {info['nubes']}, moto {info['moto']}, botocore {info['botocore']}, "
        f"uvicorn {info['uvicorn']}; client event loop: {info['client_loop']}"
    )
    print(f"  load average at start: {loadavg_text(info['loadavg_start'])}")
    if info["loadavg_start"][0] > 0.5:
        print(
            "  !!! the machine is not idle (1-minute load above 0.5): other work competes for the CPU;"
            " the figures will be noisy"
        )
    print(
        "  nubes: THROTTLING OFF (--throttle-rate 0), default log level, SQLite in a temp dir, one uvicorn process"
        + (f"; extra flags: {' '.join(nubes_flags)}" if nubes_flags else "")
    )
    print(
        "  moto:  moto.server (Werkzeug, threaded), EC2 query API 2016-11-15, SigV4 ec2/us-east-1;"
        " it closes every connection, so each moto request includes a TCP connect"
    )
    print(
        f"  per case: {opts.warmup:g}s serial warm-up (first answer checked), then {opts.seconds:g}s window, "
        f"cap {opts.max_requests} requests, {opts.grace:g}s grace; every request signed afresh (new nonce)"
    )
    print(
        "  servers run one at a time; 'conns' = TCP connections opened in the window;"
        " 'cpu% srv/cli' = CPU of the server process / of this load generator, % of one core;"
        " '1-cli ms' = median latency of the serial warm-up (one client at a time);"
        f" '>N' = unanswered after N ms ({opts.grace:g}s grace), counted as infinite"
    )


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
                    print(
                        f" {result.rps:9.1f} req/s  p50 {fmt_ms(result.p50_ms, c)} ms  p99 {fmt_ms(result.p99_ms, c)} ms"
                        f"{flag}",
                        flush=True,
                    )
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
    with (
        tempfile.TemporaryDirectory(prefix="nubes-bench-") as tmp,
        asyncio.Runner(loop_factory=make_loop) as runner,
        contextlib.ExitStack() as stack,
    ):
        workdir = Path(tmp)
        plan: list[tuple[ServerSpec, Callable[[str, str], list[RequestFactory]], str]] = [
            (nubes_spec(access_key_id, secret, nubes_flags), nubes_factories, "nubes")
        ]
        if opts.baseline and opts.only != "moto":
            source = stack.enter_context(baseline_checkout(opts.baseline, workdir))
            plan.append(
                (
                    nubes_spec(access_key_id, secret, nubes_flags, f"nubes@{opts.baseline}", source),
                    baseline_factories(opts.baseline),
                    "nubes",
                )
            )
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
        print(
            f"\n!!! {len(failed)} case(s) had errors: "
            + ", ".join(f"{r.server} {r.action} c={r.concurrency} ({r.errors})" for r in failed)
            + " - read those figures with care"
        )
    if opts.json_path:
        payload = {
            "machine": info,
            "options": {**asdict(opts), "json_path": str(opts.json_path)},
            "cases": [asdict(r) for r in results],
            "pairs": pairs,
            "baseline": baseline_rows,
        }
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
