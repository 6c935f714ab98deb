"""Measure memory over a long streaming run: does resident memory stay flat per output frame?

Runs :func:`rife.stream_plan` over a lazily generated clip (default 300 frames of 256x256, x4, real 4.25 weights
on CPU) and samples this process's ``VmRSS`` (resident now) and ``VmHWM`` (peak resident) from
``/proc/self/status`` after every 10 % of the outputs. The engine should hold only a few source frames and
their encoded features at a time, so after warm-up both numbers must stop growing: the growth per output frame
from the first sample to the end is the figure of merit (one 256x256 RGB float32 frame is 768 KiB, so a leak of
every frame would show as about that much per frame).

    python bench/long_run.py [--frames 300] [--size 256] [--multiplier 4] [--mode direct] [--shared ../shared]

Linux only (reads /proc); no psutil needed.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from rife import MODES, RIFEModel, clip_plan, load_model, stream_plan

KIB_PER_MIB = 1024


def memory_kib() -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of this process in KiB, read from /proc/self/status."""
    values: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


class MovingTexture:
    """A lazy clip: frame ``i`` is a smooth random texture shifted by ``i * speed`` pixels (made on access,
    nothing cached), so the network sees real motion while the clip itself costs no memory."""

    def __init__(self, num_frames: int, size: int, *, speed: float = 3.0, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        coarse = torch.rand(1, 3, size // 8 + 2, size // 8 + 2, generator=generator)
        self.texture = F.interpolate(coarse, scale_factor=8, mode="bicubic", align_corners=False).clamp(0, 1)[0]
        self.num_frames, self.size, self.speed = num_frames, size, speed

    def __len__(self) -> int:
        return self.num_frames

    def __getitem__(self, index: int) -> Tensor:
        if not 0 <= index < self.num_frames:
            raise IndexError(index)
        shift = round(index * self.speed)
        moved = torch.roll(self.texture, shifts=(shift // 2, shift), dims=(1, 2))
        return moved[:, : self.size, : self.size].permute(1, 2, 0).contiguous()


def run(
    model: RIFEModel,
    frames: MovingTexture,
    multiplier: int,
    mode: str,
    samples: int,
    report: Callable[[str], None],
) -> list[tuple[int, float, int, int]]:
    """Stream the whole clip, sampling memory at ``samples`` evenly spaced output counts; returns
    (outputs done, seconds, VmRSS KiB, VmHWM KiB) rows."""
    plan = clip_plan(len(frames), multiplier, mode)
    total = plan.num_outputs
    marks = {math.ceil(total * k / samples) for k in range(1, samples + 1)}
    rows: list[tuple[int, float, int, int]] = []
    checksum = 0.0
    start = time.perf_counter()
    for done, frame in enumerate(stream_plan(model, frames, plan), start=1):
        checksum += float(frame.mean())  # consume the frame as a writer would, then drop it
        if done in marks:
            memory = memory_kib()
            rows.append((done, time.perf_counter() - start, memory["VmRSS"], memory["VmHWM"]))
            report(_row(rows[-1], total))
    report(f"mean pixel value over all outputs: {checksum / total:.4f}")
    return rows


def _row(row: tuple[int, float, int, int], total: int) -> str:
    done, seconds, rss, hwm = row
    return (
        f"{done:>7} {100 * done / total:>5.0f}% {seconds:>9.1f} {rss / KIB_PER_MIB:>10.1f} {hwm / KIB_PER_MIB:>10.1f}"
    )


def summary(rows: list[tuple[int, float, int, int]], frame_kib: float) -> list[str]:
    """Growth of VmRSS / VmHWM per output frame from the first sample (after 10 %) and over the second half
    (steady state, once the allocator's pools have settled) to the end."""
    lines = []
    last_done, seconds, last_rss, last_hwm = rows[-1]
    for label, (done, _, rss, hwm) in (("first sample", rows[0]), ("second half", rows[len(rows) // 2 - 1])):
        frames = max(1, last_done - done)
        lines.append(
            f"{label:>12}, outputs {done} -> {last_done}: VmRSS {last_rss - rss:+d} KiB "
            f"({(last_rss - rss) / frames:+.2f} KiB/frame), VmHWM {last_hwm - hwm:+d} KiB "
            f"({(last_hwm - hwm) / frames:+.2f} KiB/frame)"
        )
    lines.append(f"one output frame is {frame_kib:.0f} KiB (a leak of every output would add that per frame)")
    lines.append(f"throughput: {last_done / seconds:.2f} output frames/s ({seconds:.0f} s in all)")
    return lines


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300, help="source frames (default 300)")
    parser.add_argument("--size", type=int, default=256, help="frame width and height in pixels (default 256)")
    parser.add_argument("--multiplier", type=int, default=4, help="output frames per source frame (default 4)")
    parser.add_argument("--mode", choices=MODES, default="direct")
    parser.add_argument("--samples", type=int, default=10, help="memory samples over the run (default 10)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    frames = MovingTexture(args.frames, args.size)
    before = memory_kib()["VmRSS"]
    model = load_model(args.shared / "weights" / "rife-v4.25.safetensors", device="cpu")
    print(
        f"{args.frames} frames {args.size}x{args.size} x{args.multiplier} {args.mode}, CPU, {args.threads} threads; "
        f"resident before / after loading the model: {before / KIB_PER_MIB:.1f} / "
        f"{memory_kib()['VmRSS'] / KIB_PER_MIB:.1f} MiB"
    )
    print(f"{'outputs':>7} {'done':>6} {'seconds':>9} {'VmRSS MiB':>10} {'VmHWM MiB':>10}")
    rows = run(model, frames, args.multiplier, args.mode, args.samples, functools.partial(print, flush=True))
    for line in summary(rows, args.size * args.size * 3 * 4 / 1024):
        print(line)


if __name__ == "__main__":
    main()
