"""The command line end to end: real 8/16-bit PNG/TIFF/JPEG, gray and RGBA folders through the real 4.25 weights
(tiny 64x48 crops), numbering and counts for every mode and timing flag, overwrite and cancel behaviour, and the
one-line error for each kind of bad input."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from rife import interpolate, load_model
from rife.cli import _ProgressBar, main
from rife.imageio import FrameFolder, to_image

REPO = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH = 48, 64


def make_clip(frames_dir: Path, folder: Path, *, suffix=".png", depth=8, channels=3, count=3, pan=6) -> list[Path]:
    """``count`` frames of real footage (64x48 crops of the shared clip, panned ``pan`` px per frame so there is
    motion to interpolate) written as ``0000000<suffix>`` ... in the requested depth and channel layout."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = []
    for i in range(count):
        bgr = cv2.imread(str(frames_dir / f"{i:07d}.png"), cv2.IMREAD_COLOR)
        image = bgr[8 : 8 + HEIGHT, 16 + pan * i : 16 + pan * i + WIDTH]
        if depth == 16:  # use all 16 bits, not a scaled 8-bit image
            image = image.astype(np.uint16) * 256 + rng.integers(0, 256, image.shape, dtype=np.uint16)
        if channels == 1:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        elif channels == 4:
            alpha = np.full((HEIGHT, WIDTH), int(np.iinfo(image.dtype).max * 0.6), image.dtype)
            image = np.dstack([image, alpha])
        path = folder / f"{i:07d}{suffix}"
        assert cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


