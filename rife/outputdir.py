"""The output folder of a command-line run: identity checks against the input, and a lock for the run.

Paths are compared by what they are on disk (device and inode), not by how they are spelled, so an output
folder that is the input reached through a symlink, a bind mount, ``..`` or another letter case is recognised,
and no file that is one of the input frames (a hard link or symlink to it) is ever deleted or replaced.
One run at a time writes a folder: an exclusive lock on ``.rife-lock`` inside it refuses a second writer.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import RIFEError

LOCK_NAME = ".rife-lock"


class OutputError(RIFEError):
    """The output folder cannot be created, written or locked, or it would destroy the input."""


class FolderBusy(OutputError):
    """Another run is writing the same output folder."""


def identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of what ``path`` points to; None when it does not exist."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OutputError(_path_problem(path, exc)) from exc
    return status.st_dev, status.st_ino


def _path_problem(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return f"The path {path} is a loop of symbolic links that never reaches a folder; choose another path"
    return f"Cannot write to the output folder {path}: {exc.strerror or exc}"


def check_output_path(folder: Path, *, input_folder: Path) -> None:
    """Refuse an output that is a file, a symlink loop, or the input folder under another name (before any
    work, creating nothing)."""
    found = identity(folder)
    if found is None:
        if folder.is_symlink():
            raise OutputError(f"The output path {folder} is a symbolic link to a missing folder; choose another")
        return
    if not folder.is_dir():
        raise OutputError(f"The output path {folder} is a file, not a folder; choose another --output")
    if found == identity(input_folder):
        alias = "" if folder == input_folder else f" is {input_folder} on disk"
        raise OutputError(f"The output folder is the input folder ({folder}{alias}); choose another --output")


def check_not_inputs(paths: Sequence[Path], inputs: Sequence[Path]) -> None:
    """Refuse to delete or replace ``paths`` when one of them is (by identity) one of the input frames."""
    wanted = {identity(path): path for path in inputs}
    for path in paths:
        source = wanted.get(identity(path))
        if source is not None:
            raise OutputError(
                f"{path} is the same file as the input frame {source} (a hard link or symbolic link): "
                "replacing it would destroy the input; choose another --output"
            )


@contextlib.contextmanager
def locked_folder(folder: Path) -> Iterator[bool]:
    """Create ``folder`` if needed and hold an exclusive lock on it for the ``with`` block.

    Yields whether the folder was created here. A second run gets :class:`FolderBusy` at once. On exit the
    lock file is removed, and a folder created here that is still empty is removed too (a run that failed
    before its first frame leaves nothing behind)."""
    created = identity(folder) is None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot create the output folder {folder}: {exc.strerror or exc}") from exc
    lock = folder / LOCK_NAME
    handle = _acquire(lock, folder)
    try:
        yield created
    finally:
        _release_and_remove(handle, lock)
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only succeeds when empty


def _acquire(lock: Path, folder: Path) -> int:
    """Open and lock ``lock``; retried when another run removed the file between our open and our lock."""
    for _ in range(10):
        try:
            handle = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"Cannot write to the output folder {folder}: {exc.strerror or exc}") from exc
        if not _try_lock(handle):
            os.close(handle)
            raise FolderBusy(
                f"Another run is writing to {folder} right now; wait for it to finish or choose another --output"
            )
        try:
            same = os.fstat(handle).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(handle, 0)
            os.write(handle, f"{os.getpid()}\n".encode())
            return handle
        _release(handle)  # the file we locked was removed by a finishing run: lock the new one
    raise FolderBusy(f"Could not lock the output folder {folder}: other runs keep replacing {LOCK_NAME}")


if sys.platform == "win32":
    import msvcrt

    def _try_lock(handle: int) -> bool:
        try:
            msvcrt.locking(handle, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _release(handle: int) -> None:
        with contextlib.suppress(OSError):
            os.lseek(handle, 0, os.SEEK_SET)
            msvcrt.locking(handle, msvcrt.LK_UNLCK, 1)
        os.close(handle)

    def _release_and_remove(handle: int, lock: Path) -> None:
        _release(handle)  # Windows cannot delete an open file
        with contextlib.suppress(OSError):
            lock.unlink()

else:
    import fcntl

    def _try_lock(handle: int) -> bool:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                return False
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                return True  # a file system without locks (some network shares): the run goes on unlocked
            raise
        return True

    def _release(handle: int) -> None:
        os.close(handle)  # closing the descriptor drops the flock

    def _release_and_remove(handle: int, lock: Path) -> None:
        with contextlib.suppress(OSError):
            lock.unlink()  # before the release, so no other run locks a file that is about to vanish
        _release(handle)
