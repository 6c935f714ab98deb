"""Timing for real footage (rife.timing): frame-rate conversion, loops, scene cuts and held frames.

Most tests check Plans only (no model); the real model runs on a few 64x64 crops of the real frames."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rife import InvalidInputError, interpolate
from rife.schedule import Copy, Gen, Interp, Plan, Segment, clip_plan
from rife.timing import (
    DEFAULT_DEDUPE_THRESHOLD,
    DEFAULT_SCENE_THRESHOLD,
    conversion_plan,
    detect_held_frames,
    detect_scene_cuts,
    held_score,
    parse_fps,
    retime,
    scene_score,
    thumbnail,
    timed_plan,
)

F0, F1 = Fraction(0), Fraction(1)


class CountingFrames:
    """A lazy frame sequence that records which frames were read."""

    def __init__(self, frames: list[torch.Tensor]) -> None:
        self.frames, self.reads = frames, []

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> torch.Tensor:
        self.reads.append(index)
        return self.frames[index]


def unread(count: int) -> CountingFrames:
    """A clip of ``count`` frames that fails the test if any frame is read."""

    class Unreadable(CountingFrames):
        def __getitem__(self, index: int) -> torch.Tensor:
            raise AssertionError(f"frame {index} was read")

    return Unreadable([torch.zeros(1)] * count)


def square_frame(x: int, shot: str = "a", height: int = 24, width: int = 48) -> torch.Tensor:
    """[H,W,3] frame: a 6x6 square at column ``x``; shot "a" is a dark blue gradient with a white square,
    shot "b" an orange gradient with a green square (a different scene)."""
    ramp = torch.linspace(0.0, 1.0, width).expand(height, width)
    if shot == "a":
        frame = torch.stack([0.1 * ramp, 0.1 + 0.1 * ramp, 0.3 + 0.2 * ramp], dim=-1)
        colour = torch.tensor([1.0, 1.0, 1.0])
    else:
        frame = torch.stack([0.9 - 0.1 * ramp, 0.5 + 0.1 * ramp, 0.1 * ramp], dim=-1)
        colour = torch.tensor([0.0, 0.8, 0.2])
    frame = frame.clone()
    frame[9:15, x : x + 6] = colour
    return frame


def implied_motion(plan: Plan, xs: list[int]) -> list[float]:
    """Where each output frame shows the square of ``xs`` if the model moves it linearly between its anchors
    (source frames or, in the recursive and bisection modes, frames generated before it)."""
    motion = []
    for segment in plan.segments:
        done: dict[int, float] = {}

        def where(ref, done=done) -> float:
            return float(xs[ref]) if isinstance(ref, int) else done[ref.op]

        for index, op in enumerate(segment.ops):
            if isinstance(op, Copy):
                done[index] = float(xs[op.source])
        pending = [i for i, op in enumerate(segment.ops) if isinstance(op, Interp)]
        while pending:
            for i in list(pending):
                op = segment.ops[i]
                if all(isinstance(r, int) or r.op in done for r in (op.a, op.b)):
                    done[i] = where(op.a) + op.t * (where(op.b) - where(op.a))
                    pending.remove(i)
        motion.extend(done[i] for i in range(len(segment.ops)))
    return motion


def check_streaming(plan: Plan, runs: Sequence[tuple[int, int]] = ()) -> None:
    """Positions increase through the plan; a pair segment reads only its two frames, a held-run segment only
    the run's two ends."""
    assert all(p < q for p, q in pairwise(plan.positions()))
    for segment in plan.segments:
        start = math.floor(segment.ops[0].position)
        end = next((b for a, b in runs if a == start), start + 1)
        assert segment.sources() <= {start, end % plan.num_frames}


# ------------------------------------------------------------------------------------------- parse_fps


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (24, Fraction(24)),
        ("24", Fraction(24)),
        (" 60 ", Fraction(60)),
        ("23.976", Fraction(2997, 125)),
        (23.976, Fraction(2997, 125)),
        ("30000/1001", Fraction(30000, 1001)),
        (30000 / 1001, Fraction(30000, 1001)),
        (24000 / 1001, Fraction(24000, 1001)),
        (29.97, Fraction(2997, 100)),
        (12.5, Fraction(25, 2)),
        (Fraction(5, 2), Fraction(5, 2)),
        (np.int64(30), Fraction(30)),
        (np.float32(16.0), Fraction(16)),
    ],
)
def test_parse_fps(value, expected):
    fps = parse_fps(value)
    assert fps == expected
    assert isinstance(fps, Fraction)


