"""Video files in and out (rife.video, ``python -m rife --video``) on short clips made here with PyAV.

Frames are tiny (64x48) so the real 4.25 model runs in milliseconds per in-between; every clip is made by
the test itself: a smooth moving pattern (so a re-encode keeps the originals within a few levels), an AAC
track where audio matters, NTSC and variable timestamps, odd sizes and 10-bit samples.
"""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from rife import cli
from rife.errors import InvalidInputError, VideoError
from rife.video import interpolate_video, probe_video

try:
    import av
except ImportError:  # the `video` extra; part of `test`, so CI always has it
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise
    pytest.skip("PyAV is not installed (pip install av)", allow_module_level=True)

from video_clips import mux_sine  # needs PyAV, checked above

NTSC = Fraction(30000, 1001)
REPO = Path(__file__).resolve().parents[1]


def pattern(index: int, width: int, height: int, speed: float = 2.0) -> np.ndarray:
    """[H,W,3] float 0..1: soft diagonal waves moving ``speed`` px per frame (smooth, so codecs keep it well)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    phase = (x + 0.5 * y - speed * index) / 16.0
    red = 0.5 + 0.35 * np.sin(phase)
    green = 0.5 + 0.35 * np.cos(phase * 0.7 + 1.0)
    blue = 0.35 + 0.25 * np.sin(y / 12.0 + index * 0.1)
    return np.stack([red, green, blue], axis=-1)


def make_clip(
    path: Path,
    *,
    frames: int = 12,
    rate: Fraction = NTSC,
    size: tuple[int, int] = (64, 48),
    pix_fmt: str = "yuv420p",
    audio: bool = False,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int | None = None,
    speed: float = 2.0,
) -> Path:
    """Write a clip; ``pts`` (in ``time_base``) gives variable timestamps; 10-bit when pix_fmt says so."""
    width, height = size
    deep = "10" in pix_fmt
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate, options={"crf": "8"})
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        tb = time_base or 1 / rate
        stream.codec_context.time_base = tb
        stream.codec_context.color_range = 1
        stream.codec_context.colorspace = 1
        stream.codec_context.color_primaries = 1
        stream.codec_context.color_trc = 1
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if audio:
            sound = container.add_stream("aac", rate=48000)
            sound.layout = "stereo"
        for index in range(frames):
            top, fmt = (65535, "rgb48le") if deep else (255, "rgb24")
            pixels = np.rint(pattern(index, width, height, speed) * top).astype(np.uint16 if deep else np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format=fmt).reformat(
                format=pix_fmt, dst_colorspace=1, dst_color_range=1
            )
            frame.pts = index if pts is None else pts[index]
            frame.time_base = tb
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if audio:
            mux_sine(container, sound, frames / rate)
    return path


def decode_rgb(path: Path, deep: bool = False) -> np.ndarray:
    """Every frame as [N,H,W,3] float 0..1, with the stream's own matrix and range."""
    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            rgb = frame.reformat(format="rgb48le" if deep else "rgb24", src_colorspace=1, src_color_range=1)
            out.append(rgb.to_ndarray().astype(np.float64) / (65535 if deep else 255))
    return np.stack(out)


def stream_facts(path: Path) -> dict:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        first = next(container.decode(video))
        facts = {
            "frames": sum(1 for _ in container.decode(video=0)) + 1,
            "rate": video.average_rate,
            "guessed": video.guessed_rate,
            "pix_fmt": first.format.name,
            "size": (first.width, first.height),
            "rotation": first.rotation,
            "color": (int(first.color_range), int(first.colorspace), int(first.color_primaries)),
        }
    with av.open(str(path)) as container:
        ends = {}
        for packet in container.demux():
            if packet.pts is not None:
                end = (packet.pts + packet.duration) * packet.time_base
                ends[packet.stream.type] = max(ends.get(packet.stream.type, end), end)
        facts["video_end"], facts["audio_end"] = ends.get("video"), ends.get("audio")
        facts["audio_codec"] = [s.codec_context.name for s in container.streams.audio]
    return facts


