"""The ComfyUI nodes, loaded the way ComfyUI loads a custom node pack, against stand-ins for ComfyUI's modules.

The stand-ins (tests/comfy_stubs: ``folder_paths``, ``comfy.utils``, ``comfy.model_management``,
``comfy.model_patcher``) keep ComfyUI's names, signatures and semantics. The pack is imported from its root
``__init__.py`` under a module name with dashes and dots; its example workflows' API copies are executed through
the node classes by a small executor, with the real RIFE 4.25 weights.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parents[1]
STUBS = Path(__file__).resolve().parent / "comfy_stubs"
WORKFLOWS = REPO / "workflows"
PACK_NAME = "custom_nodes.ComfyUI-RIFE.v1.2"
STUB_MODULES = ("folder_paths", "comfy", "comfy.utils", "comfy.model_management", "comfy.model_patcher")
NODES = ("LoadRIFEModel", "RIFEInterpolate", "RIFERecursiveInterpolate", "RIFEFrameRate")
WIDGET_TYPES = ("INT", "FLOAT", "BOOLEAN", "STRING")


def load_pack(name: str, *, search_locations: bool = True):
    """Import the pack's root ``__init__.py`` as ComfyUI does (module registered before it executes)."""
    if search_locations:
        spec = importlib.util.spec_from_file_location(
            name, REPO / "__init__.py", submodule_search_locations=[str(REPO)]
        )
    else:  # ComfyUI's own call: a path ending in __init__.py makes it a package by itself
        spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def unload(prefix: str) -> None:
    for name in [n for n in sys.modules if n == prefix or n.startswith(prefix + ".")]:
        del sys.modules[name]


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def comfy_base(tmp_path_factory) -> Path:
    """A ComfyUI base directory (``--base-directory``) with an empty models/ tree."""
    base = tmp_path_factory.mktemp("comfyui")
    (base / "models" / "rife").mkdir(parents=True)
    return base


@pytest.fixture(scope="module")
def comfy(comfy_base: Path):
    """The ComfyUI stand-ins imported as ``folder_paths`` and ``comfy.*``, then the pack as ComfyUI loads it."""
    if any(name in sys.modules for name in STUB_MODULES):
        pytest.fail("a real or stale ComfyUI module is already imported; these tests need the stand-ins")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COMFY_STUB_BASE_DIRECTORY", str(comfy_base))
        patch.syspath_prepend(str(STUBS))
        import comfy.model_management
        import comfy.model_patcher
        import comfy.utils
        import folder_paths

        pack = load_pack(PACK_NAME)
        yield _Comfy(pack, folder_paths, comfy.model_management, comfy.utils, comfy.model_patcher)
    unload(PACK_NAME)
    for name in STUB_MODULES:
        sys.modules.pop(name, None)


class _Comfy:
    def __init__(self, pack, folder_paths, management, utils, model_patcher) -> None:
        self.pack = pack
        self.folder_paths = folder_paths
        self.mm = management
        self.utils = utils
        self.model_patcher = model_patcher
        self.rife = sys.modules[f"{PACK_NAME}.rife"]  # the pack's own copy of the library
        self.checkpoints = sys.modules[f"{PACK_NAME}.nodes.checkpoints"]

    def node(self, name: str):
        return self.pack.NODE_CLASS_MAPPINGS[name]()


@pytest.fixture
def progress_log(comfy):
    """Every ComfyUI progress-bar update as (value, total); the interrupt flag is reset after the test."""
    updates: list[tuple[int, int]] = []
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: updates.append((value, total)))
    yield updates
    comfy.utils.set_progress_bar_global_hook(None)
    comfy.mm.interrupt_current_processing(False)


@pytest.fixture(scope="module")
def installed(comfy, comfy_base: Path, real_pkl: Path, real_weights: Path) -> Path:
    """The real weights in models/rife as the mirror's flownet_v4.25.pkl and as a safetensors file."""
    rife_dir = comfy_base / "models" / "rife"
    (rife_dir / "flownet_v4.25.pkl").symlink_to(real_pkl)
    (rife_dir / "rife-v4.25.safetensors").symlink_to(real_weights)
    return rife_dir


@pytest.fixture(scope="module")
def handle(comfy, installed):
    """A RIFE_MODEL from the loader node (fp32 on CPU)."""
    model, _version = comfy.node("LoadRIFEModel").load("flownet_v4.25.pkl")
    return model


