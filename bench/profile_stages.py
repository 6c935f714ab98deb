"""Where the time of a CPU run goes: a per-stage profile of the CLI's work at 1280x720.

Process stages (each timed in this process, best of ``--rounds``): start-up (a fresh ``python -c "import
rife.cli"``), model loading, PNG decode and encode of one frame (OpenCV, as the CLI does). Network stages: one
in-between on one thread under ``torch.profiler``, self CPU time per operator grouped into convolutions, warps
(grid_sample), resizes, copies/concatenation and element-wise work, for fp32 and bf16.

    python bench/profile_stages.py --frames FOLDER_OF_720P_PNGS [--rounds 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from rife import interpolate, load_model  # noqa: E402
from rife.allocator import reuse_freed_memory  # noqa: E402

WEIGHTS = REPO.parent / "shared" / "weights" / "rife-v4.25.safetensors"
GROUPS = {  # operator name fragments -> stage
    "convolution": ("conv", "mkldnn_convolution", "_convolution"),
    "warp (grid_sample)": ("grid_sampler",),
    "resize / pool": ("upsample", "avg_pool", "pixel_shuffle"),
    "copy / cat / pad / index": ("copy_", "cat", "pad", "index_select", "contiguous", "clone", "to_copy", "empty"),
    "element-wise": ("add", "mul", "leaky_relu", "prelu", "sigmoid", "lerp", "clamp", "addcdiv", "div", "sub", "fill"),
}


def best_of(rounds: int, action) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def process_stages(frames: list[Path], weights: Path, rounds: int) -> dict[str, float]:
    import cv2

    image = cv2.imread(str(frames[0]), cv2.IMREAD_UNCHANGED)
    startup = [sys.executable, "-c", "import rife.cli"]
    return {
        "start-up (python + import rife.cli)": best_of(rounds, lambda: subprocess.run(startup, check=True, cwd=REPO)),
        "model loading": best_of(rounds, lambda: load_model(weights, device="cpu")),
        "PNG decode, one frame": best_of(rounds, lambda: cv2.imread(str(frames[0]), cv2.IMREAD_UNCHANGED)),
        "PNG encode, one frame": best_of(rounds, lambda: cv2.imencode(".png", image)),
    }


def network_stages(clip: torch.Tensor, weights: Path, dtype: str) -> tuple[float, dict[str, float]]:
    """Wall time of one in-between on one thread and self CPU seconds per stage."""
    from torch.profiler import ProfilerActivity, profile

    model = load_model(weights, device="cpu", dtype=dtype)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        interpolate(model, clip, 2)  # warm-up
        start = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            interpolate(model, clip, 2)
        wall = time.perf_counter() - start
    finally:
        torch.set_num_threads(before)
    stages = dict.fromkeys([*GROUPS, "other"], 0.0)
    for event in prof.key_averages():
        name = event.key.removeprefix("aten::")
        group = next((g for g, parts in GROUPS.items() if any(p in name for p in parts)), "other")
        stages[group] += event.self_cpu_time_total / 1e6
    return wall, stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=Path, required=True, help="folder with at least two 1280x720 PNG frames")
    parser.add_argument("--weights", type=Path, default=WEIGHTS)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    reuse_freed_memory()  # as the command line's process does
    import numpy as np
    from PIL import Image

    paths = sorted(args.frames.glob("*.png"))[:2]
    clip = torch.from_numpy(np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])).float() / 255
    print(f"| process stage | seconds (best of {args.rounds}) |\n|---|---|")
    for name, seconds in process_stages(paths, args.weights, args.rounds).items():
        print(f"| {name} | {seconds:.3f} |")
    results = {dtype: network_stages(clip, args.weights, dtype) for dtype in ("fp32", "bf16")}
    print("\n| one 720p in-between, 1 thread | " + " | ".join(f"{d} s | {d} %" for d in results) + " |")
    print("|---|" + "---|---|" * len(results))
    for stage in [*GROUPS, "other"]:
        cells = []
        for _, stages in results.values():
            total = sum(stages.values())
            cells += [f"{stages[stage]:.3f}", f"{100 * stages[stage] / total:.0f} %"]
        print(f"| {stage} | " + " | ".join(cells) + " |")
    print("| **wall time** | " + " | ".join(f"**{wall:.3f}** | " for wall, _ in results.values()) + "")


if __name__ == "__main__":
    main()