def test_ntsc_x2_with_audio_keeps_rate_duration_audio_and_originals(real_model, tmp_path):
    source = make_clip(tmp_path / "in.mp4", frames=12, audio=True, rotation=90, speed=6)
    result = interpolate_video(real_model, source, tmp_path / "out.mp4", multiplier=2)
    facts = stream_facts(tmp_path / "out.mp4")
    assert result.frames_in == 12 and result.frames_out == facts["frames"] == 24  # B*N: the last is held
    assert result.fps_out == Fraction(60000, 1001) == facts["rate"] == facts["guessed"]
    assert facts["audio_codec"] == ["aac"] and "audio aac copied" in result.notes
    assert abs(facts["audio_end"] - facts["video_end"]) <= Fraction(1001, 60000)
    assert facts["video_end"] == Fraction(12 * 1001, 30000)  # exactly the input's duration
    assert facts["rotation"] == 90 and facts["color"] == (1, 1, 1)
    source_frames, output = decode_rgb(source), decode_rgb(tmp_path / "out.mp4")
    assert np.abs(output[::2] - source_frames).mean() < 3 / 255  # originals at every 2nd frame (crf 18)
    assert np.abs(output[-1] - output[-2]).mean() < 1 / 255  # the held tail repeats the last frame
    halfway = np.stack([pattern(k + 0.5, 64, 48, speed=6) for k in range(11)])
    before = np.stack([pattern(k, 64, 48, speed=6) for k in range(11)])
    in_betweens = output[1:-1:2]  # in-betweens sit where the motion is halfway, not on a neighbour
    assert np.abs(in_betweens - halfway).mean() < 0.5 * np.abs(in_betweens - before).mean()


def test_fps_out_gives_exact_rate_and_duration(real_model, tmp_path):
    source = make_clip(tmp_path / "in.mkv", frames=10, rate=Fraction(24000, 1001))
    result = interpolate_video(real_model, source, tmp_path / "out.mp4", fps_out=Fraction(60000, 1001))
    facts = stream_facts(tmp_path / "out.mp4")
    assert result.fps_in == Fraction(24000, 1001)  # read back exactly from Matroska's ms timestamps
    assert result.frames_out == facts["frames"] == 25  # ceil(10 * 2.5)
    assert facts["rate"] == Fraction(60000, 1001)


def test_ten_bit_stays_ten_bit(real_model, tmp_path):
    source = make_clip(tmp_path / "in.mkv", frames=6, rate=Fraction(25), pix_fmt="yuv420p10le")
    assert probe_video(source).bits == 10
    result = interpolate_video(real_model, source, tmp_path / "out.mkv", multiplier=2, scene_threshold=0)
    facts = stream_facts(tmp_path / "out.mkv")
    assert result.bits == 10 and facts["pix_fmt"] == "yuv420p10le"
    with av.open(str(tmp_path / "out.mkv")) as container:
        luma = next(container.decode(video=0)).planes[0]
        values = np.frombuffer(bytes(luma), np.uint16)
    assert (values % 4 != 0).mean() > 0.3  # the two low bits carry detail: not 8-bit data shifted up
    original, output = decode_rgb(source, deep=True), decode_rgb(tmp_path / "out.mkv", deep=True)
    assert np.abs(output[::2] - original).mean() < 2 / 255


def test_odd_size_is_padded_to_even(real_model, tmp_path):
    source = make_clip(tmp_path / "odd.mkv", frames=5, rate=Fraction(25), size=(65, 49), pix_fmt="yuv444p")
    result = interpolate_video(real_model, source, tmp_path / "out.mp4", multiplier=2)
    facts = stream_facts(tmp_path / "out.mp4")
    assert facts["size"] == (66, 50) and any("padded to 66x50" in note for note in result.notes)
    original, output = decode_rgb(source), decode_rgb(tmp_path / "out.mp4")
    assert np.abs(output[::2, :49, :65] - original).mean() < 3 / 255


def test_variable_frame_rate_is_resampled_by_timestamps(real_model, tmp_path):
    slots = [0, 1, 2, 4, 5, 7, 8, 9]  # a 25 fps grid with frames 3 and 6 missing
    source = make_clip(
        tmp_path / "vfr.mkv",
        frames=8,
        rate=Fraction(25),
        pts=[s * 40 for s in slots],
        time_base=Fraction(1, 1000),
        speed=8.0,
    )
    info = probe_video(source)
    assert info.variable_rate and info.fps == 25 and info.num_frames == 10
    assert info.source_index == (0, 1, 2, 2, 3, 4, 4, 5, 6, 7)  # each slot shows the frame on screen at its time
    result = interpolate_video(real_model, source, tmp_path / "out.mp4", multiplier=2, dedupe=True)
    assert result.frames_out == stream_facts(tmp_path / "out.mp4")["frames"] == 20
    assert result.fps_out == 50 and any("variable frame rate" in note for note in result.notes)
    assert (2, 4) in result.held and (5, 7) in result.held  # the repeated slots became in-betweens


def test_folder_to_video_and_video_to_folder(real_model, tmp_path):
    source = make_clip(tmp_path / "in.mp4", frames=4, rate=Fraction(24))
    frames = tmp_path / "frames"
    folder = interpolate_video(real_model, source, frames, multiplier=2)
    assert folder.frames_out == 8 and len(list(frames.glob("*.png"))) == 8
    with pytest.raises(InvalidInputError, match="--fps-in"):
        interpolate_video(real_model, frames, tmp_path / "x.mp4")
    video = interpolate_video(real_model, frames, tmp_path / "again.mp4", fps_in=48, multiplier=1)
    facts = stream_facts(tmp_path / "again.mp4")
    assert video.frames_out == facts["frames"] == 8 and facts["rate"] == 48


