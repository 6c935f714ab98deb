"""Hardening II through the library: hostile checkpoint structures (bounded walks), tensors that are not real
floating-point weights, absurd frame rates, frames outside 0..1, option types (numpy scalars, non-bool
booleans), checkpoints whose suffix lies, and the command line's out-of-memory report.

Walks over hostile structure run under an alarm, so a regression fails instead of hanging the suite.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import rife
from rife import CheckpointError, InvalidInputError
from rife.schedule import clip_plan
from rife.timing import retime
from rife.validate import MAX_FPS_DENOMINATOR, format_fps, parse_fps
from tests import test_hardening
from tests.test_hardening import LazyFrames, moving_frames

model_must_not_run = test_hardening.model_must_not_run  # the fixture, shared with test_hardening.py


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail (instead of hanging) when the block runs longer than ``seconds``."""

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: an unbounded walk?")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------------------------------------ 2: hostile walks


def _self_reference() -> object:
    state: dict = {}
    state["state_dict"] = state
    return state


def _mutual_cycle() -> object:
    a: dict = {}
    b = {"model": a}
    a["state_dict"] = {"net": b}
    return a


def _cycle_after_a_real_wrapper() -> object:
    inner: dict = {"epoch": 3}
    inner["params"] = {"flownet": inner}
    return {"model_state_dict": inner}


def _deep_nesting() -> object:
    state: object = {"block0.conv0.0.0.weight": torch.zeros(1)}
    for _ in range(5000):
        state = {"state_dict": state}
    return state


def _huge_fan_out() -> object:
    return {f"k{i}": i for i in range(150_000)}


def _list_cycle() -> object:
    items: list = []
    items.append(items)
    return {"state_dict": items}


HOSTILE = {
    "self_reference": (_self_reference, "refer back to themselves"),
    "mutual_cycle": (_mutual_cycle, "refer back to themselves"),
    "cycle_after_a_real_wrapper": (_cycle_after_a_real_wrapper, "refer back to themselves"),
    "deep_nesting": (_deep_nesting, "nests its dicts deeper than 8 levels"),
    "huge_fan_out": (_huge_fan_out, "150000 entries"),
    "list_cycle": (_list_cycle, "holds no tensors"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_structures_end_in_a_clear_error(name: str, tmp_path: Path) -> None:
    build, message = HOSTILE[name]
    structure = build()
    with deadline(20):
        with pytest.raises(CheckpointError, match=message):
            rife.loading.normalize_state_dict(structure, origin="hostile")
        if name != "deep_nesting":  # 5000 levels exceed pickle's own recursion limit when saving
            path = tmp_path / f"{name}.pkl"
            torch.save(structure, path)
            with pytest.raises(CheckpointError, match=message) as error:
                rife.load_model(path, device="cpu")
            assert str(path) in str(error.value)


# ------------------------------------------------------------------------------------------------ 5: tensor types


def _int8_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: (v * 100).to(torch.int8) for k, v in state.items()}


PICKLED_KINDS = {
    "int8": lambda v: (v * 100).to(torch.int8),
    "int32": lambda v: v.to(torch.int32),
    "bool": lambda v: v > 0,
    "complex64": lambda v: v.to(torch.complex64),
    "float8_e4m3fn": lambda v: v.to(torch.float8_e4m3fn),
    "sparse": lambda v: v.to_sparse(),
    "quantized": lambda v: torch.quantize_per_tensor(v, 0.01, 0, torch.qint8),
    "meta": lambda v: torch.empty_like(v, device="meta"),
}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("kind", list(PICKLED_KINDS))
def test_non_float_tensors_in_a_pickle_are_refused(kind: str, real_weights: Path, tmp_path: Path) -> None:
    state = load_file(str(real_weights))
    key = "block0.conv0.0.0.weight"
    state[key] = PICKLED_KINDS[kind](state[key].float())
    path = tmp_path / f"{kind}.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as error:
        rife.load_model(path, device="cpu")
    message = str(error.value)
    assert str(path) in message and key in message and "floating-point" in message, message


@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8, torch.int64, torch.bool, torch.float8_e5m2])
def test_non_float_tensors_in_safetensors_are_refused(dtype: torch.dtype, real_weights: Path, tmp_path: Path) -> None:
    """All tensors converted: the right keys and shapes, so only the type check stands between it and garbage."""
    state = {k: (v.float() * 100).to(dtype) for k, v in load_file(str(real_weights)).items()}
    path = tmp_path / "converted.safetensors"
    save_file(state, str(path))
    with pytest.raises(CheckpointError) as error:
        rife.load_model(path, device="cpu")
    message = str(error.value)
    assert str(path) in message and str(dtype).removeprefix("torch.") in message, message
    assert "looks like RIFE" not in message


