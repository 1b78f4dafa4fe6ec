"""Loading training images: built-in datasets, or a user folder / .zip of image files.

``load_dataset(cfg)`` returns the whole dataset in memory as uint8 ``[N, C, H, W]`` (an
:class:`ImageDataset`); the trainer shuffles, batches and scales it. Problems with the source are
raised as :class:`DataError` before any training starts.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ganforge.config import DataConfig
from ganforge.data import cache as _cache
from ganforge.data.builtin import BUILTINS, load_builtin
from ganforge.data.core import (
    DEFAULT_FOLDER_RESOLUTION,
    FIT_MODES,
    IMAGE_EXTENSIONS,
    MAX_RESOLUTION,
    MIN_RESOLUTION,
    ImageDataset,
)
from ganforge.data.files import Decoded, decode_all, scan_folder, scan_zip, why_unlabelled
from ganforge.errors import DataError, OutputPathError, warn

__all__ = ["DataError", "ImageDataset", "load_dataset", "builtin_datasets", "default_cache_dir",
           "IMAGE_EXTENSIONS"]


def builtin_datasets() -> dict[str, str]:
    """Built-in dataset names and a one-line description of each."""
    return {name: desc for name, (desc, _) in BUILTINS.items()}


def default_cache_dir() -> Path:
    """``$GANFORGE_CACHE`` when set, else ``~/.cache/ganforge``."""
    env = os.environ.get("GANFORGE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ganforge"


def _check_options(cfg: DataConfig) -> None:
    res = cfg.resolution
    if res is not None and (isinstance(res, bool) or not isinstance(res, int)
                            or not MIN_RESOLUTION <= res <= MAX_RESOLUTION):
        raise DataError(f"resolution must be a whole number from {MIN_RESOLUTION} to {MAX_RESOLUTION} (or unset), "
                        f"got {res!r}")
    if cfg.channels not in (None, 1, 3) or isinstance(cfg.channels, bool):
        raise DataError(f"channels must be 1 (gray), 3 (RGB) or unset for auto, got {cfg.channels!r}")
    if cfg.fit not in FIT_MODES:
        raise DataError(f"fit must be one of {', '.join(FIT_MODES)}, got {cfg.fit!r}")
    if isinstance(cfg.pad, bool) or not isinstance(cfg.pad, int) or cfg.pad < 0:
        raise DataError(f"pad must be a whole number of pixels >= 0, got {cfg.pad!r}")


def _pad(data: ImageDataset, pad: int) -> ImageDataset:
    """A black border of ``pad`` pixels on every side (e.g. 28 px MNIST to StyleGAN2's 32 px)."""
    if pad:
        data.images = torch.nn.functional.pad(data.images, (pad, pad, pad, pad)).contiguous()
    return data


def _note_ignored_labels(classes: int, family: str) -> None:
    """Say once that an unconditional family drops the classes the user laid out as sub-folders."""
    from ganforge import models

    if family not in models.families() or models.is_conditional(family):
        return  # an unknown family is reported when the model is built
    conditional = [f for f in models.families() if models.is_conditional(f)]
    instead = f"c{family}" if f"c{family}" in conditional else " or ".join(conditional)
    warn(f"data has {classes} classes (sub-folders) but family {family} is unconditional: labels ignored; "
         f"use {instead} to use them, or --no-labels to silence this", stacklevel=3)


def load_dataset(cfg: DataConfig, cache_dir: str | Path | None = None, family: str | None = None) -> ImageDataset:
    """Load ``cfg.source`` (a built-in name, a folder or a .zip) preprocessed per ``cfg``.

    User data is cached under ``cache_dir/datasets`` (default :func:`default_cache_dir`) when
    ``cfg.cache`` is set, so a later load with the same files and options skips decoding. ``family``, the
    model family the data is loaded for (training passes it, once per run), adds a warning when a folder's
    class sub-folders would be ignored by an unconditional family.
    """
    _check_options(cfg)
    source = str(cfg.source)
    if source in BUILTINS:
        return _pad(load_builtin(source, cfg), cfg.pad)

    path = Path(source).expanduser()
    if not path.exists():
        names = ", ".join(BUILTINS)
        raise DataError(f"data folder '{source}' not found: pass a folder or .zip of images, "
                        f"or a built-in name ({names})")
    if path.is_file() and path.suffix.lower() != ".zip":
        raise DataError(f"'{source}' is a file, not a folder or .zip: pass the folder that holds the "
                        f"images, or a .zip of them")
    path = path.resolve()
    src = scan_zip(path) if path.is_file() else scan_folder(path)
    resolution = cfg.resolution or DEFAULT_FOLDER_RESOLUTION
    display = source

    data: Decoded | None = None
    target = None
    if cfg.cache and len(src):
        key = _cache.cache_key(src, resolution, cfg.channels, cfg.fit, cfg.labels)
        target = _cache.cache_path(Path(cache_dir) if cache_dir is not None else default_cache_dir(), key)
        data = _cache.load(target)
    if data is None:
        data = decode_all(src, cfg.channels, cfg.fit, resolution, cfg.labels, display)
        if target is not None:
            try:
                _cache.save(target, data)
            except (OSError, OutputPathError) as e:  # a read-only or full disk should not stop training
                warn(f"could not write the dataset cache {target} ({e}); continuing without it", stacklevel=2)
    if data.skip_message:
        warn(data.skip_message, stacklevel=2)
    if family is not None and data.labels is not None:
        _note_ignored_labels(len(data.class_names), family)

    labels = torch.from_numpy(data.labels) if data.labels is not None else None
    dataset = ImageDataset(torch.from_numpy(data.images), labels, list(data.class_names), display, data.skipped)
    if labels is None and cfg.labels:
        dataset.label_note = why_unlabelled(src.rel)
    return _pad(dataset, cfg.pad)
