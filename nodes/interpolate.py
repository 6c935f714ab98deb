"""The interpolation nodes: integer multipliers (direct, recursive/bisect) and frame rate conversion.

All three run :func:`rife.timing.retime`, so scene-cut handling, held-frame retiming and loops behave the same
everywhere; with the defaults on an ordinary clip the frames equal :func:`rife.interpolate`'s. Input names and the
order of the widgets are those of the pack's first (V1) nodes, new inputs come last, so saved workflows load
with their values in the right widgets.
"""

from __future__ import annotations

import logging

from comfy_api.latest import io
from torch import Tensor

from ..rife import InvalidInputError, pick_scale
from ..rife.engine import check_frames
from ..rife.model import SCALES, check_scale
from ..rife.schedule import MAX_MULTIPLIER, check_multiplier
from ..rife.timing import DEFAULT_SCENE_THRESHOLD, RetimeResult, retime
from .runtime import RIFEModelHandle, run_memory, run_on_device, to_comfy_images
from .types import RIFEModelType, schema

log = logging.getLogger(__name__)

AUTO_SCALE = 0.0


# ------------------------------------------------------------------------------------------------ inputs


def _model_and_images() -> list[io.Input]:
    return [
        RIFEModelType.Input("rife_model", tooltip="The model from Load RIFE Model."),
        io.Image.Input(
            "images",
            tooltip="The clip: a batch of frames in time order, all the same size. RGB; RGBA keeps its alpha "
            "(moved with the same motion); grey stays grey. Values outside 0..1 are clamped.",
        ),
    ]


def _multiplier() -> io.Input:
    return io.Int.Input(
        "multiplier",
        default=2,
        min=1,
        max=MAX_MULTIPLIER,
        step=1,
        tooltip="Output frames per source frame: B frames become (B-1)*multiplier+1 (B*multiplier with loop); the "
        "originals are kept exactly at every multiplier-th position. 1 returns the clip unchanged.",
    )


def _scale() -> io.Input:
    return io.Float.Input(
        "scale",
        default=AUTO_SCALE,
        min=0.0,
        max=max(SCALES),
        step=0.25,
        tooltip="Resolution at which motion is estimated: 0 = auto from the frame size (1.0 up to about 2K, 0.5 "
        "for 4K, 0.25 above), or one of 0.25, 0.5, 1.0, 2.0, 4.0 (2.0 can help small frames with fine motion). "
        "Other values are refused when the prompt is queued. The output size never changes.",
    )


def _fps_in() -> io.Input:
    return io.Float.Input(
        "fps_in",
        default=0.0,
        min=0.0,
        max=1000.0,
        step=0.001,
        optional=True,
        tooltip="Frame rate of the input clip, for the fps_out output (fps_in * multiplier) that a video writer's "
        "frame_rate can take. 0 = unknown (fps_out is then 0).",
    )


def _timing_options() -> list[io.Input]:
    return [
        io.Boolean.Input(
            "loop",
            default=False,
            optional=True,
            tooltip="Treat the clip as a loop: the last->first pair is interpolated too, so the result repeats "
            "seamlessly (B*multiplier frames instead of (B-1)*multiplier+1).",
        ),
        io.Float.Input(
            "scene_threshold",
            default=DEFAULT_SCENE_THRESHOLD,
            min=0.0,
            max=1.0,
            step=0.01,
            optional=True,
            tooltip="Scene-cut sensitivity: a pair of frames whose difference score is above this is a cut, and its "
            "in-betweens repeat the nearer frame instead of morphing two shots together (frame count and timing "
            f"unchanged). Lower finds more cuts; 0 turns detection off. Default {DEFAULT_SCENE_THRESHOLD}.",
        ),
        io.Boolean.Input(
            "dedupe",
            default=False,
            optional=True,
            tooltip="Replace held (repeated) frames with in-betweens spanning the run, so motion that the source "
            "froze for a few frames becomes even. The frame count stays the same.",
        ),
        io.Int.Input(
            "batch_size",
            default=0,
            min=0,
            max=64,
            step=1,
            optional=True,
            tooltip="In-betweens computed together per model call (speed vs. VRAM). 0 = automatic (4 on CUDA, 1 on "
            "CPU); halved automatically when memory runs out. The output does not depend on it.",
        ),
        io.Boolean.Input(
            "ensemble",
            default=False,
            optional=True,
            tooltip="Also estimate the motion with the two frames swapped and average both (Practical-RIFE's "
            "ensemble): slightly steadier in-betweens at about twice the time. Only for RIFE versions whose "
            "layout supports it; others are refused with the versions that do.",
        ),
    ]