@pytest.mark.parametrize("value", [0, -24, "0", "-1/2", 0.0])
def test_parse_fps_rejects_non_positive(value):
    with pytest.raises(InvalidInputError, match=r"A frame rate must be positive, got"):
        parse_fps(value)


@pytest.mark.parametrize("value", ["abc", "", "1/0", "nan", float("nan"), float("inf"), True, None, [24]])
def test_parse_fps_rejects_unreadable(value):
    with pytest.raises(InvalidInputError, match=r"(Cannot read the frame rate|A frame rate must be a positive number)"):
        parse_fps(value)


# ------------------------------------------------------------------------------------------- frame rates


@pytest.mark.parametrize(
    ("fps_in", "fps_out", "expected_count"),
    [(16, 24, 1499), (24, 60, 2498), (30, 24, 800), ("30000/1001", 60, 2000), (60, 24, 400)],
)
def test_conversion_over_1000_frames_is_exact(fps_in, fps_out, expected_count):
    info = timed_plan(unread(1000), fps_in=fps_in, fps_out=fps_out, scene_threshold=0)
    plan = info.plan
    step = parse_fps(fps_in) / parse_fps(fps_out)
    assert plan.num_outputs == expected_count == math.floor(999 / step) + 1
    assert info.fps_out == parse_fps(fps_out)
    assert info.cuts == [] and info.held == []
    for j, op in enumerate(plan.ops()):
        position = j * step
        assert op.position == position  # exact Fraction: no drift after thousands of frames
        pair = math.floor(position)
        if position == pair:
            assert op == Copy(position, pair)
        else:
            assert op == Interp(position, pair, pair + 1, float(position - pair))
    assert plan.positions()[-1] <= 999 < plan.positions()[-1] + step
    check_streaming(plan)


def test_ntsc_to_60_lands_on_a_source_frame_only_every_1001_outputs():
    plan = timed_plan(unread(1000), fps_in="30000/1001", fps_out=60, scene_threshold=0).plan
    copies = [(j, op) for j, op in enumerate(plan.ops()) if isinstance(op, Copy)]
    assert copies == [(0, Copy(F0, 0)), (1001, Copy(Fraction(500), 500))]


def test_16_to_24_copies_every_other_source_frame():
    plan = timed_plan(unread(1000), fps_in=16, fps_out=24, scene_threshold=0).plan
    ops = list(plan.ops())
    assert [op.source for op in ops if isinstance(op, Copy)] == list(range(0, 1000, 2))
    assert ops[1] == Interp(Fraction(2, 3), 0, 1, 2 / 3)
    assert ops[2] == Interp(Fraction(4, 3), 1, 2, float(Fraction(1, 3)))
    # 999 * 24/16 = 1498.5, so j = 1498 (source time 998 2/3) is the last output; frame 999 is never reached
    assert ops[-2:] == [Copy(Fraction(998), 998), Interp(Fraction(2996, 3), 998, 999, float(Fraction(2, 3)))]


