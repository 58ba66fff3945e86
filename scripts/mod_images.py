"""Draw the mod's images (thumbnail and tool icons) as PNG files, with numpy and zlib only.

    python scripts/mod_images.py        # writes mod/factorion/thumbnail.png and graphics/*.png

The outputs are committed; rerun only to change them.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

MOD = Path(__file__).resolve().parent.parent / "mod" / "factorion"

BACKGROUND = (38, 38, 42, 255)
GRID = (60, 60, 66, 255)
BLUE = (60, 170, 255, 255)
GREEN = (90, 230, 90, 255)
ORANGE = (255, 140, 50, 255)
BELT = (230, 190, 60, 255)


def png_bytes(rgba: np.ndarray) -> bytes:
    """A PNG file of an (H, W, 4) uint8 image: 8-bit RGBA, no interlace, filter 0 rows."""
    height, width, channels = rgba.shape
    if channels != 4 or rgba.dtype != np.uint8:
        raise ValueError("expected an (H, W, 4) uint8 image")

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\0" + rgba[y].tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def canvas(size: int, cell: int) -> np.ndarray:
    image = np.zeros((size, size, 4), np.uint8)
    image[:] = BACKGROUND
    image[::cell, :] = GRID
    image[:, ::cell] = GRID
    return image


def arrow(image: np.ndarray, x0: int, y0: int, size: int, color: tuple[int, ...]) -> None:
    """An east-pointing triangle in the size x size square at (x0, y0)."""
    for dx in range(size):
        half = (size - dx) * size // (2 * size)
        image[y0 + size // 2 - half : y0 + size // 2 + half + 1, x0 + dx] = color


def thumbnail() -> np.ndarray:
    """144x144: a region outline, a belt path from a source to a sink."""
    cell = 16
    image = canvas(144, cell)
    path = [(1, 2), (2, 2), (3, 2), (4, 2), (4, 3), (4, 4), (4, 5), (5, 5), (6, 5), (7, 5)]
    for x, y in path:
        image[y * cell + 4 : y * cell + 13, x * cell + 4 : x * cell + 13] = BELT
    image[2 * cell + 2 : 3 * cell - 1, 0 * cell + 2 : 1 * cell - 1] = GREEN
    image[5 * cell + 2 : 6 * cell - 1, 8 * cell + 2 : 9 * cell - 1] = ORANGE
    image[4:8, 4:140] = BLUE
    image[136:140, 4:140] = BLUE
    image[4:140, 4:8] = BLUE
    image[4:140, 136:140] = BLUE
    return image


def icon(color: tuple[int, ...], kind: str) -> np.ndarray:
    """64x64 tool icon: a dashed square for the region, an arrow for source and sink."""
    image = np.zeros((64, 64, 4), np.uint8)
    if kind == "region":
        for i in range(4, 60, 8):
            image[4:8, i : i + 5] = color
            image[56:60, i : i + 5] = color
            image[i : i + 5, 4:8] = color
            image[i : i + 5, 56:60] = color
        image[24:40, 24:40] = BELT
    else:
        image[8:56, 8:56] = BACKGROUND
        image[8:12, 8:56] = color
        image[52:56, 8:56] = color
        image[8:56, 8:12] = color
        image[8:56, 52:56] = color
        arrow(image, 18, 18, 28, color)
    return image


def main() -> None:
    (MOD / "graphics").mkdir(parents=True, exist_ok=True)
    (MOD / "thumbnail.png").write_bytes(png_bytes(thumbnail()))
    for name, color in (("region", BLUE), ("source", GREEN), ("sink", ORANGE)):
        (MOD / "graphics" / f"{name}.png").write_bytes(png_bytes(icon(color, name)))


if __name__ == "__main__":
    main()
