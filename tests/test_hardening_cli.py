"""Hardening II through the command line as a user runs it: ``python -m rife`` in a real subprocess.

Classes of issue 16 covered here: the output folder is the input by another path (data loss), frames linked to
the inputs, paths that are loops or broken links, two runs on one folder, Ctrl-C (twice, and during start-up),
originals and in-betweens that must look alike (EXIF rotation, palette, gray+alpha), and wrong option values
that must exit 2 before any work.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[1]
LOCK = ".rife-lock"


def rife_cli(*args: object, threads: int = 1, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rife", *map(str, args)],
        cwd=REPO,
        env=_env(threads),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _env(threads: int) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}


def error_line(result: subprocess.CompletedProcess, status: int) -> str:
    """The one ``error: ...`` line of a failed run (no traceback, nothing else on stderr)."""
    assert result.returncode == status, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def write_frames(folder: Path, count: int = 3, height: int = 24, width: int = 40, suffix: str = ".png") -> list[Path]:
    """``count`` frames of a bright square moving right on a gradient."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        image = np.zeros((height, width, 3), np.uint8)
        image[:, :, 1] = np.linspace(0, 200, width, dtype=np.uint8)
        image[height // 3 : height // 3 + 8, 4 + 4 * index : 12 + 4 * index] = 255
        path = folder / f"{index:07d}{suffix}"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def assert_complete_frames(folder: Path) -> list[Path]:
    """Every numbered frame decodes, no temp or lock file is left; returns the frames."""
    names = sorted(p.name for p in folder.iterdir())
    assert not [n for n in names if n.startswith(".")], names
    frames = sorted(folder.glob("*.png"))
    for frame in frames:
        assert cv2.imread(str(frame), cv2.IMREAD_UNCHANGED) is not None, frame
    return frames


# ------------------------------------------------------------------------------------------------ 1: aliases


def _alias_symlink(tmp_path: Path, inp: Path) -> Path:
    (tmp_path / "alias").symlink_to(inp, target_is_directory=True)
    return tmp_path / "alias"


def _alias_symlinked_parent(tmp_path: Path, inp: Path) -> Path:
    (tmp_path / "parent").symlink_to(tmp_path, target_is_directory=True)
    return tmp_path / "parent" / "in"


def _alias_dotdot(tmp_path: Path, inp: Path) -> Path:
    (inp / "sub").mkdir()
    return inp / "sub" / ".." / ".." / "in"


ALIASES = {"symlink_to_folder": _alias_symlink, "symlinked_parent": _alias_symlinked_parent, "dotdot": _alias_dotdot}


@pytest.mark.parametrize("alias", list(ALIASES))
def test_output_that_is_the_input_by_another_path_is_refused(alias: str, tmp_path: Path) -> None:
    inp = tmp_path / "in"
    write_frames(inp)
    before = snapshot(inp)
    out = ALIASES[alias](tmp_path, inp)
    result = rife_cli("--img", inp, "--output", out, "--overwrite", "--model", tmp_path / "never-read.pkl")
    assert "The output folder is the input folder" in error_line(result, 1)
    assert snapshot(inp) == before


def test_bind_mounted_input_is_refused(tmp_path: Path) -> None:
    inp, alias = tmp_path / "in", tmp_path / "alias"
    write_frames(inp)
    alias.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(inp), str(alias)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"mount --bind is not permitted here: {mounted.stderr.decode().strip()}")
    try:
        before = snapshot(inp)
        result = rife_cli("--img", inp, "--output", alias, "--overwrite", "--model", tmp_path / "never-read.pkl")
        assert "The output folder is the input folder" in error_line(result, 1)
        assert snapshot(inp) == before
    finally:
        subprocess.run(["umount", str(alias)], check=True)