@pytest.fixture(scope="session")
def clip(frames_dir: Path) -> torch.Tensor:
    """Three real consecutive frames, 64x64 crops, as a ComfyUI IMAGE batch [3,64,64,3] float32."""
    crops = [np.asarray(Image.open(frames_dir / f"{i:07d}.png").convert("RGB"))[8:72, 16:80] for i in range(3)]
    return torch.from_numpy(np.stack(crops).astype(np.float32) / 255.0)


@pytest.fixture(scope="session")
def other_scene(frames_dir: Path) -> torch.Tensor:
    """A 64x64 frame of a different shot (the Practical-RIFE street demo)."""
    image = Image.open(frames_dir / "demo_pair" / "I0_0.png").convert("RGB").resize((224, 128), Image.LANCZOS)
    return torch.from_numpy(np.asarray(image)[32:96, 80:144].astype(np.float32) / 255.0)


# ------------------------------------------------------------------------------------------------ import


def test_root_package_without_comfyui_exports_empty_mappings_and_imports_nothing(tmp_path: Path) -> None:
    code = (
        "import importlib.util, json, sys\n"
        f"name = {PACK_NAME!r}\n"
        f"spec = importlib.util.spec_from_file_location(name, {str(REPO / '__init__.py')!r}, "
        f"submodule_search_locations=[{str(REPO)!r}])\n"
        "module = importlib.util.module_from_spec(spec); sys.modules[name] = module; spec.loader.exec_module(module)\n"
        "print(json.dumps({'classes': module.NODE_CLASS_MAPPINGS, 'names': module.NODE_DISPLAY_NAME_MAPPINGS,\n"
        "    'loaded': sorted(m for m in sys.modules if m.startswith(name + '.') or m.split('.')[0] in\n"
        "                     ('comfy', 'folder_paths', 'torch'))}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"classes": {}, "names": {}, "loaded": []}


@pytest.mark.parametrize(
    ("name", "search_locations"),
    [(PACK_NAME, True), ("/opt/ComfyUI/custom_nodes/ComfyUI-RIFE-v1_x_2", False)],
    ids=["dashes-and-dots", "comfyui-path-name"],
)
def test_pack_registers_its_nodes_under_comfyui_module_names(comfy, name: str, search_locations: bool) -> None:
    pack = comfy.pack if name == PACK_NAME else load_pack(name, search_locations=search_locations)
    try:
        assert sorted(pack.NODE_CLASS_MAPPINGS) == sorted(NODES)
        assert sorted(pack.NODE_DISPLAY_NAME_MAPPINGS) == sorted(NODES)
        for cls in pack.NODE_CLASS_MAPPINGS.values():
            assert cls.__module__.startswith(name + ".nodes.")
        assert not hasattr(pack, "comfy_entrypoint")  # V1 only: ComfyUI would ignore a V3 entry point anyway
    finally:
        if name != PACK_NAME:
            unload(name)


# ------------------------------------------------------------------------------------------------ schemas

REQUIRED = {
    "LoadRIFEModel": {"ckpt_name": None},
    "RIFEInterpolate": {"rife_model": "RIFE_MODEL", "images": "IMAGE", "multiplier": "INT", "scale": "FLOAT"},
    "RIFERecursiveInterpolate": {"rife_model": "RIFE_MODEL", "images": "IMAGE", "multiplier": "INT", "scale": "FLOAT"},
    "RIFEFrameRate": {
        "rife_model": "RIFE_MODEL",
        "images": "IMAGE",
        "fps_in": "FLOAT",
        "fps_out": "FLOAT",
        "scale": "FLOAT",
    },
}


@pytest.mark.parametrize("name", NODES)
def test_node_schema_is_complete_and_matches_the_function(comfy, name: str) -> None:
    cls = comfy.pack.NODE_CLASS_MAPPINGS[name]
    schema = cls.INPUT_TYPES()
    assert set(schema) <= {"required", "optional"}
    required, optional = schema["required"], schema.get("optional", {})
    assert list(required) == list(REQUIRED[name])
    for input_name, expected_type in REQUIRED[name].items():
        if expected_type is None:
            assert isinstance(required[input_name][0], list)  # a combo
        else:
            assert required[input_name][0] == expected_type
    assert cls.CATEGORY == "video/frame interpolation"
    assert len(cls.DESCRIPTION) > 80
    assert len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES) == len(cls.OUTPUT_TOOLTIPS)
    parameters = inspect.signature(getattr(cls, cls.FUNCTION)).parameters
    assert list(parameters)[1:] == [*required, *optional]
    for input_name, (kind, options) in {**required, **optional}.items():
        assert len(options["tooltip"]) > 20, input_name
        if input_name in optional:
            assert parameters[input_name].default == options["default"], input_name
        if kind in ("INT", "FLOAT") and "default" in options:
            assert options["min"] <= options["default"] <= options["max"], input_name
        if isinstance(kind, list):
            assert options.get("default", kind[0]) in kind