def test_float_precisions_still_load(real_weights: Path, tmp_path: Path) -> None:
    state = load_file(str(real_weights))
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        path = tmp_path / f"{dtype}.safetensors".replace("torch.", "")
        save_file({k: v.to(dtype) for k, v in state.items()}, str(path))
        assert rife.load_model(path, device="cpu").spec.label.startswith("RIFE 4.25")


# ------------------------------------------------------------------------------------------- 11: lying suffixes


def test_pickle_renamed_to_safetensors_loads_by_content(real_pkl: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "model.safetensors"
    renamed.write_bytes(real_pkl.read_bytes())
    assert rife.load_model(renamed, device="cpu").spec.label.startswith("RIFE 4.25")


def test_safetensors_renamed_to_pkl_loads_by_content(real_weights: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "flownet.pkl"
    renamed.write_bytes(real_weights.read_bytes())
    assert rife.load_model(renamed, device="cpu").spec.label.startswith("RIFE 4.25")


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", ".safetensors", "a web page \\(HTML\\)"),
        (b"\n  <html>rate limited</html>", ".pkl", "a web page \\(HTML\\)"),
        (b"\x1f\x8b\x08\x00" + bytes(64), ".pth", "a gzip archive: unpack it first"),
    ],
)
def test_checkpoint_that_is_something_else_says_what_it_is(
    content: bytes, suffix: str, message: str, tmp_path: Path
) -> None:
    path = tmp_path / f"model{suffix}"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as error:
        rife.read_state_dict(path)
    assert str(path) in str(error.value)


def test_truncated_zip_named_safetensors_says_it_is_a_pytorch_file(real_pkl: Path, tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(real_pkl.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"the file is a PyTorch checkpoint \(zip\) despite its .safetensors"):
        rife.read_state_dict(path)


# ------------------------------------------------------------------------------------------------ 3: frame rates

ABSURD_RATES = [
    ("1e5000", "out of range"),
    ("1e999999999", "out of range"),
    ("-1e-999999999", "out of range"),
    ("1e-5000", "out of range"),
    ("inf", "Cannot read"),
    ("-inf", "Cannot read"),
    ("nan", "Cannot read"),
    (float("inf"), "Cannot read"),
    (float("nan"), "Cannot read"),
    (1e308, "out of range"),
    (5e-324, "out of range"),
    (-24, "must be positive"),
    (0, "must be positive"),
    ("0/5", "must be positive"),
    ("30000/0", "the denominator is 0"),
    ("1/3/4", "Cannot read"),
    ("24 fps", "Cannot read"),
    ("", "Cannot read"),
    ("1" * 400, "Cannot read"),
    (10**400, "out of range"),
    (Fraction(1, 10**400), "out of range"),
    (np.float64("inf"), "Cannot read"),
    (np.bool_(True), "Cannot read"),
    (True, "Cannot read"),
    (None, "Cannot read"),
    ([24], "Cannot read"),
]


@pytest.mark.parametrize(("value", "message"), ABSURD_RATES, ids=[repr(v)[:20] for v, _ in ABSURD_RATES])
def test_absurd_frame_rates_are_one_clear_error(value, message: str) -> None:
    with deadline(5), pytest.raises(InvalidInputError, match=message) as error:
        parse_fps(value)
    assert len(str(error.value)) < 200


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("24", Fraction(24)),
        ("23.976", Fraction(2997, 125)),
        ("30000/1001", Fraction(30000, 1001)),
        (" 60000 / 1001 ", Fraction(60000, 1001)),
        ("2.5e1", Fraction(25)),
        ("29.97002997", Fraction(30000, 1001)),
        (30000 / 1001, Fraction(30000, 1001)),
        (np.int64(25), Fraction(25)),
        (np.float32(12.5), Fraction(25, 2)),
        (Fraction(10**12 + 1, 10**12), Fraction(1)),
        (Fraction(10**300 + 1, 10**299), Fraction(10)),
        ("0.001", Fraction(1, 1000)),
        ("1000000", Fraction(1000000)),
    ],
)
def test_frame_rates_are_exact_and_bounded(value, expected: Fraction) -> None:
    fps = parse_fps(value)
    assert fps == expected and fps.denominator <= MAX_FPS_DENOMINATOR


def test_long_decimal_rates_get_a_bounded_denominator() -> None:
    fps = parse_fps("23.97612345678912345")
    assert fps.denominator <= MAX_FPS_DENOMINATOR and abs(float(fps) - 23.97612345678912345) < 1e-9
    assert len(format_fps(fps)) < 40  # summaries stay short


