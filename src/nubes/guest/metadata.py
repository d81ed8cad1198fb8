"""The metadata service at http://100.100.100.200/ inside every VPC.

Each VPC namespace gets a listening socket on 100.100.100.200:80 (from the network driver);
one small HTTP server per VPC answers on it. The caller is known by the VPC the socket
belongs to and the source address of the connection: a guest sees only its own data.
The instances issue extends the tree with instance data (instance-id, user-data, keys)."""

from __future__ import annotations

import base64
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Network
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nubes.domain import cidr
from nubes.store.db import Database
from nubes.store.models import (
    Account,
    Instance,
    KeyPair,
    NetworkInterface,
    NetworkInterfacePrivateIp,
    Vpc,
    VSwitch,
)

log = logging.getLogger("nubes.metadata")

Tree = dict[str, Any]


@dataclass(frozen=True)
class GuestView:
    """What one guest may read, and how (hardened mode: tokens required)."""

    tree: Tree
    tokens_required: bool = False
    enabled: bool = True


def _interface(s: Session, eni: NetworkInterface, vpc: Vpc) -> Tree | None:
    """network/interfaces/macs/<mac>/ of one interface, as ECS lists it."""
    vswitch = s.get(VSwitch, eni.vswitch_id)
    if vswitch is None:
        return None
    network = IPv4Network(vswitch.cidr)
    addresses = [eni.primary_ip, *(row.ip_address for row in eni.secondary_ips)]
    return {
        "network-interface-id": eni.id,
        "primary-ip-address": eni.primary_ip,
        "private-ipv4s": json.dumps(addresses),
        "netmask": str(network.netmask),
        "gateway": str(cidr.gateway(network)),
        "vpc-id": vpc.id,
        "vpc-cidr-block": vpc.cidr,
        "vswitch-id": vswitch.id,
        "vswitch-cidr-block": vswitch.cidr,
    }


def interface_tree(db: Database, vpc_id: str, source_ip: str) -> GuestView | None:
    """The metadata of the interface that owns `source_ip` (its primary or a secondary address)
    in the VPC, and of its instance: every interface of the instance is listed under
    network/interfaces/macs/, the top-level mac and private-ipv4 are its primary interface's."""
    with db.session() as s:
        eni = s.scalar(
            select(NetworkInterface).where(
                NetworkInterface.vpc_id == vpc_id,
                (NetworkInterface.primary_ip == source_ip)
                | NetworkInterface.id.in_(
                    select(NetworkInterfacePrivateIp.interface_id).where(
                        NetworkInterfacePrivateIp.ip_address == source_ip
                    )
                ),
            )
        )
        if eni is None:
            return None
        vpc = s.get(Vpc, vpc_id)
        if vpc is None:
            return None
        interfaces = [eni]
        if eni.instance_id:
            interfaces = list(
                s.scalars(
                    select(NetworkInterface)
                    .where(NetworkInterface.instance_id == eni.instance_id)
                    .order_by(NetworkInterface.eni_type, NetworkInterface.id)  # "Primary" first
                )
            )
            eni = interfaces[0]
        macs = {each.mac: _interface(s, each, vpc) for each in interfaces}
        own = macs.get(eni.mac)
        if own is None:
            return None
        meta: Tree = {
            "mac": eni.mac,
            "private-ipv4": eni.primary_ip,
            "region-id": eni.region_id,
            "zone-id": eni.zone_id,
            "vpc-id": vpc.id,
            "vpc-cidr-block": vpc.cidr,
            "vswitch-id": own["vswitch-id"],
            "vswitch-cidr-block": own["vswitch-cidr-block"],
            "network-type": "vpc",
            "network": {
                "interfaces": {"macs": {mac: tree for mac, tree in macs.items() if tree is not None}}
            },
        }
        tree: Tree = {"meta-data": meta}
        instance = s.get(Instance, eni.instance_id) if eni.instance_id else None
        if instance is None:
            return GuestView(tree)
        account = s.get(Account, instance.account_id)
        owner = account.uid if account is not None else ""
        meta.update(
            {
                "instance-id": instance.id,
                "hostname": instance.hostname,
                "image-id": instance.image_id,
                "owner-account-id": owner,
                "serial-number": instance.id,
                "instance": {
                    "instance-type": instance.instance_type,
                    "instance-name": instance.name,
                    "max-netbw-egress": "",
                },
            }
        )
        key = None
        if instance.key_pair_name:
            key = s.scalar(
                select(KeyPair).where(
                    KeyPair.account_id == instance.account_id,
                    KeyPair.region_id == instance.region_id,
                    KeyPair.name == instance.key_pair_name,
                )
            )
        meta["public-keys"] = {"0": {"openssh-key": key.public_key}} if key is not None else {}
        tree["user-data"] = (
            base64.b64decode(instance.user_data).decode("utf-8", "replace") if instance.user_data else ""
        )
        tree["dynamic"] = {
            "instance-identity": {
                "document": json.dumps(
                    {
                        "zone-id": instance.zone_id,
                        "serial-number": instance.id,
                        "instance-id": instance.id,
                        "region-id": instance.region_id,
                        "private-ipv4": eni.primary_ip,
                        "owner-account-id": owner,
                        "mac": eni.mac,
                        "image-id": instance.image_id,
                        "instance-type": instance.instance_type,
                    }
                )
            }
        }
        if instance.password_hash:
            tree["nubes"] = {"password-hash": instance.password_hash}
        return GuestView(
            tree,
            tokens_required=instance.metadata_http_tokens == "required",
            enabled=instance.metadata_http_endpoint != "disabled",
        )


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


