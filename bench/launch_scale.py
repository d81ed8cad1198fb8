"""launch.py's (c): with `nubes server --driver fake`, 10,000 instances created with RunInstances
Amount=100, then DescribeInstances p50/p99 at PageSize 100 over random pages, without and with
filters, and NextToken/MaxResults walks; as deployed (the host agent busy) and with the API alone.
"""

from __future__ import annotations

import json
import math
import random
import re
import statistics
import time
from typing import TYPE_CHECKING, Any

from common import (
    GUEST_RAM_MIB,
    GUEST_VCPUS,
    INSTANCE_TYPE,
    REGION,
    api_error_code,
    cpu_seconds,
    fmt_ms,
    percentile,
)
from launch_trials import IMAGE_FAMILY, IMAGE_NAME, LaunchBench
from servers import NubesServer, RawClient

if TYPE_CHECKING:
    from launch import Options

FAKE_VPC = ("10.242.0.0/16", "10.242.0.0/16")  # a /16 vSwitch: room for 10,000 addresses


# ---- (c) the fake part -----------------------------------------------------------------------------


def describe_cases(vswitch: str) -> list[tuple[str, dict[str, str], bool]]:
    tag = {"Tag.1.Key": "bench-group", "Tag.1.Value": "g3"}
    return [
        ("no filter", {}, True),
        ("InstanceName=bench-00* (wildcard)", {"InstanceName": "bench-00*"}, True),
        ("Status=Running", {"Status": "Running"}, True),
        ("VSwitchId", {"VSwitchId": vswitch}, True),
        ("Tag bench-group=g3", tag, True),
        ("InstanceName + VSwitchId + Tag", {"InstanceName": "bench-00*", "VSwitchId": vswitch, **tag}, True),
        ("NextToken walk, no filter", {}, False),
        ("NextToken walk, Tag bench-group=g3", tag, False),
    ]


def describe_phase(
    srv: NubesServer, vswitch: str, requests: int, rng: random.Random, title: str
) -> list[dict[str, Any]]:
    raw = srv.raw
    assert raw is not None
    print(
        f"\n  DescribeInstances -- {title}: PageSize=100 at random PageNumber (or MaxResults=100 following "
        f"NextToken), {requests} requests per case; raw keep-alive HTTP, v1 signature, latency = request "
        "written -> last byte read",
        flush=True,
    )
    print(
        "    case                                  style       matches  reqs   p50 ms   p99 ms   max ms"
        "  KiB/resp  srv cpu%  errors",
        flush=True,
    )
    rows = []
    for name, params, page_style in describe_cases(vswitch):
        matches = int(raw.json("DescribeInstances", {**params, "PageSize": "1"})["TotalCount"])
        pages = max(1, math.ceil(matches / 100))
        numbers = [rng.randint(1, pages) for _ in range(requests)] if page_style else []
        row = measure_describe(raw, srv.pid, name, params, matches, numbers, page_style, requests)
        rows.append(row)
        print_describe_row(row)
    return rows


