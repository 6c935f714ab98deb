"""The real ComfyUI for tests: a headless server on 127.0.0.1 with this pack linked into ``custom_nodes``.

Built on the shared harness (``../shared/comfyui/harness.py``: its server control, HTTP client and prompt runner),
with the ComfyUI that ``../shared/comfyui/install.sh`` put under ``$COMFY_ROOT`` (default ``/tmp/comfy``). Tests
skip when that install is missing, but fail under CI (``CI=true``), where a missing ComfyUI must never pass.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import time
import types
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMFY_ROOT = Path(os.environ.get("COMFY_ROOT", "/tmp/comfy"))


def _missing(message: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def load_harness(shared_dir: Path) -> types.ModuleType:
    """The shared harness script as a module (it only needs the standard library)."""
    path = shared_dir / "comfyui" / "harness.py"
    if not path.is_file():
        _missing(f"ComfyUI harness missing: {path}")
    spec = importlib.util.spec_from_file_location("comfyui_harness", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ComfyServer:
    """A running ComfyUI: post prompts, read their results and the server's memory."""

    def __init__(self, harness: types.ModuleType, server, run_dir: Path) -> None:
        self.harness, self.server, self.run_dir = harness, server, Path(run_dir)
        self.pid: int = server.proc.pid
        code, self.object_info = server.http.get("/object_info", timeout=60)
        assert code == 200, f"GET /object_info -> {code}"

    def post(self, prompt: Mapping) -> str:
        """Queue ``prompt`` (API format); return its id. A validation error fails the test with its message."""
        code, body = self.server.http.post("/prompt", {"prompt": prompt, "client_id": "pytest"})
        assert code == 200, f"prompt refused (HTTP {code}): {json.dumps(body)[:2000]}"
        return body["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 300) -> dict:
        """The history entry of a finished prompt."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.server.alive(), "ComfyUI exited:\n" + self.server.log_text()[-4000:]
            code, history = self.server.http.get(f"/history/{prompt_id}")
            entry = history.get(prompt_id) if code == 200 else None
            if entry and entry.get("status", {}).get("status_str") in ("success", "error"):
                return entry
            time.sleep(0.1)
        raise AssertionError(f"prompt {prompt_id} did not finish within {timeout} s")

    def run(self, prompt: Mapping, timeout: float = 300) -> dict:
        """Run ``prompt`` to the end; return its outputs (``{node id: ui output}``). An error fails the test with
        the node's message and traceback."""
        entry = self.wait(self.post(prompt), timeout)
        for event, data in entry["status"].get("messages", []):
            if event in ("execution_error", "execution_interrupted"):
                trace = "".join(data.get("traceback", []))
                raise AssertionError(
                    f"{event} in node {data.get('node_type')}: {data.get('exception_message')}\n{trace}"
                )
        return entry.get("outputs", {})

    def saved_files(self, output: Mapping) -> list[Path]:
        """Paths of the files a node's ui output names (images, videos, ...)."""
        return [
            self.run_dir / item.get("type", "output") / item.get("subfolder", "") / item["filename"]
            for items in output.values()
            if isinstance(items, list)
            for item in items
            if isinstance(item, dict) and "filename" in item
        ]

    def interrupt(self) -> None:
        self.server.http.post("/interrupt", {})

    def memory_kb(self) -> tuple[int, int]:
        """The server's (current, peak) resident memory in kB (VmRSS, VmHWM)."""
        rss, peak = self.harness.rss_kb(self.pid)
        assert rss is not None and peak is not None, "no /proc memory figures for the server"
        return rss, peak

    def to_api(self, workflow: Mapping) -> dict:
        """A UI-format workflow as the API prompt the frontend would queue (the harness's conversion)."""
        return self.harness.ui_to_api(workflow, self.object_info)


@contextmanager
def comfyui(
    shared_dir: Path,
    *,
    inputs: Iterable[Path] = (),
    models: Mapping[str, Mapping[str, Path]] | None = None,
    pack: Path = REPO,
    startup_timeout: float = 240,
) -> Iterator[ComfyServer]:
    """Start ComfyUI on CPU in a fresh run folder with ``pack`` linked in, ``inputs`` in ``input/`` and
    ``models`` (``{folder: {file name: path}}``) linked under ``models/``; stop it and delete the folder afterwards."""
    comfy_dir, python = COMFY_ROOT / "ComfyUI", COMFY_ROOT / "venv" / "bin" / "python"
    if not (comfy_dir / "main.py").is_file() or not python.is_file():
        _missing(f"no ComfyUI install at {COMFY_ROOT} (run ../shared/comfyui/install.sh {COMFY_ROOT})")
    harness = load_harness(shared_dir)
    runs = COMFY_ROOT / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="pytest-", dir=runs))
    for name in ("custom_nodes", "input", "output", "temp", "user", "models"):
        (run_dir / name).mkdir()
    (run_dir / "custom_nodes" / pack.name).symlink_to(pack.resolve())
    for file in inputs:
        shutil.copy(file, run_dir / "input" / Path(file).name)
    for folder, files in (models or {}).items():
        (run_dir / "models" / folder).mkdir()
        for name, file in files.items():
            (run_dir / "models" / folder / name).symlink_to(Path(file).resolve())
    options = types.SimpleNamespace(
        python=str(python),
        comfy_dir=str(comfy_dir),
        with_api_nodes=False,
        extra_arg=[],
        startup_timeout=startup_timeout,
    )
    server = harness.Server(options, str(run_dir), harness.free_port())
    try:
        started, why = server.start()
        assert started, f"ComfyUI did not start: {why}\n{server.log_text()[-4000:]}"
        failed = harness.pack_import_report(server, [pack.name])
        assert not failed, f"the pack failed to import in ComfyUI:\n{failed}"
        yield ComfyServer(harness, server, run_dir)
    finally:
        server.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
