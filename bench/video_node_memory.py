"""Peak memory of ComfyUI over clips of growing length: RIFE Interpolate Video vs. the IMAGE path.

For each path and clip length a fresh headless ComfyUI (CPU, real 4.25 weights) runs a warm-up clip through the
same path, then the clip; the server's peak resident memory (VmHWM) is read before and after. What the clip adds
to the peak is what it needed beyond the warm-up, so the table shows how each path's memory grows with the clip:

  VIDEO: LoadVideo -> RIFEInterpolateVideo -> SaveVideo (the example workflow)
  IMAGE: LoadVideo -> GetVideoComponents -> RIFEInterpolate -> CreateVideo -> SaveVideo

Run from the repository root (needs ../shared and the ComfyUI of ../shared/comfyui/install.sh):
  /work/venv/bin/python bench/video_node_memory.py --size 256x144 --frames 100,300,600
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from test_video_node_comfyui import comfyui, image_prompt, peak_kb, run_ok, video_prompt  # noqa: E402
from video_clips import make_clip  # noqa: E402

PATHS = {"VIDEO": video_prompt, "IMAGE": image_prompt}


def measure(path: str, clip: Path, warmup: Path, shared: Path) -> tuple[float, float]:
    """(peak growth in MB, seconds) of ``clip`` through ``path`` after a warm-up run, on a fresh server."""
    weights = shared / "weights" / "rife-v4.25.safetensors"
    with tempfile.TemporaryDirectory() as base, comfyui(Path(base), [warmup, clip], weights) as server:
        run_ok(server, PATHS[path](warmup.name))
        before = peak_kb(server)
        started = time.monotonic()
        run_ok(server, PATHS[path](clip.name))
        seconds = time.monotonic() - started
        after = peak_kb(server)
    print(f"{path} {clip.name}: peak +{(after - before) / 1024:.1f} MB in {seconds:.1f} s", flush=True)
    return (after - before) / 1024, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="256x144", help="frame size WxH (default 256x144)")
    parser.add_argument("--frames", default="100,300,600", help="clip lengths (default 100,300,600)")
    parser.add_argument("--warmup", type=int, default=60, help="frames of the warm-up clip (default 60)")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    lengths = [int(v) for v in args.frames.split(",")]
    float_frame_mb = width * height * 3 * 4 / 2**20
    with tempfile.TemporaryDirectory() as folder:
        warmup = make_clip(Path(folder) / "warmup.mp4", args.warmup, size=(width, height))
        clips = [make_clip(Path(folder) / f"clip{n}.mp4", n, size=(width, height)) for n in lengths]
        results = {path: [measure(path, clip, warmup, args.shared) for clip in clips] for path in PATHS}
    print(f"\n{width}x{height}, x2, one float32 frame = {float_frame_mb:.2f} MB; peak growth over the warm-up's")
    print("| path | frames | peak growth (MB) | in float32 frames | run (s) |")
    print("|---|---|---|---|---|")
    for path, rows in results.items():
        for (growth, seconds), frames in zip(rows, lengths, strict=True):
            print(f"| {path} | {frames} | {growth:.1f} | {growth / float_frame_mb:.1f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
