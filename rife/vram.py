"""How much working memory a run needs on its device, from measurements (``bench/vram_estimate.py``; method and
numbers in ``docs/vram.md``).

A run holds, besides the weights: the prepared anchors of the source frames it reads (padded frame + encoder
features), the warp grid, and the activations of one model call, which grow with the number of in-betweens
computed together (the timestep batch). All of it scales with the padded pixel count P:
``bytes = P * (FIXED + PER_INBETWEEN * batch * SCALE_FACTOR[scale])`` per element size, plus a margin for allocator
rounding and fragmentation. The full-resolution tensors (frames, flow, warps) dominate, not the blocks' widths: the
4.25 heavy layout (blocks twice as wide) measured the same bytes per pixel as 4.25.
"""

from __future__ import annotations

import torch

from .arch import ArchSpec

# Bytes per padded pixel, RIFE 4.25 at scale 1.0 (fit over 256x256 .. 1280x704, batch 1/2/4; docs/vram.md).
FIXED = {4: 77.0, 2: 37.0}  # by element size: fp32, fp16/bf16
PER_INBETWEEN = {4: 270.0, 2: 129.0}
# The flow blocks run at scale x their resolution: per-in-between memory relative to scale 1.0 (measured, fp32).
SCALE_FACTOR = {0.25: 0.19, 0.5: 0.32, 1.0: 1.0, 2.0: 3.94, 4.0: 15.6}
MARGIN = 1.2


def working_memory(
    height: int, width: int, *, batch: int, dtype: torch.dtype, scale: float = 1.0, arch: ArchSpec
) -> int:
    """Bytes a run over ``height`` x ``width`` frames needs beyond the weights, ``batch`` in-betweens per call."""
    multiple = arch.pad_multiple_at(scale)
    pixels = -(-height // multiple) * multiple * (-(-width // multiple) * multiple)
    size = 2 if torch.empty((), dtype=dtype).element_size() <= 2 else 4
    per_pixel = FIXED[size] + PER_INBETWEEN[size] * batch * SCALE_FACTOR.get(scale, 1.0)
    return int(MARGIN * pixels * per_pixel)
