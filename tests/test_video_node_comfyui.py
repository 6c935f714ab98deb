"""RIFE Interpolate Video in the real ComfyUI (headless, CPU, real 4.25 weights).

* The example workflow on a 300-frame NTSC clip with audio: the saved file's frame count, exact frame rate and
  audio duration; and the server's peak memory over that run against the same clip through the IMAGE path
  (LoadVideo -> GetVideoComponents -> RIFEInterpolate -> CreateVideo -> SaveVideo): flat for the VIDEO node,
  growing with the clip for the IMAGE path.
* The node on a clip of odd size, one with a variable frame rate and one without audio, and a cancelled run
  that leaves no file behind.

Each test starts its own server (a fresh process, so its memory high-water mark belongs to this test alone).
"""

from __future__ import annotations

import copy
import json
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from comfyui_server import REPO, ComfyServer, comfyui

EXAMPLE = REPO / "example_workflows" / "rife_video_x2_long_clips.json"
EXAMPLE_API = REPO / "example_workflows" / "api" / "rife_video_x2_long_clips.json"
MODEL_NAME = "rife_v4.25.safetensors"
MODEL_FOLDER = "rife"
SIZE = (96, 64)  # width, height: small frames keep the CPU run short
RATE = Fraction(30000, 1001)
LONG = 300
SAMPLE_RATE = 48000
FLOAT_FRAME = SIZE[0] * SIZE[1] * 3 * 4  # bytes of one frame in an IMAGE batch (float32 RGB)


# ------------------------------------------------------------------------------------------------ clips


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
            samples = round(duration * SAMPLE_RATE)
            wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / SAMPLE_RATE)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(wave[None, start : start + 1024], format="flt", layout="mono")
                chunk.sample_rate, chunk.pts = SAMPLE_RATE, start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    return path


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
    steps = {b - a for a, b in zip(times, times[1:])}
    return {
        "size": (stream.width, stream.height),
        "frames": len(times),
        "steps": steps,
        "rate": stream.average_rate,
        "duration": len(times) * min(steps),
        "audio": audio,
        "first": first,
    }


# ------------------------------------------------------------------------------------------------ prompts


def example_prompt() -> dict:
    return json.loads(EXAMPLE_API.read_text())


def video_prompt(clip: str, **options) -> dict:
    """The example workflow on ``clip``, with node 3's inputs changed by ``options``."""
    prompt = example_prompt()
    prompt["1"]["inputs"]["file"] = clip
    prompt["3"]["inputs"].update(options)
    prompt["9"] = {"class_type": "PreviewAny", "inputs": {"source": ["3", 1]}}  # timing_info as ui text
    return prompt


def image_prompt(clip: str) -> dict:
    """The same clip and settings through ComfyUI's IMAGE path: the whole clip as a float32 batch."""
    example = example_prompt()
    settings = example["3"]["inputs"]
    return {
        "1": {"class_type": "LoadVideo", "inputs": {"file": clip}},
        "2": copy.deepcopy(example["2"]),
        "5": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "6": {
            "class_type": "RIFEInterpolate",
            "inputs": {
                "rife_model": ["2", 0],
                "images": ["5", 0],
                "multiplier": settings["multiplier"],
                "scale": settings["scale"],
                "fps_in": ["5", 2],
            },
        },
        "7": {"class_type": "CreateVideo", "inputs": {"images": ["6", 0], "fps": ["6", 1], "audio": ["5", 1]}},
        "8": {
            "class_type": "SaveVideo",
            "inputs": {"video": ["7", 0], "filename_prefix": "video/image_path", "format": "auto", "codec": "auto"},
        },
    }


def saved_video(comfy: ComfyServer, outputs: dict, node: str) -> Path:
    (path,) = comfy.saved_files(outputs[node])
    assert path.is_file(), path
    return path


def timing_info(outputs: dict) -> str:
    return outputs["9"]["text"][0]


def peak_growth_kb(comfy: ComfyServer, prompt: dict) -> tuple[dict, int]:
    """Run ``prompt``; return its outputs and how far it raised the server's peak resident memory (kB)."""
    _, before = comfy.memory_kb()
    outputs = comfy.run(prompt)
    _, after = comfy.memory_kb()
    return outputs, after - before


# ------------------------------------------------------------------------------------------------ tests