def _outputs() -> list[io.Output]:
    return [
        io.Image.Output("frames", display_name="images", tooltip="The interpolated clip, float32 RGB(A) in 0..1."),
        io.Float.Output(
            "rate",
            display_name="fps_out",
            tooltip="Frame rate of the output for a video writer's frame_rate (0 when fps_in is 0).",
        ),
        io.String.Output(
            "info", display_name="timing_info", tooltip="What the timing options found: scene cuts and held-frame runs."
        ),
    ]


# ------------------------------------------------------------------------------------------------ nodes


class _RetimeNode(io.ComfyNode):
    """Shared validation and execution of the interpolation nodes (not registered itself)."""

    @classmethod
    def validate_inputs(cls, scale: float = AUTO_SCALE) -> bool | str:
        """Refuse an unsupported ``scale`` when the prompt is queued, before any model runs."""
        return _valid(lambda: _check_scale_widget(scale))

    @classmethod
    def _retime(
        cls,
        rife_model: RIFEModelHandle,
        images: Tensor,
        *,
        scale: float,
        batch_size: int,
        ensemble: bool,
        **options,
    ) -> io.NodeOutput:
        check_frames(images)
        scale, batch, memory = _run_settings(
            rife_model, images.shape[1], images.shape[2], scale=scale, batch_size=batch_size, ensemble=ensemble
        )

        def work(progress, free_memory) -> RetimeResult:
            return retime(
                rife_model.model,
                images,
                scale=scale,
                progress=progress,
                batch_size=batch,
                ensemble=ensemble,
                free_memory=free_memory,
                **options,
            )

        result = run_on_device(rife_model, memory, work)
        info = _describe(result, images.shape[0], scale)
        log.info("RIFE (%s): %s", rife_model.description, info)
        fps_out = 0.0 if result.fps_out is None else float(result.fps_out)
        return io.NodeOutput(to_comfy_images(result.frames), fps_out, info)


class RIFEInterpolate(_RetimeNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="RIFEInterpolate",
            display_name="RIFE Interpolate",
            description=(
                "Frame interpolation with RIFE: puts multiplier-1 new frames between every two frames, each "
                "computed directly from its source pair at its exact time (the official Practical-RIFE method). "
                "Scene cuts are not morphed; connect fps_out to a video writer's frame_rate."
            ),
            inputs=[*_model_and_images(), _multiplier(), _scale(), _fps_in(), *_timing_options()],
            outputs=_outputs(),
        )

    @classmethod
    def execute(
        cls,
        rife_model: RIFEModelHandle,
        images: Tensor,
        multiplier: int,
        scale: float,
        fps_in: float = 0.0,
        loop: bool = False,
        scene_threshold: float = DEFAULT_SCENE_THRESHOLD,
        dedupe: bool = False,
        batch_size: int = 0,
        ensemble: bool = False,
    ) -> io.NodeOutput:
        return cls._retime(
            rife_model,
            images,
            scale=scale,
            batch_size=batch_size,
            ensemble=ensemble,
            multiplier=multiplier,
            mode="direct",
            fps_in=fps_in or None,
            loop=loop,
            scene_threshold=scene_threshold,
            dedupe=dedupe,
        )