@pytest.mark.parametrize("link", ["hard_link_in_output", "input_is_symlink_into_output"])
def test_output_frames_that_are_input_frames_are_never_replaced(link: str, tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    if link == "hard_link_in_output":
        frames = write_frames(inp)
        out.mkdir()
        for frame in frames:
            os.link(frame, out / frame.name)
    else:  # the input frames live in the output folder of an earlier run and are linked from the input folder
        frames = write_frames(out)
        inp.mkdir()
        for frame in frames:
            (inp / frame.name).symlink_to(frame)
    before = {p.name: p.read_bytes() for p in frames}
    result = rife_cli("--img", inp, "--output", out, "--overwrite", "--model", tmp_path / "never-read.pkl")
    assert "is the same file as the input frame" in error_line(result, 1)
    assert {p.name: p.read_bytes() for p in frames} == before
    assert not (out / LOCK).exists()


def test_output_inside_the_input_folder_through_dotdot_works(real_weights: Path, tmp_path: Path) -> None:
    inp = tmp_path / "in"
    write_frames(inp)
    before = snapshot(inp)
    out = inp / "x" / ".." / "result"
    result = rife_cli("--img", inp, "--output", out, "--model", real_weights)
    assert result.returncode == 0, result.stderr
    assert len(assert_complete_frames(inp / "result")) == 5
    assert snapshot(inp) == before


# ------------------------------------------------------------------------------------------------ 6: paths


def test_output_path_that_is_a_symlink_loop(tmp_path: Path) -> None:
    inp = tmp_path / "in"
    write_frames(inp)
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    for out in (tmp_path / "a", tmp_path / "a" / "sub"):
        result = rife_cli("--img", inp, "--output", out, "--model", tmp_path / "never-read.pkl")
        line = error_line(result, 1)
        assert "loop of symbolic links" in line or "Cannot write to the output folder" in line, line


def test_broken_symlink_frame_is_an_error_not_a_gap(tmp_path: Path) -> None:
    inp = tmp_path / "in"
    write_frames(inp)
    (inp / "0000003.png").symlink_to(tmp_path / "gone.png")
    result = rife_cli("--img", inp, "--output", tmp_path / "out", "--model", tmp_path / "never-read.pkl")
    line = error_line(result, 1)
    assert "0000003.png is a broken symbolic link" in line, line
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ 7 + 8: lock, Ctrl-C


def _wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_second_writer_is_refused_and_double_ctrl_c_exits_130(real_weights: Path, tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    write_frames(inp, count=8, height=320, width=320)  # 449 frames: far longer than the second run's start-up
    first = subprocess.Popen(
        [sys.executable, "-m", "rife", "--img", inp, "--output", out, "--model", real_weights, "--multi", "64"],
        cwd=REPO,
        env=_env(threads=2),  # two worker threads: what a second Ctrl-C used to abort (SIGABRT)
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: (out / "0000001.png").exists() or first.poll() is not None)
        assert first.poll() is None, first.communicate()
        second = rife_cli("--img", inp, "--output", out, "--model", real_weights, "--overwrite")
        assert "Another run is writing to" in error_line(second, 1)
        assert first.poll() is None, "the first run must still be running"
        first.send_signal(signal.SIGINT)
        time.sleep(0.05)
        first.send_signal(signal.SIGINT)
        _, stderr = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, (first.returncode, stderr)
    assert "Traceback" not in stderr and "terminate called" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cancelled: "), stderr
    written = assert_complete_frames(out)
    assert f"{len(written)} of 449 frames were written" in lines[0]


def _handles_sigint(pid: int) -> bool:
    """Python has installed its SIGINT handler (bit 2 of SigCgt in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGINT - 1)))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the signal mask from /proc (Linux)")
def test_ctrl_c_during_start_up_is_one_line(tmp_path: Path) -> None:
    inp = tmp_path / "in"
    write_frames(inp)
    process = subprocess.Popen(
        [sys.executable, "-m", "rife", "--img", inp, "--output", tmp_path / "out", "--model", tmp_path / "none.pkl"],
        cwd=REPO,
        env=_env(threads=1),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: _handles_sigint(process.pid) or process.poll() is not None, timeout=30)
        time.sleep(0.2)  # inside the imports (torch takes a second or more)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, (process.returncode, stderr)
    assert stderr.strip() == "error: cancelled", stderr
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ 10: looks


def _jpeg_with_orientation(folder: Path, orientation: int) -> None:
    folder.mkdir()
    for index in range(3):
        image = np.zeros((24, 40, 3), np.uint8)
        image[4:12, 4 + 6 * index : 12 + 6 * index] = (255, 200, 0)
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(image).save(folder / f"{index:07d}.jpg", quality=95, exif=exif)


def _png_in_mode(folder: Path, mode: str) -> None:
    folder.mkdir()
    for index in range(3):
        image = np.zeros((24, 40, 4), np.uint8)
        image[..., 3] = 160
        image[4:12, 4 + 6 * index : 12 + 6 * index] = (250, 120, 10, 255)
        Image.fromarray(image, "RGBA").convert(mode).save(folder / f"{index:07d}.png")


@pytest.mark.parametrize("kind", ["jpeg_rotated_90", "jpeg_mirrored", "palette_png", "gray_alpha_png"])
def test_every_output_frame_looks_alike(kind: str, real_weights: Path, tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    if kind.startswith("jpeg"):
        _jpeg_with_orientation(inp, 6 if kind == "jpeg_rotated_90" else 2)
    else:
        _png_in_mode(inp, "P" if kind == "palette_png" else "LA")
    result = rife_cli("--img", inp, "--output", out, "--model", real_weights)
    assert result.returncode == 0, result.stderr
    shown = []
    for path in sorted(out.iterdir()):
        with Image.open(path) as image:
            shown.append((image.mode, ImageOps.exif_transpose(image).size))
    assert len(shown) == 5 and len(set(shown)) == 1, shown
    with Image.open(sorted(inp.iterdir())[0]) as original:
        assert shown[0][1] == ImageOps.exif_transpose(original).size  # as the viewer showed the input
    if kind == "jpeg_rotated_90":  # the square moves down the upright frames: originals and in-betweens agree
        rows = [
            np.asarray(ImageOps.exif_transpose(Image.open(p)))[..., 0].mean(1).argmax() for p in sorted(out.iterdir())
        ]
        assert rows == sorted(rows) and rows[0] < rows[-1], rows


# ------------------------------------------------------------------------------------------------ 3 + 11: early checks


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--scene-threshold", "inf"], "--scene-threshold: scene threshold must be a finite number >= 0"),
        (["--fps-in", "1", "--fps-out", "100"], "--fps-out: fps_out may be at most 64 times fps_in"),
        (["--device", "cpu:5"], "--device cpu:5: there is only one cpu device"),
        (["--fps-in", "1e999999999", "--multi", "2"], "--fps-in: The frame rate '1e999999999' is out of range"),
    ],
)
def test_wrong_values_exit_2_before_any_work(flags: list[str], expected: str, tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    write_frames(inp)
    result = rife_cli("--img", inp, "--output", out, "--model", tmp_path / "never-read.pkl", *flags, timeout=60)
    assert error_line(result, 2).startswith(f"error: {expected}"), result.stderr
    assert not out.exists()
