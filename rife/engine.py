"""Execute schedules over whole clips: the fast, memory-bounded part of the library.

The executor walks a :class:`~rife.schedule.Plan` segment by segment. Each source frame is moved to the
model's device, padded and encoded once, and kept only while a later segment still reads it; in-betweens
that share anchors are computed together in timestep batches; outputs are written into one preallocated
tensor (:func:`run_plan`) or handed out one by one (:func:`stream_plan`) so a folder of thousands of frames
never sits in memory. ``progress(done, total)`` runs after every output frame and may raise to cancel.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TypeAlias

import torch
from torch import Tensor

from .arch import check_ensemble
from .errors import InvalidInputError, OutOfMemory, RIFEError
from .ifnet import PreparedFrame, WarpGrid, blend, pad_to_multiple
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
    ensemble: bool = False,
) -> Tensor:
    """Interpolate a clip ``frames`` [B,H,W,C] to ``(B-1)*multiplier + 1`` frames (``B*multiplier`` with loop).

    Originals are copied exactly to positions ``k*multiplier``; see :func:`run_plan` for input handling."""
    check_frames(frames)
    return run_plan(
        model,
        frames,
        clip_plan(frames.shape[0], multiplier, mode, loop=loop),
        scale=scale,
        progress=progress,
        batch_size=batch_size,
        ensemble=ensemble,
    )


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
    ensemble: bool = False,
) -> Iterator[Tensor]:
    """Streaming :func:`interpolate`: ``frames`` is a lazy sequence of [H,W,C] frames; yields [H,W,C] frames."""
    plan = clip_plan(len(frames), multiplier, mode, loop=loop)
    return stream_plan(model, frames, plan, scale=scale, progress=progress, batch_size=batch_size, ensemble=ensemble)


def run_plan(
    model: RIFEModel,
    frames: Tensor,
    plan: Plan,
    *,
    scale: float = 1.0,
    progress: Progress | None = None,
    batch_size: int | None = None,
    ensemble: bool = False,
) -> Tensor:
    """Execute ``plan`` on ``frames`` [B,H,W,C] (C = 1, 3 or 4) and return [plan.num_outputs,H,W,C] float32 on
    ``frames.device``, written into one preallocated tensor.

    Inputs may be float32/16/bf16 in 0..1 or uint8 in 0..255; the model sees them clamped to 0..1, copies of
    source frames are exact (converted to float32). RGBA: the alpha channel is warped with the same motion as
    the colour. NaN or infinite pixels raise :class:`InvalidInputError` before any work."""
    check_frames(frames)
    if plan.num_frames != frames.shape[0]:
        raise InvalidInputError(f"The plan is for {plan.num_frames} frames but {frames.shape[0]} were given.")
    check_pixel_values(frames)
    out = torch.empty((plan.num_outputs, *frames.shape[1:]), dtype=torch.float32, device=frames.device)
    executor = _checked_executor(model, frames, plan, scale, progress, batch_size, ensemble, private_copies=False)
    for index, frame in enumerate(executor.run()):
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
    ensemble: bool = False,
) -> Iterator[Tensor]:
    """Execute ``plan`` and yield its output frames [H,W,C] float32 in order.

    ``frames`` needs only ``len()`` and ``frames[i]`` -> [H,W,C]; each source frame is read about once.
    Yielded frames belong to the caller (originals are copies, not the caller's own tensors)."""
    return _checked_executor(model, frames, plan, scale, progress, batch_size, ensemble, private_copies=True).run()


def _checked_executor(model, frames, plan, scale, progress, batch_size, ensemble, *, private_copies) -> _Executor:
    """Validate every option before any work, then build the executor."""
    scale = check_scale(scale)
    check_ensemble(model.spec, ensemble)
    if len(frames) != plan.num_frames:
        raise InvalidInputError(f"The plan is for {plan.num_frames} frames but {len(frames)} were given.")
    batch_size = check_batch_size(batch_size)
    return _Executor(model, frames, plan, scale, progress, batch_size, private_copies=private_copies, ensemble=ensemble)


def as_float_frame(frame: Tensor) -> Tensor:
    """[H,W,C] frame as float32 (uint8 scaled to 0..1), values untouched otherwise."""
    if frame.dtype == torch.uint8:
        return frame.float() / 255.0
    return frame.float()


class _Executor:
    def __init__(
        self,
        model: RIFEModel,
        frames: Sequence[Tensor],
        plan: Plan,
        scale: float,
        progress: Progress | None,
        batch_size: int | None,
        *,
        private_copies: bool,
        ensemble: bool = False,
    ) -> None:
        self.model, self.frames, self.plan, self.scale, self.progress = model, frames, plan, scale, progress
        self.device, self.dtype = model.device, model.dtype
        self.out_device = frames.device if isinstance(frames, Tensor) else torch.device("cpu")
        self.batch_size = batch_size or DEFAULT_BATCH.get(self.device.type, 1)
        self.multiple = model.pad_multiple(scale)
        self.size: tuple[int, ...] | None = None
        self.raw: dict[int, Tensor] = {}  # source index -> float32 [H,W,C] as given (for exact copies)
        self.anchors: dict[int, PreparedFrame] = {}  # source index -> what the model reads
        self.last_use = _last_use(plan)
        self.private_copies = private_copies  # stream_plan hands out copies of originals; run_plan copies anyway
        self.grid: WarpGrid | None = None  # warp grid of the padded frame size, built by the first in-between
        self.stop = threading.Event()  # set when the consumer cancels: workers give up before their next step
        self.ensemble = ensemble  # the official option: every block also sees the reversed pair

    def run(self) -> Iterator[Tensor]:
        workers = self._cpu_workers()
        with torch.inference_mode():
            yield from self._schedule(workers)

    def _cpu_workers(self) -> int:
        """In-betweens computed at once: on CPU, several single-threaded workers beat one multi-threaded run
        (warps, resizes and copies are memory-bound and scale poorly across threads; bench/bench_engine.py)."""
        in_betweens = sum(isinstance(op, Interp) for op in self.plan.ops())
        if self.device.type != "cpu" or in_betweens < 2:
            return 1
        return min(torch.get_num_threads(), MAX_CPU_WORKERS)

    def _schedule(self, workers: int) -> Iterator[Tensor]:
        """Hand out the plan's frames in order while computing in-betweens ahead of them.

        Work is split into chunks (the ready in-betweens of one segment that share their anchors, up to a
        timestep batch), dispatched earliest segment first. With several workers, chunks run on single-threaded
        threads, up to two per worker queued so that none waits while this thread reads and encodes the next
        source frames (workers never touch the frame sequence) or while the consumer handles a frame; with one,
        each chunk runs here when the next frame needs it. Cancelling (the consumer stops or ``progress`` raises)
        stops the workers before their next chunk."""
        threads = torch.get_num_threads()
        pool = ThreadPoolExecutor(workers, thread_name_prefix="rife") if workers > 1 else None
        capacity, lookahead = (2 * workers, workers + 1) if pool else (1, 1)  # chunks in flight, segments open
        if pool:
            torch.set_num_threads(max(1, threads // workers))
        segments = iter(enumerate(self.plan.segments))
        runs: deque[_SegmentRun] = deque()  # started, not yet fully handed out, in output order
        in_flight: dict[Future[_Result], _Chunk] = {}
        done = 0
        try:
            while True:
                while len(runs) < lookahead and (item := next(segments, None)) is not None:
                    runs.append(_SegmentRun(*item))
                if not runs:
                    return
                head = runs[0]
                while (frame := self._next_frame(head)) is not None:
                    yield frame
                    done += 1
                    self._report(done)
                if head.complete:
                    runs.popleft()
                    self._evict(head.index)
                    continue
                for chunk in self._ready_chunks(runs, capacity - len(in_flight)):
                    in_flight[self._start(chunk, pool)] = chunk
                if not in_flight:
                    raise InvalidInputError("The plan has a cycle or a reference to a missing op.")
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    self._finish(in_flight.pop(future), future)
        finally:
            self.stop.set()
            if pool:
                pool.shutdown(wait=True, cancel_futures=True)
                torch.set_num_threads(threads)

    def _ready_chunks(self, runs: deque[_SegmentRun], room: int) -> list[_Chunk]:
        """Up to ``room`` chunks whose anchors exist, earliest segment first; their source frames are read and
        encoded here, now."""
        chunks: list[_Chunk] = []
        for run in runs:
            while len(chunks) < room and (chunk := run.take_ready(self.batch_size)) is not None:
                for ref in (chunk.a, chunk.b):
                    if isinstance(ref, int):
                        self._source_anchor(ref)
                chunks.append(chunk)
        return chunks

    def _start(self, chunk: _Chunk, pool: ThreadPoolExecutor | None) -> Future[_Result]:
        if pool is not None:
            return pool.submit(self._compute_in_worker, chunk)
        future: Future[_Result] = Future()
        try:
            future.set_result(self._compute(chunk))
        except torch.OutOfMemoryError as exc:
            future.set_exception(exc)
        return future

    def _compute_in_worker(self, chunk: _Chunk) -> _Result:
        with torch.inference_mode():  # thread-local: each worker enters it itself
            return self._compute(chunk)

    def _compute(self, chunk: _Chunk) -> _Result:
        """The chunk's frames, and each one prepared as an anchor where later ops of its segment read it."""
        if self.stop.is_set():
            raise _Stopped
        run, ops = chunk.run, chunk.run.ops
        anchor_a, anchor_b = self._resolve(run, chunk.a), self._resolve(run, chunk.b)
        t = torch.tensor([ops[i].t for i in chunk.ops], dtype=torch.float32, device=self.device)
        frames = self._infer(anchor_a, anchor_b, t)
        anchors = {i: self._anchor(frame) for i, frame in zip(chunk.ops, frames, strict=True) if run.readers[i]}
        return dict(zip(chunk.ops, frames, strict=True)), anchors

    def _finish(self, chunk: _Chunk, future: Future[_Result]) -> None:
        """Store a chunk's result; after an out-of-memory error halve the batch and queue its ops again."""
        try:
            frames, anchors = future.result()
        except torch.OutOfMemoryError:
            self._shrink_batch(len(chunk.ops))
            chunk.run.retry(chunk)
            return
        chunk.run.store(chunk, frames, anchors)

    def _next_frame(self, run: _SegmentRun) -> Tensor | None:
        """The segment's next output frame if it is available (copies always are), else None."""
        if run.complete:
            return None
        op = run.ops[run.emitted]
        if isinstance(op, Copy):
            frame = self._read(op.source)
            frame = frame.clone() if self.private_copies else frame  # the engine still reads the cached one
        elif run.emitted in run.generated:
            frame = run.generated.pop(run.emitted)
        else:
            return None
        run.emitted += 1
        return frame

    def _report(self, done: int) -> None:
        if self.progress is not None:
            self.progress(done, self.plan.num_outputs)

    def _evict(self, index: int) -> None:
        """Drop source frames that no segment after ``index`` reads."""
        for source in [s for s in self.raw if self.last_use[s] <= index]:
            del self.raw[source]
            self.anchors.pop(source, None)

    def _read(self, index: int) -> Tensor:
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

    def _anchor(self, frame: Tensor) -> PreparedFrame:
        """Pad, clamp and encode an [H,W,C] frame for the model (grayscale is replicated to RGB)."""
        image = frame.to(self.device, non_blocking=True).permute(2, 0, 1)[None].clamp(0.0, 1.0)
        if image.shape[1] == 1:
            image = image.expand(-1, 3, -1, -1)
        try:
            return self.model.net.prepare(pad_to_multiple(image.to(self.dtype), self.multiple).contiguous())
        except torch.OutOfMemoryError as exc:
            raise self._out_of_memory("encoding") from exc

    def _source_anchor(self, index: int) -> PreparedFrame:
        if index not in self.anchors:
            self.anchors[index] = self._anchor(self._read(index))
        return self.anchors[index]

    def _shrink_batch(self, failed: int) -> None:
        """After an out-of-memory error: free cached memory and halve the timestep batch, or give up at 1."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if failed <= 1:
            raise self._out_of_memory("interpolating")
        self.batch_size = max(1, failed // 2)

    def _out_of_memory(self, doing: str) -> OutOfMemory:
        height, width = self.size[:2] if self.size else ("?", "?")
        return OutOfMemory(
            f"Out of memory {doing} one {width}x{height} frame at scale {self.scale} on {self.device}. "
            "Use a smaller scale (0.5 for 4K), fp16, or a smaller resolution."
        )

    def _resolve(self, run: _SegmentRun, ref: Ref) -> PreparedFrame:
        return self.anchors[ref] if isinstance(ref, int) else run.anchors[ref.op]

    def _infer(self, a: PreparedFrame, b: PreparedFrame, t: Tensor) -> list[Tensor]:
        """Frames [H,W,C] at timesteps ``t`` between two anchors, clamped to 0..1, on the output device."""
        if self.grid is None:
            self.grid = WarpGrid.for_size(*a.image.shape[-2:], self.device)
        flow, mask = self.model.net.flow(a, b, t, scale=self.scale, grid=self.grid, ensemble=self.ensemble)
        out = blend(a.image, b.image, flow, mask, self.grid)
        assert self.size is not None
        height, width, channels = self.size
        out = out[:, :channels, :height, :width].float()
        if not bool(torch.isfinite(out).all()):
            raise RIFEError(
                f"The network produced NaN or infinite values ({self.dtype} on {self.device}); the weights or this "
                "precision do not work here: run in fp32 (dtype=torch.float32)."
            )
        out = out.clamp_(0.0, 1.0)
        return list(out.permute(0, 2, 3, 1).to(self.out_device))


def _last_use(plan: Plan) -> dict[int, int]:
    """Source index -> index of the last segment that reads it."""
    last: dict[int, int] = {}
    for index, segment in enumerate(plan.segments):
        for source in segment.sources():
            last[source] = index
    return last


@dataclass(frozen=True, eq=False)
class _Chunk:
    """In-betweens of one segment computed in one network call: ops ``ops`` between anchors ``a`` and ``b``."""

    run: _SegmentRun
    a: Ref
    b: Ref
    ops: tuple[int, ...]


_Result: TypeAlias = "tuple[dict[int, Tensor], dict[int, PreparedFrame]]"  # op -> frame, op -> anchor


class _SegmentRun:
    """One segment in progress: which in-betweens wait, which are computed, and how many frames were handed
    out. Only the scheduling thread touches it; workers read ``anchors`` of ops whose chunks finished."""

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

    def take_ready(self, batch_size: int) -> _Chunk | None:
        """Remove and return the first waiting ops whose anchors exist and that share them (up to a batch)."""
        for i in self.waiting:
            op = self.ops[i]
            if self._ready(op.a) and self._ready(op.b):
                members = [j for j in self.waiting if (self.ops[j].a, self.ops[j].b) == (op.a, op.b)][:batch_size]
                self.waiting = [j for j in self.waiting if j not in members]
                return _Chunk(self, op.a, op.b, tuple(members))
        return None

    def _ready(self, ref: Ref) -> bool:
        return isinstance(ref, int) or ref.op in self.anchors

    def store(self, chunk: _Chunk, frames: dict[int, Tensor], anchors: dict[int, PreparedFrame]) -> None:
        self.generated.update(frames)
        self.anchors.update(anchors)
        for i in chunk.ops:  # drop generated anchors once every op that reads them is done
            for ref in (self.ops[i].a, self.ops[i].b):
                if isinstance(ref, Gen):
                    self.readers[ref.op] -= 1
                    if not self.readers[ref.op]:
                        del self.anchors[ref.op]

    def retry(self, chunk: _Chunk) -> None:
        self.waiting = sorted(self.waiting + list(chunk.ops))
