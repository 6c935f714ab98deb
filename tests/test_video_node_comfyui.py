"""RIFE Interpolate Video in the real ComfyUI (0.3.64, headless, CPU, real RIFE 4.25 weights).

* The example workflow on a 300-frame NTSC clip with audio: the saved file's frame count, exact frame rate and
  audio duration; and the server's peak memory over that run against the same clip through the IMAGE path
  (LoadVideo -> GetVideoComponents -> RIFEInterpolate -> CreateVideo -> SaveVideo): flat for the VIDEO node,
  growing with the clip for the IMAGE path.
* The node on a clip of odd size, one with a variable frame rate, one without audio and one that Create Video
  made from images, and a cancelled run that leaves no file behind.

Each test starts its own server (a fresh process, so its memory high-water mark belongs to that test alone).
The install (``../shared/comfyui/install.sh``) lives in ``$COMFY_ROOT`` (default /tmp/comfy); without it these
tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import numpy as np
from comfyui_server import COMFY_DIR, COMFY_PYTHON, ComfyUI, require_comfyui
from video_clips import RATE, SIZE, inspect, make_clip

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "example_workflows" / "rife_video_x2_long_clips.json"
EXAMPLE_API = REPO / "example_workflows" / "api" / "rife_video_x2_long_clips.json"
MODEL_NAME = "rife_v4.25.safetensors"
MODEL_FOLDER = "frame_interpolation"  # where ComfyUI core and its templates keep RIFE files
LONG, WARMUP = 300, 60
FLOAT_FRAME = SIZE[0] * SIZE[1] * 3 * 4  # bytes of one frame of an IMAGE batch (float32 RGB)
# How far the server's memory may rise from the middle to the last third of the VIDEO node's 300-frame run: the
# per-frame bookkeeping (schedule, timestamps, MP4 index: ~1 kB per frame) and allocator noise (0-2 MB measured).
# Holding the output as float32 would add 14 MB over that third, holding it as uint8 3.5 MB.
VIDEO_ALLOWANCE = 3 * 2**20

# ------------------------------------------------------------------------------------------------ server


@contextmanager
def comfyui(base: Path, inputs: list[Path], weights: Path) -> Iterator[ComfyUI]:
    """A fresh ComfyUI with this pack, ``inputs`` in its input folder and the weights as ``MODEL_NAME``."""
    require_comfyui()
    for folder in ("custom_nodes", "input", "output", "temp", "user", f"models/{MODEL_FOLDER}"):
        (base / folder).mkdir(parents=True)
    (base / "custom_nodes" / "ComfyUI-RIFE").symlink_to(REPO)
    (base / "models" / MODEL_FOLDER / MODEL_NAME).symlink_to(weights)
    for clip in inputs:
        shutil.copy(clip, base / "input" / clip.name)
    server = ComfyUI(base)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def peak_kb(server: ComfyUI) -> int:
    """The server's peak resident memory so far (VmHWM, kB)."""
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])


def run_ok(server: ComfyUI, prompt: dict) -> Path:
    """Run ``prompt``; return the one video it saved."""
    result = server.run(prompt, timeout=600)
    error = result.error or {}
    assert result.status == "success", f"{error.get('exception_message')}\n{''.join(error.get('traceback', []))}"
    [[video]] = result.files.values()
    return video


def rss_kb(server: ComfyUI) -> int:
    """The server's resident memory now (VmRSS, kB)."""
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


def run_growth(server: ComfyUI, prompt: dict) -> tuple[Path, int, list[int]]:
    """Run ``prompt``; return its video, how far it raised the server's peak memory (kB), and the server's
    resident memory sampled every 50 ms while it ran (kB)."""
    before, samples, done = peak_kb(server), [], threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            samples.append(rss_kb(server))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        video = run_ok(server, prompt)
    finally:
        done.set()
        sampler.join()
    return video, peak_kb(server) - before, samples


