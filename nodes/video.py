"""``RIFEInterpolateVideo``: a ``VIDEO`` in, a ``VIDEO`` out, with memory that does not grow with the clip.

An ``IMAGE`` batch holds the whole clip as float32 (24.9 MB per 1080p frame), so the interpolation nodes need
the clip's input and output in RAM at once. This node instead streams the video file through
:func:`rife.video.interpolate_video` (decode, interpolate and encode a few frames at a time, audio carried over,
exact frame rate) into a file in ComfyUI's temp folder, and returns ComfyUI's own file-backed ``VideoFromFile``,
so ``SaveVideo`` (which remuxes it without re-encoding), previews and ``GetVideoComponents`` work unchanged.
ComfyUI empties its temp folder when it starts and when it exits.

The video module writes under a hidden temporary name and renames the file when it is complete; a failed or
cancelled run deletes it, so no later node can pick up a half-written video.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import folder_paths
from comfy_api.latest import Input, InputImpl, io

from ..rife.schedule import MAX_MULTIPLIER, check_multiplier
from ..rife.timing import DEFAULT_SCENE_THRESHOLD
from ..rife.video import DEFAULT_CRF, VideoResult, interpolate_video
from .interpolate import AUTO_SCALE, _check_scale_widget, _run_settings, _scale, _timing_options, _valid
from .runtime import RIFEModelHandle, run_on_device
from .types import RIFEModelType, schema

TEMP_SUBFOLDER = "rife_video"
# Encoders the output MP4 can hold; SaveVideo's "auto" format/codec remuxes the file without re-encoding it.
CODECS = ("libx264", "libx265", "libsvtav1")

log = logging.getLogger(__name__)


class RIFEInterpolateVideo(io.ComfyNode):
    """Interpolates a ``VIDEO`` file to file: memory stays flat whatever the clip's length."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="RIFEInterpolateVideo",
            display_name="RIFE Interpolate Video",
            description=(
                "Frame interpolation with RIFE from a VIDEO to a VIDEO, streamed through a file: decoding, "
                "interpolation and encoding hold only a few frames at a time, so memory stays flat however long "
                "the clip (the IMAGE nodes hold the whole clip as float32). The audio is carried over in sync and "
                "the frame rate is exact (30000/1001 x2 = 60000/1001). Connect the output to Save Video with "
                "format and codec on auto: it then copies the file without re-encoding it."
            ),
            inputs=[
                RIFEModelType.Input("rife_model", tooltip="The model from Load RIFE Model."),
                io.Video.Input("video", tooltip="The clip, e.g. from Load Video. Any file FFmpeg reads."),
                io.Int.Input(
                    "multiplier",
                    default=2,
                    min=1,
                    max=MAX_MULTIPLIER,
                    tooltip="Output frames per source frame: B frames become B*multiplier at multiplier times the "
                    "frame rate, so the output keeps the source's duration and its audio stays in sync (the last "
                    "frame is held for its slot). Ignored when fps_out is set.",
                ),
                _scale(),
                io.Float.Input(
                    "fps_out",
                    default=0.0,
                    min=0.0,
                    max=1000.0,
                    step=0.001,
                    optional=True,
                    tooltip="Frame rate to produce instead of a multiplier (any ratio: 24 -> 60, 30 -> 24; "
                    "29.97 is read as 30000/1001). 0 = use multiplier.",
                ),
                io.Combo.Input(
                    "mode",
                    options=["direct", "recursive", "bisect"],
                    default="direct",
                    optional=True,
                    tooltip="direct: every in-between from its source pair at its exact time (Practical-RIFE). "
                    "recursive: outermost in-betweens first, each level anchored on the previous one. bisect: "
                    "halve every interval (multiplier 2, 4, 8, ...). fps_out needs direct.",
                ),
                io.Boolean.Input(
                    "loop",
                    default=False,
                    optional=True,
                    tooltip="Treat the clip as a loop: the last frame's slot is interpolated towards the first "
                    "frame instead of holding the last frame.",
                ),
                *(option for option in _timing_options() if option.id != "loop"),
                io.Combo.Input(
                    "codec",
                    options=list(CODECS),
                    default=CODECS[0],
                    optional=True,
                    tooltip="Encoder of the output MP4: libx264 (H.264, plays everywhere), libx265 (H.265), "
                    "libsvtav1 (AV1). 10-bit sources stay 10-bit where the encoder allows.",
                ),
                io.Int.Input(
                    "crf",
                    default=DEFAULT_CRF,
                    min=0,
                    max=63,
                    optional=True,
                    tooltip="Quality: lower is better and larger. 18 is visually lossless for H.264.",
                ),
            ],
            outputs=[
                io.Video.Output(
                    "result", display_name="video", tooltip="The interpolated video, with the source's audio."
                ),
                io.String.Output(
                    "info", display_name="timing_info", tooltip="Frames, exact frame rates and what timing found."
                ),
            ],
        )

    @classmethod
    def validate_inputs(
        cls, scale: float = AUTO_SCALE, multiplier: int = 2, mode: str = "direct", fps_out: float = 0.0
    ) -> bool | str:
        """Refuse an unsupported ``scale``, or a multiplier ``mode`` cannot produce, when the prompt is queued."""

        def check() -> None:
            _check_scale_widget(scale)
            if not fps_out:
                check_multiplier(multiplier, mode)

        return _valid(check)

    @classmethod
    def execute(
        cls,
        rife_model: RIFEModelHandle,
        video: Input.Video,
        multiplier: int,
        scale: float,
        fps_out: float = 0.0,
        mode: str = "direct",
        loop: bool = False,
        scene_threshold: float = DEFAULT_SCENE_THRESHOLD,
        dedupe: bool = False,
        batch_size: int = 0,
        ensemble: bool = False,
        codec: str = CODECS[0],
        crf: int = DEFAULT_CRF,
    ) -> io.NodeOutput:
        width, height = video.get_dimensions()
        scale, batch, memory = _run_settings(
            rife_model, height, width, scale=scale, batch_size=batch_size, ensemble=ensemble
        )
        output = _new_output_path()
        with _local_source(video, output.parent) as source:

            def work(progress, free_memory) -> VideoResult:
                return interpolate_video(
                    rife_model.model,
                    source,
                    output,
                    multiplier=None if fps_out else multiplier,
                    fps_out=fps_out or None,
                    mode=mode,
                    scale=scale,
                    loop=loop,
                    scene_threshold=scene_threshold,
                    dedupe=dedupe,
                    ensemble=ensemble,
                    codec=codec,
                    crf=crf,
                    progress=progress,
                    batch_size=batch,
                    free_memory=free_memory,
                )

            result = run_on_device(rife_model, memory, work)
        info = _describe(result)
        log.info("RIFE video (%s): %s", rife_model.description, info)
        return io.NodeOutput(InputImpl.VideoFromFile(str(result.output)), info)


