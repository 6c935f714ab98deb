"""Throughput and peak memory of the engine against a naive per-in-between loop (CPU, fp32).

The naive loop is what other packs do: for every in-between it pads both frames, runs the encoder on both,
and runs the official forward pass structure (build each block's input at full resolution with torch.cat,
then resize it; warp everything at full resolution; the official ConvTranspose2d heads), then collects the
frames in a list and torch.cat's them. It runs with torch's default threads, the engine with its own settings.
Both use the same weights and the same blocks; the outputs are compared (max abs difference).

Each measurement runs in a fresh subprocess so that peak RSS (VmHWM) belongs to it alone. Shared 2-core machines
vary by +-10 % from run to run, so every case runs ``--repeat`` times, naive and ours alternating; the table shows
each method's best throughput and its highest peak RSS.

    python bench/bench_engine.py [--repeat 3] [--cases 1280x720x4,640x360x2]
        [--weights ../shared/weights/rife-v4.25.safetensors] [--frames ../shared/frames]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing
CASES = [(1280, 720, 4), (640, 360, 2), (640, 360, 4), (640, 360, 8)]
NUM_FRAMES = 8


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_clip(frames_dir: Path, width: int, height: int) -> torch.Tensor:
    """NUM_FRAMES real frames resized to width x height ([B,H,W,3] float32)."""
    import numpy as np
    from PIL import Image

    paths = sorted(frames_dir.glob("*.png"))[:NUM_FRAMES]
    images = [np.asarray(Image.open(p).convert("RGB").resize((width, height), Image.BICUBIC)) for p in paths]
    return torch.from_numpy(np.stack(images)).float() / 255.0


def naive_infer(model, img0: torch.Tensor, img1: torch.Tensor, t: float) -> torch.Tensor:
    """One in-between the way the official code computes it, everything recomputed per call."""
    from rife.ifnet import WarpGrid, _resize, pad_to_multiple, warp

    net, spec = model.net, model.spec
    height, width = img0.shape[-2:]
    x0, x1 = (pad_to_multiple(x, model.pad_multiple(1.0)) for x in (img0, img1))
    f0, f1 = net.encode(x0), net.encode(x1)
    grid = WarpGrid.for_size(*x0.shape[-2:], x0.device)
    t_plane = torch.full_like(x0[:, :1], t)
    flow = mask = feat = None
    warped0, warped1 = x0, x1
    for i, block in enumerate(net.blocks):
        scale = spec.scale_list[i]
        if flow is None:
            x = _resize(torch.cat((x0, x1, f0, f1, t_plane), 1), 1 / scale)
        else:
            wf0, wf1 = warp(f0, flow[:, :2], grid), warp(f1, flow[:, 2:4], grid)
            x = _resize(torch.cat((warped0, warped1, wf0, wf1, t_plane, mask, feat), 1), 1 / scale)
            x = torch.cat((x, _resize(flow, 1 / scale) * (1 / scale)), 1)
        feat = block.conv0(x)  # the official block body and head (ConvTranspose2d + PixelShuffle)
        feat = block.convblock(feat) + feat if block.outer_skip else official_body(block, feat)
        out = _resize(block.lastconv(feat), scale)
        if flow is None:
            flow, mask = out[:, :4] * scale, out[:, 4:5]
        else:
            flow, mask = flow + out[:, :4] * scale, out[:, 4:5]
        feat = out[:, 5:]
        warped0, warped1 = warp(x0, flow[:, :2], grid), warp(x1, flow[:, 2:4], grid)
    m = torch.sigmoid(mask)
    return (warped0 * m + warped1 * (1 - m))[..., :height, :width]


def official_body(block, feat: torch.Tensor) -> torch.Tensor:
    """The block's 8 convs as the official code runs them (ResConv: leaky_relu(conv(x) * beta + x))."""
    from rife.ifnet import ResConv

    for unit in block.convblock:
        if isinstance(unit, ResConv):
            feat = torch.nn.functional.leaky_relu(unit.conv(feat) * unit.beta + feat, 0.2)
        else:
            feat = unit(feat)
    return feat