def test_interpolation_inputs_have_the_specified_defaults(comfy) -> None:
    for name in ("RIFEInterpolate", "RIFERecursiveInterpolate"):
        schema = comfy.pack.NODE_CLASS_MAPPINGS[name].INPUT_TYPES()
        assert schema["required"]["multiplier"][1]["default"] == 2
        assert schema["required"]["scale"][1]["default"] == 1.0
        assert comfy.pack.NODE_CLASS_MAPPINGS[name].RETURN_TYPES[:2] == ("IMAGE", "FLOAT")
        assert comfy.pack.NODE_CLASS_MAPPINGS[name].RETURN_NAMES[:2] == ("images", "fps_out")
    mode = comfy.pack.NODE_CLASS_MAPPINGS["RIFERecursiveInterpolate"].INPUT_TYPES()["optional"]["mode"]
    assert mode[0] == ["recursive", "bisect"] and mode[1]["default"] == "recursive"
    loader = comfy.pack.NODE_CLASS_MAPPINGS["LoadRIFEModel"]
    assert loader.RETURN_TYPES == ("RIFE_MODEL", "STRING")
    assert loader.INPUT_TYPES()["optional"]["precision"][0] == ["auto", "fp32", "fp16", "bf16"]


# ------------------------------------------------------------------------------------------------ model folders


def test_rife_folder_is_registered_with_checkpoint_extensions_after_yaml_paths(comfy, monkeypatch) -> None:
    folder_paths = comfy.folder_paths
    models_rife = os.path.join(folder_paths.models_dir, "rife")
    paths, extensions = folder_paths.folder_names_and_paths["rife"]
    assert paths == [models_rife]
    assert extensions == {".pkl", ".pth", ".pt", ".ckpt", ".safetensors", ".bin"}
    # an extra_model_paths.yaml entry registered before the pack: kept first, ours appended
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "rife", (["/yaml/rife"], set()))
    comfy.checkpoints.register_model_folder()
    assert folder_paths.folder_names_and_paths["rife"] == (["/yaml/rife", models_rife], extensions)


@pytest.fixture
def model_dirs(comfy, tmp_path: Path, monkeypatch) -> dict[str, Path]:
    """Empty rife, frame_interpolation and pack ckpt/ folders in place of the real ones."""
    dirs = {name: tmp_path / name for name in ("rife", "frame_interpolation", "ckpt")}
    for folder in dirs.values():
        folder.mkdir()
    folders = comfy.folder_paths.folder_names_and_paths
    monkeypatch.setitem(folders, "rife", ([str(dirs["rife"])], folders["rife"][1]))
    monkeypatch.setitem(folders, "frame_interpolation", ([str(dirs["frame_interpolation"])], folders["rife"][1]))
    monkeypatch.setattr(comfy.checkpoints, "PACK_CKPT_DIR", dirs["ckpt"])
    return dirs


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_checkpoints_are_listed_from_all_three_places(comfy, model_dirs, monkeypatch) -> None:
    for relative in ("rife/b.pth", "rife/sub/flownet.pkl", "rife/notes.txt", "rife/flownet_v4.6.pkl"):
        touch(model_dirs["rife"].parent / relative)
    touch(model_dirs["frame_interpolation"] / "film_net_fp16.safetensors")
    for relative in ("rifev4_25/flownet.pkl", "rifev4_25/IFNet_HDv3.py", "old.pth", "readme.md"):
        touch(model_dirs["ckpt"] / relative)
    names = comfy.checkpoints.checkpoint_names()
    local = [
        "b.pth",
        "flownet_v4.6.pkl",
        "sub/flownet.pkl",
        "frame_interpolation/film_net_fp16.safetensors",
        "ckpt/old.pth",
        "ckpt/rifev4_25",
    ]
    downloads = [f"flownet_v{v}.pkl" for v in comfy.rife.download.VERSIONS if v != "4.6"]
    assert names == local + downloads
    assert comfy.checkpoints.resolve("ckpt/rifev4_25") == model_dirs["ckpt"] / "rifev4_25"
    assert comfy.checkpoints.resolve("frame_interpolation/film_net_fp16.safetensors") == (
        model_dirs["frame_interpolation"] / "film_net_fp16.safetensors"
    )
    assert comfy.checkpoints.resolve("ckpt/../rife/b.pth") is None  # no way out of the pack's folder
    # a ComfyUI without the frame_interpolation folder (older than that folder) and without ckpt/
    monkeypatch.delitem(comfy.folder_paths.folder_names_and_paths, "frame_interpolation")
    model_dirs["ckpt"].joinpath("old.pth").unlink()
    model_dirs["ckpt"].joinpath("rifev4_25", "flownet.pkl").unlink()
    assert comfy.checkpoints.checkpoint_names()[:3] == ["b.pth", "flownet_v4.6.pkl", "sub/flownet.pkl"]
    assert comfy.checkpoints.checkpoint_names()[3] == "flownet_v4.0.pkl"


