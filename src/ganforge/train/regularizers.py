"""StyleGAN2's training extras, kept out of the trainer's main loop (Karras et al. 2020, "Analyzing and
Improving the Image Quality of StyleGAN", and the ADA paper's training setup):

* style mixing: a batch draws a second latent and switches to its w at a random layer;
* path-length regularisation: Jacobian norms of w -> image pulled toward their running mean;
* lazy regularisation: penalties applied every N steps with weight N, with Adam's learning rate and
  betas adjusted so that one (main + regulariser) cycle behaves like N + 1 plain steps;
* an EMA whose decay is given as a half-life in images, so it does not depend on the batch size.
"""
from __future__ import annotations

import math

import torch

from ganforge.errors import ConfigError


def lazy_adam(lr: float, betas: tuple[float, float], every: int) -> tuple[float, tuple[float, float]]:
    """Adam hyperparameters for a network that also takes a regulariser step every ``every`` steps."""
    if every <= 1:
        return lr, tuple(betas)
    ratio = every / (every + 1)
    return lr * ratio, (betas[0] ** ratio, betas[1] ** ratio)


def ema_beta(batch_size: int, images_seen: int, ema_kimg: float, ema_rampup: float) -> float:
    """Per-step EMA decay for a half-life of ``ema_kimg`` thousand images (ramped up early if asked)."""
    ema_nimg = ema_kimg * 1000
    if ema_rampup > 0:
        ema_nimg = min(ema_nimg, images_seen * ema_rampup)
    return 0.5 ** (batch_size / max(ema_nimg, 1e-8))


@torch.no_grad()
def update_average(avg: torch.nn.Module, net: torch.nn.Module, beta: float) -> None:
    """avg <- beta * avg + (1 - beta) * net for parameters (beta 0 copies); buffers are copied."""
    averaged, params = list(avg.parameters()), list(net.parameters())
    if beta == 0.0:
        torch._foreach_copy_(averaged, params)
    else:
        torch._foreach_lerp_(averaged, params, 1 - beta)
    for b_avg, b in zip(avg.buffers(), net.buffers()):
        b_avg.copy_(b)


def has_mapping(G) -> bool:
    return hasattr(G, "mapping") and hasattr(G, "synthesis")


def require_mapping(G, family: str, what: str) -> None:
    if not has_mapping(G):
        raise ConfigError(f"{what} needs a generator with a mapping network (stylegan2, cstylegan2); "
                          f"family '{family}' has none: set it to 0")


def mapped_ws(G, z: torch.Tensor, c: torch.Tensor | None, mixing: float, gen: torch.Generator) -> torch.Tensor:
    """``G.mapping(z, c)``; with probability ``mixing`` the layers from a random cutoff on take the w of a
    second latent, so the synthesis cannot assume that neighbouring styles are correlated."""
    ws = G.mapping(z, c)
    if mixing > 0:
        mix = torch.rand((), generator=gen).item() < mixing
        cutoff = int(torch.randint(1, ws.shape[1], (), generator=gen))
        z2 = torch.randn(z.shape, generator=gen).to(z.device)
        if mix:
            ws2 = G.mapping(z2, c, skip_w_avg_update=True)
            ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
    return ws


class PathLength:
    """The path-length penalty (lengths - running mean)^2 with its running mean ``pl_mean`` as state."""

    def __init__(self, decay: float = 0.01):
        self.decay = decay
        self.mean = torch.zeros([])

    def penalty(self, G, z: torch.Tensor, c: torch.Tensor | None, mixing: float, gen: torch.Generator,
                reduce_mean=None) -> torch.Tensor:
        ws = mapped_ws(G, z, c, mixing, gen)
        img = G.synthesis(ws)
        # Random image-space directions, scaled so the expected length does not depend on the resolution.
        noise = torch.randn(img.shape, generator=gen).to(img.device) / math.sqrt(img.shape[2] * img.shape[3])
        (grads,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
        lengths = grads.square().sum(2).mean(1).sqrt()
        old = self.mean.to(lengths.device)
        target = old.lerp(lengths.mean(), self.decay)  # keeps its gradient, as in the official penalty
        batch_mean = lengths.mean().detach()
        if reduce_mean is not None:  # every process keeps the same running mean
            batch_mean = reduce_mean(batch_mean)
        self.mean = old.lerp(batch_mean, self.decay)
        return (lengths - target).square().mean()
