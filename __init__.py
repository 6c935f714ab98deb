"""ComfyUI entry point of the RIFE frame interpolation pack (V3 node API: ``comfy_entrypoint``).

ComfyUI imports this folder as a package under a name made from its path, so everything below is imported
relatively. The nodes (and with them ComfyUI's ``folder_paths``, ``comfy`` and ``comfy_api`` modules) are imported
only inside a ComfyUI recent enough for them; importing the package anywhere else (pytest, the plain ``rife``
library, tools that scan node packs) imports nothing. On an older ComfyUI the pack logs one line saying which
version it needs and registers no nodes; ComfyUI keeps starting.
"""

import importlib.util
import logging
import sys

MIN_COMFYUI = (0, 3, 64)  # also [tool.comfy] requires-comfyui in pyproject.toml


def _comfyui_present() -> bool:
    """True inside ComfyUI, which has imported (or can import) its ``folder_paths`` module."""
    if "folder_paths" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("folder_paths") is not None
    except (ImportError, ValueError):
        return False


def _comfyui_too_old() -> str | None:
    """Why this ComfyUI cannot run the pack (one line), or None when it can."""
    need = ".".join(map(str, MIN_COMFYUI))
    try:
        from comfyui_version import __version__ as version
    except ImportError:
        version = "unknown"
    try:
        release = tuple(int(part) for part in version.split("+")[0].split("-")[0].split(".")[:3])
    except ValueError:
        release = MIN_COMFYUI  # a development build: trust the API check below
    try:
        has_v3 = importlib.util.find_spec("comfy_api.latest") is not None
    except (ImportError, ValueError):
        has_v3 = False
    if release < MIN_COMFYUI or not has_v3:
        return f"RIFE frame interpolation needs ComfyUI {need} or newer (this is {version}); update ComfyUI to use it."
    return None


if _comfyui_present():
    _problem = _comfyui_too_old()
    if _problem is None:
        from .nodes import comfy_entrypoint

        __all__ = ["comfy_entrypoint"]
    else:
        logging.getLogger(__name__).error(_problem)
        NODE_CLASS_MAPPINGS: dict = {}  # loaded "successfully" with no nodes: no second warning from ComfyUI
        __all__ = ["NODE_CLASS_MAPPINGS"]
else:
    __all__ = []