def test_pack_folder_with_symlink_loops_lists_each_checkpoint_once(comfy, model_dirs) -> None:
    ckpt = model_dirs["ckpt"]
    touch(ckpt / "rifev4_25" / "flownet.pkl")
    touch(ckpt / "extra" / "model.safetensors")
    (ckpt / "extra" / "back").symlink_to(ckpt, target_is_directory=True)  # a loop to the top
    (ckpt / "extra" / "self").symlink_to(ckpt / "extra", target_is_directory=True)  # a loop to itself
    (ckpt / "again").symlink_to(ckpt / "rifev4_25", target_is_directory=True)  # a second name for one folder
    (ckpt / "nowhere").symlink_to(ckpt / "missing", target_is_directory=True)  # broken
    entries = comfy.checkpoints._pack_entries()
    assert entries == ["extra/model.safetensors", "rifev4_25"]  # the real folder's name, not the link's


def test_missing_checkpoint_says_where_to_put_it_and_where_to_get_it(comfy, model_dirs) -> None:
    model_dirs["rife"].rmdir()  # a missing folder must not break the listing either
    assert comfy.checkpoints.checkpoint_names()[0] == "flownet_v4.0.pkl"
    with pytest.raises(comfy.rife.CheckpointError) as error:
        comfy.node("LoadRIFEModel").load("my_rife.pth")
    message = str(error.value)
    assert message.startswith("RIFE checkpoint 'my_rife.pth' was not found.")
    for folder in model_dirs.values():
        assert str(folder) in message
    assert "https://github.com/hzwer/Practical-RIFE#trained-model" in message
    assert "download_if_missing" not in message  # not a downloadable name
    with pytest.raises(comfy.rife.CheckpointError) as error:
        comfy.node("LoadRIFEModel").load("flownet_v4.25.pkl")
    assert str(error.value).endswith(
        f"Or set download_if_missing to true to download RIFE 4.25 as {model_dirs['rife'] / 'flownet_v4.25.pkl'}."
    )


def test_unsupported_checkpoint_surfaces_the_loader_error(comfy, model_dirs) -> None:
    generator = torch.Generator().manual_seed(0)
    save_file(
        {"encoder.weight": torch.randn(8, 3, generator=generator), "decoder.bias": torch.randn(8, generator=generator)},
        str(model_dirs["rife"] / "unrelated.safetensors"),
    )
    with pytest.raises(comfy.rife.CheckpointError) as error:
        comfy.node("LoadRIFEModel").load("unrelated.safetensors")
    assert str(error.value).startswith(f"{model_dirs['rife'] / 'unrelated.safetensors'} is not a RIFE 4.x checkpoint")


