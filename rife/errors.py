"""Exceptions raised by the interpolation core.

Every failure a user can cause (a bad checkpoint, bad frames, bad parameters) is one of these, with a
message that says what to do; nothing deep inside torch should reach the user as a raw traceback.
"""

from __future__ import annotations


class RIFEError(Exception):
    """Base class of every error this package raises on purpose."""


class CheckpointError(RIFEError):
    """A checkpoint file is missing, unreadable, unsafe, or not a RIFE 4.x layout we know."""


class InvalidInputError(RIFEError, ValueError):
    """Frames or parameters that cannot be interpolated (wrong shape, count, range or option)."""


class OutOfMemory(RIFEError, MemoryError):
    """Even one in-between at a time does not fit in the device's memory."""


class VideoError(RIFEError):
    """A video file cannot be read (not a video, no video stream, damaged) or written."""
