"""GAN objectives on raw discriminator logits, and the gradient penalties.

Each loss gives the discriminator's loss from logits on real and fake images, and the generator's loss
from logits on fakes; all are means over the batch.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ganforge.errors import ConfigError

Tensor = torch.Tensor


@dataclass(frozen=True)
class GANLoss:
    name: str
    d_loss: Callable[[Tensor, Tensor], Tensor]
    g_loss: Callable[[Tensor], Tensor]
    gradient_penalty: bool = False  # WGAN-GP needs a penalty on interpolates
    probabilities: bool = True  # logits read as probabilities via sigmoid (not for the critic of WGAN)


LOSSES: dict[str, GANLoss] = {
    # Goodfellow et al. 2014, generator maximising log D(G(z)) rather than minimising log(1 - D(G(z))).
    "ns": GANLoss("ns", lambda r, f: F.softplus(-r).mean() + F.softplus(f).mean(), lambda f: F.softplus(-f).mean()),
    # Lim & Ye 2017 / Miyato et al. 2018.
    "hinge": GANLoss("hinge", lambda r, f: F.relu(1 - r).mean() + F.relu(1 + f).mean(), lambda f: -f.mean()),
    # Mao et al. 2017, targets 1 (real) and 0 (fake).
    "lsgan": GANLoss("lsgan", lambda r, f: 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f**2).mean(),
                     lambda f: 0.5 * ((f - 1) ** 2).mean()),
    # Gulrajani et al. 2017: critic maximises E[D(x)] - E[D(G(z))], with the penalty added by the trainer.
    "wgan-gp": GANLoss("wgan-gp", lambda r, f: f.mean() - r.mean(), lambda f: -f.mean(),
                       gradient_penalty=True, probabilities=False),
}


def get_loss(name: str) -> GANLoss:
    if name not in LOSSES:
        raise ConfigError(f"unknown loss '{name}'; choose one of: {', '.join(LOSSES)}")
    return LOSSES[name]


def gradient_penalty(D, real: Tensor, fake: Tensor, c: Tensor | None, generator: torch.Generator) -> Tensor:
    """WGAN-GP: mean of (||grad_x D(x_hat)|| - 1)^2 at random points between real and fake images."""
    eps = torch.rand(real.shape[0], 1, 1, 1, generator=generator).to(real.device, real.dtype)
    x_hat = (eps * real + (1 - eps) * fake).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat, c).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def r1_penalty(D, real: Tensor, c: Tensor | None) -> Tensor:
    """R1 (Mescheder et al. 2018): mean squared gradient norm of D at real images. Weight it by gamma/2."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(real, c).sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()