def late_growth_kb(samples: list[int]) -> int:
    """How far memory rose from the middle third of a run to its last third (after the first third, which holds
    the probe and detection passes and the start of the working set)."""
    third = len(samples) // 3
    return max(samples[2 * third :]) - max(samples[third : 2 * third])


def logged_info(server: ComfyUI, text: str) -> str:
    """The last log line of RIFE Interpolate Video holding ``text`` (its frames, rates and notes)."""
    lines = [line for line in server.log().splitlines() if "RIFE video" in line and text in line]
    assert lines, f"no log line of RIFE Interpolate Video with {text!r}"
    return lines[-1]


# ------------------------------------------------------------------------------------------------ prompts


def example_prompt() -> dict:
    return json.loads(EXAMPLE_API.read_text())


def video_prompt(clip: str, **options) -> dict:
    """The example workflow on ``clip``, with RIFE Interpolate Video's inputs changed by ``options``."""
    prompt = example_prompt()
    prompt["1"]["inputs"]["file"] = clip
    prompt["3"]["inputs"].update(options)
    return prompt


def components_prompt(clip: str) -> dict:
    """The example workflow fed by a VIDEO that Create Video made from images (no file behind it)."""
    prompt = video_prompt(clip)
    prompt["10"] = {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}}
    prompt["11"] = {"class_type": "CreateVideo", "inputs": {"images": ["10", 0], "fps": ["10", 2], "audio": ["10", 1]}}
    prompt["3"]["inputs"]["video"] = ["11", 0]
    return prompt


def image_prompt(clip: str) -> dict:
    """The same clip and settings through ComfyUI's IMAGE path: the whole clip as a float32 batch."""
    example = example_prompt()
    settings = example["3"]["inputs"]
    interpolate = {"rife_model": ["2", 0], "images": ["5", 0], "fps_in": ["5", 2]}
    interpolate.update((name, settings[name]) for name in ("multiplier", "scale", "scene_threshold"))
    return {
        "1": {"class_type": "LoadVideo", "inputs": {"file": clip}},
        "2": copy.deepcopy(example["2"]),
        "5": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "6": {"class_type": "RIFEInterpolate", "inputs": interpolate},
        "7": {"class_type": "CreateVideo", "inputs": {"images": ["6", 0], "fps": ["6", 1], "audio": ["5", 1]}},
        "8": {"class_type": "SaveVideo", "inputs": {**example["4"]["inputs"], "video": ["7", 0]}},
    }


# ------------------------------------------------------------------------------------------------ tests