def fake_part(bench: LaunchBench, opts: Options, results: dict[str, Any]) -> None:
    from alibabacloud_ecs20140526 import models as em

    srv = bench.server("fake", None)
    _, vswitch, group = srv.network(*FAKE_VPC)
    image = srv.image_id(IMAGE_FAMILY, IMAGE_NAME)
    fake: dict[str, Any] = {"server_flags": srv.flags, "vswitch_cidr": FAKE_VPC[1]}
    results["fake"] = fake
    print(
        f"\n(c) fake driver: nubes server {' '.join(srv.flags)}; VPC {FAKE_VPC[0]}, vSwitch {FAKE_VPC[1]}",
        flush=True,
    )
    [host] = srv.hosts()
    fake["host_before"] = host
    slots = host["vcpus"] * host["cpu_overcommit"]
    print(
        f"  emulator host: {host['vcpus']} vCPUs x {host['cpu_overcommit']:g} = {slots:g} vCPU slots, "
        f"{host['memory_mib']} MiB x {host['memory_overcommit']:g}; {opts.fake_instances} x {INSTANCE_TYPE} "
        f"need {opts.fake_instances * GUEST_VCPUS} vCPUs, {opts.fake_instances * GUEST_RAM_MIB} MiB",
        flush=True,
    )

    calls: list[float] = []
    created = 0
    batch = 0
    no_stock: dict[str, Any] | None = None
    internal_errors: list[dict[str, Any]] = []
    cpu0, t_create0 = cpu_seconds(srv.pid), time.perf_counter()
    attempts = 0
    while created < opts.fake_instances and attempts < opts.fake_instances // 100 + 20:  # bounded
        attempts += 1
        amount = min(100, opts.fake_instances - created)
        log_offset = srv.log_path.stat().st_size
        t0 = time.perf_counter()
        try:
            ids = srv.run_instances(
                image,
                vswitch,
                group,
                amount,
                name=f"bench-{batch:03d}-[1,3]",
                tags={"bench-group": f"g{batch % 10}"},
            )
        except Exception as exc:
            code = api_error_code(exc)
            if code == "InternalError" and len(internal_errors) < 10:
                # nubes answers 500 when a random MAC collides with an existing one (the whole batch
                # is rolled back); the server log says which constraint failed. Try the batch again.
                with open(srv.log_path, "rb") as log_file:
                    log_file.seek(log_offset)
                    found = re.findall(rb"^\S*(?:Error|Exception)\b.*$", log_file.read(), re.MULTILINE)
                cause = found[-1].decode(errors="replace")[:160] if found else "?"
                internal_errors.append({"after_instances": created, "cause": cause})
                print(
                    f"  RunInstances #{batch + 1} answered InternalError (HTTP 500) after {created} instances; "
                    f"server log: {cause}; the batch is sent again",
                    flush=True,
                )
                continue
            if code != "OperationDenied.NoStock" or no_stock is not None:
                raise
            no_stock = {
                "after_instances": created,
                "call_seconds": time.perf_counter() - t0,
                "message": str(getattr(exc, "message", exc))[:300],
            }
            print(
                f"  RunInstances #{batch + 1} answered OperationDenied.NoStock after {created} instances: "
                f"{no_stock['message']}",
                flush=True,
            )
            need_cpu = opts.fake_instances * GUEST_VCPUS
            need_mem = opts.fake_instances * GUEST_RAM_MIB
            cpu = max(host["cpu_overcommit"], math.ceil(need_cpu / host["vcpus"]))
            mem = max(host["memory_overcommit"], math.ceil(need_mem / host["memory_mib"] * 10) / 10)
            srv.set_overcommit(host["id"], cpu, mem)
            no_stock.update(cpu_overcommit=cpu, memory_overcommit=mem)
            print(
                f"  -> raised the emulator host's overcommit in the store to cpu {cpu:g}, memory {mem:g} "
                "(no API/CLI for it) and went on",
                flush=True,
            )
            continue
        calls.append(time.perf_counter() - t0)
        created += len(ids)
        batch += 1
        if batch % 20 == 0:
            print(f"  ... {created} instances, last call {calls[-1] * 1000:.0f} ms", flush=True)
    create_seconds = sum(calls)
    create_cpu = cpu_seconds(srv.pid) - cpu0
    wall = time.perf_counter() - t_create0
    fake["no_stock"] = no_stock
    fake["internal_errors"] = internal_errors
    fake["create"] = {
        "instances": created,
        "calls": len(calls),
        "call_seconds": calls,
        "seconds_in_calls": create_seconds,
        "wall_seconds": wall,
        "server_cpu_seconds": create_cpu,
    }
    print(
        f"  created {created} instances in {len(calls)} calls: {create_seconds:.1f} s in RunInstances "
        f"= {created / create_seconds:.0f} instances/s; per call p50 {fmt_ms(percentile(calls, 0.5), 1).strip()} ms, "
        f"p99 {fmt_ms(percentile(calls, 0.99), 1).strip()} ms, first {fmt_ms(calls[0], 1).strip()} ms, "
        f"last {fmt_ms(calls[-1], 1).strip()} ms",
        flush=True,
    )

    raw = srv.raw
    assert raw is not None

    def statuses() -> dict[str, int]:
        assert raw is not None
        return {
            st: int(raw.json("DescribeInstances", {"Status": st, "PageSize": "1"})["TotalCount"])
            for st in ("Pending", "Starting", "Running")
        }

    # The fake agent moves instances Pending -> Starting -> Running; how fast, with this many?
    first = statuses()
    c0, t0 = cpu_seconds(srv.pid), time.perf_counter()
    time.sleep(opts.settle)
    later = statuses()
    span = time.perf_counter() - t0
    agent_cpu = (cpu_seconds(srv.pid) - c0) / span
    fake["agent"] = {
        "statuses_at_end_of_create": first,
        "statuses_after_settle": later,
        "settle_seconds": span,
        "running_per_second": (later["Running"] - first["Running"]) / span,
        "server_cpu_percent_without_api_traffic": agent_cpu * 100,
    }
    print(
        f"  statuses when the last RunInstances returned: {first}; {span:.0f} s later, with no API traffic: "
        f"{later} -> {fake['agent']['running_per_second']:.1f} instances/s reach Running; server CPU "
        f"{agent_cpu * 100:.0f}% of one core",
        flush=True,
    )

    rng = random.Random(opts.seed)
    fake["describe"] = describe_phase(
        srv,
        vswitch,
        opts.deployed_requests,
        rng,
        "as deployed (the server's host agent busy with the instances)",
    )
    fake["agent"]["statuses_after_describe"] = statuses()
    print(f"  statuses after these requests: {fake['agent']['statuses_after_describe']}", flush=True)

    # The same store, served by a server whose host agent has no instance to look after: the server
    # restarted under another --host-id (the instances stay placed on the first host, which nothing
    # now walks). What is left is the API and the store.
    srv.stop(bench.notes)
    srv.start(extra_flags=["--host-id", "bench-idle-host"])
    raw = srv.raw
    assert raw is not None
    time.sleep(1.0)
    c0, t0 = cpu_seconds(srv.pid), time.perf_counter()
    time.sleep(10.0)  # the network agent's full sync runs every 10 s: one is in this window
    idle = (cpu_seconds(srv.pid) - c0) / (time.perf_counter() - t0)
    fake["api_alone_server_cpu_idle_percent"] = idle * 100
    fake["describe_api_alone"] = describe_phase(
        srv,
        vswitch,
        opts.requests,
        rng,
        f"API alone (server restarted with --host-id bench-idle-host: its agent has no instances; idle CPU "
        f"{idle * 100:.0f}%)",
    )

    # what a user of the official SDK sees (client-side parsing included), API alone
    sdk_lat = []
    for _ in range(20):
        page = rng.randint(1, max(1, math.ceil(created / 100)))
        t0 = time.perf_counter()
        body = srv.ecs.describe_instances(
            em.DescribeInstancesRequest(region_id=REGION, page_size=100, page_number=page)
        ).body
        sdk_lat.append(time.perf_counter() - t0)
        if len(body.instances.instance) != min(100, created - (page - 1) * 100):
            bench.notes.append(f"SDK DescribeInstances page {page}: {len(body.instances.instance)} items")
    fake["sdk_no_filter"] = {
        "n": len(sdk_lat),
        "p50": percentile(sdk_lat, 0.5),
        "p99": percentile(sdk_lat, 0.99),
    }
    print(
        f"  through the official SDK (alibabacloud_ecs20140526, parsing included), API alone, no filter, 20 requests:"
        f" p50 {fmt_ms(percentile(sdk_lat, 0.5), 1).strip()} ms, max {fmt_ms(max(sdk_lat), 1).strip()} ms",
        flush=True,
    )

    # RunInstances Amount=100 once more, with no agent competing (it does not walk these either)
    more = []
    for k in range(3):
        t0 = time.perf_counter()
        try:
            srv.run_instances(image, vswitch, group, 100, name=f"extra-{k}-[1,3]")
        except Exception as exc:  # noqa: BLE001
            bench.notes.append(f"extra RunInstances: {api_error_code(exc)}")
            continue
        more.append(time.perf_counter() - t0)
    fake["create_api_alone"] = more
    if more:
        print(
            f"  RunInstances Amount=100 at {created}+ instances, API alone: "
            + ", ".join(f"{x * 1000:.0f} ms" for x in more),
            flush=True,
        )


