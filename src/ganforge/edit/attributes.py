"""What a generated image shows, as one number per image: the scores that InterFaceGAN-style directions
are fitted to (:func:`ganforge.edit.directions.find_directions` with ``method="svm"``).

Built-in attributes for digits, measured from the pixels (ink is where the gray value is above half way):

* ``thickness``: stroke width in pixels, the ink (summed gray values) divided by the length of its
  skeleton (``skimage.morphology.skeletonize``): a dilated digit has the same skeleton and more ink;
* ``slant``: how far the ink's top leans right of its bottom, from the second moments of the ink
  (``-cov(x, y) / var(y)``, 0 for upright strokes, positive leaning right, negative leaning left);
* ``width``: the standard deviation of the ink along x, in pixels;
* ``class:K``: the built-in digit network's probability that the image is digit K.

Any other score comes from a user's callable (``module:callable`` or ``path/to/file.py:callable``, called
with images ``[B, C, H, W]`` in [-1, 1] and returning ``[B]`` scores) or from :class:`FolderClassifier`,
a logistic regression that ganforge trains on a folder with one sub-folder of images per label.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ganforge.errors import ConfigError, DataError, GanforgeError

PIXEL_ATTRIBUTES = ("thickness", "slant", "width")
ATTRIBUTE_HELP = "thickness, slant, width or class:K (the digit network's probability of digit K, K in 0..9)"
INK = 0.5  # gray level (0 = background, 1 = full ink) above which a pixel is stroke


def check_attribute(name: str) -> str:
    """``name`` if it is a built-in attribute, else a one-line ConfigError listing them."""
    if name in PIXEL_ATTRIBUTES:
        return name
    kind, sep, k = name.partition(":")
    if kind == "class" and sep and k.isdigit() and 0 <= int(k) <= 9:
        return name
    if kind == "class":
        raise ConfigError(f"attribute '{name}': the digit network knows digits 0..9; use class:0 to class:9")
    raise ConfigError(f"unknown attribute '{name}'; choose {ATTRIBUTE_HELP}")


def is_attribute(name: str) -> bool:
    try:
        check_attribute(name)
    except ConfigError:
        return False
    return True


def ink(images: torch.Tensor, crop: int = 0) -> np.ndarray:
    """Images in [-1, 1] ``[B, C, H, W]`` -> gray ink in [0, 1] ``[B, H, W]`` (channels averaged), without
    a border of ``crop`` pixels (the padding a run added to its data)."""
    x = images.detach().float().cpu().mean(dim=1)
    if crop:
        x = x[:, crop:-crop, crop:-crop]
    return ((x + 1) / 2).clamp(0, 1).numpy()


def thickness(images: torch.Tensor, crop: int = 0) -> np.ndarray:
    from skimage.morphology import skeletonize

    gray = ink(images, crop)
    out = np.zeros(len(gray))
    for i, g in enumerate(gray):
        length = int(skeletonize(g > INK).sum())
        out[i] = g.sum() / length if length else 0.0
    return out


def _moments(images: torch.Tensor, crop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ink-weighted var(x), var(y) and cov(x, y) per image (x to the right, y down)."""
    gray = ink(images, crop).astype(np.float64)
    h, w = gray.shape[1:]
    ys, xs = np.mgrid[0:h, 0:w]
    mass = gray.sum(axis=(1, 2)) + 1e-8
    cx = (gray * xs).sum(axis=(1, 2)) / mass
    cy = (gray * ys).sum(axis=(1, 2)) / mass
    dx, dy = xs[None] - cx[:, None, None], ys[None] - cy[:, None, None]
    return tuple((gray * a).sum(axis=(1, 2)) / mass for a in (dx * dx, dy * dy, dx * dy))


def slant(images: torch.Tensor, crop: int = 0) -> np.ndarray:
    _, var_y, cov = _moments(images, crop)
    return -cov / np.maximum(var_y, 1e-8)  # y grows downward: a top leaning right has cov(x, y) < 0


def width(images: torch.Tensor, crop: int = 0) -> np.ndarray:
    return np.sqrt(_moments(images, crop)[0])


_DIGIT_NET = []


def digit_network():
    """The built-in digit network (loaded once)."""
    if not _DIGIT_NET:
        from ganforge.metrics.digits import load_classifier

        _DIGIT_NET.append(load_classifier())
    return _DIGIT_NET[0]


def class_probs(images: torch.Tensor, crop: int = 0) -> np.ndarray:
    """``[B, 10]`` digit probabilities from the built-in digit network."""
    from ganforge.metrics.digits import predict

    x = images.detach().float().cpu()
    if crop:
        x = x[..., crop:-crop, crop:-crop]
    return predict(digit_network(), x).numpy()


def measure(name: str, images: torch.Tensor, crop: int = 0) -> np.ndarray:
    """The built-in attribute ``name`` of each image: ``[B]`` float64."""
    check_attribute(name)
    if name.startswith("class:"):
        return class_probs(images, crop)[:, int(name.partition(":")[2])].astype(np.float64)
    return {"thickness": thickness, "slant": slant, "width": width}[name](images, crop)