def _describe(result: VideoResult) -> str:
    """One line on the run, e.g. '300 -> 600 frames, 30000/1001 -> 60000/1001 fps, 10.010 s; no scene cuts'."""
    parts = [
        f"{result.frames_in} -> {result.frames_out} frames, {result.fps_in} -> {result.fps_out} fps, "
        f"{float(result.duration):.3f} s, {result.pix_fmt}"
    ]
    parts.append(f"scene cuts after frames {', '.join(map(str, result.cuts))}" if result.cuts else "no scene cuts")
    if result.held:
        parts.append("held frames retimed: " + ", ".join(f"{a}-{b - 1}" for a, b in result.held))
    return "; ".join(parts + result.notes)


def _new_output_path() -> Path:
    """A fresh file name in ComfyUI's temp folder (emptied by ComfyUI when it starts and exits).

    :func:`interpolate_video` writes it under a hidden temporary name and renames it when complete, deleting
    it on any failure or cancel, so this name never holds a half-written video."""
    folder = Path(folder_paths.get_temp_directory()) / TEMP_SUBFOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"rife_{uuid.uuid4().hex}.mp4"


@contextmanager
def _local_source(video: Input.Video, folder: Path) -> Iterator[str]:
    """The video as a file path: a file-backed VIDEO's own file; anything else (a file held in memory, a VIDEO
    made from images by Create Video) written to a temp file first, deleted afterwards."""
    file_backed = isinstance(video, InputImpl.VideoFromFile)
    source = video.get_stream_source() if file_backed else None
    if isinstance(source, str):
        yield source
        return
    spill = folder / f"rife_source_{uuid.uuid4().hex}{'.bin' if file_backed else '.mp4'}"  # FFmpeg reads content
    try:
        if file_backed:
            with spill.open("wb") as file:
                shutil.copyfileobj(source, file)  # the bytes as they are: any container FFmpeg reads
        else:
            video.save_to(str(spill))  # ComfyUI encodes it (H.264 MP4 with its audio)
        yield str(spill)
    finally:
        spill.unlink(missing_ok=True)