@pytest.mark.parametrize("num_frames", [1, 2, 3, 7])
@pytest.mark.parametrize("multiplier", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("loop", [False, True])
def test_integer_ratio_conversion_is_the_multiplier_plan(num_frames, multiplier, loop):
    expected = clip_plan(num_frames, multiplier, "direct", loop=loop)
    conversion = timed_plan(unread(num_frames), fps_in=16, fps_out=16 * multiplier, loop=loop, scene_threshold=0)
    assert conversion.plan == expected
    assert conversion.fps_out == 16 * multiplier
    assert conversion_plan(num_frames, Fraction(25), Fraction(25 * multiplier), loop=loop) == expected


@pytest.mark.parametrize("mode", ["direct", "recursive", "bisect"])
@pytest.mark.parametrize("multiplier", [1, 2, 4, 8])
@pytest.mark.parametrize("loop", [False, True])
def test_multiplier_plan_equals_clip_plan(mode, multiplier, loop):
    info = timed_plan(unread(5), multiplier=multiplier, mode=mode, loop=loop, scene_threshold=0)
    assert info.plan == clip_plan(5, multiplier, mode, loop=loop)
    assert info.fps_out is None


def test_fps_out_reported():
    assert timed_plan(unread(3), multiplier=3, fps_in="30000/1001", scene_threshold=0).fps_out == Fraction(90000, 1001)
    assert timed_plan(unread(3), fps_in=16, fps_out="23.976", scene_threshold=0).fps_out == Fraction(2997, 125)


# ------------------------------------------------------------------------------------------- loops


@pytest.mark.parametrize(
    ("fps_in", "fps_out", "num_frames", "expected_count", "wrap"),
    [
        (16, 24, 10, 15, Interp(Fraction(28, 3), 9, 0, float(Fraction(1, 3)))),
        (24, 60, 10, 25, Interp(Fraction(48, 5), 9, 0, float(Fraction(3, 5)))),
        (30, 24, 9, 8, Interp(Fraction(35, 4), 8, 0, 0.75)),
        ("30000/1001", 60, 1000, 2002, Interp(Fraction(1000500, 1001), 999, 0, float(Fraction(501, 1001)))),
    ],
)
def test_loop_count_and_wrap_frame(fps_in, fps_out, num_frames, expected_count, wrap):
    plan = timed_plan(unread(num_frames), fps_in=fps_in, fps_out=fps_out, loop=True, scene_threshold=0).plan
    step = parse_fps(fps_in) / parse_fps(fps_out)
    assert plan.num_outputs == expected_count == math.ceil(num_frames / step)
    assert plan.positions() == [j * step for j in range(expected_count)]
    assert plan.positions()[-1] < num_frames <= plan.positions()[-1] + step
    assert list(plan.ops())[-1] == wrap  # the last output before the wrap blends last -> first
    check_streaming(plan)


def test_loop_with_multiplier_has_b_times_n_frames_and_wraps():
    plan = timed_plan(unread(6), multiplier=4, loop=True, scene_threshold=0).plan
    assert plan.num_outputs == 24
    assert list(plan.ops())[-3:] == [
        Interp(Fraction(21, 4), 5, 0, 0.25),
        Interp(Fraction(22, 4), 5, 0, 0.5),
        Interp(Fraction(23, 4), 5, 0, 0.75),
    ]


def test_single_frame_clip_gives_one_frame():
    for options in (
        {"multiplier": 4, "loop": True},
        {"fps_in": 16, "fps_out": 24},
        {"fps_in": 16, "fps_out": 24, "loop": True},
    ):
        info = timed_plan(unread(1), **options)
        assert info.plan == Plan(1, (Segment((Copy(F0, 0),)),))


# ------------------------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"multiplier": 2, "fps_in": 16, "fps_out": 32}, "Give either multiplier or fps_out"),
        ({}, "Say how to retime the clip"),
        ({"fps_in": 16}, "Say how to retime the clip"),
        ({"fps_out": 24}, "Say how to retime the clip"),
        ({"fps_in": 16, "fps_out": 24, "mode": "recursive"}, "mode must be 'direct', got 'recursive'"),
        ({"fps_in": 1, "fps_out": 65}, "fps_out may be at most 64 times fps_in"),
        ({"fps_in": 0, "fps_out": 24}, "A frame rate must be positive"),
        ({"multiplier": 3, "mode": "bisect"}, "power of two"),
        ({"multiplier": 0}, "multiplier must be between 1 and 64"),
        ({"multiplier": 2, "mode": "fast"}, "Unknown mode 'fast'"),
        ({"multiplier": 2, "scene_threshold": -0.1}, "scene_threshold must be a finite number >= 0"),
        ({"multiplier": 2, "dedupe": True, "dedupe_threshold": float("nan")}, "dedupe_threshold must be a finite"),
        ({"multiplier": 2, "loop": "yes"}, "loop must be True or False, got 'yes'"),
        ({"multiplier": 2, "cuts": [4]}, r"Cut 4 is not a pair index of this clip.*from 0 to 3 for 5 frames"),
        (
            {"multiplier": 2, "cuts": [5], "loop": True},
            r"Cut 5 is not a pair index.*from 0 to 4 for 5 frames with loop",
        ),
        ({"multiplier": 2, "cuts": [-1]}, "Cut -1 is not a pair index"),
        ({"multiplier": 2, "cuts": [1.5]}, "Cut 1.5 is not a pair index"),
    ],
)
def test_parameter_errors_come_before_any_frame_is_read(options, message):
    with pytest.raises(InvalidInputError, match=message):
        timed_plan(unread(5), **options)


def test_empty_clip_is_rejected():
    with pytest.raises(InvalidInputError, match="Cannot interpolate an empty clip"):
        timed_plan([], multiplier=2)


