"""Measure RIFE's peak working memory per in-between against the frame's pixel count (the basis of the VRAM
request the ComfyUI nodes send to ComfyUI's memory manager, :func:`rife.vram.working_memory`).

Method (CPU, Linux): every configuration runs in a fresh child process with glibc's dynamic mmap threshold pinned
(``MALLOC_MMAP_THRESHOLD_=65536``), so every tensor buffer is its own mapping and is returned to the system when
freed: resident memory then tracks live tensor memory. The child loads the real 4.25 weights, runs the engine once
to warm up (oneDNN caches, the warp grid), resets the peak-resident counter (``echo 5 > /proc/self/clear_refs``),
runs :func:`rife.interpolate` on two random frames with ``multiplier = batch + 1`` and ``batch_size = batch`` (one
model call computing ``batch`` in-betweens, one thread: no parallel CPU workers, as on a GPU) and reports
``VmHWM - VmRSS(before) - output bytes``: the memory the run needed beyond its input and output, which on a GPU is
the activations, prepared anchors and warp grid.

The fit is ``bytes = P * (fixed + per_inbetween * batch)`` per precision and scale, P = padded pixel count;
the script prints the coefficients, the worst relative error of the fit, and the ratio of
:func:`rife.vram.working_memory` to each measurement (>= 1: the nodes never ask for less than was measured).

    python bench/vram_estimate.py [--shared ../shared] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZES = ((256, 256), (512, 512), (544, 960), (704, 1280))  # (H, W); 544 is padded to 576
BATCHES = (1, 2, 4)
SCALE_SIZES = ((256, 256),)

CHILD = r"""
import json, sys, torch
sys.path.insert(0, {repo!r})
from rife import interpolate, load_model
torch.set_num_threads(1)

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

height, width, batch, dtype, scale = {height}, {width}, {batch}, {dtype!r}, {scale}
model = load_model({weights!r}, device="cpu", dtype=dtype)
frames = torch.rand(2, height, width, 3, generator=torch.Generator().manual_seed(0))
interpolate(model, frames, batch + 1, scale, batch_size=batch)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status("VmRSS")
out = interpolate(model, frames, batch + 1, scale, batch_size=batch)
print(json.dumps({{"peak": status("VmHWM") - before - out.numel() * out.element_size()}}))
"""


def measure(weights: Path, height: int, width: int, batch: int, dtype: str, scale: float) -> int:
    code = CHILD.format(
        repo=str(REPO), height=height, width=width, batch=batch, dtype=dtype, scale=scale, weights=str(weights)
    )
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["peak"]


def synthetic_checkpoint(shared: Path, arch: str) -> Path:
    """Deterministic synthetic weights of layout ``arch`` (memory depends on shapes only) in a temporary file."""
    import tempfile

    import torch
    from safetensors.torch import save_file

    sys.path.insert(0, str(shared / "golden"))
    import synthetic_weights

    path = Path(tempfile.mkdtemp()) / f"rife-{arch}.safetensors"
    state = synthetic_weights.synthetic_state_dict(arch, 0)
    save_file({key: torch.from_numpy(value) for key, value in state.items()}, str(path))
    return path


def fit(rows: list[tuple[int, int, int]]) -> tuple[float, float]:
    """Least squares of bytes/P = fixed + per_inbetween * batch over rows (pixels, batch, bytes)."""
    xs = [b for _p, b, _m in rows]
    ys = [m / p for p, _b, m in rows]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum((x - mean_x) ** 2 for x in xs)
    return mean_y - slope * mean_x, slope


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--quick", action="store_true", help="two sizes, fp32 at scale 1.0 only")
    parser.add_argument(
        "--arch", default="4.25", help="layout to measure; other than 4.25: synthetic weights (shared/golden)"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    import torch

    weights = args.shared / "weights" / "rife-v4.25.safetensors"
    if args.arch != "4.25":
        weights = synthetic_checkpoint(args.shared, args.arch)

    from rife.arch import ARCHS
    from rife.vram import working_memory

    quick = args.quick or args.arch != "4.25"  # other layouts: fp32 at scale 1.0, the two small sizes
    sizes = SIZES[:2] if quick else SIZES
    configs = [(h, w, b, d, 1.0) for d in (("fp32",) if quick else ("fp32", "bf16")) for h, w in sizes for b in BATCHES]
    if not quick:
        configs += [(h, w, b, "fp32", s) for s in (0.25, 0.5, 2.0, 4.0) for h, w in SCALE_SIZES for b in BATCHES[:2]]
    results: dict[tuple[str, float], list[tuple[int, int, int]]] = {}
    print(f"{'size':>10} {'dtype':>5} {'scale':>5} {'batch':>5} {'MiB':>8} {'B/px':>7} {'estimate/measured':>18}")
    for height, width, batch, dtype, scale in configs:
        peak = measure(weights, height, width, batch, dtype, scale)
        pixels = -(-height // 64) * 64 * (-(-width // 64) * 64)  # the padded frame the network sees
        estimate = working_memory(
            height,
            width,
            batch=batch,
            dtype=getattr(torch, {"fp32": "float32", "bf16": "bfloat16"}[dtype]),
            scale=scale,
            arch=ARCHS[args.arch],
        )
        results.setdefault((dtype, scale), []).append((pixels, batch, peak))
        print(
            f"{width:>5}x{height:<4} {dtype:>5} {scale:>5} {batch:>5} {peak / 2**20:8.1f} {peak / pixels:7.1f} "
            f"{estimate / peak:18.2f}"
        )
    for (dtype, scale), rows in results.items():
        fixed, per = fit(rows)
        worst = max(abs(p * (fixed + per * b) - m) / m for p, b, m in rows)
        print(
            f"fit {dtype} scale {scale}: {fixed:.1f} + {per:.1f} * batch bytes per padded pixel "
            f"(worst relative error {worst:.1%})"
        )


if __name__ == "__main__":
    main()
