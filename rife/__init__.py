"""RIFE 4.x video frame interpolation in plain PyTorch (no ComfyUI import).

from rife import load_model, interpolate
model = load_model("ckpt/rifev4_25", device="cpu")
out = interpolate(model, frames, multiplier=4)   # frames: [B,H,W,3] float32 in 0..1
"""

from .arch import ARCHS, VERSION_TO_ARCH, ArchSpec
from .engine import interpolate, run_plan, stream_interpolate, stream_plan
from .errors import CheckpointError, InvalidInputError, OutOfMemory, RIFEError, VideoError
from .loading import detect_arch, read_state_dict
from .model import SCALES, RIFEModel, load_model, pick_scale
from .schedule import MODES, Plan, clip_plan, output_count

__all__ = [
    "ARCHS",
    "MODES",
    "SCALES",
    "VERSION_TO_ARCH",
    "ArchSpec",
    "CheckpointError",
    "InvalidInputError",
    "OutOfMemory",
    "Plan",
    "RIFEError",
    "RIFEModel",
    "VideoError",
    "clip_plan",
    "detect_arch",
    "interpolate",
    "load_model",
    "output_count",
    "pick_scale",
    "read_state_dict",
    "run_plan",
    "stream_interpolate",
    "stream_plan",
]
