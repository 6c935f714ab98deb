"""Video files in and out (PyAV): decode, interpolate and encode as one stream, with exact timing.

A clip is read three times, never held: a first pass decodes it to learn the frame count and timestamps (and
checks that every frame decodes), a second reads thumbnails for scene-cut / held-frame detection (only when
that is on), and the last one feeds the engine, which reads each source frame about once, in order, while the
encoder writes outputs as they come. Memory is a few frames whatever the length (``bench/video_long.py``).

Timing: the output has the input's duration. ``×N`` gives ``B·N`` frames (the last frame is held for its
``N`` slots, as vs-rife does); a target rate gives ``ceil(B·fps_out/fps_in)``. Rates are exact fractions
(30000/1001 stays 30000/1001: output frame ``j`` has ``pts = j`` in a time base of ``1/fps_out``). A variable
frame rate source is resampled by its timestamps to a constant rate (each slot takes the frame shown at its
time, as FFmpeg's ``fps`` filter does), never treated as constant.

Audio is copied packet by packet (interleaved with the video as it is written) when the output container takes
its codec, else re-encoded to the container's default audio codec. Rotation (display matrix), colour range,
matrix, primaries and transfer, and the bit depth (10-bit in, 10-bit out when the codec allows) are kept;
frames pass through the library as 8-bit or 16-bit RGB. Sizes must be even for 4:2:0: an odd width or height
is padded by repeating the last column/row (said in the notes). Output goes to a hidden temporary file beside
the target and is renamed into place when complete, so an interrupted run leaves no output file.

Needs PyAV (``pip install "comfyui-rife-interpolation[video]"`` or ``pip install av``).
"""

from __future__ import annotations

import bisect
import contextlib
import math
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import outputdir, timing
from .arch import check_ensemble
from .engine import stream_plan
from .errors import InvalidInputError, RIFEError, VideoError
from .model import RIFEModel
from .schedule import Copy, Mode, Plan, Segment
from .validate import check_batch_size, check_retiming, check_scale

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm")
DEFAULT_CODEC = "libx264"
WEBM_CODEC = "libvpx-vp9"
DEFAULT_CRF = 18
TEMP_PREFIX = ".rife-tmp-"
_CRF_CODECS = {"libx264", "libx265", "libvpx", "libvpx-vp9", "libaom-av1", "libsvtav1"}
_RATE_SNAP = Fraction(1, 10_000)  # relative distance within which a stored rate is read as a simple fraction
_COMMON_DENOMINATORS = (1, 1001, 2)
_DECODE_CACHE = 2  # decoded frames kept for a repeated read (held slots of a resampled clip read one frame twice)

Progress = Callable[[int, int], None]


def require_av() -> Any:
    """The ``av`` module, or :class:`VideoError` saying how to install it."""
    try:
        import av
    except ImportError as exc:
        raise VideoError(
            f"Reading and writing video files needs PyAV, which is not installed ({exc}): "
            'run `pip install "comfyui-rife-interpolation[video]"` (or `pip install av`).'
        ) from exc
    return av


def is_video_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a video file by its extension (``.mp4 .mkv .mov .webm``)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


# ------------------------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class ColorInfo:
    """How a stream's YUV maps to RGB: FFmpeg's enum values for range, matrix, primaries and transfer."""

    color_range: int = 0
    colorspace: int = 2  # AVCOL_SPC_UNSPECIFIED
    primaries: int = 2
    transfer: int = 2

    @property
    def sws_matrix(self) -> int:
        """The matrix as swscale's constant (AVCOL_SPC_SMPTE170M = 6 is the BT.601 matrix, SWS_CS 5)."""
        return {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}.get(self.colorspace, 5)

    @property
    def sws_range(self) -> int:
        return self.color_range or 1  # unspecified YUV is limited range


@dataclass(frozen=True)
class VideoInfo:
    """What the first pass learned about a video file's main video stream."""

    path: Path
    width: int
    height: int
    fps: Fraction  # the constant rate frames are read at (the source's own, or the resampling rate)
    start: Fraction  # time of the first frame, seconds (the audio is shifted by the same amount)
    num_frames: int  # frames at ``fps`` (after resampling a variable rate)
    decoded_frames: int  # frames the stream holds
    bits: int  # bits per sample of the source (8, 10, 12, 16)
    pix_fmt: str
    codec: str
    color: ColorInfo
    display_matrix: tuple[int, ...] | None
    audio_codecs: tuple[str, ...]
    variable_rate: bool  # timestamps are not a constant rate: frames were repeated/dropped to reach ``fps``
    source_index: tuple[int, ...] | None  # constant-rate slot -> decoded frame (None: identity)

    @property
    def duration(self) -> Fraction:
        return self.num_frames / self.fps