def test_example_workflow_long_clip_exact_and_flat_memory(shared_dir, real_weights, tmp_path):
    long = make_clip(tmp_path / "long.mp4", LONG)
    warmup = make_clip(tmp_path / "warmup.mp4", 12)
    source = inspect(long)
    models = {MODEL_FOLDER: {MODEL_NAME: real_weights}}
    with comfyui(shared_dir, inputs=[long, warmup], models=models) as comfy:
        converted = comfy.to_api(json.loads(EXAMPLE.read_text()))
        assert _inputs(converted) == _inputs(example_prompt()), "the API copy differs from the UI workflow"

        # both paths once on a short clip, so that what the long runs add is what depends on the clip's length
        comfy.run(video_prompt(warmup.name))
        comfy.run(image_prompt(warmup.name))
        started = time.monotonic()
        outputs, video_growth = peak_growth_kb(comfy, video_prompt(long.name))
        video_seconds = time.monotonic() - started
        saved = inspect(saved_video(comfy, outputs, "4"))
        info = timing_info(outputs)
        image_outputs, image_growth = peak_growth_kb(comfy, image_prompt(long.name))
        image_saved = inspect(saved_video(comfy, image_outputs, "8"))

    print(
        f"\n{LONG} frames {SIZE[0]}x{SIZE[1]} x2: peak RSS growth VIDEO node {video_growth / 1024:.1f} MB, "
        f"IMAGE path {image_growth / 1024:.1f} MB (one float32 frame = {FLOAT_FRAME / 1024:.0f} kB); "
        f"VIDEO node run {video_seconds:.1f} s; {info}"
    )
    assert saved["frames"] == 2 * LONG
    assert saved["steps"] == {Fraction(1001, 60000)}, "every frame lasts exactly 1001/60000 s"
    assert saved["rate"] == Fraction(60000, 1001)
    assert saved["size"] == SIZE
    assert saved["audio"] == source["audio"], "the audio is copied whole"
    assert abs(saved["audio"] - saved["duration"]) <= 1 / RATE, "audio and video end within one source frame"
    assert "600 frames" in info and "60000/1001" in info
    assert image_saved["frames"] == 2 * LONG - 1  # the IMAGE path ends on the last source frame
    # memory: the IMAGE path holds the clip (in and out) as float32; the VIDEO node a few frames
    assert image_growth * 1024 > LONG * FLOAT_FRAME, f"IMAGE path grew only {image_growth} kB"
    assert video_growth * 1024 < 8 * FLOAT_FRAME, f"VIDEO node grew {video_growth} kB over a {LONG}-frame clip"


def test_odd_size_variable_rate_silent_and_cancelled_clips(shared_dir, real_weights, tmp_path):
    odd = make_clip(tmp_path / "odd.mp4", 10, size=(95, 63), pix_fmt="yuv444p")
    times = [0, 40, 80, 120, 200, 240, 280, 400, 440, 480, 520, 560]  # 25 fps with two gaps
    variable = make_clip(tmp_path / "variable.mp4", len(times), rate=Fraction(25), times_ms=times)
    silent = make_clip(tmp_path / "silent.mp4", 10, audio=False)
    long = make_clip(tmp_path / "long.mp4", LONG)
    models = {MODEL_FOLDER: {MODEL_NAME: real_weights}}
    with comfyui(shared_dir, inputs=[odd, variable, silent, long], models=models) as comfy:
        odd_out = comfy.run(video_prompt(odd.name))
        variable_out = comfy.run(video_prompt(variable.name))
        silent_out = comfy.run(video_prompt(silent.name))
        leftovers = _cancel_midway(comfy, video_prompt(long.name, multiplier=3))
        odd_saved = inspect(saved_video(comfy, odd_out, "4"))
        variable_saved = inspect(saved_video(comfy, variable_out, "4"))
        silent_saved = inspect(saved_video(comfy, silent_out, "4"))

    # odd size: padded to even for 4:2:0 by repeating the edge, the originals kept inside
    assert odd_saved["frames"] == 20 and odd_saved["size"] == (96, 64)
    assert "odd size" in timing_info(odd_out)
    source_first = inspect(odd)["first"].astype(np.int16)
    assert np.abs(odd_saved["first"][:63, :95].astype(np.int16) - source_first).mean() < 3
    # variable rate: resampled by timestamps to a constant exact rate, same duration, audio kept
    assert "variable frame rate" in timing_info(variable_out)
    assert len(variable_saved["steps"]) == 1, "constant frame rate"
    assert variable_saved["duration"] == Fraction(600, 1000), "the source's 0.6 s"
    assert abs(variable_saved["audio"] - variable_saved["duration"]) <= Fraction(1, 25)
    # no audio: a video-only file
    assert silent_saved["frames"] == 20 and silent_saved["audio"] is None
    assert silent_saved["steps"] == {Fraction(1001, 60000)}
    assert leftovers == [], f"a cancelled run left files: {leftovers}"


def _cancel_midway(comfy: ComfyServer, prompt: dict) -> list[str]:
    """Queue ``prompt``, cancel it once it has started writing its video, and return the files it left in the
    temp folder (none expected: the half-written video is deleted)."""
    folder = comfy.run_dir / "temp" / "rife_video"
    before = set(folder.iterdir())
    prompt_id = comfy.post(prompt)
    deadline = time.monotonic() + 120
    while not any(path not in before and path.stat().st_size > 0 for path in folder.iterdir()):
        assert time.monotonic() < deadline, "the video node never started writing"
        time.sleep(0.05)
    time.sleep(1.0)
    comfy.interrupt()
    entry = comfy.wait(prompt_id)
    events = [event for event, _ in entry["status"]["messages"]]
    assert "execution_interrupted" in events, events
    return sorted(path.name for path in set(folder.iterdir()) - before)


def _inputs(prompt: dict) -> dict:
    return {node: (value["class_type"], value["inputs"]) for node, value in prompt.items()}
