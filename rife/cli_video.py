"""The command line's video path: ``--video FILE`` and/or a video ``--output`` (see :mod:`rife.video`).

Kept apart from :mod:`rife.cli` so the folder path stays as it is; this module only turns the parsed flags
into one :func:`rife.video.interpolate_video` call and reports progress and the result.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from . import cli, timing
from .model import load_model
from .validate import format_fps
from .video import VideoInfo, interpolate_video


def video_command(args: argparse.Namespace, *, device: torch.device | None, options: cli._Options) -> int:
    """Interpolate ``--video`` (or ``--img`` into a video ``--output``) with the checked ``options``; returns
    the exit status."""
    source = args.video if args.video is not None else args.img
    mode, scale, multiplier = options.mode, options.scale, options.multiplier
    model = load_model(
        args.model if args.model is not None else cli._default_model(),
        device=device,
        dtype=torch.float16 if args.fp16 else torch.float32,
    )
    bar: cli._ProgressBar | None = None

    def on_start(info: VideoInfo, timed: timing.TimedPlan, notes: list[str]) -> None:
        nonlocal bar
        kind = "frames" if info.path.is_dir() else f"{info.codec} {info.pix_fmt}"
        how = f"x{multiplier} {mode}" if multiplier is not None else f"{format_fps(options.fps_out)} fps"
        print(
            f"{model.spec.label} ({model.source}) on {model.device}, {model.dtype}: {info.num_frames} frames "
            f"{info.width}x{info.height} {kind} at {format_fps(info.fps)} fps -> {how}, scale {scale:g}"
        )
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        bar = cli._ProgressBar(1, sys.stderr)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.update(done)

    start = time.perf_counter()
    try:
        result = interpolate_video(
            model,
            source,
            args.output,
            multiplier=multiplier,
            fps_out=options.fps_out,
            fps_in=options.fps_in,
            mode=mode,
            scale=scale,
            loop=args.loop,
            scene_threshold=options.scene_threshold,
            dedupe=args.dedupe,
            ensemble=options.ensemble,
            codec=args.codec,
            crf=18 if args.crf is None else args.crf,
            overwrite=args.overwrite,
            progress=progress,
            on_start=on_start,
        )
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        left = "no output file was written" if cli._is_video_name(args.output) else "the frames written are complete"
        return cli._fail(f"cancelled: {left}", cli.EXIT_CANCELLED)
    finally:
        if bar is not None:
            bar.close()
    elapsed = max(time.perf_counter() - start, 1e-9)
    parts = [
        f"{result.frames_in} frames in -> {result.frames_out} frames out in {elapsed:.1f} s "
        f"({result.frames_out / elapsed:.2f} frames/s), written to {result.output}",
        f"{format_fps(result.fps_out)} fps, {float(result.duration):.3f} s, {result.pix_fmt}",
    ]
    if result.cuts:
        parts.append("scene cuts after frame " + ", ".join(str(i) for i in result.cuts))
    if result.held:
        parts.append("held frames retimed " + ", ".join(f"{a}-{b - 1}" for a, b in result.held))
    print("; ".join(parts))
    return 0