def probe_video(path: str | os.PathLike[str], *, fps: Fraction | None = None) -> VideoInfo:
    """Decode every frame of ``path``'s first video stream once (pixels are not converted) to learn its
    count, timestamps and format. ``fps`` resamples to that constant rate by timestamps; by default the
    stream's own rate is kept when its timestamps follow it, and a variable-rate stream is resampled to its
    guessed rate (see :func:`_resampling_rate`)."""
    av = require_av()
    path = Path(path)
    container = _open_input(av, path)
    try:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        times: list[Fraction] = []
        first = last = None
        for index, frame in _decode(av, container, stream, path):
            if first is None:
                first = frame
            if frame.pts is None:
                raise VideoError(f"{path}: frame {index} has no timestamp; remux the file (ffmpeg -i IN -c copy OUT)")
            if frame.is_corrupt:
                raise VideoError(
                    f"{path}: the video stream fails at frame {index} (at {float(frame.time):.3f} s): damaged data"
                )
            times.append(frame.pts * stream.time_base)
            last = frame
        if first is None:
            raise VideoError(f"{path}: the video stream holds no frames")
        rates = _candidate_rates(stream)
        last_duration = last.duration * stream.time_base if last.duration else (1 / rates[0] if rates else None)
        _check_complete(path, container, stream, times, last_duration)
        audio = tuple(s.codec_context.name for s in container.streams.audio)
        return _describe(path, stream, first, times, last_duration, rates, fps, audio)
    finally:
        container.close()


def _check_complete(path: Path, container, stream, times: list[Fraction], last_duration: Fraction | None) -> None:
    """Raise when the frames end well before the length the file declares for this stream (a damaged or
    cut-off file whose demuxer stopped early: FFmpeg reports that as a normal end)."""
    declared = _declared_duration(container, stream)
    if declared is None:
        return
    frame = last_duration or Fraction(1, 25)
    decoded = times[-1] - times[0] + frame
    if decoded < declared - max(Fraction(1), 2 * frame):
        raise VideoError(
            f"{path}: the video stream stops after frame {len(times) - 1} (at {float(times[-1]):.3f} s) but the "
            f"file says it lasts {float(declared):.3f} s: it is damaged or cut off. To use the readable part, "
            "remux it first (ffmpeg -i IN -c copy OUT)"
        )


def _declared_duration(container, stream) -> Fraction | None:
    """The video stream's length as the file states it: the stream's duration, Matroska's per-track DURATION
    tag, or the file's duration when the video is its only stream (audio may legitimately run longer)."""
    if stream.duration is not None:
        return Fraction(stream.duration) * stream.time_base
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        try:
            hours, minutes, seconds = tag.split(":")
            return (int(hours) * 60 + int(minutes)) * 60 + Fraction(seconds)
        except ValueError:
            return None
    if container.duration is not None and len(container.streams) == 1:
        return Fraction(container.duration, 1_000_000) - Fraction(stream.start_time or 0) * stream.time_base
    return None


def _describe(path, stream, first, times, last_duration, rates, fps, audio) -> VideoInfo:
    """VideoInfo from the first pass: the constant rate and the slot -> frame map."""
    order = sorted(range(len(times)), key=times.__getitem__)
    if order != list(range(len(times))) or len(set(times)) != len(times):
        raise VideoError(f"{path}: frame timestamps are not increasing; remux or re-encode the file first")
    candidates = [fps] if fps is not None else rates
    if not candidates:
        raise VideoError(f"{path}: the stream has no frame rate; give it with --fps-in (fps_in)")
    identity = list(range(len(times)))
    rate_used = next((r for r in candidates if _slots(times, r, last_duration) == identity), None)
    variable = rate_used is None
    if variable:
        rate_used = fps if fps is not None else _resampling_rate(stream)
    slots = _slots(times, rate_used, last_duration)
    fmt = first.format
    return VideoInfo(
        path=path,
        width=first.width,
        height=first.height,
        fps=Fraction(rate_used),
        start=times[0],
        num_frames=len(slots),
        decoded_frames=len(times),
        bits=max(c.bits for c in fmt.components),
        pix_fmt=fmt.name,
        codec=stream.codec_context.name,
        color=ColorInfo(
            int(first.color_range), int(first.colorspace), int(first.color_primaries), int(first.color_trc)
        ),
        display_matrix=_display_matrix(first),
        audio_codecs=audio,
        variable_rate=variable,
        source_index=None if slots == identity else tuple(slots),
    )