def test_interrupt_leaves_no_output_file(real_model, tmp_path):
    source = make_clip(tmp_path / "in.mp4", frames=6, audio=True)

    def stop(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interpolate_video(real_model, source, tmp_path / "out.mp4", progress=stop)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_bad_inputs_get_one_clear_message(real_model, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(VideoError, match="not a video file"):
        interpolate_video(real_model, text, tmp_path / "o.mp4")
    sound = tmp_path / "sound.m4a"
    with av.open(str(sound), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=48000)
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts = 48000, 0
        container.mux(stream.encode(chunk))
        container.mux(stream.encode(None))
    with pytest.raises(VideoError, match="no video stream"):
        interpolate_video(real_model, sound, tmp_path / "o.mp4")
    clip = make_clip(tmp_path / "clip.mkv", frames=60, rate=Fraction(25))
    data = bytearray(clip.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 400] = np.random.default_rng(0).integers(0, 256, 400, np.uint8).tobytes()
    damaged = tmp_path / "damaged.mkv"
    damaged.write_bytes(bytes(data))
    with pytest.raises(VideoError, match=r"frame \d+ \(at \d+\.\d+ s\)"):
        interpolate_video(real_model, damaged, tmp_path / "o.mp4")
    with pytest.raises(InvalidInputError, match="cannot hold libx264"):
        interpolate_video(real_model, clip, tmp_path / "o.webm", codec="libx264")
    (tmp_path / "exists.mp4").write_bytes(b"keep me")
    with pytest.raises(VideoError, match="already exists: pass --overwrite"):
        interpolate_video(real_model, clip, tmp_path / "exists.mp4")
    assert (tmp_path / "exists.mp4").read_bytes() == b"keep me"


def test_missing_pyav_says_how_to_install(monkeypatch):
    from rife import video

    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(VideoError, match=r"pip install .*\[video\]"):
        video.require_av()


def test_cli_video_to_webm_reencodes_audio(real_weights, tmp_path, capsys):
    source = make_clip(tmp_path / "in.mp4", frames=5, audio=True)
    output = tmp_path / "out.webm"
    status = cli.main(["--model", str(real_weights), "--video", str(source), "--output", str(output), "--multi", "3"])
    assert status == 0
    captured = capsys.readouterr()
    assert "aac re-encoded to opus" in captured.err
    facts = stream_facts(output)
    assert facts["frames"] == 15 and facts["audio_codec"] == ["opus"]
    assert cli.main(["--model", str(real_weights), "--video", str(source), "--output", str(output)]) == 1
    assert "already exists" in capsys.readouterr().err


def test_cli_option_mistakes_are_usage_errors(tmp_path, capsys):
    assert cli.main(["--output", "x.mp4"]) == cli.EXIT_USAGE
    assert "--img FOLDER or --video FILE" in capsys.readouterr().err
    assert cli.main(["--video", "a.mp4", "--img", "f", "--output", "x.mp4"]) == cli.EXIT_USAGE
    assert cli.main(["--video", "a.mp4", "--output", str(tmp_path / "frames"), "--crf", "20"]) == cli.EXIT_USAGE
    assert "--codec and --crf apply to a video --output" in capsys.readouterr().err


def test_options_are_checked_before_reading_the_clip(real_model, tmp_path):
    missing = tmp_path / "missing.mp4"  # never opened: each mistake is found first
    with pytest.raises(InvalidInputError, match="either multiplier or fps_out"):
        interpolate_video(real_model, missing, tmp_path / "o.mp4", multiplier=2, fps_out=60)
    with pytest.raises(InvalidInputError, match="direct mode only"):
        interpolate_video(real_model, missing, tmp_path / "o.mp4", fps_out=60, mode="recursive")
    with pytest.raises(InvalidInputError, match="crf must be"):
        interpolate_video(real_model, missing, tmp_path / "o.mp4", crf=99)
    with pytest.raises(InvalidInputError, match="has no ensemble mode"):
        interpolate_video(real_model, missing, tmp_path / "o.mp4", ensemble=True)
    with pytest.raises(InvalidInputError, match="Unknown video encoder"):
        interpolate_video(real_model, missing, tmp_path / "o.mkv", codec="nope264")


def test_module_entry_point_runs_a_video(real_weights, tmp_path):
    source = make_clip(tmp_path / "in.mov", frames=3, rate=Fraction(24))
    command = [sys.executable, "-m", "rife", "--model", str(real_weights), "--video", str(source)]
    done = subprocess.run(
        [*command, "--output", str(tmp_path / "o.mov")], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert stream_facts(tmp_path / "o.mov")["frames"] == 6
