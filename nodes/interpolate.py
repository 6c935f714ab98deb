"""The interpolation nodes: integer multipliers (direct, recursive/bisect) and frame rate conversion.

All three run :func:`rife.timing.retime`, so scene-cut handling, held-frame retiming and loops behave the same
everywhere; with the defaults on an ordinary clip the frames equal :func:`rife.interpolate`'s.
"""

from __future__ import annotations

import logging

from torch import Tensor

from ..rife.schedule import MAX_MULTIPLIER
from ..rife.timing import DEFAULT_SCENE_THRESHOLD, RetimeResult, retime
from .runtime import RIFEModelHandle, run_on_device, to_comfy_images

CATEGORY = "video/frame interpolation"

log = logging.getLogger(__name__)

MODEL_INPUT = ("RIFE_MODEL", {"tooltip": "The model from Load RIFE Model."})
IMAGES_INPUT = (
    "IMAGE",
    {
        "tooltip": "The clip: a batch of frames in time order, all the same size. RGB; RGBA keeps its alpha "
        "(moved with the same motion); grey stays grey. Values outside 0..1 are clamped."
    },
)
MULTIPLIER_INPUT = (
    "INT",
    {
        "default": 2,
        "min": 1,
        "max": MAX_MULTIPLIER,
        "step": 1,
        "tooltip": "Output frames per source frame: B frames become (B-1)*multiplier+1 (B*multiplier with loop); "
        "the originals are kept exactly at every multiplier-th position. 1 returns the clip unchanged.",
    },
)
SCALE_INPUT = (
    "FLOAT",
    {
        "default": 1.0,
        "min": 0.25,
        "max": 4.0,
        "step": 0.25,
        "tooltip": "Resolution at which motion is estimated, one of 0.25, 0.5, 1.0, 2.0, 4.0: 1.0 up to about 2K, "
        "0.5 for 4K, 0.25 above; 2.0 can help small frames with fine motion. The output size never changes.",
    },
)
FPS_IN_INPUT = (
    "FLOAT",
    {
        "default": 0.0,
        "min": 0.0,
        "max": 1000.0,
        "step": 0.001,
        "tooltip": "Frame rate of the input clip, for the fps_out output (fps_in * multiplier) that a video "
        "writer's frame_rate can take. 0 = unknown (fps_out is then 0).",
    },
)
LOOP_INPUT = (
    "BOOLEAN",
    {
        "default": False,
        "tooltip": "Treat the clip as a loop: the last->first pair is interpolated too, so the result repeats "
        "seamlessly (B*multiplier frames instead of (B-1)*multiplier+1).",
    },
)
SCENE_THRESHOLD_INPUT = (
    "FLOAT",
    {
        "default": DEFAULT_SCENE_THRESHOLD,
        "min": 0.0,
        "max": 1.0,
        "step": 0.01,
        "tooltip": "Scene-cut sensitivity: a pair of frames whose difference score is above this is a cut, and "
        "its in-betweens repeat the nearer frame instead of morphing two shots together (frame count and timing "
        f"unchanged). Lower finds more cuts; 0 turns detection off. Default {DEFAULT_SCENE_THRESHOLD}.",
    },
)
DEDUPE_INPUT = (
    "BOOLEAN",
    {
        "default": False,
        "tooltip": "Replace held (repeated) frames with in-betweens spanning the run, so motion that the source "
        "froze for a few frames becomes even. The frame count stays the same.",
    },
)
BATCH_SIZE_INPUT = (
    "INT",
    {
        "default": 0,
        "min": 0,
        "max": 64,
        "step": 1,
        "tooltip": "In-betweens computed together per model call (speed vs. VRAM). 0 = automatic (4 on CUDA, "
        "1 on CPU). The output does not depend on it.",
    },
)


_MULTIPLIER_REQUIRED = {
    "rife_model": MODEL_INPUT,
    "images": IMAGES_INPUT,
    "multiplier": MULTIPLIER_INPUT,
    "scale": SCALE_INPUT,
}
_TIMING_OPTIONAL = {
    "loop": LOOP_INPUT,
    "scene_threshold": SCENE_THRESHOLD_INPUT,
    "dedupe": DEDUPE_INPUT,
    "batch_size": BATCH_SIZE_INPUT,
}


class _RetimeNode:
    """Shared outputs and execution of the interpolation nodes."""

    CATEGORY = CATEGORY
    FUNCTION = "run"
    RETURN_TYPES = ("IMAGE", "FLOAT", "STRING")
    RETURN_NAMES = ("images", "fps_out", "timing_info")
    OUTPUT_TOOLTIPS = (
        "The interpolated clip, float32 RGB(A) in 0..1.",
        "Frame rate of the output for a video writer's frame_rate (0 when fps_in is 0).",
        "What the timing options found: scene cuts and held-frame runs.",
    )

    @staticmethod
    def _retime(
        rife_model: RIFEModelHandle, images: Tensor, scale: float, batch_size: int, **options
    ) -> tuple[Tensor, float, str]:
        def work(progress) -> RetimeResult:
            return retime(
                rife_model.model,
                images,
                scale=scale,
                progress=progress,
                batch_size=batch_size or None,
                **options,
            )

        result = run_on_device(rife_model, work)
        info = _describe(result, images.shape[0])
        log.info("RIFE (%s): %s", rife_model.description, info)
        fps_out = 0.0 if result.fps_out is None else float(result.fps_out)
        return to_comfy_images(result.frames), fps_out, info


