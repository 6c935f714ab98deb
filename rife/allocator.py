"""Process-wide malloc settings for the command line's own process (never for a host such as ComfyUI).

glibc serves large requests with fresh ``mmap`` pages and returns them on ``free``, so every full-resolution
tensor of every in-between is faulted in (and zeroed by the kernel) again: at 1280x720 about 40,000 page
faults per in-between, 10-15 % of a CPU run's time, and worse with several worker threads, which share one
address space. Keeping freed memory in the heap lets the next in-between reuse it (docs/performance.md).
"""

from __future__ import annotations

import ctypes
import os
import sys

# <malloc.h> parameter numbers (stable glibc ABI)
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_MAX = -4
M_ARENA_MAX = -8

SETTINGS = (
    (M_MMAP_MAX, 0),  # every block from the heap, where freed memory is reused instead of unmapped
    (M_TRIM_THRESHOLD, 1 << 30),  # give memory back only when over 1 GiB of the heap's top is free
    (M_TOP_PAD, 256 << 20),  # grow the heap in large steps (address space only: untouched pages cost nothing)
    # one heap for all threads, so worker threads reuse each other's freed blocks: peak RSS stays as without
    # these settings (720p, 1080p, 4K); with a heap per thread it was up to 20 % higher
    (M_ARENA_MAX, 1),
)


def reuse_freed_memory() -> bool:
    """Apply :data:`SETTINGS` when the C library is glibc and the user has not tuned malloc himself (any
    ``MALLOC_*`` variable or a ``glibc.malloc`` tunable); whether they were applied."""
    if not sys.platform.startswith("linux") or _user_tuned(os.environ):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it (musl's mallopt does nothing)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in SETTINGS)


def _user_tuned(environ) -> bool:
    return any(name.startswith("MALLOC_") for name in environ) or "glibc.malloc" in environ.get("GLIBC_TUNABLES", "")
