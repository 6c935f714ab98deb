"""Folders of numbered frames on disk: listing, lazy reading as model input, atomic writing.

Frames are read with OpenCV (``IMREAD_UNCHANGED``) so 8- and 16-bit PNG and TIFF, JPEG, grayscale and RGBA all
keep their depth and channels. They reach the engine as [H,W,C] float32 tensors in 0..1 (C = 1, 3 or 4, RGB(A)
order) and come back in the same layout and bit depth. Every file is written to a hidden temporary name in the
output folder and renamed into place, so an output file that exists is complete. OpenCV is an optional dependency
(``pip install opencv-python-headless``, the ``cli`` extra); ComfyUI installs never import this module.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import stat
import struct
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from .errors import InvalidInputError
from .outputdir import OutputError as OutputError
from .outputdir import check_not_inputs, check_output_path

FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".jpg": "JPEG", ".jpeg": "JPEG"}
MAX_VALUES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
JPEG_QUALITY = 95
TEMP_SUFFIX = ".rife-tmp"
DECODE_THREADS = 2  # OpenCV decodes without the GIL: two frames at once while the caller loads or waits
READ_AHEAD = 4  # frames decoded ahead of the reader inside FrameFolder.keeping, at most READ_AHEAD_BYTES
READ_AHEAD_BYTES = 64 << 20  # (one frame at least): 4 frames at 720p, 2 at 1080p, 1 at 4K
_NUMBERED = re.compile(r"^\d+$")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class FrameFormat:
    """What every frame of a folder shares: size, channels (1 gray, 3 RGB, 4 RGBA), sample type, file suffix."""

    height: int
    width: int
    channels: int
    dtype: np.dtype
    suffix: str

    @property
    def bits(self) -> int:
        return self.dtype.itemsize * 8

    def describe(self) -> str:
        kind = {1: "gray", 3: "RGB", 4: "RGBA"}[self.channels]
        return f"{self.width}x{self.height} {self.bits}-bit {kind} {FORMATS[self.suffix]}"


def list_frames(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files of ``folder`` sorted by their number (``0000000.png``, ``1.png``, ``12.png`` ...).

    Hidden files and files that are not PNG/TIFF/JPEG are ignored; every image must be named by a number and
    all must share one format. Raises :class:`InvalidInputError` saying what is wrong otherwise."""
    folder = Path(folder)
    if not folder.exists():
        raise InvalidInputError(f"Input folder not found: {folder}")
    if not folder.is_dir():
        raise InvalidInputError(f"Input is not a folder: {folder} (pass the folder that holds the frames)")
    images = [p for p in folder.iterdir() if not p.name.startswith(".") and p.suffix.lower() in FORMATS]
    images = [p for p in images if not p.is_dir()]
    for path in images:
        _check_readable(path)
    if not images:
        raise InvalidInputError(f"No PNG, TIFF or JPEG frames in {folder}")
    formats = sorted({FORMATS[p.suffix.lower()] for p in images})
    if len(formats) > 1:
        raise InvalidInputError(f"Mixed image formats in {folder} ({', '.join(formats)}): keep one format per folder")
    unnumbered = sorted(p.name for p in images if not _NUMBERED.match(p.stem))
    if unnumbered:
        raise InvalidInputError(
            f"Frame names must be numbers like 0000000.png, but {folder} holds {unnumbered[0]!r}"
            + (f" and {len(unnumbered) - 1} more" if len(unnumbered) > 1 else "")
        )
    images.sort(key=lambda p: (int(p.stem), p.name))
    for previous, current in itertools.pairwise(images):
        if int(previous.stem) == int(current.stem):
            raise InvalidInputError(
                f"Two frames have the number {int(current.stem)}: {previous.name} and {current.name}"
            )
    return images


