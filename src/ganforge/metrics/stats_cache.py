"""Cached features of real data sets, per data set and extractor, under ``<ganforge cache>/eval``.

The key hashes the data (pixels of an in-memory set, or the file list with sizes and mtimes and the
decoding options of a folder), the extractor's key (its weights) and how many images were used, so a
changed file, option or network makes a new entry. Files are plain ``.npz``, loaded without pickle.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganforge.data import default_cache_dir
from ganforge.metrics.fid import gaussian_stats
from ganforge.storage.atomic import atomic_write_with

FORMAT = 1  # bump when feature extraction changes, so stale entries are not reused


@dataclass
class RealStats:
    features: np.ndarray  # float32 [N, D]
    mu: np.ndarray
    sigma: np.ndarray
    from_cache: bool = False


def stats_key(data_key: str, extractor_key: str, count: int, seed: int) -> str:
    payload = {"format": FORMAT, "data": data_key, "extractor": extractor_key, "count": count, "seed": seed}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def stats_path(key: str, cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / "eval" / f"{key}.npz"


def load(path: Path) -> RealStats | None:
    """The cached stats, or None when missing or damaged (they are then computed again)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            feats, mu, sigma = z["features"], z["mu"], z["sigma"]
    except Exception:
        return None
    d = feats.shape[1] if feats.ndim == 2 else -1
    if mu.shape != (d,) or sigma.shape != (d, d):
        return None
    return RealStats(feats, mu, sigma, from_cache=True)


def save(path: Path, stats: RealStats) -> None:
    atomic_write_with(path, lambda f: np.savez(f, features=stats.features, mu=stats.mu, sigma=stats.sigma))


def real_stats(data_key: str, extractor_key: str, count: int, seed: int,
               compute: Callable[[], np.ndarray], use_cache: bool = True) -> RealStats:
    """Features (and their Gaussian) of a real set, from the cache or ``compute()`` (then cached)."""
    path = stats_path(stats_key(data_key, extractor_key, count, seed))
    if use_cache and (hit := load(path)) is not None:
        return hit
    feats = np.asarray(compute(), dtype=np.float32)
    stats = RealStats(feats, *gaussian_stats(feats))
    if use_cache:
        with contextlib.suppress(OSError):  # a read-only cache only costs time
            save(path, stats)
    return stats