def naive_interpolate(model, frames: torch.Tensor, multiplier: int) -> torch.Tensor:
    chw = frames.permute(0, 3, 1, 2)
    outputs = []
    for i in range(len(frames) - 1):
        outputs.append(chw[i : i + 1])
        for k in range(1, multiplier):
            outputs.append(naive_infer(model, chw[i : i + 1], chw[i + 1 : i + 2], k / multiplier))
    outputs.append(chw[-1:])
    return torch.cat(outputs).permute(0, 2, 3, 1)


def measure(method: str, width: int, height: int, multiplier: int, weights: Path, frames_dir: Path) -> dict:
    """Run one configuration in this process and return its numbers."""
    from rife import interpolate, load_model

    torch.set_num_threads(torch.get_num_threads())
    model = load_model(weights, device="cpu")
    frames = make_clip(frames_dir, width, height)
    input_mib = frames.numel() * 4 / 2**20
    with torch.inference_mode():
        interpolate(model, frames[:2], 2)  # warm-up of the kernels for this size
        start = time.perf_counter()
        if method == "engine":
            out = interpolate(model, frames, multiplier)
        else:
            out = naive_interpolate(model, frames, multiplier)
        seconds = time.perf_counter() - start
    generated = (len(frames) - 1) * (multiplier - 1)
    torch.save(out, f"/tmp/bench_{method}_{width}x{height}_x{multiplier}.pt")
    return {
        "method": method,
        "size": f"{width}x{height}",
        "multiplier": multiplier,
        "out_frames": out.shape[0],
        "seconds": seconds,
        "fps": out.shape[0] / seconds,
        "generated_per_s": generated / seconds,
        "peak_rss_mib": peak_rss_mib(),
        "input_mib": input_mib,
        "output_mib": out.numel() * 4 / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=REPO.parent / "shared" / "weights" / "rife-v4.25.safetensors")
    parser.add_argument("--frames", type=Path, default=REPO.parent / "shared" / "frames")
    parser.add_argument("--one", nargs=4, metavar=("METHOD", "W", "H", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--cases", default="all", help="'all' or e.g. 1280x720x4,640x360x2")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method and case (best throughput shown)")
    args = parser.parse_args()
    if args.one:
        method, width, height, multiplier = args.one
        print(json.dumps(measure(method, int(width), int(height), int(multiplier), args.weights, args.frames)))
        return
    cases = CASES if args.cases == "all" else [tuple(map(int, c.split("x"))) for c in args.cases.split(",")]
    print(f"CPU threads: {torch.get_num_threads()}, torch {torch.__version__}, {NUM_FRAMES} input frames, fp32")
    header = f"{'size':>9} {'x':>2} | {'naive fps':>9} {'ours fps':>9} {'speed-up':>8} | "
    header += f"{'naive RSS':>9} {'ours RSS':>9} {'in+out':>7} | {'max diff':>8}"
    print(header)
    for width, height, multiplier in cases:
        runs: dict[str, list[dict]] = {"naive": [], "engine": []}
        for _ in range(args.repeat):
            for method in runs:
                command = [sys.executable, __file__, "--weights", str(args.weights), "--frames", str(args.frames)]
                command += ["--one", method, str(width), str(height), str(multiplier)]
                line = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO).stdout
                runs[method].append(json.loads(line.strip().splitlines()[-1]))
        stem = f"{width}x{height}_x{multiplier}.pt"
        diff = (torch.load(f"/tmp/bench_naive_{stem}") - torch.load(f"/tmp/bench_engine_{stem}")).abs().max()
        naive_fps, ours_fps = (max(r["fps"] for r in runs[m]) for m in runs)
        naive_rss, ours_rss = (max(r["peak_rss_mib"] for r in runs[m]) for m in runs)
        ours = runs["engine"][0]
        print(
            f"{ours['size']:>9} {multiplier:>2} | {naive_fps:9.2f} {ours_fps:9.2f} {ours_fps / naive_fps:7.2f}x | "
            f"{naive_rss:8.0f}M {ours_rss:8.0f}M {ours['input_mib'] + ours['output_mib']:6.0f}M | {float(diff):8.1e}"
        )


if __name__ == "__main__":
    main()
