"""The pack inside a real ComfyUI (0.3.64, headless, CPU), one server for the whole module.

Every example workflow (its API copy; VideoHelperSuite nodes swapped for ComfyUI's own video nodes) runs on a
real clip with the real RIFE 4.25 weights, once with the weights in the official layout in ``models/rife`` and
once converted to ComfyUI core's layout in ``models/frame_interpolation`` (fp16, as Comfy-Org publishes it, and
fp32); frame counts, sizes and rates of the saved videos are checked, and the fp32 core-layout frames must equal
the official ones. Prompt-time validation, the templates and hostile checkpoints go through the same server.

The install (``../shared/comfyui/install.sh``, run by ``.ci/run``) lives in ``$COMFY_ROOT`` (default /tmp/comfy);
without it these tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from checkpoint_files import core_layout, int8_checkpoint, self_referencing_pickle
from comfyui_server import ComfyUI, PromptTimeout, require_comfyui
from PIL import Image
from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "example_workflows"
PACK = "ComfyUI-RIFE"
NODES = ("LoadRIFEModel", "RIFEInterpolate", "RIFERecursiveInterpolate", "RIFEFrameRate")
CLIP_FRAMES, CLIP_FPS, CLIP_SIZE = 4, 16, (256, 134)  # (width, height): even for H.264, not a multiple of 64
LAYOUTS = {  # how the weights are installed -> the loader's ckpt_name
    "official": "flownet_v4.25.pkl",  # models/rife, the original flownet.pkl (with training tensors)
    "core-fp16": "rife_v4.25.safetensors",  # models/frame_interpolation, as Comfy-Org publishes it
    "core-fp32": "rife_v4.25_fp32.safetensors",
}
EXPECTED = {  # 4 frames at 16 fps in -> frames and frame rate of the saved video
    "rife_basic_x2": (7, 32),
    "rife_recursive_x4": (13, 64),
    "rife_16fps_to_48fps_video_combine": (10, 48),
    "rife_framerate_16_to_24": (5, 24),
}
HOSTILE = ("int8.safetensors", "selfref.pkl")  # right shapes in int8; a pickle whose dict refers to itself


@pytest.fixture(scope="session")  # session: other modules' tests on this worker must not restart it
def comfyui(tmp_path_factory, real_pkl: Path, real_weights: Path, frames_dir: Path):
    """A running ComfyUI with the pack, the weights in both layouts, hostile checkpoints and a 4-frame clip."""
    require_comfyui()
    base = tmp_path_factory.mktemp("comfyui")
    for folder in ("custom_nodes", "input", "output", "temp", "user", "models/rife", "models/frame_interpolation"):
        (base / folder).mkdir(parents=True)
    (base / "custom_nodes" / PACK).symlink_to(REPO)
    rife, core = base / "models" / "rife", base / "models" / "frame_interpolation"
    (rife / LAYOUTS["official"]).symlink_to(real_pkl)
    official = load_file(str(real_weights))
    save_file(core_layout(official, torch.float16), str(core / LAYOUTS["core-fp16"]))
    save_file(core_layout(official, torch.float32), str(core / LAYOUTS["core-fp32"]))
    self_referencing_pickle(rife / "selfref.pkl")
    int8_checkpoint(official, rife / "int8.safetensors")
    _write_clip(frames_dir, base / "input" / "input.mp4")
    server = ComfyUI(base)
    server.start()
    yield server
    server.stop()


def _write_clip(frames_dir: Path, path: Path) -> None:
    """The first frames of the shared real clip, cropped to an even size, as an H.264 mp4 at 16 fps."""
    width, height = CLIP_SIZE
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=CLIP_FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "10"}
        for i in range(CLIP_FRAMES):
            image = np.asarray(Image.open(frames_dir / f"{i:07d}.png").convert("RGB"))[:height, :width]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
        container.mux(stream.encode())


def _decode(path: Path) -> tuple[np.ndarray, Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(stream)])
        return frames, Fraction(stream.average_rate)


def core_video_nodes(prompt: dict) -> dict:
    """``prompt`` with VideoHelperSuite's loader and writer replaced by ComfyUI's own video nodes (same links)."""
    prompt = json.loads(json.dumps(prompt))
    slots = {}  # VHS_LoadVideo output slot -> GetVideoComponents slot (images 0, audio 2 -> 1)
    for node_id, node in list(prompt.items()):
        if node["class_type"] == "VHS_LoadVideo":
            prompt[f"{node_id}_file"] = {"class_type": "LoadVideo", "inputs": {"file": node["inputs"]["video"]}}
            prompt[node_id] = {"class_type": "GetVideoComponents", "inputs": {"video": [f"{node_id}_file", 0]}}
            slots[node_id] = {0: 0, 2: 1}
        elif node["class_type"] == "VHS_VideoCombine":
            inputs = node["inputs"]
            create = {"images": inputs["images"], "fps": inputs["frame_rate"]}
            if "audio" in inputs:
                create["audio"] = inputs["audio"]
            prompt[f"{node_id}_video"] = {"class_type": "CreateVideo", "inputs": create}
            prompt[node_id] = {
                "class_type": "SaveVideo",
                "inputs": {"video": [f"{node_id}_video", 0], "filename_prefix": inputs["filename_prefix"],
                           "format": "auto", "codec": "auto"},
            }  # fmt: skip
    for node in prompt.values():
        for name, value in node["inputs"].items():
            if isinstance(value, list) and value[0] in slots:
                node["inputs"][name] = [value[0], slots[value[0]][value[1]]]
    return prompt


def workflow(name: str, ckpt_name: str) -> dict:
    prompt = core_video_nodes(json.loads((WORKFLOWS / "api" / f"{name}.json").read_text()))
    for node in prompt.values():
        if node["class_type"] == "LoadRIFEModel":
            node["inputs"]["ckpt_name"] = ckpt_name
    return prompt


# ------------------------------------------------------------------------------------------------ the pack


def test_pack_loads_as_v3_nodes_with_core_files_listed(comfyui: ComfyUI) -> None:
    pack_dir = comfyui.base / "custom_nodes" / PACK
    assert f"Cannot import {pack_dir}" not in comfyui.log() and f"(IMPORT FAILED): {pack_dir}" not in comfyui.log()
    _, info = comfyui.get("/object_info")
    for name in NODES:
        assert info[name]["python_module"] == f"custom_nodes.{PACK}"
        assert info[name]["category"] == "video/frame interpolation"
    loader = info["LoadRIFEModel"]["input"]["required"]["ckpt_name"]
    options = loader[1]["options"] if loader[0] == "COMBO" else loader[0]
    # official file from models/rife, core's files under their plain names, hostile files listed too (they are
    # refused when loaded), downloadable official names last
    assert options[:5] == ["flownet_v4.25.pkl", "int8.safetensors", "selfref.pkl", *list(LAYOUTS.values())[1:]]
    assert loader[1]["default"] == "rife_v4.25.safetensors"
    assert info["LoadRIFEModel"]["output_name"] == ["rife_model", "version"]
    for name in NODES[1:]:
        inputs = info[name]["input"]
        scale = inputs["required"]["scale"]
        assert scale[0] == "FLOAT" and scale[1]["default"] == 0.0 and "auto" in scale[1]["tooltip"]
        assert list(inputs["optional"])[-1] == "ensemble" and inputs["optional"]["ensemble"][1]["default"] is False
        assert inputs["optional"]["scene_threshold"][1]["default"] == 0.15
        assert info[name]["output_name"] == ["images", "fps_out", "timing_info"]
        assert all(spec[1].get("tooltip") for section in inputs.values() for spec in section.values())
    # saved workflows keep loading: the V1 input names in their widget order
    assert info["RIFERecursiveInterpolate"]["input_order"] == {
        "required": ["rife_model", "images", "multiplier", "scale"],
        "optional": ["mode", "fps_in", "loop", "scene_threshold", "dedupe", "batch_size", "ensemble"],
    }
    assert info["RIFEFrameRate"]["input_order"]["required"] == ["rife_model", "images", "fps_in", "fps_out", "scale"]


def test_example_workflows_are_templates_with_model_downloads(comfyui: ComfyUI) -> None:
    _, templates = comfyui.get("/workflow_templates")
    assert sorted(templates[PACK]) == sorted([*EXPECTED, "rife_video_x2_long_clips"])  # not the API copies in api/
    for name in EXPECTED:
        ui = json.loads((WORKFLOWS / f"{name}.json").read_text())
        [loader] = [node for node in ui["nodes"] if node["type"] == "LoadRIFEModel"]
        assert loader["widgets_values"][0] == "rife_v4.25.safetensors"
        assert loader["properties"]["models"] == [
            {
                "name": "rife_v4.25.safetensors",
                "url": "https://huggingface.co/Comfy-Org/frame_interpolation/resolve/main/frame_interpolation/"
                "rife_v4.25.safetensors",
                "directory": "frame_interpolation",
            }
        ]


# ------------------------------------------------------------------------------------------------ workflows

_frames: dict[tuple[str, str], np.ndarray] = {}


@pytest.mark.parametrize("name", sorted(EXPECTED))  # fastest-varying: one model load per layout (ComfyUI's cache)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_example_workflow_runs(comfyui: ComfyUI, name: str, layout: str) -> None:
    result = comfyui.run(workflow(name, LAYOUTS[layout]), timeout=180)
    assert result.status == "success", result.error
    [videos] = result.files.values()
    [video] = videos
    frames, rate = _decode(video)
    count, fps = EXPECTED[name]
    assert frames.shape == (count, CLIP_SIZE[1], CLIP_SIZE[0], 3)
    assert rate == fps
    _frames[name, layout] = frames
    if layout == "core-fp32":  # the same weights in core's layout: the same frames
        np.testing.assert_array_equal(frames, _frames[name, "official"])
    if layout == "core-fp16":  # fp16 weights: the same to the eye (after H.264: PSNR > 35 dB)
        error = np.mean((frames.astype(float) - _frames[name, "official"]) ** 2)
        assert 10 * np.log10(255**2 / error) > 35


# ------------------------------------------------------------------------------------------------ validation


def _interpolate_prompt(**inputs) -> dict:
    prompt = workflow("rife_basic_x2", LAYOUTS["official"])
    node = next(node for node in prompt.values() if node["class_type"] == "RIFEInterpolate")
    node["inputs"].update(inputs)
    return prompt


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"scale": 0.75}, "scale - scale must be one of 0.25, 0.5, 1.0, 2.0, 4.0"),
        ({"scale": 3.0}, "scale - scale must be one of"),
    ],
)
def test_unsupported_scale_is_refused_when_the_prompt_is_queued(comfyui: ComfyUI, inputs, message) -> None:
    status, body = comfyui.queue(_interpolate_prompt(**inputs))
    assert status == 400
    [error] = body["node_errors"]["4"]["errors"]
    assert error["type"] == "custom_validation_failed" and message in error["details"]
    _, queue = comfyui.get("/queue")
    assert queue == {"queue_running": [], "queue_pending": []}  # nothing ran


def test_bisect_multiplier_is_refused_when_the_prompt_is_queued(comfyui: ComfyUI) -> None:
    prompt = workflow("rife_recursive_x4", LAYOUTS["official"])
    node = next(node for node in prompt.values() if node["class_type"] == "RIFERecursiveInterpolate")
    node["inputs"].update(multiplier=3, mode="bisect")
    status, body = comfyui.queue(prompt)
    assert status == 400
    [node_errors] = body["node_errors"].values()
    assert "power of two" in node_errors["errors"][0]["details"]


def test_saved_workflows_with_an_explicit_scale_still_run(comfyui: ComfyUI) -> None:
    result = comfyui.run(_interpolate_prompt(scale=1.0, scene_threshold=0.12), timeout=180)  # the old examples
    assert result.status == "success", result.error


@pytest.mark.parametrize("node_type", ["RIFEInterpolate", "RIFEInterpolateVideo"])
def test_ensemble_on_a_layout_without_it_is_one_clear_node_error(comfyui: ComfyUI, node_type: str) -> None:
    """RIFE 4.25 has no official ensemble: the node fails with the library's message, before any frame."""
    if node_type == "RIFEInterpolate":
        prompt = _interpolate_prompt(ensemble=True)
    else:
        prompt = {
            "1": {"class_type": "LoadRIFEModel", "inputs": {"ckpt_name": LAYOUTS["official"]}},
            "2": {"class_type": "CreateVideo", "inputs": {"images": ["3", 0], "fps": 16.0}},
            "3": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 2, "color": 0}},
            "4": {
                "class_type": node_type,
                "inputs": {"rife_model": ["1", 0], "video": ["2", 0], "multiplier": 2, "scale": 0.0, "ensemble": True},
            },
            "5": {"class_type": "PreviewAny", "inputs": {"source": ["4", 1]}},
        }
    result = comfyui.run(prompt, timeout=180)
    assert result.status == "error"
    assert result.error["node_type"] == node_type
    assert result.error["exception_type"].endswith("InvalidInputError")
    message = result.error["exception_message"]
    assert "has no ensemble mode" in message and "4.20, 4.24" in message and "Turn ensemble off" in message


# ------------------------------------------------------------------------------------------------ hostile files


@pytest.mark.parametrize("ckpt_name", HOSTILE)
def test_hostile_checkpoint_ends_in_a_clean_node_error(comfyui: ComfyUI, ckpt_name: str) -> None:
    if not comfyui.alive:
        pytest.fail("the server died in an earlier test")
    prompt = {
        "1": {"class_type": "LoadRIFEModel", "inputs": {"ckpt_name": ckpt_name}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}},
    }
    try:
        result = comfyui.run(prompt, timeout=30)
    except PromptTimeout:
        comfyui.stop()  # a hung node thread cannot be interrupted: nothing later may use this server
        raise
    assert result.status == "error"
    assert result.error["node_type"] == "LoadRIFEModel"
    assert result.error["exception_type"].endswith("CheckpointError")
    assert ckpt_name in result.error["exception_message"]
    assert "Traceback" not in result.error["exception_message"]