def test_download_if_missing_fetches_into_the_rife_folder(comfy, model_dirs, real_pkl, tmp_path, monkeypatch) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "flownet_v4.22.pkl").symlink_to(real_pkl)  # 4.22 has no pinned checksum: any content is taken
    monkeypatch.setenv("RIFE_DOWNLOAD_BASE_URL", mirror.as_uri())
    updates: list[tuple[int, int]] = []
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: updates.append((value, total)))
    try:
        _handle, version = comfy.node("LoadRIFEModel").load("flownet_v4.22.pkl", download_if_missing=True)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
    target = model_dirs["rife"] / "flownet_v4.22.pkl"
    assert target.read_bytes() == real_pkl.read_bytes()
    assert version == "RIFE 4.25 / 4.26 (layout 4.25), fp32, flownet_v4.22.pkl"
    size = real_pkl.stat().st_size
    assert updates[-1] == (size, size)
    assert comfy.checkpoints.checkpoint_names()[0] == "flownet_v4.22.pkl"


# ------------------------------------------------------------------------------------------------ loader


def test_loader_reports_the_detected_version_and_registers_with_the_memory_manager(comfy, installed) -> None:
    handle, version = comfy.node("LoadRIFEModel").load("rife-v4.25.safetensors")
    assert version == "RIFE 4.25 / 4.26 (layout 4.25), fp32, rife-v4.25.safetensors"
    assert isinstance(handle.patcher, comfy.model_patcher.ModelPatcher)
    assert handle.patcher.model is handle.model.net
    assert handle.patcher.load_device == comfy.mm.get_torch_device()
    assert handle.patcher.offload_device == comfy.mm.unet_offload_device()
    assert handle.model.device.type == comfy.mm.unet_offload_device().type
    _fp16, version16 = comfy.node("LoadRIFEModel").load("rife-v4.25.safetensors", precision="fp16")
    assert version16 == "RIFE 4.25 / 4.26 (layout 4.25), fp16, rife-v4.25.safetensors"


def test_loader_accepts_a_pack_checkpoint_directory(comfy, model_dirs, real_pkl) -> None:
    (model_dirs["ckpt"] / "rifev4_25").mkdir()
    (model_dirs["ckpt"] / "rifev4_25" / "flownet.pkl").symlink_to(real_pkl)
    _handle, version = comfy.node("LoadRIFEModel").load("ckpt/rifev4_25")
    assert version == "RIFE 4.25 / 4.26 (layout 4.25), fp32, ckpt/rifev4_25"


# ------------------------------------------------------------------------------------------------ interpolation


@pytest.mark.parametrize(
    ("name", "options", "count"),
    [
        ("RIFEInterpolate", {"multiplier": 2}, 3),
        ("RIFEInterpolate", {"multiplier": 3, "loop": True}, 6),
        ("RIFERecursiveInterpolate", {"multiplier": 5}, 6),
        ("RIFERecursiveInterpolate", {"multiplier": 4, "mode": "bisect"}, 5),
        ("RIFEFrameRate", {"fps_in": 16.0, "fps_out": 24.0}, 2),
        ("RIFEFrameRate", {"fps_in": 24.0, "fps_out": 60.0}, 3),
    ],
)
def test_outputs_frame_counts_float32_on_the_intermediate_device_and_progress(
    comfy, handle, clip, progress_log, name, options, count
) -> None:
    pair = clip[:2]
    images, fps_out, info = comfy.node(name).run(handle, pair, scale=1.0, **options)
    assert images.shape == (count, 64, 64, 3)
    assert images.dtype == torch.float32 and images.device == comfy.mm.intermediate_device()
    assert progress_log == [(done, count) for done in range(1, count + 1)]
    expected_fps = options.get("fps_out", 0.0)
    assert fps_out == expected_fps
    assert info.startswith(f"2 -> {count} frames")
    step = options.get("multiplier")
    if step:  # originals kept exactly at every multiplier-th position
        assert torch.equal(images[::step][:2], pair)


def test_fps_out_is_fps_in_times_multiplier_and_frames_equal_the_library(comfy, handle, clip, real_model) -> None:
    import rife

    pair = clip[:2]
    images, fps_out, info = comfy.node("RIFEInterpolate").run(handle, pair, 3, 1.0, fps_in=16.0)
    assert fps_out == 48.0
    assert info == "2 -> 4 frames at 48 fps; no scene cuts; no held frames retimed"
    torch.testing.assert_close(images, rife.interpolate(real_model, pair, 3), rtol=0, atol=1e-6)
    _images, ntsc, _info = comfy.node("RIFEInterpolate").run(handle, pair, 2, 1.0, fps_in=30000 / 1001)
    assert ntsc == 60000 / 1001


