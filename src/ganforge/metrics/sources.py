"""Image sources to evaluate: an in-memory data set, a folder / .zip streamed from disk, or a generator.

Each yields uint8 batches ``([B, C, H, W], labels or None)`` of a seeded choice of ``count`` images, so
large sets never sit in memory as floats. Generated images are quantised to uint8 exactly as
``ganforge generate`` writes them, so scoring a run and scoring its saved PNGs agree.
"""
from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganforge.data import ImageDataset
from ganforge.data import cache as data_cache
from ganforge.data import images as imgs
from ganforge.data.files import scan_folder, scan_zip
from ganforge.errors import DataError, warn
from ganforge.generate.sampling import classes, generate, latents
from ganforge.storage.images import to_uint8

Batch = tuple[torch.Tensor, "torch.Tensor | None"]


def _choice(n: int, count: int, seed: int) -> np.ndarray:
    """``count`` of ``n`` indices, a seeded random choice (all of them, shuffled, when count >= n)."""
    return np.random.default_rng(seed).permutation(n)[:count]


class DatasetSource:
    def __init__(self, data: ImageDataset, builtin: bool = False):
        self.data, self.name, self.builtin = data, data.name, builtin
        self.size, self.channels, self.resolution = len(data), data.channels, data.resolution

    def cache_key(self) -> str:
        """A hash of the pixels themselves: any change in the files or options changes it."""
        h = hashlib.sha256(str(tuple(self.data.images.shape)).encode())
        h.update(self.data.images.numpy().tobytes())
        return "dataset:" + h.hexdigest()

    def batches(self, count: int, batch_size: int, seed: int = 0) -> Iterator[Batch]:
        idx = torch.from_numpy(_choice(self.size, count, seed))
        for i in range(0, len(idx), batch_size):
            j = idx[i:i + batch_size]
            yield self.data.images[j], None if self.data.labels is None else self.data.labels[j]


class FolderSource:
    """Images of a folder (recursively) or a .zip, decoded batch by batch as they are needed."""

    def __init__(self, path: str | Path, resolution: int | None = None, channels: int | None = None,
                 fit: str = "center-crop"):
        p = Path(path).expanduser()
        if not p.exists():
            raise DataError(f"image folder '{path}' not found: pass a folder or .zip of images")
        p = p.resolve()
        self.src = scan_zip(p) if p.is_file() else scan_folder(p)
        if not len(self.src):
            raise DataError(f"no images found in '{path}' (looked for png, jpg, webp, bmp, gif, in sub-folders too)")
        self.name, self.builtin, self.size = str(path), False, len(self.src)
        self.resolution, self.fit, self.channels, self.skipped = resolution, fit, channels, 0
        if resolution is None or channels is None:  # the first readable file sets what is not given
            first = next(self._images(range(self.size)), None)
            if first is None:
                raise DataError(f"no readable images in '{path}'")
            w, h = first.size
            self.resolution = resolution or (min(w, h) if fit == "center-crop" else max(w, h))
            self.channels = channels or (1 if first.mode == "L" else 3)

    def cache_key(self) -> str:
        return "folder:" + data_cache.cache_key(self.src, self.resolution, self.channels, self.fit, False)

    def _images(self, indices) -> Iterator[Image.Image]:
        """Decoded ``L``/``RGB`` images; damaged files are skipped and counted, as in training."""
        zf = zipfile.ZipFile(self.src.path) if self.src.is_zip else None
        try:
            for i in indices:
                key = self.src.keys[i]
                try:
                    fp = io.BytesIO(zf.read(key)) if zf is not None else key
                    yield imgs.decode(fp, self.channels)[0]
                except Exception:  # PIL and zlib raise many types for damaged files
                    self.skipped += 1
        finally:
            if zf is not None:
                zf.close()

    def _arrays(self, indices) -> Iterator[np.ndarray]:
        for img in self._images(indices):
            arr = imgs.prepare(img, self.fit, self.resolution)
            yield np.repeat(arr, 3, axis=0) if arr.shape[0] == 1 and self.channels == 3 else arr

    def batches(self, count: int, batch_size: int, seed: int = 0) -> Iterator[Batch]:
        self.skipped, idx = 0, _choice(self.size, count, seed)
        for i in range(0, len(idx), batch_size):
            arrays = list(self._arrays(idx[i:i + batch_size]))
            if arrays:
                yield torch.from_numpy(np.stack(arrays)), None
        if self.skipped:
            warn(f"skipped {self.skipped} files of {self.name} that could not be read as images", stacklevel=2)


class GeneratorSource:
    """Samples of a generator: the first ``count`` latents of ``seed``, classes cycling for conditional G."""

    builtin = False

    def __init__(self, G: torch.nn.Module, name: str = "generator", truncation: float = 1.0):
        self.G, self.name, self.truncation = G, name, truncation
        self.size = None  # as many as asked for
        self.channels, self.resolution = G.img_shape[0], G.img_shape[1]

    def batches(self, count: int, batch_size: int, seed: int = 0) -> Iterator[Batch]:
        z = latents(self.G, count, seed, self.truncation)
        c = classes(self.G, count, None)
        for i in range(0, count, batch_size):
            cb = None if c is None else c[i:i + batch_size]
            x = generate(self.G, z[i:i + batch_size], cb, batch_size, truncation=self.truncation)
            yield torch.from_numpy(to_uint8(x)).permute(0, 3, 1, 2).contiguous(), cb
