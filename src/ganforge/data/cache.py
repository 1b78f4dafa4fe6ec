"""On-disk cache of preprocessed user datasets, as plain ``.npz`` files (never pickles)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ganforge.data.files import Decoded, FileSource
from ganforge.storage.atomic import atomic_write_with

CACHE_FORMAT = 1  # bump when the preprocessing changes, so old caches are not reused


def cache_key(src: FileSource, resolution: int, channels: int | None, fit: str, labels: bool) -> str:
    """sha256 over the source path, its files (name, size, mtime) and every option that shapes the data."""
    payload = {
        "format": CACHE_FORMAT,
        "source": str(src.path),
        "zip": src.is_zip,
        "files": src.fingerprint,
        "resolution": resolution,
        "channels": channels,
        "fit": fit,
        "labels": bool(labels),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def cache_path(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / "datasets" / f"{key}.npz"


def save(path: Path, data: Decoded) -> None:
    def write(f):
        np.savez(
            f,
            images=data.images,
            labels=data.labels if data.labels is not None else np.zeros(0, dtype=np.int64),
            has_labels=np.array(data.labels is not None),
            class_names=np.array(data.class_names, dtype=np.str_),
            skipped=np.array(data.skipped, dtype=np.int64),
            skip_message=np.array(data.skip_message, dtype=np.str_),
        )

    atomic_write_with(path, write)


def load(path: Path) -> Decoded | None:
    """The cached data at ``path``, or None when it is missing or damaged (it is then rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            images = z["images"]
            has_labels = bool(z["has_labels"])
            labels = z["labels"] if has_labels else None
            class_names = [str(c) for c in z["class_names"].tolist()]
            skipped = int(z["skipped"])
            message = str(z["skip_message"])
    except Exception:  # truncated or foreign file: ignore it, the caller decodes afresh
        return None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] == 0:
        return None
    if labels is not None and (labels.dtype != np.int64 or labels.shape != (images.shape[0],)):
        return None
    return Decoded(images, labels, class_names, skipped, message)
