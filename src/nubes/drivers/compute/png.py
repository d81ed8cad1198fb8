"""A minimal PNG encoder and reader of PNG headers, in pure Python (zlib from the standard
library): the fake driver draws its screenshots with it, and the qemu driver converts a PPM
screendump with it when its QEMU cannot write PNG itself. 8-bit RGB, no filtering (filter
type 0 on every row): files are larger than an optimising encoder's, never wrong."""

from __future__ import annotations

import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_rgb(width: int, height: int, pixels: bytes) -> bytes:
    """A PNG of `pixels`: rows top to bottom, 3 bytes (R, G, B) per pixel."""
    if width <= 0 or height <= 0 or len(pixels) != width * height * 3:
        raise ValueError(f"{len(pixels)} bytes are not {width}x{height} RGB pixels")
    stride = width * 3
    raw = b"".join(b"\x00" + pixels[y * stride : (y + 1) * stride] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit truecolour
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")


def dimensions(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR; ValueError when `png` does not start like a PNG."""
    if len(png) < 24 or not png.startswith(SIGNATURE) or png[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


def ppm_to_png(ppm: bytes) -> bytes:
    """A binary PPM (P6, maxval 255, as QEMU's screendump writes) as a PNG."""
    fields: list[bytes] = []
    pos = 0
    while len(fields) < 4:
        while pos < len(ppm) and ppm[pos : pos + 1].isspace():
            pos += 1
        if ppm[pos : pos + 1] == b"#":  # a comment runs to the end of its line
            pos = ppm.find(b"\n", pos) + 1 or len(ppm)
            continue
        start = pos
        while pos < len(ppm) and not ppm[pos : pos + 1].isspace():
            pos += 1
        if start == pos:
            raise ValueError("truncated PPM header")
        fields.append(ppm[start:pos])
    magic, width, height, maxval = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    if magic != b"P6" or maxval != 255:
        raise ValueError(f"not an 8-bit binary PPM: {magic!r}, maxval {maxval}")
    pixels = ppm[pos + 1 : pos + 1 + width * height * 3]  # one whitespace byte ends the header
    return encode_rgb(width, height, pixels)
