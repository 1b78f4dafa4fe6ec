"""The original fully connected GAN (Goodfellow et al., 2014), with LeakyReLU and dropout in D.

Both networks take the class as a one-hot vector concatenated to their input when the run is conditional.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganforge.config import ModelConfig
from ganforge.models.common import init_weights, maybe_sn
from ganforge.models.registry import register


class MLPGenerator(nn.Module):
    def __init__(self, z_dim: int, img_shape: tuple[int, int, int], width: int, num_classes: int):
        super().__init__()
        self.img_shape_ = img_shape
        self.num_classes_ = num_classes
        dims = [z_dim + num_classes, width * 4, width * 8, width * 16]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        layers += [nn.Linear(dims[-1], math.prod(img_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes_:
            z = torch.cat([z, F.one_hot(c, self.num_classes_).to(z.dtype)], dim=1)
        return self.net(z).view(z.shape[0], *self.img_shape_)


class MLPDiscriminator(nn.Module):
    def __init__(self, img_shape: tuple[int, int, int], width: int, num_classes: int, sn: bool):
        super().__init__()
        self.num_classes_ = num_classes
        dims = [math.prod(img_shape) + num_classes, width * 16, width * 8, width * 4]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [maybe_sn(nn.Linear(a, b), sn), nn.LeakyReLU(0.2), nn.Dropout(0.3)]
        layers += [maybe_sn(nn.Linear(dims[-1], 1), sn)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = x.flatten(1)
        if self.num_classes_:
            h = torch.cat([h, F.one_hot(c, self.num_classes_).to(h.dtype)], dim=1)
        return self.net(h).squeeze(1)


@register("mlp", "fully connected GAN of 2014 (any size; best for small images)")
def build(cfg: ModelConfig):
    G = MLPGenerator(cfg.z_dim, cfg.img_shape, cfg.g_width, cfg.num_classes)
    D = MLPDiscriminator(cfg.img_shape, cfg.d_width, cfg.num_classes, cfg.spectral_norm)
    init_weights(G)
    init_weights(D)
    return G, D
