"""The one place that checks user options and frames, for the library, the command line and the nodes.

Every check raises :class:`~rife.errors.InvalidInputError` with a message that names the option, the value and
what is allowed. Numbers may be Python or numpy scalars (``np.int64(4)``, ``np.float32(0.5)``); booleans must be
real booleans (``loop="no"`` is refused rather than read as true). Frame rates become bounded exact fractions,
so no later step can overflow, hang or print a 300-digit number. The CLI turns these errors into usage errors
(exit status 2) before any work.
"""

from __future__ import annotations

import math
import numbers
import re
from fractions import Fraction

import numpy as np
import torch
from torch import Tensor

from .errors import InvalidInputError

MODES: tuple[str, ...] = ("direct", "recursive", "bisect")
MAX_MULTIPLIER = 64
SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)

# Frame rates: exact fractions in [MIN_FPS, MAX_FPS] with a denominator of at most MAX_FPS_DENOMINATOR.
MIN_FPS = Fraction(1, 1000)
MAX_FPS = Fraction(1_000_000)
MAX_FPS_DENOMINATOR = 1_000_000
MAX_FPS_TEXT = 64  # characters: "30000/1001", "23.976", "1e3"; longer text is not a frame rate
# Floats (and long decimals) within this relative distance of a fraction with denominator <= 1001 snap to it
# (29.97002997 -> 30000/1001).
FPS_SNAP_DENOMINATOR = 1001
FPS_SNAP_TOLERANCE = 1e-9
_DECIMAL = re.compile(r"^\s*(?P<sign>[+-]?)(?P<int>\d*)(?:\.(?P<frac>\d*))?(?:[eE](?P<exp>[+-]?\d+))?\s*$")
_RATIO = re.compile(r"^\s*(?P<num>[+-]?\d+)\s*/\s*(?P<den>[+-]?\d+)\s*$")
_MAX_EXPONENT = 12  # 1e12 is far past MAX_FPS; larger exponents are refused before 10**exp is computed

# Float frames are 0..1. Values a little outside (filters, resampling overshoot) are clamped for the model;
# a frame whose values reach past these limits is in another range (0..255, -1..1) and is refused.
PIXEL_LOW = -0.5
PIXEL_HIGH = 2.0
_FPS_HINT = "use a positive number such as 24, 23.976 or '30000/1001'"


def is_bool(value: object) -> bool:
    """True for ``True``/``False`` and numpy booleans (which are not Python bools)."""
    return isinstance(value, (bool, np.bool_))


def check_bool(value: object, name: str) -> bool:
    """``value`` as a bool; strings, numbers and None are refused (``loop="no"`` must not mean True)."""
    if not is_bool(value):
        raise InvalidInputError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def check_int(value: object, name: str) -> int:
    """``value`` as an int (Python or numpy integer; bools and floats are refused)."""
    if is_bool(value) or not isinstance(value, numbers.Integral):
        raise InvalidInputError(f"{name} must be an integer, got {value!r}.")
    return int(value)


def check_mode(mode: object) -> str:
    if not isinstance(mode, str) or mode not in MODES:
        raise InvalidInputError(f"Unknown mode {mode!r}: use one of {', '.join(MODES)}.")
    return mode


def check_multiplier(multiplier: object, mode: object = "direct") -> int:
    """The multiplier as an int, usable with ``mode`` (1..MAX_MULTIPLIER; a power of two for bisect)."""
    mode = check_mode(mode)
    if is_bool(multiplier) or not isinstance(multiplier, numbers.Integral):
        raise InvalidInputError(f"multiplier must be an integer, got {multiplier!r}.")
    value = int(multiplier)
    if not 1 <= value <= MAX_MULTIPLIER:
        raise InvalidInputError(f"multiplier must be between 1 and {MAX_MULTIPLIER}, got {value}.")
    if mode == "bisect" and value & (value - 1):
        raise InvalidInputError(
            f"Bisection halves each interval, so its multiplier must be a power of two (2, 4, 8, 16, ...); "
            f"got {value}. Use mode='recursive' or 'direct' for other multipliers."
        )
    return value


def check_retiming(multiplier: object, fps_out: Fraction | None, mode: object) -> int | None:
    """``multiplier`` checked for ``mode``, or None when the clip is converted to ``fps_out`` instead: never both,
    and a conversion to a frame rate only in direct mode (every output from its source pair)."""
    mode = check_mode(mode)
    if multiplier is not None:
        if fps_out is not None:
            raise InvalidInputError(
                "Give either multiplier or fps_out, not both: fps_out is the source rate * multiplier."
            )
        return check_multiplier(multiplier, mode)
    if fps_out is not None and mode != "direct":
        raise InvalidInputError(
            f"Frame rate conversion (fps_out) works in direct mode only: it computes every output directly from its "
            f"source pair, so mode must be 'direct', got {mode!r}; recursive and bisect need an integer multiplier "
            "instead of fps_out."
        )
    return None


