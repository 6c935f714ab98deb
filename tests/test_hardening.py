"""Hardening: hostile or broken checkpoints, odd frame batches, bad parameters, out-of-memory and long runs.

Every failure must be a :class:`rife.RIFEError` with a message naming the file or frames and the problem, raised
before any work starts; nothing may run a pickle's payload, crash deep inside torch or let NaN reach the output.
"""

from __future__ import annotations

import builtins
import ctypes
import ctypes.util
import pickle
import random
import re
import shutil
import weakref
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor

import rife
from rife import CheckpointError, InvalidInputError, OutOfMemory, RIFEError
from rife.schedule import clip_plan

# --------------------------------------------------------------------------------------------------- helpers


def moving_frames(count: int, height: int, width: int, channels: int = 3, *, seed: int = 0) -> Tensor:
    """[count,H,W,C] float32 frames in 0..1: a smooth random texture moving 2 px right and 1 px down per frame."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, channels, height // 4 + 3, width // 4 + 3, generator=generator)
    texture = F.interpolate(coarse, scale_factor=4, mode="bilinear", align_corners=False)[0]
    frames = [torch.roll(texture, (i, 2 * i), (1, 2))[:, :height, :width] for i in range(count)]
    return torch.stack(frames).permute(0, 2, 3, 1).contiguous()


class LazyFrames:
    """A clip made on access (as a folder reader would), counting reads; ``track`` keeps weak references to
    every frame handed out, so a test can tell how many of them the engine still holds."""

    def __init__(self, count: int, height: int, width: int, *, track: bool = False) -> None:
        self.count, self.height, self.width, self.track = count, height, width, track
        self.reads: list[int] = []
        self.handed_out: list[weakref.ref[Tensor]] = []

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Tensor:
        if not 0 <= index < self.count:
            raise IndexError(index)
        self.reads.append(index)
        frame = moving_frames(1, self.height, self.width, seed=index)[0]
        if self.track:
            self.handed_out.append(weakref.ref(frame))
        return frame

    def alive(self) -> int:
        return sum(ref() is not None for ref in self.handed_out)


def spy_flow(
    model: rife.RIFEModel, monkeypatch: pytest.MonkeyPatch, *, oom_when: Callable[[int], bool] | None = None
) -> list[int]:
    """Wrap ``model.net.flow``; returns the list of timestep batch sizes it is called with. ``oom_when(n)``
    True makes the call raise ``torch.OutOfMemoryError`` for a batch of ``n`` (after recording it)."""
    calls: list[int] = []
    original = model.net.flow

    def flow(frame0, frame1, timestep: Tensor, **options):
        calls.append(int(timestep.shape[0]))
        if oom_when is not None and oom_when(int(timestep.shape[0])):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (simulated)")
        return original(frame0, frame1, timestep, **options)

    monkeypatch.setattr(model.net, "flow", flow)
    return calls


@pytest.fixture
def model_must_not_run(real_model, monkeypatch: pytest.MonkeyPatch):
    """The real model with ``prepare`` and ``flow`` made to fail the test if anything calls them."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the model was called although the input is invalid")

    monkeypatch.setattr(real_model.net, "flow", forbidden)
    monkeypatch.setattr(real_model.net, "prepare", forbidden)
    return real_model


def assert_names(error: pytest.ExceptionInfo, path: Path, *phrases: str) -> None:
    """The error message names the file and contains every phrase (regular expressions)."""
    message = str(error.value)
    assert str(path) in message, message
    for phrase in phrases:
        assert re.search(phrase, message), f"{phrase!r} not in: {message}"


def save_safetensors(state: dict[str, Tensor], path: Path) -> Path:
    """Write ``state`` as a safetensors file (a test checkpoint) and return its path."""
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


# --------------------------------------------------------------------------------------------------- checkpoints

LOADERS = {"load_model": lambda path: rife.load_model(path, device="cpu"), "read_state_dict": rife.read_state_dict}


@pytest.fixture(params=list(LOADERS))
def loader(request) -> Callable[[Path], object]:
    return LOADERS[request.param]