@pytest.fixture
def shared_model(monkeypatch, real_weights, real_model):
    """Let the CLI reuse the session's loaded 4.25 model for ``--model real_weights`` (loading takes longer than
    interpolating these tiny clips); other paths and precisions still go through the real loader. Precision
    "auto" means fp32 here, as on a CPU without native bf16 (these tests compare against the fp32 library;
    test_default_precision_is_auto covers auto itself)."""
    import rife.cli
    import rife.model

    monkeypatch.setattr(rife.model, "cpu_has_native_bf16", lambda: False)

    def load(path, *, device=None, dtype=torch.float32):
        if dtype == "auto":
            dtype = rife.model.auto_dtype(torch.device("cpu"))
        if Path(path) == real_weights and device is None and dtype == torch.float32:
            return real_model
        return load_model(path, device=device, dtype=dtype)

    monkeypatch.setattr(rife.cli, "load_model", load)


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def read(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def expected_outputs(model, folder: Path, multiplier: int, mode: str = "direct") -> list[np.ndarray]:
    """What the library computes for the same frames, converted like the CLI converts (for comparison)."""
    frames = FrameFolder(folder)
    batch = torch.stack([frames[i] for i in range(len(frames))])
    out = interpolate(model, batch, multiplier=multiplier, mode=mode)
    return [to_image(frame, frames.format) for frame in out]


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ----------------------------------------------------------------------------------------------- real runs


def test_default_precision_is_auto(frames_dir, real_weights, real_model, tmp_path, capsys, monkeypatch):
    """Without --precision the CLI asks for "auto": bf16 where the CPU has native bf16 (forced here), fp32
    otherwise; the in-betweens stay within a few 8-bit levels of fp32."""
    import rife.model

    make_clip(frames_dir, tmp_path / "in")
    for native, name in ((True, "torch.bfloat16"), (False, "torch.float32")):
        monkeypatch.setattr(rife.model, "cpu_has_native_bf16", lambda native=native: native)
        out = tmp_path / f"out-{native}"
        status, stdout, stderr = run(["--model", real_weights, "--img", tmp_path / "in", "--output", out], capsys)
        assert status == 0, stderr
        assert f"on cpu, {name}:" in stdout
        expected = expected_outputs(real_model, tmp_path / "in", 2)
        worst = max(np.abs(read(out / f"{i:07d}.png").astype(int) - expected[i].astype(int)).max() for i in (1, 3))
        assert worst <= (4 if native else 1)


@pytest.mark.parametrize(
    ("suffix", "depth"),
    [(".png", 8), (".png", 16), (".tif", 8), (".tif", 16)],
)
def test_lossless_formats_round_trip(
    shared_model, frames_dir, real_weights, real_model, tmp_path, capsys, suffix, depth
):
    sources = make_clip(frames_dir, tmp_path / "in", suffix=suffix, depth=depth)
    out = tmp_path / "out"
    status, stdout, stderr = run(["--model", real_weights, "--img", tmp_path / "in", "--output", out], capsys)
    assert status == 0, stderr
    assert stderr == ""  # no progress bar when stderr is not a terminal
    assert names(out) == [f"{i:07d}{suffix}" for i in range(5)]
    lines = stdout.splitlines()
    assert lines[0].startswith("RIFE 4.25 / 4.26 (") and f"3 frames 64x48 {depth}-bit RGB" in lines[0]
    assert lines[0].endswith("-> 5 frames (x2 direct, scale 1)")
    assert lines[1].startswith("3 frames in -> 5 frames out in ") and lines[1].endswith(f"written to {out}")

    for k, source in enumerate(sources):  # originals: the very same file
        assert (out / f"{2 * k:07d}{suffix}").read_bytes() == source.read_bytes()
    expected = expected_outputs(real_model, tmp_path / "in", 2)
    dtype = np.uint16 if depth == 16 else np.uint8
    for index in (1, 3):
        image = read(out / f"{index:07d}{suffix}")
        assert image.dtype == dtype and image.shape == (HEIGHT, WIDTH, 3)
        assert np.abs(image.astype(int) - expected[index].astype(int)).max() <= 1
        assert not np.array_equal(image, read(sources[index // 2]))  # really interpolated
        if depth == 16:
            assert np.mean(image % 257 != 0) > 0.9  # 16-bit steps, no 8-bit round trip


def test_jpeg_in_jpeg_out(shared_model, frames_dir, real_weights, real_model, tmp_path, capsys):
    sources = make_clip(frames_dir, tmp_path / "in", suffix=".jpg")
    out = tmp_path / "out"
    status, _, stderr = run(["--model", real_weights, "--img", tmp_path / "in", "--output", out, "--multi", 3], capsys)
    assert status == 0, stderr
    assert names(out) == [f"{i:07d}.jpg" for i in range(7)]
    for k, source in enumerate(sources):
        assert (out / f"{3 * k:07d}.jpg").read_bytes() == source.read_bytes()  # not re-encoded
    expected = expected_outputs(real_model, tmp_path / "in", 3)
    for index in (1, 2, 4, 5):
        image = read(out / f"{index:07d}.jpg")
        assert image.dtype == np.uint8 and image.shape == (HEIGHT, WIDTH, 3)
        assert np.abs(image.astype(int) - expected[index].astype(int)).mean() < 3  # JPEG quality 95


def test_gray_stays_gray(shared_model, frames_dir, real_weights, real_model, tmp_path, capsys):
    sources = make_clip(frames_dir, tmp_path / "in", channels=1)
    out = tmp_path / "out"
    status, stdout, stderr = run(["--model", real_weights, "--img", tmp_path / "in", "--output", out], capsys)
    assert status == 0, stderr
    assert "8-bit gray PNG" in stdout
    expected = expected_outputs(real_model, tmp_path / "in", 2)
    for index in range(5):
        image = read(out / f"{index:07d}.png")
        assert image.shape == (HEIGHT, WIDTH) and image.dtype == np.uint8
        if index % 2:
            assert np.abs(image.astype(int) - expected[index].astype(int)).max() <= 1
        else:
            np.testing.assert_array_equal(image, read(sources[index // 2]))


def test_rgba_keeps_alpha(shared_model, frames_dir, real_weights, real_model, tmp_path, capsys):
    sources = make_clip(frames_dir, tmp_path / "in", channels=4, depth=16)
    out = tmp_path / "out"
    status, stdout, stderr = run(["--model", real_weights, "--img", tmp_path / "in", "--output", out], capsys)
    assert status == 0, stderr
    assert "16-bit RGBA PNG" in stdout
    expected = expected_outputs(real_model, tmp_path / "in", 2)
    alpha = read(sources[0])[:, :, 3]
    for index in (1, 3):
        image = read(out / f"{index:07d}.png")
        assert image.shape == (HEIGHT, WIDTH, 4) and image.dtype == np.uint16
        assert np.abs(image.astype(int) - expected[index].astype(int)).max() <= 1
        assert np.abs(image[:, :, 3].astype(int) - alpha.astype(int)).max() <= 2  # a constant alpha stays put


@pytest.mark.parametrize(
    ("flags", "count", "mode", "multiplier"),
    [
        (["--multi", 4, "--recursive"], 9, "recursive", 4),
        (["--multi", 5, "--mode", "recursive"], 11, "recursive", 5),
        (["--multi", 4, "--mode", "bisect"], 9, "bisect", 4),
        (["--multi", 1], 3, "direct", 1),
    ],
)
def test_modes(shared_model, frames_dir, real_weights, real_model, tmp_path, capsys, flags, count, mode, multiplier):
    make_clip(frames_dir, tmp_path / "in")
    out = tmp_path / "out"
    status, stdout, stderr = run(["--model", real_weights, "--img", tmp_path / "in", "--output", out, *flags], capsys)
    assert status == 0, stderr
    assert f"-> {count} frames (x{multiplier} {mode}, scale 1)" in stdout
    assert names(out) == [f"{i:07d}.png" for i in range(count)]
    expected = expected_outputs(real_model, tmp_path / "in", multiplier, mode)
    for index in range(count):
        assert np.abs(read(out / f"{index:07d}.png").astype(int) - expected[index].astype(int)).max() <= 1


def test_frame_rate_conversion_and_loop(shared_model, frames_dir, real_weights, tmp_path, capsys):
    sources = make_clip(frames_dir, tmp_path / "in")
    out = tmp_path / "fps"
    argv = ["--model", real_weights, "--img", tmp_path / "in", "--output", out, "--fps-in", "16", "--fps-out", "24"]
    status, stdout, stderr = run(argv, capsys)
    assert status == 0, stderr
    # source times 0, 2/3, 4/3, 2: the first and last land on source frames and are copies
    assert names(out) == [f"{i:07d}.png" for i in range(4)]
    assert (out / "0000000.png").read_bytes() == sources[0].read_bytes()
    assert (out / "0000003.png").read_bytes() == sources[2].read_bytes()
    assert "-> 4 frames (16 -> 24 fps, scale 1)" in stdout
    assert "; output rate 24 fps" in stdout.splitlines()[-1]

    looped = tmp_path / "loop"
    argv = ["--model", real_weights, "--img", tmp_path / "in", "--output", looped, "--loop", "--fps-in", "30000/1001"]
    status, stdout, stderr = run(argv, capsys)
    assert status == 0, stderr
    assert names(looped) == [f"{i:07d}.png" for i in range(6)]  # B * 2 with loop
    assert "output rate 60000/1001 (= 59.940) fps" in stdout
    last = read(looped / "0000005.png").astype(int)  # between the last frame and the first
    assert not np.array_equal(last, read(sources[2])) and not np.array_equal(last, read(sources[0]))


def test_uhd_means_half_scale_unless_scale_given(shared_model, frames_dir, real_weights, tmp_path, capsys):
    make_clip(frames_dir, tmp_path / "in")
    base = ["--model", real_weights, "--img", tmp_path / "in", "--UHD"]
    status, stdout, _ = run([*base, "--output", tmp_path / "a"], capsys)
    assert status == 0 and "(x2 direct, scale 0.5)" in stdout
    status, stdout, _ = run([*base, "--output", tmp_path / "b", "--scale", "1"], capsys)
    assert status == 0 and "(x2 direct, scale 1)" in stdout


def test_frames_stream_through(shared_model, frames_dir, tmp_path, capsys, monkeypatch, real_weights):
    """Outputs are written while later inputs have not been read yet, and no frame is read more than twice (once
    for scene detection, once for interpolation): memory does not grow with the clip."""
    make_clip(frames_dir, tmp_path / "in", count=12, pan=2)
    out = tmp_path / "out"
    reads: list[int] = []
    written_before_last_read: list[str] = []
    original = FrameFolder.__getitem__

    def counting_getitem(self, index):
        reads.append(index)
        if index == 11 and len(reads) > 12:  # the interpolation pass reaches the last frame
            written_before_last_read.extend(names(out))
        return original(self, index)

    monkeypatch.setattr(FrameFolder, "__getitem__", counting_getitem)
    status, _, stderr = run(["--model", real_weights, "--img", tmp_path / "in", "--output", out], capsys)
    assert status == 0, stderr
    assert len(names(out)) == 23
    assert max(reads.count(i) for i in range(12)) == 2
    assert len(written_before_last_read) >= 20  # everything up to the last pair was already on disk


def test_fp16_loads_half_precision(frames_dir, real_weights, real_model, tmp_path, capsys):
    make_clip(frames_dir, tmp_path / "in")
    out = tmp_path / "out"
    argv = ["--model", real_weights, "--img", tmp_path / "in", "--output", out, "--fp16", "--device", "cpu"]
    status, stdout, stderr = run(argv, capsys)
    assert status == 0, stderr
    assert " on cpu, torch.float16: 3 frames" in stdout
    expected = expected_outputs(real_model, tmp_path / "in", 2)
    difference = np.abs(read(out / "0000001.png").astype(int) - expected[1].astype(int))
    assert difference.mean() < 1.0 and difference.max() <= 8


def test_overwrite_replaces_an_earlier_run(shared_model, frames_dir, real_weights, tmp_path, capsys):
    make_clip(frames_dir, tmp_path / "in")
    out = tmp_path / "out"
    base = ["--model", real_weights, "--img", tmp_path / "in", "--output", out]
    assert run([*base, "--multi", 4], capsys)[0] == 0
    assert len(names(out)) == 9
    status, _, stderr = run([*base, "--multi", 2], capsys)
    assert status == 1
    assert stderr == (
        f"error: The output folder {out} already holds 9 frames (0000000.png ...); "
        "pass --overwrite to replace them, or choose an empty --output folder\n"
    )
    assert len(names(out)) == 9  # untouched
    assert run([*base, "--multi", 2, "--overwrite"], capsys)[0] == 0
    assert names(out) == [f"{i:07d}.png" for i in range(5)]  # no stale frames of the longer run


def test_cancel_leaves_only_complete_frames(shared_model, frames_dir, real_weights, tmp_path, capsys, monkeypatch):
    make_clip(frames_dir, tmp_path / "in")
    copies = []

    def copy_then_cancel(source, temp):
        copies.append(source)
        if len(copies) == 2:  # the third output frame: cancelled half way through its file
            Path(temp).write_bytes(b"\x89PNG half")
            raise KeyboardInterrupt
        Path(temp).write_bytes(Path(source).read_bytes())

    monkeypatch.setattr("rife.imageio.shutil.copyfile", copy_then_cancel)
    out = tmp_path / "out"
    status, _, stderr = run(["--model", real_weights, "--img", tmp_path / "in", "--output", out], capsys)
    assert status == 130
    assert stderr == f"error: cancelled: 2 of 5 frames were written to {out} (all complete, no partial files)\n"
    assert names(out) == ["0000000.png", "0000001.png"]  # no temp file, no half frame
    assert read(out / "0000001.png").shape == (HEIGHT, WIDTH, 3)


def test_frame_that_breaks_the_format_mid_run(shared_model, frames_dir, real_weights, tmp_path, capsys):
    make_clip(frames_dir, tmp_path / "in", suffix=".tif")
    assert cv2.imwrite(str(tmp_path / "in" / "0000002.tif"), np.zeros((HEIGHT, WIDTH), np.uint8))  # gray
    out = tmp_path / "out"
    argv = ["--model", real_weights, "--img", tmp_path / "in", "--output", out, "--scene-threshold", "0"]
    status, _, stderr = run(argv, capsys)
    assert status == 1
    assert stderr == (
        "error: All frames must share one pixel format: 0000002.tif is 8-bit gray but 0000000.tif is "
        f"64x48 8-bit RGB TIFF (3 of 5 frames were written to {out})\n"
    )
    assert names(out) == ["0000000.tif", "0000001.tif", "0000002.tif"]  # frame 2 is read for output 3
    # with scene detection on (the default) all frames are looked at before anything is written
    status, _, stderr = run([*argv[:-2], "--overwrite"], capsys)
    assert status == 1 and stderr.startswith("error: All frames must share one pixel format: 0000002.tif")
    assert names(out) == ["0000000.tif", "0000001.tif", "0000002.tif"]  # earlier frames untouched: nothing ran


# ----------------------------------------------------------------------------------------------- bad input


def _one_error_line(status: int, stderr: str, expected_status: int = 1) -> str:
    assert status == expected_status
    assert stderr.startswith("error: ") and stderr.endswith("\n") and stderr.count("\n") == 1, stderr
    return stderr[len("error: ") : -1]


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("missing", "Input folder not found: {inp}"),
        ("empty", "No PNG, TIFF or JPEG frames in {inp}"),
        ("unnumbered", "Frame names must be numbers like 0000000.png, but {inp} holds 'frame.png'"),
        ("mixed_sizes", "All frames must have the same size: 2.png is 64x40 but 0.png is 64x48"),
        ("output_is_file", "The output path {out} is a file, not a folder; choose another --output"),
        ("output_is_input", "The output folder is the input folder ({inp}); choose another --output"),
        ("bad_checkpoint", ""),  # the loader's own wording; it must name the file
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, capsys, setup, expected):
    inp, out = tmp_path / "in", tmp_path / "out"
    model = tmp_path / "model.pkl"
    model.write_bytes(b"\x00random bytes, not a checkpoint" * 10)
    if setup != "missing":
        inp.mkdir()
    if setup not in ("missing", "empty"):
        for i, height in enumerate((48, 48, 40 if setup == "mixed_sizes" else 48)):
            assert cv2.imwrite(str(inp / f"{i}.png"), np.zeros((height, 64, 3), np.uint8))
    if setup == "unnumbered":
        assert cv2.imwrite(str(inp / "frame.png"), np.zeros((48, 64, 3), np.uint8))
    if setup == "output_is_file":
        out.write_bytes(b"")
    if setup == "output_is_input":
        out = inp
    status, _, stderr = run(["--model", model, "--img", inp, "--output", out], capsys)
    message = _one_error_line(status, stderr)
    assert message.startswith(expected.format(inp=inp, out=out))
    if setup == "bad_checkpoint":
        assert str(model) in message
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--multi", "0"], "--multi must be between 1 and 64, got 0"),
        (["--multi", "65"], "--multi must be between 1 and 64, got 65"),
        (["--multi", "two"], "argument --multi: invalid int value: 'two'"),
        (["--scale", "3"], "--scale must be one of 0.25, 0.5, 1, 2, 4, got 3"),
        (["--mode", "fast"], "argument --mode: invalid choice: 'fast'"),
        (["--recursive", "--mode", "bisect"], "--recursive contradicts --mode bisect"),
        (["--mode", "bisect", "--multi", "3"], "--mode bisect needs a power of two for --multi (2, 4, 8, ...), got 3"),
        (["--fps-out", "30"], "--fps-out needs --fps-in (the input frame rate)"),
        (["--fps-in", "24", "--fps-out", "30", "--multi", "2"], "give --multi or --fps-out, not both"),
        (["--fps-in", "24", "--fps-out", "60", "--recursive"], "frame rate conversion (--fps-out) works in direct"),
        (["--fps-in", "0", "--fps-out", "30"], "--fps-in: A frame rate must be positive, got '0'."),
        (["--fps-in", "abc", "--fps-out", "30"], "--fps-in: Cannot read the frame rate 'abc'"),
        (
            ["--scene-threshold", "-1"],
            "--scene-threshold: scene threshold must be a finite number >= 0 (0 disables), got -1.0.",
        ),
        (["--device", "tpu"], "unknown --device 'tpu': use auto, cpu, cuda, cuda:N or mps"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_bad_flags_are_one_clear_line(tmp_path, capsys, flags, expected):
    status, stdout, stderr = run(["--img", tmp_path, *flags], capsys)
    message = _one_error_line(status, stderr, expected_status=2)
    assert message.startswith(expected) and message.endswith(" (see --help)")
    assert stdout == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_cuda_is_a_usage_error(tmp_path, capsys):
    status, _, stderr = run(["--img", tmp_path, "--device", "cuda:0"], capsys)
    assert _one_error_line(status, stderr, 2).startswith("--device cuda:0: CUDA is not available here")


def test_missing_img_flag(capsys):
    status, _, stderr = run([], capsys)
    message = "give the input as --img FOLDER or --video FILE (one of them) (see --help)"
    assert _one_error_line(status, stderr, 2) == message


def test_module_entry_point_without_traceback(tmp_path):
    missing = tmp_path / "missing"
    result = subprocess.run(
        [sys.executable, "-m", "rife", "--img", str(missing)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert result.stderr == f"error: Input folder not found: {missing}\n"
    helped = subprocess.run([sys.executable, "-m", "rife", "--help"], cwd=REPO, capture_output=True, text=True)
    assert helped.returncode == 0
    assert "--img" in helped.stdout and "python -m rife download" in helped.stdout


# ----------------------------------------------------------------------------------------------- progress bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_on_a_terminal_only():
    terminal = _Terminal()
    bar = _ProgressBar(4, terminal)
    for done in range(1, 5):
        bar.update(done)
    bar.close()
    text = terminal.getvalue()
    assert text.startswith("\r[#######-----------------------] 1/4 frames (")
    assert "\r[##############################] 4/4 frames (" in text and text.endswith("\n")

    log = io.StringIO()
    quiet = _ProgressBar(4, log)
    quiet.update(4)
    quiet.close()
    assert log.getvalue() == ""
