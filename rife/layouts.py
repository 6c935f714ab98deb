"""Checkpoint key layouts other than the official one, converted to the official naming before detection.

ComfyUI core (``comfy_extras/nodes_frame_interpolation.py``, 2026) publishes RIFE checkpoints
(``rife_v4.25.safetensors``, ``rife_v4.26.safetensors``, ``*_lite``, ``*_heavy``; fp16) whose blocks are an
``nn.ModuleList``: ``blocks.0.conv0.0.0.weight`` where the official ``IFNet`` has ``block0.conv0.0.0.weight``.
Every other key (``encode.*``) and every shape is the same. The layout is recognised from the keys alone, never
from the file name; the layout detector (:func:`rife.loading.detect_arch`) then works on the official naming.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

V = TypeVar("V")

_CORE_BLOCK = re.compile(r"blocks\.(\d+)\.")


def is_core_layout(state: Mapping[str, object]) -> bool:
    """True when the keys follow ComfyUI core's naming (``blocks.N.``) and none the official one (``blockN.``)."""
    core = any(_CORE_BLOCK.match(key) for key in state)
    official = any(re.match(r"block\d+\.", key) for key in state)
    return core and not official


def to_official_layout(state: Mapping[str, V]) -> dict[str, V]:
    """``state`` with ComfyUI core's ``blocks.N.`` keys renamed to the official ``blockN.``; other layouts are
    returned unchanged (as a new dict), so this is safe to call on any state dict."""
    if not is_core_layout(state):
        return dict(state)
    return {
        _CORE_BLOCK.sub(r"block\1.", key, count=1) if _CORE_BLOCK.match(key) else key: v for key, v in state.items()
    }
