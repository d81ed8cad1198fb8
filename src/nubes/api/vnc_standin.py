"""The emulator's stand-in for a VM's VNC server (its VMs are fake: there is no QEMU display).

It speaks enough RFB 3.8 for noVNC and the tests: VNC authentication with the instance's VNC
password (the one a real VM's server would have been given; none set: a random one, so nobody
logs on, as with QEMU), a 720x400 screen (a VGA text mode's size), raw framebuffer updates in
the pixel format the client asks for, and key events, each drawn as a block after the last so
that a client can see its keys arrive. Pointer events and cut text are read and ignored."""

from __future__ import annotations

import asyncio
import hmac
import os
import struct
from dataclasses import dataclass

from nubes.rfb import vnc_auth_response

WIDTH, HEIGHT = 720, 400
BACKGROUND = (0x10, 0x18, 0x30)
BANNER = (0x80, 0x80, 0x80)  # a bar at the top, where a VGA console's first line would be
KEY = (0xF0, 0xF0, 0xF0)
PALETTE = (BACKGROUND, BANNER, KEY)
KEY_W, KEY_H, BANNER_H = 9, 16, 16


@dataclass
class PixelFormat:
    bits: int = 32
    big_endian: bool = False
    shifts: tuple[int, int, int] = (16, 8, 0)
    maxes: tuple[int, int, int] = (255, 255, 255)

    def pack(self, rgb: tuple[int, int, int]) -> bytes:
        value = 0
        for channel, shift, top in zip(rgb, self.shifts, self.maxes, strict=True):
            value |= (channel * top // 255) << shift
        return value.to_bytes(self.bits // 8, "big" if self.big_endian else "little")

    def encode(self) -> bytes:
        return struct.pack(">BBBBHHHBBB3x", self.bits, 24, int(self.big_endian), 1, *self.maxes, *self.shifts)


class Screen:
    """The screen as one palette index per pixel (PALETTE), packed in the client's format when sent."""

    def __init__(self) -> None:
        self.pixels = bytearray(WIDTH * HEIGHT)  # all BACKGROUND
        self.fill((0, 0, WIDTH, BANNER_H), 1)
        self.keys = 0  # key presses seen: drawn as blocks, left to right, row by row

    def fill(self, box: tuple[int, int, int, int], index: int) -> None:
        x, y, w, h = box
        for row in range(y, y + h):
            self.pixels[row * WIDTH + x : row * WIDTH + x + w] = bytes([index]) * w

    def press(self) -> tuple[int, int, int, int]:
        per_row, rows = WIDTH // KEY_W, (HEIGHT - BANNER_H) // KEY_H - 1
        row, col = divmod(self.keys % (per_row * rows), per_row)
        self.keys += 1
        box = (col * KEY_W, BANNER_H + KEY_H + row * KEY_H, KEY_W - 1, KEY_H - 2)
        self.fill(box, 2)
        return box

    def raw(self, fmt: PixelFormat, box: tuple[int, int, int, int]) -> bytes:
        colors = [fmt.pack(rgb) for rgb in PALETTE]
        x, y, w, h = box
        packed: dict[bytes, bytes] = {}  # most rows are alike: each kind packed once
        rows = []
        for row in range(y, y + h):
            indexes = bytes(self.pixels[row * WIDTH + x : row * WIDTH + x + w])
            if indexes not in packed:
                packed[indexes] = b"".join(colors[i] for i in indexes)
            rows.append(packed[indexes])
        return b"".join(rows)


def _update(screen: Screen, fmt: PixelFormat, boxes: list[tuple[int, int, int, int]]) -> bytes:
    """A FramebufferUpdate of raw rectangles."""
    out = [struct.pack(">BxH", 0, len(boxes))]
    for box in boxes:
        out += [struct.pack(">HHHHi", *box, 0), screen.raw(fmt, box)]
    return b"".join(out)


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, password: str, name: str) -> None:
    """One client, until it goes: the handshake, then its messages."""
    try:
        writer.write(b"RFB 003.008\n")
        await reader.readexactly(12)
        writer.write(b"\x01\x02")  # one security type: VNC authentication
        if (await reader.readexactly(1))[0] != 2:
            return
        challenge = os.urandom(16)
        writer.write(challenge)
        answer = await reader.readexactly(16)
        if not password or not hmac.compare_digest(answer, vnc_auth_response(password, challenge)):
            reason = b"Authentication failed"
            writer.write(struct.pack(">II", 1, len(reason)) + reason)
            await writer.drain()
            return
        writer.write(struct.pack(">I", 0))
        await reader.readexactly(1)  # ClientInit
        fmt, screen = PixelFormat(), Screen()
        title = name.encode()
        writer.write(struct.pack(">HH", WIDTH, HEIGHT) + fmt.encode() + struct.pack(">I", len(title)) + title)
        await _messages(reader, writer, fmt, screen)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _messages(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, fmt: PixelFormat, screen: Screen
) -> None:
    # What changed since the last update sent, and whether the client waits for it: RFB answers
    # an incremental request only when there is something new.
    changed: list[tuple[int, int, int, int]] = []
    waiting = False
    while True:
        kind = (await reader.readexactly(1))[0]
        if kind == 0:  # SetPixelFormat
            data = await reader.readexactly(19)
            bits, _, big, _, rmax, gmax, bmax, rs, gs, bs = struct.unpack(">BBBBHHHBBB", data[3:16])
            fmt.bits, fmt.big_endian, fmt.maxes, fmt.shifts = (
                bits,
                bool(big),
                (rmax, gmax, bmax),
                (rs, gs, bs),
            )
        elif kind == 2:  # SetEncodings: raw is every client's, the only one sent
            [count] = struct.unpack(">xH", await reader.readexactly(3))
            await reader.readexactly(4 * count)
        elif kind == 3:  # FramebufferUpdateRequest
            incremental = (await reader.readexactly(9))[0]
            if not incremental:
                changed = [(0, 0, WIDTH, HEIGHT)]
            waiting = True
        elif kind == 4:  # KeyEvent
            down = (await reader.readexactly(7))[0]
            if down:
                changed.append(screen.press())
        elif kind == 5:  # PointerEvent
            await reader.readexactly(5)
        elif kind == 6:  # ClientCutText
            [length] = struct.unpack(">3xI", await reader.readexactly(7))
            await reader.readexactly(length)
        else:
            return  # nothing else was offered to the client
        if waiting and changed:
            writer.write(_update(screen, fmt, changed))
            changed, waiting = [], False
        await writer.drain()
