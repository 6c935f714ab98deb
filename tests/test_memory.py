"""Memory: out of memory on every backend and torch release, the free_memory hook, bounded NaN scan, and
tensors that leave the library being ordinary tensors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from test_engine import LazyFrames, clip
from torch import Tensor

import rife
from rife import OutOfMemory
from rife.memory import is_out_of_memory
from rife.timing import retime
from rife.validate import check_pixel_values

CPU_OOM = (
    "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried to allocate "
    "21233664000 bytes. Error code 12 (Cannot allocate memory)"
)
OOM_FLAVOURS: dict[str, Callable[[], BaseException]] = {
    "torch.OutOfMemoryError": lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    "torch.cuda.OutOfMemoryError": lambda: torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)"),
    "CUDA RuntimeError (torch < 1.13)": lambda: RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    "MPS RuntimeError": lambda: RuntimeError(
        "MPS backend out of memory (MPS allocated: 17.50 GB, other allocations: 1.20 GB, max allowed: 18.13 GB)."
    ),
    "CPU allocator RuntimeError": lambda: RuntimeError(CPU_OOM),
    "cuDNN alloc failure": lambda: RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
    "MemoryError": MemoryError,
}
NOT_OOM = [RuntimeError("Given groups=1, weight of size [32, 15, 3, 3], expected input..."), ValueError("memory")]


def failing_flow(model, monkeypatch, fail: Callable[[int, int], BaseException | None]) -> list[int]:
    """Wrap the network's flow; ``fail(call_number, batch)`` returns the exception to raise or None. Returns the
    batch sizes of every call."""
    calls: list[int] = []
    original = model.net.flow

    def flow(frame0, frame1, timestep: Tensor, **options):
        calls.append(int(timestep.shape[0]))
        exc = fail(len(calls), calls[-1])
        if exc is not None:
            raise exc
        return original(frame0, frame1, timestep, **options)

    monkeypatch.setattr(model.net, "flow", flow)
    return calls


@pytest.mark.parametrize("flavour", OOM_FLAVOURS)
def test_every_oom_flavour_is_recognised(flavour: str) -> None:
    assert is_out_of_memory(OOM_FLAVOURS[flavour]())


@pytest.mark.parametrize("exc", NOT_OOM, ids=str)
def test_other_errors_are_not_out_of_memory(exc: BaseException, real_model, monkeypatch) -> None:
    assert not is_out_of_memory(exc)
    failing_flow(real_model, monkeypatch, lambda call, batch: exc)
    with pytest.raises(type(exc)) as error:
        rife.interpolate(real_model, clip(2), 2)
    assert error.value is exc  # passed on untouched, not retried or renamed


@pytest.mark.parametrize("flavour", OOM_FLAVOURS)
def test_each_flavour_halves_the_batch_then_raises_a_clear_error(flavour: str, real_model, monkeypatch) -> None:
    frames = clip(3)
    expected = rife.interpolate(real_model, frames, 8, batch_size=1)
    calls = failing_flow(real_model, monkeypatch, lambda call, batch: OOM_FLAVOURS[flavour]() if batch > 1 else None)
    out = rife.interpolate(real_model, frames, 8, batch_size=4)
    assert calls[:3] == [4, 2, 1] and set(calls[3:]) == {1}
    assert torch.equal(out, expected)

    calls.clear()
    failing_flow(real_model, monkeypatch, lambda call, batch: OOM_FLAVOURS[flavour]())
    with pytest.raises(OutOfMemory, match=r"Out of memory interpolating one 56x40 frame at scale 1.0 on cpu"):
        rife.interpolate(real_model, frames, 8, batch_size=2)


def test_torch_without_out_of_memory_error_classes_still_halves(real_model, monkeypatch) -> None:
    """torch releases before 1.13 have neither torch.OutOfMemoryError nor torch.cuda.OutOfMemoryError: only
    the RuntimeError's text tells."""
    monkeypatch.delattr(torch, "OutOfMemoryError", raising=False)
    monkeypatch.delattr(torch.cuda, "OutOfMemoryError", raising=False)
    calls = failing_flow(
        real_model, monkeypatch, lambda call, batch: RuntimeError("CUDA out of memory.") if batch > 1 else None
    )
    out = rife.interpolate(real_model, clip(2), 4, batch_size=3)
    assert calls == [3, 1, 1, 1] and out.shape[0] == 5


def test_free_memory_is_called_once_at_batch_one_and_the_retry_succeeds(real_model, monkeypatch) -> None:
    frames = clip(3)
    expected = rife.interpolate(real_model, frames, 4, batch_size=1)
    freed: list[int] = []
    calls = failing_flow(real_model, monkeypatch, lambda call, batch: MemoryError() if call <= 2 else None)
    out = rife.interpolate(real_model, frames, 4, batch_size=2, free_memory=lambda: freed.append(len(calls)))
    assert calls[:3] == [2, 1, 1]  # 2 fails, 1 fails -> free_memory -> 1 works
    assert freed == [2]
    assert torch.equal(out, expected)


def test_free_memory_is_called_once_then_out_of_memory(real_model, monkeypatch) -> None:
    freed: list[int] = []
    calls = failing_flow(real_model, monkeypatch, lambda call, batch: RuntimeError(CPU_OOM))
    with pytest.raises(OutOfMemory, match="smaller scale") as error:
        rife.interpolate(real_model, clip(3), 4, batch_size=2, free_memory=lambda: freed.append(1))
    assert calls == [2, 1, 1] and freed == [1]
    assert is_out_of_memory(error.value.__cause__)  # the original error is kept as the cause