def test_frames_are_read_once_and_only_when_detection_is_needed():
    frames = CountingFrames([square_frame(4 * k) for k in range(5)])
    timed_plan(frames, multiplier=2, scene_threshold=0)
    timed_plan(frames, multiplier=2, cuts=[1])
    assert frames.reads == []
    timed_plan(frames, multiplier=2, dedupe=True)  # scene detection (default on) and dedupe share one pass
    assert frames.reads == [0, 1, 2, 3, 4]


# ------------------------------------------------------------------------------------------- scene cuts

TWO_SHOTS = [square_frame(0), square_frame(4), square_frame(8), square_frame(0, "b"), square_frame(4, "b")]


def test_detects_the_cut_between_two_shots():
    assert detect_scene_cuts(TWO_SHOTS) == [2]
    assert detect_scene_cuts(TWO_SHOTS, loop=True) == [2, 4]  # b -> a again at the wrap
    assert detect_scene_cuts(TWO_SHOTS, 0) == []
    assert detect_scene_cuts(torch.stack(TWO_SHOTS)) == [2]


@pytest.mark.parametrize("mode", ["direct", "recursive", "bisect"])
def test_in_betweens_across_a_cut_copy_the_nearer_frame(mode):
    info = timed_plan(TWO_SHOTS, multiplier=4, mode=mode)
    base = clip_plan(5, 4, mode)
    assert info.cuts == [2]
    assert info.plan.num_outputs == base.num_outputs == 17
    assert info.plan.positions() == base.positions()
    expected_cut = Segment(
        (Copy(Fraction(2), 2), Copy(Fraction(9, 4), 2), Copy(Fraction(10, 4), 3), Copy(Fraction(11, 4), 3))
    )  # offset 0.5 (a tie) copies the later frame
    assert info.plan.segments == (*base.segments[:2], expected_cut, *base.segments[3:])


def test_cut_during_frame_rate_conversion():
    info = timed_plan(TWO_SHOTS, fps_in=16, fps_out=24)
    assert info.cuts == [2]
    assert [op for op in info.plan.ops() if 2 <= op.position < 3] == [
        Copy(Fraction(2), 2),
        Copy(Fraction(8, 3), 3),
    ]
    assert info.plan.positions() == [Fraction(2 * j, 3) for j in range(7)]


def test_explicit_cuts_replace_detection():
    info = timed_plan(unread(5), multiplier=2, cuts=[3, 0, 3])
    assert info.cuts == [0, 3]
    assert list(info.plan.segments[0].ops) == [Copy(F0, 0), Copy(Fraction(1, 2), 1)]
    assert list(info.plan.segments[3].ops) == [Copy(Fraction(3), 3), Copy(Fraction(7, 2), 4)]
    looped = timed_plan(unread(5), multiplier=2, loop=True, cuts=[4])
    assert list(looped.plan.segments[4].ops) == [Copy(Fraction(4), 4), Copy(Fraction(9, 2), 0)]


def test_ordinary_motion_is_not_a_cut():
    clip = [square_frame(x) for x in (0, 8, 16, 24, 32, 40)]
    info = timed_plan(clip, multiplier=2)
    assert info.cuts == []
    assert info.plan == clip_plan(6, 2)


# ------------------------------------------------------------------------------------------- held frames

HELD_XS = [0, 4, 4, 12, 16, 20, 20, 20, 32]  # frame 2 repeats frame 1, frames 6 and 7 repeat frame 5


def test_detects_held_runs():
    clip = [square_frame(x) for x in HELD_XS]
    assert detect_held_frames(clip) == [(1, 3), (5, 8)]
    assert detect_held_frames([square_frame(x) for x in (0, 4, 8, 8, 8)]) == [(2, 5)]
    assert detect_held_frames([square_frame(x) for x in (0, 4, 8)]) == []


@pytest.mark.parametrize("multiplier", [1, 2, 3])
def test_dedupe_spaces_motion_evenly(multiplier):
    clip = [square_frame(x) for x in HELD_XS]
    info = timed_plan(clip, multiplier=multiplier, dedupe=True)
    assert info.held == [(1, 3), (5, 8)]
    assert info.plan.positions() == clip_plan(9, multiplier).positions()
    assert implied_motion(info.plan, HELD_XS) == pytest.approx([4 * float(p) for p in info.plan.positions()])
    undeduped = timed_plan(clip, multiplier=multiplier).plan
    assert implied_motion(undeduped, HELD_XS) != pytest.approx([4 * float(p) for p in undeduped.positions()])
    check_streaming(info.plan, info.held)