TreeSource = Callable[[str, str], GuestView | None]
TOKEN_HEADER = "X-aliyun-ecs-metadata-token"
TTL_HEADER = "X-aliyun-ecs-metadata-token-ttl-seconds"
MAX_TTL = 21600


class _Handler(BaseHTTPRequestHandler):
    server: _VpcServer
    protocol_version = "HTTP/1.0"

    def do_PUT(self) -> None:  # http.server's naming
        """Hardened mode: PUT /latest/api/token with a TTL header gives a token for later GETs."""
        if self.path.split("?", 1)[0] != "/latest/api/token":
            self._send(404, "Not Found")
            return
        try:
            ttl = int(self.headers.get(TTL_HEADER, ""))
        except ValueError:
            ttl = 0
        if not 1 <= ttl <= MAX_TTL:
            self._send(400, f"{TTL_HEADER} must be an integer from 1 to {MAX_TTL}")
            return
        self._send(200, self.server.tokens.issue(self.client_address[0], ttl))

    def do_GET(self) -> None:  # http.server's naming
        path = self.path.split("?", 1)[0]
        if not path.startswith("/latest"):
            self._send(200 if path in ("/", "") else 404, "latest\n" if path in ("/", "") else "Not Found")
            return
        view = self.server.source(self.server.vpc_id, self.client_address[0])
        if view is None or not view.enabled:
            self._send(404, "Not Found")
            return
        token = self.headers.get(TOKEN_HEADER)
        if token is not None and not self.server.tokens.valid(token, self.client_address[0]):
            self._send(401, "Unauthorized: the metadata token is invalid or expired")
            return
        if view.tokens_required and token is None:
            self._send(403, "Forbidden: this instance requires a metadata token (PUT /latest/api/token)")
            return
        status, body = lookup(view.tree, path.removeprefix("/latest"))
        self._send(status, body)

    def _send(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # http.server's signature
        log.debug("metadata %s: " + format, self.server.vpc_id, *args)  # noqa: G003 (http.server's format)


class TokenStore:
    """Metadata tokens, bound to the address that asked for them."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def issue(self, address: str, ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}
            self._tokens[token] = (address, now + ttl)
        return token

    def valid(self, token: str, address: str) -> bool:
        with self._lock:
            entry = self._tokens.get(token)
        return entry is not None and entry[0] == address and entry[1] > time.monotonic()


class _VpcServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sock: socket.socket, vpc_id: str, source: TreeSource) -> None:
        super().__init__(sock.getsockname(), _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.vpc_id = vpc_id
        self.source = source
        self.tokens = TokenStore()


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
