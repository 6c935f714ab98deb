"""The ``RIFE_MODEL`` value the nodes pass around, and how a run uses ComfyUI's memory manager.

The network is wrapped in a ``comfy.model_patcher.ModelPatcher`` so ComfyUI accounts for it like any other
model: ``load_models_gpu`` moves it to ``get_torch_device()`` (freeing other models if VRAM is short) before a
run, and the run ends with ``patcher.detach()``, which moves it back to ``unet_offload_device()`` (the CPU unless
ComfyUI runs with ``--highvram``/``--gpu-only``), also when the run fails or is cancelled. RIFE is small (tens of
MB) and usually the last step of a video workflow, so giving the VRAM back at once costs little and leaves the most
room for the next prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import comfy.model_management
import comfy.model_patcher
import comfy.utils
import torch
from torch import Tensor

from ..rife import RIFEModel

Progress = Callable[[int, int], None]
T = TypeVar("T")


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


def run_on_device(handle: RIFEModelHandle, work: Callable[[Progress], T]) -> T:
    """Load the model onto ComfyUI's torch device, run ``work(progress)`` and offload the model again.

    ``progress(done, total)`` drives a ComfyUI progress bar (one step per output frame) and raises
    ``InterruptProcessingException`` when the user cancels; the exception propagates and nothing is returned."""
    management = comfy.model_management
    management.throw_exception_if_processing_interrupted()
    bars: list[comfy.utils.ProgressBar] = []

    def progress(done: int, total: int) -> None:
        management.throw_exception_if_processing_interrupted()
        if not bars:
            bars.append(comfy.utils.ProgressBar(total))
        bars[0].update_absolute(done, total)

    # a full load: ComfyUI's partial (lowvram) loading only works for its own cast-aware layers
    management.load_models_gpu([handle.patcher], force_full_load=True)
    try:
        return work(progress)
    finally:
        handle.patcher.detach()
        management.soft_empty_cache()


def to_comfy_images(frames: Tensor) -> Tensor:
    """Frames as ComfyUI expects them downstream: float32 in 0..1 on the intermediate device.

    The engine clamps in-betweens and copies originals exactly; originals outside 0..1 are clamped here too, in
    place, so the whole output is a valid image batch."""
    frames = frames.to(device=comfy.model_management.intermediate_device(), dtype=torch.float32)
    return frames.clamp_(0.0, 1.0)
