"""The core: one IFNet for every RIFE 4.x layout, checked against the official implementation's outputs."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import rife.ifnet
from rife import ARCHS, CheckpointError, InvalidInputError, detect_arch, load_model, pick_scale, read_state_dict
from rife.loading import expected_layout

IMAGE_ATOL = 1e-4  # golden/README.md: images
FLOW_ATOL = 1e-3  # golden/README.md: flows (px) and mask logits


def golden_cases(golden_dir: Path) -> list[tuple[str, dict]]:
    manifest = json.loads((golden_dir / "net" / "manifest.json").read_text())
    return sorted(manifest["files"].items())


_SYNTHETIC_CACHE: dict[str, dict[str, np.ndarray]] = {}


def synthetic_tensors(synthetic, group: str) -> dict[str, torch.Tensor]:
    """Fresh tensors of the golden synthetic weights (generated once per group: hashing them is slow)."""
    if group not in _SYNTHETIC_CACHE:
        _SYNTHETIC_CACHE[group] = synthetic.synthetic_state_dict(group, seed=0)
    return {k: torch.from_numpy(v.copy()) for k, v in _SYNTHETIC_CACHE[group].items()}


def golden_weights(name: str, group: str, synthetic, real_weights: Path) -> dict[str, torch.Tensor]:
    if name.startswith("real"):
        return load_file(str(real_weights))
    state = synthetic_tensors(synthetic, group)
    if name.startswith("4.0-retry"):
        state["block1.lastconv.weight"] = state["block1.lastconv.weight"] * 2.0
    return state


GOLDEN_FILES = [
    "4.0", "4.0-retry", "4.2", "4.5", "4.6", "4.7", "4.10", "4.12-lite", "4.13", "4.14-lite", "4.15-lite", "4.20",
    "4.21", "4.22-lite", "4.25", "4.25-lite", "4.25-heavy", "4.26-heavy", "real-4.25",
]  # fmt: skip


def test_every_golden_file_is_covered(golden_dir: Path) -> None:
    assert sorted(GOLDEN_FILES) == sorted(name.removesuffix(".safetensors") for name, _ in golden_cases(golden_dir))
    assert sorted(ARCHS) == sorted(json.loads((golden_dir / "specs.json").read_text())["groups"])


@pytest.mark.parametrize("name", GOLDEN_FILES)
def test_golden_outputs(name: str, golden_dir: Path, synthetic, real_weights: Path, tmp_path: Path) -> None:
    """Weights saved to a checkpoint and loaded through load_model reproduce every stored frame, flow and mask."""
    manifest = dict(golden_cases(golden_dir))[f"{name}.safetensors"]
    group = manifest["group"]
    checkpoint = tmp_path / "model.safetensors"
    save_file(golden_weights(name, group, synthetic, real_weights), str(checkpoint))
    model = load_model(checkpoint, device="cpu")
    assert model.arch == group
    gold = load_file(str(golden_dir / "net" / f"{name}.safetensors"))
    cases = [k for k in gold if k.startswith("out_")]
    assert cases
    for key in cases:
        _, t, s = key.split("_")
        out = model.infer(gold["img0"], gold["img1"], timestep=float(t[1:]), scale=float(s[1:]))
        assert (out - gold[key]).abs().max().item() <= IMAGE_ATOL, key
    if "flow_t0.5_s1.0" in gold:
        net = model.net
        with torch.inference_mode():
            flow, mask = net.flow(net.prepare(gold["img0"]), net.prepare(gold["img1"]), torch.tensor([0.5]))
        assert (flow - gold["flow_t0.5_s1.0"]).abs().max().item() <= FLOW_ATOL
        assert (mask - gold["mask_t0.5_s1.0"]).abs().max().item() <= FLOW_ATOL


def test_batched_timesteps_match_single_calls(real_model, frames_dir: Path) -> None:
    """A batch of timesteps over one pair gives the frames of separate calls (the engine relies on it)."""
    img0, img1 = (read_png(frames_dir / "demo_pair" / f"I0_{i}.png")[None, :, 64:128, 100:196] for i in (0, 1))
    ts = torch.tensor([0.25, 0.5, 0.75])
    batched = real_model.infer(img0.expand(3, -1, -1, -1), img1.expand(3, -1, -1, -1), ts)
    for i, t in enumerate(ts.tolist()):
        assert (batched[i] - real_model.infer(img0, img1, t)[0]).abs().max() <= IMAGE_ATOL


def test_retry_rule_pads_further_when_it_fires(synthetic, golden_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """4.0/4.1 double their downscale when the rule fires; a 96x96 frame (enough for 4.0 normally) must then
    give what a frame padded to 128x128 from the start gives, not a size error."""
    state = synthetic_tensors(synthetic, "4.0")
    state["block1.lastconv.weight"] = state["block1.lastconv.weight"] * 2.0
    path = tmp_path / "retry.safetensors"
    save_file(state, str(path))
    model = load_model(path, device="cpu")
    gold = load_file(str(golden_dir / "net" / "4.0-retry.safetensors"))
    img0, img1 = (torch.nn.functional.interpolate(gold[k], size=(96, 96), mode="bilinear") for k in ("img0", "img1"))
    fired: list[bool] = []
    original = rife.ifnet._retry_fires
    monkeypatch.setattr(rife.ifnet, "_retry_fires", lambda d_flow: fired.append(original(d_flow)) or fired[-1])
    out = model.infer(img0, img1, 0.5)
    assert fired[0], "the rule must fire on these weights, else this test proves nothing"
    padded = model.infer(*(torch.nn.functional.pad(x, (0, 32, 0, 32), mode="replicate") for x in (img0, img1)), 0.5)
    assert out.shape == (1, 3, 96, 96)
    assert (out - padded[..., :96, :96]).abs().max() <= IMAGE_ATOL


def test_layouts_match_specs(golden_dir: Path) -> None:
    """The network built from each descriptor has exactly the official key order and shapes."""
    groups = json.loads((golden_dir / "specs.json").read_text())["groups"]
    for name, group in groups.items():
        layout = expected_layout(name)
        assert list(layout.items()) == [(k, tuple(shape)) for k, shape in group["keys"]], name


@pytest.mark.parametrize("group", sorted(ARCHS))
def test_detection_from_state_dict_alone(group: str, synthetic) -> None:
    state = synthetic_tensors(synthetic, group)
    assert detect_arch(state) is ARCHS[group]


@pytest.mark.parametrize("container", ["module_prefix", "training_extras", "state_dict_wrapper"])
@pytest.mark.parametrize("suffix", [".pkl", ".pth", ".safetensors"])
@pytest.mark.parametrize("group", ["4.0", "4.14-lite", "4.25-lite"])
def test_detection_across_containers(group: str, suffix: str, container: str, synthetic, tmp_path: Path) -> None:
    state = synthetic_tensors(synthetic, group)
    if container == "module_prefix":
        state = {f"module.{k}": v for k, v in state.items()}
    elif container == "training_extras":
        state = {**state, "teacher.conv0.0.weight": torch.zeros(3, 3), "caltime.0.weight": torch.zeros(2)}
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({"state_dict": state, "epoch": 3} if container == "state_dict_wrapper" else state, path)
    model = load_model(path, device="cpu")
    assert model.arch == group
    assert model.source == path


def test_real_pkl_with_training_tensors_loads_like_safetensors(real_pkl: Path, real_weights: Path) -> None:
    pkl, safe = read_state_dict(real_pkl), read_state_dict(real_weights)
    assert sorted(pkl) == sorted(safe)
    assert all(torch.equal(pkl[k], safe[k]) for k in pkl)


def test_directory_layout_prefers_flownet_pkl(real_pkl: Path, tmp_path: Path) -> None:
    folder = tmp_path / "rifev4_25"
    folder.mkdir()
    (folder / "flownet.pkl").symlink_to(real_pkl)
    (folder / "notes.txt").write_text("not a checkpoint")
    model = load_model(folder, device="cpu")
    assert model.arch == "4.25" and model.source == folder / "flownet.pkl"


def test_wrong_layouts_name_the_closest_group(synthetic, tmp_path: Path) -> None:
    state = synthetic_tensors(synthetic, "4.13")
    del state["block2.convblock.3.beta"]
    with pytest.raises(CheckpointError, match=r"looks like RIFE 4\.13.*missing.*block2\.convblock\.3\.beta"):
        detect_arch(state)
    state = synthetic_tensors(synthetic, "4.25")
    state["block4.lastconv.0.weight"] = torch.zeros(32, 40, 4, 4)
    with pytest.raises(
        CheckpointError, match=r"layout 4\.25\b.*wrong shape.*block4\.lastconv\.0\.weight \[32, 40, 4, 4\]"
    ):
        detect_arch(state)
    path = tmp_path / "unrelated.pth"
    torch.save(torch.nn.Linear(4, 2).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"unrelated\.pth is not a RIFE 4\.x checkpoint.*weight"):
        load_model(path, device="cpu")


class _Payload:
    """Unpickling this would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_malicious_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    raw = tmp_path / "flownet.pkl"
    raw.write_bytes(pickle.dumps({"block0.conv0.0.0.weight": _Payload(marker)}, protocol=2))
    zipped = tmp_path / "zipped.pth"
    torch.save({"block0.conv0.0.0.weight": _Payload(marker)}, zipped)
    for path in (raw, zipped):
        with pytest.raises(CheckpointError, match="Refused to load"):
            load_model(path, device="cpu")
    assert not marker.exists()