def test_output_is_float32_for_a_half_precision_model(comfy, installed, clip) -> None:
    fp16, _version = comfy.node("LoadRIFEModel").load("rife-v4.25.safetensors", precision="fp16")
    images, _fps, _info = comfy.node("RIFEInterpolate").run(fp16, clip[:2], 2, 1.0)
    assert fp16.model.dtype == torch.float16
    assert images.dtype == torch.float32 and images.shape == (3, 64, 64, 3)
    assert torch.equal(images[::2], clip[:2])


def test_output_goes_to_the_intermediate_device_comfyui_names(comfy, handle, clip, monkeypatch) -> None:
    monkeypatch.setattr(comfy.mm, "intermediate_device", lambda: torch.device("meta"))
    images, _fps, _info = comfy.node("RIFEInterpolate").run(handle, clip[:2], 2, 1.0)
    assert images.device.type == "meta" and images.dtype == torch.float32 and images.shape[0] == 3


def test_model_is_on_the_load_device_while_running_and_offloaded_after(
    comfy, handle, clip, progress_log, monkeypatch
) -> None:
    patcher = handle.patcher
    load_calls = []
    load_models_gpu = comfy.mm.load_models_gpu
    monkeypatch.setattr(
        comfy.mm,
        "load_models_gpu",
        lambda models, **kw: load_calls.append((models, kw)) or load_models_gpu(models, **kw),
    )
    seen: list[tuple[int, str]] = []
    comfy.utils.set_progress_bar_global_hook(
        lambda value, total, preview, node_id=None: seen.append(
            (patcher.loaded_size(), str(next(patcher.model.parameters()).device.type))
        )
    )
    comfy.node("RIFEInterpolate").run(handle, clip[:2], 2, 1.0)
    load_type = comfy.mm.get_torch_device().type
    assert load_calls == [([patcher], {"force_full_load": True})]
    assert seen == [(patcher.model_size(), load_type)] * 3
    assert patcher.loaded_size() == 0
    assert patcher.model.device == patcher.offload_device
    assert {p.device.type for p in patcher.model.parameters()} == {patcher.offload_device.type}
    # the model stays known to ComfyUI, so a later run reloads it
    assert any(loaded.model is patcher for loaded in comfy.mm.current_loaded_models)


def test_offloaded_also_when_the_run_fails(comfy, handle, clip, monkeypatch) -> None:
    loaded_sizes = []
    load_models_gpu = comfy.mm.load_models_gpu

    def load_and_record(models, **options):
        load_models_gpu(models, **options)
        loaded_sizes.append(handle.patcher.loaded_size())

    monkeypatch.setattr(comfy.mm, "load_models_gpu", load_and_record)
    with pytest.raises(comfy.rife.InvalidInputError, match="scale must be one of"):
        comfy.node("RIFEInterpolate").run(handle, clip, 2, 0.75)
    assert loaded_sizes == [handle.patcher.model_size()]  # it was loaded for the run ...
    assert handle.patcher.loaded_size() == 0  # ... and offloaded when the run failed


def test_cancel_raises_comfyui_interrupt_and_returns_nothing(comfy, handle, clip, progress_log) -> None:
    def interrupt_at_second_frame(value, total, preview, node_id=None):
        progress_log.append((value, total))
        if value == 2:
            comfy.mm.interrupt_current_processing(True)

    comfy.utils.set_progress_bar_global_hook(interrupt_at_second_frame)
    result = None
    with pytest.raises(comfy.mm.InterruptProcessingException):
        result = comfy.node("RIFERecursiveInterpolate").run(handle, clip, 4, 1.0)
    assert result is None
    assert progress_log == [(1, 9), (2, 9)]  # stopped at the next frame
    assert not comfy.mm.processing_interrupted()
    assert handle.patcher.loaded_size() == 0


