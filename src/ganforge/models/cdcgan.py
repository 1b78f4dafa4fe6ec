"""Class-conditional DCGAN: the generator sees a learned class embedding beside z, and the
discriminator is a projection discriminator. ``ganforge generate RUN --class 7`` makes sevens."""
from __future__ import annotations

import torch
import torch.nn as nn

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models.common import init_weights
from ganforge.models.dcgan import DCDiscriminator, DCGenerator, check_norm
from ganforge.models.registry import register


class CondDCGenerator(DCGenerator):
    def __init__(self, z_dim: int, img_shape, width: int, num_classes: int):
        super().__init__(z_dim, img_shape, width, cond_dim=z_dim)
        self.class_embed = nn.Embedding(num_classes, z_dim)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if c is None:
            raise ValueError("this generator is class-conditional: pass class indices c")
        return super().forward(torch.cat([z, self.class_embed(c)], dim=1))


@register("cdcgan", "class-conditional DCGAN with a projection discriminator", conditional=True)
def build(cfg: ModelConfig):
    if cfg.num_classes < 2:
        raise ConfigError("cdcgan needs class labels: use a labelled built-in (mnist, digits) or a folder "
                          "with one sub-folder per class")
    G = CondDCGenerator(cfg.z_dim, cfg.img_shape, cfg.g_width, cfg.num_classes)
    D = DCDiscriminator(cfg.img_shape, cfg.d_width, check_norm(cfg.d_norm), cfg.spectral_norm, cfg.num_classes)
    init_weights(G)
    init_weights(D)
    return G, D
