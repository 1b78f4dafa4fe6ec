"""Scores from class probabilities (the digit network's) and from a run's discriminator."""
from __future__ import annotations

import math

import torch


def inception_score(probs: torch.Tensor, eps: float = 1e-12) -> float:
    """exp(E_x KL(p(y|x) || p(y))): 1 for one blurry class, the class count for sharp, even classes."""
    p = probs.double()
    p_y = p.mean(0, keepdim=True)
    kl = (p * ((p + eps).log() - (p_y + eps).log())).sum(1)
    return math.exp(kl.mean().item())


@torch.no_grad()
def discriminator_mean(D: torch.nn.Module, images_u8: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """sigmoid(D(x)) per image, for uint8 images scaled to the [-1, 1] range D was trained on."""
    device = next(D.parameters()).device
    x = images_u8.to(device, torch.float32) / 127.5 - 1
    c = None if labels is None else labels.to(device)
    return torch.sigmoid(D(x, c).float().reshape(len(x), -1).mean(1)).cpu()