def check_scale(scale: object) -> float:
    """The flow scale as a float, one of :data:`SCALES`."""
    if is_bool(scale) or not isinstance(scale, numbers.Real) or float(scale) not in SCALES:
        raise InvalidInputError(
            f"scale must be one of {', '.join(map(str, SCALES))} (1.0 = full-resolution flow, 0.5 for 4K), "
            f"got {scale!r}."
        )
    return float(scale)


def check_batch_size(batch_size: object) -> int | None:
    """None (automatic) or a positive int."""
    if batch_size is None:
        return None
    if is_bool(batch_size) or not isinstance(batch_size, numbers.Integral) or int(batch_size) < 1:
        raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}.")
    return int(batch_size)


def check_threshold(value: object, name: str) -> float:
    """A detection threshold: a finite number >= 0 (0 disables the detection)."""
    if is_bool(value) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise InvalidInputError(f"{name} must be a finite number >= 0 (0 disables), got {value!r}.")
    return float(value)


# ----------------------------------------------------------------------------------------------- frame rates


def parse_fps(value: object) -> Fraction:
    """A frame rate as an exact, bounded ``Fraction`` in [MIN_FPS, MAX_FPS] with denominator <= 1,000,000.

    Accepts ints, Fractions, numpy numbers, floats and strings (``"24"``, ``"23.976"``, ``"30000/1001"``,
    ``"1e3"``). Strings and floats are read as the decimal they spell (``23.976`` -> 2997/125); a value within
    1e-9 (relative) of a fraction with denominator <= 1001 snaps to it (``30000 / 1001`` as a float gives
    ``Fraction(30000, 1001)``); a longer decimal is rounded to the nearest fraction with denominator
    <= 1,000,000. Text is parsed without ever building huge integers, so ``"1e999999999"`` fails at once."""
    if is_bool(value):
        raise InvalidInputError(f"Cannot read the frame rate {value!r}: {_FPS_HINT}.")
    if isinstance(value, str):
        exact = _parse_fps_text(value)
    elif isinstance(value, numbers.Rational):
        exact = Fraction(int(value.numerator), int(value.denominator))
    elif isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise InvalidInputError(f"Cannot read the frame rate {value!r}: {_FPS_HINT}.")
        exact = Fraction(repr(number))
    else:
        raise InvalidInputError(f"Cannot read the frame rate {value!r} ({type(value).__name__}): {_FPS_HINT}.")
    if exact <= 0:
        raise InvalidInputError(f"A frame rate must be positive, got {value!r}.")
    if not MIN_FPS <= exact <= MAX_FPS:
        raise InvalidInputError(
            f"The frame rate {_short(value)} is out of range: frame rates go from {MIN_FPS} to {MAX_FPS} fps."
        )
    return _bounded_denominator(exact)


def _parse_fps_text(text: str) -> Fraction:
    if len(text) > MAX_FPS_TEXT:
        raise InvalidInputError(f"Cannot read the frame rate {_short(text)}: {_FPS_HINT}.")
    ratio = _RATIO.match(text)
    if ratio:
        numerator, denominator = int(ratio["num"]), int(ratio["den"])
        if denominator == 0:
            raise InvalidInputError(f"Cannot read the frame rate {text!r}: the denominator is 0; {_FPS_HINT}.")
        return Fraction(numerator, denominator)
    decimal = _DECIMAL.match(text)
    if not decimal or not (decimal["int"] or decimal["frac"]):
        raise InvalidInputError(f"Cannot read the frame rate {text!r}: {_FPS_HINT}.")
    exponent = decimal["exp"] or "0"
    if len(exponent.lstrip("+-").lstrip("0")) > 2 or abs(int(exponent)) > _MAX_EXPONENT:
        raise InvalidInputError(
            f"The frame rate {text!r} is out of range: frame rates go from {MIN_FPS} to {MAX_FPS} fps."
        )
    digits = (decimal["int"] or "0") + (decimal["frac"] or "")
    exact = Fraction(int(digits), 10 ** len(decimal["frac"] or "")) * Fraction(10) ** int(exponent)
    return -exact if decimal["sign"] == "-" else exact