def _candidate_rates(stream) -> list[Fraction]:
    """The stream's guessed and average rates, each first as the nearby common rate (``n``, ``n/2`` or
    ``n*1000/1001``) when within 1e-4: Matroska stores times in ms and frame durations in ns, so 60000/1001
    reads back as 19001/317. The frames' timestamps then decide which candidate holds."""
    rates: list[Fraction] = []
    for rate in (stream.guessed_rate, stream.average_rate):
        if rate:
            rate = Fraction(rate)
            near = [Fraction(round(rate * den), den) for den in _COMMON_DENOMINATORS]
            rates += [r for r in near if r > 0 and abs(r - rate) <= rate * _RATE_SNAP] + [rate]
    return list(dict.fromkeys(rates))


def _resampling_rate(stream) -> Fraction:
    """The constant rate for a variable-rate stream: FFmpeg's guessed (base) rate, unless it is far above
    the average (a time base rather than a frame rate), then the average as a readable fraction."""
    guessed, average = stream.guessed_rate, stream.average_rate
    if guessed and (not average or guessed <= 2 * average):
        return Fraction(guessed).limit_denominator(1001)
    if not average:
        raise VideoError("the stream has no usable frame rate; give one with --fps-in (fps_in)")
    return timing.parse_fps(float(average))


def _slots(times: list[Fraction], rate: Fraction, last_duration: Fraction | None) -> list[int]:
    """For each slot ``k`` of a constant ``rate`` grid starting at the first frame, the frame shown at its
    time (the last frame whose timestamp is at or before ``k/rate``, with half a slot of tolerance)."""
    start = times[0]
    duration = (times[-1] - start) + (last_duration or 1 / rate)
    count = max(1, round(duration * rate))
    return [max(0, bisect.bisect_right(times, start + (k + Fraction(1, 2)) / rate) - 1) for k in range(count)]


def _display_matrix(frame) -> tuple[int, ...] | None:
    from av.sidedata.sidedata import Type

    data = frame.side_data.get(Type.DISPLAYMATRIX) if frame.side_data else None
    if data is None:
        return None
    matrix = struct.unpack("<9i", bytes(data))
    return None if matrix == (65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30) else matrix


def _open_input(av, path: Path):
    if not path.exists():
        raise InvalidInputError(f"Input video not found: {path}")
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder: use --img for a folder of frames")
    try:
        return av.open(str(path), "r")
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path} is not a video file FFmpeg can read ({exc.strerror or exc})") from exc


def _video_stream(container, path: Path):
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "nothing"
        raise VideoError(f"{path} has no video stream (it holds {kinds})")
    return container.streams.video[0]


def _decode(av, container, stream, path: Path) -> Iterator[tuple[int, Any]]:
    """(index, frame) of every frame of ``stream``; a failure names the frame number and time."""
    index, time = 0, 0.0
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
            frames = packet.decode()
        except StopIteration:
            return
        except av.error.FFmpegError as exc:
            raise VideoError(
                f"{path}: the video stream fails after frame {index} (at {time:.3f} s): {exc.strerror or exc}"
            ) from exc
        for frame in frames:
            if frame.time is not None:
                time = frame.time
            yield index, frame
            index += 1