def test_example_workflow_long_clip_exact_and_flat_memory(real_weights, tmp_path):
    long = make_clip(tmp_path / "long.mp4", LONG)
    warmup = make_clip(tmp_path / "warmup.mp4", WARMUP)
    source = inspect(long)
    with comfyui(tmp_path / "comfy", [long, warmup], real_weights) as server:
        _, info = server.get("/object_info")
        assert _ui_widgets(json.loads(EXAMPLE.read_text()), info) == _api_widgets(example_prompt(), info)
        # a first run on a shorter clip fills the decoder's, encoder's and allocator's pools, so that what the
        # long run adds is what depends on the clip's length
        run_ok(server, video_prompt(warmup.name))
        started = time.monotonic()
        video, video_growth, video_samples = run_growth(server, video_prompt(long.name))
        seconds = time.monotonic() - started
        image_video, image_growth, image_samples = run_growth(server, image_prompt(long.name))
        line = logged_info(server, f"{LONG} -> {2 * LONG} frames")
        saved, image_saved = inspect(video), inspect(image_video)

    video_late, image_late = late_growth_kb(video_samples), late_growth_kb(image_samples)
    print(
        f"\n{LONG} frames {SIZE[0]}x{SIZE[1]} x2, peak RSS growth: VIDEO node {video_growth / 1024:.1f} MB, "
        f"IMAGE path {image_growth / 1024:.1f} MB (a float32 frame: {FLOAT_FRAME / 1024:.0f} kB); rise over "
        f"the last third: VIDEO {video_late / 1024:.1f} MB, IMAGE {image_late / 1024:.1f} MB; VIDEO node run "
        f"{seconds:.1f} s ({len(video_samples)} samples)\n{line}"
    )
    assert saved["frames"] == 2 * LONG
    assert saved["steps"] == {Fraction(1001, 60000)}, "every frame lasts exactly 1001/60000 s"
    assert saved["rate"] == Fraction(60000, 1001)
    assert saved["size"] == SIZE
    assert saved["audio"] == source["audio"], "the audio is copied whole"
    assert abs(saved["audio"] - saved["duration"]) <= 1 / RATE, "audio and video end within one source frame"
    assert "30000/1001 -> 60000/1001 fps" in line
    assert image_saved["frames"] == 2 * LONG - 1  # the IMAGE path ends on the last source frame
    # the IMAGE path holds the clip as float32 (the source alone is LONG frames); the VIDEO node's memory stays
    # level through the clip once its working set is in place
    assert image_growth * 1024 > LONG * FLOAT_FRAME, f"IMAGE path grew only {image_growth} kB"
    assert len(video_samples) >= 30, "too few memory samples over the VIDEO node's run"
    assert video_late * 1024 < VIDEO_ALLOWANCE, f"memory rose {video_late} kB over the last third of the clip"


def test_odd_size_variable_rate_silent_created_and_cancelled_clips(real_weights, tmp_path):
    odd = make_clip(tmp_path / "odd.mp4", 10, size=(95, 63), pix_fmt="yuv444p")
    times = [0, 40, 80, 120, 200, 240, 280, 400, 440, 480, 520, 560]  # 25 fps with two gaps: 0.6 s
    variable = make_clip(tmp_path / "variable.mp4", len(times), rate=Fraction(25), times_ms=times)
    silent = make_clip(tmp_path / "silent.mp4", 10, audio=False)
    created = make_clip(tmp_path / "created.mp4", 10, rate=Fraction(25))
    long = make_clip(tmp_path / "long.mp4", LONG)
    odd_first = inspect(odd)["first"].astype(np.int16)
    with comfyui(tmp_path / "comfy", [odd, variable, silent, created, long], real_weights) as server:
        odd_saved = inspect(run_ok(server, video_prompt(odd.name)))
        odd_line = logged_info(server, "odd size")
        variable_saved = inspect(run_ok(server, video_prompt(variable.name)))
        variable_line = logged_info(server, "variable frame rate")
        silent_saved = inspect(run_ok(server, video_prompt(silent.name)))
        retimed = inspect(run_ok(server, video_prompt(silent.name, fps_out=24.0)))
        refused = {
            "scale": server.queue(video_prompt(silent.name, scale=0.75)),
            "bisect": server.queue(video_prompt(silent.name, multiplier=3, mode="bisect")),
        }
        created_saved = inspect(run_ok(server, components_prompt(created.name)))
        leftovers = _cancel_midway(server, video_prompt(long.name, multiplier=3))

    # odd size: padded to even for 4:2:0 by repeating the edge, the original frame kept inside
    assert odd_saved["frames"] == 20 and odd_saved["size"] == (96, 64), odd_line
    assert np.abs(odd_saved["first"][:63, :95].astype(np.int16) - odd_first).mean() < 3
    # variable rate: resampled by its timestamps to a constant exact rate, same duration, audio kept
    assert len(variable_saved["steps"]) == 1, "a constant frame rate"
    assert variable_saved["duration"] == Fraction(3, 5), variable_line
    assert abs(variable_saved["audio"] - variable_saved["duration"]) <= Fraction(1, 25)
    # no audio: a video-only file
    assert silent_saved["frames"] == 20 and silent_saved["audio"] is None
    assert silent_saved["steps"] == {Fraction(1001, 60000)}
    # a target frame rate instead of a multiplier: the same duration at exactly 24 fps, ceil(10 * 24 / 29.97)
    assert retimed["frames"] == 9 and retimed["steps"] == {Fraction(1, 24)}
    # a VIDEO from Create Video (images in memory): written to a temp file by ComfyUI, then interpolated
    assert created_saved["frames"] == 20 and created_saved["steps"] == {Fraction(1, 50)}
    assert created_saved["audio"] is not None
    assert leftovers == [], f"the cancelled run left files: {leftovers}"
    # options the node cannot run are refused when the prompt is queued, with the library's message
    for option, message in (("scale", "scale must be one of"), ("bisect", "power of two")):
        status, body = refused[option]
        assert status == 400 and message in body["node_errors"]["3"]["errors"][0]["details"], body


