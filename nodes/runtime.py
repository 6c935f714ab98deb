"""The ``RIFE_MODEL`` value the nodes pass around, and how a run uses ComfyUI's memory manager.

The network is wrapped in a ``comfy.model_patcher.ModelPatcher`` so ComfyUI accounts for it like any other
model. Before a run, ``load_models_gpu`` is told the working memory the run needs (:func:`rife.vram.working_memory`,
measured by ``bench/vram_estimate.py``), so ComfyUI offloads other models (a Wan or Hunyuan model still in VRAM) to
make room, and moves RIFE to ``get_torch_device()``. If a batch of one in-between still runs out of memory, the
engine calls ``free_memory``, which asks ComfyUI to offload every other model, and retries once. The run ends with
``patcher.detach()``, which moves RIFE back to ``unet_offload_device()`` (the CPU unless ComfyUI runs with
``--highvram``/``--gpu-only``), also when the run fails or is cancelled: RIFE is small (tens of MB) and usually the
last step of a video workflow, so giving the VRAM back at once leaves the most room for the next prompt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import comfy.model_management
import comfy.model_patcher
import comfy.utils
import torch
from torch import Tensor

from ..rife import RIFEModel
from ..rife.engine import DEFAULT_BATCH
from ..rife.vram import working_memory

Progress = Callable[[int, int], None]
FreeMemory = Callable[[], None]
T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RIFEModelHandle:
    """What a ``RIFE_MODEL`` socket carries: the model, its ComfyUI patcher and a human-readable description."""

    model: RIFEModel
    patcher: comfy.model_patcher.ModelPatcher
    description: str


def wrap_model(model: RIFEModel, description: str) -> RIFEModelHandle:
    """Register ``model.net`` with ComfyUI's memory manager (load on the torch device, offload per ComfyUI)."""
    patcher = comfy.model_patcher.ModelPatcher(
        model.net,
        load_device=comfy.model_management.get_torch_device(),
        offload_device=comfy.model_management.unet_offload_device(),
    )
    return RIFEModelHandle(model, patcher, description)


def run_memory(
    handle: RIFEModelHandle, height: int, width: int, *, scale: float, batch_size: int | None, ensemble: bool
) -> int:
    """Bytes of working memory (beyond the weights) a run over frames of ``height`` x ``width`` needs on the load
    device. Ensemble runs every block on the reversed pair too, in the same call: twice the block batch."""
    device = handle.patcher.load_device
    batch = (batch_size or DEFAULT_BATCH.get(torch.device(device).type, 1)) * (2 if ensemble else 1)
    return working_memory(height, width, batch=batch, dtype=handle.model.dtype, scale=scale, arch=handle.model.spec)


def run_on_device(handle: RIFEModelHandle, memory_required: int, work: Callable[[Progress, FreeMemory], T]) -> T:
    """Load the model onto ComfyUI's torch device with ``memory_required`` bytes free for the run, call
    ``work(progress, free_memory)`` and offload the model again.

    ``progress(done, total)`` drives a ComfyUI progress bar (one step per output frame) and raises
    ``InterruptProcessingException`` when the user cancels; the exception propagates and nothing is returned.
    ``free_memory()`` offloads every other model ComfyUI holds on the device, keeping RIFE loaded."""
    management = comfy.model_management
    management.throw_exception_if_processing_interrupted()
    bars: list[comfy.utils.ProgressBar] = []

    def progress(done: int, total: int) -> None:
        management.throw_exception_if_processing_interrupted()
        if not bars:
            bars.append(comfy.utils.ProgressBar(total))
        bars[0].update_absolute(done, total)

    def free_memory() -> None:
        device = handle.patcher.load_device
        ours = [loaded for loaded in management.current_loaded_models if loaded.model is handle.patcher]
        log.info("RIFE ran out of memory with one in-between; asking ComfyUI to offload every other model")
        management.free_memory(float("inf"), device, keep_loaded=ours)
        management.soft_empty_cache()

    log.debug("RIFE (%s): requesting %.0f MB of working memory", handle.description, memory_required / 2**20)
    # a full load: ComfyUI's partial (lowvram) loading only works for its own cast-aware layers
    management.load_models_gpu([handle.patcher], memory_required=memory_required, force_full_load=True)
    try:
        return work(progress, free_memory)
    finally:
        handle.patcher.detach()
        management.soft_empty_cache()


def to_comfy_images(frames: Tensor) -> Tensor:
    """Frames as ComfyUI expects them downstream: float32 in 0..1 on the intermediate device.

    The engine clamps in-betweens and copies originals exactly; originals outside 0..1 are clamped here too, in
    place (no copy of the clip when it already is float32 on that device), so the whole output is a valid batch."""
    frames = frames.to(device=comfy.model_management.intermediate_device(), dtype=torch.float32)
    return frames.clamp_(0.0, 1.0)