class VideoFrames(Sequence):
    """A video's frames as the engine reads them: ``frames[k]`` decodes up to constant-rate slot ``k`` and
    returns it as an [H,W,3] tensor (uint8 for 8-bit sources, float32 0..1 from 16-bit RGB otherwise).

    Reads must go forward (a slot already passed is served from a cache of the last few frames; an earlier
    one restarts decoding from the start, which is correct but slow). The file stays open until
    :meth:`close` (or the end of a ``with`` block)."""

    def __init__(self, info: VideoInfo) -> None:
        self.info = info
        self._av = require_av()
        self._container = None
        self._frames: Iterator[tuple[int, Any]] | None = None
        self._cache: dict[int, Tensor] = {}
        self._next = 0  # decoded frame index the decoder will produce next
        self._converter = self._av.video.reformatter.VideoReformatter()  # one swscale context for every frame

    def __len__(self) -> int:
        return self.info.num_frames

    def __getitem__(self, slot: int) -> Tensor:  # type: ignore[override]
        if not 0 <= slot < len(self):
            raise IndexError(slot)
        index = slot if self.info.source_index is None else self.info.source_index[slot]
        if index in self._cache:
            return self._cache[index]
        if index < self._next:
            self._restart()
        while True:
            current, frame = self._decode_next(index)
            self._next = current + 1
            if current == index:
                tensor = self._to_tensor(frame)
                self._cache = {k: v for k, v in self._cache.items() if k > index - _DECODE_CACHE}
                self._cache[index] = tensor
                return tensor

    def _decode_next(self, wanted: int) -> tuple[int, Any]:
        if self._frames is None:
            self._restart()
        assert self._frames is not None
        try:
            return next(self._frames)
        except StopIteration:
            raise VideoError(
                f"{self.info.path}: the video stream ended at frame {self._next} while frame {wanted} was expected "
                f"(the first pass decoded {self.info.decoded_frames})"
            ) from None

    def _restart(self) -> None:
        self.close()
        self._container = _open_input(self._av, self.info.path)
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._frames = _decode(self._av, self._container, stream, self.info.path)
        self._next = 0

    def _to_tensor(self, frame) -> Tensor:
        """RGB pixels with the stream's own matrix and range (the encoder uses the same, so copies round-trip)."""
        deep = self.info.bits > 8
        rgb = self._converter.reformat(
            frame,
            format="rgb48le" if deep else "rgb24",
            src_colorspace=self.info.color.sws_matrix,
            src_color_range=self.info.color.sws_range,
        ).to_ndarray()
        if deep:
            return torch.from_numpy(rgb.astype(np.float32) / np.float32(65535.0))
        return torch.from_numpy(np.ascontiguousarray(rgb))

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
            self._frames = None

    def __enter__(self) -> VideoFrames:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------ writing


@dataclass(frozen=True)
class EncodeSettings:
    """Codec, quality and the pixel format chosen for a source's bit depth."""

    codec: str
    crf: int | None
    pix_fmt: str
    bits: int


def check_codec(output: Path, codec: str | None) -> str:
    """The encoder for ``output`` (default H.264, VP9 for .webm), checked to exist, to be a video encoder and
    to fit ``output``'s container; raises :class:`InvalidInputError` saying what to choose otherwise."""
    av = require_av()
    suffix = output.suffix.lower()
    codec = codec or (WEBM_CODEC if suffix == ".webm" else DEFAULT_CODEC)
    try:
        encoder = av.Codec(codec, "w")
    except (av.error.FFmpegError, ValueError) as exc:
        raise InvalidInputError(f"Unknown video encoder {codec!r}: try libx264, libx265 or libvpx-vp9") from exc
    if encoder.type != "video":
        raise InvalidInputError(f"{codec} is an {encoder.type} encoder; --codec needs a video encoder")
    probe = av.open(os.devnull, "w", format=_container_format(suffix))
    try:
        supported = getattr(probe, "supported_codecs", None)  # PyAV >= 13; older ones fail at the header
    finally:
        probe.close()
    if supported is not None and codec not in supported and encoder.name not in supported:
        raise InvalidInputError(
            f"A {suffix} file cannot hold {codec} video: choose another --codec "
            f"({'libvpx-vp9 or libsvtav1' if suffix == '.webm' else 'libx264, libx265'}) or another extension"
        )
    return codec


def check_crf(crf: int | None) -> int | None:
    if crf is not None and (isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 63):
        raise InvalidInputError(f"crf must be an integer from 0 (lossless) to 63, got {crf!r}")
    return crf


def encode_settings(codec: str, crf: int | None, bits: int, notes: list[str]) -> EncodeSettings:
    """4:2:0 at the source's depth where the encoder has it (10/12-bit), else 8-bit (said in ``notes``);
    ``crf`` is used by the encoders that have it."""
    av = require_av()
    formats = {f.name for f in av.Codec(codec, "w").video_formats or ()}
    pix_fmt = "yuv420p"
    if bits > 8:
        deep = [f"yuv420p{b}le" for b in (12, 10) if b <= max(bits, 10) and f"yuv420p{b}le" in formats]
        if deep:
            pix_fmt = deep[0]
        else:
            notes.append(f"{codec} has no 10-bit 4:2:0 format: the {bits}-bit source is written as 8-bit")
    elif formats and pix_fmt not in formats:
        raise InvalidInputError(f"{codec} cannot encode yuv420p; choose libx264, libx265 or libvpx-vp9")
    out_bits = 8 if pix_fmt == "yuv420p" else int(pix_fmt[7:9])
    return EncodeSettings(codec, crf if codec in _CRF_CODECS else None, pix_fmt, out_bits)


