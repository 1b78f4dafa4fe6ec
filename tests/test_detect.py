"""ganforge.detect: the one decode path, features, calibration, detectors and their files."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from ganforge.detect import decode
from ganforge.detect.decode import SkipImage, decode_file


def _png(img: Image.Image, fmt: str = "PNG", **kw) -> io.BytesIO:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    buf.seek(0)
    return buf


def _gradient(w: int = 20, h: int = 20) -> np.ndarray:
    return (np.add.outer(np.arange(h), np.arange(w)) * 255 // (w + h)).astype(np.uint8)


# -- decoding and bad input ---------------------------------------------------------------------------------------
def test_gray_and_colour_inputs_reach_the_detector_mode_and_size():
    rgb = Image.fromarray(np.stack([_gradient()] * 3, axis=-1))
    assert decode_file(_png(rgb), 16, 1, 0).shape == (1, 16, 16)
    assert decode_file(_png(Image.fromarray(_gradient())), 16, 3, 0).shape == (3, 16, 16)


def test_cmyk_16bit_palette_alpha_and_animated_are_converted():
    base = Image.fromarray(np.stack([_gradient()] * 3, axis=-1))
    want = decode_file(_png(base), 16, 1, 0)
    cmyk = decode_file(_png(base.convert("CMYK"), "JPEG", quality=100), 16, 1, 0)
    assert np.abs(cmyk.astype(int) - want).max() <= 8  # JPEG in CMYK: close, not exact
    g16 = Image.fromarray(_gradient().astype(np.uint16) * 257)  # 16-bit gray, full range
    assert np.array_equal(decode_file(_png(g16), 16, 1, 0), decode_file(_png(Image.fromarray(_gradient())), 16, 1, 0))
    pal = base.convert("P", palette=Image.ADAPTIVE, colors=256)
    assert decode_file(_png(pal), 16, 3, 0).shape == (3, 16, 16)
    rgba = base.convert("RGBA")
    rgba.putalpha(0)  # fully transparent: black, as the training decoder does
    assert decode_file(_png(rgba), 16, 3, 0).max() == 0
    frames = [Image.fromarray(np.full((20, 20), v, np.uint8)) for v in (200, 10)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    gif.seek(0)
    assert abs(int(decode_file(gif, 16, 1, 0).mean()) - 200) <= 2  # the first frame


@pytest.mark.parametrize("data, reason", [
    (b"not an image at all", "cannot identify image file"),
    (None, "truncated"),
])
def test_non_images_and_truncated_files_are_skipped_with_a_reason(data, reason):
    if data is None:
        whole = _png(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))).getvalue()
        data = whole[: len(whole) // 2]
    with pytest.raises(SkipImage, match=reason):
        decode_file(io.BytesIO(data), 16, 1, 0)


def test_one_pixel_images_are_skipped():
    with pytest.raises(SkipImage, match=r"too small \(1x1\)"):
        decode_file(_png(Image.new("L", (1, 1))), 16, 1, 0)


def test_decompression_bombs_are_refused_before_decoding(monkeypatch):
    monkeypatch.setattr(decode, "MAX_PIXELS", 100 * 100)
    with pytest.raises(SkipImage, match=r"too large \(101x100 = 10,100 pixels.*decompression bomb"):
        decode_file(_png(Image.new("L", (101, 100))), 16, 1, 0)


def test_pil_bomb_error_is_a_skip_too(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # PIL's own check fires first
    with pytest.raises(SkipImage, match="decompression bomb"):
        decode_file(_png(Image.new("L", (20, 20))), 16, 1, 0)


def test_large_images_are_centre_cropped_then_downscaled_whole():
    img = np.zeros((200, 400), np.uint8)
    img[:, 100:300] = 255  # the centre square is white, the sides black
    out = decode_file(_png(Image.fromarray(img)), 16, 1, 0)
    assert out.shape == (1, 16, 16) and out.min() >= 250


def test_jpeg_normalisation_is_the_same_for_files_and_arrays():
    arr = _gradient(16, 16)[None]
    from_file = decode_file(_png(Image.fromarray(arr[0])), 16, 1, 80)
    assert np.array_equal(from_file, decode.decode_array(arr, 16, 1, 80))


def test_a_folder_with_bad_files_reports_each_and_reads_the_rest(tmp_path):
    from ganforge.detect import sources

    Image.fromarray(_gradient()).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"garbage")
    Image.new("L", (1, 1)).save(tmp_path / "tiny.png")
    skipped = []
    x, names = sources.read_all(sources.items(str(tmp_path)), 16, 1, 0, on_skip=lambda n, r: skipped.append((n, r)))
    assert names == [str(tmp_path / "good.png")] and x.shape == (1, 1, 16, 16)
    assert skipped == [(str(tmp_path / "bad.png"), "cannot identify image file"),
                       (str(tmp_path / "tiny.png"), "too small (1x1): a detector needs at least 8x8 pixels")]
