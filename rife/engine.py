"""Execute schedules over whole clips: the fast, memory-bounded part of the library.

A run walks a :class:`~rife.schedule.Plan` segment by segment, in four pieces that each do one thing:

- :class:`_FrameStore` reads each source frame once, keeps it (float32, for exact copies, and encoded for the
  model) only while a later segment still reads it;
- :class:`_Inference` is the model side: it encodes anchors and computes in-betweens, the one place that calls
  the network (``net.flow``); generated anchors stay on the compute device;
- :class:`_Workers` runs chunks of work: on CPU on several single-threaded threads, elsewhere inline;
- :class:`_Scheduler` hands out the output frames in order while computing in-betweens ahead of them, in
  chunks of up to ``batch_size`` in-betweens that may belong to different pairs (one network call);
  out of memory is answered by :class:`~rife.memory.MemoryPolicy`.

Outputs are written into one preallocated tensor (:func:`run_plan`) or handed out one by one
(:func:`stream_plan`), so a folder of thousands of frames never sits in memory. ``progress(done, total)`` runs
after every output frame and may raise to cancel. Every returned tensor is an ordinary tensor (not an
inference-mode one): callers may use it in autograd or modify it in place.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import torch
from torch import Tensor

from .arch import check_ensemble
from .errors import InvalidInputError, OutOfMemory, RIFEError
from .ifnet import PreparedFrame, WarpGrid, blend, pad_to_multiple
from .memory import FreeMemory, MemoryPolicy, is_out_of_memory
from .model import RIFEModel
from .schedule import Copy, Gen, Interp, Mode, Plan, Ref, Segment, clip_plan
from .validate import check_batch_size as check_batch_size
from .validate import check_frames as check_frames
from .validate import check_pixel_values, check_scale

Progress = Callable[[int, int], None]
DEFAULT_BATCH = {"cpu": 1, "cuda": 4, "mps": 2}
MAX_CPU_WORKERS = 4


class _Stopped(Exception):
    """Raised inside a worker when the run was cancelled; never reaches the caller."""


def interpolate(
    model: RIFEModel,
    frames: Tensor,
    multiplier: int = 2,
    scale: float = 1.0,
    mode: Mode = "direct",
    *,
    loop: bool = False,
    progress: Progress | None = None,
    batch_size: int | None = None,
    free_memory: FreeMemory | None = None,
    ensemble: bool = False,
) -> Tensor:
    """Interpolate a clip ``frames`` [B,H,W,C] to ``(B-1)*multiplier + 1`` frames (``B*multiplier`` with loop).

    Originals are copied exactly to positions ``k*multiplier``; see :func:`run_plan` for input handling."""
    check_frames(frames)
    plan = clip_plan(frames.shape[0], multiplier, mode, loop=loop)
    options = {"batch_size": batch_size, "free_memory": free_memory, "ensemble": ensemble}
    return run_plan(model, frames, plan, scale=scale, progress=progress, **options)


def stream_interpolate(
    model: RIFEModel,
    frames: Sequence[Tensor],
    multiplier: int = 2,
    scale: float = 1.0,
    mode: Mode = "direct",
    *,
    loop: bool = False,
    progress: Progress | None = None,
    batch_size: int | None = None,
    free_memory: FreeMemory | None = None,
    ensemble: bool = False,
) -> Iterator[Tensor]:
    """Streaming :func:`interpolate`: ``frames`` is a lazy sequence of [H,W,C] frames; yields [H,W,C] frames."""
    plan = clip_plan(len(frames), multiplier, mode, loop=loop)
    options = {"batch_size": batch_size, "free_memory": free_memory, "ensemble": ensemble}
    return stream_plan(model, frames, plan, scale=scale, progress=progress, **options)


def run_plan(
    model: RIFEModel,
    frames: Tensor,
    plan: Plan,
    *,
    scale: float = 1.0,
    progress: Progress | None = None,
    batch_size: int | None = None,
    free_memory: FreeMemory | None = None,
    ensemble: bool = False,
) -> Tensor:
    """Execute ``plan`` on ``frames`` [B,H,W,C] (C = 1, 3 or 4) and return [plan.num_outputs,H,W,C] float32 on
    ``frames.device``, written into one preallocated tensor.

    Inputs may be float32/16/bf16 in 0..1 or uint8 in 0..255; the model sees them clamped to 0..1, copies of
    source frames are exact (converted to float32). RGBA: the alpha channel is warped with the same motion as
    the colour. NaN or infinite pixels raise :class:`InvalidInputError` before any work. Out of memory halves
    the batch, then calls ``free_memory()`` once (if given) and retries, then raises :class:`~rife.OutOfMemory`."""
    check_frames(frames)
    if plan.num_frames != frames.shape[0]:
        raise InvalidInputError(f"The plan is for {plan.num_frames} frames but {frames.shape[0]} were given.")
    check_pixel_values(frames)
    options = {"batch_size": batch_size, "free_memory": free_memory, "ensemble": ensemble}
    scheduler = _checked_scheduler(model, frames, plan, scale, progress, **options, private=False)
    out = torch.empty((plan.num_outputs, *frames.shape[1:]), dtype=torch.float32, device=frames.device)
    for index, frame in enumerate(scheduler.run()):
        out[index] = frame
    return out


def stream_plan(
    model: RIFEModel,
    frames: Sequence[Tensor],
    plan: Plan,
    *,
    scale: float = 1.0,
    progress: Progress | None = None,
    batch_size: int | None = None,
    free_memory: FreeMemory | None = None,
    ensemble: bool = False,
) -> Iterator[Tensor]:
    """Execute ``plan`` and yield its output frames [H,W,C] float32 in order.

    ``frames`` needs only ``len()`` and ``frames[i]`` -> [H,W,C]; each source frame is read about once.
    Yielded frames belong to the caller (originals are copies, not the caller's own tensors)."""
    options = {"batch_size": batch_size, "free_memory": free_memory, "ensemble": ensemble}
    return _checked_scheduler(model, frames, plan, scale, progress, **options, private=True).run()


def _checked_scheduler(model, frames, plan, scale, progress, *, batch_size, free_memory, ensemble, private: bool):
    """Validate every option before any work, then build the run's pieces."""
    scale = check_scale(scale)
    check_ensemble(model.spec, ensemble)
    if len(frames) != plan.num_frames:
        raise InvalidInputError(f"The plan is for {plan.num_frames} frames but {len(frames)} were given.")
    batch_size = check_batch_size(batch_size)
    if free_memory is not None and not callable(free_memory):
        raise InvalidInputError(f"free_memory must be a function without arguments, got {free_memory!r}.")
    out_device = frames.device if isinstance(frames, Tensor) else torch.device("cpu")
    inference = _Inference(model, scale, out_device, ensemble=ensemble)
    store = _FrameStore(frames, plan, out_device, inference.encode, private_copies=private)
    policy = MemoryPolicy(
        batch_size or DEFAULT_BATCH.get(model.device.type, 1), model.device, store.describe(scale), free_memory
    )
    return _Scheduler(plan, store, inference, policy, progress)


def is_finite(values: Tensor) -> bool:
    """Whether every value is finite, without a temporary the size of ``values`` (a min/max reduction: NaN
    propagates, infinities are the extremes)."""
    if values.numel() == 0:
        return True
    if values.device.type == "mps":  # no aminmax on older MPS builds
        return bool(torch.isfinite(values).all())
    low, high = torch.aminmax(values)
    return math.isfinite(low.item()) and math.isfinite(high.item())


def as_float_frame(frame: Tensor) -> Tensor:
    """[H,W,C] frame as float32 (uint8 scaled to 0..1), values untouched otherwise."""
    if frame.dtype == torch.uint8:
        return frame.float() / 255.0
    return frame.float()


# ------------------------------------------------------------------------------------------------ frame store


class _FrameStore:
    """Source frames of a run: each read once and kept, as float32 on the output device (exact copies) and
    encoded for the model, only while a segment still reads it."""

    def __init__(
        self,
        frames: Sequence[Tensor],
        plan: Plan,
        out_device: torch.device,
        encode: Callable[[Tensor], PreparedFrame],
        *,
        private_copies: bool,
    ) -> None:
        self.frames, self.out_device, self.encode = frames, out_device, encode
        self.private_copies = private_copies  # stream_plan hands out copies of originals; run_plan copies anyway
        self.size: tuple[int, ...] | None = None  # [H,W,C] of the first frame read; all must match it
        self.raw: dict[int, Tensor] = {}  # source index -> float32 [H,W,C] as given
        self.anchors: dict[int, PreparedFrame] = {}  # source index -> what the model reads
        self.last_use = _last_use(plan)

    def describe(self, scale: float) -> Callable[[], str]:
        """The work in words for error messages (the size is known once a frame was read)."""

        def text() -> str:
            height, width = self.size[:2] if self.size else ("?", "?")
            return f"one {width}x{height} frame at scale {scale}"

        return text

    def copy(self, index: int) -> Tensor:
        """Source frame ``index`` as an output frame (float32 [H,W,C])."""
        frame = self.read(index)
        return frame.clone() if self.private_copies else frame  # the store still reads the cached one

    def read(self, index: int) -> Tensor:
        """Source frame ``index`` as float32 [H,W,C] on the output device, read once while it is in use."""
        if index in self.raw:
            return self.raw[index]
        frame = self.frames[index]
        if not isinstance(frame, Tensor) or frame.ndim != 3 or frame.shape[-1] not in (1, 3, 4):
            shape = tuple(frame.shape) if isinstance(frame, Tensor) else type(frame).__name__
            raise InvalidInputError(f"Frame {index} must be an [H,W,C] tensor with C = 1, 3 or 4, got {shape}.")
        if self.size is None:
            self.size = tuple(frame.shape)
        elif tuple(frame.shape) != self.size:
            raise InvalidInputError(
                f"All frames must have the same size: frame {index} is {tuple(frame.shape)}, the first was {self.size}."
            )
        frame = as_float_frame(frame).to(self.out_device)
        check_pixel_values(frame, f"frame {index}")
        self.raw[index] = frame
        return frame

    def anchor(self, index: int) -> PreparedFrame:
        """Source frame ``index`` encoded for the model (once)."""
        if index not in self.anchors:
            self.anchors[index] = self.encode(self.read(index).permute(2, 0, 1)[None])
        return self.anchors[index]

    def evict(self, segment: int) -> None:
        """Drop source frames that no segment after ``segment`` reads."""
        for source in [s for s in self.raw if self.last_use[s] <= segment]:
            del self.raw[source]
            self.anchors.pop(source, None)


def _last_use(plan: Plan) -> dict[int, int]:
    """Source index -> index of the last segment that reads it."""
    last: dict[int, int] = {}
    for index, segment in enumerate(plan.segments):
        for source in segment.sources():
            last[source] = index
    return last


# -------------------------------------------------------------------------------------------------- inference


class _Inference:
    """The model side of a run: encodes anchors and computes in-betweens on the model's device and precision.
    The one place that calls the network."""

    def __init__(self, model: RIFEModel, scale: float, out_device: torch.device, *, ensemble: bool) -> None:
        self.net, self.scale, self.out_device = model.net, scale, out_device
        self.ensemble = ensemble  # the official option: every block also sees the reversed pair
        self.device, self.dtype = model.device, model.dtype
        self.multiple = model.pad_multiple(scale)
        self.grid: WarpGrid | None = None  # warp grid of the padded frame size, built by the first in-between

    @torch.inference_mode()
    def encode(self, image: Tensor) -> PreparedFrame:
        """Pad, clamp and encode a [1,C,H,W] frame (on any device) for the model; gray is replicated to RGB.
        The image stays float32 for the final blend (the network reads it in its own precision)."""
        image = image.to(self.device, torch.float32, non_blocking=True).clamp(0.0, 1.0)
        if image.shape[1] == 1:
            image = image.expand(-1, 3, -1, -1)
        return self.net.prepare(pad_to_multiple(image, self.multiple).contiguous())

    @torch.inference_mode()
    def between(self, pairs: Sequence[tuple[PreparedFrame, PreparedFrame]], t: Sequence[float], size) -> Tensor:
        """In-betweens [N,C,H,W] float32 in 0..1 on the compute device, one per (anchor a, anchor b, t),
        cropped to the frames' size [H,W,C]."""
        a = PreparedFrame.batch([pair[0] for pair in pairs])
        b = PreparedFrame.batch([pair[1] for pair in pairs])
        if self.grid is None:
            self.grid = WarpGrid.for_size(*a.image.shape[-2:], self.device)
        timestep = torch.tensor(t, dtype=torch.float32, device=self.device)
        flow, mask = self.net.flow(a, b, timestep, scale=self.scale, grid=self.grid, ensemble=self.ensemble)
        out = blend(a.image, b.image, flow, mask, self.grid)
        height, width, channels = size
        out = out[:, :channels, :height, :width].float()
        if not is_finite(out):
            raise RIFEError(
                f"The network produced NaN or infinite values ({self.dtype} on {self.device}); the weights or this "
                "precision do not work here: run in fp32 (dtype=torch.float32)."
            )
        return out.clamp_(0.0, 1.0)

    def to_output(self, frames: Tensor) -> list[Tensor]:
        """[N,C,H,W] in-betweens as ordinary [H,W,C] tensors on the output device (each its own memory)."""
        with torch.inference_mode(False):
            hwc = frames.permute(0, 2, 3, 1).to(self.out_device, copy=True, memory_format=torch.contiguous_format)
        return list(hwc.unbind(0))


# ---------------------------------------------------------------------------------------------------- workers


class _Workers:
    """Where chunks of work run. On CPU several single-threaded workers beat one multi-threaded run (warps,
    resizes and copies are memory-bound and scale poorly across threads; bench/bench_engine.py); elsewhere,
    and for fewer than two in-betweens, chunks run inline on the scheduling thread."""

    def __init__(self, device: torch.device, in_betweens: int) -> None:
        serial = device.type != "cpu" or in_betweens < 2
        self.count = 1 if serial else min(torch.get_num_threads(), MAX_CPU_WORKERS)
        self.pool: ThreadPoolExecutor | None = None
        self.threads = torch.get_num_threads()

    def __enter__(self) -> _Workers:
        if self.count > 1:
            self.pool = ThreadPoolExecutor(self.count, thread_name_prefix="rife")
            torch.set_num_threads(max(1, self.threads // self.count))
        return self

    def __exit__(self, *exc_info) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            torch.set_num_threads(self.threads)

    @property
    def capacity(self) -> int:
        """Chunks in flight: two per worker so that none waits while the scheduler reads and encodes."""
        return 2 * self.count if self.pool else 1

    def submit(self, work: Callable[[_Chunk], _Result], chunk: _Chunk) -> Future[_Result]:
        if self.pool is not None:
            return self.pool.submit(work, chunk)
        future: Future[_Result] = Future()
        try:
            future.set_result(work(chunk))
        except (RuntimeError, MemoryError) as exc:
            if not is_out_of_memory(exc) or isinstance(exc, OutOfMemory):
                raise
            future.set_exception(exc)
        return future


# -------------------------------------------------------------------------------------------------- scheduler


@dataclass(frozen=True, eq=False)
class _Chunk:
    """In-betweens computed in one network call: ops (by index) of one or several segments."""

    items: tuple[tuple[_SegmentRun, int], ...]


@dataclass
class _Result:
    frames: list[Tensor]  # per item, [H,W,C] on the output device
    anchors: dict[int, PreparedFrame]  # item position -> its frame encoded, where later ops read it


class _Scheduler:
    """Hands out a plan's output frames in order while computing in-betweens ahead of them.

    Ready in-betweens (their anchors exist) are taken earliest segment first, up to ``batch_size`` per chunk,
    across segments; with several workers up to two chunks per worker are queued, so that none waits while
    this thread reads and encodes the next source frames (workers never touch the frame sequence) or while the
    consumer handles a frame. Cancelling (the consumer stops or ``progress`` raises) stops the workers before
    their next chunk."""

    def __init__(
        self, plan: Plan, store: _FrameStore, inference: _Inference, policy: MemoryPolicy, progress: Progress | None
    ) -> None:
        self.plan, self.store, self.inference, self.policy, self.progress = plan, store, inference, policy, progress
        self.stop = threading.Event()  # set when the consumer cancels: workers give up before their next step

    def run(self) -> Iterator[Tensor]:
        in_betweens = sum(isinstance(op, Interp) for op in self.plan.ops())
        with _Workers(self.inference.device, in_betweens) as workers:
            try:
                yield from self._schedule(workers)
            finally:
                self.stop.set()

    def _schedule(self, workers: _Workers) -> Iterator[Tensor]:
        segments = iter(enumerate(self.plan.segments))
        runs: deque[_SegmentRun] = deque()  # started, not yet fully handed out, in output order
        in_flight: dict[Future[_Result], _Chunk] = {}
        done = 0
        while True:
            # segments open at once: enough to fill the workers, or a batch of in-betweens of different pairs
            lookahead = workers.count + 1 if workers.pool else self.policy.batch_size
            while len(runs) < lookahead and (item := next(segments, None)) is not None:
                runs.append(_SegmentRun(*item))
            if not runs:
                return
            head = runs[0]
            while (frame := self._next_frame(head)) is not None:
                yield frame
                done += 1
                if self.progress is not None:
                    self.progress(done, self.plan.num_outputs)
            if head.complete:
                runs.popleft()
                self.store.evict(head.index)
                continue
            for chunk in self._ready_chunks(runs, workers.capacity - len(in_flight)):
                in_flight[workers.submit(self._compute, chunk)] = chunk
            if not in_flight:
                raise InvalidInputError("The plan has a cycle or a reference to a missing op.")
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in finished:
                self._finish(in_flight.pop(future), future)

    def _ready_chunks(self, runs: deque[_SegmentRun], room: int) -> Iterator[_Chunk]:
        """Up to ``room`` chunks of ready in-betweens, earliest segment first; each chunk's source frames are
        read and encoded here just before it is yielded, so the first chunk starts while later ones encode."""
        chunks: list[_Chunk] = []
        items: list[tuple[_SegmentRun, int]] = []
        for run in runs:
            while len(chunks) < room and (ops := run.take_ready(self.policy.batch_size - len(items))):
                items += [(run, i) for i in ops]
                if len(items) == self.policy.batch_size:
                    chunks.append(_Chunk(tuple(items)))
                    items = []
        if items:  # fewer than a batch ready: a smaller chunk now beats waiting
            chunks.append(_Chunk(tuple(items)))
        for chunk in chunks:
            for run, i in chunk.items:
                for ref in (run.ops[i].a, run.ops[i].b):
                    if isinstance(ref, int):
                        self.policy.retrying(lambda ref=ref: self.store.anchor(ref), "encoding")
            yield chunk

    def _compute(self, chunk: _Chunk) -> _Result:
        """The chunk's frames, and each one encoded as an anchor where later ops of its segment read it (on the
        compute device: generated anchors never travel to the output device and back)."""
        if self.stop.is_set():
            raise _Stopped
        ops = [(run, run.ops[i]) for run, i in chunk.items]
        pairs = [(self._resolve(run, op.a), self._resolve(run, op.b)) for run, op in ops]
        assert self.store.size is not None  # the chunk's source anchors were read
        frames = self.inference.between(pairs, [op.t for _, op in ops], self.store.size)
        anchors = {
            k: self.inference.encode(frames[k : k + 1]) for k, (run, i) in enumerate(chunk.items) if run.readers[i]
        }
        return _Result(self.inference.to_output(frames), anchors)

    def _resolve(self, run: _SegmentRun, ref: Ref) -> PreparedFrame:
        return self.store.anchors[ref] if isinstance(ref, int) else run.anchors[ref.op]

    def _finish(self, chunk: _Chunk, future: Future[_Result]) -> None:
        """Store a chunk's result; after an out-of-memory error queue its ops again under the memory policy."""
        try:
            result = future.result()
        except (RuntimeError, MemoryError) as exc:
            if isinstance(exc, OutOfMemory) or not is_out_of_memory(exc):
                raise
            self.policy.after_failure(exc, len(chunk.items), "interpolating")
            for run, i in chunk.items:
                run.retry(i)
            return
        for k, (run, i) in enumerate(chunk.items):
            run.store(i, result.frames[k], result.anchors.get(k))

    def _next_frame(self, run: _SegmentRun) -> Tensor | None:
        """The segment's next output frame if it is available (copies always are), else None."""
        if run.complete:
            return None
        op = run.ops[run.emitted]
        if isinstance(op, Copy):
            frame = self.store.copy(op.source)
        elif run.emitted in run.generated:
            frame = run.generated.pop(run.emitted)
        else:
            return None
        run.emitted += 1
        return frame


class _SegmentRun:
    """One segment in progress: which in-betweens wait, which are computed, and how many frames were handed
    out. Only the scheduling thread changes it; workers read ``anchors`` of ops whose chunks finished."""

    def __init__(self, index: int, segment: Segment) -> None:
        self.index, self.ops = index, segment.ops
        self.waiting = [i for i, op in enumerate(self.ops) if isinstance(op, Interp)]  # not started
        self.generated: dict[int, Tensor] = {}  # op -> frame, until handed out
        self.anchors: dict[int, PreparedFrame] = {}  # op -> its frame prepared as an anchor, while read
        self.readers = Counter(r.op for i in self.waiting for r in (self.ops[i].a, self.ops[i].b) if isinstance(r, Gen))
        self.emitted = 0

    @property
    def complete(self) -> bool:
        return self.emitted == len(self.ops)

    def take_ready(self, limit: int) -> list[int]:
        """Remove and return up to ``limit`` waiting ops whose anchors exist, in output order."""
        ready = [i for i in self.waiting if self._ready(self.ops[i].a) and self._ready(self.ops[i].b)][:limit]
        self.waiting = [i for i in self.waiting if i not in ready]
        return ready

    def _ready(self, ref: Ref) -> bool:
        return isinstance(ref, int) or ref.op in self.anchors

    def store(self, i: int, frame: Tensor, anchor: PreparedFrame | None) -> None:
        self.generated[i] = frame
        if anchor is not None:
            self.anchors[i] = anchor
        for ref in (self.ops[i].a, self.ops[i].b):  # drop generated anchors once every op that reads them is done
            if isinstance(ref, Gen):
                self.readers[ref.op] -= 1
                if not self.readers[ref.op]:
                    del self.anchors[ref.op]

    def retry(self, i: int) -> None:
        self.waiting = sorted([*self.waiting, i])
