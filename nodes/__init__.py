"""ComfyUI nodes of the pack (V1 node API): thin adapters over :mod:`rife`.

Imported only when ComfyUI is present (see the pack's root ``__init__.py``); importing it registers the
``rife`` model folder with ComfyUI.
"""

from .checkpoints import register_model_folder
from .interpolate import RIFEFrameRate, RIFEInterpolate, RIFERecursiveInterpolate
from .loader import LoadRIFEModel
from .video import RIFEInterpolateVideo

register_model_folder()

NODE_CLASS_MAPPINGS = {
    "LoadRIFEModel": LoadRIFEModel,
    "RIFEInterpolate": RIFEInterpolate,
    "RIFERecursiveInterpolate": RIFERecursiveInterpolate,
    "RIFEFrameRate": RIFEFrameRate,
    "RIFEInterpolateVideo": RIFEInterpolateVideo,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "LoadRIFEModel": "Load RIFE Model",
    "RIFEInterpolate": "RIFE Interpolate",
    "RIFERecursiveInterpolate": "RIFE Recursive Interpolate",
    "RIFEFrameRate": "RIFE Frame Rate Convert",
}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
