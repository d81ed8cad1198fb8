"""The console's calls to the API: ordinary v1-signed ECS/VPC requests, as nubes.client builds
them, signed with the signed-in user's AccessKey.

They are sent in-process, through ASGI, to the API application this server serves (the same
`ApiApp.__call__` a request from the network reaches: parsing, signature check, nonce,
throttle, rendering), not over a socket to the server's own listen address: that address may be
0.0.0.0 or behind a proxy, and a loopback HTTP hop would cost a connection per call for nothing.
The console thus stays a client of the API (it sees only the wire answer) without importing
the domain, the store or the drivers."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from nubes.client import ClientError, Credentials, error_of, signed_query

Message = MutableMapping[str, Any]
Asgi = Callable[
    [dict[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

IN_PROCESS = "console.in-process"


class ApiCaller:
    def __init__(self, api: Asgi) -> None:
        self.api = api

    async def call(
        self, key: tuple[str, str], product: str, action: str, params: dict[str, str]
    ) -> dict[str, Any]:
        """The JSON answer of one signed call; ClientError with the API's Code and Message."""
        creds = Credentials(IN_PROCESS, params.get("RegionId", ""), key[0], key[1])
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/",
            "raw_path": b"/",
            "query_string": signed_query(creds, product, action, params).encode(),
            "headers": [(b"host", IN_PROCESS.encode()), (b"content-length", b"0")],
            "client": ("127.0.0.1", 0),
            "server": ("127.0.0.1", 0),
        }
        status = 500
        chunks: list[bytes] = []
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))

        await self.api(scope, receive, send)
        body = b"".join(chunks)
        if status >= 400:
            raise error_of(status, body)
        try:
            return dict(json.loads(body))
        except ValueError:
            raise ClientError("SDK.UnknownServerError", body[:200].decode(errors="replace"), status) from None
