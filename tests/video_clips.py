"""Short test clips made with PyAV: a square moving over a gradient, with a sine audio track, and what a player
sees in a video file (frames, timestamps, audio length)."""

from __future__ import annotations

from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import av
import numpy as np

SIZE = (96, 64)  # width, height: small frames keep CPU runs short
RATE = Fraction(30000, 1001)
SAMPLE_RATE = 48000


def make_clip(
    path: Path,
    frames: int,
    *,
    size: tuple[int, int] = SIZE,
    rate: Fraction = RATE,
    audio: bool = True,
    times_ms: list[int] | None = None,
    pix_fmt: str = "yuv420p",
) -> Path:
    """An H.264 clip of a bright square moving over a gradient; with ``audio`` a 440 Hz sine as long as the
    video. ``times_ms`` gives every frame its own timestamp (a variable frame rate); else frames are at ``rate``."""
    width, height = size
    ramp = np.linspace(30, 140, width, dtype=np.float32)[None, :, None]
    base = np.broadcast_to(ramp, (height, width, 3)).astype(np.uint8)
    duration = Fraction(times_ms[-1] + (times_ms[-1] - times_ms[-2]), 1000) if times_ms else frames / rate
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        if times_ms:
            video.codec_context.time_base = Fraction(1, 1000)
        sound = container.add_stream("aac", rate=SAMPLE_RATE) if audio else None
        if sound is not None:
            sound.layout = "mono"
        for index in range(frames):
            image = base.copy()
            x = (3 * index) % (width - 16)
            image[height // 4 : height // 4 + 16, x : x + 16] = (230, 200, 60)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if times_ms:
                frame.pts, frame.time_base = times_ms[index], Fraction(1, 1000)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            mux_sine(container, sound, duration)
    return path


def mux_sine(container: av.container.OutputContainer, sound: av.AudioStream, seconds: Fraction) -> None:
    """Encode a 440 Hz sine of ``seconds`` into the audio stream ``sound`` (its layout: mono or stereo)."""
    samples = round(seconds * SAMPLE_RATE)
    channels = len(sound.layout.channels)
    wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / SAMPLE_RATE)).astype(np.float32)
    for start in range(0, samples, 1024):
        planes = np.repeat(wave[None, start : start + 1024], channels, axis=0)
        chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(planes), format="fltp", layout=sound.layout.name)
        chunk.sample_rate, chunk.pts = SAMPLE_RATE, start
        container.mux(sound.encode(chunk))
    container.mux(sound.encode(None))


def inspect(path: Path) -> dict:
    """What a player sees in a video file: size, frames, frame timestamps (s), rate and audio length (s)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times, first = [], None
        for frame in container.decode(stream):
            times.append(frame.pts * stream.time_base)
            first = frame.to_ndarray(format="rgb24") if first is None else first
        audio = None
        if container.streams.audio:
            container.seek(0)
            sound = container.streams.audio[0]
            samples = sum(frame.samples for frame in container.decode(sound))
            audio = Fraction(samples, sound.rate)
    steps = {b - a for a, b in pairwise(times)}
    return {
        "size": (stream.width, stream.height),
        "frames": len(times),
        "steps": steps,
        "rate": stream.average_rate,
        "duration": len(times) * min(steps),
        "audio": audio,
        "first": first,
    }
