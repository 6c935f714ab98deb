"""Render a short synthetic clip (moving shapes and text) into numbered PNG frames, for trying the tool.

Only numpy and the standard library are used (the PNG encoder below is a few lines of zlib), so the example
works before anything else is installed:

    python examples/make_clip.py example/frames            # 16 frames, 256x144
    python -m rife --img example/frames --output example/x4 --multi 4
"""

from __future__ import annotations

import argparse
import struct
import zlib
from pathlib import Path

import numpy as np

# 5x7 bitmap glyphs for the caption; '#' is ink.
GLYPHS = {
    "R": ["####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"],
    "I": ["#####", "..#..", "..#..", "..#..", "..#..", "..#..", "#####"],
    "F": ["#####", "#....", "#....", "####.", "#....", "#....", "#...."],
    "E": ["#####", "#....", "#....", "####.", "#....", "#....", "#####"],
    " ": [".....", ".....", ".....", ".....", ".....", ".....", "....."],
}


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write an [H,W,3] uint8 image as an 8-bit RGB PNG."""
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + row.tobytes() for row in rgb)  # filter type 0 (none) on every scanline

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
    )


def coverage(distance: np.ndarray) -> np.ndarray:
    """Anti-aliased ink coverage from a signed distance in pixels (negative inside), so sub-pixel motion shows."""
    return np.clip(0.5 - distance, 0.0, 1.0)[..., None]


def paint(canvas: np.ndarray, alpha: np.ndarray, colour: tuple[float, float, float]) -> None:
    canvas *= 1.0 - alpha
    canvas += alpha * np.asarray(colour, dtype=np.float32)


def caption(text: str, scale: int) -> np.ndarray:
    """The text as a boolean bitmap, each font pixel ``scale`` x ``scale`` screen pixels."""
    rows = [" ".join(GLYPHS[c][r] for c in text) for r in range(7)]
    bitmap = np.array([[ch == "#" for ch in row] for row in rows])
    return np.kron(bitmap, np.ones((scale, scale), dtype=bool))


def render(index: int, count: int, width: int, height: int) -> np.ndarray:
    """Frame ``index`` of ``count``: a ball on an arc, a spinning bar, a sliding square and scrolling text."""
    phase = index / max(count - 1, 1)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    sky = np.stack([0.15 + 0.35 * y / height, 0.25 + 0.3 * y / height, 0.55 + 0.2 * x / width], axis=-1)
    canvas = sky.astype(np.float32)

    ground = height * 0.8
    paint(canvas, coverage(ground - y), (0.2, 0.45, 0.2))

    cx, cy = width * (0.15 + 0.7 * phase), ground - height * 0.55 * 4 * phase * (1 - phase) - height * 0.09
    paint(canvas, coverage(np.hypot(x - cx, y - cy) - height * 0.09), (0.95, 0.55, 0.1))

    angle = np.pi * phase
    bx, by, half = width * 0.75, height * 0.3, height * 0.2
    dx, dy = np.cos(angle), np.sin(angle)
    along = np.clip((x - bx) * dx + (y - by) * dy, -half, half)
    bar = np.hypot(x - bx - along * dx, y - by - along * dy) - height * 0.03
    paint(canvas, coverage(bar), (0.9, 0.9, 0.95))

    sx = width * (0.9 - 0.6 * phase)
    square = np.maximum(np.abs(x - sx), np.abs(y - height * 0.7)) - height * 0.07
    paint(canvas, coverage(square), (0.2, 0.3, 0.9))

    text = caption("RIFE", scale=max(1, height // 48))
    top, left = int(height * 0.06), int(width * 0.05 + (width * 0.3) * phase)
    h, w = text.shape
    region = canvas[top : top + h, left : left + w]
    region[text[: region.shape[0], : region.shape[1]]] = (1.0, 1.0, 1.0)
    return np.rint(np.clip(canvas, 0.0, 1.0) * 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description="Render a synthetic test clip into numbered PNG frames.")
    parser.add_argument("output", type=Path, help="folder for 0000000.png, 0000001.png, ...")
    parser.add_argument("--frames", type=int, default=16, help="number of frames (default 16)")
    parser.add_argument("--width", type=int, default=256, help="frame width in pixels (default 256)")
    parser.add_argument("--height", type=int, default=144, help="frame height in pixels (default 144)")
    args = parser.parse_args()
    if args.frames < 1 or args.width < 16 or args.height < 16:
        parser.error("need at least 1 frame of at least 16x16 pixels")
    args.output.mkdir(parents=True, exist_ok=True)
    for index in range(args.frames):
        write_png(args.output / f"{index:07d}.png", render(index, args.frames, args.width, args.height))
    print(f"wrote {args.frames} frames of {args.width}x{args.height} to {args.output}")


if __name__ == "__main__":
    main()
