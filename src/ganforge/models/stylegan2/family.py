"""The ``stylegan2`` / ``cstylegan2`` families: StyleGAN2 networks behind ganforge's G/D interface.

Sizes from ``ModelConfig`` (the widths name the widest layer, as in the official ``channel_max``):

* ``channel_max = width`` and ``channel_base = 64 * width``: layers are ``width`` wide up to 64 px and
  halve per octave above, so ``width=512`` gives the official config-F values (32768, 512);
* ``w_dim = g_width``, 2 mapping layers (the official small-data / CIFAR setting; FFHQ used 8);
* D: resnet architecture, minibatch-std groups of 4 (smaller or divisor groups for other batch sizes).

Official-style calls stay available on the returned nets: ``G.mapping(z, c, truncation_psi=...)``,
``G.synthesis(ws, noise_mode=...)``, ``G(z, c, truncation_psi, truncation_cutoff, noise_mode)`` and
``Discriminator.forward(D, img, c)`` for ``[B, 1]`` logits.
"""
from __future__ import annotations

import torch

from ...config import ConfigError, ModelConfig
from .. import register
from .networks import Discriminator, Generator

MAPPING_LAYERS = 2
MBSTD_GROUP = 4


class GanforgeDiscriminator(Discriminator):
    """The official discriminator, returning logits ``[B]`` as ganforge's losses expect."""

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        return super().forward(img, c, **kwargs).squeeze(1)


def build_networks(cfg: ModelConfig) -> tuple[Generator, GanforgeDiscriminator]:
    res = cfg.resolution
    if res < 8 or res & (res - 1):
        raise ConfigError(f"stylegan2 needs a power-of-two resolution of at least 8 (e.g. 16, 32, 64), got {res}; "
                          "use --resolution to resize the data")
    if cfg.spectral_norm:
        raise ConfigError("stylegan2 does not use spectral normalisation (it relies on equalized learning "
                          "rate and R1): drop --spectral-norm")
    for name in ("g_width", "d_width"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{name} must be positive, got {getattr(cfg, name)}")
    G = Generator(z_dim=cfg.z_dim, c_dim=cfg.num_classes, w_dim=cfg.g_width, img_resolution=res,
                  img_channels=cfg.channels, mapping_kwargs={"num_layers": MAPPING_LAYERS},
                  synthesis_kwargs={"channel_base": 64 * cfg.g_width, "channel_max": cfg.g_width,
                                    "architecture": "skip"})
    D = GanforgeDiscriminator(c_dim=cfg.num_classes, img_resolution=res, img_channels=cfg.channels,
                              architecture="resnet", channel_base=64 * cfg.d_width, channel_max=cfg.d_width,
                              epilogue_kwargs={"mbstd_group_size": MBSTD_GROUP})
    return G, D


@register("stylegan2", "StyleGAN2 (ADA-pytorch networks): style-modulated G, resnet D; power-of-two sizes >= 8")
def build(cfg: ModelConfig):
    return build_networks(cfg)


@register("cstylegan2", "class-conditional StyleGAN2 (class embedding in G's mapping, projection D)",
          conditional=True)
def build_conditional(cfg: ModelConfig):
    if cfg.num_classes < 2:
        raise ConfigError("cstylegan2 needs class labels: use a labelled built-in (mnist, digits) or a folder "
                          "with one sub-folder per class")
    return build_networks(cfg)
