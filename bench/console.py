"""The web console's pages timed server-side with 1000 instances in the region.

An emulator server (`nubes server --driver fake`) gets one VPC, vSwitch and security group and
1000 instances (RunInstances Amount=100), hence 1000 system disks. A console
session then asks for each main page many times, one request at a time over one keep-alive
connection, and the page's own Server-Timing header gives the time the server spent on it
(the API calls it makes included). Beside each page, in the same run, the API call that does
most of its work is timed alone (raw v1-signed, same connection kind): the ratio is what the
console adds to the API.

Target (issue 14): every page's p99 under 200 ms. Nothing is asserted; figures are printed.

Run:  .venv/bin/python bench/console.py [--instances 1000] [--requests 200] [--json FILE]
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from common import (
    GUEST_RAM_MIB,
    GUEST_VCPUS,
    REGION,
    add_json_option,
    cpu_model,
    fmt_ms,
    loadavg_text,
    percentile,
    save_json,
)
from servers import Bench, NubesServer, RawClient

TARGET_P99 = 0.200
TIMING = re.compile(r"app;dur=([0-9.]+)")


def options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200, help="requests per page")
    add_json_option(parser)
    return parser.parse_args(argv)


class ConsoleSession:
    """A signed-in console session over one keep-alive connection."""

    def __init__(self, endpoint: str, key: tuple[str, str]) -> None:
        host, _, port = endpoint.partition(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        _, form_page, cookies = self.request("GET", "/console/signin")
        body = urlencode(
            {"csrf_token": self.token(form_page), "access_key_id": key[0], "access_key_secret": key[1]}
        )
        status, _, cookies = self.request("POST", "/console/signin", body, cookies["nubes_signin"])
        if status != 303:
            raise RuntimeError(f"console sign-in answered {status}")
        self.cookie = cookies["nubes_session"]

    @staticmethod
    def token(page: str) -> str:
        found = re.search(r'name="csrf_token" value="([^"]+)"', page)
        if found is None:
            raise RuntimeError("no CSRF token on the page")
        return found.group(1)

    def request(
        self, method: str, path: str, body: str | None = None, cookie: str = ""
    ) -> tuple[int, str, dict[str, str]]:
        """The status, the body and the cookies set (name: "name=value")."""
        headers = {"Cookie": cookie} if cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        text = response.read().decode()
        pairs = [line.split(";", 1)[0] for line in response.headers.get_all("set-cookie") or []]
        return response.status, text, {pair.split("=", 1)[0]: pair for pair in pairs}

    def timed(self, path: str, htmx: bool = False) -> tuple[float, float]:
        """(the server's own time from Server-Timing, the round trip) of one GET, in seconds."""
        headers = {"Cookie": self.cookie, **({"HX-Request": "true"} if htmx else {})}
        for attempt in range(2):  # once more on a keep-alive connection the server closed meanwhile
            try:
                t0 = time.perf_counter()
                self.conn.request("GET", path, headers=headers)
                response = self.conn.getresponse()
                response.read()
                wall = time.perf_counter() - t0
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()
                if attempt:
                    raise
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}")
        found = TIMING.search(response.getheader("server-timing") or "")
        if found is None:
            raise RuntimeError(f"GET {path}: no Server-Timing header")
        return float(found.group(1)) / 1000, wall


@dataclass
class Case:
    name: str
    path: str
    htmx: bool
    api: tuple[str, str, dict[str, str]] | None  # the call that does most of the page's work


