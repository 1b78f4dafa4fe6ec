"""Fréchet distance between Gaussians fitted to two feature sets (FID when the features are Inception's)."""
from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg

from ganforge.errors import EvalError


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of ``features`` [N, D], in float64."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise EvalError(f"FID needs at least 2 feature vectors, got shape {x.shape}: raise --n")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2))."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise EvalError(f"feature sizes differ ({mu1.shape[0]} vs {mu2.shape[0]}): use the same --features for both")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # a singular product is handled below, not worth a warning
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        # Near-singular product (fewer samples than dimensions): regularise both, as pytorch-fid does.
        offset = np.eye(sigma1.shape[0]) * eps
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    # sqrtm may return tiny imaginary parts from rounding; the true root of a PSD product is real.
    covmean = np.real(covmean)
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))
    return max(value, 0.0)  # rounding can give -1e-12 for identical sets


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))


def real_floor(features: np.ndarray, n: int, seed: int = 0) -> tuple[float, int]:
    """FID between two disjoint random halves of a real feature set, each of min(n, N // 2) samples.

    The FID a perfect generator would get at about this sample size: the finite-sample bias floor."""
    m = min(int(n), len(features) // 2)
    if m < 2:
        return float("nan"), m
    perm = np.random.default_rng(seed).permutation(len(features))
    return fid_from_features(features[perm[:m]], features[perm[m:2 * m]]), m
