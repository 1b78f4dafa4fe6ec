"""SRResNet-style super-resolution generator (Ledig et al., 2017), with the discriminator of pix2pix.

``G(a)`` maps a low-resolution image ``[B, C, H, W]`` in [-1, 1] to ``[B, C, H * scale, W * scale]``: a 9x9
head convolution, ``blocks`` residual blocks (conv-PReLU-conv, no batch norm, as EDSR/ESRGAN found better),
a long skip, one pixel-shuffle x2 stage per factor of two, and a 3x3 output convolution (EDSR's; SRResNet
has 9x9, several times the cost at the output size for little gain). The result is added
to the bicubic upsampling of the input, so the network learns only the missing detail (as VDSR does), which
makes short CPU budgets go much further. Having no normalisation, the generator is the same function in train
and eval mode and of any image size, which lets ``ganforge translate`` tile large images exactly.

The discriminator is pix2pix's PatchGAN on the bicubic-upsampled input stacked with the output (a conditional
GAN). Options: ``scale`` (2 or 4), ``blocks`` (default 16), ``patch`` (default 70), and ``in_channels`` /
``out_channels`` (the image's channels).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models.pix2pix import PatchDiscriminator, init_normal, options
from ganforge.models.registry import register


class ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1), nn.PReLU(width), nn.Conv2d(width, width, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRResNet(nn.Module):
    image_to_image = True  # takes an image, not a latent: ganforge generate refuses it, translate runs it

    def __init__(self, channels: int, scale: int = 4, width: int = 64, blocks: int = 16):
        super().__init__()
        if scale not in (2, 4):
            raise ConfigError(f"srresnet scale must be 2 or 4, got {scale}")
        self.scale, self.upsample = scale, scale
        self.stochastic = False  # nothing random in this generator; the attribute keeps one interface
        self.head = nn.Sequential(nn.Conv2d(channels, width, 9, 1, 4), nn.PReLU(width))
        self.body = nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)], nn.Conv2d(width, width, 3, 1, 1))
        ups: list[nn.Module] = []
        for _ in range({2: 1, 4: 2}[scale]):
            ups += [nn.Conv2d(width, width * 4, 3, 1, 1), nn.PixelShuffle(2), nn.PReLU(width)]
        self.tail = nn.Sequential(*ups, nn.Conv2d(width, channels, 3, 1, 1))

    def forward(self, a: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        base = F.interpolate(a, scale_factor=self.scale, mode="bicubic", align_corners=False)
        h = self.head(a)
        return (base + self.tail(h + self.body(h))).clamp(-1, 1)


@register("srresnet", "super-resolution: residual blocks + pixel shuffle, x2 or x4 (ganforge train --task superres)",
          options=True)
def build(cfg: ModelConfig):
    o = options(cfg)
    scale = int(o.get("scale", 4))
    c = int(o.get("out_channels", cfg.channels))
    G = SRResNet(c, scale, cfg.g_width, int(o.get("blocks", 16)))
    D = PatchDiscriminator(2 * c, cfg.d_width, int(o.get("patch", 70)), o.get("norm", "instance"))
    init_normal(G)
    # The output convolution starts at zero: the untrained model is exactly bicubic.
    nn.init.zeros_(G.tail[-1].weight)
    nn.init.zeros_(G.tail[-1].bias)
    init_normal(D)
    return G, D
