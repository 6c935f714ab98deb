"""Timing for real footage: target frame rates, seamless loops, scene cuts and held frames.

Everything here builds a :class:`~rife.schedule.Plan` from the schedule parts (``Copy``/``Interp``) and leaves
the execution to the engine (:func:`rife.run_plan` / :func:`rife.stream_plan`), so the streaming, batching and
feature caching of the engine apply unchanged.

* **Frame rate**: output frame ``j`` sits at source time ``j * fps_in / fps_out`` (an exact ``Fraction``, so
  thousands of frames never drift); it copies a source frame when it lands on one and is interpolated with
  ``t = position - floor(position)`` inside its source pair otherwise.
* **Loop**: the clip is cyclic; the pair last->first is interpolated too.
* **Scene cuts**: pairs whose thumbnails differ in both colour distribution and content are treated as cuts;
  in-betweens across a cut copy the nearer source frame instead of morphing two shots into each other.
* **Held frames**: runs of (near-)duplicate frames can be replaced by in-betweens spanning the run, so motion
  that a generator or an encoder froze for a few frames becomes even again.

Detection measures and default thresholds were chosen by measurement on real frames (``bench/timing_thresholds.py``,
numbers in README.md, "How the defaults were chosen").
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import torch
from torch import Tensor

from .arch import check_ensemble
from .engine import run_plan, stream_plan
from .errors import InvalidInputError
from .model import RIFEModel
from .schedule import Copy, Interp, Mode, Plan, Segment, clip_plan
from .validate import (
    check_batch_size,
    check_bool,
    check_fps_ratio,
    check_mode,
    check_retiming,
    check_scale,
    check_threshold,
)
from .validate import parse_fps as parse_fps

# Scene score of a pair above this is a cut. Measured (bench/timing_thresholds.py, README.md): real consecutive
# pairs <= 0.028; pans up to 32 px/frame, zooms and 20 % exposure jumps <= 0.07; a whip pan of 1/4 of the width per
# frame 0.12; cuts between two scenes >= 0.233. Safe enough to be on by default.
DEFAULT_SCENE_THRESHOLD = 0.15
# Held score of two frames at or below this makes them duplicates. Measured: duplicates re-encoded down to JPEG
# quality 50 or with noise up to 4/255 <= 0.022; distinct real frames with sub-pixel mean motion >= 0.045.
DEFAULT_DEDUPE_THRESHOLD = 0.03
THUMBNAIL_WIDTH = 64
HISTOGRAM_BINS = 16

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TimedPlan:
    """A schedule plus what the timing options found: the output frame rate (``None`` when unknown), the cut
    pairs (``i`` = between source ``i`` and ``i + 1``; with loop ``B - 1`` is the pair last->first) and the held
    runs ``(a, b)`` that were replaced by in-betweens."""

    plan: Plan
    fps_out: Fraction | None
    cuts: list[int]
    held: list[tuple[int, int]]


@dataclass(frozen=True)
class RetimeResult:
    """Output of :func:`retime`: frames [F,H,W,C] float32, the output frame rate, the cuts and held runs applied,
    and the source time of every output frame."""

    frames: Tensor
    fps_out: Fraction | None
    cuts: list[int]
    held: list[tuple[int, int]]
    positions: list[Fraction]


# ----------------------------------------------------------------------------------------------- frame rates


def conversion_positions(num_frames: int, fps_in: Fraction, fps_out: Fraction, *, loop: bool = False) -> list[Fraction]:
    """Source time of every output frame of an ``fps_in`` -> ``fps_out`` conversion of ``num_frames`` frames.

    Without loop: every ``j * fps_in / fps_out <= B - 1``, i.e. ``floor((B-1) * fps_out / fps_in) + 1`` frames.
    With loop: every position ``< B`` (the clip is cyclic), i.e. ``ceil(B * fps_out / fps_in)`` frames.
    A single frame gives one output (as :func:`rife.interpolate`)."""
    step = Fraction(fps_in) / Fraction(fps_out)
    if num_frames <= 1:
        return [Fraction(0)] * num_frames
    count = math.ceil(num_frames / step) if loop else math.floor((num_frames - 1) / step) + 1
    return [j * step for j in range(count)]


def conversion_plan(num_frames: int, fps_in: Fraction, fps_out: Fraction, *, loop: bool = False) -> Plan:
    """Plan of an ``fps_in`` -> ``fps_out`` conversion: one segment per source pair that holds outputs, a Copy
    where a position lands on a source frame, else ``Interp(i, i + 1, t = position - i)`` (``i + 1`` is frame 0
    for the wrap pair of a loop). ``fps_out = N * fps_in`` gives exactly ``clip_plan(B, N, "direct")``."""
    if num_frames < 1:
        raise InvalidInputError("Cannot interpolate an empty clip: at least one frame is needed.")
    by_pair: dict[int, list[Copy | Interp]] = {}
    for position in conversion_positions(num_frames, fps_in, fps_out, loop=loop):
        pair = math.floor(position)
        offset = position - pair
        op = Copy(position, pair) if offset == 0 else Interp(position, pair, _next(pair, num_frames), float(offset))
        by_pair.setdefault(pair, []).append(op)
    return Plan(num_frames, tuple(Segment(tuple(ops)) for ops in by_pair.values()))


def _next(pair: int, num_frames: int) -> int:
    """Right-hand frame of source pair ``pair`` (frame 0 for the wrap pair of a loop)."""
    return (pair + 1) % num_frames


# ----------------------------------------------------------------------------------------------- detection


def thumbnail(frame: Tensor) -> Tensor:
    """[3,h,w] float32 CPU thumbnail of an [H,W,C] frame (float 0..1 or uint8; grey is expanded, alpha ignored):
    the mean of ``k x k`` pixel blocks, ``k = W // THUMBNAIL_WIDTH`` (so 64..127 px wide; narrower frames are
    kept as they are; the few edge pixels that do not fill a block are left out). Detection measures are
    computed on these. Block means read the frame once in its own layout, which is what keeps detection cheap
    (a few ms for a 1080p frame)."""
    if not isinstance(frame, Tensor) or frame.ndim != 3 or frame.shape[-1] not in (1, 3, 4) or frame.numel() == 0:
        shape = tuple(frame.shape) if isinstance(frame, Tensor) else type(frame).__name__
        raise InvalidInputError(f"A frame must be an [H,W,C] tensor with C = 1, 3 or 4, got {shape}.")
    height, width, channels = frame.shape
    block = max(1, min(width // THUMBNAIL_WIDTH, height))
    rows, cols = height // block, width // block
    # Rows first, with width and channels as one dimension: that reduction is memory-bound and fast.
    strips = frame[: rows * block].reshape(rows, block, width * channels).float().mean(1)
    strips = strips.view(rows, width, channels)
    small = strips[:, : cols * block].reshape(rows, cols, block, channels).mean(2)
    if frame.dtype == torch.uint8:
        small = small / 255.0
    return small[..., :3].expand(-1, -1, 3).permute(2, 0, 1).clamp(0.0, 1.0).cpu().contiguous()


def scene_score(thumb_a: Tensor, thumb_b: Tensor) -> float:
    """How strongly two thumbnails look like different shots, 0..1: the smaller of the colour-histogram distance
    (total variation over 16 bins per channel; blind to motion) and the mean absolute difference (blind to a
    global exposure change). A cut changes both; a fast pan only the second, a fade or flicker only the first."""
    _check_same_size(thumb_a, thumb_b)
    mean_difference = (thumb_a - thumb_b).abs().mean().item()
    return min(_histogram_distance(thumb_a, thumb_b), mean_difference)


def held_score(thumb_a: Tensor, thumb_b: Tensor) -> float:
    """How different two thumbnails are as a held (repeated) frame would never be, 0..1: the largest absolute
    difference of their grey levels. Averaging into thumbnail pixels removes encoder noise; the maximum keeps
    the local change of a small moving object, which a mean would dilute."""
    _check_same_size(thumb_a, thumb_b)
    return (thumb_a.mean(0) - thumb_b.mean(0)).abs().max().item()


def _histogram_distance(thumb_a: Tensor, thumb_b: Tensor) -> float:
    total = 0.0
    for channel_a, channel_b in zip(thumb_a, thumb_b, strict=True):
        hist_a = torch.histc(channel_a, HISTOGRAM_BINS, 0.0, 1.0)
        hist_b = torch.histc(channel_b, HISTOGRAM_BINS, 0.0, 1.0)
        total += (hist_a / hist_a.sum() - hist_b / hist_b.sum()).abs().sum().item() / 2
    return total / thumb_a.shape[0]


def _check_same_size(thumb_a: Tensor, thumb_b: Tensor) -> None:
    if thumb_a.shape != thumb_b.shape:
        raise InvalidInputError(
            f"All frames must have the same size to compare them (thumbnails {tuple(thumb_a.shape)} and "
            f"{tuple(thumb_b.shape)})."
        )


@dataclass(frozen=True)
class _Detection:
    cuts: list[int]
    held: list[tuple[int, int]]
    last_run_leads_to_first: bool  # the final held run differs from frame 0 (so a loop can retime it)


def _detect(
    frames: Sequence[Tensor], *, scene_threshold: float | None, dedupe_threshold: float | None, loop: bool
) -> _Detection:
    """One pass over ``frames`` (each read once, only a few thumbnails kept): cut pairs when ``scene_threshold``
    is given, held runs when ``dedupe_threshold`` is given; no frame is read when neither is."""
    count = len(frames)
    cuts: list[int] = []
    held: list[tuple[int, int]] = []
    if count < 2 or (scene_threshold is None and dedupe_threshold is None):
        return _Detection(cuts, held, False)
    first = previous = anchor = thumbnail(frames[0])
    anchor_index = 0
    for index in range(1, count):
        current = thumbnail(frames[index])
        if scene_threshold is not None and scene_score(previous, current) > scene_threshold:
            cuts.append(index - 1)
        if dedupe_threshold is not None and held_score(anchor, current) > dedupe_threshold:
            if index - anchor_index > 1:
                held.append((anchor_index, index))
            anchor, anchor_index = current, index
        previous = current
    if scene_threshold is not None and loop and scene_score(previous, first) > scene_threshold:
        cuts.append(count - 1)
    leads_to_first = False
    if dedupe_threshold is not None and count - anchor_index > 1:
        held.append((anchor_index, count))
        leads_to_first = held_score(anchor, first) > dedupe_threshold
    return _Detection(cuts, held, leads_to_first)


def detect_scene_cuts(
    frames: Sequence[Tensor], threshold: float = DEFAULT_SCENE_THRESHOLD, *, loop: bool = False
) -> list[int]:
    """Cut pairs of a clip: ``i`` means source ``i`` and ``i + 1`` belong to different shots (their
    :func:`scene_score` is above ``threshold``). With ``loop`` the pair last->first is checked too (index B-1).
    ``threshold`` 0 disables detection."""
    threshold = check_threshold(threshold, "scene_threshold")
    if threshold == 0:
        return []
    return _detect(frames, scene_threshold=threshold, dedupe_threshold=None, loop=loop).cuts


def detect_held_frames(frames: Sequence[Tensor], threshold: float = DEFAULT_DEDUPE_THRESHOLD) -> list[tuple[int, int]]:
    """Held runs ``(a, b)``: frames ``a + 1 .. b - 1`` repeat frame ``a`` (their :func:`held_score` against
    frame ``a`` is at most ``threshold``) and ``b`` is the next distinct frame, or ``B`` when the run lasts to
    the end of the clip."""
    threshold = check_threshold(threshold, "dedupe_threshold")
    return _detect(frames, scene_threshold=None, dedupe_threshold=threshold, loop=False).held


# ----------------------------------------------------------------------------------------------- plans


def timed_plan(
    frames: Sequence[Tensor],
    *,
    multiplier: int | None = None,
    mode: Mode = "direct",
    fps_in: int | float | str | Fraction | None = None,
    fps_out: int | float | str | Fraction | None = None,
    loop: bool = False,
    scene_threshold: float = DEFAULT_SCENE_THRESHOLD,
    cuts: Iterable[int] | None = None,
    dedupe: bool = False,
    dedupe_threshold: float = DEFAULT_DEDUPE_THRESHOLD,
) -> TimedPlan:
    """Schedule a clip with the timing options; ``frames`` (any sequence with ``len`` and ``[i]`` -> [H,W,C],
    or a [B,H,W,C] tensor) is read once, as thumbnails, only when detection is needed.

    Give exactly one of ``multiplier`` (optionally with ``fps_in`` to learn ``fps_out``) or ``fps_in`` and
    ``fps_out``. Frame rate conversion is direct; ``mode`` recursive/bisect needs a multiplier.

    * ``loop``: also interpolate last->first (multiplier: ``B*N`` frames; fps: ``ceil(B*fps_out/fps_in)``).
    * ``cuts``: cut pairs to use instead of detection; otherwise pairs are detected with ``scene_threshold``
      (0 disables). In-betweens across a cut copy the nearer source frame: offset < 0.5 the earlier one, offset
      >= 0.5 (a tie included) the later one. Frame count and positions do not change.
    * ``dedupe``: detect held runs with ``dedupe_threshold`` and compute their outputs ``p`` in ``[a, b)`` as
      ``Interp(a, b, (p - a) / (b - a))`` directly (whatever ``mode``), ``p = a`` staying a copy. A run at the end
      of the clip stays as it is (there is no next frame), except with loop where it leads to frame 0 (unless
      frame 0 repeats it too); a run whose next frame is across a cut stays as it is.
    """
    mode = check_mode(mode)
    rate_in = None if fps_in is None else parse_fps(fps_in)
    rate_out = None if fps_out is None else parse_fps(fps_out)
    multiplier = check_retiming(multiplier, rate_out, mode)
    if multiplier is not None:
        result_fps = None if rate_in is None else rate_in * multiplier
    else:
        if rate_in is None or rate_out is None:
            raise InvalidInputError(
                "Say how to retime the clip: multiplier=N, or fps_in and fps_out (e.g. fps_in=16, fps_out=24)."
            )
        check_fps_ratio(rate_in, rate_out)
        result_fps = rate_out
    loop, dedupe = check_bool(loop, "loop"), check_bool(dedupe, "dedupe")
    scene_threshold = check_threshold(scene_threshold, "scene_threshold")
    dedupe_threshold = check_threshold(dedupe_threshold, "dedupe_threshold")
    try:
        num_frames = len(frames)
    except TypeError as error:
        raise InvalidInputError(
            f"frames must be a [B,H,W,C] tensor or a sequence of [H,W,C] frames, got {type(frames).__name__}."
        ) from error
    if num_frames < 1:
        raise InvalidInputError("Cannot interpolate an empty clip: at least one frame is needed.")
    explicit_cuts = None if cuts is None else _check_cuts(cuts, num_frames, loop)

    if multiplier is not None:
        base = clip_plan(num_frames, multiplier, mode, loop=loop)
    else:
        assert rate_in is not None and rate_out is not None
        base = conversion_plan(num_frames, rate_in, rate_out, loop=loop)
    detect_cuts = explicit_cuts is None and scene_threshold > 0
    found = _detect(
        frames,
        scene_threshold=scene_threshold if detect_cuts else None,
        dedupe_threshold=dedupe_threshold if dedupe else None,
        loop=loop,
    )
    cut_pairs = found.cuts if explicit_cuts is None else explicit_cuts
    runs = _runs_to_retime(found, set(cut_pairs), num_frames, loop)
    return TimedPlan(_apply(base, set(cut_pairs), runs), result_fps, cut_pairs, runs)


def _runs_to_retime(found: _Detection, cuts: set[int], num_frames: int, loop: bool) -> list[tuple[int, int]]:
    """Held runs whose outputs become in-betweens: not at the end of the clip (unless a loop leads on to a
    distinct frame 0) and with no cut between the run's first frame and its next distinct frame."""
    runs = []
    for start, end in found.held:
        if end == num_frames and not (loop and found.last_run_leads_to_first):
            continue
        if any(pair in cuts for pair in range(start, end)):
            continue
        runs.append((start, end))
    return runs