def test_dedupe_ops_of_a_held_run():
    clip = [square_frame(x) for x in HELD_XS]
    segment = next(s for s in timed_plan(clip, multiplier=2, dedupe=True).plan.segments if s.ops[0].position == 1)
    assert segment.ops == (
        Copy(F1, 1),
        Interp(Fraction(3, 2), 1, 3, 0.25),
        Interp(Fraction(2), 1, 3, 0.5),  # the held copy itself becomes an in-between
        Interp(Fraction(5, 2), 1, 3, 0.75),
    )


@pytest.mark.parametrize("mode", ["recursive", "bisect"])
def test_dedupe_in_chained_modes_computes_held_runs_directly(mode):
    clip = [square_frame(x) for x in HELD_XS]
    info = timed_plan(clip, multiplier=4, mode=mode, dedupe=True)
    assert implied_motion(info.plan, HELD_XS) == pytest.approx([4 * float(p) for p in info.plan.positions()])
    held_segments = [s for s in info.plan.segments if {1, 3} == s.sources() or {5, 8} == s.sources()]
    assert len(held_segments) == 2
    assert not any(
        isinstance(r, Gen) for s in held_segments for op in s.ops if isinstance(op, Interp) for r in (op.a, op.b)
    )


def test_dedupe_during_frame_rate_conversion_skips_empty_pairs():
    xs = [0, 4, 4, 12, 16, 20]
    info = timed_plan([square_frame(x) for x in xs], fps_in=60, fps_out=24, dedupe=True)
    assert info.held == [(1, 3)]
    assert list(info.plan.ops()) == [Copy(F0, 0), Interp(Fraction(5, 2), 1, 3, 0.75), Copy(Fraction(5), 5)]


def test_held_run_at_the_end_stays_unless_a_loop_leads_on():
    clip = [square_frame(x) for x in (0, 4, 8, 8)]
    info = timed_plan(clip, multiplier=2, dedupe=True)
    assert info.held == [] and info.plan == clip_plan(4, 2)
    looped = timed_plan(clip, multiplier=2, dedupe=True, loop=True)
    assert looped.held == [(2, 4)]
    assert looped.plan.segments[-1].ops == (
        Copy(Fraction(2), 2),
        Interp(Fraction(5, 2), 2, 0, 0.25),
        Interp(Fraction(3), 2, 0, 0.5),
        Interp(Fraction(7, 2), 2, 0, 0.75),
    )
    cyclic = [square_frame(x) for x in (8, 4, 8, 8)]  # frame 0 repeats the final run too
    assert timed_plan(cyclic, multiplier=2, dedupe=True, loop=True).held == []


def test_held_run_before_a_cut_stays():
    clip = [square_frame(0), square_frame(4), square_frame(4), square_frame(0, "b"), square_frame(4, "b")]
    info = timed_plan(clip, multiplier=2, dedupe=True)
    assert info.cuts == [2]
    assert info.held == []
    assert list(info.plan.segments[1].ops) == [Copy(F1, 1), Interp(Fraction(3, 2), 1, 2, 0.5)]


# ------------------------------------------------------------------------------------------- real frames


def load_png(path: Path) -> torch.Tensor:
    from PIL import Image

    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0)