def test_odd_image_batches(comfy, handle, clip) -> None:
    node = comfy.node("RIFEInterpolate")
    clip = clip[:2]
    alpha = torch.linspace(0, 1, 64).expand(2, 64, 64)[..., None]
    rgba, _fps, _info = node.run(handle, torch.cat([clip, alpha], -1), 2, 1.0)
    assert rgba.shape == (3, 64, 64, 4) and torch.equal(rgba[::2, ..., 3:], alpha)
    grey, _fps, _info = node.run(handle, clip[..., :1], 2, 1.0)
    assert grey.shape == (3, 64, 64, 1) and torch.equal(grey[::2], clip[..., :1])
    half, _fps, _info = node.run(handle, clip.half(), 2, 1.0)
    assert half.dtype == torch.float32 and torch.equal(half[::2], clip.half().float())
    out_of_range = clip * 3 - 0.5
    assert out_of_range.min() < 0 and out_of_range.max() > 1
    bright, _fps, _info = node.run(handle, out_of_range, 2, 1.0)
    assert bright.min() == 0.0 and bright.max() == 1.0
    assert torch.equal(bright[::2], out_of_range.clamp(0, 1))
    with pytest.raises(comfy.rife.InvalidInputError, match="Cannot interpolate an empty clip"):
        node.run(handle, clip[:0], 2, 1.0)


def test_timing_options_reach_the_engine(comfy, handle, clip, other_scene) -> None:
    node = comfy.node("RIFEInterpolate")
    cut_clip = torch.stack([clip[0], clip[1], other_scene])
    images, _fps, info = node.run(handle, cut_clip, 2, 1.0)
    assert info == "3 -> 5 frames; scene cuts between frames 1-2 (not morphed); no held frames retimed"
    assert torch.equal(images[3], other_scene)  # the in-between across the cut is a copy
    images, _fps, info = node.run(handle, cut_clip, 2, 1.0, scene_threshold=0.0)
    assert info == "3 -> 5 frames; no scene cuts; no held frames retimed"
    assert not torch.equal(images[3], other_scene)
    held = torch.stack([clip[0], clip[0], clip[2]])
    images, _fps, info = node.run(handle, held, 2, 1.0, dedupe=True)
    assert info == "3 -> 5 frames; no scene cuts; held frames retimed: 0-1"
    assert not torch.equal(images[2], clip[0])  # the held copy became an in-between


# ------------------------------------------------------------------------------------------------ workflows

WORKFLOW_NAMES = sorted(p.stem for p in WORKFLOWS.glob("*.json"))
FOREIGN_WIDGETS = {
    "LoadVideo": ["file"],
    "GetVideoComponents": [],
    "CreateVideo": ["fps"],
    "SaveVideo": ["filename_prefix", "format", "codec"],
}
EXPECTED = {  # 3 frames at 16 fps in -> frames and frame rate the video writer receives
    "rife_basic_x2": (5, 32.0),
    "rife_recursive_x4": (9, 64.0),
    "rife_16fps_to_48fps_video_combine": (7, 48.0),
    "rife_framerate_16_to_24": (4, 24.0),
}


def is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def widget_names(schema: dict) -> list[str]:
    inputs = {**schema["required"], **schema.get("optional", {})}
    return [name for name, (kind, *_rest) in inputs.items() if isinstance(kind, list) or kind in WIDGET_TYPES]


def test_every_workflow_has_an_api_copy_and_they_agree(comfy) -> None:
    assert sorted(EXPECTED) == WORKFLOW_NAMES
    assert sorted(p.stem for p in (WORKFLOWS / "api").glob("*.json")) == WORKFLOW_NAMES
    for name in WORKFLOW_NAMES:
        ui = json.loads((WORKFLOWS / f"{name}.json").read_text())
        api = json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())
        nodes = {str(n["id"]): n for n in ui["nodes"] if n["type"] != "Note"}
        assert {k: n["type"] for k, n in nodes.items()} == {k: n["class_type"] for k, n in api.items()}, name
        links = {link[0]: link for link in ui["links"]}
        for node_id, node in nodes.items():
            api_inputs = api[node_id]["inputs"]
            linked = {}
            for entry in node["inputs"]:
                if entry["link"] is not None:
                    _id, source, slot, target, _slot, _type = links[entry["link"]]
                    assert target == node["id"]
                    linked[entry["name"]] = [str(source), slot]
            assert {k: v for k, v in api_inputs.items() if is_link(v)} == linked, (name, node_id)
            values = node["widgets_values"]
            if isinstance(values, dict):  # VideoHelperSuite stores widgets by name
                widgets = {k: v for k, v in values.items() if k != "videopreview"}
            else:
                cls = comfy.pack.NODE_CLASS_MAPPINGS.get(node["type"])
                names = widget_names(cls.INPUT_TYPES()) if cls else FOREIGN_WIDGETS[node["type"]]
                widgets = dict(zip(names, values, strict=False))
                assert len(values) >= len(names), (name, node_id)
            for key, value in api_inputs.items():
                if not is_link(value):
                    assert widgets[key] == value, (name, node_id, key)


