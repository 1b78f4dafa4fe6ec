"""Sliced Wasserstein distance (SWD): ProGAN's multi-scale comparison of two image sets, with no feature network.

Following Karras et al. (2018, section 5 and appendix D): each image becomes a Laplacian pyramid (binomial
5-tap filter) down to 16x16; random 7x7 neighbourhoods of every level, all channels together, are that level's
descriptors; each set's descriptors are normalised per channel to zero mean and unit variance; the distance
between the two sets at a level is the mean, over random unit directions, of the 1-D Wasserstein-1 distance
between their projections (both sorted, matched rank by rank). Reported x10^3 per level, finest first, as the
paper prints it, and averaged over the levels. Small values mean similar local statistics at that scale: the
finest level compares edges and noise, the coarsest the layout of colour.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MIN_RESOLUTION = 16  # the paper's coarsest level
PATCH = 7
PATCHES_PER_IMAGE = 128
DIRECTIONS, REPEATS = 128, 4  # 512 random directions in all, drawn in 4 rounds as the paper does
SCALE = 1e3

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16


def _blur(x: torch.Tensor) -> torch.Tensor:
    """Separable 5-tap binomial filter per channel, edges reflected."""
    c = x.shape[1]
    k = _BINOMIAL.to(x)
    x = F.pad(x, (2, 2, 2, 2), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, 5).expand(c, 1, 1, 5), groups=c)
    return F.conv2d(x, k.view(1, 1, 5, 1).expand(c, 1, 5, 1), groups=c)


def _up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Zero-insertion upsampling to ``size`` followed by the filter (x4 keeps the mean)."""
    n, c, h, w = x.shape
    z = x.new_zeros(n, c, 2 * h, 2 * w)
    z[:, :, ::2, ::2] = x
    return 4 * _blur(z)[:, :, :size[0], :size[1]]


def pyramid(x: torch.Tensor, min_resolution: int = MIN_RESOLUTION) -> list[torch.Tensor]:
    """Laplacian levels of ``x`` [N, C, H, W], finest first; the last level is the low-pass remainder.

    Halves while the next level would still be at least ``min_resolution`` on its short side (an image
    smaller than that is a single level)."""
    levels = []
    while min(x.shape[-2:]) // 2 >= min_resolution:
        down = _blur(x)[:, :, ::2, ::2]
        levels.append(x - _up(down, x.shape[-2:]))
        x = down
    levels.append(x)
    return levels


def level_sizes(resolution: int, min_resolution: int = MIN_RESOLUTION) -> list[int]:
    sizes = [resolution]
    while sizes[-1] // 2 >= min_resolution:
        sizes.append(sizes[-1] // 2)
    return sizes


def patches(level: torch.Tensor, per_image: int, gen: torch.Generator) -> np.ndarray:
    """``per_image`` random PATCHxPATCH neighbourhoods of each image: [N * per_image, C, PATCH, PATCH]."""
    n, c, h, w = level.shape
    if min(h, w) < PATCH:
        raise ValueError(f"a pyramid level of {h}x{w} is smaller than the {PATCH}x{PATCH} neighbourhoods")
    views = level.unfold(2, PATCH, 1).unfold(3, PATCH, 1)  # [N, C, H-6, W-6, 7, 7], no copy
    img = torch.arange(n).repeat_interleave(per_image)
    ys = torch.randint(0, h - PATCH + 1, (len(img),), generator=gen)
    xs = torch.randint(0, w - PATCH + 1, (len(img),), generator=gen)
    return views[img, :, ys, xs].numpy().astype(np.float32)  # advanced indices first: [K, C, 7, 7]


class Descriptors:
    """Collects each pyramid level's neighbourhoods of a set streamed batch by batch (uint8 or float)."""

    def __init__(self, per_image: int = PATCHES_PER_IMAGE, seed: int = 0):
        self.per_image = per_image
        self.gen = torch.Generator().manual_seed(seed)
        self.levels: list[list[np.ndarray]] = []
        self.resolution: int | None = None

    def add(self, x: torch.Tensor) -> None:
        x = x.float()
        if self.resolution is None:
            self.resolution = x.shape[-1]
        for i, level in enumerate(pyramid(x)):
            if i == len(self.levels):
                self.levels.append([])
            self.levels[i].append(patches(level, self.per_image, self.gen))

    def arrays(self) -> list[np.ndarray]:
        return [np.concatenate(parts) for parts in self.levels]


def _normalise(d: np.ndarray) -> np.ndarray:
    """Per channel (over every descriptor and position) to zero mean and unit variance; flattened."""
    d = d - d.mean(axis=(0, 2, 3), keepdims=True)
    d = d / np.maximum(d.std(axis=(0, 2, 3), keepdims=True), 1e-8)
    return d.reshape(len(d), -1)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, rng: np.random.Generator,
                       directions: int = DIRECTIONS, repeats: int = REPEATS) -> float:
    """Mean 1-D Wasserstein-1 distance of [n, D] and [m, D] along random unit directions (the larger set
    subsampled to the smaller's size, so that sorted projections match rank by rank)."""
    size = min(len(a), len(b))
    a = a[rng.permutation(len(a))[:size]]
    b = b[rng.permutation(len(b))[:size]]
    total = 0.0
    for _ in range(repeats):
        dirs = rng.standard_normal((a.shape[1], directions)).astype(np.float32)
        dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
        pa, pb = np.sort(a @ dirs, axis=0), np.sort(b @ dirs, axis=0)
        total += float(np.abs(pa - pb).mean())
    return total / repeats


def swd(real: Descriptors, fake: Descriptors, seed: int = 0) -> dict:
    """SWD x10^3 per level (finest first) and their mean, with each level's resolution."""
    if real.resolution != fake.resolution:
        raise ValueError(f"SWD needs both sets at one size: real {real.resolution} px, fake {fake.resolution} px")
    rng = np.random.default_rng(seed)
    levels = [SCALE * sliced_wasserstein(_normalise(r), _normalise(f), rng)
              for r, f in zip(real.arrays(), fake.arrays())]
    return {"swd": float(np.mean(levels)), "swd_levels": levels, "swd_resolutions": level_sizes(real.resolution)}
