"""The metadata HTTP service: tree lookups, and the hardened (token) mode, on a loopback socket."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from nubes.guest.metadata import TOKEN_HEADER, TTL_HEADER, GuestView, MetadataService, lookup

TREE = {
    "meta-data": {
        "instance-id": "i-1",
        "public-keys": {"0": {"openssh-key": "ssh-ed25519 AAAA"}},
        "network": {"interfaces": {"macs": {"00:16:3e:00:00:01": {"vpc-id": "vpc-1"}}}},
    },
    "user-data": "#!/bin/sh\necho hi\n",
}


def test_lookup_lists_directories_and_returns_leaves() -> None:
    assert lookup(TREE, "/meta-data/") == (200, "instance-id\npublic-keys/\nnetwork/")
    assert lookup(TREE, "/meta-data/instance-id") == (200, "i-1")
    assert lookup(TREE, "/meta-data/public-keys/0/openssh-key") == (200, "ssh-ed25519 AAAA")
    assert lookup(TREE, "/meta-data/nothing")[0] == 404
    assert lookup(TREE, "/user-data") == (200, "#!/bin/sh\necho hi\n")


@pytest.fixture
def service_port() -> Iterator[tuple[int, dict[str, GuestView]]]:
    views: dict[str, GuestView] = {"127.0.0.1": GuestView(TREE)}
    service = MetadataService(lambda _vpc, ip: views.get(ip))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    service.ensure("vpc-1", lambda _vpc: sock)
    yield port, views
    service.close()


def get(port: int, path: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        request.add_header(TOKEN_HEADER, token)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def put_token(port: int, ttl: str) -> tuple[int, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/latest/api/token", method="PUT", headers={TTL_HEADER: ttl}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


def test_plain_and_hardened_modes(service_port: tuple[int, dict[str, GuestView]]) -> None:
    port, views = service_port
    assert get(port, "/latest/meta-data/instance-id") == (200, "i-1")
    status, token = put_token(port, "60")
    assert status == 200 and len(token) > 20
    assert get(port, "/latest/meta-data/instance-id", token) == (200, "i-1")
    assert get(port, "/latest/meta-data/instance-id", "forged")[0] == 401
    assert (
        put_token(port, "0")[0] == 400
        and put_token(port, "21601")[0] == 400
        and put_token(port, "x")[0] == 400
    )
    views["127.0.0.1"] = GuestView(TREE, tokens_required=True)
    assert get(port, "/latest/meta-data/instance-id")[0] == 403
    assert get(port, "/latest/meta-data/instance-id", token) == (200, "i-1")
    views["127.0.0.1"] = GuestView(TREE, enabled=False)
    assert get(port, "/latest/meta-data/instance-id")[0] == 404


def test_unknown_caller_gets_nothing(service_port: tuple[int, dict[str, GuestView]]) -> None:
    port, views = service_port
    views.clear()
    assert get(port, "/latest/meta-data/instance-id")[0] == 404
