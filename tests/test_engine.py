"""The engine: schedules over whole clips, feature caching, streaming, progress and cancellation."""

from __future__ import annotations

import json
import threading
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rife import InvalidInputError, clip_plan, interpolate, output_count, stream_interpolate
from rife.ifnet import WarpGrid
from rife.schedule import Copy, Gen, Interp

SCHEDULE_ATOL = 1e-4


@pytest.fixture(scope="module")
def schedule_gold(golden_dir: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    manifest = json.loads((golden_dir / "schedules" / "manifest.json").read_text())
    return manifest["sequences"], load_file(str(golden_dir / "schedules" / "schedules.safetensors"))


def to_hwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).contiguous()


SEQUENCES = [
    "direct_m2", "direct_m3", "direct_m4", "direct_m8", "recursive_m3", "recursive_m4", "recursive_m5",
    "recursive_m8", "bisect_m2", "bisect_m4", "bisect_m8",
]  # fmt: skip


@pytest.mark.parametrize("name", SEQUENCES)
def test_schedules_reproduce_the_official_sequences(name: str, schedule_gold, real_model) -> None:
    sequences, tensors = schedule_gold
    info = sequences[name]
    out = interpolate(real_model, to_hwc(tensors["frames"]), info["multiplier"], 1.0, info["mode"])
    assert out.shape == to_hwc(tensors[name]).shape
    assert (out - to_hwc(tensors[name])).abs().max().item() <= SCHEDULE_ATOL