def _apply(base: Plan, cuts: set[int], runs: list[tuple[int, int]]) -> Plan:
    """``base`` with the segments of cut pairs turned into copies and each held run's segments merged into one
    segment of in-betweens spanning the run. Segment order (and so output order) is unchanged."""
    num_frames = base.num_frames
    run_of = {pair: (start, end) for start, end in runs for pair in range(start, end)}
    segments: list[Segment] = []
    index = 0
    while index < len(base.segments):
        segment = base.segments[index]
        pair = math.floor(segment.ops[0].position)
        if pair in run_of:
            start, end = run_of[pair]
            ops: list[Copy | Interp] = []
            while index < len(base.segments) and base.segments[index].ops[0].position < end:
                ops.extend(_held_op(op.position, start, end, num_frames) for op in base.segments[index].ops)
                index += 1
            segments.append(Segment(tuple(ops)))
            continue
        if pair in cuts:
            segment = Segment(tuple(_cut_op(op.position, pair, num_frames) for op in segment.ops))
        segments.append(segment)
        index += 1
    return Plan(num_frames, tuple(segments))


def _cut_op(position: Fraction, pair: int, num_frames: int) -> Copy:
    """Output at ``position`` inside cut pair ``pair``: a copy of the nearer frame (a tie goes to the later)."""
    return Copy(position, pair if position - pair < Fraction(1, 2) else _next(pair, num_frames))


