"""Small pieces shared by the model families."""
from __future__ import annotations

import torch.nn as nn
from torch.nn.utils.parametrizations import spectral_norm


def maybe_sn(module: nn.Module, enabled: bool) -> nn.Module:
    """Wrap a weight layer in spectral normalisation when ``enabled`` (Miyato et al., 2018)."""
    return spectral_norm(module) if enabled else module


def init_weights(net: nn.Module, std: float = 0.02) -> None:
    """DCGAN initialisation: N(0, 0.02) weights, BN scales N(1, 0.02), zero biases."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            weight = getattr(m, "parametrizations", None)
            w = weight.weight.original if weight is not None else m.weight
            nn.init.normal_(w, 0.0, std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
