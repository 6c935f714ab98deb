"""``LoadRIFEModel``: a checkpoint from ComfyUI's model folders as a ``RIFE_MODEL``."""

from __future__ import annotations

import comfy.model_management
import comfy.utils
import torch
from comfy_api.latest import io

from ..rife import CheckpointError, InvalidInputError, load_model
from . import checkpoints
from .runtime import wrap_model
from .types import RIFEModelType, schema

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class LoadRIFEModel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        names = checkpoints.checkpoint_names()
        return schema(
            node_id="LoadRIFEModel",
            display_name="Load RIFE Model",
            description=(
                "Loads a RIFE 4.x frame interpolation checkpoint (any 4.0-4.26 release, lite and heavy included, in "
                "the official layout or as ComfyUI core's rife_v4.*.safetensors; the version is recognised from the "
                "weights, not the file name). Checkpoints are listed from models/rife, models/frame_interpolation "
                "and the pack's ckpt/ folder. The model joins ComfyUI's memory management: it is moved to the GPU "
                "for a run and back afterwards."
            ),
            inputs=[
                io.Combo.Input(
                    "ckpt_name",
                    options=names,
                    default=checkpoints.default_name(names),
                    tooltip="RIFE 4.x checkpoint (.pkl, .pth, .safetensors, ... or a folder holding flownet.pkl) "
                    "from models/rife, models/frame_interpolation (ComfyUI core's files, e.g. "
                    "rife_v4.25.safetensors) or the pack's ckpt/ folder. Names like flownet_v4.25.pkl that are not "
                    "on disk yet are official checkpoints that download_if_missing can fetch. Default: RIFE 4.25, "
                    "the recommended version.",
                ),
                io.Combo.Input(
                    "precision",
                    options=["auto", *PRECISIONS],
                    default="auto",
                    optional=True,
                    tooltip="Weights and compute precision. auto: fp16 on NVIDIA GPUs where ComfyUI considers fp16 "
                    "safe, else fp32. The output images are float32 either way.",
                ),
                io.Boolean.Input(
                    "download_if_missing",
                    default=False,
                    optional=True,
                    tooltip="When the chosen official checkpoint (flownet_v<version>.pkl) is not on disk, download "
                    "it into models/rife (checksum-verified where the checksum is known). Off: nothing is ever "
                    "downloaded.",
                ),
            ],
            outputs=[
                RIFEModelType.Output(
                    "model", display_name="rife_model", tooltip="The loaded model, for the RIFE interpolation nodes."
                ),
                io.String.Output(
                    "description",
                    display_name="version",
                    tooltip="Detected RIFE version(s), checkpoint layout, precision and file, e.g. "
                    "'RIFE 4.25 / 4.26 (layout 4.25), fp16, rife_v4.25.safetensors'.",
                ),
            ],
        )

    @classmethod
    def execute(cls, ckpt_name: str, precision: str = "auto", download_if_missing: bool = False) -> io.NodeOutput:
        path = checkpoints.resolve(ckpt_name)
        if path is None:
            if not (download_if_missing and checkpoints.downloadable_version(ckpt_name)):
                raise CheckpointError(checkpoints.missing_message(ckpt_name))
            path = checkpoints.download(ckpt_name, progress=_download_progress())
        management = comfy.model_management
        dtype = _dtype(precision, management.get_torch_device())
        model = load_model(path, device=management.unet_offload_device(), dtype=dtype)
        description = f"{model.spec.label} (layout {model.arch}), {_precision_name(dtype)}, {ckpt_name}"
        return io.NodeOutput(wrap_model(model, description), description)


def _dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision in PRECISIONS:
        return PRECISIONS[precision]
    if precision != "auto":
        raise InvalidInputError(f"precision must be one of auto, {', '.join(PRECISIONS)}; got {precision!r}.")
    if device.type == "cuda" and comfy.model_management.should_use_fp16(device):
        return torch.float16
    return torch.float32


def _precision_name(dtype: torch.dtype) -> str:
    return next(name for name, value in PRECISIONS.items() if value == dtype)


def _download_progress():
    """Byte progress of a download on a ComfyUI progress bar; cancelling stops the download (it resumes later)."""
    bars: list[comfy.utils.ProgressBar] = []

    def progress(done: int, total: int | None) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()
        if total:
            if not bars:
                bars.append(comfy.utils.ProgressBar(total))
            bars[0].update_absolute(done, total)

    return progress
