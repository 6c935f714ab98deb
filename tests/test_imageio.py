"""Frame folders on disk: listing and numbering rules, exact 8/16-bit round trips for PNG/TIFF/JPEG, gray and
RGBA layouts, size/format checks, atomic writes and the output-folder rules."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from rife.errors import InvalidInputError
from rife.imageio import (
    FrameFolder,
    OutputError,
    copy_frame,
    existing_frames,
    frame_path,
    list_frames,
    prepare_output,
    read_image,
    remove_frames,
    to_image,
    write_image,
)


def _random_image(shape, dtype, seed=0):
    top = np.iinfo(dtype).max
    return np.random.default_rng(seed).integers(0, top, size=shape, endpoint=True).astype(dtype)


def _write(path, image):
    assert cv2.imwrite(str(path), image)
    return path


def test_frames_sorted_by_number_ignoring_other_files(tmp_path):
    for name in ("10.png", "2.png", "0000001.png", "notes.txt", ".hidden.png", "Thumbs.db"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()  # a folder with an image suffix is not a frame either
    assert [p.name for p in list_frames(tmp_path)] == ["0000001.png", "2.png", "10.png"]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ([], "No PNG, TIFF or JPEG frames in "),
        (["notes.txt"], "No PNG, TIFF or JPEG frames in "),
        (["0.png", "1.jpg"], "Mixed image formats in .* \\(JPEG, PNG\\): keep one format per folder"),
        (["0.png", "frame_1.png"], "Frame names must be numbers like 0000000.png, but .* holds 'frame_1.png'$"),
        (["a.png", "b.png", "1.png"], "holds 'a.png' and 1 more$"),
        (["1.png", "001.png"], "Two frames have the number 1: 001.png and 1.png"),
    ],
)
def test_listing_errors(tmp_path, names, message):
    for name in names:
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(InvalidInputError, match=message):
        list_frames(tmp_path)


def test_tif_and_tiff_are_one_format(tmp_path):
    (tmp_path / "0.tif").write_bytes(b"")
    (tmp_path / "1.TIFF").write_bytes(b"")
    assert [p.name for p in list_frames(tmp_path)] == ["0.tif", "1.TIFF"]


def test_missing_input_and_file_instead_of_folder(tmp_path):
    with pytest.raises(InvalidInputError, match=r"Input folder not found: .*nowhere$"):
        list_frames(tmp_path / "nowhere")
    (tmp_path / "0.png").write_bytes(b"")
    with pytest.raises(InvalidInputError, match=r"Input is not a folder: .*0.png"):
        list_frames(tmp_path / "0.png")


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_lossless_round_trip_is_exact(tmp_path, suffix, dtype, channels):
    shape = (5, 7) if channels == 1 else (5, 7, channels)
    pixels = _random_image(shape, dtype, seed=channels)  # OpenCV layout: BGR(A)
    _write(tmp_path / f"0{suffix}", pixels)
    folder = FrameFolder(tmp_path)
    assert (folder.format.height, folder.format.width, folder.format.channels) == (5, 7, channels)
    assert folder.format.dtype == dtype and folder.format.suffix == suffix
    frame = folder[0]
    assert frame.dtype == torch.float32 and tuple(frame.shape) == (5, 7, channels)
    top = float(np.iinfo(dtype).max)
    rgb = pixels[:, :, None] if channels == 1 else pixels[:, :, [2, 1, 0, 3][:channels]]
    np.testing.assert_array_equal(frame.numpy(), rgb.astype(np.float32) / np.float32(top))  # RGB(A) order, 0..1

    back = to_image(frame, folder.format)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, pixels)  # every value, 16-bit included, comes back exactly
    (tmp_path / "out").mkdir()
    written = tmp_path / "out" / f"1{suffix}"
    write_image(written, back)
    np.testing.assert_array_equal(cv2.imread(str(written), cv2.IMREAD_UNCHANGED), pixels)


def test_sixteen_bit_values_are_written_without_an_8_bit_round_trip(tmp_path):
    _write(tmp_path / "0.png", np.zeros((2, 3, 3), np.uint16))
    fmt = FrameFolder(tmp_path).format
    values = torch.tensor([1000 / 65535, 0.5, 12345 / 65535], dtype=torch.float32).expand(2, 3, 3)
    image = to_image(values, fmt)
    assert image.dtype == np.uint16
    np.testing.assert_array_equal(image[0, 0], [12345, 32768, 1000])  # BGR order, 16-bit steps kept
    assert (image % 257 != 0).any()  # not a scaled-up 8-bit value


def test_to_image_rounds_and_clips():
    from rife.imageio import FrameFormat

    fmt = FrameFormat(1, 4, 1, np.dtype(np.uint8), ".png")
    frame = torch.tensor([-0.5, 0.3 / 255, 0.6 / 255, 2.0]).reshape(1, 4, 1)
    np.testing.assert_array_equal(to_image(frame, fmt), [[0, 0, 1, 255]])
    with pytest.raises(InvalidInputError, match=r"NaN or infinite"):
        to_image(torch.full((1, 4, 1), float("nan")), fmt)
    with pytest.raises(InvalidInputError, match=r"shape \(2, 4, 1\) does not match the folder's 4x1 8-bit gray PNG"):
        to_image(torch.zeros(2, 4, 1), fmt)


def test_jpeg_reads_as_8_bit_and_writes_jpeg(tmp_path):
    pixels = np.full((8, 8, 3), (10, 120, 240), np.uint8)
    _write(tmp_path / "0.jpg", pixels)
    folder = FrameFolder(tmp_path)
    assert folder.format.describe() == "8x8 8-bit RGB JPEG"
    frame = folder[0]
    assert abs(float(frame[0, 0, 0]) - 240 / 255) < 3 / 255  # red channel first
    target = tmp_path / "1.jpg"
    write_image(target, to_image(frame, folder.format))
    assert target.read_bytes()[:2] == b"\xff\xd8"  # a JPEG stream
    assert np.abs(cv2.imread(str(target)).astype(int) - pixels).max() <= 3


def test_png_size_mismatch_is_found_up_front(tmp_path):
    _write(tmp_path / "0.png", np.zeros((4, 6, 3), np.uint8))
    _write(tmp_path / "1.png", np.zeros((4, 6, 3), np.uint8))
    _write(tmp_path / "2.png", np.zeros((5, 6, 3), np.uint8))
    with pytest.raises(InvalidInputError, match=r"All frames must have the same size: 2.png is 6x5 but 0.png is 6x4$"):
        FrameFolder(tmp_path)


def test_tiff_size_and_format_mismatch_found_when_read(tmp_path):
    _write(tmp_path / "0.tif", np.zeros((4, 6, 3), np.uint16))
    _write(tmp_path / "1.tif", np.zeros((5, 6, 3), np.uint16))
    _write(tmp_path / "2.tif", np.zeros((4, 6, 3), np.uint8))
    _write(tmp_path / "3.tif", np.zeros((4, 6), np.uint16))
    folder = FrameFolder(tmp_path)
    assert len(folder) == 4
    with pytest.raises(InvalidInputError, match=r"1.tif is 6x5 but 0.tif is 6x4"):
        folder[1]
    with pytest.raises(
        InvalidInputError, match=r"one pixel format: 2.tif is 8-bit RGB but 0.tif is 6x4 16-bit RGB TIFF"
    ):
        folder[2]
    with pytest.raises(InvalidInputError, match=r"3.tif is 16-bit gray but 0.tif is 6x4 16-bit RGB TIFF"):
        folder[3]


def test_unreadable_and_unsupported_images(tmp_path):
    (tmp_path / "0.png").write_bytes(b"not a png")
    with pytest.raises(InvalidInputError, match=r"Cannot decode .*0.png: the file is empty, damaged or not an image"):
        read_image(tmp_path / "0.png")
    (tmp_path / "1.png").write_bytes(b"")
    with pytest.raises(InvalidInputError, match=r"Cannot decode .*1.png"):
        read_image(tmp_path / "1.png")
    _write(tmp_path / "2.tif", np.zeros((2, 2, 3), np.float32))
    with pytest.raises(InvalidInputError, match=r"2.tif has float32 samples; only 8- and 16-bit images are supported"):
        read_image(tmp_path / "2.tif")


def test_numbering_has_seven_digits(tmp_path):
    assert frame_path(tmp_path, 0, ".png").name == "0000000.png"
    assert frame_path(tmp_path, 1234, ".tif").name == "0001234.tif"
    assert frame_path(tmp_path, 12_345_678, ".jpg").name == "12345678.jpg"


def test_copy_frame_is_byte_exact(tmp_path):
    source = _write(tmp_path / "5.png", _random_image((3, 3, 3), np.uint16))
    target = tmp_path / "out.png"
    copy_frame(source, target)
    assert target.read_bytes() == source.read_bytes()


def test_failed_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "0000000.png"
    target.mkdir()  # the rename onto a folder fails after the temp file was written
    with pytest.raises(OutputError, match=r"Cannot write .*0000000.png"):
        write_image(target, np.zeros((2, 2, 3), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0000000.png"]


def test_cancel_during_write_removes_the_temp_file(tmp_path, monkeypatch):
    def interrupted_copy(source, temp):
        temp.write_bytes(b"half a fi")
        raise KeyboardInterrupt

    monkeypatch.setattr("rife.imageio.shutil.copyfile", interrupted_copy)
    source = _write(tmp_path / "0.png", np.zeros((2, 2, 3), np.uint8))
    (tmp_path / "out").mkdir()
    with pytest.raises(KeyboardInterrupt):
        copy_frame(source, tmp_path / "out" / "0000000.png")
    assert list((tmp_path / "out").iterdir()) == []


def test_prepare_output_rules(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    out = tmp_path / "deep" / "out"
    assert prepare_output(out, input_folder=source, overwrite=False) == []
    assert out.is_dir() and list(out.iterdir()) == []

    with pytest.raises(OutputError, match=r"The output folder is the input folder"):
        prepare_output(source / ".", input_folder=source, overwrite=True)

    (out / "0000000.png").write_bytes(b"x")
    (out / "12.jpg").write_bytes(b"x")
    (out / "notes.txt").write_bytes(b"x")
    (out / ".0000001.png.rife-tmp").write_bytes(b"half")
    with pytest.raises(OutputError, match=r"already holds 2 frames \(0000000.png ...\); pass --overwrite"):
        prepare_output(out, input_folder=source, overwrite=False)
    assert not (out / ".0000001.png.rife-tmp").exists()  # a killed run's temp file is cleaned up

    earlier = prepare_output(out, input_folder=source, overwrite=True)
    assert [p.name for p in earlier] == ["0000000.png", "12.jpg"] == [p.name for p in existing_frames(out)]
    remove_frames(earlier)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # only frames are ever deleted


def test_output_that_is_a_file_is_rejected(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(OutputError, match=r"The output path .*file is a file, not a folder"):
        prepare_output(blocker, input_folder=tmp_path, overwrite=False)
    with pytest.raises(OutputError, match=r"Cannot write to the output folder .*file/sub"):
        prepare_output(blocker / "sub", input_folder=tmp_path, overwrite=False)


def test_frames_kept_for_the_next_read_within_the_budget(tmp_path):
    images = [_random_image((6, 5, 3), np.uint8, seed=i) for i in range(3)]
    for i, image in enumerate(images):
        _write(tmp_path / f"{i}.png", image)
    frames = FrameFolder(tmp_path)
    with frames.keeping(2 * 6 * 5 * 3 * 4):  # room for two float32 frames
        first_reads = [frames[i] for i in range(3)]
    for i in range(3):
        (tmp_path / f"{i}.png").unlink()
    assert torch.equal(frames[0], first_reads[0]) and torch.equal(frames[1], first_reads[1])  # no decoding
    for index in (0, 2):  # a kept frame is handed out once; the third did not fit the budget
        with pytest.raises(InvalidInputError, match="Cannot read"):
            frames[index]


def _frame_folder(tmp_path, count: int) -> tuple[FrameFolder, list[np.ndarray]]:
    images = [_random_image((6, 5, 3), np.uint8, seed=i) for i in range(count)]
    for i, image in enumerate(images):
        _write(tmp_path / f"{i}.png", image)
    return FrameFolder(tmp_path), images


def test_frames_read_ahead_equal_plain_reads_and_errors_surface_when_read(tmp_path):
    frames, _ = _frame_folder(tmp_path, 6)
    plain = [frames[i] for i in range(4)]
    (tmp_path / "4.png").write_bytes(b"\x89PNG\r\n\x1a\n damaged")  # decoded ahead while 0-3 are read
    with frames.keeping(1 << 20):
        assert all(torch.equal(frames[i], plain[i]) for i in range(4))
        with pytest.raises(InvalidInputError, match=r"Cannot decode .*4\.png"):
            frames[4]
        assert frames[5].shape == (6, 5, 3)


def test_frames_decoded_ahead_but_not_read_are_kept_within_the_read_ahead_bytes(tmp_path, monkeypatch):
    import concurrent.futures

    import rife.imageio as imageio

    monkeypatch.setattr(imageio, "READ_AHEAD_BYTES", 2 * 6 * 5 * 3 * 4)  # two float32 frames ahead
    frames, images = _frame_folder(tmp_path, 5)
    with frames.keeping(1 << 20):  # decodes start on entry (the CLI loads the model meanwhile)
        concurrent.futures.wait(frames._ahead.values())
    for i in range(5):
        (tmp_path / f"{i}.png").unlink()
    for i in (0, 1):  # no decoding: the files are gone
        assert torch.equal(frames[i], torch.from_numpy(images[i][:, :, ::-1] / np.float32(255)))
    with pytest.raises(InvalidInputError, match="Cannot read"):  # not decoded ahead: beyond the two frames
        frames[2]
