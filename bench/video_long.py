"""Video I/O on a long clip: is memory flat, and what does reading/writing video cost next to a folder?

Makes a clip (default 1000 frames of 256x144 at 30000/1001 fps, H.264 with an AAC track) and the same frames
as a folder of PNGs, then, alternating over ``--rounds``:

* **folder**: ``python -m rife --img FRAMES --output OUT_DIR`` (PNG in, PNG out), in this process;
* **video**: ``python -m rife --video CLIP --output OUT.mp4`` (decode, interpolate, encode, audio copied);

and reports the best and median wall time of each and the video path's overhead (the issue's target is
<= 10 %). A separate instrumented run of :func:`rife.video.interpolate_video` samples resident memory
(``VmRSS`` from /proc/self/status) every 5 % of the outputs: flat means the last sample is no higher than the
first ones by more than a frame or two (one 256x144 RGB float32 frame is 432 KiB).

    python bench/video_long.py [--frames 1000] [--width 256] [--height 144] [--multi 2] [--rounds 2] [--no-memory]

Needs ../shared/weights/rife-v4.25.safetensors (or --model), PyAV and OpenCV. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import resource
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import av
import cv2

from rife import cli, load_model
from rife.video import interpolate_video, probe_video

RATE = Fraction(30000, 1001)


def rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def texture_frame(index: int, texture: np.ndarray, width: int, height: int) -> np.ndarray:
    """A window of a large smooth texture panning 3 px/frame right and 1 px/frame down (real motion)."""
    x, y = (3 * index) % (texture.shape[1] - width), index % (texture.shape[0] - height)
    return texture[y : y + height, x : x + width]


def make_inputs(folder: Path, frames: int, width: int, height: int) -> tuple[Path, Path]:
    """The clip (H.264 crf 16 + AAC) and the frames it decodes to, as PNGs (same pixels for both paths)."""
    rng = np.random.default_rng(0)
    coarse = rng.random((height // 4, width // 2, 3)).astype(np.float32)  # texture 2x the frame height, 4x its width
    texture = cv2.resize(coarse, (width * 4, height * 2), interpolation=cv2.INTER_CUBIC)
    texture = (np.clip(texture, 0, 1) * 255).astype(np.uint8)
    clip = folder / "clip.mp4"
    with av.open(str(clip), "w") as container:
        video = container.add_stream("libx264", rate=RATE, options={"crf": "16"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = container.add_stream("aac", rate=48000)
        sound.layout = "stereo"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(texture_frame(index, texture, width, height)))
            frame.pts = index
            container.mux(video.encode(frame.reformat(format="yuv420p")))
        container.mux(video.encode(None))
        samples = round(frames / RATE * 48000)
        for start in range(0, samples, 1024):
            count = min(1024, samples - start)
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(start, start + count) / 48000)).astype(np.float32)
            chunk = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
            chunk.sample_rate, chunk.pts = 48000, start
            container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))
    pngs = folder / "frames"
    pngs.mkdir()
    with av.open(str(clip)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            cv2.imwrite(str(pngs / f"{index:07d}.png"), frame.to_ndarray(format="bgr24"))
    return clip, pngs


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed_cli(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one in-process command (CPU time is less disturbed by other jobs on a shared
    machine; both are reported)."""
    start, cpu = time.perf_counter(), cpu_seconds()
    with contextlib.redirect_stdout(io.StringIO()):
        status = cli.main(argv)
    if status != 0:
        raise SystemExit(f"the command failed ({status}): {' '.join(argv)}")
    return time.perf_counter() - start, cpu_seconds() - cpu


def memory_profile(model_path: Path, clip: Path, output: Path, multi: int) -> list[tuple[int, int]]:
    """(outputs done, RSS KiB) every 5 % of a video run."""
    model = load_model(model_path, device="cpu")
    samples: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        if done == 1 or done * 20 // total != (done - 1) * 20 // total:
            samples.append((done, rss_kib()))

    interpolate_video(model, clip, output, multiplier=multi, overwrite=True, progress=progress)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--height", type=int, default=144)
    parser.add_argument("--multi", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-memory", action="store_true", help="skip the instrumented memory run")
    shared = Path(__file__).resolve().parents[2] / "shared"
    parser.add_argument("--model", type=Path, default=shared / "weights" / "rife-v4.25.safetensors")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rife-video-bench-") as tmp:
        folder = Path(tmp)
        clip, pngs = make_inputs(folder, args.frames, args.width, args.height)
        start = time.perf_counter()
        info = probe_video(clip)
        probe_s = time.perf_counter() - start
        size = f"{info.width}x{info.height}"
        print(f"clip: {info.num_frames} frames {size} at {info.fps} fps, first pass {probe_s:.2f} s")
        common = ["--model", str(args.model), "--multi", str(args.multi), "--overwrite"]
        runs: dict[str, list[tuple[float, float]]] = {"folder": [], "video": []}
        for round_index in range(args.rounds):
            runs["folder"].append(timed_cli([*common, "--img", str(pngs), "--output", str(folder / "out")]))
            runs["video"].append(timed_cli([*common, "--video", str(clip), "--output", str(folder / "out.mp4")]))
            (fw, fc), (vw, vc) = runs["folder"][-1], runs["video"][-1]
            print(
                f"round {round_index + 1}: folder {fw:.1f} s wall {fc:.1f} s CPU, video {vw:.1f} s wall {vc:.1f} s CPU"
            )
        for measure, column in (("wall", 0), ("CPU", 1)):
            for kind, pick in (("best", min), ("median", statistics.median)):
                folder_s = pick(run[column] for run in runs["folder"])
                video_s = pick(run[column] for run in runs["video"])
                print(
                    f"{kind} {measure}: folder {folder_s:.1f} s, video {video_s:.1f} s, ratio {video_s / folder_s:.3f}"
                )
        if args.no_memory:
            return
        samples = memory_profile(args.model, clip, folder / "mem.mp4", args.multi)
        print("RSS over the video run (outputs done: MiB): " + ", ".join(f"{d}: {k / 1024:.0f}" for d, k in samples))
        early = max(k for d, k in samples[: len(samples) // 4 + 1])
        print(
            f"growth from the first quarter's highest sample to the end: {(samples[-1][1] - early) / 1024:+.1f} MiB; "
            f"peak {max(k for _, k in samples) / 1024:.0f} MiB"
        )


if __name__ == "__main__":
    main()
