"""DCGAN (Radford et al., 2015): transposed-conv generator with batch norm, strided-conv discriminator.

Sized from the data: a resolution ``r = s * 2**n`` with base ``s`` in 4..7 gets ``n`` stride-2 stages,
so 8, 16, 28 (7*4), 32, 64, ..., 256 all work. Channels halve at each stage up the generator, starting
from ``width * 2**(n-1)`` (capped at 512), and mirror that in the discriminator.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models.common import init_weights, maybe_sn
from ganforge.models.registry import register

MAX_CHANNELS = 512


def plan(resolution: int) -> tuple[int, int]:
    """Return (base size s, number of stride-2 stages n) with s * 2**n == resolution."""
    if not 8 <= resolution <= 256:
        raise ConfigError(f"dcgan/cdcgan support resolutions 8 to 256, got {resolution}; use --resolution to resize")
    for s in (4, 5, 6, 7):
        n, rem = 0, resolution
        while rem > s and rem % 2 == 0:
            rem //= 2
            n += 1
        if rem == s and n >= 1:
            return s, n
    raise ConfigError(f"dcgan/cdcgan need a resolution of 4..7 times a power of two (e.g. 28, 32, 64), "
                      f"got {resolution}; use --resolution")


def stage_channels(width: int, n: int) -> list[int]:
    """Channels at each stage from the smallest feature map to the largest."""
    return [min(width * 2 ** (n - 1 - i), MAX_CHANNELS) for i in range(n)]


class DCGenerator(nn.Module):
    def __init__(self, z_dim: int, img_shape: tuple[int, int, int], width: int, cond_dim: int = 0):
        super().__init__()
        c_img, res, _ = img_shape
        s, n = plan(res)
        ch = stage_channels(width, n)
        self.base = (ch[0], s, s)
        self.fc = nn.Linear(z_dim + cond_dim, ch[0] * s * s)
        blocks: list[nn.Module] = [nn.BatchNorm2d(ch[0]), nn.ReLU(True)]
        for a, b in zip(ch[:-1], ch[1:]):
            blocks += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]
        blocks += [nn.ConvTranspose2d(ch[-1], c_img, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(self.fc(z).view(z.shape[0], *self.base))


class DCDiscriminator(nn.Module):
    """Strided convolutions down to the base size, then a linear real/fake score.

    With ``num_classes > 0`` it is a projection discriminator (Miyato & Koyama, 2018): the score gains
    the inner product of a learned class embedding with the features.
    """

    def __init__(self, img_shape, width: int, norm: str, sn: bool, num_classes: int = 0):
        super().__init__()
        c_img, res, _ = img_shape
        s, n = plan(res)
        ch = stage_channels(width, n)[::-1]  # largest map first
        layers: list[nn.Module] = [maybe_sn(nn.Conv2d(c_img, ch[0], 4, 2, 1), sn), nn.LeakyReLU(0.2, True)]
        for a, b in zip(ch[:-1], ch[1:]):
            layers.append(maybe_sn(nn.Conv2d(a, b, 4, 2, 1, bias=norm != "batch"), sn))
            if norm == "batch":
                layers.append(nn.BatchNorm2d(b))
            layers.append(nn.LeakyReLU(0.2, True))
        self.features = nn.Sequential(*layers, nn.Flatten())
        feat_dim = ch[-1] * s * s
        self.fc = maybe_sn(nn.Linear(feat_dim, 1), sn)
        self.embed = maybe_sn(nn.Embedding(num_classes, feat_dim), sn) if num_classes else None

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        out = self.fc(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(c) * h).sum(1)
        return out


def check_norm(norm: str) -> str:
    if norm not in ("batch", "none"):
        raise ConfigError(f"d_norm must be 'batch' or 'none' (or 'auto' before the run starts), got '{norm}'")
    return norm


@register("dcgan", "deep convolutional GAN, sized from the data (8 to 256 px)")
def build(cfg: ModelConfig):
    G = DCGenerator(cfg.z_dim, cfg.img_shape, cfg.g_width)
    D = DCDiscriminator(cfg.img_shape, cfg.d_width, check_norm(cfg.d_norm), cfg.spectral_norm)
    init_weights(G)
    init_weights(D)
    return G, D
