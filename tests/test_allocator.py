"""The command line's malloc settings (rife/allocator.py): freed tensors are reused instead of being faulted in
again, and a user's own malloc tuning is left alone."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from rife.allocator import reuse_freed_memory

glibc_only = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="the settings are glibc's"
)

FAULTS_PER_RUN = """
import resource, sys, torch
from rife import interpolate, load_model
from rife.allocator import reuse_freed_memory
applied = reuse_freed_memory() if sys.argv[2] == "tuned" else False
model = load_model(sys.argv[1], device="cpu")
frames = torch.rand(3, 256, 448, 3, generator=torch.Generator().manual_seed(0))
interpolate(model, frames, 4)  # the first run touches its memory
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(2):
    interpolate(model, frames, 4)
print(applied, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 2)
"""


def _faults_per_run(weights, mode: str) -> tuple[str, int]:
    command = [sys.executable, "-c", FAULTS_PER_RUN, str(weights), mode]
    result = subprocess.run(command, capture_output=True, text=True, check=True, env={"PATH": os.environ["PATH"]})
    applied, faults = result.stdout.split()
    return applied, int(faults)


@glibc_only
def test_a_second_run_reuses_the_memory_of_the_first(real_weights):
    """6 in-betweens at 448x256 on the engine's worker threads: without the settings glibc unmaps every
    large block when it is freed and the kernel zeroes it again on the next use."""
    applied, tuned = _faults_per_run(real_weights, "tuned")
    _, plain = _faults_per_run(real_weights, "plain")
    assert applied == "True"
    assert tuned * 5 < plain, (tuned, plain)


def test_a_users_own_malloc_tuning_is_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert reuse_freed_memory() is False
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536")
    assert reuse_freed_memory() is False
