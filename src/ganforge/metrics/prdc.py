"""Nearest-neighbour manifold metrics on feature sets.

* Improved precision and recall (Kynkäänniemi et al. 2019): a set's manifold is the union of balls around
  each of its points with radius the distance to its k-th nearest neighbour (k=3). Precision is the share
  of fakes inside the real manifold; recall the share of reals inside the fake manifold.
* Density and coverage (Naeem et al. 2020, k=5): density counts, per fake, how many real balls hold it
  (divided by k, so it can pass 1); coverage is the share of real balls that hold at least one fake.

Balls are closed (distance <= radius), as in the papers' definitions. Distances are computed in row
chunks so that 10k x 10k sets do not need a 10k x 10k matrix at once.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ganforge.errors import EvalError

CHUNK = 1024


def _distance_rows(a: np.ndarray, b: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """Euclidean distances of row chunks of ``a`` to all of ``b``: (rows, [len(rows), len(b)])."""
    b_sq = (b * b).sum(1)
    for start in range(0, len(a), CHUNK):
        rows = slice(start, min(start + CHUNK, len(a)))
        x = a[rows]
        d2 = (x * x).sum(1)[:, None] + b_sq[None, :] - 2.0 * (x @ b.T)
        yield rows, np.sqrt(np.maximum(d2, 0.0))


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row of ``x`` to its k-th nearest other row."""
    if not 1 <= k < len(x):
        raise EvalError(f"k={k} nearest neighbours need more than {k} points per set, got {len(x)}: raise --n")
    out = np.empty(len(x))
    for rows, d in _distance_rows(x, x):
        d[np.arange(d.shape[0]), np.arange(rows.start, rows.stop)] = -1.0  # self sorts first
        out[rows] = np.partition(d, k, axis=1)[:, k]
    return out


def _as64(real, fake):
    return np.asarray(real, np.float64), np.asarray(fake, np.float64)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    real, fake = _as64(real, fake)
    r_real, r_fake = knn_radii(real, k), knn_radii(fake, k)
    fake_in_real = np.zeros(len(fake), bool)
    real_in_fake = np.zeros(len(real), bool)
    for rows, d in _distance_rows(real, fake):  # d: [reals in chunk, fakes]
        fake_in_real |= (d <= r_real[rows, None]).any(0)
        real_in_fake[rows] = (d <= r_fake[None, :]).any(1)
    return float(fake_in_real.mean()), float(real_in_fake.mean())


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5) -> tuple[float, float]:
    real, fake = _as64(real, fake)
    radii = knn_radii(real, k)
    inside_count = 0
    covered = np.zeros(len(real), bool)
    for rows, d in _distance_rows(real, fake):
        inside = d <= radii[rows, None]
        inside_count += int(inside.sum())
        covered[rows] = inside.any(1)
    return inside_count / (k * len(fake)), float(covered.mean())