class RIFEInterpolate(_RetimeNode):
    DESCRIPTION = (
        "Frame interpolation with RIFE: puts multiplier-1 new frames between every two frames, each computed "
        "directly from its source pair at its exact time (the official Practical-RIFE method). Scene cuts are "
        "not morphed; connect fps_out to a video writer's frame_rate."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": dict(_MULTIPLIER_REQUIRED),
            "optional": {"fps_in": FPS_IN_INPUT, **_TIMING_OPTIONAL},
        }

    def run(
        self,
        rife_model: RIFEModelHandle,
        images: Tensor,
        multiplier: int,
        scale: float,
        fps_in: float = 0.0,
        loop: bool = False,
        scene_threshold: float = DEFAULT_SCENE_THRESHOLD,
        dedupe: bool = False,
        batch_size: int = 0,
    ) -> tuple[Tensor, float, str]:
        return self._retime(
            rife_model,
            images,
            scale,
            batch_size,
            multiplier=multiplier,
            mode="direct",
            fps_in=fps_in or None,
            loop=loop,
            scene_threshold=scene_threshold,
            dedupe=dedupe,
        )


class RIFERecursiveInterpolate(_RetimeNode):
    DESCRIPTION = (
        "Frame interpolation with RIFE that builds the in-betweens from each other. recursive: the outermost "
        "in-betweens come from the source pair and are the anchors of the next ones inward (the original "
        "recursive_rife schedule). bisect: the middle frame first, then each half (power-of-two multipliers). "
        "Same frame count and timing as RIFE Interpolate."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": dict(_MULTIPLIER_REQUIRED),
            "optional": {
                "mode": (
                    ["recursive", "bisect"],
                    {
                        "default": "recursive",
                        "tooltip": "recursive: outermost in-betweens first, each level anchored on the previous "
                        "one (any multiplier). bisect: halve every interval (multiplier 2, 4, 8, ...).",
                    },
                ),
                "fps_in": FPS_IN_INPUT,
                **_TIMING_OPTIONAL,
            },
        }

    def run(
        self,
        rife_model: RIFEModelHandle,
        images: Tensor,
        multiplier: int,
        scale: float,
        mode: str = "recursive",
        fps_in: float = 0.0,
        loop: bool = False,
        scene_threshold: float = DEFAULT_SCENE_THRESHOLD,
        dedupe: bool = False,
        batch_size: int = 0,
    ) -> tuple[Tensor, float, str]:
        return self._retime(
            rife_model,
            images,
            scale,
            batch_size,
            multiplier=multiplier,
            mode=mode,
            fps_in=fps_in or None,
            loop=loop,
            scene_threshold=scene_threshold,
            dedupe=dedupe,
        )


class RIFEFrameRate(_RetimeNode):
    DESCRIPTION = (
        "Converts a clip to another frame rate with RIFE, any ratio (16 -> 24, 24 -> 60, 30 -> 24): output frame "
        "j sits at source time j*fps_in/fps_out, computed with exact fractions so long clips never drift; frames "
        "that land on a source frame are copied. Connect fps_out to a video writer's frame_rate."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        rate = {"min": 0.001, "max": 1000.0, "step": 0.001}
        return {
            "required": {
                "rife_model": MODEL_INPUT,
                "images": IMAGES_INPUT,
                "fps_in": (
                    "FLOAT",
                    {
                        "default": 16.0,
                        **rate,
                        "tooltip": "Frame rate of the input clip. The exact NTSC rates a video "
                        "loader reports (29.97002997... = 30000/1001) are recognised as such.",
                    },
                ),
                "fps_out": (
                    "FLOAT",
                    {
                        "default": 24.0,
                        **rate,
                        "tooltip": "Frame rate to produce, at most 64 times fps_in. The "
                        "output covers the same duration: floor((B-1)*fps_out/fps_in)+1 frames.",
                    },
                ),
                "scale": SCALE_INPUT,
            },
            "optional": dict(_TIMING_OPTIONAL),
        }

    def run(
        self,
        rife_model: RIFEModelHandle,
        images: Tensor,
        fps_in: float,
        fps_out: float,
        scale: float,
        loop: bool = False,
        scene_threshold: float = DEFAULT_SCENE_THRESHOLD,
        dedupe: bool = False,
        batch_size: int = 0,
    ) -> tuple[Tensor, float, str]:
        return self._retime(
            rife_model,
            images,
            scale,
            batch_size,
            fps_in=fps_in,
            fps_out=fps_out,
            loop=loop,
            scene_threshold=scene_threshold,
            dedupe=dedupe,
        )


def _describe(result: RetimeResult, num_frames: int) -> str:
    """One line on what the run did, e.g. '3 -> 5 frames at 32 fps; no scene cuts; no held frames retimed'."""
    parts = [f"{num_frames} -> {result.frames.shape[0]} frames"]
    if result.fps_out is not None:
        parts[0] += f" at {result.fps_out} fps"
    if result.cuts:
        pairs = ", ".join(f"{i}-{(i + 1) % num_frames}" for i in result.cuts)
        parts.append(f"scene cuts between frames {pairs} (not morphed)")
    else:
        parts.append("no scene cuts")
    if result.held:
        runs = ", ".join(f"{a}-{b - 1}" for a, b in result.held)
        parts.append(f"held frames retimed: {runs}")
    else:
        parts.append("no held frames retimed")
    return "; ".join(parts)
