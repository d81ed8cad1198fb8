"""A minimal RFB 3.8 client over a websocket (what noVNC does in a browser), for tests: the
version handshake, VNC authentication, ServerInit, raw framebuffer updates and key events."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

import websockets
from websockets.asyncio.client import ClientConnection

from nubes.rfb import vnc_auth_response

VERSION = b"RFB 003.008\n"
VNC_AUTH = 2
RAW = 0
CONTROL_L, ALT_L, DELETE = 0xFFE3, 0xFFE9, 0xFFFF  # X11 keysyms


class AuthFailed(Exception):
    """The server refused the password (SecurityResult failed), with its reason."""


@dataclass
class Screen:
    width: int
    height: int
    bytes_per_pixel: int
    name: str
    pixels: bytearray

    def colors(self) -> set[bytes]:
        step = self.bytes_per_pixel
        return {bytes(self.pixels[i : i + step]) for i in range(0, len(self.pixels), step)}


class RfbClient:
    def __init__(self, ws: ClientConnection, wait: float = 30) -> None:
        self.ws = ws
        self.wait = wait  # seconds to wait for each message of the server
        self._buffer = bytearray()

    async def _read(self, n: int) -> bytes:
        while len(self._buffer) < n:
            message = await asyncio.wait_for(self.ws.recv(), self.wait)
            self._buffer += message if isinstance(message, bytes) else message.encode()
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    async def log_on(self, password: str) -> Screen:
        """Handshake and VNC authentication; the ServerInit's screen (pixels not read yet)."""
        version = await self._read(12)
        assert version.startswith(b"RFB 003."), version
        await self.ws.send(VERSION)
        [count] = await self._read(1)
        types = await self._read(count)
        assert VNC_AUTH in types, f"security types {list(types)}"
        await self.ws.send(bytes([VNC_AUTH]))
        challenge = await self._read(16)
        await self.ws.send(vnc_auth_response(password, challenge))
        [result] = struct.unpack(">I", await self._read(4))
        if result != 0:
            [length] = struct.unpack(">I", await self._read(4))
            raise AuthFailed((await self._read(length)).decode(errors="replace"))
        await self.ws.send(b"\x01")  # ClientInit: shared
        width, height = struct.unpack(">HH", await self._read(4))
        pixel_format = await self._read(16)
        [length] = struct.unpack(">I", await self._read(4))
        name = (await self._read(length)).decode(errors="replace")
        bpp = pixel_format[0] // 8
        await self.ws.send(struct.pack(">BxHi", 2, 1, RAW))  # SetEncodings: raw only
        return Screen(width, height, bpp, name, bytearray(width * height * bpp))

    async def update(self, screen: Screen) -> int:
        """Ask for the whole screen and read one FramebufferUpdate into `screen`: its rectangles."""
        await self.ws.send(struct.pack(">BBHHHH", 3, 0, 0, 0, screen.width, screen.height))
        while True:
            [kind] = await self._read(1)
            if kind == 0:  # FramebufferUpdate
                break
            if kind == 2:  # Bell
                continue
            if kind == 3:  # ServerCutText
                await self._read(3)
                [length] = struct.unpack(">I", await self._read(4))
                await self._read(length)
                continue
            raise AssertionError(f"unexpected server message {kind}")
        [rects] = struct.unpack(">xH", await self._read(3))
        for _ in range(rects):
            x, y, w, h, encoding = struct.unpack(">HHHHi", await self._read(12))
            if encoding == -223:  # DesktopSize pseudo-encoding (not asked for, tolerated)
                continue
            assert encoding == RAW, encoding
            row = w * screen.bytes_per_pixel
            data = await self._read(row * h)
            for line in range(h):
                start = ((y + line) * screen.width + x) * screen.bytes_per_pixel
                screen.pixels[start : start + row] = data[line * row : (line + 1) * row]
        return int(rects)

    async def key(self, keysym: int) -> None:
        """Press and release a key (an X11 keysym)."""
        await self.chord(keysym)

    async def chord(self, *keysyms: int) -> None:
        """Press the keys in order, then release them in reverse (Ctrl+Alt+Del)."""
        for keysym in keysyms:
            await self.ws.send(struct.pack(">BBxxI", 4, 1, keysym))
        for keysym in reversed(keysyms):
            await self.ws.send(struct.pack(">BBxxI", 4, 0, keysym))


def connect(url: str) -> websockets.connect:
    return websockets.connect(url, subprotocols=[websockets.Subprotocol("binary")], max_size=None)