def read_png(path: Path) -> torch.Tensor:
    from PIL import Image

    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)


@pytest.mark.parametrize("shift", [2, 4, 6])
def test_known_shift_is_reconstructed(shift: int, real_model, frames_dir: Path) -> None:
    """Crops at x and x+2d of a real frame; the middle frame must match the crop at x+d (>= 45 dB inside)."""
    image = read_png(frames_dir / "demo_pair" / "I0_0.png")[:, 32:224]
    width, x = 256, 64
    img0 = image[None, :, :, x : x + width]
    img1 = image[None, :, :, x + 2 * shift : x + 2 * shift + width]
    truth = image[None, :, :, x + shift : x + shift + width]
    out = real_model.infer(img0, img1, 0.5)
    border = 16

    def psnr(a: torch.Tensor) -> float:
        inner = (a - truth)[..., border:-border, border:-border]
        return float(10 * torch.log10(1 / inner.pow(2).mean()))

    assert psnr(out) >= 45.0
    assert psnr(out) >= psnr((img0 + img1) / 2) + 10.0


def test_any_frame_size_is_padded_and_cropped(real_model) -> None:
    torch.manual_seed(1)
    for height, width in ((403, 721), (8, 8), (1, 1), (135, 256)):
        img0, img1 = torch.rand(1, 3, height, width), torch.rand(1, 3, height, width)
        out = real_model.infer(img0, img1, 0.5)
        assert out.shape == (1, 3, height, width)
        assert torch.isfinite(out).all()


