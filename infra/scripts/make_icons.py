"""Draw the home-screen icons of the volunteer page (api/static/icon-*.png) from the favicon's
shapes: a navy rounded square, a yellow ring, a red dot. Pure Python (zlib), no image library.

    .venv/bin/python infra/scripts/make_icons.py
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "api" / "static"
NAVY, YELLOW, RED = (0x12, 0x26, 0x3F), (0xFA, 0xCC, 0x15), (0xB9, 0x1C, 0x1C)
SAMPLES = 3  # per axis, for smooth edges


def colour_at(x: float, y: float) -> tuple[int, int, int, int]:
    """The colour at (x, y) in the favicon's 32 × 32 space; a maskable icon's safe zone keeps the
    ring well inside, so the background is a full square."""
    d = ((x - 16) ** 2 + (y - 16) ** 2) ** 0.5
    if d <= 3:
        return (*RED, 255)
    if 6.5 <= d <= 9.5:
        return (*YELLOW, 255)
    return (*NAVY, 255)


def png(size: int) -> bytes:
    rows = bytearray()
    step = 32 / size
    for py in range(size):
        rows.append(0)
        for px in range(size):
            acc = [0, 0, 0, 0]
            for sy in range(SAMPLES):
                for sx in range(SAMPLES):
                    c = colour_at(
                        (px + (sx + 0.5) / SAMPLES) * step, (py + (sy + 0.5) / SAMPLES) * step
                    )
                    for i in range(4):
                        acc[i] += c[i]
            rows.extend(round(v / SAMPLES**2) for v in acc)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


def main() -> None:
    for size in (192, 512):
        (STATIC / f"icon-{size}.png").write_bytes(png(size))


if __name__ == "__main__":
    main()
