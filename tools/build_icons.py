"""Draw the people's app's icons (a shield on a dark field) as PNG, with no image library.

    python tools/build_icons.py   # writes api/static/app/icon-192.png and icon-512.png

The shapes are point-in-polygon tests sampled 4x4 per pixel (anti-aliased edges); the
PNG is written with zlib. Run it again only to change the design.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "api" / "static" / "app"
BACKGROUND = (21, 32, 43)
SHIELD = (242, 153, 0)
INNER = (21, 32, 43)
CHECK = (255, 255, 255)


def _shield(scale: float) -> list[tuple[float, float]]:
    """A shield outline in unit coordinates (0..1), shrunk towards its middle by ``scale``."""
    top, shoulder, bottom = 0.16, 0.24, 0.86
    points = [(0.5, top), (0.78, shoulder), (0.76, 0.55), (0.5, bottom), (0.24, 0.55),
              (0.22, shoulder)]  # fmt: skip
    return [(0.5 + (x - 0.5) * scale, 0.52 + (y - 0.52) * scale) for x, y in points]


def _inside(x: float, y: float, poly: list[tuple[float, float]]) -> bool:
    hit = False
    j = len(poly) - 1
    for i, (xi, yi) in enumerate(poly):
        xj, yj = poly[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            hit = not hit
        j = i
    return hit


def _near_segment(
    x: float, y: float, a: tuple[float, float], b: tuple[float, float], w: float
) -> bool:
    ax, ay = a
    bx, by = b
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)))
    return (x - ax - t * dx) ** 2 + (y - ay - t * dy) ** 2 <= w * w


def _colour(x: float, y: float) -> tuple[int, int, int]:
    check = ((0.38, 0.52), (0.47, 0.62), (0.64, 0.42))
    if _near_segment(x, y, check[0], check[1], 0.035) or _near_segment(
        x, y, check[1], check[2], 0.035
    ):
        return CHECK
    if _inside(x, y, _shield(0.78)):
        return INNER
    if _inside(x, y, _shield(1.0)):
        return SHIELD
    return BACKGROUND


def draw(size: int, samples: int = 4) -> bytes:
    rows = []
    for py in range(size):
        row = bytearray([0])  # filter: none
        for px in range(size):
            acc = [0, 0, 0]
            for sy in range(samples):
                for sx in range(samples):
                    c = _colour(
                        (px + (sx + 0.5) / samples) / size, (py + (sy + 0.5) / samples) / size
                    )
                    for k in range(3):
                        acc[k] += c[k]
            row += bytes(round(v / samples**2) for v in acc)
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b""))  # fmt: skip


if __name__ == "__main__":
    for size in (192, 512):
        (OUT / f"icon-{size}.png").write_bytes(draw(size))
        print(f"icon-{size}.png")
