"""RIFE 4.x video frame interpolation in plain PyTorch (no ComfyUI import).

from rife import load_model, interpolate
model = load_model("ckpt/rifev4_25", device="cpu")
out = interpolate(model, frames, multiplier=4)   # frames: [B,H,W,3] float32 in 0..1

Names are imported on first use, so ``python -m rife`` can answer Ctrl-C during start-up (while torch loads)
with one line instead of a traceback.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ARCHS": "arch",
    "VERSION_TO_ARCH": "arch",
    "ArchSpec": "arch",
    "interpolate": "engine",
    "run_plan": "engine",
    "stream_interpolate": "engine",
    "stream_plan": "engine",
    "CheckpointError": "errors",
    "InvalidInputError": "errors",
    "OutOfMemory": "errors",
    "RIFEError": "errors",
    "VideoError": "errors",
    "detect_arch": "loading",
    "read_state_dict": "loading",
    "SCALES": "validate",
    "RIFEModel": "model",
    "load_model": "model",
    "pick_scale": "model",
    "MODES": "validate",
    "Plan": "schedule",
    "clip_plan": "schedule",
    "output_count": "schedule",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    else:
        try:
            value = importlib.import_module(f".{name}", __name__)  # rife.timing, rife.imageio, ...
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
