"""A captured signed request replayed after the server restarted is still SignatureNonceUsed:
the nonces live in the store, not in the API process."""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from nubes.api.signing import sign_v1

from ..conftest import (
    ROOT_KEY_ID,
    ROOT_SECRET,
    LiveServer,
    _postgres_database,
    backends,
    restart_server,
    start_server,
    stop_server,
)


@pytest.fixture(params=backends())
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    database_url = None
    if request.param == "postgres":
        database_url = _postgres_database()
        if database_url is None:
            if os.environ.get("CI"):
                pytest.fail("NUBES_TEST_POSTGRES_URL is not set: CI must test the PostgreSQL store")
            pytest.skip("NUBES_TEST_POSTGRES_URL not set")
    live = start_server(tmp_path, database_url, request.param, ["--throttle-rate", "0"])
    yield live
    stop_server(live)


def send(server: LiveServer, query: str) -> tuple[int, dict[str, object]]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", "/?" + query)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def count_groups(server: LiveServer) -> int:
    params = {
        "Action": "DescribeSecurityGroups",
        "Version": "2014-05-26",
        "RegionId": "cn-hangzhou",
        "Format": "JSON",
    }
    status, body = send(server, urlencode(sign_v1("GET", params, ROOT_KEY_ID, ROOT_SECRET), quote_via=quote))
    assert status == 200, body
    return int(str(body["TotalCount"]))


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_a_request_replayed_after_a_restart_is_refused(server: LiveServer, kill: bool) -> None:
    vpc_params = {
        "Action": "CreateVpc",
        "Version": "2016-04-28",
        "RegionId": "cn-hangzhou",
        "CidrBlock": "10.0.0.0/16",
        "Format": "JSON",
    }
    status, vpc = send(
        server, urlencode(sign_v1("GET", vpc_params, ROOT_KEY_ID, ROOT_SECRET), quote_via=quote)
    )
    assert status == 200, vpc
    captured = urlencode(
        sign_v1(
            "GET",
            {
                "Action": "CreateSecurityGroup",
                "Version": "2014-05-26",
                "RegionId": "cn-hangzhou",
                "VpcId": str(vpc["VpcId"]),
                "Format": "JSON",
            },
            ROOT_KEY_ID,
            ROOT_SECRET,
        ),
        quote_via=quote,
    )
    status, body = send(server, captured)
    assert status == 200, body
    groups = count_groups(server)
    restart_server(server, kill=kill)
    status, body = send(server, captured)
    assert (status, body["Code"]) == (400, "SignatureNonceUsed")
    assert count_groups(server) == groups
