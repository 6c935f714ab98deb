"""Shared fixtures: where the project's shared test data lives.

Tests that need ``../shared`` skip when it is absent on a developer machine, but fail under CI (``CI=true``),
where a missing data folder must never turn into a green run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RIFE_SHARED_DIR", REPO.parent / "shared")).resolve()

# One thread per test process: the frames are tiny, and `pytest -n 2` (xdist) uses both cores.
torch.set_num_threads(1)


def _require(path: Path) -> Path:
    if not path.exists():
        message = f"shared test data missing: {path} (set RIFE_SHARED_DIR or place shared/ beside the repo)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _require(SHARED)


@pytest.fixture(scope="session")
def golden_dir(shared_dir: Path) -> Path:
    return _require(shared_dir / "golden")


@pytest.fixture(scope="session")
def frames_dir(shared_dir: Path) -> Path:
    return _require(shared_dir / "frames")


@pytest.fixture(scope="session")
def real_weights(shared_dir: Path) -> Path:
    """Real RIFE 4.25 weights as safetensors."""
    return _require(shared_dir / "weights" / "rife-v4.25.safetensors")


@pytest.fixture(scope="session")
def real_pkl(shared_dir: Path) -> Path:
    """The same real weights in the original flownet.pkl container (with teacher/caltime tensors)."""
    return _require(shared_dir / "weights" / "flownet.pkl")


@pytest.fixture(scope="session")
def synthetic(golden_dir: Path):
    """``synthetic_state_dict(group, seed)`` and ``load_specs()`` from the golden folder's generator."""
    sys.path.insert(0, str(golden_dir))
    try:
        import synthetic_weights
    finally:
        sys.path.remove(str(golden_dir))
    return synthetic_weights


@pytest.fixture(scope="session")
def real_model(real_weights: Path):
    """The real 4.25 model on CPU, fp32 (loaded once per session; treat as read-only)."""
    from rife import load_model

    return load_model(real_weights, device="cpu")