def measure_describe(
    raw: RawClient,
    server_pid: int,
    name: str,
    params: dict[str, str],
    matches: int,
    numbers: list[int],
    page_style: bool,
    requests: int,
) -> dict[str, Any]:
    """Each answer is checked against its own TotalCount (statuses may move during the run)."""
    lat: list[float] = []
    sizes: list[int] = []
    errors: list[str] = []
    totals: set[int] = set()
    first_last: dict[str, list[float]] = {"first": [], "last": []}
    for page in (numbers[:3] if page_style else []) + [1]:  # warm-up, not counted
        raw.call("DescribeInstances", {**params, "PageSize": "100", "PageNumber": str(page)})

    def timed(p: dict[str, str]) -> dict[str, Any] | None:
        """One measured request: its answer, None (an error, counted) when it is not HTTP 200."""
        status, body, seconds = raw.call("DescribeInstances", p)
        lat.append(seconds)
        sizes.append(len(body))
        if status != 200:
            errors.append(f"HTTP {status}: {body[:200]!r}")
            return None
        data: dict[str, Any] = json.loads(body)
        totals.add(int(data["TotalCount"]))
        return data

    c0, t0 = cpu_seconds(server_pid), time.perf_counter()
    if page_style:
        for page in numbers:
            data = timed({**params, "PageSize": "100", "PageNumber": str(page)})
            if data is None:
                continue
            got, count = len(data["Instances"]["Instance"]), int(data["TotalCount"])
            if got != max(0, min(100, count - (page - 1) * 100)):
                errors.append(f"page {page}: {got} items with TotalCount {count}")
    else:
        token = ""
        walks = 0
        seen = 0
        for _ in range(requests):
            p = {**params, "MaxResults": "100"}
            if token:
                p["NextToken"] = token
            data = timed(p)
            if data is None:
                break
            if not token:
                first_last["first"].append(lat[-1])
            elif not data["NextToken"]:
                first_last["last"].append(lat[-1])
            seen += len(data["Instances"]["Instance"])
            token = data["NextToken"]
            if not token:
                walks += 1
                if seen != int(data["TotalCount"]):
                    errors.append(f"walk {walks} saw {seen} instances, TotalCount {data['TotalCount']}")
                seen = 0
    wall = time.perf_counter() - t0
    cpu = cpu_seconds(server_pid) - c0
    row = {
        "case": name,
        "style": "PageNumber" if page_style else "NextToken",
        "matches": matches,
        "totals_seen": sorted(totals)[:5],
        "requests": len(lat),
        "p50": percentile(lat, 0.5),
        "p99": percentile(lat, 0.99),
        "max": max(lat),
        "kib_per_response": statistics.mean(sizes) / 1024,
        "errors": errors[:5],
        "error_count": len(errors),
        "server_cpu_percent": cpu / wall * 100,
        "latencies": lat,
    }
    if not page_style:
        row["first_page_p50"] = percentile(first_last["first"], 0.5)
        row["last_page_p50"] = percentile(first_last["last"], 0.5)
    return row


