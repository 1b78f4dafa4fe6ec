"""Decoding one image file and turning it into a square uint8 array of the wanted size."""
from __future__ import annotations

import warnings
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Modes whose pixels carry no colour; everything else is treated as colour.
_GRAY_MODES = {"1", "L", "LA", "La", "I", "F"}


def is_gray_mode(img: Image.Image) -> bool:
    """True when ``img`` holds no colour (a gray palette counts as gray)."""
    if img.mode in _GRAY_MODES or img.mode.startswith("I;"):
        return True
    if img.mode in ("P", "PA"):
        pal = img.getpalette() or []
        return all(pal[i] == pal[i + 1] == pal[i + 2] for i in range(0, len(pal) - 2, 3))
    return False


def _to_8bit_gray(img: Image.Image) -> Image.Image:
    """Map 16/32-bit integer and float gray images onto 0..255 (PIL's own convert clips them)."""
    arr = np.asarray(img, dtype=np.float64)
    finite = np.isfinite(arr)
    lo, hi = (arr[finite].min(), arr[finite].max()) if finite.any() else (0.0, 0.0)
    arr = np.where(finite, arr, lo)  # NaN and inf pixels: the darkest value
    if img.mode.startswith("I;16"):
        arr = arr / 257.0
    elif img.mode == "F" and lo >= 0 and hi <= 1:  # float images in [0, 1]
        arr = arr * 255.0
    elif img.mode == "F" and (lo < 0 or hi > 255):  # any other range (e.g. [-1, 1]): stretched to 0..255
        arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
    elif arr.size and arr.max() > 255:
        arr = arr * (255.0 / arr.max())
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")


def flatten(img: Image.Image, gray: bool) -> Image.Image:
    """Convert to ``L`` (gray) or ``RGB``; transparent pixels become black."""
    if img.mode in ("I", "F") or img.mode.startswith("I;"):
        img = _to_8bit_gray(img)
    has_alpha = img.mode in ("RGBA", "LA", "La", "PA", "RGBa") or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    return img.convert("L" if gray else "RGB")


def describe_error(e: BaseException) -> str:
    """A short reason for a failed decode, without PIL's repeated file name or object repr."""
    if isinstance(e, UnidentifiedImageError):
        return "cannot identify image file"
    if isinstance(e, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"too many pixels (over PIL's limit of {Image.MAX_IMAGE_PIXELS:,}): a possible decompression bomb"
    text = str(e).strip()
    return text if text else type(e).__name__


def decode(fp: str | IO[bytes], channels: int | None) -> tuple[Image.Image, bool]:
    """Read an image file (first frame of an animation) as ``L`` or ``RGB``.

    With ``channels`` None the image keeps its own kind (gray -> ``L``, colour -> ``RGB``); the
    returned flag says whether it is gray. Raises whatever PIL raises for unreadable files.
    """
    img = first_frame(fp)
    gray = is_gray_mode(img) if channels is None else channels == 1
    return flatten(img, gray), gray


def first_frame(fp) -> Image.Image:
    """The first frame of an image file, loaded and turned upright as its EXIF orientation says (phone photos
    store their rotation there), in its own mode. Raises whatever PIL raises for unreadable files."""
    with warnings.catch_warnings():  # PIL only warns between its bomb limit and twice it: refuse those too
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(fp) as im:
            im.seek(0)
            im.load()
            try:
                return ImageOps.exif_transpose(im)  # a copy, transposed or not
            except Exception:  # a damaged EXIF block should not cost the whole image
                return im.copy()


def make_square(img: Image.Image, fit: str) -> Image.Image:
    """Square an image: ``center-crop`` the middle, ``pad`` with black around it, or ``stretch``."""
    w, h = img.size
    if w == h or fit == "stretch":
        return img
    if fit == "center-crop":
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        return img.crop((left, top, left + s, top + s))
    if fit == "pad":
        s = max(w, h)
        out = Image.new(img.mode, (s, s), 0)
        out.paste(img, ((s - w) // 2, (s - h) // 2))
        return out
    raise ValueError(f"unknown fit mode {fit!r}")


def resize(img: Image.Image, resolution: int) -> Image.Image:
    """Resize to ``resolution`` x ``resolution`` with Lanczos (box-reducing first on big shrinks)."""
    if img.size == (resolution, resolution):
        return img
    return img.resize((resolution, resolution), Image.LANCZOS, reducing_gap=3.0)


def prepare(img: Image.Image, fit: str, resolution: int) -> np.ndarray:
    """Square and resize a decoded ``L``/``RGB`` image; returns uint8 ``[C, H, W]``."""
    arr = np.asarray(resize(make_square(img, fit), resolution), dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr)
