"""Checkpoint files the tests write: ComfyUI core's layout of real weights, and hostile files."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file


def core_layout(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """``state`` as ComfyUI core saves it (Comfy-Org's rife_v4.*.safetensors): ``blockN.`` -> ``blocks.N.``,
    tensors in ``dtype``."""
    renamed = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        name = f"blocks.{head.removeprefix('block')}.{rest}" if head.startswith("block") else key
        renamed[name] = value.to(dtype).contiguous()
    return renamed


def self_referencing_pickle(path: Path) -> Path:
    """A pickle whose dict refers to itself: ``d = {}; d["state_dict"] = d``."""
    state: dict = {}
    state["state_dict"] = state
    torch.save(state, path)
    return path


def int8_checkpoint(state: dict[str, torch.Tensor], path: Path) -> Path:
    """Every tensor of ``state`` (right keys, right shapes) stored as int8."""
    save_file({key: value.to(torch.int8) for key, value in state.items()}, str(path))
    return path
