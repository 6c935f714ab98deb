"""ComfyUI core's checkpoint layout (``blocks.N.`` keys, fp16/bf16/fp32 safetensors) in the library and the CLI.

The test checkpoints are the real 4.25 weights (and synthetic weights of the other layouts core publishes:
4.25 lite, 4.25 heavy, 4.26 heavy) rewritten with core's key names, as Comfy-Org's files are."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoint_files import core_layout
from PIL import Image
from safetensors.torch import load_file, save_file

from rife import interpolate, load_model
from rife.layouts import is_core_layout, to_official_layout
from rife.loading import read_state_dict

REPO = Path(__file__).resolve().parents[1]
CORE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@pytest.fixture(scope="module")
def clip(frames_dir: Path) -> torch.Tensor:
    """Three real frames, 256x135 (an odd height: padding and cropping are exercised)."""
    images = [np.asarray(Image.open(frames_dir / f"{i:07d}.png").convert("RGB")) for i in range(3)]
    return torch.from_numpy(np.stack(images).astype(np.float32) / 255.0)


@pytest.mark.parametrize("precision", sorted(CORE_DTYPES))
def test_core_layout_gives_the_frames_of_the_official_layout(precision, real_weights, clip, tmp_path) -> None:
    dtype = CORE_DTYPES[precision]
    official = load_file(str(real_weights))
    path = tmp_path / "rife_v4.25.safetensors"
    save_file(core_layout(official, dtype), str(path))
    core = load_model(path, device="cpu")
    assert core.arch == "4.25"
    reference = load_model(real_weights, device="cpu")
    # the official weights rounded through the file's precision: the same network, bit for bit
    reference.net.load_state_dict({k: v.to(dtype).float() for k, v in official.items()}, strict=True)
    torch.testing.assert_close(interpolate(core, clip, 3), interpolate(reference, clip, 3), rtol=0, atol=0)
    if precision == "fp32":
        torch.testing.assert_close(
            interpolate(core, clip, 2), interpolate(load_model(real_weights, device="cpu"), clip, 2), rtol=0, atol=0
        )


@pytest.mark.parametrize("group", ["4.25-lite", "4.25-heavy", "4.26-heavy", "4.25"])
def test_every_core_variant_is_detected_from_its_weights(group, synthetic, tmp_path) -> None:
    state = {k: torch.from_numpy(v) for k, v in synthetic.synthetic_state_dict(group, 0).items()}
    path = tmp_path / "frame_interpolation_model.safetensors"  # the name says nothing about the layout
    save_file(core_layout(state, torch.float16), str(path))
    assert load_model(path, device="cpu").arch == group
    assert read_state_dict(path).keys() == state.keys()


def test_conversion_touches_only_core_block_keys() -> None:
    official = {"block0.conv0.0.0.weight": 1, "encode.cnn0.weight": 2}
    assert not is_core_layout(official) and to_official_layout(official) == official
    core = {"blocks.12.lastconv.0.bias": 1, "encode.cnn0.weight": 2}
    assert to_official_layout(core) == {"block12.lastconv.0.bias": 1, "encode.cnn0.weight": 2}
    mixed = {"blocks.0.conv0.0.0.weight": 1, "block1.conv0.0.0.weight": 2}  # neither layout: left to detection
    assert to_official_layout(mixed) == mixed


def test_cli_runs_a_core_layout_checkpoint(real_weights, frames_dir, tmp_path) -> None:
    model = tmp_path / "rife_v4.25.safetensors"
    save_file(core_layout(load_file(str(real_weights)), torch.float16), str(model))
    frames = tmp_path / "in"
    frames.mkdir()
    for i in range(2):
        (frames / f"{i:07d}.png").symlink_to(frames_dir / f"{i:07d}.png")
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rife",
            "--model",
            str(model),
            "--img",
            str(frames),
            "--output",
            str(out),
            "--multi",
            "2",
            "--device",
            "cpu",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"{i:07d}.png" for i in range(3)]