def print_describe_row(row: dict[str, Any]) -> None:
    extra = ""
    if row["style"] == "NextToken":
        extra = (
            f"  (first page p50 {fmt_ms(row['first_page_p50'], 1).strip()} ms, last page p50 "
            f"{fmt_ms(row['last_page_p50'], 1).strip()} ms)"
        )
    moved = " (moving)" if len(row["totals_seen"]) > 1 else ""
    err = f"{row['error_count']}  !!! {row['errors'][0]}" if row["errors"] else ""
    print(
        f"    {row['case']:<37} {row['style']:<10} {row['matches']:>8} {row['requests']:>5} {fmt_ms(row['p50'], 8)} "
        f"{fmt_ms(row['p99'], 8)} {fmt_ms(row['max'], 8)} {row['kib_per_response']:9.1f} "
        f"{row['server_cpu_percent']:9.0f}  {err}{moved}{extra}",
        flush=True,
    )


def print_fake_summary(fake: dict[str, Any]) -> None:
    create = fake.get("create")
    if not create:
        return
    print(
        f"\n(c) Fake driver: {create['instances']} instances in {create['calls']} RunInstances calls (Amount<=100): "
        f"{create['instances'] / create['seconds_in_calls']:.0f} instances/s in the calls "
        f"({create['seconds_in_calls']:.1f} s; server CPU {create['server_cpu_seconds']:.1f} s)"
    )
    if fake.get("no_stock"):
        ns = fake["no_stock"]
        print(
            f"    OperationDenied.NoStock after {ns['after_instances']} instances: the emulator host offers "
            f"{fake['host_before']['vcpus']} vCPUs x {fake['host_before']['cpu_overcommit']:g} = "
            f"{fake['host_before']['vcpus'] * fake['host_before']['cpu_overcommit']:g} vCPU slots; the run raised its "
            f"overcommit in the store to cpu {ns['cpu_overcommit']:g} / memory {ns['memory_overcommit']:g}"
        )
    for err in fake.get("internal_errors", []):
        print(
            f"    !!! RunInstances failed with InternalError (HTTP 500) after {err['after_instances']} instances: "
            f"{err['cause']} (a random MAC collided; the batch was sent again)"
        )
    agent = fake.get("agent")
    if agent:
        print(
            f"    the fake host agent: {agent['statuses_at_end_of_create']} when the last RunInstances returned, "
            f"{agent['statuses_after_settle']} {agent['settle_seconds']:.0f} s later "
            f"({agent['running_per_second']:.1f} instances/s reach Running, server CPU "
            f"{agent['server_cpu_percent_without_api_traffic']:.0f}% of one core without API traffic), "
            f"{agent.get('statuses_after_describe')} after the 'as deployed' requests"
        )
    both = {row["case"] + " [" + row["style"] + "]": [row] for row in fake.get("describe", [])}
    for row in fake.get("describe_api_alone", []):
        both.setdefault(row["case"] + " [" + row["style"] + "]", [None]).append(row)
    dn = max((r["requests"] for r in fake.get("describe", [])), default=0)
    an = max((r["requests"] for r in fake.get("describe_api_alone", [])), default=0)
    print(
        f"    DescribeInstances, PageSize/MaxResults 100, ms  as deployed (n={dn}): p50  p99 | API alone (n={an}): "
        "p50  p99   matches"
    )
    for name, rows in both.items():
        a = rows[0]
        b = rows[1] if len(rows) > 1 else None
        bad = any(r is not None and r["error_count"] for r in rows)
        some = a if a is not None else b
        assert some is not None
        print(
            f"    {name:<50} {fmt_ms(a['p50'] if a else None, 8)} {fmt_ms(a['p99'] if a else None, 8)} | "
            f"{fmt_ms(b['p50'] if b else None, 8)} {fmt_ms(b['p99'] if b else None, 8)}   "
            f"{some['matches']:>7}{'  !!! errors' if bad else ''}"
        )
    if fake.get("create_api_alone"):
        print(
            f"    RunInstances Amount=100 at {create['instances']}+ instances with no agent competing: p50 "
            f"{fmt_ms(percentile(fake['create_api_alone'], 0.5), 1).strip()} ms (while creating: p50 "
            f"{fmt_ms(percentile(create['call_seconds'], 0.5), 1).strip()} ms, last "
            f"{fmt_ms(create['call_seconds'][-1], 1).strip()} ms)"
        )
    if "api_alone_server_cpu_idle_percent" in fake:
        print(
            f"    server CPU without API traffic: {fake['agent']['server_cpu_percent_without_api_traffic']:.0f}% as "
            f"deployed, {fake['api_alone_server_cpu_idle_percent']:.0f}% with no instances on its host"
        )
    sdk = fake.get("sdk_no_filter")
    if sdk:
        print(
            f"    official SDK, no filter, API alone (client parsing included): p50 {fmt_ms(sdk['p50'], 1).strip()} ms "
            f"over {sdk['n']}"
        )