@pytest.mark.parametrize("kept", [0.001, 0.5, 0.999])
@pytest.mark.parametrize("source", ["real_pkl", "real_weights"])
def test_truncated_checkpoint(source: str, kept: float, loader, tmp_path: Path, request) -> None:
    original: Path = request.getfixturevalue(source)
    data = original.read_bytes()
    cut = tmp_path / original.name
    cut.write_bytes(data[: int(len(data) * kept)])
    with pytest.raises(CheckpointError) as error:
        loader(cut)
    assert_names(error, cut, r"not a readable (PyTorch checkpoint|safetensors file)", r"[Rr]e-download")


@pytest.mark.parametrize("name", ["flownet.pkl", "model.pth", "model.ckpt"])
def test_empty_pickle_file(name: str, loader, tmp_path: Path) -> None:
    empty = tmp_path / name
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError) as error:
        loader(empty)
    assert_names(error, empty, r"is empty \(0 bytes\)", "re-download")


def test_empty_safetensors_file_says_empty(loader, tmp_path: Path) -> None:
    empty = tmp_path / "model.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError) as error:
        loader(empty)
    assert_names(error, empty, r"is empty \(0 bytes\)")


@pytest.mark.parametrize("seed", [0, 1, 3, 4])  # seed 2 hits the defect below (BROKEN_PICKLES)
@pytest.mark.parametrize("suffix", [".pkl", ".safetensors"])
def test_random_bytes(seed: int, suffix: str, loader, tmp_path: Path) -> None:
    junk = tmp_path / f"junk{suffix}"
    junk.write_bytes(random.Random(seed).randbytes(4096))
    with pytest.raises(CheckpointError) as error:
        loader(junk)
    assert_names(error, junk)


# Corrupted pickles whose first opcodes make the (safe) unpickler fail with IndexError or struct.error; about
# 8 % of random byte strings do the same (measured over 3000 seeds).
BROKEN_PICKLES = {
    "stack_underflow": b"\x80\x02t.",
    "cut_integer": b"\x80\x02J\x00",
    "lone_appends": b"e",
    "random_seed_2": random.Random(2).randbytes(4096),
}


@pytest.mark.parametrize("payload", list(BROKEN_PICKLES.values()), ids=list(BROKEN_PICKLES))
def test_corrupted_pickle_raises_checkpoint_error(payload: bytes, loader, tmp_path: Path) -> None:
    broken = tmp_path / "broken.pth"
    broken.write_bytes(payload)
    with pytest.raises(CheckpointError) as error:
        loader(broken)
    assert_names(error, broken, "not a readable PyTorch checkpoint")