def _container_format(suffix: str) -> str:
    return {".mkv": "matroska", ".webm": "webm", ".mov": "mov", ".mp4": "mp4"}[suffix]


class _AudioCarrier:
    """Copies (or re-encodes) every audio stream of the source into the output, interleaved with the video:
    :meth:`until` writes audio up to a time, :meth:`finish` the rest."""

    def __init__(self, av, source: Path, output, offset: Fraction, notes: list[str]) -> None:
        self.av, self.output, self.offset = av, output, offset
        self.input = av.open(str(source), "r")
        self.streams = list(self.input.streams.audio)
        self.routes: dict[int, tuple[Any, Any]] = {}  # input stream index -> (output stream, resampler | None)
        supported = getattr(output, "supported_codecs", None)
        for stream in self.streams:
            name = stream.codec_context.name
            if supported is None or name in supported:
                self.routes[stream.index] = (output.add_stream_from_template(stream), None)
                notes.append(f"audio {name} copied")
            else:
                self.routes[stream.index] = self._encoder(stream, notes)
        self.packets = self.input.demux(self.streams) if self.streams else iter(())
        self.pending = None

    def _encoder(self, stream, notes: list[str]):
        target = self.output.default_audio_codec
        encoder = self.av.Codec(target, "w")
        rates = encoder.audio_rates
        rate = stream.rate if not rates or stream.rate in rates else max(rates)
        out = self.output.add_stream(target, rate=rate)
        out.layout = stream.layout
        fmt = encoder.audio_formats[0].name if encoder.audio_formats else "fltp"
        out.format = fmt
        notes.append(f"audio {stream.codec_context.name} re-encoded to {target} (the container cannot hold it)")
        return out, self.av.AudioResampler(format=fmt, layout=stream.layout, rate=rate)

    def until(self, seconds: Fraction | None) -> None:
        """Write audio packets that start before ``seconds`` (all with None)."""
        while True:
            packet = self.pending if self.pending is not None else next(self.packets, None)
            self.pending = None
            if packet is None:
                return
            if packet.pts is not None and seconds is not None and packet.pts * packet.time_base - self.offset > seconds:
                self.pending = packet
                return
            self._write(packet)

    def _write(self, packet) -> None:
        out, resampler = self.routes[packet.stream.index]
        if resampler is None:
            if packet.dts is None:
                return  # the demuxer's end-of-stream marker
            shift = round(self.offset / packet.time_base)
            if shift and packet.pts is not None:
                packet.pts, packet.dts = packet.pts - shift, packet.dts - shift
            packet.stream = out
            self.output.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None
            for converted in resampler.resample(frame):
                self.output.mux(out.encode(converted))

    def finish(self) -> None:
        self.until(None)
        for out, resampler in self.routes.values():
            if resampler is not None:
                for converted in resampler.resample(None):
                    self.output.mux(out.encode(converted))
                self.output.mux(out.encode(None))
        self.close()

    def close(self) -> None:
        self.input.close()


