"""Training augmentation and evaluation perturbations, applied to real and fake alike (PIL on uint8 arrays).

An image in the wild has often been blurred, re-compressed, resized or cropped on its way to the detector;
training on such copies of *both* classes keeps a detector from relying on traces that this erases.
Every op takes and returns uint8 ``[C, S, S]`` at the detector's size (a resized copy is brought back to S
by the same Lanczos rule as decoding).
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

BLUR_SIGMA = (0.0, 3.0)
JPEG_QUALITY = (30, 100)
RESIZE_FACTOR = (0.5, 1.5)
CROP_FRACTION = (0.75, 1.0)
PERTURBATIONS = ("jpeg", "resize", "blur")


def to_pil(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))


def from_pil(img: Image.Image, channels: int) -> np.ndarray:
    out = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    return np.ascontiguousarray(out[None] if out.ndim == 2 else out.transpose(2, 0, 1))


def _back(img: Image.Image, size: int) -> Image.Image:
    return img if img.size == (size, size) else img.resize((size, size), Image.LANCZOS)


def blur(arr: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return arr
    return from_pil(to_pil(arr).filter(ImageFilter.GaussianBlur(float(sigma))), arr.shape[0])


def jpeg(arr: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    to_pil(arr).save(buf, "JPEG", quality=int(quality))
    return from_pil(Image.open(io.BytesIO(buf.getvalue())), arr.shape[0])


def resize(arr: np.ndarray, factor: float) -> np.ndarray:
    """Resize by ``factor`` (as a smaller or larger copy would arrive), then back to the detector's size."""
    size = arr.shape[-1]
    side = max(2, int(round(size * factor)))
    if side == size:
        return arr
    return from_pil(_back(to_pil(arr).resize((side, side), Image.LANCZOS), size), arr.shape[0])


def crop(arr: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    size = arr.shape[-1]
    side = max(2, int(round(size * fraction)))
    if side >= size:
        return arr
    y, x = rng.integers(0, size - side + 1, size=2)
    return from_pil(_back(to_pil(arr[:, y:y + side, x:x + side]), size), arr.shape[0])


def random_augment(arr: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Each of crop, resize, blur and JPEG with probability ``p``, in that order (a copy's usual history)."""
    if rng.random() < p:
        arr = crop(arr, rng.uniform(*CROP_FRACTION), rng)
    if rng.random() < p:
        arr = resize(arr, rng.uniform(*RESIZE_FACTOR))
    if rng.random() < p:
        arr = blur(arr, rng.uniform(*BLUR_SIGMA))
    if rng.random() < p:
        arr = jpeg(arr, int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))
    return arr


def perturb(images: np.ndarray, name: str, value: float) -> np.ndarray:
    """The evaluation perturbation ``name`` (jpeg quality, resize factor, blur sigma) on every image."""
    op = {"jpeg": lambda a: jpeg(a, int(value)), "resize": lambda a: resize(a, value),
          "blur": lambda a: blur(a, value)}[name]
    return np.stack([op(a) for a in images])
