"""The websocket end of DescribeInstanceVncUrl's URLs: ws://<server>/vnc/websocket?s=<token>.

The token is redeemed once (nubes.domain.vnc: unused, unexpired, its instance Running), then the
websocket's binary messages are piped both ways to the VM's VNC server (a unix socket, or a
host:port), unchanged: the client (noVNC, or any RFB client over a websocket) speaks RFB to
QEMU and logs on with the instance's VNC password. A refused ticket is answered by accepting
the websocket and closing it at once with POLICY_VIOLATION and a reason, so that a browser
client can tell it from a network failure (a refused handshake shows it only an error).

The emulator's VMs have no display: their address is "fake:<instance id>", served by
nubes.api.vnc_standin in this process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from nubes.api import vnc_standin
from nubes.domain.vnc import Display

log = logging.getLogger("nubes.api.vnc")

PATH = "/vnc/websocket"
POLICY_VIOLATION = 1008  # the ticket is unknown, used, expired, or its instance not Running
UNAVAILABLE = 1011  # the display could not be reached
CHUNK = 64 * 1024
IDLE_SECONDS = 300.0  # ECS: a connection without interaction for 300 s is closed

Redeem = Callable[[str], Display | None]


async def _open(display: Display) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    address = display.address
    if address.startswith("unix:"):
        return await asyncio.open_unix_connection(address.removeprefix("unix:"))
    if address.startswith("fake:"):  # the emulator's VM: its stand-in server, on a socket pair
        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=theirs)
        name = f"nubes emulator ({address.removeprefix('fake:')})"
        _standins.add(task := asyncio.create_task(vnc_standin.serve(reader, writer, display.password, name)))
        task.add_done_callback(_standins.discard)
        return await asyncio.open_connection(sock=ours)
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise OSError(f"no VNC server at {address!r}")
    return await asyncio.open_connection(host.strip("[]"), int(port))


_standins: set[asyncio.Task[None]] = set()  # running stand-in servers (a task needs a reference)


async def serve(scope: dict[str, Any], receive: Any, send: Any, redeem: Redeem) -> None:
    """One websocket connection (ASGI `websocket` scope) at PATH."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    wanted = [str(p) for p in scope.get("subprotocols", [])]
    accept: dict[str, Any] = {"type": "websocket.accept"}
    if "binary" in wanted:  # noVNC asks for it; RFB bytes go in binary messages either way
        accept["subprotocol"] = "binary"
    token = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("s", [""])[0]
    display = await asyncio.to_thread(redeem, token) if token else None
    await send(accept)
    if display is None:
        await send(
            {"type": "websocket.close", "code": POLICY_VIOLATION, "reason": "invalid or expired VncUrl"}
        )
        return
    try:
        reader, writer = await _open(display)
    except OSError as exc:
        log.warning("VNC display %s: %s", display.address, exc)
        await send(
            {"type": "websocket.close", "code": UNAVAILABLE, "reason": "the VNC display is unavailable"}
        )
        return
    await _pipe(receive, send, reader, writer)


async def _pipe(receive: Any, send: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    async def upstream() -> None:  # browser -> VM
        while True:
            try:
                message = await asyncio.wait_for(receive(), IDLE_SECONDS)
            except TimeoutError:
                await send({"type": "websocket.close", "code": 1000, "reason": "idle"})
                return
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes") or (message.get("text") or "").encode("latin-1")
            writer.write(data)
            await writer.drain()

    async def downstream() -> None:  # VM -> browser
        while data := await reader.read(CHUNK):
            await send({"type": "websocket.send", "bytes": data})
        await send({"type": "websocket.close", "code": 1000})

    tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
    try:
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, OSError, RuntimeError):
                await task  # a closed websocket or socket ends the other direction too
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
