"""The CPU bf16 decision: speed of a 720p in-between and PSNR of every in-between against fp32.

PSNR is computed per output in-between (8-bit range 0..1, peak 1) against the fp32 run, on the shared real clip
(12 frames 256x135 x4), the demo pair (448x256 x8, large motion) and the 8 frames upscaled to 1280x720 x4.
Speed: one 720p in-between on one thread and on all threads, fp32 and bf16 alternating ``--rounds`` times
(best of each shown). Only meaningful on a CPU with native bf16 (the script says which).

    python bench/precision.py [--rounds 3] [--weights ../shared/weights/rife-v4.25.safetensors]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from rife import interpolate, load_model  # noqa: E402
from rife.model import cpu_has_native_bf16  # noqa: E402


def read_clip(paths: list[Path], size: tuple[int, int] | None = None) -> torch.Tensor:
    import numpy as np
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in paths]
    if size is not None:
        images = [image.resize(size, Image.BICUBIC) for image in images]
    return torch.from_numpy(np.stack([np.asarray(image) for image in images])).float() / 255.0


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def quality(weights: Path, clip: torch.Tensor, multiplier: int) -> tuple[float, float, float, int]:
    """Lowest and mean PSNR of the in-betweens (bf16 vs fp32), max abs difference, and 8-bit values changed."""
    outs = [interpolate(load_model(weights, device="cpu", dtype=d), clip, multiplier) for d in ("fp32", "bf16")]
    mask = torch.tensor([i % multiplier != 0 for i in range(outs[0].shape[0])])
    ref, low = outs[0][mask], outs[1][mask]
    values = [psnr(r, q) for r, q in zip(ref, low, strict=True)]
    changed = int(((ref * 255).round() != (low * 255).round()).sum())
    return min(values), sum(values) / len(values), float((ref - low).abs().max()), changed


def seconds_per_in_between(model, clip: torch.Tensor, threads: int) -> float:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        interpolate(model, clip[:2], 2)
        return time.perf_counter() - start
    finally:
        torch.set_num_threads(before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=REPO.parent / "shared" / "weights" / "rife-v4.25.safetensors")
    parser.add_argument("--frames", type=Path, default=REPO.parent / "shared" / "frames")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    threads = torch.get_num_threads()
    print(f"native bf16 on this CPU: {cpu_has_native_bf16()}, torch {torch.__version__}, {threads} threads")
    frames = sorted(args.frames.glob("0*.png"))
    clips = {
        "real clip 256x135 x4": (read_clip(frames), 4),
        "demo pair 448x256 x8": (read_clip(sorted((args.frames / "demo_pair").glob("*.png"))), 8),
        "8 frames at 1280x720 x4": (read_clip(frames[:8], (1280, 720)), 4),
    }
    print(f"{'clip':<26} {'min PSNR':>9} {'mean PSNR':>9} {'max abs':>8} {'8-bit values changed':>21}")
    for name, (clip, multiplier) in clips.items():
        low, mean, worst, changed = quality(args.weights, clip, multiplier)
        total = clip[0].numel() * (clip.shape[0] - 1) * (multiplier - 1)
        print(f"{name:<26} {low:8.1f}  {mean:8.1f}  {worst:8.4f} {changed:>10} of {total}")
    clip = clips["8 frames at 1280x720 x4"][0]
    models = {d: load_model(args.weights, device="cpu", dtype=d) for d in ("fp32", "bf16")}
    threads = sorted({1, torch.get_num_threads()})
    times = {(d, n): [] for d in models for n in threads}
    for model in models.values():
        seconds_per_in_between(model, clip, 1)  # warm-up
    for _ in range(args.rounds):
        for n in threads:
            for dtype, model in models.items():
                times[dtype, n].append(seconds_per_in_between(model, clip, n))
    for n in threads:
        fp32, bf16 = (min(times[d, n]) for d in models)
        print(f"720p in-between, {n} thread(s): fp32 {fp32:.3f} s, bf16 {bf16:.3f} s -> bf16 {fp32 / bf16:.2f}x faster")


if __name__ == "__main__":
    main()