# ----------------------------------------------------------------- the user's scores
def load_callable(spec: str) -> Callable:
    """``module:callable`` or ``path/to/file.py:callable`` -> the callable (images -> scores)."""
    module, sep, attr = spec.rpartition(":")
    if not sep or not module or not attr:
        raise ConfigError(f"--classifier '{spec}': give module:callable (e.g. mypkg.scores:age) or "
                          "path/to/file.py:callable, or a folder with one sub-folder of images per label")
    try:
        if module.endswith(".py"):
            path = Path(module)
            if not path.is_file():
                raise ConfigError(f"--classifier '{spec}': {path} not found")
            mod_spec = importlib.util.spec_from_file_location(path.stem, path)
            mod = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(mod)
        else:
            if "" not in sys.path:  # as `python -m`: modules in the current folder are found
                sys.path.insert(0, "")
            mod = importlib.import_module(module)
    except ConfigError:
        raise
    except Exception as e:  # the user's code: any failure to import is one line naming it
        raise ConfigError(f"--classifier '{spec}': cannot import {module} ({type(e).__name__}: {e})") from e
    fn = getattr(mod, attr, None)
    if not callable(fn):
        raise ConfigError(f"--classifier '{spec}': {module} has no callable named '{attr}'")
    return fn


def call_scores(fn: Callable, images: torch.Tensor, what: str) -> np.ndarray:
    """``fn(images)`` as ``[B]`` float64, checked: one finite score per image."""
    try:
        out = fn(images)
    except GanforgeError:  # already one line (e.g. a scorer wrapped by scorer())
        raise
    except Exception as e:  # the user's code: one line that says whose error it is
        first = str(e).splitlines()[0] if str(e) else ""
        raise ConfigError(f"{what} raised {type(e).__name__}" + (f": {first}" if first else "") +
                          " (run it on a [B, C, H, W] batch in [-1, 1] to debug it)") from e
    if isinstance(out, torch.Tensor):
        out = out.detach().float().cpu().numpy()
    out = np.asarray(out, dtype=np.float64)
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.shape != (len(images),):
        raise ConfigError(f"{what} returned scores of shape {list(out.shape)} for {len(images)} images; "
                          f"it must return one number per image ([{len(images)}])")
    if not np.isfinite(out).all():
        raise ConfigError(f"{what} returned scores that are not finite (NaN or inf)")
    return out


class FolderClassifier:
    """A logistic regression trained on a folder with one sub-folder of images per label (``young/``,
    ``old/``); it scores generated images by the log-odds of ``positive`` (the last sub-folder in sorted
    order unless named). Features: the built-in digit network's embedding for gray images, else the
    pixels at 16x16."""

    def __init__(self, folder: str | Path, channels: int, resolution: int, positive: str | None = None):
        from sklearn.linear_model import LogisticRegression

        from ganforge.config import DataConfig
        from ganforge.data import load_dataset

        self.folder = Path(folder)
        data = load_dataset(DataConfig(source=str(folder), resolution=resolution, channels=channels,
                                       labels=True, cache=False))
        if data.labels is None or len(data.class_names) < 2:
            raise DataError(f"{folder}: a classifier folder needs one sub-folder of images per label (at least "
                            f"two, e.g. young/ and old/); found {len(data.class_names)}")
        self.labels = list(data.class_names)
        if positive is None:
            positive = self.labels[-1]
        if positive not in self.labels:
            raise ConfigError(f"{folder} has no label '{positive}'; its labels are {', '.join(self.labels)}")
        self.positive, self.gray = positive, channels == 1
        x = self.features(data.images.float() / 127.5 - 1)
        y = (data.labels.numpy() == self.labels.index(positive)).astype(int)
        self.model = LogisticRegression(max_iter=2000).fit(x, y)
        self.train_accuracy = float(self.model.score(x, y))
        self.counts = {name: int((data.labels == i).sum()) for i, name in enumerate(self.labels)}

    def features(self, images: torch.Tensor) -> np.ndarray:
        import torch.nn.functional as F

        x = images.detach().float().cpu()
        if self.gray:
            with torch.no_grad():
                return digit_network().features(x).numpy()
        return F.interpolate(x, size=(16, 16), mode="area").flatten(1).numpy()

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        return self.model.decision_function(self.features(images))


def scorer(spec: str, channels: int, resolution: int, positive: str | None = None) -> tuple[Callable, str]:
    """(images -> scores, a name) for ``--classifier``: a folder of labelled images or a callable."""
    if Path(spec).is_dir():
        clf = FolderClassifier(spec, channels, resolution, positive)
        return clf, clf.positive
    fn = load_callable(spec)
    return (lambda images: call_scores(fn, images, f"--classifier {spec}")), spec.rpartition(":")[2]