def _check_readable(path: Path) -> None:
    """A frame that is a broken link, not a file or unreadable is an error, never silently skipped."""
    try:
        status = path.stat()
    except OSError as exc:
        if path.is_symlink():
            raise InvalidInputError(
                f"Frame {path} is a broken symbolic link (it points to {os.readlink(path)!r}, which "
                f"cannot be opened: {exc.strerror or exc}); fix or remove it"
            ) from exc
        raise InvalidInputError(f"Cannot read frame {path}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(status.st_mode):
        raise InvalidInputError(f"Frame {path} is not a regular file; remove it from the input folder")
    if not os.access(path, os.R_OK):
        raise InvalidInputError(f"Cannot read frame {path}: permission denied")


def read_image(path: Path) -> np.ndarray:
    """Pixels of an image file as [H,W,C] uint8/uint16 (C = 1, 3 or 4; RGB(A) channel order)."""
    try:
        data = np.fromfile(path, dtype=np.uint8)  # np.fromfile + imdecode also work for non-ASCII paths on Windows
    except OSError as exc:
        raise InvalidInputError(f"Cannot read {path}: {exc.strerror or exc}") from exc
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise InvalidInputError(f"Cannot decode {path}: the file is empty, damaged or not an image")
    if image.dtype not in MAX_VALUES:
        raise InvalidInputError(f"{path} has {image.dtype} samples; only 8- and 16-bit images are supported")
    if image.ndim == 2:
        image = image[:, :, None]
    if FORMATS[path.suffix.lower()] != "TIFF":  # OpenCV turns TIFF frames upright itself, JPEG and PNG not
        image = _apply_orientation(image, exif_orientation(path))
    channels = image.shape[2]
    if channels == 3:
        image = image[:, :, ::-1]
    elif channels == 4:
        image = image[:, :, [2, 1, 0, 3]]
    elif channels != 1:
        raise InvalidInputError(f"{path} has {channels} channels; only gray, RGB and RGBA images are supported")
    return np.ascontiguousarray(image)


def _png_size(path: Path) -> tuple[int, int] | None:
    """(height, width) from a PNG's IHDR chunk without decoding it; None when the header is not readable."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(24)
    except OSError:
        return None
    if len(head) < 24 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return height, width


class FrameFolder(Sequence):
    """The frames of a folder as a lazy sequence: ``folder[i]`` reads file ``i`` and returns it as an
    [H,W,C] float32 tensor in 0..1 (what :func:`rife.stream_plan` consumes). Nothing is kept in memory.

    The first frame fixes the :class:`FrameFormat`; PNG sizes are all checked up front from their headers, and
    any frame that differs from the first raises :class:`InvalidInputError` when it is read."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.paths = list_frames(self.folder)
        self._kept: dict[int, torch.Tensor] = {}  # decoded frames waiting for their next read (see keeping)
        self._keep_budget = 0
        self._pool: ThreadPoolExecutor | None = None  # decodes ahead of the reader, inside keeping
        self._ahead: dict[int, Future[torch.Tensor]] = {}  # frame index -> its decode, not read yet
        first = read_image(self.paths[0])
        self.format = FrameFormat(
            height=first.shape[0],
            width=first.shape[1],
            channels=first.shape[2],
            dtype=first.dtype,
            suffix=self.paths[0].suffix.lower(),
        )
        if self.format.suffix == ".png":
            self._check_png_sizes()

    def _check_png_sizes(self) -> None:
        expected = (self.format.height, self.format.width)
        for path in self.paths[1:]:
            size = _png_size(path)
            if size is not None and exif_orientation(path) >= 5:  # stored on its side: upright size is swapped
                size = size[::-1]
            if size is not None and size != expected:
                raise InvalidInputError(self._size_message(path, size))

    def _size_message(self, path: Path, size: tuple[int, ...]) -> str:
        return (
            f"All frames must have the same size: {path.name} is {size[1]}x{size[0]} but {self.paths[0].name} "
            f"is {self.format.width}x{self.format.height}"
        )

    def __len__(self) -> int:
        return len(self.paths)

    def copyable(self, index: int) -> bool:
        """Whether frame ``index`` can be copied byte for byte into the output (see :func:`stored_as_written`)."""
        return stored_as_written(self.paths[index], self.format.channels)

    @contextlib.contextmanager
    def keeping(self, budget_bytes: int) -> Iterator[None]:
        """Within the block, frames are decoded ahead of the reader on :data:`DECODE_THREADS` threads (up to
        :data:`READ_AHEAD` frames, from the first one on entry, so they decode while the caller loads a model),
        and frames read are also kept, up to ``budget_bytes`` in all, so that the next read of each (the
        engine's, after the scene-detection pass) takes it without decoding the file again. A kept frame is
        handed out once and then dropped; memory stays within the budget plus the read-ahead frames."""
        self._keep_budget = budget_bytes
        pool = self._pool = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="rife-decode")
        try:
            self._read_ahead(0)
            yield
        finally:
            self._pool = None
            pool.shutdown(wait=True, cancel_futures=True)
            ahead, self._ahead = self._ahead, {}
            for index, future in sorted(ahead.items()):  # decoded but not read yet: kept for the engine
                if not future.cancelled() and future.exception() is None:
                    self._keep(index, future.result())
            self._keep_budget = 0

    def __getitem__(self, index: int) -> torch.Tensor:  # type: ignore[override]
        frame = self._kept.pop(index, None)
        if frame is None:
            future = self._ahead.pop(index, None)
            frame = self._decode(index) if future is None else future.result()  # a decode error raises here
            self._keep(index, frame)
        if self._pool is not None:
            self._read_ahead(index + 1)
        return frame

    def _keep(self, index: int, frame: torch.Tensor) -> None:
        if sum(f.nbytes for f in self._kept.values()) + frame.nbytes <= self._keep_budget:
            self._kept[index] = frame

    def _read_ahead(self, start: int) -> None:
        fmt = self.format
        frame_bytes = fmt.height * fmt.width * fmt.channels * 4  # float32
        count = max(1, min(READ_AHEAD, READ_AHEAD_BYTES // frame_bytes))
        for index in range(start, min(start + count, len(self.paths))):
            if index not in self._kept and index not in self._ahead:
                self._ahead[index] = self._pool.submit(self._decode, index)

    def _decode(self, index: int) -> torch.Tensor:
        path = self.paths[index]
        image = read_image(path)
        fmt = self.format
        if image.shape[:2] != (fmt.height, fmt.width):
            raise InvalidInputError(self._size_message(path, image.shape[:2]))
        if image.shape[2] != fmt.channels or image.dtype != fmt.dtype:
            kind = {1: "gray", 3: "RGB", 4: "RGBA"}[image.shape[2]]
            raise InvalidInputError(
                f"All frames must share one pixel format: {path.name} is {image.dtype.itemsize * 8}-bit {kind} "
                f"but {self.paths[0].name} is {fmt.describe()}"
            )
        return torch.from_numpy(image.astype(np.float32) / np.float32(MAX_VALUES[fmt.dtype]))


def to_image(frame: torch.Tensor, fmt: FrameFormat) -> np.ndarray:
    """Engine output [H,W,C] float (0..1, RGB(A)) -> pixels for ``fmt`` in OpenCV order (BGR(A), 2-D for gray),
    rounded straight to the format's depth (16-bit frames never pass through 8 bits)."""
    if tuple(frame.shape) != (fmt.height, fmt.width, fmt.channels):
        raise InvalidInputError(f"Frame of shape {tuple(frame.shape)} does not match the folder's {fmt.describe()}")
    values = frame.detach().to("cpu", torch.float32).numpy()
    if not np.isfinite(values).all():
        raise InvalidInputError("The model produced NaN or infinite pixels; nothing was written for this frame")
    top = MAX_VALUES[fmt.dtype]
    image = np.rint(np.clip(values, 0.0, 1.0) * np.float32(top)).astype(fmt.dtype)
    if fmt.channels == 1:
        return image[:, :, 0]
    order = [2, 1, 0] if fmt.channels == 3 else [2, 1, 0, 3]
    return np.ascontiguousarray(image[:, :, order])


def frame_path(folder: Path, index: int, suffix: str) -> Path:
    """``folder/0000012.png``: 7-digit numbering like the original tool (more digits past 9,999,999)."""
    return folder / f"{index:07d}{suffix}"


def _temp_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{TEMP_SUFFIX}")


def _replace_atomically(target: Path, fill) -> None:
    """Write ``target`` through a hidden temp file in the same folder (``fill(temp_path)``), then rename."""
    temp = _temp_path(target)
    try:
        fill(temp)
        os.replace(temp, target)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise OutputError(f"Cannot write {target}: {exc.strerror or exc}") from exc
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_image(target: Path, image: np.ndarray) -> None:
    """Encode ``image`` (OpenCV layout) in the format of ``target``'s suffix and write it atomically."""
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if FORMATS[target.suffix.lower()] == "JPEG" else []
    ok, encoded = cv2.imencode(target.suffix.lower(), image, params)
    if not ok:
        raise OutputError(f"OpenCV could not encode {target.name}")
    _replace_atomically(target, lambda temp: encoded.tofile(temp))


def copy_frame(source: Path, target: Path) -> None:
    """Copy a source frame's file byte for byte (exact pixels, no re-encoding) and atomically."""
    _replace_atomically(target, lambda temp: shutil.copyfile(source, temp))


def existing_frames(folder: Path) -> list[Path]:
    """Numbered image files already in ``folder`` (what a run would overwrite or mix with)."""
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if p.suffix.lower() in FORMATS and _NUMBERED.match(p.stem) and p.is_file()
    )


def prepare_output(folder: Path, *, input_folder: Path, overwrite: bool, inputs: Sequence[Path] = ()) -> list[Path]:
    """Create ``folder``, check that it can be written, and return the frames an earlier run left there.

    Without ``overwrite`` such frames stop the run before any work (two runs never mix); with it the caller
    deletes them (:func:`remove_frames`) once the run is ready to write, except that a frame which is one of
    ``inputs`` (a hard link or symlink to an input frame) stops the run. Leftover temp files of a killed run are
    removed, so call this while holding the folder's lock (:func:`rife.outputdir.locked_folder`)."""
    check_output_path(folder, input_folder=input_folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test{TEMP_SUFFIX}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"Cannot write to the output folder {folder}: {exc.strerror or exc}") from exc
    for stale in folder.glob(f".*{TEMP_SUFFIX}"):
        stale.unlink(missing_ok=True)
    earlier = existing_frames(folder)
    if earlier and not overwrite:
        raise OutputError(
            f"The output folder {folder} already holds {len(earlier)} frames ({earlier[0].name} ...); "
            "pass --overwrite to replace them, or choose an empty --output folder"
        )
    check_not_inputs(earlier, inputs)
    return earlier


def remove_frames(paths: list[Path]) -> None:
    """Delete the frames of an earlier run (see :func:`prepare_output`)."""
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise OutputError(f"Cannot delete the earlier frame {path}: {exc.strerror or exc}") from exc


# ------------------------------------------------------------------------------------------------ how frames look

# PNG colour types (IHDR byte 25) that our writer produces for 1, 3 and 4 channels: gray, RGB, RGBA.
_PNG_COLOUR_TYPES = {0: 1, 2: 3, 6: 4}
_EXIF_ORIENTATION = 0x0112


def exif_orientation(path: Path) -> int:
    """The EXIF orientation (1..8) of a JPEG, PNG (``eXIf``) or TIFF frame; 1 (as stored) when absent."""
    readers = {"JPEG": _jpeg_exif_block, "PNG": _png_exif_block, "TIFF": lambda handle: handle.read(1 << 16)}
    reader = readers.get(FORMATS.get(path.suffix.lower(), ""))
    if reader is None:
        return 1
    try:
        with open(path, "rb") as handle:
            tiff = reader(handle)
    except OSError:
        return 1
    value = _tiff_orientation(tiff) if tiff else None
    return value if value in range(1, 9) else 1


def _png_exif_block(handle) -> bytes | None:
    """The data of a PNG's ``eXIf`` chunk (a TIFF structure), looking only at the chunks before the image."""
    if handle.read(8) != _PNG_SIGNATURE:
        return None
    for _ in range(64):
        header = handle.read(8)
        if len(header) < 8 or header[4:] in (b"IDAT", b"IEND"):
            return None
        length = struct.unpack(">I", header[:4])[0]
        if header[4:] == b"eXIf":
            return handle.read(min(length, 1 << 16))
        handle.seek(length + 4, os.SEEK_CUR)  # data and CRC
    return None


def _jpeg_exif_block(handle) -> bytes | None:
    """The TIFF structure inside a JPEG's ``Exif`` APP1 segment, scanning only the header segments."""
    if handle.read(2) != b"\xff\xd8":
        return None
    for _ in range(64):  # markers before the image data; a real file has a handful
        marker = handle.read(4)
        if len(marker) < 4 or marker[0] != 0xFF or marker[1] in (0xDA, 0xD9):
            return None
        length = struct.unpack(">H", marker[2:])[0]
        if length < 2:
            return None
        body = handle.read(length - 2)
        if marker[1] == 0xE1 and body.startswith(b"Exif\x00\x00"):
            return body[6:]
    return None


def _tiff_orientation(tiff: bytes) -> int | None:
    """Tag 0x0112 of the first IFD of a TIFF structure (little or big endian)."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return None
    (offset,) = struct.unpack(order + "I", tiff[4:8])
    if offset + 2 > len(tiff):
        return None
    (count,) = struct.unpack(order + "H", tiff[offset : offset + 2])
    for index in range(min(count, 512)):
        entry = tiff[offset + 2 + 12 * index : offset + 14 + 12 * index]
        if len(entry) < 12:
            return None
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag == _EXIF_ORIENTATION and kind == 3:  # SHORT
            return struct.unpack(order + "H", entry[8:10])[0]
    return None


_UPRIGHT = {  # EXIF orientation -> what turns the stored [H,W,C] pixels upright (as Pillow's exif_transpose)
    2: lambda x: x[:, ::-1],  # mirrored left-right
    3: lambda x: x[::-1, ::-1],  # rotated 180
    4: lambda x: x[::-1],  # mirrored top-bottom
    5: lambda x: x.transpose(1, 0, 2),  # transposed
    6: lambda x: np.rot90(x, -1),  # needs 90 degrees clockwise
    7: lambda x: x.transpose(1, 0, 2)[::-1, ::-1],  # transversed
    8: lambda x: np.rot90(x, 1),  # needs 90 degrees counter-clockwise
}


def _apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Pixels [H,W,C] turned upright as a viewer shows them for EXIF ``orientation`` (1 = unchanged)."""
    turn = _UPRIGHT.get(orientation)
    return image if turn is None else np.ascontiguousarray(turn(image))


def stored_as_written(path: Path, channels: int) -> bool:
    """True when ``path``'s file looks exactly as our writer would store its pixels (upright, same colour
    model), so it can be copied byte for byte; a frame with an EXIF rotation, a palette or gray+alpha is
    re-encoded instead, so every frame of one output looks alike in any viewer."""
    if exif_orientation(path) != 1:
        return False
    if path.suffix.lower() != ".png":
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(26)
    except OSError:
        return False
    return head.startswith(_PNG_SIGNATURE) and _PNG_COLOUR_TYPES.get(head[25]) == channels