def test_extreme_rates_fail_before_any_frame_is_read(model_must_not_run) -> None:
    lazy = LazyFrames(3, 16, 16)
    for fps_in, fps_out in [("1e5000", 24), (24, "1e999999999"), (Fraction(1, 10**300), 24), (1, 65)]:
        with pytest.raises(InvalidInputError):
            retime(model_must_not_run, lazy, fps_in=fps_in, fps_out=fps_out)
    assert lazy.reads == []


# ------------------------------------------------------------------------------------------- 9: values outside 0..1


def _entry_points(model, frames: torch.Tensor):
    lazy = list(frames)
    plan = clip_plan(frames.shape[0], 2)
    return {
        "interpolate": lambda: rife.interpolate(model, frames),
        "run_plan": lambda: rife.run_plan(model, frames, plan),
        "stream_plan": lambda: list(rife.stream_plan(model, lazy, plan)),
        "stream_interpolate": lambda: list(rife.stream_interpolate(model, lazy)),
        "retime": lambda: retime(model, frames, multiplier=2),
        "retime_lazy": lambda: retime(model, lazy, fps_in=24, fps_out=48),
        "infer": lambda: model.infer(frames[:1].permute(0, 3, 1, 2), frames[1:2].permute(0, 3, 1, 2)),
    }


@pytest.mark.parametrize("entry", ["interpolate", "run_plan", "stream_plan", "stream_interpolate", "retime",
                                   "retime_lazy", "infer"])  # fmt: skip
@pytest.mark.parametrize(
    ("transform", "message"),
    [
        (lambda f: f * 255, "looks like 0..255 values; divide by 255"),
        (lambda f: f * 65535, "looks like 0..255 values"),
        (lambda f: f * 2 - 1.5, "for -1..1 values use"),
    ],
    ids=["0..255", "0..65535", "negative"],
)
def test_frames_far_outside_0_1_are_refused_everywhere(entry: str, transform, message: str, real_model) -> None:
    frames = transform(moving_frames(3, 16, 24))
    with pytest.raises(InvalidInputError, match=message):
        _entry_points(real_model, frames)[entry]()


@pytest.mark.parametrize("entry", ["interpolate", "stream_plan", "retime", "infer"])
def test_small_excursions_are_clamped_for_the_model(entry: str, real_model) -> None:
    frames = moving_frames(3, 16, 24)
    overshoot = frames * 1.2 - 0.1  # -0.1 .. 1.1, as a sharpening filter leaves
    out = _entry_points(real_model, overshoot)[entry]()
    clamped = _entry_points(real_model, overshoot.clamp(0, 1))[entry]()
    if entry == "infer":
        assert torch.equal(out, clamped)
        return
    result = out.frames if entry == "retime" else torch.stack(out) if isinstance(out, list) else out
    expected = clamped.frames if entry == "retime" else torch.stack(clamped) if isinstance(clamped, list) else clamped
    assert torch.equal(result[1::2], expected[1::2])  # in-betweens from clamped inputs


# ------------------------------------------------------------------------------------------- 11: option types


def test_numpy_scalars_are_accepted_like_python_numbers(real_model) -> None:
    frames = moving_frames(3, 16, 24)
    expected = rife.interpolate(real_model, frames, multiplier=2, scale=1.0, batch_size=2)
    got = rife.interpolate(real_model, frames, multiplier=np.int64(2), scale=np.float32(1.0), batch_size=np.int32(2))
    assert torch.equal(got, expected)
    result = retime(  # the same batch size: batches of different sizes agree to float rounding, not bit for bit
        real_model, frames, fps_in=np.float64(24), fps_out=np.int16(48), scene_threshold=np.float32(0), batch_size=2
    )
    assert result.fps_out == 48 and torch.equal(result.frames, expected)
    assert rife.output_count(3, np.int64(4)) == 9


@pytest.mark.parametrize("value", ["no", "False", 0, 1, None, [], np.int64(1)])
def test_booleans_must_be_booleans(value, model_must_not_run) -> None:
    frames = moving_frames(3, 16, 16)
    with pytest.raises(InvalidInputError, match=re.escape(f"loop must be True or False, got {value!r}")):
        rife.interpolate(model_must_not_run, frames, loop=value)
    with pytest.raises(InvalidInputError, match="dedupe must be True or False"):
        retime(model_must_not_run, frames, multiplier=2, dedupe=value)


def test_numpy_bool_is_a_boolean(real_model) -> None:
    frames = moving_frames(3, 16, 16)
    assert rife.interpolate(real_model, frames, loop=np.bool_(True)).shape[0] == 6


# ------------------------------------------------------------------------------------------- 4: out of memory (CLI)