class Writers:
    """Fakes of the video nodes the workflows use (ComfyUI core and VideoHelperSuite), recording what they get."""

    def __init__(self, clip: torch.Tensor) -> None:
        self.clip = clip
        self.written: list[tuple[torch.Tensor, float]] = []

    def fakes(self) -> dict:
        def get_components(video):
            return self.clip, None, 16.0

        def create_video(images, fps, audio=None):
            return ({"images": images, "fps": fps, "audio": audio},)

        def save_video(video, filename_prefix, format, codec):
            self.written.append((video["images"], video["fps"]))
            return ()

        def vhs_load(
            video,
            force_rate,
            custom_width,
            custom_height,
            frame_load_cap,
            skip_first_frames,
            select_every_nth,
            format="AnimateDiff",
        ):
            return self.clip, self.clip.shape[0], None, {"loaded_fps": force_rate}

        def vhs_combine(
            images, frame_rate, loop_count, filename_prefix, format, pingpong, save_output, audio=None, **format_widgets
        ):
            self.written.append((images, frame_rate))
            return ((save_output, []),)

        return {
            "LoadVideo": lambda file: (f"video:{file}",),
            "GetVideoComponents": get_components,
            "CreateVideo": create_video,
            "SaveVideo": save_video,
            "VHS_LoadVideo": vhs_load,
            "VHS_VideoCombine": vhs_combine,
        }


def execute(api: dict, node_classes: dict, fakes: dict) -> dict[str, tuple]:
    """Run an API-format prompt: nodes in topological order, links resolved to upstream outputs, the pack's
    inputs validated as ComfyUI does (required present, nothing unknown, combo values listed, numbers in range)."""
    results: dict[str, tuple] = {}
    pending = dict(api)
    while pending:
        ready = [k for k, n in pending.items() if all(v[0] in results for v in n["inputs"].values() if is_link(v))]
        assert ready, "the prompt has a cycle or a link to a missing node"
        for node_id in ready:
            node = pending.pop(node_id)
            kwargs = {k: results[v[0]][v[1]] if is_link(v) else v for k, v in node["inputs"].items()}
            cls = node_classes.get(node["class_type"])
            if cls is None:
                results[node_id] = fakes[node["class_type"]](**kwargs)
                continue
            validate(cls.INPUT_TYPES(), node["inputs"])
            results[node_id] = getattr(cls(), cls.FUNCTION)(**kwargs)
            assert len(results[node_id]) == len(cls.RETURN_TYPES)
    return results


def validate(schema: dict, inputs: dict) -> None:
    required, optional = schema["required"], schema.get("optional", {})
    assert set(required) <= set(inputs) <= set(required) | set(optional)
    for name, value in inputs.items():
        kind, *rest = {**required, **optional}[name]
        options = rest[0] if rest else {}
        if is_link(value):
            continue
        if isinstance(kind, list):
            assert value in kind, (name, value)
        elif kind in ("INT", "FLOAT"):
            assert options["min"] <= value <= options["max"], (name, value)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_workflow_api_copy_runs_through_the_nodes(comfy, installed, clip, progress_log, real_model, name) -> None:
    import rife

    api = json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())
    writers = Writers(clip)
    results = execute(api, comfy.pack.NODE_CLASS_MAPPINGS, writers.fakes())
    count, fps = EXPECTED[name]
    [(images, frame_rate)] = writers.written
    assert images.shape == (count, 64, 64, 3) and images.dtype == torch.float32
    assert images.device == comfy.mm.intermediate_device()
    assert frame_rate == fps
    assert progress_log[-1] == (count, count) and len(progress_log) == count
    [loader_id] = [k for k, node in api.items() if node["class_type"] == "LoadRIFEModel"]
    handle, version = results[loader_id]
    assert version == "RIFE 4.25 / 4.26 (layout 4.25), fp32, flownet_v4.25.pkl"
    assert handle.patcher.loaded_size() == 0  # offloaded again
    if name == "rife_basic_x2":
        torch.testing.assert_close(images, rife.interpolate(real_model, clip, 2), rtol=0, atol=1e-6)