class RIFERecursiveInterpolate(_RetimeNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        mode = io.Combo.Input(
            "mode",
            options=["recursive", "bisect"],
            default="recursive",
            optional=True,
            tooltip="recursive: outermost in-betweens first, each level anchored on the previous one (any "
            "multiplier). bisect: halve every interval (multiplier 2, 4, 8, ...).",
        )
        return schema(
            node_id="RIFERecursiveInterpolate",
            display_name="RIFE Recursive Interpolate",
            description=(
                "Frame interpolation with RIFE that builds the in-betweens from each other. recursive: the "
                "outermost in-betweens come from the source pair and are the anchors of the next ones inward (the "
                "original recursive_rife schedule). bisect: the middle frame first, then each half (power-of-two "
                "multipliers). Same frame count and timing as RIFE Interpolate."
            ),
            inputs=[*_model_and_images(), _multiplier(), _scale(), mode, _fps_in(), *_timing_options()],
            outputs=_outputs(),
        )

    @classmethod
    def validate_inputs(cls, scale: float = AUTO_SCALE, multiplier: int = 2, mode: str = "recursive") -> bool | str:
        """Also refuse a multiplier that ``mode`` cannot produce (bisect: powers of two) when the prompt is queued."""
        scale_check = super().validate_inputs(scale=scale)
        return scale_check if scale_check is not True else _valid(lambda: check_multiplier(multiplier, mode))

    @classmethod
    def execute(
        cls,
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
        ensemble: bool = False,
    ) -> io.NodeOutput:
        return cls._retime(
            rife_model,
            images,
            scale=scale,
            batch_size=batch_size,
            ensemble=ensemble,
            multiplier=multiplier,
            mode=mode,
            fps_in=fps_in or None,
            loop=loop,
            scene_threshold=scene_threshold,
            dedupe=dedupe,
        )


class RIFEFrameRate(_RetimeNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        rate = {"min": 0.001, "max": 1000.0, "step": 0.001}
        return schema(
            node_id="RIFEFrameRate",
            display_name="RIFE Frame Rate Convert",
            description=(
                "Converts a clip to another frame rate with RIFE, any ratio (16 -> 24, 24 -> 60, 30 -> 24): output "
                "frame j sits at source time j*fps_in/fps_out, computed with exact fractions so long clips never "
                "drift; frames that land on a source frame are copied. Connect fps_out to a video writer's "
                "frame_rate."
            ),
            inputs=[
                *_model_and_images(),
                io.Float.Input(
                    "fps_in",
                    default=16.0,
                    **rate,
                    tooltip="Frame rate of the input clip. The exact NTSC rates a video loader reports "
                    "(29.97002997... = 30000/1001) are recognised as such.",
                ),
                io.Float.Input(
                    "fps_out",
                    default=24.0,
                    **rate,
                    tooltip="Frame rate to produce, at most 64 times fps_in. The output covers the same duration: "
                    "floor((B-1)*fps_out/fps_in)+1 frames.",
                ),
                _scale(),
                *_timing_options(),
            ],
            outputs=_outputs(),
        )

    @classmethod
    def execute(
        cls,
        rife_model: RIFEModelHandle,
        images: Tensor,
        fps_in: float,
        fps_out: float,
        scale: float,
        loop: bool = False,
        scene_threshold: float = DEFAULT_SCENE_THRESHOLD,
        dedupe: bool = False,
        batch_size: int = 0,
        ensemble: bool = False,
    ) -> io.NodeOutput:
        return cls._retime(
            rife_model,
            images,
            scale=scale,
            batch_size=batch_size,
            ensemble=ensemble,
            fps_in=fps_in,
            fps_out=fps_out,
            loop=loop,
            scene_threshold=scene_threshold,
            dedupe=dedupe,
        )


def _check_scale_widget(scale: float) -> None:
    """A ``scale`` widget value: 0 (auto) or a supported scale."""
    if scale != AUTO_SCALE:
        check_scale(scale)


def _run_settings(
    rife_model: RIFEModelHandle, height: int, width: int, *, scale: float, batch_size: int, ensemble: bool
) -> tuple[float, int | None, int]:
    """From the widgets to a run: the scale (auto resolved from the frame size), the engine's batch size
    (None = automatic) and the working memory to ask ComfyUI for."""
    if scale == AUTO_SCALE:
        scale = pick_scale(height, width)
    batch = batch_size or None
    return scale, batch, run_memory(rife_model, height, width, scale=scale, batch_size=batch, ensemble=ensemble)


def _valid(check) -> bool | str:
    """True when ``check()`` passes, else the library's message (ComfyUI shows it on the node)."""
    try:
        check()
    except InvalidInputError as error:
        return str(error)
    return True


def _describe(result: RetimeResult, num_frames: int, scale: float) -> str:
    """One line on what the run did, e.g. '3 -> 5 frames at 32 fps (scale 1.0); no scene cuts; no held frames
    retimed'."""
    parts = [f"{num_frames} -> {result.frames.shape[0]} frames"]
    if result.fps_out is not None:
        parts[0] += f" at {result.fps_out} fps"
    parts[0] += f" (scale {scale})"
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
