"""A real headless ComfyUI for the tests: one server per test session, driven over its HTTP API.

The install comes from ``../shared/comfyui/install.sh`` (``.ci/run`` runs it): ``$COMFY_ROOT/ComfyUI`` (the source)
and ``$COMFY_ROOT/venv`` (its Python), ``COMFY_ROOT`` defaulting to ``/tmp/comfy``. The server runs on CPU, on a
free 127.0.0.1 port, with its own base directory (custom_nodes, models, input, output) made by the test session.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

COMFY_ROOT = Path(os.environ.get("COMFY_ROOT", "/tmp/comfy"))
COMFY_DIR = COMFY_ROOT / "ComfyUI"
COMFY_PYTHON = COMFY_ROOT / "venv" / "bin" / "python"


def require_comfyui() -> None:
    """Skip without the ComfyUI install; under ``CI=true`` a missing install is a failure."""
    if not (COMFY_DIR / "main.py").is_file() or not COMFY_PYTHON.is_file():
        message = f"ComfyUI is not installed in {COMFY_DIR.parent} (run: bash ../shared/comfyui/install.sh)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)


class PromptTimeout(Exception):
    """The prompt did not finish in time (the node hangs)."""


@dataclass
class Result:
    """What became of a queued prompt: ComfyUI's status, its execution error (if any) and its saved files."""

    status: str
    error: dict | None
    files: dict[str, list[Path]] = field(default_factory=dict)


class ComfyUI:
    """A ComfyUI server process started for the tests (``start``), its HTTP API, and ``stop``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = _free_port()
        self.log_path = base / "server.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 240) -> None:
        command = [
            str(COMFY_PYTHON), "main.py", "--cpu", "--disable-auto-launch", "--disable-api-nodes",
            "--listen", "127.0.0.1", "--port", str(self.port), "--base-directory", str(self.base),
            "--database-url", f"sqlite:///{self.base / 'user' / 'comfyui.db'}",
        ]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, cwd=COMFY_DIR, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited during start-up:\n{self.log()[-4000:]}")
            try:
                if self.get("/system_stats")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"ComfyUI did not start within {timeout} s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        """Terminate the server this object started (its PID only)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def get(self, path: str) -> tuple[int, object]:
        return self._request("GET", path)

    def post(self, path: str, body: object) -> tuple[int, object]:
        return self._request("POST", path, body)

    def queue(self, prompt: dict) -> tuple[int, dict]:
        """POST /prompt: (200, {"prompt_id": ...}) or (400, {"error": ..., "node_errors": ...})."""
        return self.post("/prompt", {"prompt": prompt, "client_id": str(uuid.uuid4())})

    def run(self, prompt: dict, timeout: float = 120) -> Result:
        """Queue ``prompt`` and wait for it; on timeout interrupt it and raise :class:`PromptTimeout`."""
        status, body = self.queue(prompt)
        if status != 200:
            raise AssertionError(f"prompt refused: {json.dumps(body)[:2000]}")
        prompt_id = body["prompt_id"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise AssertionError(f"ComfyUI died:\n{self.log()[-4000:]}")
            _, history = self.get(f"/history/{prompt_id}")
            entry = history.get(prompt_id) if isinstance(history, dict) else None
            if entry and entry.get("status", {}).get("completed") is not None and entry["status"].get("status_str"):
                return self._result(entry)
            time.sleep(0.1)
        self.post("/interrupt", {})
        raise PromptTimeout(f"prompt {prompt_id} did not finish within {timeout} s")

    def _result(self, entry: dict) -> Result:
        error = next((data for event, data in entry["status"].get("messages", []) if event == "execution_error"), None)
        files: dict[str, list[Path]] = {}
        for node_id, outputs in (entry.get("outputs") or {}).items():
            for values in outputs.values():
                for value in values if isinstance(values, list) else []:
                    if isinstance(value, dict) and "filename" in value:
                        folder = self.base / value.get("type", "output") / value.get("subfolder", "")
                        files.setdefault(node_id, []).append(folder / value["filename"])
        return Result(entry["status"]["status_str"], error, files)

    def _request(self, method: str, path: str, body: object = None) -> tuple[int, object]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw or b"null")
        except ValueError:
            return status, raw.decode(errors="replace")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