def _held_op(position: Fraction, start: int, end: int, num_frames: int) -> Copy | Interp:
    """Output at ``position`` inside held run ``[start, end)``, spaced evenly between ``start`` and ``end``."""
    if position == start:
        return Copy(position, start)
    return Interp(position, start, end % num_frames, float((position - start) / (end - start)))


def _check_cuts(cuts: Iterable[int], num_frames: int, loop: bool) -> list[int]:
    """Sorted unique cut pairs, each ``0 <= i < B - 1`` (``<= B - 1`` with loop, the last being last->first)."""
    pairs = num_frames if loop else num_frames - 1
    try:
        values = list(cuts)
    except TypeError as error:
        raise InvalidInputError(f"cuts must be a list of pair indices, got {cuts!r}.") from error
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < pairs:
            raise InvalidInputError(
                f"Cut {value!r} is not a pair index of this clip: a cut i lies between frames i and i+1, "
                f"so it must be an integer from 0 to {pairs - 1} for {num_frames} frames"
                + (" with loop." if loop else " (B-1 is the loop's last->first pair, which needs loop=True).")
            )
    return sorted({int(value) for value in values})


# ----------------------------------------------------------------------------------------------- running


def retime(
    model: RIFEModel,
    frames: Tensor | Sequence[Tensor],
    *,
    scale: float = 1.0,
    progress: Progress | None = None,
    batch_size: int | None = None,
    free_memory: Callable[[], None] | None = None,
    ensemble: bool = False,
    **timed_plan_options,
) -> RetimeResult:
    """Run :func:`timed_plan` on ``frames`` ([B,H,W,C] tensor or a lazy sequence of [H,W,C] frames) with the
    model and return every output frame; options as :func:`timed_plan`, the rest (out of memory and
    ``free_memory`` included) as :func:`rife.run_plan`.
    With a multiplier (and no cuts or held runs found) the frames equal :func:`rife.interpolate`'s exactly."""
    scale = check_scale(scale)
    check_batch_size(batch_size)
    check_ensemble(model.spec, ensemble)
    info = timed_plan(frames, **timed_plan_options)
    options = {"scale": scale, "progress": progress, "batch_size": batch_size}
    options |= {"free_memory": free_memory, "ensemble": ensemble}
    if isinstance(frames, Tensor):
        out = run_plan(model, frames, info.plan, **options)
    else:  # one preallocated output, as run_plan does, instead of a list and a stacked copy of it
        stream = stream_plan(model, frames, info.plan, **options)
        first = next(stream)
        out = torch.empty((info.plan.num_outputs, *first.shape), dtype=first.dtype)
        out[0] = first
        for index, frame in enumerate(stream, start=1):
            out[index] = frame
    return RetimeResult(out, info.fps_out, info.cuts, info.held, info.plan.positions())