def _bounded_denominator(exact: Fraction) -> Fraction:
    """``exact`` itself when its denominator is small, else snapped (see :func:`parse_fps`) or rounded."""
    if exact.denominator <= FPS_SNAP_DENOMINATOR:
        return exact
    snapped = exact.limit_denominator(FPS_SNAP_DENOMINATOR)
    if abs(snapped - exact) <= FPS_SNAP_TOLERANCE * exact:
        return snapped
    return exact if exact.denominator <= MAX_FPS_DENOMINATOR else exact.limit_denominator(MAX_FPS_DENOMINATOR)


def check_fps_ratio(fps_in: Fraction, fps_out: Fraction) -> None:
    """A conversion makes at most MAX_MULTIPLIER output frames per input frame."""
    if fps_out / fps_in > MAX_MULTIPLIER:
        raise InvalidInputError(
            f"fps_out may be at most {MAX_MULTIPLIER} times fps_in, got {format_fps(fps_in)} -> "
            f"{format_fps(fps_out)}; convert in two passes if you really need more."
        )


def format_fps(fps: Fraction) -> str:
    """``24``, ``30000/1001 (= 29.970)``: a bounded frame rate for messages and summaries."""
    return str(fps.numerator) if fps.denominator == 1 else f"{fps} (= {float(fps):.3f})"


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


# ----------------------------------------------------------------------------------------------- frames


def check_frames(frames: object) -> Tensor:
    """``frames`` must be a non-empty [B,H,W,C] batch (C = 1, 3 or 4) of float (0..1) or uint8 (0..255)."""
    if not isinstance(frames, Tensor):
        raise InvalidInputError(f"frames must be a torch.Tensor [B,H,W,C], got {type(frames).__name__}.")
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3, 4):
        raise InvalidInputError(
            f"frames must be a [B,H,W,C] image batch with C = 1, 3 or 4 channels, got shape {tuple(frames.shape)}."
        )
    if frames.shape[0] == 0:
        raise InvalidInputError("Cannot interpolate an empty batch: at least one frame is needed.")
    if frames.shape[1] == 0 or frames.shape[2] == 0:
        raise InvalidInputError(f"Frames have no pixels: shape {tuple(frames.shape)}.")
    check_pixel_type(frames, "frames")
    return frames


def check_pixel_type(frames: Tensor, name: str) -> None:
    if frames.is_complex() or frames.is_sparse or frames.layout != torch.strided:
        raise InvalidInputError(f"{name} must be a dense float (0..1) or uint8 (0..255) tensor, got {frames.dtype}.")
    if not (frames.is_floating_point() or frames.dtype == torch.uint8):
        raise InvalidInputError(f"{name} must be float (0..1) or uint8 (0..255), got {frames.dtype}.")


def check_pixel_values(frames: Tensor, what: str = "input frame") -> None:
    """Refuse NaN/infinite pixels and float frames that are plainly not in 0..1 (e.g. 0..255).

    ``frames`` is one [H,W,C] frame or a [B,H,W,C] batch (scanned one frame at a time, so no temporary the
    size of the clip is made). Values a little outside 0..1 pass: the model sees them clamped."""
    if not frames.is_floating_point():
        return
    batch = frames if frames.ndim == 4 else frames[None]
    bad_finite: list[int] = []
    low, high = math.inf, -math.inf
    for index in range(batch.shape[0]):
        lo, hi = torch.aminmax(batch[index].float())
        lo, hi = float(lo), float(hi)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            bad_finite.append(index)
        else:
            low, high = min(low, lo), max(high, hi)
    if bad_finite:
        shown = ", ".join(map(str, bad_finite[:10])) + (" ..." if len(bad_finite) > 10 else "")
        if frames.ndim == 4:
            label = f"{len(bad_finite)} {what}(s) contain NaN or infinite pixel values (frames {shown})"
        else:
            label = f"{what[:1].upper()}{what[1:]} contains NaN or infinite pixel values"
        raise InvalidInputError(f"{label}; fix the node or file that produced them.")
    if high > PIXEL_HIGH:
        raise InvalidInputError(
            f"Float frames must hold values in 0..1, but the {what} reaches {high:g}: it looks like 0..255 "
            "values; divide by 255 (or pass a uint8 tensor)."
        )
    if low < PIXEL_LOW:
        raise InvalidInputError(
            f"Float frames must hold values in 0..1, but the {what} goes down to {low:g}: for -1..1 values use "
            "(frames + 1) / 2."
        )
