"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) for training on small data sets.

The same random transforms are applied to real and fake images before the discriminator sees them, and
gradients flow through them to the generator. All randomness comes from an explicit CPU generator so a
resumed run draws exactly what an uninterrupted one would.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ganforge.errors import ConfigError

Tensor = torch.Tensor


def _rand(generator: torch.Generator, like: Tensor, *shape: int) -> Tensor:
    return torch.rand(*shape, generator=generator).to(like.device, like.dtype)


def color(x: Tensor, g: torch.Generator) -> Tensor:
    """Random brightness, saturation (colour images only) and contrast."""
    b = x.shape[0]
    x = x + (_rand(g, x, b, 1, 1, 1) - 0.5)
    if x.shape[1] > 1:
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (_rand(g, x, b, 1, 1, 1) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(g, x, b, 1, 1, 1) + 0.5) + mean


def translation(x: Tensor, g: torch.Generator, ratio: float = 0.125) -> Tensor:
    """Shift each image by up to ``ratio`` of its size, filling with zeros (mid-grey in [-1, 1])."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (b, 1, 1), generator=g).to(x.device)
    dx = torch.randint(-sw, sw + 1, (b, 1, 1), generator=g).to(x.device)
    # Index into a 1-pixel zero border: out-of-range sources clamp onto it.
    ys = (torch.arange(h, device=x.device).view(1, h, 1) + dy + 1).clamp(0, h + 1)
    xs = (torch.arange(w, device=x.device).view(1, 1, w) + dx + 1).clamp(0, w + 1)
    padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)
    batch = torch.arange(b, device=x.device).view(b, 1, 1)
    return padded[batch, ys, xs].permute(0, 3, 1, 2).contiguous()


def cutout(x: Tensor, g: torch.Generator, ratio: float = 0.5) -> Tensor:
    """Zero a random square of ``ratio`` times the image size in each image."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), generator=g).to(x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), generator=g).to(x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    top, left = cy - ch // 2, cx - cw // 2
    inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


POLICIES = {"color": color, "translation": translation, "cutout": cutout}


def parse_policy(policy: str) -> list[str]:
    names = [p.strip() for p in policy.split(",") if p.strip()]
    bad = [p for p in names if p not in POLICIES]
    if bad:
        raise ConfigError(f"unknown DiffAugment policy '{bad[0]}'; use a comma list of {', '.join(POLICIES)}")
    return names


def diff_augment(x: Tensor, names: list[str], g: torch.Generator) -> Tensor:
    for name in names:
        x = POLICIES[name](x, g)
    return x
