"""The official ``ensemble`` option: every golden ensemble case of the official code reproduced (single, batched,
through the engine), the 4.0/4.1 retry quirk under ensemble, cached encoder features, and the refusal of every
layout whose official code has no ensemble (library and CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from test_cli import make_clip, read
from test_core import IMAGE_ATOL, synthetic_tensors

from rife import ARCHS, InvalidInputError, RIFEModel, interpolate, run_plan, stream_interpolate, stream_plan
from rife.arch import ENSEMBLE_VERSIONS
from rife.cli import EXIT_USAGE, main
from rife.imageio import FrameFolder, to_image
from rife.loading import build_net
from rife.schedule import clip_plan
from rife.timing import retime

DATA = Path(__file__).resolve().parent / "data" / "ensemble"
ENSEMBLE_FILES = [
    "4.0", "4.0-retry", "4.2", "4.5", "4.6", "4.7", "4.10", "4.12-lite", "4.13", "4.14-lite", "4.15-lite", "4.20",
]  # fmt: skip
WITHOUT_ENSEMBLE = ["4.21", "4.22-lite", "4.25", "4.25-lite", "4.25-heavy", "4.26-heavy"]
# issue 15: the official code has ensemble for every 4.x up to 4.20 and for 4.24, for no other release
REFUSING_VERSIONS = {"4.21", "4.22", "4.22.lite", "4.23", "4.25", "4.25.lite", "4.25.heavy", "4.26", "4.26.heavy"}


def synthetic_model(synthetic, name: str, *, retry_factor: float = 2.0) -> RIFEModel:
    """The golden synthetic weights of ``name`` (``4.0-retry``: block 1's head scaled by ``retry_factor``)."""
    group = "4.0" if name.startswith("4.0-retry") else name
    state = synthetic_tensors(synthetic, group)
    if name.startswith("4.0-retry"):
        state["block1.lastconv.weight"] = state["block1.lastconv.weight"] * retry_factor
    return RIFEModel(build_net(state, origin=name))


def wide(image: torch.Tensor) -> torch.Tensor:
    """[1,3,64,64] -> [1,3,64,96] as tests/data/ensemble/make_reference.py builds it."""
    return torch.cat((image, image[..., :32].flip(-1)), -1)


def ensemble_cases(golden_dir: Path, name: str) -> tuple[dict[str, torch.Tensor], dict[float, list[float]]]:
    """The golden file and its cases as {scale: [timesteps]}."""
    gold = load_file(str(golden_dir / "net-ensemble" / f"{name}.safetensors"))
    cases: dict[float, list[float]] = {}
    for key in sorted(k for k in gold if k.startswith("ens_")):
        _, t, s = key.split("_")
        cases.setdefault(float(s[1:]), []).append(float(t[1:]))
    assert cases
    return gold, cases


def test_the_ensemble_layouts_are_those_of_the_official_code(golden_dir: Path, synthetic) -> None:
    manifest = json.loads((golden_dir / "net-ensemble" / "manifest.json").read_text())
    assert sorted(ENSEMBLE_FILES) == sorted(name.removesuffix(".safetensors") for name in manifest["files"])
    assert sorted(spec.name for spec in ARCHS.values() if spec.ensemble) == sorted(
        {manifest["files"][f"{name}.safetensors"]["group"] for name in ENSEMBLE_FILES}
    )
    assert sorted(spec.name for spec in ARCHS.values() if not spec.ensemble) == sorted(WITHOUT_ENSEMBLE)
    every_version = set(synthetic.load_specs()["version_to_group"])
    assert set(ENSEMBLE_VERSIONS) == every_version - REFUSING_VERSIONS


@pytest.mark.parametrize("name", ENSEMBLE_FILES)
def test_golden_ensemble_outputs(name: str, golden_dir: Path, synthetic, tmp_path: Path) -> None:
    """Weights saved as a checkpoint and loaded by the real loader reproduce every stored ensemble frame, one
    timestep per call and all of a scale's timesteps in one batch; the plain forward is far from them."""
    from rife import load_model

    gold, cases = ensemble_cases(golden_dir, name)
    checkpoint = tmp_path / "model.safetensors"
    save_file(synthetic_model(synthetic, name).net.state_dict(), str(checkpoint))
    model = load_model(checkpoint, device="cpu")
    for scale, timesteps in cases.items():
        expected = torch.cat([gold[f"ens_t{t}_s{scale}"] for t in timesteps])
        for t, frame in zip(timesteps, expected, strict=True):
            out = model.infer(gold["img0"], gold["img1"], timestep=t, scale=scale, ensemble=True)
            assert (out[0] - frame).abs().max().item() <= IMAGE_ATOL, (t, scale)
            plain = model.infer(gold["img0"], gold["img1"], timestep=t, scale=scale)
            assert (plain[0] - frame).abs().max().item() > 0.1  # the goldens tell the two modes apart
        n = len(timesteps)
        pair = (gold["img0"].expand(n, -1, -1, -1), gold["img1"].expand(n, -1, -1, -1))
        batched = model.infer(*pair, timestep=torch.tensor(timesteps), scale=scale, ensemble=True)
        assert (batched - expected).abs().max().item() <= IMAGE_ATOL, scale


@pytest.mark.parametrize("name", ENSEMBLE_FILES)
@pytest.mark.parametrize("batch_size", [1, 3])
def test_golden_ensemble_through_the_engine(name: str, batch_size: int, golden_dir: Path, synthetic) -> None:
    """interpolate(x4) with ensemble: its in-betweens at t=0.25 and 0.5 (computed with t=0.75 in one timestep
    batch for batch_size 3) are the golden frames, clamped like every engine output."""
    gold, cases = ensemble_cases(golden_dir, name)
    model = synthetic_model(synthetic, name)
    clip = torch.cat((gold["img0"], gold["img1"])).permute(0, 2, 3, 1)  # [2,H,W,3]
    for scale, timesteps in cases.items():
        out = interpolate(model, clip, multiplier=4, scale=scale, batch_size=batch_size, ensemble=True)
        assert out.shape[0] == 5
        for t in timesteps:
            expected = gold[f"ens_t{t}_s{scale}"][0].permute(1, 2, 0).clamp(0.0, 1.0)
            assert (out[round(t * 4)] - expected).abs().max().item() <= IMAGE_ATOL, (t, scale)


def test_retime_and_streams_pass_ensemble_on(golden_dir: Path, synthetic) -> None:
    """retime, stream_interpolate and stream_plan give the same ensemble frames as interpolate (and the golden)."""
    gold, _ = ensemble_cases(golden_dir, "4.13")
    model = synthetic_model(synthetic, "4.13")
    clip = torch.cat((gold["img0"], gold["img1"])).permute(0, 2, 3, 1)
    expected = interpolate(model, clip, multiplier=2, ensemble=True)
    assert (expected[1] - gold["ens_t0.5_s1.0"][0].permute(1, 2, 0)).abs().max().item() <= IMAGE_ATOL
    results = {
        "retime": retime(model, clip, multiplier=2, ensemble=True).frames,
        "retime lazy": retime(model, list(clip), multiplier=2, ensemble=True).frames,
        "stream_interpolate": torch.stack(list(stream_interpolate(model, list(clip), 2, ensemble=True))),
        "stream_plan": torch.stack(list(stream_plan(model, list(clip), clip_plan(2, 2), ensemble=True))),
    }
    for how, frames in results.items():
        assert torch.equal(frames, expected), how


def test_the_retry_rule_reruns_block0_without_its_reversed_half(golden_dir: Path, synthetic) -> None:
    """With block 1's head x2.5 the 4.0 retry rule fires under ensemble too: block 0 runs on both pairs, then
    reruns on the forward pair only, blocks 1-3 on both; the frames equal the official code's
    (tests/data/ensemble, made by make_reference.py there). The shared 4.0-retry golden does not fire the rule
    under ensemble, so it cannot show this. Also on a 64x96 pair, where the retry pads the frames further."""
    reference = load_file(str(DATA / "4.0-retry-fires.safetensors"))
    gold, _ = ensemble_cases(golden_dir, "4.0-retry")
    model = synthetic_model(synthetic, "4.0-retry", retry_factor=2.5)
    batches: list[tuple[int, int]] = []
    hooks = [
        block.register_forward_hook(lambda module, args, out, i=i: batches.append((i, args[0].shape[0])))
        for i, block in enumerate(model.net.blocks)
    ]
    try:
        for t in (0.25, 0.5):
            batches.clear()
            out = model.infer(gold["img0"], gold["img1"], timestep=t, ensemble=True)
            assert (out - reference[f"ens_t{t}_s1.0"]).abs().max().item() <= IMAGE_ATOL, t
            assert batches == [(0, 2), (1, 2), (0, 1), (1, 2), (2, 2), (3, 2)], t
            # 64x96: the doubled scales need multiples of 64, so the frames are padded further and rerun
            batches.clear()
            out = model.infer(*(wide(gold[k]) for k in ("img0", "img1")), timestep=t, ensemble=True)
            assert (out - reference[f"wide_ens_t{t}_s1.0"]).abs().max().item() <= IMAGE_ATOL, t
            assert batches == [(0, 2), (1, 2), (0, 2), (1, 2), (0, 1), (1, 2), (2, 2), (3, 2)], t
    finally:
        for hook in hooks:
            hook.remove()


def test_the_reversed_half_reuses_each_frames_encoding(golden_dir: Path, synthetic) -> None:
    """Through the engine every source frame is encoded once, however many in-betweens and halves read it."""
    gold, _ = ensemble_cases(golden_dir, "4.13")
    model = synthetic_model(synthetic, "4.13")
    encoded: list[int] = []
    hook = model.net.encode.register_forward_hook(lambda module, args, out: encoded.append(args[0].shape[0]))
    clip = torch.cat((gold["img0"], gold["img1"], gold["img0"])).permute(0, 2, 3, 1)
    try:
        out = interpolate(model, clip, multiplier=4, batch_size=3, ensemble=True)
    finally:
        hook.remove()
    assert out.shape[0] == 9
    assert encoded == [1, 1, 1]


def test_half_precision_ensemble_stays_close(golden_dir: Path, synthetic) -> None:
    """bf16 (the CPU's half precision) runs the ensemble path and lands near the fp32 golden."""
    gold, _ = ensemble_cases(golden_dir, "4.13")
    model = synthetic_model(synthetic, "4.13").to(dtype=torch.bfloat16)
    out = model.infer(gold["img0"], gold["img1"], timestep=0.5, ensemble=True)
    assert out.dtype == torch.float32
    assert (out - gold["ens_t0.5_s1.0"]).abs().mean().item() < 0.02


# ------------------------------------------------------------------------------------------------------- refusal


class _Frames:
    """A lazy frame sequence that records every read (nothing may be read when an option is refused)."""

    def __init__(self, clip: torch.Tensor) -> None:
        self.clip, self.reads = clip, 0

    def __len__(self) -> int:
        return self.clip.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        self.reads += 1
        return self.clip[index]


def assert_refusal_message(message: str, model: RIFEModel) -> None:
    assert f"{model.spec.label} (layout {model.arch}) has no ensemble mode" in message
    supported = message.split("only for RIFE ")[1].split(". ")[0].split(", ")
    assert sorted(supported) == sorted(ENSEMBLE_VERSIONS)
    assert supported[0] == "4.0" and supported[-1] == "4.24"  # in release order
    assert "Turn ensemble off" in message


@pytest.mark.parametrize("name", WITHOUT_ENSEMBLE)
def test_layouts_without_ensemble_refuse_it_before_any_work(name: str, synthetic, monkeypatch) -> None:
    model = synthetic_model(synthetic, name)
    side = model.pad_multiple()
    clip = torch.rand(2, side, side, 3)
    pair = clip.permute(0, 3, 1, 2)[:1], clip.permute(0, 3, 1, 2)[1:]

    def no_work(*args, **kwargs):
        raise AssertionError("computed a frame although the option is refused")

    monkeypatch.setattr(model.net, "prepare", no_work)
    frames = _Frames(clip)
    calls = {
        "infer": lambda: model.infer(*pair, ensemble=True),
        "flow": lambda: model.net.flow(None, None, torch.tensor([0.5]), ensemble=True),
        "interpolate": lambda: interpolate(model, clip, ensemble=True),
        "run_plan": lambda: run_plan(model, clip, clip_plan(2, 2), ensemble=True),
        "stream_plan": lambda: stream_plan(model, frames, clip_plan(2, 2), ensemble=True),
        "stream_interpolate": lambda: stream_interpolate(model, frames, 2, ensemble=True),
        "retime": lambda: retime(model, frames, multiplier=2, ensemble=True),
    }
    for how, call in calls.items():
        with pytest.raises(InvalidInputError) as caught:
            call()  # the streams must refuse when called, not at their first frame
        assert_refusal_message(str(caught.value), model), how
    assert frames.reads == 0


@pytest.mark.parametrize("value", [1, "yes", None, torch.tensor(True)])
def test_ensemble_must_be_a_boolean(value, synthetic) -> None:
    model = synthetic_model(synthetic, "4.13")
    img = torch.rand(1, 3, 32, 32)
    with pytest.raises(InvalidInputError, match="ensemble must be True or False"):
        model.infer(img, img, ensemble=value)


# ----------------------------------------------------------------------------------------------------------- CLI


def _checkpoint(synthetic, name: str, folder: Path) -> Path:
    path = folder / f"rife-{name}.safetensors"
    save_file(synthetic_model(synthetic, name).net.state_dict(), str(path))
    return path


def test_cli_ensemble_writes_the_library_frames(tmp_path: Path, frames_dir: Path, synthetic, capsys) -> None:
    """--ensemble: the written in-betweens are the library's ensemble frames (not the plain ones)."""
    inp, out = tmp_path / "in", tmp_path / "out"
    make_clip(frames_dir, inp, count=2)
    checkpoint = _checkpoint(synthetic, "4.13", tmp_path)
    argv = ["--model", str(checkpoint), "--img", str(inp), "--output", str(out), "--ensemble", "--precision", "fp32"]
    status = main(argv)  # fp32: compared with the fp32 library below
    stdout = capsys.readouterr().out
    assert status == 0
    assert "x2 direct, ensemble" in stdout
    model = synthetic_model(synthetic, "4.13")
    folder = FrameFolder(inp)
    clip = torch.stack([folder[0], folder[1]])
    ensemble = to_image(interpolate(model, clip, ensemble=True)[1], folder.format)
    plain = to_image(interpolate(model, clip)[1], folder.format)
    written = read(out / "0000001.png")
    assert np.array_equal(written, ensemble)  # both in OpenCV order
    assert not np.array_equal(ensemble, plain)


@pytest.mark.parametrize("name", WITHOUT_ENSEMBLE)
def test_cli_refuses_ensemble_for_layouts_without_it(name: str, tmp_path: Path, frames_dir: Path, synthetic, capsys):
    """Exit status 2, one line naming the layout and the versions that have ensemble, no frame written."""
    inp, out = tmp_path / "in", tmp_path / "out"
    make_clip(frames_dir, inp, count=2)
    checkpoint = _checkpoint(synthetic, name, tmp_path)
    status = main(["--model", str(checkpoint), "--img", str(inp), "--output", str(out), "--ensemble"])
    stderr = capsys.readouterr().err
    assert status == EXIT_USAGE
    assert stderr.startswith("error: --ensemble: ") and stderr.count("\n") == 1, stderr
    assert_refusal_message(stderr, synthetic_model(synthetic, name))
    assert not out.exists() or not any(out.iterdir())