def fit(frame: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Centre crop to the aspect ratio of height x width, then area-resize to it."""
    frame_h, frame_w = frame.shape[:2]
    crop_h = min(frame_h, round(frame_w * height / width))
    top = (frame_h - crop_h) // 2
    image = frame[top : top + crop_h].permute(2, 0, 1)[None]
    return F.interpolate(image, size=(height, width), mode="area")[0].permute(1, 2, 0)


def jpeg(frame: torch.Tensor, quality: int) -> torch.Tensor:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray((frame.numpy() * 255).round().astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    return load_png(buffer)


@pytest.fixture(scope="module")
def bar(frames_dir: Path) -> list[torch.Tensor]:
    return [load_png(frames_dir / f"{i:07d}.png") for i in range(12)]


@pytest.fixture(scope="module")
def street(frames_dir: Path) -> list[torch.Tensor]:
    return [load_png(frames_dir / "demo_pair" / f"I0_{i}.png") for i in range(2)]


def test_thresholds_separate_real_frames(bar, street):
    """The measurements of bench/timing_thresholds.py behind the defaults (README.md), as guarantees."""
    thumbs = [thumbnail(f) for f in bar]
    street_fit = [thumbnail(fit(f, 135, 256)) for f in street]
    consecutive = [scene_score(a, b) for a, b in pairwise(thumbs)]
    consecutive.append(scene_score(thumbnail(street[0]), thumbnail(street[1])))
    assert max(consecutive) < DEFAULT_SCENE_THRESHOLD / 4
    cuts = [scene_score(b, s) for b in thumbs for s in street_fit]
    assert min(cuts) > DEFAULT_SCENE_THRESHOLD * 1.5
    duplicates = [held_score(t, thumbnail(jpeg(f, q))) for t, f in zip(thumbs, bar, strict=True) for q in (95, 50)]
    assert max(duplicates) < DEFAULT_DEDUPE_THRESHOLD
    distinct = [held_score(a, b) for a, b in pairwise(thumbs)]
    assert min(distinct) > DEFAULT_DEDUPE_THRESHOLD * 1.3


def test_detection_on_real_clips(bar, street):
    assert detect_scene_cuts(bar) == []
    assert detect_scene_cuts(bar + [fit(f, 135, 256) for f in street]) == [11]
    assert detect_held_frames(bar) == []
    held = [bar[0], bar[1], jpeg(bar[1], 50), jpeg(bar[1], 75), bar[2], bar[3], bar[3].clone(), bar[4]]
    assert detect_held_frames(held) == [(1, 4), (5, 7)]


@pytest.fixture(scope="module")
def crops(bar, street) -> dict[str, list[torch.Tensor]]:
    """64x64 crops: "bar" of the bar scene, "street" of the street scene where the car passes."""
    return {"bar": [f[8:72, 16:80] for f in bar], "street": [f[100:164, 200:264] for f in street]}


@pytest.mark.parametrize(("multiplier", "mode"), [(2, "direct"), (3, "recursive"), (4, "bisect")])
def test_multiplier_equals_interpolate(real_model, crops, multiplier, mode):
    frames = torch.stack(crops["bar"][:3])
    result = retime(real_model, frames, multiplier=multiplier, mode=mode, fps_in=16)
    assert result.cuts == [] and result.held == []
    assert result.fps_out == 16 * multiplier
    assert result.positions == clip_plan(3, multiplier, mode).positions()
    assert torch.equal(result.frames, interpolate(real_model, frames, multiplier, mode=mode))


def test_fps_conversion_with_the_real_model(real_model, crops):
    frames = torch.stack(crops["bar"][:3])
    calls = []
    result = retime(real_model, frames, fps_in=16, fps_out=24, batch_size=1, progress=lambda d, t: calls.append((d, t)))
    assert result.positions == [F0, Fraction(2, 3), Fraction(4, 3), Fraction(2)]
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    tripled = interpolate(real_model, frames, 3, batch_size=1)  # holds the same timesteps 2/3 and 4/3
    assert torch.equal(result.frames, tripled[[0, 2, 4, 6]])
    assert torch.equal(retime(real_model, frames, fps_in=16, fps_out=48).frames, interpolate(real_model, frames, 3))


def test_cut_with_the_real_model_never_mixes_shots(real_model, crops):
    frames = torch.stack(crops["bar"][:3] + crops["street"])
    result = retime(real_model, list(frames), multiplier=4)
    assert result.cuts == [2]
    assert result.frames.shape[0] == 17
    across = result.frames[8:12]  # positions 2, 2.25 (copies of frame 2), 2.5, 2.75 (copies of frame 3)
    for out, source in zip(across, (2, 2, 3, 3), strict=True):
        assert torch.equal(out, frames[source])
    for index in (1, 2, 3, 5, 6, 7, 13, 14, 15):  # ordinary in-betweens are real interpolations
        assert not any(torch.equal(result.frames[index], f) for f in frames)


def test_dedupe_with_the_real_model(real_model, crops):
    bar = crops["bar"]
    frames = torch.stack([bar[0], bar[2], bar[2].clone(), bar[4], bar[6]])
    result = retime(real_model, frames, multiplier=1, dedupe=True, batch_size=1)
    assert result.held == [(1, 3)]
    assert result.frames.shape == frames.shape
    assert torch.equal(result.frames[[0, 1, 3, 4]], frames[[0, 1, 3, 4]])
    held_copy = frames[2]
    assert (result.frames[2] - held_copy).abs().max() > 0.05
    midway = interpolate(real_model, frames[[1, 3]], 2, batch_size=1)[1]  # t = 0.5 between the run's ends
    assert torch.equal(result.frames[2], midway)