def test_random_bytes_are_not_reported_as_code(loader, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(random.Random(0).randbytes(4096))
    with pytest.raises(CheckpointError) as error:
        loader(junk)
    assert "code" not in str(error.value), str(error.value)
    assert_names(error, junk, r"is not a RIFE checkpoint: neither a PyTorch nor a safetensors file", "Re-download")


def mutated_checkpoints(tmp_path: Path, count: int) -> list[Path]:
    """``count`` copies of a small torch checkpoint (zip and legacy format, alternating) with 1-4 random bytes
    changed, seeded so every run tests the same files."""
    state = {"block0.conv0.0.0.weight": torch.randn(4, 3, 3, 3, generator=torch.Generator().manual_seed(0))}
    zipped, legacy = tmp_path / "zip.pth", tmp_path / "legacy.pth"
    torch.save(state, zipped)
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    with zipfile.ZipFile(zipped) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    pickled = next(name for name in members if name.endswith("data.pkl"))
    paths = []
    for seed in range(count):
        rng = random.Random(seed)
        data = bytearray(members[pickled] if seed % 2 == 0 else legacy.read_bytes())
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        path = tmp_path / f"mutated{seed}.pth"
        if seed % 2 == 0:
            with zipfile.ZipFile(path, "w") as archive:
                for name, content in members.items():
                    archive.writestr(name, bytes(data) if name == pickled else content)
        else:
            path.write_bytes(bytes(data))
        paths.append(path)
    return paths


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_damaged_torch_checkpoints_raise_only_checkpoint_errors(tmp_path: Path) -> None:
    """Fuzz: 300 byte-flipped torch checkpoints either load or raise CheckpointError; measured before the fix:
    IndexError, TypeError (_rebuild_tensor_v2 arguments) and AssertionError (missing storage key) escaped."""
    escaped: dict[str, str] = {}
    for path in mutated_checkpoints(tmp_path, 300):
        try:
            rife.read_state_dict(path)
        except CheckpointError as error:
            assert str(path) in str(error)
        except Exception as error:  # collecting every kind that escapes is the point
            escaped.setdefault(type(error).__name__, f"{path.name}: {error}")
    assert not escaped, f"raw exceptions escaped read_state_dict: {escaped}"


def test_zip_that_is_not_a_checkpoint(loader, tmp_path: Path) -> None:
    archive = tmp_path / "weights.pth"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("readme.txt", "not weights")
        zipped.writestr("images/frame.png", b"\x89PNG\r\n")
    with pytest.raises(CheckpointError) as error:
        loader(archive)
    assert_names(error, archive, "not a readable PyTorch checkpoint", "Re-download")


class CreatesMarker:
    """Unpickling this object calls ``open(marker, "w")``, i.e. creates a file: the payload must never run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.open, (str(self.marker), "w"))


REFUSED = r"Refused to load .*contains Python objects or code.*weights_only=True"
# torch's weights-only unpickler stops at the first opcode it does not support; in protocol 0 and >= 4 pickles
# that comes before the payload's GLOBAL, so those are reported as unreadable rather than as code.
UNREADABLE_OR_REFUSED = rf"{REFUSED}|is not a RIFE checkpoint: neither a PyTorch nor a safetensors file"


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize(
    ("container", "message"),
    [
        ("pickle_protocol_2", REFUSED),
        ("torch_zip", REFUSED),
        ("torch_legacy", REFUSED),
        ("in_directory", REFUSED),
        ("pickle_protocol_0", UNREADABLE_OR_REFUSED),
        ("pickle_default", UNREADABLE_OR_REFUSED),
    ],
)
def test_pickle_with_code_is_refused_without_running(container: str, message: str, loader, tmp_path: Path) -> None:
    marker = tmp_path / "payload_ran"
    evil = {"block0.conv0.0.0.weight": torch.zeros(1), "payload": CreatesMarker(marker)}
    path = tmp_path / "evil.pth"
    if container.startswith("pickle_"):
        protocol = {"pickle_protocol_2": 2, "pickle_protocol_0": 0}.get(container, pickle.DEFAULT_PROTOCOL)
        path.write_bytes(pickle.dumps(evil, protocol=protocol))
    elif container == "torch_legacy":
        torch.save(evil, path, _use_new_zipfile_serialization=False)
    elif container == "torch_zip":
        torch.save(evil, path)
    else:
        (tmp_path / "ckpt").mkdir()
        path = tmp_path / "ckpt" / "flownet.pkl"
        torch.save(evil, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError) as error:
        loader(path.parent if container == "in_directory" else path)
    assert not marker.exists(), "the pickle's payload ran while loading"
    assert_names(error, path, message)


def test_pickle_payload_is_real(tmp_path: Path) -> None:
    """Control for the test above: the same payload does create the marker when unpickled unsafely."""
    marker = tmp_path / "payload_ran"
    pickle.loads(pickle.dumps(CreatesMarker(marker), protocol=2)).close()
    assert marker.exists()


@pytest.mark.parametrize("container", ["torch", "safetensors"])
def test_checkpoint_of_an_unrelated_model(container: str, tmp_path: Path) -> None:
    state = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Linear(8, 2)).state_dict()
    path = tmp_path / f"classifier.{'pth' if container == 'torch' else 'safetensors'}"
    if container == "torch":
        torch.save(state, path)
    else:
        save_safetensors(state, path)
    assert set(rife.read_state_dict(path)) == set(state)  # reading is fine; it is not RIFE
    with pytest.raises(CheckpointError) as error:
        rife.load_model(path, device="cpu")
    assert_names(error, path, r"is not a RIFE 4\.x checkpoint", "match no known layout", r"0\.weight")


def test_checkpoint_without_tensors(loader, tmp_path: Path) -> None:
    path = tmp_path / "config.pth"
    torch.save({"epoch": 3, "lr": 1e-4, "name": "rife"}, path)
    with pytest.raises(CheckpointError) as error:
        loader(path)
    assert_names(error, path, r"holds no tensors \(dict\): it is not a model checkpoint")


DAMAGED_KEY = "block3.convblock.2.conv.weight"


def test_rife_checkpoint_with_a_missing_tensor(real_weights: Path, tmp_path: Path) -> None:
    state = load_file(str(real_weights))
    del state[DAMAGED_KEY]
    path = save_safetensors(state, tmp_path / "rife425.safetensors")
    with pytest.raises(CheckpointError) as error:
        rife.load_model(path, device="cpu")
    assert_names(error, path, r"looks like RIFE 4\.25/4\.26 \(layout 4\.25\)", r"1 missing tensors", DAMAGED_KEY)


def test_rife_checkpoint_with_a_wrong_shaped_tensor(real_weights: Path, tmp_path: Path) -> None:
    state = load_file(str(real_weights))
    expected = list(state[DAMAGED_KEY].shape)
    state[DAMAGED_KEY] = state[DAMAGED_KEY][:, :-1]
    path = save_safetensors(state, tmp_path / "rife425.safetensors")
    with pytest.raises(CheckpointError) as error:
        rife.load_model(path, device="cpu")
    got = [expected[0], expected[1] - 1, *expected[2:]]
    assert_names(
        error,
        path,
        r"looks like RIFE 4\.25/4\.26 \(layout 4\.25\)",
        "1 tensors of the wrong shape",
        re.escape(f"{DAMAGED_KEY} {got} (expected {expected})"),
    )


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf")])
def test_rife_checkpoint_with_nan_weights(bad_value: float, real_weights: Path, tmp_path: Path) -> None:
    state = load_file(str(real_weights))
    state["encode.cnn0.weight"][0, 0, 0, 0] = bad_value
    path = save_safetensors(state, tmp_path / "rife425.safetensors")
    with pytest.raises(CheckpointError) as error:
        rife.load_model(path, device="cpu")
    assert_names(error, path, "NaN or infinite weights", "encode.cnn0.weight", "corrupted")


def test_directory_without_a_checkpoint(loader, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("weights go here")
    (tmp_path / "flownet.pkl").mkdir()  # a folder with the preferred name is not a checkpoint
    with pytest.raises(CheckpointError) as error:
        loader(tmp_path)
    assert_names(error, tmp_path, "No checkpoint in directory", r"flownet\.pkl", r"\.safetensors")


def test_directory_with_two_checkpoints(loader, real_weights: Path, tmp_path: Path) -> None:
    for name in ("rife425.safetensors", "rife426.pth"):
        shutil.copyfile(real_weights, tmp_path / name)
    with pytest.raises(CheckpointError) as error:
        loader(tmp_path)
    assert_names(error, tmp_path, r"several checkpoints \(rife425\.safetensors, rife426\.pth\)", "pass the file")


def test_missing_path(loader, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as error:
        loader(tmp_path / "rife-v4.25.safetensors")
    assert_names(error, tmp_path / "rife-v4.25.safetensors", "Checkpoint not found", "Practical-RIFE")


def test_directory_with_one_renamed_checkpoint_loads(real_weights: Path, tmp_path: Path) -> None:
    """Control for the failures above: the same bytes under another name in a folder load fine."""
    shutil.copyfile(real_weights, tmp_path / "my-model.bin")
    model = rife.load_model(tmp_path, device="cpu")
    assert (model.arch, model.source) == ("4.25", tmp_path / "my-model.bin")


# --------------------------------------------------------------------------------------------------- frames


def test_zero_frames(model_must_not_run) -> None:
    with pytest.raises(InvalidInputError, match="empty batch: at least one frame is needed"):
        rife.interpolate(model_must_not_run, torch.zeros(0, 16, 16, 3), multiplier=2)
    with pytest.raises(InvalidInputError, match="empty clip"):
        clip_plan(0, 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.uint8])
@pytest.mark.parametrize("loop", [False, True])
def test_one_frame_is_returned_as_an_independent_copy(dtype: torch.dtype, loop: bool, model_must_not_run) -> None:
    frame = moving_frames(1, 24, 40)
    frames = (frame * 255).round().to(dtype) if dtype == torch.uint8 else frame.to(dtype)
    untouched = frames.clone()
    out = rife.interpolate(model_must_not_run, frames, multiplier=4, loop=loop)
    expected = frames.float() / 255 if dtype == torch.uint8 else frames.float()
    assert out.dtype == torch.float32
    assert torch.equal(out, expected)
    out.fill_(0.5)
    assert torch.equal(frames, untouched)


@pytest.mark.parametrize(("height", "width"), [(8, 8), (1, 1), (1, 9), (5, 2), (403, 721)])
def test_any_frame_size_keeps_its_size(height: int, width: int, real_model) -> None:
    frames = moving_frames(2, height, width)
    out = rife.interpolate(real_model, frames, multiplier=2)
    assert out.shape == (3, height, width, 3)
    assert torch.equal(out[0], frames[0]) and torch.equal(out[2], frames[1])
    assert bool(torch.isfinite(out).all()) and float(out[1].min()) >= 0 and float(out[1].max()) <= 1


@pytest.mark.parametrize("scale", [0.25, 4.0])
def test_tiny_frames_at_extreme_scales(scale: float, real_model) -> None:
    frames = moving_frames(2, 3, 5)
    out = rife.interpolate(real_model, frames, multiplier=2, scale=scale)
    assert out.shape == (3, 3, 5, 3) and bool(torch.isfinite(out).all())


def test_grayscale_stays_one_channel_and_matches_rgb(real_model) -> None:
    gray = moving_frames(3, 40, 56, channels=1)
    out = rife.interpolate(real_model, gray, multiplier=3)
    as_rgb = rife.interpolate(real_model, gray.expand(-1, -1, -1, 3).contiguous(), multiplier=3)
    assert out.shape == (7, 40, 56, 1)
    assert torch.equal(out[..., 0], as_rgb[..., 0])
    assert torch.equal(as_rgb[..., 0], as_rgb[..., 2])  # the network's output stays gray


def test_rgba_alpha_is_warped_with_the_colour(real_model) -> None:
    rgb = moving_frames(3, 40, 56)
    rgba = torch.cat((rgb, rgb[..., :1]), -1)  # alpha = red: after the same warp and blend they must agree
    out = rife.interpolate(real_model, rgba, multiplier=2)
    colour_only = rife.interpolate(real_model, rgb, multiplier=2)
    assert out.shape == (5, 40, 56, 4)
    assert torch.equal(out[..., :3], colour_only)
    assert torch.equal(out[..., 3], out[..., 0])
    plain_blend = (rgba[0, ..., 3] + rgba[1, ..., 3]) / 2
    assert float((out[1, ..., 3] - plain_blend).abs().max()) > 0.05  # it moved, it was not just cross-faded


def test_opaque_alpha_stays_opaque(real_model) -> None:
    rgba = torch.cat((moving_frames(2, 32, 48), torch.ones(2, 32, 48, 1)), -1)
    out = rife.interpolate(real_model, rgba, multiplier=4)
    assert float((out[..., 3] - 1).abs().max()) <= 1e-6


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64, torch.uint8])
def test_input_dtypes_give_float32(dtype: torch.dtype, real_model) -> None:
    base = moving_frames(3, 24, 40)
    frames = (base * 255).round().to(torch.uint8) if dtype == torch.uint8 else base.to(dtype)
    as_float = frames.float() / 255 if dtype == torch.uint8 else frames.float()
    out = rife.interpolate(real_model, frames, multiplier=2)
    assert out.dtype == torch.float32 and out.shape == (5, 24, 40, 3)
    assert torch.equal(out[0::2], as_float)  # originals exact after the conversion (uint8 / 255)
    assert torch.equal(out, rife.interpolate(real_model, as_float, multiplier=2))


def test_values_outside_0_1_are_clamped_for_the_model_but_copied_exactly(real_model) -> None:
    frames = moving_frames(3, 32, 48) * 2.0 - 0.5  # -0.5 .. 1.5
    out = rife.interpolate(real_model, frames, multiplier=2)
    assert torch.equal(out[0::2], frames)
    clamped = rife.interpolate(real_model, frames.clamp(0, 1), multiplier=2)
    assert torch.equal(out[1::2], clamped[1::2])
    assert float(out[1::2].min()) >= 0 and float(out[1::2].max()) <= 1


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nan_or_inf_pixels_are_refused_naming_the_frames(bad: float, model_must_not_run) -> None:
    frames = moving_frames(5, 16, 16)
    frames[1, 3, 4, 0] = bad
    frames[4, 0, 0, 2] = bad
    with pytest.raises(InvalidInputError, match=r"2 input frame\(s\) contain NaN or infinite .*\(frames 1, 4\)"):
        rife.interpolate(model_must_not_run, frames, multiplier=2)
    with pytest.raises(InvalidInputError, match=r"\(frames 1, 4\)"):
        rife.run_plan(model_must_not_run, frames, clip_plan(5, 3, "recursive"))
    with pytest.raises(InvalidInputError, match=r"\(frames 0\)"):  # indices count from the batch given
        rife.interpolate(model_must_not_run, frames[1:2], multiplier=2)  # even a single frame is checked


def test_nan_in_a_streamed_frame_stops_before_reaching_the_output(real_model) -> None:
    frames = list(moving_frames(5, 16, 16))
    frames[3] = frames[3].clone()
    frames[3][5, 5, 1] = float("nan")
    produced: list[Tensor] = []
    with pytest.raises(InvalidInputError, match="Frame 3 contains NaN or infinite pixel values"):
        produced.extend(rife.stream_plan(real_model, frames, clip_plan(5, 2)))
    assert len(produced) == 5  # frames 0 .. 2 and the in-betweens before them: none touched frame 3
    assert all(bool(torch.isfinite(frame).all()) for frame in produced)


def test_non_contiguous_and_channels_last_frames_equal_contiguous(real_model) -> None:
    contiguous = moving_frames(3, 32, 48)
    expected = rife.interpolate(real_model, contiguous, multiplier=3)
    from_bchw = contiguous.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)  # ComfyUI after a movedim
    channels_last = contiguous.contiguous(memory_format=torch.channels_last)
    strided = moving_frames(3, 64, 96)[:, ::2, ::2]
    flipped = contiguous.flip(2).flip(2)
    for frames in (from_bchw, channels_last, flipped):
        assert torch.equal(rife.interpolate(real_model, frames, multiplier=3), expected)
    assert not strided.is_contiguous()
    assert torch.equal(
        rife.interpolate(real_model, strided, multiplier=3),
        rife.interpolate(real_model, strided.contiguous(), multiplier=3),
    )


def test_expanded_batch_of_one_frame(real_model) -> None:
    """A batch made with ``expand`` (stride 0, every frame shares memory) is read, not written."""
    frame = moving_frames(1, 16, 24)
    frames = frame.expand(3, -1, -1, -1)
    out = rife.interpolate(real_model, frames, multiplier=2)
    assert out.shape == (5, 16, 24, 3)
    assert torch.equal(out, rife.interpolate(real_model, frames.contiguous(), multiplier=2))
    assert float((out - frame).abs().max()) < 0.02  # nothing moves between identical frames


def test_mixed_frame_sizes_in_a_stream(real_model) -> None:
    frames = [torch.rand(16, 16, 3), torch.rand(16, 17, 3)]
    with pytest.raises(InvalidInputError, match=r"frame 1 is \(16, 17, 3\), the first was \(16, 16, 3\)"):
        list(rife.stream_plan(real_model, frames, clip_plan(2, 2)))


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (torch.rand(3, 16, 16, 2), r"C = 1, 3 or 4 channels, got shape \(3, 16, 16, 2\)"),
        (torch.rand(16, 16, 3), r"got shape \(16, 16, 3\)"),
        (torch.rand(3, 0, 16, 3), "Frames have no pixels"),
        (torch.zeros(3, 16, 16, 3, dtype=torch.int32), "float .* or uint8 .*got torch.int32"),
        ([torch.rand(16, 16, 3)] * 3, "must be a torch.Tensor"),
    ],
    ids=["two_channels", "no_batch_dim", "no_pixels", "int32", "list"],
)
def test_malformed_batches(frames, message: str, model_must_not_run) -> None:
    with pytest.raises(InvalidInputError, match=message):
        rife.interpolate(model_must_not_run, frames, multiplier=2)


def test_consumer_writing_into_streamed_frames_changes_nothing(real_model) -> None:
    """A writer that converts each yielded frame in place (``frame.mul_(255)``) must not alter the source
    frames nor the in-betweens computed after it."""
    frames = moving_frames(3, 32, 32)
    expected = rife.interpolate(real_model, frames, multiplier=2)
    sources = [frame.clone() for frame in frames]
    received = []
    for frame in rife.stream_plan(real_model, sources, clip_plan(3, 2)):
        received.append(frame.clone())
        frame.mul_(255)
    assert torch.equal(torch.stack(sources), frames), "the caller's source frames were modified"
    assert torch.equal(torch.stack(received), expected)


def test_nan_produced_by_the_network_is_not_returned(real_model, monkeypatch: pytest.MonkeyPatch) -> None:
    """E.g. fp16 overflow on some GPUs: the engine must raise instead of returning NaN frames."""
    original = real_model.net.flow

    def nan_mask(frame0, frame1, timestep, **options):
        flow, mask = original(frame0, frame1, timestep, **options)
        return flow, torch.full_like(mask, float("nan"))

    monkeypatch.setattr(real_model.net, "flow", nan_mask)
    try:
        out = rife.interpolate(real_model, moving_frames(2, 16, 16), multiplier=2)
    except RIFEError as error:
        assert "NaN" in str(error)
        return
    assert bool(torch.isfinite(out).all()), f"{int(out.isnan().sum())} NaN values returned without an error"


# --------------------------------------------------------------------------------------------------- parameters

SCALE_MESSAGE = "scale must be one of 0.25, 0.5, 1.0, 2.0, 4.0 (1.0 = full-resolution flow, 0.5 for 4K)"
BAD_OPTIONS = [
    ({"multiplier": 0}, "multiplier must be between 1 and 64, got 0."),
    ({"multiplier": -1}, "multiplier must be between 1 and 64, got -1."),
    ({"multiplier": 65}, "multiplier must be between 1 and 64, got 65."),
    ({"multiplier": 2.5}, "multiplier must be an integer, got 2.5."),
    ({"multiplier": True}, "multiplier must be an integer, got True."),
    ({"multiplier": "2"}, "multiplier must be an integer, got '2'."),
    ({"scale": 0}, "scale must be one of 0.25, 0.5, 1.0, 2.0, 4.0"),
    ({"scale": 3}, "scale must be one of .*got 3."),
    ({"scale": -1}, "scale must be one of .*got -1."),
    ({"scale": "1"}, "scale must be one of .*got '1'."),
    ({"scale": float("nan")}, "scale must be one of .*got nan."),
    ({"scale": True}, "scale must be one of .*got True."),
    ({"multiplier": 3, "mode": "bisect"}, "multiplier must be a power of two .*got 3. Use mode='recursive'"),
    ({"multiplier": 6, "mode": "bisect"}, "multiplier must be a power of two .*got 6."),
    ({"mode": "fast"}, "Unknown mode 'fast': use one of direct, recursive, bisect."),
    ({"batch_size": 0}, "batch_size must be a positive integer, got 0."),
    ({"batch_size": -2}, "batch_size must be a positive integer, got -2."),
    ({"batch_size": 2.0}, "batch_size must be a positive integer, got 2.0."),
    ({"batch_size": True}, "batch_size must be a positive integer, got True."),
]


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS, ids=[str(o) for o, _ in BAD_OPTIONS])
def test_bad_options_fail_before_any_work(options: dict, message: str, model_must_not_run) -> None:
    frames = moving_frames(3, 16, 16)
    with pytest.raises(InvalidInputError, match=re.escape(message).replace(r"\.\*", ".*")):
        rife.interpolate(model_must_not_run, frames, **options)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("scale", 3, f"{SCALE_MESSAGE}, got 3."),
        ("scale", "1", f"{SCALE_MESSAGE}, got '1'."),
        ("batch_size", 0, "batch_size must be a positive integer, got 0."),
        ("batch_size", True, "batch_size must be a positive integer, got True."),
    ],
)
def test_stream_plan_checks_options_when_called(option: str, value, message: str, model_must_not_run) -> None:
    """The check happens at the call, not at the first ``next()``, and reads no frame."""
    lazy = LazyFrames(3, 16, 16)
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        rife.stream_plan(model_must_not_run, lazy, clip_plan(3, 2), **{option: value})
    assert lazy.reads == []


def test_plan_for_another_clip_length(model_must_not_run) -> None:
    with pytest.raises(InvalidInputError, match=re.escape("The plan is for 4 frames but 3 were given.")):
        rife.run_plan(model_must_not_run, moving_frames(3, 16, 16), clip_plan(4, 2))


@pytest.mark.parametrize(
    ("fps_in", "fps_out", "message"),
    [
        (0, 60, "A frame rate must be positive, got 0."),
        (24, -1, "A frame rate must be positive, got -1."),
        ("30000/1001", "0", "A frame rate must be positive, got '0'."),
        ("-30000/1001", 60, "A frame rate must be positive, got '-30000/1001'."),
        ("30/0", 60, "Cannot read the frame rate '30/0'"),
        (float("nan"), 60, "Cannot read the frame rate nan"),
    ],
)
def test_bad_frame_rates_fail_before_any_work(fps_in, fps_out, message: str, model_must_not_run) -> None:
    from rife.timing import retime

    lazy = LazyFrames(4, 16, 16)
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        retime(model_must_not_run, lazy, fps_in=fps_in, fps_out=fps_out)
    assert lazy.reads == []


# --------------------------------------------------------------------------------------------------- out of memory


def test_out_of_memory_at_a_large_batch_falls_back_to_one(real_model, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = moving_frames(3, 32, 48)
    expected = rife.interpolate(real_model, frames, multiplier=8, batch_size=1)
    batched = rife.interpolate(real_model, frames, multiplier=8, batch_size=4)
    calls = spy_flow(real_model, monkeypatch, oom_when=lambda n: n > 1)
    done: list[int] = []
    out = rife.interpolate(real_model, frames, multiplier=8, batch_size=4, progress=lambda d, _total: done.append(d))
    assert calls[:3] == [4, 2, 1]  # 4 fails, 2 fails, 1 works ...
    assert calls[3:] == [1] * 13  # ... and stays for the remaining 13 of the 14 in-betweens
    assert torch.equal(out, expected)
    assert float((out - batched).abs().max()) <= 1e-4
    assert done == list(range(1, 18))


def test_out_of_memory_at_batch_one_raises_a_clear_error(real_model, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = spy_flow(real_model, monkeypatch, oom_when=lambda n: True)
    done: list[int] = []
    frames = moving_frames(3, 32, 48)
    with pytest.raises(OutOfMemory) as error:
        rife.interpolate(real_model, frames, multiplier=4, batch_size=2, progress=lambda d, _total: done.append(d))
    assert calls == [2, 1]
    assert done == [1]  # only the first original was produced before the first in-between failed
    assert isinstance(error.value, MemoryError) and isinstance(error.value, RIFEError)
    message = str(error.value)
    assert "Out of memory interpolating one 48x32 frame at scale 1.0 on cpu" in message
    assert "smaller scale" in message and "fp16" in message


def test_out_of_memory_while_encoding_a_frame_raises_a_clear_error(real_model, monkeypatch) -> None:
    def prepare(image):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (simulated)")

    monkeypatch.setattr(real_model.net, "prepare", prepare)
    with pytest.raises(OutOfMemory, match="Out of memory"):
        rife.interpolate(real_model, moving_frames(2, 32, 48), multiplier=2)


# --------------------------------------------------------------------------------------------------- memory


def resident_kib() -> int:
    """VmRSS of this process in KiB, after handing freed heap pages back to the OS where glibc allows it (so
    the number follows live memory, not the allocator's caches)."""
    libc_name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(libc_name) if libc_name else None
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc (Linux)")
def test_streaming_memory_stays_flat(real_model) -> None:
    """40 frames 64x64 x4 (157 outputs): the engine holds a few source frames at a time, reads each once and
    resident memory after 10 % of the outputs equals that at the end (a leak of every output alone would add
    about 7 MiB here; the measured noise is under 1 MiB)."""
    lazy = LazyFrames(40, 64, 64, track=True)
    plan = clip_plan(40, 4)
    most_alive, first = 0, None
    for done, _frame in enumerate(rife.stream_plan(real_model, lazy, plan), start=1):
        most_alive = max(most_alive, lazy.alive())
        if done == plan.num_outputs // 10:
            first = resident_kib()
    last = resident_kib()
    assert sorted(lazy.reads) == list(range(40)) and lazy.reads == sorted(lazy.reads)
    assert most_alive <= 3
    assert first is not None and last - first <= 3 * 1024, f"resident memory grew by {last - first} KiB"
