"""Measure the scene-cut and held-frame scores of rife.timing on real frames and print the numbers behind the
default thresholds (copied into README.md).

    python bench/timing_thresholds.py [SHARED_DIR]

Data: ``frames/0000000..0000011.png`` (a bar scene, small motion) and ``frames/demo_pair`` (a street scene, a car
moving ~24 px). Ordinary pairs are the real consecutive pairs plus harder ones made from the same shot (longer
gaps, camera pans, zooms, exposure jumps); cuts join the two scenes, and the hardest cuts change the framing
inside one scene; held frames are duplicates of real frames, exact or re-encoded (JPEG, noise).
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rife.timing import (
    DEFAULT_DEDUPE_THRESHOLD,
    DEFAULT_SCENE_THRESHOLD,
    detect_held_frames,
    detect_scene_cuts,
    held_score,
    scene_score,
    thumbnail,
)

Pair = tuple[torch.Tensor, torch.Tensor]


def load(path: Path) -> torch.Tensor:
    """PNG as [H,W,3] float32 0..1."""
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0)


def resize(frame: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return F.interpolate(frame.permute(2, 0, 1)[None], size=(height, width), mode="area")[0].permute(1, 2, 0)


def fit(frame: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Centre-crop ``frame`` to the aspect ratio of height x width, then resize to it."""
    frame_h, frame_w = frame.shape[:2]
    if frame_h * width > frame_w * height:
        crop_h = round(frame_w * height / width)
        top = (frame_h - crop_h) // 2
        frame = frame[top : top + crop_h]
    else:
        crop_w = round(frame_h * width / height)
        left = (frame_w - crop_w) // 2
        frame = frame[:, left : left + crop_w]
    return resize(frame, height, width)


def zoom(frame: torch.Tensor, factor: float, top: float = 0.5, left: float = 0.5) -> torch.Tensor:
    """Crop 1/factor of ``frame`` (its centre at the given fractions) and scale it back to full size."""
    height, width = frame.shape[:2]
    crop_h, crop_w = round(height / factor), round(width / factor)
    y = min(max(round(top * height - crop_h / 2), 0), height - crop_h)
    x = min(max(round(left * width - crop_w / 2), 0), width - crop_w)
    return resize(frame[y : y + crop_h, x : x + crop_w], height, width)


