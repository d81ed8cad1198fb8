"""The metadata service at http://100.100.100.200/ inside every VPC.

Each VPC namespace gets a listening socket on 100.100.100.200:80 (from the network driver);
one small HTTP server per VPC answers on it. The caller is known by the VPC the socket
belongs to and the source address of the connection: a guest sees only its own data.
The instances issue extends the tree with instance data (instance-id, user-data, keys)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Network
from typing import Any

from sqlalchemy import select

from nubes.domain import cidr
from nubes.store.db import Database
from nubes.store.models import NetworkInterface, Vpc, VSwitch

log = logging.getLogger("nubes.metadata")

Tree = dict[str, Any]


def interface_tree(db: Database, vpc_id: str, source_ip: str) -> Tree | None:
    """The metadata of the network interface that owns `source_ip` in the VPC, or None."""
    with db.session() as s:
        eni = s.scalar(
            select(NetworkInterface).where(NetworkInterface.vpc_id == vpc_id, NetworkInterface.primary_ip == source_ip)
        )
        if eni is None:
            return None
        vpc = s.get(Vpc, vpc_id)
        vswitch = s.get(VSwitch, eni.vswitch_id)
        if vpc is None or vswitch is None:
            return None
        network = IPv4Network(vswitch.cidr)
        interface = {
            "network-interface-id": eni.id,
            "primary-ip-address": eni.primary_ip,
            "private-ipv4s": f'["{eni.primary_ip}"]',
            "netmask": str(network.netmask),
            "gateway": str(cidr.gateway(network)),
            "vpc-id": vpc.id,
            "vpc-cidr-block": vpc.cidr,
            "vswitch-id": vswitch.id,
            "vswitch-cidr-block": vswitch.cidr,
        }
        return {
            "meta-data": {
                "mac": eni.mac,
                "private-ipv4": eni.primary_ip,
                "region-id": eni.region_id,
                "zone-id": eni.zone_id,
                "vpc-id": vpc.id,
                "vpc-cidr-block": vpc.cidr,
                "vswitch-id": vswitch.id,
                "vswitch-cidr-block": vswitch.cidr,
                "network-type": "vpc",
                "network": {"interfaces": {"macs": {eni.mac: interface}}},
            }
        }


def lookup(tree: Tree, path: str) -> tuple[int, str]:
    """Walk `path` (after /latest/) in the tree: a directory lists its entries, a leaf is its value."""
    node: Any = tree
    for part in [p for p in path.split("/") if p]:
        if not isinstance(node, dict) or part not in node:
            return 404, "Not Found"
        node = node[part]
    if isinstance(node, dict):
        return 200, "\n".join(f"{k}/" if isinstance(v, dict) else k for k, v in node.items())
    return 200, str(node)


TreeSource = Callable[[str, str], Tree | None]


class _Handler(BaseHTTPRequestHandler):
    server: _VpcServer
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if not path.startswith("/latest"):
            self._send(200 if path in ("/", "") else 404, "latest\n" if path in ("/", "") else "Not Found")
            return
        tree = self.server.source(self.server.vpc_id, self.client_address[0])
        if tree is None:
            self._send(404, "Not Found")
            return
        status, body = lookup(tree, path.removeprefix("/latest"))
        self._send(status, body)

    def _send(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        log.debug("metadata %s: " + format, self.server.vpc_id, *args)


class _VpcServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sock: socket.socket, vpc_id: str, source: TreeSource) -> None:
        super().__init__(sock.getsockname(), _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.vpc_id = vpc_id
        self.source = source


class MetadataService:
    """One HTTP server per VPC on the socket the driver opened inside its namespace."""

    def __init__(self, source: TreeSource) -> None:
        self._source = source
        self._servers: dict[str, _VpcServer] = {}
        self._lock = threading.Lock()

    def ensure(self, vpc_id: str, open_socket: Callable[[str], socket.socket | None]) -> None:
        with self._lock:
            if vpc_id in self._servers:
                return
            sock = open_socket(vpc_id)
            if sock is None:
                return
            server = _VpcServer(sock, vpc_id, self._source)
            self._servers[vpc_id] = server
        threading.Thread(target=server.serve_forever, name=f"metadata-{vpc_id}", daemon=True).start()

    def remove(self, vpc_id: str) -> None:
        with self._lock:
            server = self._servers.pop(vpc_id, None)
        if server is not None:
            server.shutdown()
            server.server_close()

    def retain(self, vpc_ids: set[str]) -> None:
        for vpc_id in set(self._servers) - vpc_ids:
            self.remove(vpc_id)

    def close(self) -> None:
        self.retain(set())