def populate(srv: NubesServer, instances: int) -> dict[str, str]:
    """The region's resources; the IDs and values the pages are asked about."""
    [host] = srv.hosts()
    need_cpu, need_mem = instances * GUEST_VCPUS, instances * GUEST_RAM_MIB
    cpu = max(host["cpu_overcommit"], -(-need_cpu // host["vcpus"]))
    mem = max(host["memory_overcommit"], -(-need_mem * 10 // host["memory_mib"]) / 10)
    srv.set_overcommit(host["id"], cpu, mem)  # the emulator host must hold them all (no API for it)
    vpc, vswitch, group = srv.network("10.243.0.0/16", "10.243.0.0/16")
    raw = srv.raw
    assert raw is not None
    images = raw.json("DescribeImages", {"ImageOwnerAlias": "system", "PageSize": "1"})
    image = images["Images"]["Image"][0]["ImageId"]
    ids: list[str] = []
    t0 = time.perf_counter()
    while len(ids) < instances:
        amount = min(100, instances - len(ids))
        ids += srv.run_instances(image, vswitch, group, amount, name=f"bench-{len(ids) // 100:02d}")
    while True:  # measured once the host agent is idle again: every instance Running
        running = raw.json("DescribeInstances", {"Status": "Running", "PageSize": "1"})["TotalCount"]
        if running >= len(ids):
            break
        if time.perf_counter() - t0 > 600:
            raise RuntimeError(f"only {running} of {len(ids)} instances Running after 600 s")
        time.sleep(1)
    print(f"  {len(ids)} instances created and Running in {time.perf_counter() - t0:.1f} s", flush=True)
    middle = ids[len(ids) // 2]
    attribute = raw.json("DescribeInstanceAttribute", {"InstanceId": middle})
    ip = attribute["VpcAttributes"]["PrivateIpAddress"]["IpAddress"][0]
    return {"vpc": vpc, "vswitch": vswitch, "group": group, "instance": middle, "ip": ip}


def cases(made: dict[str, str]) -> list[Case]:
    page = {"RegionId": REGION, "PageSize": "20", "PageNumber": "1"}
    return [
        Case("overview", "/console/", False, ("ecs", "DescribeInstances", {**page, "PageSize": "1"})),
        Case("instances, page 1", "/console/instances", False, ("ecs", "DescribeInstances", page)),
        Case(
            "instances, page 25",
            "/console/instances?page=25",
            False,
            ("ecs", "DescribeInstances", {**page, "PageNumber": "25"}),
        ),
        Case(
            "instances, by name (htmx)",
            "/console/instances?q=bench-07",
            True,
            ("ecs", "DescribeInstances", {**page, "InstanceName": "bench-07"}),
        ),
        Case(
            "instances, by IP (htmx)",
            f"/console/instances?q={made['ip']}",
            True,
            ("ecs", "DescribeInstances", {**page, "PrivateIpAddresses": json.dumps([made["ip"]])}),
        ),
        Case(
            "instances, Running (htmx)",
            "/console/instances?status=Running",
            True,
            ("ecs", "DescribeInstances", {**page, "Status": "Running"}),
        ),
        Case(
            "instance detail",
            f"/console/instances/{made['instance']}",
            False,
            ("ecs", "DescribeInstanceAttribute", {"InstanceId": made["instance"]}),
        ),
        Case(
            "instance monitoring",
            f"/console/instances/{made['instance']}/monitoring",
            False,
            ("ecs", "DescribeInstanceAttribute", {"InstanceId": made["instance"]}),
        ),
        Case(
            "create wizard", "/console/instances/new", False, ("ecs", "DescribeImages", {"RegionId": REGION})
        ),
        Case("disks (1000)", "/console/disks", False, ("ecs", "DescribeDisks", page)),
        Case("snapshots", "/console/snapshots", False, ("ecs", "DescribeSnapshots", page)),
        Case("images", "/console/images", False, ("ecs", "DescribeImages", page)),
        Case("VPCs", "/console/vpcs", False, ("vpc", "DescribeVpcs", page)),
        Case(
            "security group rules",
            f"/console/security-groups/{made['group']}",
            False,
            ("ecs", "DescribeSecurityGroupAttribute", {"RegionId": REGION, "SecurityGroupId": made["group"]}),
        ),
        Case("key pairs", "/console/key-pairs", False, ("ecs", "DescribeKeyPairs", page)),
        Case("EIPs", "/console/eips", False, ("vpc", "DescribeEipAddresses", page)),
    ]


def measure(call: Callable[[], float], requests: int) -> list[float]:
    for _ in range(min(10, requests)):  # warm-up: connections, caches, the first template renders
        call()
    return [call() for _ in range(requests)]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 0.5), "p99": percentile(values, 0.99), "max": max(values)}


def main(argv: list[str]) -> int:
    opts = options(argv)
    bench = Bench("nubes-bench-console-", "bcon")
    info: dict[str, Any] = {"cpu": cpu_model(), "instances": opts.instances, "requests": opts.requests}
    results: list[dict[str, Any]] = []

    def body() -> None:
        print(f"console pages, server-side, {opts.instances} instances; {info['cpu']}; load {loadavg_text()}")
        srv = bench.server(
            "fake",
            None,
            flags=(
                "--no-build-images",
                "--throttle-rate",
                "0",
                "--max-instance-vcpus",
                str(opts.instances * 2),
            ),
        )
        made = populate(srv, opts.instances)
        session = ConsoleSession(srv.endpoint, srv.key)
        api = RawClient(srv.endpoint, srv.key)
        print(
            f"\n  {'page':30} {'server p50':>11} {'p99':>8} {'max':>8} | {'API p50':>8} {'p99':>8} | ratio p50"
        )
        for case in cases(made):
            server_side: list[float] = []

            def page_once(case: Case = case, server_side: list[float] = server_side) -> float:
                own, wall = session.timed(case.path, case.htmx)
                server_side.append(own)
                return wall

            walls = measure(page_once, opts.requests)
            server = summary(server_side[-opts.requests :])
            row: dict[str, Any] = {
                "page": case.name,
                "path": case.path,
                "server": server,
                "wall": summary(walls),
            }
            api_part = ""
            if case.api is not None:
                product, action, params = case.api

                def api_once(
                    product: str = product, action: str = action, params: dict[str, str] = params
                ) -> float:
                    status, _, seconds = api.call(action, params, product)
                    if status != 200:
                        raise RuntimeError(f"{action} answered {status}")
                    return seconds

                row["api"] = summary(measure(api_once, opts.requests))
                ratio = server["p50"] / row["api"]["p50"]
                row["ratio_p50"] = ratio
                api_part = f"{fmt_ms(row['api']['p50'], 8)} {fmt_ms(row['api']['p99'], 8)} | {ratio:8.2f}"
            verdict = "met" if server["p99"] < TARGET_P99 else "NOT met"
            row["target_met"] = server["p99"] < TARGET_P99
            results.append(row)
            print(
                f"  {case.name:30} {fmt_ms(server['p50'], 11)} {fmt_ms(server['p99'], 8)} "
                f"{fmt_ms(server['max'], 8)} | {api_part}   p99 < 200 ms: {verdict}",
                flush=True,
            )
        print(
            "\n  server = the page's Server-Timing (its API calls included); API = the main call alone,"
            " round trip; ratio = page p50 / API p50"
        )

    status = bench.run(body, info)
    bench.print_footer(info, "servers stopped, temporary files removed")
    if opts.json_path:
        save_json(opts.json_path, {"info": info, "pages": results})
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