@pytest.mark.parametrize("name", SEQUENCES)
def test_plans_use_the_official_anchors_and_timesteps(name: str, schedule_gold) -> None:
    """Every generated frame comes from the same two frames and the same t as in the reference run."""
    sequences, _ = schedule_gold
    info = sequences[name]
    plan = clip_plan(info["frames"] // info["multiplier"] + 1, info["multiplier"], info["mode"])
    table = info["table"]
    assert [str(p) for p in plan.positions()] == [row["position"] for row in table]
    index = 0
    for segment in plan.segments:
        base = index  # Gen refs are relative to the segment, the manifest's anchors to the whole sequence

        def seq_index(ref, base=base) -> int:
            return base + ref.op if isinstance(ref, Gen) else ref * info["multiplier"]

        for op in segment.ops:
            row = table[index]
            if isinstance(op, Copy):
                assert row["kind"] == "original" and row["source"] == f"frames[{op.source}]"
            else:
                assert (seq_index(op.a), seq_index(op.b)) == (row["anchor0"], row["anchor1"])
                assert op.t == row["t"]
            index += 1


@pytest.mark.parametrize("mode", ["direct", "recursive", "bisect"])
@pytest.mark.parametrize("frames", [1, 2, 5])
@pytest.mark.parametrize("multiplier", [1, 2, 4, 8, 3, 5])
def test_counts_and_placement(mode: str, frames: int, multiplier: int) -> None:
    if mode == "bisect" and multiplier & (multiplier - 1):
        with pytest.raises(InvalidInputError, match="power of two"):
            clip_plan(frames, multiplier, mode)
        return
    for loop in (False, True):
        plan = clip_plan(frames, multiplier, mode, loop=loop)
        positions = plan.positions()
        assert len(positions) == plan.num_outputs == output_count(frames, multiplier, loop=loop)
        expected_len = 1 if frames == 1 else (frames if loop else frames - 1) * multiplier + (0 if loop else 1)
        assert plan.num_outputs == expected_len
        assert positions == sorted(positions) and len(set(positions)) == len(positions)
        assert all(p == Fraction(i, multiplier) for i, p in enumerate(positions))
        ops = list(plan.ops())
        for i in range(frames if frames > 1 else 1):
            if i * multiplier < len(ops):
                assert ops[i * multiplier] == Copy(Fraction(i), i)
        interps = [op for op in ops if isinstance(op, Interp)]
        assert all(0 < op.t < 1 for op in interps)


def test_loop_wraps_last_to_first() -> None:
    plan = clip_plan(3, 4, "direct", loop=True)
    last_segment = plan.segments[-1].ops
    assert last_segment[0] == Copy(Fraction(2), 2)
    assert [(op.a, op.b, op.t) for op in last_segment[1:]] == [(2, 0, 0.25), (2, 0, 0.5), (2, 0, 0.75)]
    assert plan.num_outputs == 12


def test_recursive_and_bisect_chain_through_generated_frames() -> None:
    ops = clip_plan(2, 8, "bisect").segments[0].ops
    assert ops[4] == Interp(Fraction(4, 8), 0, 1, 0.5)
    assert ops[2] == Interp(Fraction(2, 8), 0, Gen(4), 0.5)
    assert ops[1] == Interp(Fraction(1, 8), 0, Gen(2), 0.5)
    ops = clip_plan(2, 6, "recursive").segments[0].ops
    assert ops[1] == Interp(Fraction(1, 6), 0, 1, 1 / 6) and ops[5] == Interp(Fraction(5, 6), 0, 1, 5 / 6)
    assert ops[2] == Interp(Fraction(2, 6), Gen(1), Gen(5), 0.25) and ops[4].t == 0.75
    assert ops[3] == Interp(Fraction(3, 6), Gen(2), Gen(4), 0.5)


def clip(frames: int = 4, height: int = 40, width: int = 56) -> torch.Tensor:
    """A small real-looking clip: a textured square sliding right 3 px per frame."""
    generator = torch.Generator().manual_seed(0)
    background = torch.rand(height, width + 3 * frames, 3, generator=generator) * 0.3 + 0.2
    texture = torch.rand(12, 12, 3, generator=generator)
    out = []
    for i in range(frames):
        canvas = background[:, i : i + width].clone()
        canvas[14:26, 10 + 3 * i : 22 + 3 * i] = texture
        out.append(canvas)
    return torch.stack(out)


def test_originals_are_copied_bit_exact(real_model) -> None:
    frames = clip(3) * 0.9 + 0.05
    for mode in ("direct", "recursive", "bisect"):
        out = interpolate(real_model, frames, 4, 1.0, mode)
        assert out.shape == (9, *frames.shape[1:]) and out.dtype == torch.float32
        assert all(torch.equal(out[4 * i], frames[i]) for i in range(3))
        assert not torch.equal(out[1], out[0]) and out.min() >= 0 and out.max() <= 1


def test_single_frame_is_returned_unchanged_and_empty_is_an_error(real_model) -> None:
    frames = clip(1)
    out = interpolate(real_model, frames, 4)
    assert torch.equal(out, frames) and out.data_ptr() != frames.data_ptr()
    with pytest.raises(InvalidInputError, match="empty"):
        interpolate(real_model, frames[:0], 4)


def test_encoder_runs_once_per_input_frame(real_model) -> None:
    """Every input frame is encoded once, although it serves 2 pairs and 3 timesteps each."""
    calls: list[int] = []
    handle = real_model.net.encode.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    try:
        out = interpolate(real_model, clip(5), 4, batch_size=2)
    finally:
        handle.remove()
    assert out.shape[0] == 17
    assert sum(calls) == 5


def test_warp_grid_is_built_once_per_run(real_model, monkeypatch) -> None:
    sizes: list[tuple[int, int]] = []
    original = WarpGrid.for_size.__func__

    def counting(cls, height: int, width: int, device: torch.device) -> WarpGrid:
        sizes.append((height, width))
        return original(cls, height, width, device)

    monkeypatch.setattr(WarpGrid, "for_size", classmethod(counting))
    out = interpolate(real_model, clip(5), 4, mode="recursive")
    assert out.shape[0] == 17
    assert sizes == [(64, 64)]


def test_timestep_batches_do_not_change_results(real_model, schedule_gold) -> None:
    # real frames: the random texture of clip() is so ill-conditioned that float rounding alone moves it ~1e-4
    frames = to_hwc(schedule_gold[1]["frames"])
    one = interpolate(real_model, frames, 4, batch_size=1)
    three = interpolate(real_model, frames, 4, batch_size=3)
    assert (one - three).abs().max() <= SCHEDULE_ATOL


class LazyFrames:
    """A frame sequence that records which frames are read (like the CLI's folder reader)."""

    def __init__(self, frames: torch.Tensor) -> None:
        self.frames, self.reads = frames, []

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> torch.Tensor:
        self.reads.append(index)
        return self.frames[index].clone()


def test_streaming_reads_each_frame_once_and_matches_batch(real_model) -> None:
    frames = clip(5)
    lazy = LazyFrames(frames)
    streamed = list(stream_interpolate(real_model, lazy, 3, mode="recursive"))
    assert sorted(lazy.reads) == list(range(5))
    assert torch.equal(torch.stack(streamed), interpolate(real_model, frames, 3, mode="recursive"))


def test_progress_counts_every_output_frame(real_model) -> None:
    seen: list[tuple[int, int]] = []
    interpolate(real_model, clip(3), 3, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 7) for i in range(1, 8)]


class Cancelled(Exception):
    pass


