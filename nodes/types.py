"""The pack's ComfyUI socket types and the schema helper shared by its nodes."""

from __future__ import annotations

import dataclasses

from comfy_api.latest import io

CATEGORY = "video/frame interpolation"
SEARCH_ALIASES = ("rife", "vfi", "frame interpolation", "slow motion", "interpolate frames", "frame rate")

RIFEModelType = io.Custom("RIFE_MODEL")
"""A loaded RIFE network (:class:`nodes.runtime.RIFEModelHandle`), from Load RIFE Model to the interpolation nodes."""


def schema(**fields) -> io.Schema:
    """``io.Schema(**fields)`` in the pack's category, with search aliases where this ComfyUI's schema has them
    (added to ComfyUI after 0.3.64, the oldest version the pack supports)."""
    known = {field.name for field in dataclasses.fields(io.Schema)}
    fields.setdefault("category", CATEGORY)
    if "search_aliases" in known:
        fields.setdefault("search_aliases", list(SEARCH_ALIASES))
    return io.Schema(**fields)
