"""Cost of the official ensemble option: in-betweens per second through the engine with and without it.

Ensemble runs every block on the forward and the reversed pair (one block call on a batch twice as large) and
averages them; the encoder and block 0's input resize still run once per source frame (PreparedFrame). The
layouts use the golden synthetic weights (speed does not depend on the weight values; the only real weights at
hand, 4.25, have no ensemble). Real frames resized to each size; plain and ensemble alternate round by round in
one process and the best round of each is reported (shared machines vary by +-10 %), with the ratio. Peak
memory of one run per mode is measured in a fresh subprocess each (CPU: peak RSS, VmHWM; CUDA: peak allocated).

    python bench/bench_ensemble.py [--rounds 3] [--layouts 4.13,4.6] [--sizes 640x360,1280x720] [--multi 2]
        [--device cpu] [--dtype fp32] [--golden ../shared/golden] [--frames ../shared/frames]
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
NUM_FRAMES = 4


def make_clip(frames_dir: Path, width: int, height: int) -> torch.Tensor:
    """NUM_FRAMES real frames resized to width x height ([B,H,W,3] float32)."""
    import numpy as np
    from PIL import Image

    paths = sorted(frames_dir.glob("*.png"))[:NUM_FRAMES]
    images = [np.asarray(Image.open(p).convert("RGB").resize((width, height), Image.BICUBIC)) for p in paths]
    return torch.from_numpy(np.stack(images)).float() / 255.0


def synthetic_model(golden: Path, layout: str, device: str, dtype: str):
    from rife.loading import build_net
    from rife.model import RIFEModel

    sys.path.insert(0, str(golden))
    from synthetic_weights import synthetic_state_dict

    state = {k: torch.from_numpy(v) for k, v in synthetic_state_dict(layout, seed=0).items()}
    return RIFEModel(build_net(state, origin=f"synthetic {layout}")).to(device=device, dtype=dtype)


def timed_run(model, clip: torch.Tensor, multiplier: int, ensemble: bool) -> float:
    """Seconds for one interpolate() over the clip."""
    from rife import interpolate

    if model.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    interpolate(model, clip, multiplier=multiplier, ensemble=ensemble)
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def peak_mib(model) -> float:
    if model.device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_in_subprocess(args: argparse.Namespace, layout: str, size: str, ensemble: bool) -> float:
    command = [sys.executable, __file__, "--peak-of", "ensemble" if ensemble else "plain", "--layouts", layout]
    command += ["--sizes", size, "--multi", str(args.multi), "--device", args.device, "--dtype", args.dtype]
    command += ["--golden", str(args.golden), "--frames", str(args.frames)]
    return float(subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--layouts", default="4.13,4.6")
    parser.add_argument("--sizes", default="640x360,1280x720")
    parser.add_argument("--multi", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--golden", type=Path, default=REPO.parent / "shared" / "golden")
    parser.add_argument("--frames", type=Path, default=REPO.parent / "shared" / "frames")
    parser.add_argument("--peak-of", choices=("plain", "ensemble"), help=argparse.SUPPRESS)  # internal: one run
    args = parser.parse_args()
    if args.peak_of:
        model = synthetic_model(args.golden, args.layouts, args.device, args.dtype)
        width, height = map(int, args.sizes.split("x"))
        timed_run(model, make_clip(args.frames, width, height), args.multi, args.peak_of == "ensemble")
        print(f"{peak_mib(model):.1f}")
        return

    print(f"torch {torch.__version__}, {args.device} {args.dtype}, {torch.get_num_threads()} threads, "
          f"{NUM_FRAMES} frames x{args.multi}, best of {args.rounds} rounds")  # fmt: skip
    print("| layout | size | plain in-betweens/s | ensemble in-betweens/s | ensemble time / plain time "
          "| peak MiB plain | peak MiB ensemble |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    in_betweens = (NUM_FRAMES - 1) * (args.multi - 1)
    for layout in args.layouts.split(","):
        model = synthetic_model(args.golden, layout, args.device, args.dtype)
        for size in args.sizes.split(","):
            width, height = map(int, size.split("x"))
            clip = make_clip(args.frames, width, height)
            timed_run(model, clip[:2], 2, True)  # warm-up (allocator, oneDNN kernels)
            best = {False: float("inf"), True: float("inf")}
            for _ in range(args.rounds):
                for ensemble in (False, True):
                    best[ensemble] = min(best[ensemble], timed_run(model, clip, args.multi, ensemble))
            plain, ens = in_betweens / best[False], in_betweens / best[True]
            peaks = [peak_in_subprocess(args, layout, size, ensemble) for ensemble in (False, True)]
            print(
                f"| {layout} | {size} | {plain:.2f} | {ens:.2f} | {best[True] / best[False]:.2f} "
                f"| {peaks[0]:.0f} | {peaks[1]:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