def jpeg(frame: torch.Tensor, quality: int) -> torch.Tensor:
    """``frame`` after a round trip through JPEG at ``quality`` (8-bit, as a video encoder would store it)."""
    buffer = io.BytesIO()
    Image.fromarray((frame.numpy() * 255).round().astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    return load(buffer)


def noisy(frame: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (frame + torch.randn(frame.shape, generator=generator) * sigma / 255).clamp(0, 1)


def scores(pairs: list[Pair], measure: Callable[[torch.Tensor, torch.Tensor], float]) -> list[float]:
    return [measure(thumbnail(a), thumbnail(b)) for a, b in pairs]


def row(name: str, values: list[float]) -> str:
    return f"| {name} | {len(values)} | {min(values):.4f} | {float(np.median(values)):.4f} | {max(values):.4f} |"


def table(title: str, groups: dict[str, list[float]]) -> None:
    print(f"\n{title}\n")
    print("| pairs | n | min | median | max |")
    print("|---|---|---|---|---|")
    for name, values in groups.items():
        print(row(name, values))


def main(shared: Path) -> None:
    frames_dir = shared / "frames"
    bar = [load(frames_dir / f"{i:07d}.png") for i in range(12)]
    street = [load(frames_dir / "demo_pair" / f"I0_{i}.png") for i in range(2)]
    height, width = bar[0].shape[:2]  # 135 x 256
    street_fit = [fit(frame, height, width) for frame in street]

    def pan(frame: torch.Tensor, shift: int, window: tuple[int, int], vertical: bool = False) -> Pair:
        win_h, win_w = window
        if vertical:
            return frame[:win_h, :win_w], frame[shift : shift + win_h, :win_w]
        return frame[:win_h, :win_w], frame[:win_h, shift : shift + win_w]

    real_pairs = [(bar[i], bar[i + 1]) for i in range(11)]
    scene_ordinary = {
        "real consecutive, bar (11)": scores(real_pairs, scene_score),
        "real consecutive, street (car ~24 px)": scores([(street[0], street[1])], scene_score),
        "same shot, gap of 2/4/8/11 frames": scores([(bar[0], bar[k]) for k in (2, 4, 8, 11)], scene_score),
        "pan 4..32 px/frame, bar and street": scores(
            [pan(bar[0], s, (135, 192)) for s in (4, 8, 16, 32)]
            + [pan(street[0], s, (135, 256)) for s in (4, 8, 16, 32)],
            scene_score,
        ),
        "whip pan 64 px/frame (1/4 of the width), bar and street": scores(
            [pan(bar[0], 64, (135, 192)), pan(street[0], 64, (135, 256))], scene_score
        ),
        "tilt 32 px/frame, street": scores([pan(street[0], 32, (135, 256), vertical=True)], scene_score),
        "zoom 1.1x and 1.25x per frame, bar": scores([(bar[0], zoom(bar[0], f)) for f in (1.1, 1.25)], scene_score),
        "exposure -10 % and -20 %, bar and street": scores(
            [(f, f * k) for f in (bar[0], street_fit[0]) for k in (0.9, 0.8)], scene_score
        ),
    }
    scene_cuts = {
        "bar -> street (every bar frame x both street frames)": scores(
            [(b, s) for b in bar for s in street_fit], scene_score
        ),
        "same scene, other framing (halves, quarters, 2x zooms)": scores(
            [
                (bar[0][:, :128], bar[0][:, 128:]),
                (bar[0], zoom(bar[0], 2.0)),
                (bar[0], zoom(bar[0], 2.0, 0.25, 0.25)),
                (street[0][:, :224], street[0][:, 224:]),
                (street[0][:128, :224], street[0][128:, 224:]),
            ],
            scene_score,
        ),
    }
    table("Scene score (min of colour-histogram distance and mean abs difference), ordinary pairs:", scene_ordinary)
    table("Scene score, cuts:", scene_cuts)

    held_duplicates = {
        "exact duplicate": scores([(f, f.clone()) for f in bar], held_score),
        **{f"JPEG q{q} vs original": scores([(f, jpeg(f, q)) for f in bar], held_score) for q in (95, 75, 50, 30)},
        "JPEG q90 vs JPEG q70 (two encodes)": scores([(jpeg(f, 90), jpeg(f, 70)) for f in bar], held_score),
        "noise sigma 1/2/4 (of 255)": scores(
            [(f, noisy(f, s, i)) for i, f in enumerate(bar) for s in (1, 2, 4)], held_score
        ),
        "street: JPEG q50 and noise 4/255": scores(
            [(street[0], jpeg(street[0], 50)), (street[0], noisy(street[0], 4, 0))], held_score
        ),
    }
    held_ordinary = {
        "real consecutive, bar (sub-pixel mean motion)": scores(real_pairs, held_score),
        "real consecutive, street": scores([(street[0], street[1])], held_score),
    }
    table("Held score (max abs grey difference of 64 px thumbnails), duplicates:", held_duplicates)
    table("Held score, real consecutive (distinct) frames:", held_ordinary)

    real = scene_ordinary["real consecutive, bar (11)"] + scene_ordinary["real consecutive, street (car ~24 px)"]
    ordinary = [v for values in scene_ordinary.values() for v in values]
    cuts = scene_cuts["bar -> street (every bar frame x both street frames)"]
    reframe = scene_cuts["same scene, other framing (halves, quarters, 2x zooms)"]
    distinct = [v for values in held_ordinary.values() for v in values]
    scene, dedupe = DEFAULT_SCENE_THRESHOLD, DEFAULT_DEDUPE_THRESHOLD
    print("\nSummary (a pair is a cut when its scene score > the threshold; a duplicate when its held score <= it)\n")
    print(
        f"- DEFAULT_SCENE_THRESHOLD = {scene}: real consecutive pairs max {max(real):.4f} ({scene / max(real):.1f}x "
        f"below); every ordinary pair incl. whip pans max {max(ordinary):.4f} ({scene / max(ordinary):.2f}x below), "
        f"flagged {sum(v > scene for v in ordinary)}/{len(ordinary)}; cuts between the scenes min {min(cuts):.4f} "
        f"({min(cuts) / scene:.2f}x above), detected {sum(v > scene for v in cuts)}/{len(cuts)}; same-scene "
        f"reframings {min(reframe):.4f}..{max(reframe):.4f}, detected {sum(v > scene for v in reframe)}/{len(reframe)}"
    )
    for name, values in held_duplicates.items():
        print(
            f"- DEFAULT_DEDUPE_THRESHOLD = {dedupe}: {name}: max {max(values):.4f}, "
            f"detected {sum(v <= dedupe for v in values)}/{len(values)}"
        )
    print(
        f"- DEFAULT_DEDUPE_THRESHOLD = {dedupe}: distinct real frames min {min(distinct):.4f} "
        f"({min(distinct) / dedupe:.2f}x above), taken as duplicates "
        f"{sum(v <= dedupe for v in distinct)}/{len(distinct)}"
    )

    joined = bar + street_fit
    print(f"\nEnd to end: bar (12) + street (2) -> detect_scene_cuts = {detect_scene_cuts(joined)} (expected [11])")
    held_clip = [bar[0], bar[1], jpeg(bar[1], 50), jpeg(bar[1], 75), bar[2], bar[3], bar[3].clone(), bar[4]]
    print(f"bar 0,1,1',1'',2,3,3,4 -> detect_held_frames = {detect_held_frames(held_clip)} (expected [(1, 4), (5, 7)])")

    big = torch.rand(1080, 1920, 3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the cost itself, not how busy the other cores are
    runs = []
    for _ in range(20):
        start = time.perf_counter()
        thumbnail(big)
        runs.append(time.perf_counter() - start)
    torch.set_num_threads(threads)
    print(
        f"thumbnail of a 1920x1080 float32 frame on one CPU thread: best of 20 {min(runs) * 1000:.1f} ms, "
        f"median {float(np.median(runs)) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    torch.set_num_threads(2)
    default = Path(os.environ.get("RIFE_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
