"""GPU benchmark: frames/s and peak memory of the engine against a naive per-pair official loop, per size,
multiplier and precision, plus each precision's PSNR against fp32. Prints one markdown table.

The clip is a synthetic moving texture (smooth noise panning 6 px and zooming slightly per frame) made on the
device, so no files are needed besides the weights. "naive" is bench/bench_engine.py's official forward run once
per in-between (encoder and everything recomputed, list + cat), what other packs do; "ours" is
:func:`rife.interpolate` with its defaults (cross-pair batches of 4 on CUDA). Each configuration runs once to
warm up and ``--repeat`` times timed (best shown). PSNR: the lowest over the in-betweens, ours in that precision
against ours in fp32; "max diff" is ours against naive in the same precision.

Full run (about 2-3 minutes on one modern GPU): sizes 1280x720 and 1920x1080, x2 and x4, fp16/bf16/fp32.
``--device cpu --quick`` runs a tiny configuration in seconds (the test suite does).

    python bench/gpu_bench.py [--device cuda] [--frames 9] [--repeat 2] [--quick]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from bench.bench_engine import naive_interpolate  # noqa: E402
from rife import interpolate, load_model  # noqa: E402

WEIGHTS = REPO.parent / "shared" / "weights" / "rife-v4.25.safetensors"
SIZES = [(1280, 720), (1920, 1080)]
QUICK_SIZES = [(96, 64)]
MULTIPLIERS = [2, 4]
PRECISIONS = ["fp32", "fp16", "bf16"]


def moving_clip(frames: int, width: int, height: int, device: torch.device) -> torch.Tensor:
    """[B,H,W,3] float32: smooth colour noise panning right 6 px and zooming 1 % per frame."""
    generator = torch.Generator().manual_seed(0)
    noise = torch.rand(1, 3, height // 8 + 8, width // 8 + 8, generator=generator)
    texture = F.interpolate(noise, size=(height * 2, width * 2), mode="bicubic", align_corners=False).clamp(0, 1)
    out = []
    for i in range(frames):
        zoom = 1.0 + 0.01 * i
        theta = torch.tensor([[[1 / zoom, 0.0, 6.0 * i / width], [0.0, 1 / zoom, 0.0]]])
        grid = F.affine_grid(theta * 0.5, [1, 3, height, width], align_corners=False)
        out.append(F.grid_sample(texture, grid, mode="bilinear", align_corners=False)[0].permute(1, 2, 0))
    return torch.stack(out).contiguous().to(device)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def run(method: str, model, clip: torch.Tensor, multiplier: int, repeat: int) -> tuple[float, float, torch.Tensor]:
    """Best frames/s, peak device memory (MiB, NaN where the device cannot tell) and the output."""
    device = clip.device

    def once() -> torch.Tensor:
        if method == "ours":
            return interpolate(model, clip, multiplier)
        with torch.inference_mode():
            chw = naive_interpolate(model, clip.to(model.dtype), multiplier)
        return chw.float().clamp(0, 1)

    out = once()  # warm-up (kernels, allocator)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    best = math.inf
    for _ in range(repeat):
        synchronize(device)
        start = time.perf_counter()
        out = once()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else math.nan
    return out.shape[0] / best, peak, out


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.float() - b.float()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--weights", type=Path, default=WEIGHTS)
    parser.add_argument("--frames", type=int, default=9, help="input frames (frames-1 pairs)")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per configuration (best shown)")
    parser.add_argument("--quick", action="store_true", help="one tiny size, x2: checks that everything runs")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    sizes, multipliers = (QUICK_SIZES, [2]) if args.quick else (SIZES, MULTIPLIERS)
    frames, repeat = (2, 1) if args.quick else (args.frames, args.repeat)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"device {name}, torch {torch.__version__}, {frames} frames of a moving texture, weights {args.weights.name}")
    print("| size | x | precision | naive fps | ours fps | speed-up | naive MiB | ours MiB | PSNR vs fp32 | max diff |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for width, height in sizes:
        clip = moving_clip(frames, width, height, device)
        for multiplier in multipliers:
            reference = None
            for precision in PRECISIONS:
                model = load_model(args.weights, device=device, dtype=precision)
                naive_fps, naive_peak, naive_out = run("naive", model, clip, multiplier, repeat)
                ours_fps, ours_peak, ours_out = run("ours", model, clip, multiplier, repeat)
                if precision == "fp32":
                    reference = ours_out
                in_betweens = torch.tensor([i % multiplier != 0 for i in range(ours_out.shape[0])])
                low = min(psnr(a, b) for a, b in zip(ours_out[in_betweens], reference[in_betweens], strict=True))
                row = {
                    "size": f"{width}x{height}", "multiplier": multiplier, "precision": precision,
                    "naive_fps": naive_fps, "ours_fps": ours_fps, "naive_mib": naive_peak, "ours_mib": ours_peak,
                    "psnr": low, "max_diff": float((ours_out - naive_out).abs().max()),
                }  # fmt: skip
                rows.append(row)
                print(
                    f"| {row['size']} | {multiplier} | {precision} | {naive_fps:.2f} | {ours_fps:.2f} | "
                    f"{ours_fps / naive_fps:.2f}x | {naive_peak:.0f} | {ours_peak:.0f} | "
                    f"{'exact' if math.isinf(low) else f'{low:.1f} dB'} | {row['max_diff']:.1e} |",
                    flush=True,
                )
                del model
    return rows


if __name__ == "__main__":
    main()