@pytest.fixture
def flow_calls(real_model, monkeypatch) -> dict[str, int]:
    """Counts the network's flow calls (one per timestep batch) during the test."""
    calls = {"flow": 0}
    original = real_model.net.flow

    def counting_flow(*args, **kwargs):
        calls["flow"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(real_model.net, "flow", counting_flow)
    return calls


def test_cancellation_stops_promptly_and_returns_nothing(real_model, flow_calls) -> None:

    def cancel_after_five(done: int, total: int) -> None:
        if done == 5:
            raise Cancelled

    result = None
    with pytest.raises(Cancelled):
        result = interpolate(real_model, clip(6), 4, progress=cancel_after_five, batch_size=1)
    assert result is None
    # frames 0..4 need the in-betweens 1, 2, 3 and 5 (a copy) ... the 5th output is source 1's copy plus one
    # in-between computed for it at most: nothing beyond the next timestep batch runs after cancelling
    assert flow_calls["flow"] <= 4


@pytest.fixture
def two_threads():
    """The CPU engine runs segments on parallel workers when torch has several threads (tests pin one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_parallel_cpu_workers_give_the_serial_result(real_model, two_threads) -> None:
    frames = clip(5)
    seen: list[int] = []
    parallel = interpolate(real_model, frames, 3, mode="recursive", progress=lambda done, total: seen.append(done))
    assert torch.get_num_threads() == 2  # restored after the run
    torch.set_num_threads(1)
    serial = interpolate(real_model, frames, 3, mode="recursive")
    assert seen == list(range(1, 14))
    assert (parallel - serial).abs().max() <= SCHEDULE_ATOL
    assert all(torch.equal(parallel[3 * i], frames[i]) for i in range(5))


def test_parallel_cancellation_stops_the_workers(real_model, two_threads, flow_calls) -> None:

    def cancel_at_third(done: int, total: int) -> None:
        if done == 3:
            raise Cancelled

    with pytest.raises(Cancelled):
        interpolate(real_model, clip(4, 32, 40), 16, progress=cancel_at_third)
    # 3 pairs of 15 in-betweens: the 3rd frame needs 2 of them; besides those at most the in-betweens in flight
    # (two per worker) run, not the other 43
    assert flow_calls["flow"] <= 2 + 4
    assert torch.get_num_threads() == 2


def test_parallel_workers_share_the_in_betweens_of_one_pair(real_model, two_threads, monkeypatch) -> None:
    """Work is split per in-between, not per pair: a single pair keeps both workers busy."""
    threads: set[str] = set()
    original = real_model.net.flow

    def recording_flow(*args, **kwargs):
        threads.add(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(real_model.net, "flow", recording_flow)
    out = interpolate(real_model, clip(2), 4)
    assert out.shape[0] == 5
    assert len(threads) == 2
    assert threading.main_thread().name not in threads


def test_closing_a_stream_early_stops_the_workers(real_model, two_threads) -> None:
    stream = stream_interpolate(real_model, LazyFrames(clip(6)), 4)
    first = next(stream)
    stream.close()
    assert first.shape == (40, 56, 3)
    assert torch.get_num_threads() == 2


@pytest.fixture(scope="module")
def real_clip(frames_dir: Path) -> torch.Tensor:
    """5 real 256x135 frames [B,H,W,3]."""
    import numpy as np
    from PIL import Image

    paths = sorted(frames_dir.glob("0*.png"))[:5]
    return torch.from_numpy(np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])).float() / 255


def batch_sizes(model, monkeypatch) -> list[int]:
    sizes: list[int] = []
    original = model.net.flow

    def recording_flow(frame0, frame1, timestep, **options):
        sizes.append(int(timestep.shape[0]))
        return original(frame0, frame1, timestep, **options)

    monkeypatch.setattr(model.net, "flow", recording_flow)
    return sizes


@pytest.mark.parametrize(
    ("multiplier", "mode", "fps", "in_betweens", "most_calls"),
    [
        (2, "direct", None, 4, 1),  # 4 pairs with one in-between each: one call
        (3, "direct", None, 8, 2),
        (4, "recursive", None, 12, 4),  # the middles wait for generated anchors
        (4, "bisect", None, 12, 4),
        (None, "direct", (24, 60), 8, 2),  # frame-rate conversion: positions 0.4, 0.8, 1.2, ... (copies at 0, 2, 4)
    ],
)
def test_cross_pair_batches_give_the_batch_one_frames(
    multiplier, mode, fps, in_betweens, most_calls, real_model, real_clip, monkeypatch
) -> None:
    """In-betweens of different pairs share one network call, and the frames equal batch 1's (float rounding)."""
    from rife.timing import retime

    def run(batch_size: int) -> torch.Tensor:
        if fps is None:
            return interpolate(real_model, real_clip, multiplier, mode=mode, batch_size=batch_size)
        return retime(real_model, real_clip, fps_in=fps[0], fps_out=fps[1], batch_size=batch_size).frames

    one = run(1)
    sizes = batch_sizes(real_model, monkeypatch)
    four = run(4)
    assert sum(sizes) == in_betweens and len(sizes) <= most_calls and max(sizes) == 4, sizes
    assert one.shape == four.shape
    assert (one - four).abs().max() <= SCHEDULE_ATOL
