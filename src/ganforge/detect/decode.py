"""The one decode path of the detectors: every image, real or fake, file or generated, goes through it.

The rule, the same for every input (so neither a container format nor a size can tell real from fake):

1. open with PIL; files over :data:`MAX_PIXELS` pixels are refused (a decompression bomb, or a photo too big
   to be worth decoding for a detector that looks at a few dozen pixels) before any pixel is decoded;
2. take the first frame of an animation; CMYK, 16-bit, palette and alpha images become ``L`` (gray detectors)
   or ``RGB`` (colour detectors), transparent pixels black (:func:`ganforge.data.images.decode`);
3. refuse images with a side under :data:`MIN_SIDE` pixels (a 1x1 spacer GIF carries no evidence);
4. centre-crop to a square, then resize to the detector's size with Lanczos (box-reduced first on big
   shrinks): a very large image is judged on its downscaled whole, not on a corner;
5. JPEG-compress the result in memory at the detector's ``normalize`` quality and decode it again (0 turns
   this off): a real set stored as JPEG and fakes stored as PNG then both carry the same quantisation, so
   the container is no cue.

A file that fails any step is skipped with a one-line reason (:class:`SkipImage`); the rest go on.
"""
from __future__ import annotations

import io
import warnings
from typing import IO

import numpy as np
from PIL import Image

from ganforge.data import images as imgs

MAX_PIXELS = 64_000_000  # 8000 x 8000; PIL's own bomb limit (about 89 M) would be hit later and as a warning
MIN_SIDE = 8
MAX_FILE_BYTES = 256 * 2**20  # a zip member unpacked in memory: far above any 8000 x 8000 photo's file


class SkipImage(Exception):
    """One input that cannot be scored; ``str()`` is the reason, without the file name."""


def normalize(arr: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip of a uint8 ``[C, S, S]`` array at ``quality`` (0: unchanged)."""
    if not quality:
        return arr
    pil = Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))
    buf = io.BytesIO()
    pil.save(buf, "JPEG", quality=int(quality))
    out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert(pil.mode), dtype=np.uint8)
    return np.ascontiguousarray(out[None] if out.ndim == 2 else out.transpose(2, 0, 1))


def fit(img: Image.Image, size: int, channels: int) -> np.ndarray:
    """Steps 3-4 on a decoded ``L``/``RGB`` image: uint8 ``[channels, size, size]``."""
    w, h = img.size
    if min(w, h) < MIN_SIDE:
        raise SkipImage(f"too small ({w}x{h}): a detector needs at least {MIN_SIDE}x{MIN_SIDE} pixels")
    want = "L" if channels == 1 else "RGB"
    if img.mode != want:
        img = img.convert(want)
    return imgs.prepare(img, "center-crop", size)


def decode_file(fp: str | IO[bytes], size: int, channels: int, quality: int) -> np.ndarray:
    """The whole rule for one file (a path or a binary file object): uint8 ``[channels, size, size]``.

    Raises :class:`SkipImage` with the reason when the file cannot be scored.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as im:
                w, h = im.size
            if w * h > MAX_PIXELS:
                raise SkipImage(f"too large ({w}x{h} = {w * h:,} pixels, over the limit of {MAX_PIXELS:,}): "
                                "a possible decompression bomb; downscale it first")
            if not isinstance(fp, str):
                fp.seek(0)
            img, _ = imgs.decode(fp, channels)
    except SkipImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        # PIL refuses the largest headers itself, before the size check above can run: the same message
        raise SkipImage(f"too large (over the limit of {MAX_PIXELS:,} pixels): a possible decompression bomb; "
                        "downscale it first") from e
    except Exception as e:  # PIL and zlib raise many types for damaged or foreign files
        raise SkipImage(imgs.describe_error(e)) from e
    return normalize(fit(img, size, channels), quality)


def decode_array(arr: np.ndarray, size: int, channels: int, quality: int) -> np.ndarray:
    """The same rule for an image already in memory (a generated fake, a built-in set): uint8 ``[C, H, W]``."""
    arr = np.asarray(arr, dtype=np.uint8)
    pil = Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))
    return normalize(fit(pil, size, channels), quality)