def test_video_held_in_memory_is_read_through_a_temp_file(real_weights, tmp_path):
    """A VIDEO without a file (``VideoFromFile(BytesIO)``, as ComfyUI's API nodes return) called in ComfyUI's
    own Python: the node writes it to a temp file, interpolates it, and deletes that copy."""
    require_comfyui()
    clip = make_clip(tmp_path / "clip.mp4", 6)
    base = tmp_path / "comfy"
    (base / "models" / MODEL_FOLDER).mkdir(parents=True)
    (base / "models" / MODEL_FOLDER / MODEL_NAME).symlink_to(real_weights)
    probe = [str(COMFY_PYTHON), str(REPO / "tests" / "video_node_probe.py"), str(REPO), str(base), MODEL_NAME]
    run = subprocess.run([*probe, str(clip)], cwd=COMFY_DIR, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["frames"] == 12 and result["rate"] == "60000/1001", result
    output = Path(result["output"])
    assert result["temp_files"] == [f"rife_video/{output.name}"], "only the output is left in the temp folder"


def _cancel_midway(server: ComfyUI, prompt: dict) -> list[str]:
    """Run ``prompt``, cancel it once it is writing its video, and return the files it left in the temp folder
    (none expected: the half-written video is deleted)."""
    folder = server.base / "temp" / "rife_video"
    before = set(folder.iterdir())
    results = []
    runner = threading.Thread(target=lambda: results.append(server.run(prompt, timeout=600)))
    runner.start()
    deadline = time.monotonic() + 120
    while not any(path not in before and path.stat().st_size > 0 for path in folder.iterdir()):
        assert time.monotonic() < deadline and runner.is_alive(), "the video node never started writing"
        time.sleep(0.05)
    time.sleep(1.0)
    server.post("/interrupt", {})
    runner.join()
    [result] = results
    assert result.status == "error" and result.error is None, "interrupted (not an execution error)"
    return sorted(path.name for path in set(folder.iterdir()) - before)


def _ui_widgets(workflow: dict, info: dict) -> dict:
    """Node type -> widget values of a UI workflow, by input name (what the frontend would queue)."""
    widgets = {}
    for node in workflow["nodes"]:
        if node["type"] in info:
            names = _widget_names(info[node["type"]])
            values = [value for value in node["widgets_values"] if value not in ("image", "video")]
            widgets[node["type"]] = dict(zip(names, values, strict=True))
    return widgets


def _api_widgets(prompt: dict, info: dict) -> dict:
    return {
        node["class_type"]: {name: node["inputs"][name] for name in _widget_names(info[node["class_type"]])}
        for node in prompt.values()
    }


def _widget_names(node_info: dict) -> list[str]:
    specs = {**node_info["input"]["required"], **node_info["input"].get("optional", {})}
    order = node_info["input_order"]["required"] + node_info["input_order"].get("optional", [])
    return [name for name in order if isinstance(specs[name][0], list) or specs[name][0] in _WIDGET_TYPES]


_WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
