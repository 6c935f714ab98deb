"""Runs inside the real ComfyUI's Python (``$COMFY_ROOT/venv``), without a server: imports ComfyUI's own modules,
loads the pack through ComfyUI's ``nodes.load_custom_node``, calls the nodes and watches ComfyUI's memory manager.

    python comfyui_probe.py <pack dir> <base dir> <checkpoint>     (cwd: the ComfyUI source folder)

Prints one JSON object: per check, what was observed (or the exception it ended in). tests/test_comfyui_memory.py
asserts on it; every check runs even when an earlier one fails.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import traceback

PACK, BASE, CHECKPOINT = sys.argv[1:4]
sys.argv = ["main.py", "--cpu", "--base-directory", BASE]
sys.path.insert(0, ".")

import comfy.options  # noqa: E402

comfy.options.enable_args_parsing()

import comfy.model_management as mm  # noqa: E402
import comfy.utils  # noqa: E402
import torch  # noqa: E402

import nodes  # noqa: E402

assert asyncio.run(nodes.load_custom_node(PACK)), "the pack did not load"
NODE = nodes.NODE_CLASS_MAPPINGS["RIFEInterpolate"]
pack = sys.modules[NODE.__module__.rsplit(".nodes.", 1)[0]]
memory = sys.modules[pack.__name__ + ".rife.vram"]
results: dict[str, object] = {}


def check(function):
    try:
        results[function.__name__] = function()
    except BaseException as error:  # report, keep going
        results[function.__name__] = {"error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc()}
    return function


def load():
    [handle, _version] = nodes.NODE_CLASS_MAPPINGS["LoadRIFEModel"].execute(ckpt_name=CHECKPOINT).result
    return handle


CLIP = torch.rand(3, 72, 136, 3, generator=torch.Generator().manual_seed(0))


def run(handle, **options):
    inputs = {"multiplier": 3, "scale": 1.0, "scene_threshold": 0.0, **options}
    return NODE.execute(rife_model=handle, images=CLIP, **inputs).result[0]


def spy(module, name, calls):
    original = getattr(module, name)

    def recording(*args, **kwargs):
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    setattr(module, name, recording)
    return original


@check
def vram_request():
    """load_models_gpu is called with the measured estimate for the frame size, batch and precision."""
    calls: list = []
    original = spy(mm, "load_models_gpu", calls)
    try:
        handle = load()
        run(handle)
        run(handle, batch_size=4)
    finally:
        mm.load_models_gpu = original
    spec, dtype = handle.model.spec, handle.model.dtype
    return {
        "requested": [kwargs.get("memory_required") for _args, kwargs in calls],
        "models": [[model is handle.patcher for model in args[0]] for args, _kwargs in calls],
        "expected": [
            memory.working_memory(72, 136, batch=batch, dtype=dtype, scale=1.0, arch=spec) for batch in (1, 4)
        ],
    }


def inject_oom(net, fails):
    """Make ``net.flow`` raise the out-of-memory error of a backend without torch.OutOfMemoryError (MPS, older
    torch: a RuntimeError) when ``fails(batch)`` says so; returns the batch sizes it was called with."""
    sizes: list[int] = []
    flow = net.flow

    def flaky(a, b, t, **kwargs):
        sizes.append(len(t))
        if fails(len(t)):
            raise RuntimeError("MPS backend out of memory (MPS allocated: 1.00 GB, other allocations: 8.00 GB)")
        return flow(a, b, t, **kwargs)

    net.flow = flaky
    return sizes


@check
def oom_without_torch_outofmemoryerror_halves_the_batch():
    handle = load()
    reference = run(handle, batch_size=1)  # what the halved batch computes (bit-identical only at the same batch)
    sizes = inject_oom(handle.model.net, lambda batch: batch > 1)
    saved = torch.__dict__.pop("OutOfMemoryError", None)
    try:
        out = run(handle, batch_size=2)
    finally:
        if saved is not None:
            torch.OutOfMemoryError = saved
    return {"sizes": sizes, "equal": bool(torch.equal(out, reference))}


@check
def oom_at_batch_one_asks_comfyui_to_free_everything_else():
    handle = load()
    reference = run(handle)
    failed: list[int] = []
    sizes = inject_oom(handle.model.net, lambda batch: not failed and not failed.append(batch))
    calls: list = []
    original = spy(mm, "free_memory", calls)
    try:
        out = run(handle)
    finally:
        mm.free_memory = original
    return {
        "sizes": sizes,
        "equal": bool(torch.equal(out, reference)),
        "free_memory": [
            {"required": args[0], "keeps_rife": [loaded.model is handle.patcher for loaded in kwargs["keep_loaded"]]}
            for args, kwargs in calls
            if "keep_loaded" in kwargs
        ],
        "offloaded_after": handle.patcher.loaded_size() == 0,
    }


@check
def progress_per_output_frame_and_interrupt():
    handle = load()
    updates: list = []

    def hook(value, total, preview, node_id=None):
        updates.append([value, total])
        if len(updates) == 3 and interrupt:
            mm.interrupt_current_processing(True)

    comfy.utils.set_progress_bar_global_hook(hook)
    interrupt = False
    run(handle)
    complete = list(updates)
    updates.clear()
    interrupt = True
    outcome = "returned"
    try:
        run(handle)
    except mm.InterruptProcessingException:
        outcome = "interrupted"
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
        mm.interrupt_current_processing(False)
    return {"complete": complete, "interrupted": updates, "outcome": outcome,
            "offloaded_after": handle.patcher.loaded_size() == 0}  # fmt: skip


def _keep(result, outputs):
    outputs.append(result.frames)
    return result


@check
def no_whole_clip_copies():
    """The node returns the tensor the engine wrote (no copy of the clip), an ordinary (not inference) tensor."""
    handle = load()
    interpolate = sys.modules[NODE.__module__]
    outputs: list = []
    retime = interpolate.retime
    interpolate.retime = lambda *args, **kwargs: _keep(retime(*args, **kwargs), outputs)
    try:
        out = run(handle)
    finally:
        interpolate.retime = retime
    return {"same_storage": out.data_ptr() == outputs[0].data_ptr(), "inference": out.is_inference()}


@check
def pack_folder_with_symlink_loops():
    """The pack's ckpt/ folder with symlink loops lists each checkpoint once (the listing ends)."""
    import tempfile
    from pathlib import Path

    checkpoints = sys.modules[pack.__name__ + ".nodes.checkpoints"]
    ckpt = Path(tempfile.mkdtemp())
    for name in ("rifev4_25/flownet.pkl", "extra/model.safetensors"):
        (ckpt / name).parent.mkdir(parents=True, exist_ok=True)
        (ckpt / name).write_bytes(b"")
    (ckpt / "extra" / "back").symlink_to(ckpt, target_is_directory=True)  # a loop to the top
    (ckpt / "extra" / "self").symlink_to(ckpt / "extra", target_is_directory=True)  # a loop to itself
    (ckpt / "again").symlink_to(ckpt / "rifev4_25", target_is_directory=True)  # a second name for one folder
    (ckpt / "nowhere").symlink_to(ckpt / "missing", target_is_directory=True)  # broken
    checkpoints.PACK_CKPT_DIR = ckpt  # this check runs last: a listing that never ends is left behind
    found: list = []
    worker = threading.Thread(target=lambda: found.append(checkpoints._pack_entries()), daemon=True)
    worker.start()
    worker.join(20)
    if worker.is_alive():
        raise TimeoutError("listing the folder did not end within 20 s")
    return {"entries": found[0]}


print(json.dumps(results))