def test_scale_changes_the_flow_resolution(real_model, frames_dir: Path) -> None:
    pair = [read_png(frames_dir / "demo_pair" / f"I0_{i}.png")[None, :, :128, :128] for i in (0, 1)]
    outs = {s: real_model.infer(*pair, 0.5, scale=s) for s in (0.25, 0.5, 1.0, 2.0, 4.0)}
    assert all(o.shape == (1, 3, 128, 128) for o in outs.values())
    assert (outs[0.5] - outs[1.0]).abs().max() > 1e-3  # a different pyramid, not a no-op
    for bad in (0.3, 0, 3.0, -1, "1", True):
        with pytest.raises(InvalidInputError, match="scale must be one of"):
            real_model.infer(*pair, 0.5, scale=bad)


def test_timestep_validation(real_model) -> None:
    img = torch.rand(2, 3, 32, 32)
    with pytest.raises(InvalidInputError, match="timestep"):
        real_model.infer(img, img, 1.5)
    with pytest.raises(InvalidInputError, match="timestep"):
        real_model.infer(img, img, torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(InvalidInputError, match=r"\[N,3,H,W\]"):
        real_model.infer(img[:, :1], img[:, :1], 0.5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_stays_close_to_fp32(dtype: torch.dtype, real_weights: Path, frames_dir: Path) -> None:
    if dtype == torch.float16 and not _cpu_supports_fp16_conv():
        pytest.skip("this torch build has no float16 convolution on CPU")
    pair = [read_png(frames_dir / "demo_pair" / f"I0_{i}.png")[None, :, :64, :128] for i in (0, 1)]
    reference = load_model(real_weights, device="cpu").infer(*pair, 0.5)
    model = load_model(real_weights, device="cpu", dtype=dtype)
    assert model.dtype == dtype
    out = model.infer(*pair, 0.5)
    assert out.dtype == torch.float32  # the caller's dtype, whatever the model runs in
    assert (out - reference).abs().mean() < 5e-3


def _cpu_supports_fp16_conv() -> bool:
    try:
        torch.nn.functional.conv2d(
            torch.ones(1, 1, 3, 3, dtype=torch.float16), torch.ones(1, 1, 1, 1, dtype=torch.float16)
        )
    except RuntimeError:
        return False
    return True


def test_pick_scale_follows_uhd_rule() -> None:
    assert pick_scale(720, 1280) == 1.0
    assert pick_scale(1080, 1920) == 1.0
    assert pick_scale(2160, 3840) == 0.5
    assert pick_scale(8640, 15360) == 0.25


def test_device_is_chosen_at_call_time(real_weights: Path, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert load_model(real_weights).device.type == "cpu"
