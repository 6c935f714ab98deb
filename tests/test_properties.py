"""Property-based tests (hypothesis): for any clip size, multiplier, mode, dtype and channel count the engine
returns the right number of frames of the right shape, float32 values in 0..1, and the originals exactly.

Examples are derandomized (the same on every run, so CI cannot flake) and few enough to stay well under a
minute with the real weights on two CPU cores.
"""

from __future__ import annotations

from fractions import Fraction

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rife
from rife.schedule import Copy, Gen, Interp, clip_plan, output_count

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.uint8]


@st.composite
def clips(draw: st.DrawFn) -> dict:
    """A clip and the options to interpolate it with (bisect only with powers of two)."""
    mode = draw(st.sampled_from(rife.MODES))
    multiplier = draw(st.sampled_from([1, 2, 4]) if mode == "bisect" else st.integers(1, 5))
    return {
        "count": draw(st.integers(1, 4)),
        "height": draw(st.integers(1, 80)),
        "width": draw(st.integers(1, 80)),
        "channels": draw(st.sampled_from([1, 3, 4])),
        "dtype": draw(st.sampled_from(DTYPES)),
        "multiplier": multiplier,
        "mode": mode,
        "loop": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


def make_frames(clip: dict) -> torch.Tensor:
    generator = torch.Generator().manual_seed(clip["seed"])
    shape = (clip["count"], clip["height"], clip["width"], clip["channels"])
    if clip["dtype"] == torch.uint8:
        return torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
    return torch.rand(shape, generator=generator).to(clip["dtype"])


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(clip=clips())
def test_interpolate_keeps_counts_shapes_range_and_originals(clip: dict, real_model) -> None:
    frames = make_frames(clip)
    multiplier, count = clip["multiplier"], clip["count"]
    out = rife.interpolate(real_model, frames, multiplier=multiplier, mode=clip["mode"], loop=clip["loop"])

    assert out.shape == (output_count(count, multiplier, loop=clip["loop"]), *frames.shape[1:])
    assert out.dtype == torch.float32 and out.device == frames.device
    assert bool(torch.isfinite(out).all())
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    as_float = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
    step = multiplier if count > 1 else 1
    assert torch.equal(out[::step][:count], as_float)


def anchor_depths(ops: tuple) -> dict[int, int]:
    """Op index -> how many model calls deep that in-between is (1: both anchors are source frames); fails
    on a cycle or on a reference to a copy or to a missing op."""
    depths: dict[int, int] = {}

    def depth(index: int, path: frozenset[int]) -> int:
        if index not in depths:
            assert index not in path, f"cyclic reference through op {index}"
            op = ops[index]
            assert isinstance(op, Interp), f"op {index} is used as an anchor but is not an in-between"
            below = [depth(ref.op, path | {index}) for ref in (op.a, op.b) if isinstance(ref, Gen)]
            depths[index] = 1 + max(below, default=0)
        return depths[index]

    for index, op in enumerate(ops):
        if isinstance(op, Interp):
            assert all(0 <= ref.op < len(ops) for ref in (op.a, op.b) if isinstance(ref, Gen))
            depth(index, frozenset())
    return depths


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    count=st.integers(1, 9),
    multiplier=st.integers(1, 64),
    mode=st.sampled_from(rife.MODES),
    loop=st.booleans(),
)
def test_clip_plans_are_well_formed(count: int, multiplier: int, mode: str, loop: bool) -> None:
    """Every schedule: the announced length, positions k/multiplier in order, originals copied at
    k*multiplier, in-betweens at a t strictly inside (0, 1) from anchors that resolve, without cycles, to
    source frames of the clip."""
    if mode == "bisect":
        multiplier = 1 << (multiplier.bit_length() - 1)  # the largest power of two <= multiplier
    plan = clip_plan(count, multiplier, mode, loop=loop)
    assert plan.num_frames == count and plan.num_outputs == output_count(count, multiplier, loop=loop)
    step = multiplier if count > 1 else 1
    assert plan.positions() == [Fraction(k, step) for k in range(plan.num_outputs)]
    for segment in plan.segments:
        depths = anchor_depths(segment.ops)
        for index, op in enumerate(segment.ops):
            if isinstance(op, Copy):
                assert op.position == op.source
            else:
                assert isinstance(op, Interp) and 0.0 < op.t < 1.0 and depths[index] >= 1
                assert all(0 <= ref < count for ref in (op.a, op.b) if isinstance(ref, int))
    copies = [op for op in plan.ops() if isinstance(op, Copy)]
    assert [op.source for op in copies] == list(range(count))