@pytest.mark.parametrize(
    "error",
    [
        rife.OutOfMemory("Out of memory even at batch 1: try scale=0.5"),
        MemoryError(),
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    ],
)
def test_cli_reports_out_of_memory_in_one_line_without_partial_files(
    error: BaseException, real_weights: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    from rife import cli

    original = cli.stream_plan

    def failing_stream(*args, **kwargs):
        stream = original(*args, **kwargs)
        yield next(stream)
        raise error

    monkeypatch.setattr(cli, "stream_plan", failing_stream)
    status, stderr, out = _cli_with_frames(tmp_path, capsys, "--model", str(real_weights))
    assert status == 1 and len(stderr) == 1, stderr
    assert "out of memory" in stderr[0].lower() and "1 of 5 frames were written" in stderr[0], stderr
    assert sorted(p.name for p in out.iterdir()) == ["0000000.png"]


# ------------------------------------------------------------------------------------------- 6 + 7: folders


def test_frame_that_is_a_fifo_is_refused_instead_of_blocking(tmp_path: Path) -> None:
    from rife.imageio import list_frames
    from tests.test_hardening_cli import write_frames

    write_frames(tmp_path)
    os.mkfifo(tmp_path / "0000003.png")  # reading it would wait forever for a writer
    with deadline(10), pytest.raises(InvalidInputError, match=r"0000003\.png is not a regular file"):
        list_frames(tmp_path)


def test_lock_is_exclusive_and_a_stale_lock_file_is_taken_over(tmp_path: Path) -> None:
    from rife.outputdir import LOCK_NAME, FolderBusy, locked_folder

    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text("12345\n")  # left by a run that was killed: its lock died with it
    with locked_folder(out) as created:
        assert not created and (out / LOCK_NAME).read_text() == f"{os.getpid()}\n"
        with pytest.raises(FolderBusy, match="Another run is writing to"), locked_folder(out):
            pass
        assert (out / LOCK_NAME).exists()  # the refused run did not remove the holder's lock
    assert not (out / LOCK_NAME).exists() and out.is_dir()
    fresh = tmp_path / "fresh" / "deeper"
    with locked_folder(fresh) as created:
        assert created and fresh.is_dir()
    assert not fresh.exists()  # created for a run that wrote nothing: removed again


# ------------------------------------------------------------------------------------------- 10: orientation


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif"])
def test_frames_are_read_upright_as_viewers_show_them(suffix: str, tmp_path: Path) -> None:
    """Every EXIF orientation, read as Pillow's exif_transpose shows it (JPEG at quality 100: exact here)."""
    from PIL import Image, ImageOps

    from rife.imageio import FrameFolder, read_image

    pixels = np.random.default_rng(0).integers(0, 255, (6, 10, 3), dtype=np.uint8)
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = tmp_path / f"{orientation}{suffix}"
        Image.fromarray(pixels).save(path, exif=exif, **({"quality": 100} if suffix == ".jpg" else {}))
        with Image.open(path) as image:
            upright = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
        np.testing.assert_array_equal(read_image(path), upright, err_msg=f"orientation {orientation}")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for index, orientation in enumerate((6, 8, 5)):  # all on their side: one upright size
        (mixed / f"{index}{suffix}").write_bytes((tmp_path / f"{orientation}{suffix}").read_bytes())
    folder = FrameFolder(mixed)
    assert (folder.format.height, folder.format.width) == (10, 6)
    assert [folder.copyable(i) for i in range(3)] == [False] * 3 and len({f.shape for f in folder}) == 1


# ------------------------------------------------------------------------------------------- 8 + 11: start-up


def _cli_with_frames(tmp_path: Path, capsys, *flags: str) -> tuple[int, list[str], Path]:
    from rife import cli
    from tests.test_hardening_cli import write_frames

    write_frames(tmp_path / "in")
    out = tmp_path / "out"
    status = cli.main(["--img", str(tmp_path / "in"), "--output", str(out), *flags])
    return status, capsys.readouterr().err.strip().splitlines(), out


def test_ctrl_c_while_the_model_loads_leaves_no_folder(tmp_path: Path, capsys, monkeypatch) -> None:
    from rife import cli

    def interrupted_load(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "load_model", interrupted_load)
    status, stderr, out = _cli_with_frames(tmp_path, capsys, "--model", str(tmp_path / "any.pkl"))
    assert (status, stderr) == (130, ["error: cancelled"])
    assert not out.exists()


def test_a_missing_checkpoint_leaves_no_output_folder(tmp_path: Path, capsys) -> None:
    status, stderr, out = _cli_with_frames(tmp_path, capsys, "--model", str(tmp_path / "missing.pkl"))
    assert status == 1 and len(stderr) == 1 and "Checkpoint not found" in stderr[0], stderr
    assert not out.exists()
