"""Running out of memory: how the engine recognises it on every backend and what it does about it.

torch reports exhausted memory differently per backend and release: ``torch.OutOfMemoryError`` (2.5+),
``torch.cuda.OutOfMemoryError`` (1.13+), a plain ``RuntimeError`` whose text says "out of memory" (MPS, XPU,
older CUDA builds) or "can't allocate memory" (the CPU allocator), and Python's own ``MemoryError``.
:func:`is_out_of_memory` knows them all; :class:`MemoryPolicy` is the single answer to each of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

from .errors import OutOfMemory

T = TypeVar("T")
FreeMemory = Callable[[], None]

# lower-case fragments of RuntimeError texts that mean exhausted memory (CUDA/HIP/MPS/XPU "... out of memory",
# the CPU allocator's "DefaultCPUAllocator: can't allocate memory", cuDNN/cuBLAS "..._STATUS_ALLOC_FAILED")
_MESSAGES = ("out of memory", "can't allocate memory", "cannot allocate memory", "defaultcpuallocator", "alloc_failed")


def _oom_classes() -> tuple[type[BaseException], ...]:
    found = [MemoryError]
    for owner in (torch, getattr(torch, "cuda", None)):
        cls = getattr(owner, "OutOfMemoryError", None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says that the device or the host ran out of memory (any backend, any torch release)."""
    if isinstance(exc, _oom_classes()):
        return True
    return isinstance(exc, RuntimeError) and any(text in str(exc).lower() for text in _MESSAGES)


def release_cached_memory(device: torch.device) -> None:
    """Hand the allocator's cached blocks back to the device, so a retry sees all free memory."""
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps") and hasattr(torch.mps, "empty_cache"):
        torch.mps.empty_cache()


class MemoryPolicy:
    """What a run does when memory runs out: halve the batch; at a batch of one call the caller's
    ``free_memory`` once (ComfyUI offloads its other models) and retry; then raise :class:`OutOfMemory` with
    what to try. ``describe()`` names the work for the message, e.g. "one 1280x720 frame at scale 1.0"."""

    def __init__(
        self, batch_size: int, device: torch.device, describe: Callable[[], str], free_memory: FreeMemory | None
    ) -> None:
        self.batch_size = batch_size
        self.device = device
        self.describe = describe
        self.free_memory = free_memory
        self.freed = False

    def after_failure(self, exc: BaseException, failed: int, doing: str) -> None:
        """Get ready to retry a call of ``failed`` items that ran out of memory (``exc``), or raise
        :class:`OutOfMemory` when nothing is left to try."""
        release_cached_memory(self.device)
        if failed > 1:
            self.batch_size = max(1, failed // 2)
            return
        if self.free_memory is not None and not self.freed:
            self.freed = True
            self.free_memory()
            return
        raise OutOfMemory(
            f"Out of memory {doing} {self.describe()} on {self.device}. Try a smaller scale (0.5 for 4K), fp16 (on "
            "a GPU), smaller frames, or closing what else uses this device's memory; a batch of one already failed."
        ) from exc

    def retrying(self, call: Callable[[], T], doing: str) -> T:
        """``call()``, retried under this policy while it runs out of memory (for work that has no batch)."""
        while True:
            try:
                return call()
            except (RuntimeError, MemoryError) as exc:
                if isinstance(exc, OutOfMemory) or not is_out_of_memory(exc):
                    raise
                self.after_failure(exc, 1, doing)
