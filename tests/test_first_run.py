"""The command line without --model on a machine that has no checkpoint yet: it says so, fetches the recommended
one from the (local, 127.0.0.1) release mirror into ckpt/rifev4_25, and runs; when no source works it stops before
creating the output folder."""

from __future__ import annotations

import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rife import download
from rife.cli import main
from rife.download import CheckpointSource

FETCH_LINE = (
    "No checkpoint at ckpt/rifev4_25 and no --model given: downloading the recommended RIFE 4.25 first "
    "(as `python -m rife download 4.25` does)"
)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:
        pass


@pytest.fixture
def mirror(tmp_path_factory, monkeypatch, real_pkl):
    """A release mirror on 127.0.0.1 serving the real checkpoint as flownet_v4.25.pkl (pinned to its digest); no
    package-index source (tests/conftest.py), so nothing but this server can be asked."""
    root = tmp_path_factory.mktemp("mirror")
    shutil.copyfile(real_pkl, root / "flownet_v4.25.pkl")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "*")
    monkeypatch.setenv(download.BASE_URL_ENV, f"http://127.0.0.1:{httpd.server_address[1]}")
    sha = download.file_sha256(real_pkl)
    monkeypatch.setitem(download.CHECKPOINTS, "4.25", CheckpointSource("4.25", "flownet_v4.25.pkl", sha))
    yield root
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def fresh_folder(tmp_path, monkeypatch, frames_dir):
    """The current folder of a user with three real frames in ``in/`` and no checkpoint anywhere."""
    (tmp_path / "in").mkdir()
    for i in range(3):
        shutil.copyfile(frames_dir / f"{i:07d}.png", tmp_path / "in" / f"{i:07d}.png")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("rife.cli.__file__", str(tmp_path / "elsewhere" / "rife" / "cli.py"))  # no ckpt beside it
    return tmp_path


def test_missing_default_model_is_fetched_first_then_used(mirror, fresh_folder, capsys):
    assert main(["--img", "in", "--output", "out", "--multi", "3"]) == 0
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert lines[0] == FETCH_LINE  # said before anything else
    target = fresh_folder / "ckpt" / "rifev4_25" / "flownet.pkl"
    assert lines[1].startswith("RIFE 4.25: flownet_v4.25.pkl from the release mirror ")
    assert lines[1].endswith(f"(sha256 verified), saved as {target}")
    assert target.read_bytes() == (mirror / "flownet_v4.25.pkl").read_bytes()
    assert "ckpt/rifev4_25" in out
    assert sorted(p.name for p in (fresh_folder / "out").iterdir()) == [f"{i:07d}.png" for i in range(7)]

    # The second run finds it and downloads nothing.
    (mirror / "flownet_v4.25.pkl").unlink()
    assert main(["--img", "in", "--output", "out", "--overwrite"]) == 0
    assert "downloading" not in capsys.readouterr().err


def test_no_source_leaves_no_output_folder(mirror, fresh_folder, capsys):
    (mirror / "flownet_v4.25.pkl").unlink()  # the mirror answers 404
    assert main(["--img", "in", "--output", "out"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == FETCH_LINE
    assert len(lines) == 2
    assert lines[1].startswith("error: No checkpoint at ckpt/rifev4_25, and downloading one failed: Could not download")
    assert lines[1].endswith(" Or pass --model PATH.")
    assert not (fresh_folder / "out").exists()
    assert not (fresh_folder / "ckpt" / "rifev4_25" / "flownet.pkl").exists()


def test_default_model_folder_in_the_current_folder_is_used(fresh_folder, real_weights, capsys):
    (fresh_folder / "ckpt" / "rifev4_25").mkdir(parents=True)
    (fresh_folder / "ckpt" / "rifev4_25" / "flownet.safetensors").symlink_to(real_weights)
    assert main(["--img", "in"]) == 0
    out, err = capsys.readouterr()
    assert "downloading" not in err
    assert "ckpt/rifev4_25/flownet.safetensors" in out
    assert sorted(p.name for p in (fresh_folder / "vid_out").iterdir()) == [f"{i:07d}.png" for i in range(5)]