def test_free_memory_reaches_the_engine_from_retime_and_streams(real_model, monkeypatch) -> None:
    freed: list[str] = []
    failing_flow(real_model, monkeypatch, lambda call, batch: MemoryError() if call == 1 else None)
    result = retime(real_model, clip(3), multiplier=2, free_memory=lambda: freed.append("retime"))
    assert result.frames.shape[0] == 5
    failing_flow(real_model, monkeypatch, lambda call, batch: MemoryError() if call == 1 else None)
    frames = list(rife.stream_interpolate(real_model, LazyFrames(clip(3)), 2, free_memory=lambda: freed.append("s")))
    assert len(frames) == 5 and freed == ["retime", "s"]


def test_out_of_memory_while_encoding_uses_the_same_policy(real_model, monkeypatch) -> None:
    original = real_model.net.prepare
    failures = iter([RuntimeError(CPU_OOM)])

    def prepare(image):
        exc = next(failures, None)
        if exc is not None:
            raise exc
        return original(image)

    monkeypatch.setattr(real_model.net, "prepare", prepare)
    freed: list[int] = []
    out = rife.interpolate(real_model, clip(2), 2, free_memory=lambda: freed.append(1))
    assert out.shape[0] == 3 and freed == [1]
    monkeypatch.setattr(real_model.net, "prepare", lambda image: (_ for _ in ()).throw(MemoryError()))
    with pytest.raises(OutOfMemory, match="Out of memory encoding one 56x40 frame"):
        rife.interpolate(real_model, clip(2), 2)


def test_streamed_out_of_memory_leaves_nothing_partial(real_model, monkeypatch) -> None:
    """A stream that runs out of memory ends with OutOfMemory after the frames it finished, never a half one."""
    failing_flow(real_model, monkeypatch, lambda call, batch: RuntimeError(CPU_OOM) if call >= 2 else None)
    got: list[Tensor] = []
    with pytest.raises(OutOfMemory):
        for frame in rife.stream_interpolate(real_model, LazyFrames(clip(3)), 2):
            got.append(frame)
    assert len(got) == 3  # original, the first in-between, the second original; then the failing in-between


def test_bad_free_memory_is_refused_before_any_work(real_model) -> None:
    with pytest.raises(rife.InvalidInputError, match="free_memory"):
        rife.interpolate(real_model, clip(2), 2, free_memory="offload")


# --------------------------------------------------------------------------------------------------- NaN scan


def peak_rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


def measure_peak(action: Callable[[], object]) -> float:
    """Growth of this process's peak resident memory (MiB) during ``action`` (Linux: VmHWM reset by clear_refs)."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")
    before = peak_rss_mib()
    action()
    return peak_rss_mib() - before


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="resets the peak RSS via /proc (Linux)")
def test_nan_scan_memory_is_bounded() -> None:
    """The up-front NaN scan of a 180 MiB clip adds at most a few MiB (measured: 0); the whole-clip scan it
    replaced adds ~300 MiB in the same measurement (so the measurement does see such temporaries)."""
    frames = torch.rand(60, 512, 512, 3)
    check_pixel_values(frames[:4])  # first use of the kernels and the allocator's arenas
    chunked = measure_peak(lambda: check_pixel_values(frames))
    whole_clip = measure_peak(lambda: (~torch.isfinite(frames)).flatten(1).any(1))
    assert whole_clip >= 100, whole_clip
    assert chunked <= 16, f"the NaN scan raised the peak by {chunked:.0f} MiB"


def test_nan_scan_still_names_every_bad_frame() -> None:
    frames = torch.rand(40, 300, 300, 3)  # 270k values per frame: several frames per step
    for index in (0, 13, 14, 39):
        frames[index, 5, 7, index % 3] = float("nan") if index % 2 else float("inf")
    with pytest.raises(rife.InvalidInputError, match=r"4 input frame\(s\) .*frames 0, 13, 14, 39\)"):
        check_pixel_values(frames)
    huge = torch.zeros(2, 2100, 2100, 1)  # frames over the per-step budget: one at a time
    huge[0, 2099, 2099] = float("nan")
    with pytest.raises(rife.InvalidInputError, match=r"frames 0\)"):
        check_pixel_values(huge)


# ------------------------------------------------------------------------------------------ ordinary tensors


def usable_outside_inference_mode(frame: Tensor) -> None:
    assert not torch.is_inference(frame) and not torch.is_inference_mode_enabled()
    frame.mul_(1.0)  # in place
    weight = torch.ones((), requires_grad=True)
    (frame * weight).sum().backward()  # saved for backward
    assert weight.grad is not None


def test_returned_tensors_are_ordinary(real_model) -> None:
    frames = clip(3)
    usable_outside_inference_mode(rife.interpolate(real_model, frames, 2))
    usable_outside_inference_mode(retime(real_model, frames, multiplier=2).frames)
    image = frames[:2].permute(0, 3, 1, 2)
    usable_outside_inference_mode(real_model.infer(image[:1], image[1:]))
    for mode in ("direct", "recursive"):  # originals and in-betweens, streamed
        for frame in rife.stream_interpolate(real_model, LazyFrames(frames), 4, mode=mode):
            usable_outside_inference_mode(frame)  # also: the caller's code between frames is not in inference mode
