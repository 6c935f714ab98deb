"""ComfyUI entry point of the RIFE frame interpolation pack (V1 node mappings).

ComfyUI imports this folder as a package under a name made from its path, so everything below is imported
relatively. The nodes (and with them ComfyUI's ``folder_paths`` and ``comfy`` modules) are imported only when
ComfyUI is there: importing the package anywhere else (pytest, the plain ``rife`` library, tools that scan
node packs) gives empty mappings instead of an ImportError.
"""

import importlib.util
import sys


def _comfyui_present() -> bool:
    """True inside ComfyUI, which has imported (or can import) its ``folder_paths`` module."""
    if "folder_paths" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("folder_paths") is not None
    except (ImportError, ValueError):
        return False


if _comfyui_present():
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
else:
    NODE_CLASS_MAPPINGS: dict = {}
    NODE_DISPLAY_NAME_MAPPINGS: dict = {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
