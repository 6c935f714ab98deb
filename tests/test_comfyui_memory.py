"""The nodes and ComfyUI's memory manager, observed inside the real ComfyUI's Python (tests/comfyui_probe.py):
the VRAM request, the out-of-memory policy on a backend without ``torch.OutOfMemoryError``, progress and cancel.
Also how the pack behaves outside ComfyUI and in a ComfyUI too old for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from comfyui_server import COMFY_DIR, COMFY_PYTHON, require_comfyui

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def probe(tmp_path_factory, real_weights: Path) -> dict:
    require_comfyui()
    base = tmp_path_factory.mktemp("probe")
    (base / "models" / "rife").mkdir(parents=True)
    (base / "models" / "rife" / "rife-v4.25.safetensors").symlink_to(real_weights)
    result = subprocess.run(
        [str(COMFY_PYTHON), str(REPO / "tests" / "comfyui_probe.py"), str(REPO), str(base), "rife-v4.25.safetensors"],
        cwd=COMFY_DIR, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def observed(probe: dict, name: str) -> dict:
    entry = probe[name]
    assert "error" not in entry, entry.get("trace", entry)
    return entry


def test_vram_request_reaches_comfyuis_memory_manager_with_the_estimate(probe) -> None:
    entry = observed(probe, "vram_request")
    assert entry["models"] == [[True], [True]]  # the RIFE patcher, nothing else
    assert entry["requested"] == entry["expected"]  # batch 0 = automatic = 1 on CPU, then batch 4
    assert 0 < entry["requested"][0] < entry["requested"][1]


def test_out_of_memory_without_torch_outofmemoryerror_halves_the_batch(probe) -> None:
    entry = observed(probe, "oom_without_torch_outofmemoryerror_halves_the_batch")
    sizes = entry["sizes"]  # batches of 2 fail (one per CPU worker in flight), then 4 single in-betweens succeed
    failed = sizes[: sizes.index(1)]
    assert failed and set(failed) == {2} and sizes[len(failed) :] == [1, 1, 1, 1]
    assert entry["equal"]  # the same frames as a run at batch 1


def test_out_of_memory_at_batch_one_offloads_every_other_model_and_retries(probe) -> None:
    entry = observed(probe, "oom_at_batch_one_asks_comfyui_to_free_everything_else")
    assert entry["sizes"][:2] == [1, 1]  # failed, retried once after ComfyUI freed memory
    assert entry["free_memory"] and all(call["keeps_rife"] == [True] for call in entry["free_memory"])
    assert entry["equal"] and entry["offloaded_after"]


def test_progress_per_output_frame_and_cancel(probe) -> None:
    entry = observed(probe, "progress_per_output_frame_and_interrupt")
    assert entry["complete"] == [[done, 7] for done in range(1, 8)]  # 3 frames x3 -> 7
    assert entry["outcome"] == "interrupted" and entry["interrupted"] == [[1, 7], [2, 7], [3, 7]]
    assert entry["offloaded_after"]


def test_pack_folder_with_symlink_loops_lists_each_checkpoint_once(probe) -> None:
    entry = observed(probe, "pack_folder_with_symlink_loops")
    assert entry["entries"] == ["extra/model.safetensors", "rifev4_25"]  # the real folder's name, not the link's


# ------------------------------------------------------------------------------------------------ import

LOAD = (
    "import importlib.util, json, logging, sys\n"
    "logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')\n"
    "name = '/opt/ComfyUI/custom_nodes/ComfyUI-RIFE'.replace('.', '_x_')\n"
    f"spec = importlib.util.spec_from_file_location(name, {str(REPO / '__init__.py')!r})\n"
    "module = importlib.util.module_from_spec(spec); sys.modules[name] = module; spec.loader.exec_module(module)\n"
    "print(json.dumps({'names': sorted(k for k in vars(module) if k in ('NODE_CLASS_MAPPINGS', 'comfy_entrypoint')),\n"
    "    'mappings': getattr(module, 'NODE_CLASS_MAPPINGS', None),\n"
    "    'loaded': sorted(m for m in sys.modules if m.startswith(name + '.') or m.split('.')[0] in\n"
    "                     ('comfy', 'comfy_api', 'torch'))}))\n"
)


def _load_pack(tmp_path: Path, fake_comfyui: dict[str, str]) -> tuple[dict, str]:
    for module, source in fake_comfyui.items():
        (tmp_path / f"{module}.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if fake_comfyui:
        env["PYTHONPATH"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-c", LOAD], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


def test_outside_comfyui_the_pack_imports_nothing(tmp_path: Path) -> None:
    loaded, log = _load_pack(tmp_path, {})
    assert loaded == {"names": [], "mappings": None, "loaded": []}
    assert log == ""


def test_an_older_comfyui_gets_one_line_and_keeps_starting(tmp_path: Path) -> None:
    # ComfyUI 0.3.40's top-level modules as far as the pack looks at them (it had no comfy_api.latest)
    loaded, log = _load_pack(tmp_path, {"folder_paths": "", "comfyui_version": '__version__ = "0.3.40"\n'})
    assert loaded == {"names": ["NODE_CLASS_MAPPINGS"], "mappings": {}, "loaded": []}
    assert log.splitlines() == [
        "ERROR RIFE frame interpolation needs ComfyUI 0.3.64 or newer (this is 0.3.40); update ComfyUI to use it."
    ]


def test_the_node_adds_no_copy_of_the_clip_and_returns_an_ordinary_tensor(probe) -> None:
    entry = observed(probe, "no_whole_clip_copies")
    assert entry == {"same_storage": True, "inference": False}
