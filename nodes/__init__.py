"""ComfyUI nodes of the pack (V3 node API, ``comfy_api.latest``): thin adapters over :mod:`rife`.

Imported only inside a ComfyUI recent enough for the V3 API (see the pack's root ``__init__.py``).
"""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .checkpoints import register_model_folders
from .interpolate import RIFEFrameRate, RIFEInterpolate, RIFERecursiveInterpolate
from .loader import LoadRIFEModel

NODES: list[type[io.ComfyNode]] = [LoadRIFEModel, RIFEInterpolate, RIFERecursiveInterpolate, RIFEFrameRate]


class RIFEExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> RIFEExtension:
    """Called by ComfyUI when it loads the pack: registers the model folders, returns the nodes."""
    register_model_folders()
    return RIFEExtension()