class VideoWriter:
    """Encodes [H,W,C] float frames (0..1) at a constant exact rate into a video file, with the source's
    audio, colour tags and rotation. Frames are written to a temporary file beside ``output``; :meth:`close`
    renames it into place, :meth:`abort` deletes it."""

    def __init__(
        self,
        output: Path,
        *,
        fps: Fraction,
        width: int,
        height: int,
        settings: EncodeSettings,
        color: ColorInfo,
        display_matrix: tuple[int, ...] | None,
        audio_source: Path | None,
        audio_offset: Fraction,
        notes: list[str],
    ) -> None:
        av = require_av()
        self.output, self.fps, self.settings, self.color, self.notes = output, fps, settings, color, notes
        self.size = (height, width)
        self.padded = (height + height % 2, width + width % 2)
        if self.padded != self.size:
            notes.append(
                f"odd size {width}x{height} padded to {self.padded[1]}x{self.padded[0]} (4:2:0 video needs even "
                "sizes; the last column/row is repeated)"
            )
        self.converter = av.video.reformatter.VideoReformatter()  # one swscale context for every frame
        self.temp = output.with_name(f"{TEMP_PREFIX}{output.name}")
        self.container = av.open(str(self.temp), "w", format=_container_format(output.suffix.lower()))
        self.audio: _AudioCarrier | None = None
        self.count = 0
        try:
            self.stream = self._video_stream(display_matrix)
            if audio_source is not None:
                self.audio = _AudioCarrier(av, audio_source, self.container, audio_offset, notes)
        except BaseException:
            self.abort()
            raise

    def _video_stream(self, display_matrix: tuple[int, ...] | None):
        s = self.settings
        options = {} if s.crf is None else {"crf": str(s.crf)}
        if s.codec in ("libvpx", "libvpx-vp9") and s.crf is not None:
            options["b"] = "0"  # constant quality
        stream = self.container.add_stream(s.codec, rate=self.fps, options=options)
        stream.height, stream.width = self.padded
        stream.pix_fmt = s.pix_fmt
        stream.time_base = 1 / self.fps
        stream.codec_context.time_base = 1 / self.fps
        context = stream.codec_context
        context.color_range = self.color.color_range
        context.colorspace = self.color.colorspace
        context.color_primaries = self.color.primaries
        context.color_trc = self.color.transfer
        if display_matrix is not None and hasattr(stream, "set_display_matrix"):
            stream.set_display_matrix(display_matrix)
        elif display_matrix is not None:
            self.notes.append("this PyAV cannot write the rotation (PyAV >= 18 can): the output shows unrotated")
        return stream

    def write(self, frame: Tensor) -> None:
        """Encode the next output frame ([H,W,C] float 0..1 or uint8; grey is expanded, alpha dropped)."""
        av = require_av()
        if tuple(frame.shape[:2]) != self.size:
            raise InvalidInputError(f"Frame of shape {tuple(frame.shape)} does not match the video's {self.size}")
        deep = self.settings.bits > 8
        pixels = _quantize(frame, 65535 if deep else 255)
        if pixels.shape[2] == 1:
            pixels = np.repeat(pixels, 3, axis=2)
        pixels = pixels[:, :, :3]
        pad_h, pad_w = self.padded[0] - self.size[0], self.padded[1] - self.size[1]
        if pad_h or pad_w:
            pixels = np.pad(pixels, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        image = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb48le" if deep else "rgb24")
        yuv = self.converter.reformat(
            image,
            format=self.settings.pix_fmt,
            dst_colorspace=self.color.sws_matrix,
            dst_color_range=self.color.sws_range,
        )
        yuv.pts = self.count
        yuv.time_base = self.stream.codec_context.time_base
        if self.audio is not None:
            self.audio.until(self.count / self.fps)
        self.container.mux(self.stream.encode(yuv))
        self.count += 1

    def close(self) -> Path:
        """Flush the encoder, write the rest of the audio, finalize the file and move it into place."""
        try:
            self.container.mux(self.stream.encode(None))
            if self.audio is not None:
                self.audio.finish()
            self.container.close()
            os.replace(self.temp, self.output)
        except BaseException:
            self.abort()
            raise
        return self.output

    def abort(self) -> None:
        """Drop the partial file (nothing is left at ``output``)."""
        if self.audio is not None:
            self.audio.close()
        with contextlib.suppress(Exception):  # closing a half-written file may fail; it is deleted anyway
            self.container.close()
        self.temp.unlink(missing_ok=True)


def _quantize(frame: Tensor, top: int) -> np.ndarray:
    if frame.dtype == torch.uint8 and top == 255:
        return frame.cpu().numpy()
    values = frame.detach().to("cpu", torch.float32)
    if frame.dtype == torch.uint8:
        values = values / 255.0
    values = values.clamp(0.0, 1.0).numpy()
    return np.rint(values * np.float32(top)).astype(np.uint16 if top > 255 else np.uint8)


# ------------------------------------------------------------------------------------------------ pipeline


@dataclass(frozen=True)
class VideoResult:
    """What :func:`interpolate_video` wrote: frame counts, exact rates and duration, cuts and held runs
    applied, the output's pixel format and bit depth, and notes (audio copied/re-encoded, padding, resampling)."""

    output: Path
    frames_in: int
    frames_out: int
    fps_in: Fraction
    fps_out: Fraction
    duration: Fraction
    pix_fmt: str
    bits: int
    cuts: list[int]
    held: list[tuple[int, int]]
    notes: list[str] = field(default_factory=list)


def with_held_tail(plan: Plan, total: int, step: Fraction) -> Plan:
    """``plan`` extended to ``total`` outputs by holding the last source frame for the slots after it
    (positions continue by ``step``), so the output lasts as long as the input."""
    missing = total - plan.num_outputs
    if missing <= 0:
        return plan
    last = plan.num_frames - 1
    start = plan.positions()[-1]
    tail = tuple(Copy(start + k * step, last) for k in range(1, missing + 1))
    return Plan(plan.num_frames, (*plan.segments, Segment(tail)))


def folder_info(folder: Path, fps: Fraction | None) -> VideoInfo:
    """A folder of numbered frames described as a constant-rate clip (``fps`` is required: frames carry no
    rate). RGB frames are tagged BT.709, limited range, when encoded."""
    if fps is None:
        raise InvalidInputError("A folder of frames has no frame rate: give it with --fps-in (fps_in), e.g. 24")
    fmt = _imageio().FrameFolder(folder).format
    return VideoInfo(
        path=folder,
        width=fmt.width,
        height=fmt.height,
        fps=fps,
        start=Fraction(0),
        num_frames=len(_imageio().list_frames(folder)),
        decoded_frames=0,
        bits=fmt.bits,
        pix_fmt=f"{fmt.bits}-bit {fmt.suffix[1:]}",
        codec="image",
        color=ColorInfo(color_range=1, colorspace=1, primaries=1, transfer=1),
        display_matrix=None,
        audio_codecs=(),
        variable_rate=False,
        source_index=None,
    )


def _imageio():
    try:
        from . import imageio
    except ImportError as exc:
        raise RIFEError(
            f"Folders of frames are read and written with OpenCV, which is not installed ({exc}): "
            "run `pip install opencv-python-headless`"
        ) from exc
    return imageio


def _open_frames(info: VideoInfo):
    """The clip's frames as a lazy sequence, in a ``with`` block (a folder needs no closing)."""
    if info.path.is_dir():
        return contextlib.nullcontext(_imageio().FrameFolder(info.path))
    return VideoFrames(info)


class _FolderSink:
    """Writes output frames as numbered PNGs (16-bit for deeper sources) into a folder, each atomically."""

    def __init__(self, folder: Path, source: Path, bits: int, width: int, height: int, overwrite: bool) -> None:
        self.io = _imageio()
        earlier = self.io.prepare_output(folder, input_folder=source, overwrite=overwrite)
        self.io.remove_frames(earlier)
        self.folder, self.count = folder, 0
        self.format = self.io.FrameFormat(height, width, 3, np.dtype(np.uint16 if bits > 8 else np.uint8), ".png")

    def write(self, frame: Tensor) -> None:
        image = self.io.to_image(frame.float() / 255.0 if frame.dtype == torch.uint8 else frame, self.format)
        self.io.write_image(self.io.frame_path(self.folder, self.count, ".png"), image)
        self.count += 1

    def close(self) -> Path:
        return self.folder

    def abort(self) -> None:
        """Frames already written stay: each one is complete."""


def interpolate_video(
    model: RIFEModel,
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    multiplier: int | None = None,
    fps_out: int | float | str | Fraction | None = None,
    fps_in: int | float | str | Fraction | None = None,
    mode: Mode = "direct",
    scale: float = 1.0,
    loop: bool = False,
    scene_threshold: float = timing.DEFAULT_SCENE_THRESHOLD,
    dedupe: bool = False,
    ensemble: bool = False,
    codec: str | None = None,
    crf: int | None = DEFAULT_CRF,
    overwrite: bool = False,
    progress: Progress | None = None,
    batch_size: int | None = None,
    free_memory: Callable[[], None] | None = None,
    on_start: Callable[[VideoInfo, timing.TimedPlan, list[str]], None] | None = None,
) -> VideoResult:
    """Interpolate ``source`` (a video file, or a folder of numbered frames with ``fps_in``) into ``output``
    (a video file ``.mp4 .mkv .mov .webm``, or else a folder of PNG frames), streaming: memory stays at a
    few frames whatever the clip's length.

    Timing as :func:`rife.timing.timed_plan` (``multiplier`` — default 2 — or ``fps_out``); ``fps_in``
    overrides a video's rate (the clip is resampled to it by timestamps). The output keeps the input's
    duration, audio (copied when the container takes it), colour tags, rotation and bit depth. ``codec``:
    an FFmpeg encoder (default libx264, libvpx-vp9 for .webm), ``crf`` its quality. An existing ``output``
    is replaced only with ``overwrite``; an interrupted run leaves no output video. ``on_start`` is called
    once the schedule is known, before the first frame is computed (the CLI prints its summary there)."""
    source, output = Path(source), Path(output)
    notes: list[str] = []
    # Every option is checked before the first pass, which decodes the whole clip.
    rate_in = None if fps_in is None else timing.parse_fps(fps_in)
    rate_out = None if fps_out is None else timing.parse_fps(fps_out)
    if rate_out is None and multiplier is None:
        multiplier = 2
    check_retiming(multiplier, rate_out, mode)
    check_scale(scale)
    check_batch_size(batch_size)
    check_ensemble(model.spec, ensemble)
    to_video = is_video_path(output)
    if to_video:
        codec, crf = check_codec(output, codec), check_crf(crf)
        check_output_path(output, source, overwrite=overwrite)
    info = folder_info(source, rate_in) if source.is_dir() else probe_video(source, fps=rate_in)
    settings = encode_settings(codec, crf, info.bits, notes) if to_video else None
    if info.variable_rate:
        notes.append(
            f"variable frame rate: resampled to a constant {info.fps} fps by timestamps ({info.decoded_frames} "
            f"frames -> {info.num_frames}); --dedupe smooths the repeated ones"
        )
    with _open_frames(info) as frames:
        timed = timing.timed_plan(
            frames,
            multiplier=multiplier,
            mode=mode,
            fps_in=info.fps,
            fps_out=rate_out,
            loop=loop,
            scene_threshold=scene_threshold,
            dedupe=dedupe,
        )
    assert timed.fps_out is not None
    step = info.fps / timed.fps_out
    plan = timed.plan if loop else with_held_tail(timed.plan, math.ceil(info.num_frames / step), step)
    with contextlib.ExitStack() as folder_lock:
        if settings is not None:
            sink: VideoWriter | _FolderSink = VideoWriter(
                output,
                fps=timed.fps_out,
                width=info.width,
                height=info.height,
                settings=settings,
                color=info.color,
                display_matrix=info.display_matrix,
                audio_source=source if info.audio_codecs else None,
                audio_offset=info.start,
                notes=notes,
            )
        else:  # frames into a folder: the folder path's checks and lock (one run per output folder)
            outputdir.check_output_path(output, input_folder=source)
            folder_lock.enter_context(outputdir.locked_folder(output))
            sink = _FolderSink(output, source, info.bits, info.width, info.height, overwrite)
        try:
            if on_start is not None:
                on_start(info, timed, notes)
            with _open_frames(info) as frames:
                stream = stream_plan(
                    model,
                    frames,
                    plan,
                    scale=scale,
                    progress=progress,
                    batch_size=batch_size,
                    ensemble=ensemble,
                    free_memory=free_memory,
                )
                for frame in stream:
                    sink.write(frame)
            sink.close()
        except BaseException:
            sink.abort()
            raise
    return VideoResult(
        output=output,
        frames_in=info.num_frames,
        frames_out=sink.count,
        fps_in=info.fps,
        fps_out=timed.fps_out,
        duration=sink.count / timed.fps_out,
        pix_fmt=settings.pix_fmt if settings else f"png {'16' if info.bits > 8 else '8'}-bit",
        bits=settings.bits if settings else (16 if info.bits > 8 else 8),
        cuts=timed.cuts,
        held=timed.held,
        notes=notes,
    )


def check_output_path(output: Path, source: Path, *, overwrite: bool) -> None:
    """Raise unless ``output`` is a writable video path that is not the source and does not exist (unless
    ``overwrite``). A leftover temporary file of a killed run beside it is removed."""
    if not is_video_path(output):
        raise InvalidInputError(f"{output} is not a video file name: use one of {', '.join(VIDEO_SUFFIXES)}")
    if outputdir.identity(output) is not None and outputdir.identity(output) == outputdir.identity(source):
        raise VideoError(f"The output {output} is the input file; choose another --output")
    if output.is_dir():
        raise VideoError(f"The output {output} is a folder; give a file name such as {output / 'out.mp4'}")
    if output.exists() and not overwrite:
        raise VideoError(f"{output} already exists: pass --overwrite (overwrite=True) to replace it")
    parent = output.parent
    if not parent.is_dir():
        raise VideoError(f"The output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise VideoError(f"Cannot write to the output folder {parent}")
    output.with_name(f"{TEMP_PREFIX}{output.name}").unlink(missing_ok=True)
