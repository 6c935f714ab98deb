"""Measure which padding mode loses least quality against the official zero padding on real frames.

Two measurements with the real 4.25 weights (../shared):
1. clip: frames i and i+2 of the real 256x135 clip (padded to 256x192) interpolated at t=0.5 against the real
   frame i+1 (PSNR over the frame and over the 16-px band next to the padded edge);
2. context: odd-size crops of the demo pair; the reference is the same crop cut out of a run on a larger window,
   where the network sees real pixels instead of padding (error against that reference).

    python bench/padding.py [--shared ../shared]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import rife.ifnet as rife_ifnet

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from rife import load_model


def read(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a - b) ** 2).mean().clamp_min(1e-12)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = load_model(args.shared / "weights" / "rife-v4.25.safetensors", device="cpu")
    clip = [read(p) for p in sorted((args.shared / "frames").glob("*.png"))]
    pair = [read(args.shared / "frames" / "demo_pair" / f"I0_{i}.png") for i in (0, 1)]
    print(f"{'mode':10} {'clip PSNR':>10} {'edge band':>10} {'context max err':>16} {'context PSNR':>13}")
    for mode in ("constant", "replicate", "reflect"):
        rife_ifnet.PAD_MODE = mode
        whole, band = [], []
        for i in range(len(clip) - 2):
            out = model.infer(clip[i][None], clip[i + 2][None], 0.5)[0]
            whole.append(psnr(out, clip[i + 1]))
            band.append(psnr(out[:, -16:], clip[i + 1][:, -16:]))
        errors, scores = [], []
        for top, left, height, width in ((40, 50, 131, 197), (10, 100, 101, 263), (60, 20, 150, 301)):
            big = model.infer(pair[0][None, :, :, :], pair[1][None, :, :, :], 0.5)[0]
            crop = model.infer(
                pair[0][None, :, top : top + height, left : left + width],
                pair[1][None, :, top : top + height, left : left + width],
                0.5,
            )[0]
            reference = big[:, top : top + height, left : left + width]
            errors.append(float((crop - reference).abs().max()))
            scores.append(psnr(crop, reference))
        print(f"{mode:10} {np.mean(whole):10.2f} {np.mean(band):10.2f} {max(errors):16.4f} {np.mean(scores):13.2f}")


if __name__ == "__main__":
    main()
