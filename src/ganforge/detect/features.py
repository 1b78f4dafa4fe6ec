"""Spectral features of an image batch, in named groups and frequency bands (so a score can be explained).

Groups (all computed on luma scaled to 0..1; ``colour`` only for RGB detectors):

* ``spectrum``: the azimuthally averaged log power spectrum (one value per integer radius), as Durall et al.;
* ``residual DCT``: the mean log magnitude of each of the 64 coefficients of the 8x8 block DCT of the
  high-pass residual (image minus its 3x3 box blur), as Frank et al. but on the residual;
* ``periodic peaks``: the residual's log power at the frequencies where up-sampling layers leave a grid
  (1/2 and 1/4 cycles per pixel, along the axes and diagonals) over the median of the residual spectrum:
  transposed convolutions and nearest up-sampling light these up;
* ``pixel statistics``: share of pure black and pure white pixels, a 16-bin histogram, mean, spread and
  residual energy: generators rarely hit exactly 0 or 255 where real scans and photos do;
* ``colour``: correlation of the three channels' residuals and mean saturation (demosaicing vs generators).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.fft import dctn
from scipy.ndimage import uniform_filter

EPS = 1e-8
BANDS = ((0.0, 0.125, "low"), (0.125, 0.25, "mid"), (0.25, 0.71, "high"))  # cycles per pixel


@dataclass(frozen=True)
class Layout:
    """Where each feature sits: ``groups[i]`` and ``bands[i]`` name feature ``i`` ('' = no band)."""

    groups: tuple[str, ...]
    bands: tuple[str, ...]
    freqs: tuple[float, ...]  # cycles per pixel of feature i (0 for band-less features)

    def __len__(self) -> int:
        return len(self.groups)


def band_of(f: float) -> str:
    return next(name for lo, hi, name in BANDS if lo <= f < hi)


@lru_cache(maxsize=8)
def _radius(size: int) -> tuple[np.ndarray, int]:
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    r = np.rint(np.sqrt(fx ** 2 + fy ** 2) * size).astype(np.int64)
    return r, size // 2


def _peaks(size: int) -> list[tuple[int, int, float]]:
    """(row, column, cycles per pixel) of the grid frequencies that exist at this size."""
    out = []
    for fy, fx in ((0, 2), (2, 0), (2, 2), (0, 4), (4, 0), (4, 4), (2, 4), (4, 2)):  # 1/fy, 1/fx of the size
        ky = size // fy if fy else 0
        kx = size // fx if fx else 0
        if (ky == 0 or size % fy == 0) and (kx == 0 or size % fx == 0):
            out.append((ky, kx, float(np.hypot(ky, kx) / size)))
    return out


@lru_cache(maxsize=8)
def layout(size: int, channels: int) -> Layout:
    groups, bands, freqs = [], [], []
    _, rmax = _radius(size)
    for k in range(1, rmax + 1):
        groups.append("spectrum")
        bands.append(band_of(k / size))
        freqs.append(k / size)
    for u in range(8):
        for v in range(8):
            f = np.hypot(u, v) / 16.0  # DCT coefficient k of an 8-block is k/16 cycles per pixel
            groups.append("residual DCT")
            bands.append(band_of(f))
            freqs.append(float(f))
    for _, _, f in _peaks(size):
        groups.append("periodic peaks")
        bands.append(band_of(f))
        freqs.append(f)
    for _ in range(2 + 16 + 3):
        groups.append("pixel statistics")
        bands.append("")
        freqs.append(0.0)
    if channels == 3:
        for _ in range(4):
            groups.append("colour")
            bands.append("")
            freqs.append(0.0)
    return Layout(tuple(groups), tuple(bands), tuple(freqs))


def luma(x: np.ndarray) -> np.ndarray:
    """uint8 ``[N, C, S, S]`` -> float ``[N, S, S]`` in 0..1 (ITU-R 601 for colour)."""
    x = x.astype(np.float32) / 255.0
    if x.shape[1] == 3:
        return 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    return x[:, 0]


def residual(g: np.ndarray) -> np.ndarray:
    """High-pass residual: the image minus its 3x3 box blur (per image)."""
    return g - uniform_filter(g, size=(1, 3, 3), mode="reflect")


def power(g: np.ndarray) -> np.ndarray:
    """Log power spectrum of mean-removed images, ``[N, S, S]`` (unshifted)."""
    g = g - g.mean(axis=(1, 2), keepdims=True)
    f = np.fft.fft2(g, axes=(1, 2))
    return np.log(np.abs(f) ** 2 + EPS)


def azimuthal(logp: np.ndarray) -> np.ndarray:
    """Average of ``[N, S, S]`` log power over rings of integer radius 1..S/2: ``[N, S/2]``."""
    n, size, _ = logp.shape
    return logp.reshape(n, -1) @ _ring_matrix(size)


@lru_cache(maxsize=8)
def _ring_matrix(size: int) -> np.ndarray:
    """``[S*S, S/2]``: column k averages the pixels of ring k + 1 (one matrix product for the whole batch)."""
    r, rmax = _radius(size)
    flat = r.reshape(-1)
    m = np.zeros((flat.size, rmax))
    for k in range(1, rmax + 1):
        sel = flat == k
        m[sel, k - 1] = 1.0 / max(int(sel.sum()), 1)
    return m


def block_dct(res: np.ndarray) -> np.ndarray:
    """Mean log |DCT| of the 8x8 blocks of ``[N, S, S]`` (central crop to a multiple of 8): ``[N, 64]``."""
    n, size, _ = res.shape
    m = max(8, size // 8 * 8)
    if size < 8:  # only reached by tiny test detectors
        res = np.pad(res, ((0, 0), (0, 8 - size), (0, 8 - size)))
        size = 8
    o = (size - m) // 2
    crop = res[:, o:o + m, o:o + m]
    b = m // 8
    blocks = crop.reshape(n, b, 8, b, 8).transpose(0, 1, 3, 2, 4)
    coef = dctn(blocks, axes=(3, 4), norm="ortho")
    return np.log(np.abs(coef) + 1e-4).mean(axis=(1, 2)).reshape(n, 64)


def extract(x: np.ndarray) -> np.ndarray:
    """Feature matrix ``[N, len(layout)]`` of uint8 images ``[N, C, S, S]``."""
    n, c, size, _ = x.shape
    g = luma(x)
    res = residual(g)
    spec = azimuthal(power(g))
    dct = block_dct(res)
    rp = power(res)
    med = np.median(rp.reshape(n, -1), axis=1, keepdims=True)
    grid = _peaks(size)  # none at odd sizes, where no 2x or 4x up-sampling grid fits
    peaks = (np.stack([rp[:, ky % size, kx % size] for ky, kx, _ in grid], axis=1) - med if grid
             else np.zeros((n, 0)))
    u8 = x if c == 1 else np.rint(g * 255.0)
    black = (u8 == 0).reshape(n, -1).mean(axis=1)
    white = (u8 == 255).reshape(n, -1).mean(axis=1)
    bins = np.minimum((g.reshape(n, -1) * 16).astype(np.int64), 15) + 16 * np.arange(n)[:, None]
    hist = np.bincount(bins.reshape(-1), minlength=16 * n).reshape(n, 16) / float(size * size)
    stats = np.stack([black, white], axis=1)
    moments = np.stack([g.mean(axis=(1, 2)), g.std(axis=(1, 2)), np.log(np.abs(res).mean(axis=(1, 2)) + 1e-4)],
                       axis=1)
    parts = [spec, dct, peaks, stats, hist, moments]
    if c == 3:
        xf = x.astype(np.float32) / 255.0
        rr = np.stack([residual(xf[:, k]) for k in range(3)], axis=1).reshape(n, 3, -1)
        rr = rr - rr.mean(axis=2, keepdims=True)
        norm = np.sqrt((rr ** 2).sum(axis=2)) + EPS
        corr = [(rr[:, a] * rr[:, b]).sum(axis=1) / (norm[:, a] * norm[:, b]) for a, b in ((0, 1), (1, 2), (0, 2))]
        sat = (xf.max(axis=1) - xf.min(axis=1)).mean(axis=(1, 2))
        parts.append(np.stack([*corr, sat], axis=1))
    return np.concatenate(parts, axis=1).astype(np.float64)


def band_map(x: np.ndarray, lo: float, hi: float, peaks_only: bool = False) -> np.ndarray:
    """Where in each image the energy of one frequency band lies: ``[N, S, S]`` in 0..1 (for --heatmap)."""
    g = luma(x)
    n, size, _ = g.shape
    if peaks_only:
        g = residual(g)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    r = np.sqrt(fx ** 2 + fy ** 2)
    mask = (r >= lo) & (r < hi)
    if peaks_only:
        mask = np.zeros_like(mask)
        for ky, kx, _ in _peaks(size):
            for sy in (1, -1):
                for sx in (1, -1):
                    mask[(sy * ky) % size, (sx * kx) % size] = True
    f = np.fft.fft2(g - g.mean(axis=(1, 2), keepdims=True), axes=(1, 2)) * mask
    e = np.abs(np.fft.ifft2(f, axes=(1, 2))) ** 2
    e = uniform_filter(e, size=(1, 3, 3), mode="reflect")
    return e / (e.reshape(n, -1).max(axis=1)[:, None, None] + EPS)
