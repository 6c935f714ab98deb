"""Where the loader node finds checkpoints, and the names it shows for them.

Three places are searched, in this order:

* ComfyUI's model folder ``rife`` (``models/rife`` plus any ``rife:`` entry of ``extra_model_paths.yaml``),
  names as ComfyUI lists them (``flownet_v4.25.pkl``, ``rifev4_25/flownet.pkl``);
* ComfyUI's own ``frame_interpolation`` folder (``models/frame_interpolation``, where ComfyUI core keeps the RIFE
  files Comfy-Org publishes), under the plain file name as core's loader lists it (``rife_v4.25.safetensors``); the
  pack registers that folder on a ComfyUI too old to have it. A name already listed from ``rife`` wins;
* the pack's ``ckpt/`` folder, as ``ckpt/<name>``; a directory there holding ``flownet.pkl`` (the original
  ``ckpt/rifev4_25/`` layout) is one entry.

The official checkpoints that :mod:`rife.download` can fetch are listed under their mirror file name
(``flownet_v4.25.pkl``) even before they are on disk, so a shared workflow that names one validates; the loader
downloads it into the ``rife`` folder only when asked to.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import folder_paths

from ..rife import CheckpointError
from ..rife.download import CHECKPOINTS, RECOMMENDED_VERSION, VERSIONS, download_checkpoint
from ..rife.loading import CHECKPOINT_SUFFIXES, PREFERRED_NAMES

FOLDER = "rife"
CORE_FOLDER = "frame_interpolation"
CORE_RECOMMENDED = "rife_v4.25.safetensors"  # Comfy-Org's file of the recommended version
PACK_PREFIX = "ckpt/"
PACK_CKPT_DIR = Path(__file__).resolve().parents[1] / "ckpt"
OFFICIAL_WEIGHTS = "https://github.com/hzwer/Practical-RIFE#trained-model"
CORE_WEIGHTS = "https://huggingface.co/Comfy-Org/frame_interpolation"


def register_model_folders() -> None:
    """Register ``models/rife`` with ComfyUI (after any paths ``extra_model_paths.yaml`` gave the same name), and
    ``models/frame_interpolation`` where ComfyUI does not have it yet (it came with core's RIFE node, 2026).

    ComfyUI registers a new folder name with no extension filter (every file listed), so the checkpoint
    extensions are set here when the entry has none."""
    for folder in (FOLDER, CORE_FOLDER):
        if folder == FOLDER or folder not in folder_paths.folder_names_and_paths:
            folder_paths.add_model_folder_path(folder, os.path.join(folder_paths.models_dir, folder))
        paths, extensions = folder_paths.folder_names_and_paths[folder]
        if not extensions:
            folder_paths.folder_names_and_paths[folder] = (paths, set(CHECKPOINT_SUFFIXES))


def checkpoint_names() -> list[str]:
    """Every choice of the loader's ``ckpt_name`` combo: checkpoints on disk, then downloadable ones."""
    names = _with_suffix(folder_paths.get_filename_list(FOLDER))
    names += [name for name in _with_suffix(_core_names()) if name not in names]
    names += [PACK_PREFIX + name for name in _pack_entries()]
    on_disk = set(names)
    return names + [CHECKPOINTS[v].filename for v in VERSIONS if CHECKPOINTS[v].filename not in on_disk]


def default_name(names: list[str]) -> str:
    """The recommended RIFE 4.25: core's file where it is listed, else the official one (on disk or downloadable)."""
    return CORE_RECOMMENDED if CORE_RECOMMENDED in names else CHECKPOINTS[RECOMMENDED_VERSION].filename


def resolve(name: str) -> Path | None:
    """The file or directory ``name`` (a ``checkpoint_names()`` entry) stands for, or None when it is missing."""
    for folder in (FOLDER, CORE_FOLDER):
        if folder in folder_paths.folder_names_and_paths:
            found = folder_paths.get_full_path(folder, name)
            if found is not None:
                return Path(found)
    if name.startswith(PACK_PREFIX):
        candidate = (PACK_CKPT_DIR / name.removeprefix(PACK_PREFIX)).resolve()
        if candidate.is_relative_to(PACK_CKPT_DIR.resolve()) and candidate.exists():
            return candidate
    return None


def downloadable_version(name: str) -> str | None:
    """The RIFE version whose mirror file is called ``name``, if :mod:`rife.download` knows one."""
    return next((source.version for source in CHECKPOINTS.values() if source.filename == name), None)


def download(name: str, progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Download the official checkpoint called ``name`` into the first ``rife`` model folder."""
    version = downloadable_version(name)
    if version is None:
        raise CheckpointError(missing_message(name))
    return download_checkpoint(version, download_dir(), progress=progress)


def download_dir() -> Path:
    return Path(folder_paths.get_folder_paths(FOLDER)[0])


def search_folders() -> list[str]:
    """Every folder the loader looks in, for messages."""
    folders = folder_paths.get_folder_paths(FOLDER)
    if CORE_FOLDER in folder_paths.folder_names_and_paths:
        folders += folder_paths.get_folder_paths(CORE_FOLDER)
    return [*folders, str(PACK_CKPT_DIR)]


def missing_message(name: str) -> str:
    """What to do when checkpoint ``name`` is not on disk."""
    message = (
        f"RIFE checkpoint {name!r} was not found. Put RIFE 4.x checkpoints (files ending in "
        f"{', '.join(CHECKPOINT_SUFFIXES)}, or a folder holding flownet.pkl) into one of: "
        f"{'; '.join(search_folders())} (folders that do not exist yet can be created), then refresh ComfyUI "
        f"(press R). The official RIFE 4.x checkpoints are published in the Practical-RIFE README: "
        f"{OFFICIAL_WEIGHTS} (RIFE 4.25 is the recommended one); ComfyUI core's files (rife_v4.25.safetensors, "
        f"rife_v4.26.safetensors, ...) are at {CORE_WEIGHTS} and go into models/{CORE_FOLDER}."
    )
    version = downloadable_version(name)
    if version is not None:
        message += f" Or set download_if_missing to true to download RIFE {version} as {download_dir() / name}."
    return message


def _core_names() -> list[str]:
    if CORE_FOLDER not in folder_paths.folder_names_and_paths:
        return []
    return folder_paths.get_filename_list(CORE_FOLDER)


def _with_suffix(names: list[str]) -> list[str]:
    return [name for name in names if os.path.splitext(name)[1].lower() in CHECKPOINT_SUFFIXES]


def _pack_entries() -> list[str]:
    """Checkpoints under the pack's ``ckpt/``: files, and directories holding ``flownet.pkl`` as one entry.

    Symlinked folders are followed, but each real folder (device, inode) is walked once, so a symlink loop
    or two links to one folder list every checkpoint once."""
    if not PACK_CKPT_DIR.is_dir():
        return []
    entries: list[str] = []
    seen: set[tuple[int, int]] = set()
    for directory, subdirs, files in os.walk(PACK_CKPT_DIR, followlinks=True):
        identity = _identity(directory)
        if identity is None or identity in seen:
            subdirs.clear()
            continue
        seen.add(identity)
        subdirs.sort(key=lambda name: (os.path.islink(os.path.join(directory, name)), name))  # real names first
        relative = Path(directory).relative_to(PACK_CKPT_DIR)
        preferred = next((name for name in PREFERRED_NAMES if name in files), None)
        if preferred is not None and relative != Path("."):
            entries.append(relative.as_posix())
        for name in sorted(files):
            if os.path.splitext(name)[1].lower() not in CHECKPOINT_SUFFIXES:
                continue
            if name == preferred and relative != Path("."):
                continue  # the directory entry stands for it
            entries.append((relative / name).as_posix())
    return entries


def _identity(path: str) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino
