"""2-D mode (as GAN Lab): small G and D over points in the plane, trained with ganforge's losses and optimizers.

G maps ``z_dim`` latents to points (its layer list ends in fc 2), D maps a point to one logit (its list starts
from 2 inputs). Each update's ``plane`` block holds what the page draws:

* ``d``: D's P(real) (the sigmoid of its logit) on a ``res`` x ``res`` grid of cell centres over ``bounds``
  ``[xmin, xmax, ymin, ymax]``; ``d[i][j]`` is at row ``i`` (y from ymin up) and column ``j`` (x from xmin).
* ``real`` / ``fake``: up to ``SHOW_POINTS`` real points and G's points for fixed latents.
* ``manifold``: G over a regular z grid (``MANIFOLD`` x ``MANIFOLD`` over [-2, 2]^2), as rows of points; with
  ``z_dim`` > 2 the grid is the slice through z = 0 along the first two latent dimensions.
* ``grad``: ``[x, y, dx, dy]`` per fake point, where ``(dx, dy)`` is minus the gradient of G's loss with
  respect to that point (the way G's update pushes it), for the per-point loss (not divided by the batch).
* ``kl`` = KL(real || fake) and ``js`` (natural log) between the histograms of all real points and of
  ``len(real)`` fake points on the same grid, each count smoothed by adding ``SMOOTH`` before normalising (so
  neither is infinite where one histogram is empty); points outside the bounds count in the border cells.
"""
from __future__ import annotations

import math
import time
from typing import Any

import torch

from ganforge.errors import ConfigError
from ganforge.models.layers import build_body
from ganforge.playground.setup import NetOptions, Setup, uploaded_points
from ganforge.train.losses import get_loss
from ganforge.train.trainer import OPTIMIZERS

N_REAL = 1000
SHOW_POINTS = 200
RES = 48
MANIFOLD = 11
SMOOTH = 0.01
GP_WEIGHT = 10.0


def distribution(name: str, n: int, seed: int) -> torch.Tensor:
    """``n`` points [n, 2] of a named distribution, about within [-1, 1]^2."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, generator=g)
    noise = torch.randn(n, 2, generator=g)
    if name == "line":
        a, b = torch.tensor([-0.8, -0.6]), torch.tensor([0.8, 0.6])
        return a + u[:, None] * (b - a) + 0.02 * noise
    if name == "gaussians":
        centres = torch.tensor([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])
        return centres[torch.randint(0, 4, (n,), generator=g)] + 0.08 * noise
    if name == "ring":
        angle = u * 2 * math.pi
        return 0.6 * torch.stack([angle.cos(), angle.sin()], 1) + 0.04 * noise
    if name == "disjoint":
        boxes = torch.tensor([[-0.8, -0.4, -0.2, 0.6], [0.3, 0.8, -0.7, -0.2]])  # xmin, xmax, ymin, ymax
        box = boxes[torch.randint(0, 2, (n,), generator=g)]
        v = torch.rand(n, 2, generator=g)
        return torch.stack([box[:, 0] + v[:, 0] * (box[:, 1] - box[:, 0]),
                            box[:, 2] + v[:, 1] * (box[:, 3] - box[:, 2])], 1)
    raise ConfigError(f"unknown 2-D distribution {name!r}; choose line, gaussians, ring, disjoint or drawn")


def real_points(setup: Setup, uploads: dict | None = None) -> torch.Tensor:
    name = setup.distribution
    if name == "drawn":
        return torch.tensor(setup.points, dtype=torch.float32)
    if name.startswith("upload:"):
        return uploaded_points(name, uploads).float()
    return distribution(name, N_REAL, setup.seed)


def _bounds(pts: torch.Tensor) -> list[float]:
    lo, hi = pts.min(0).values, pts.max(0).values
    centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2 * 1.25, 0.25)
    return [float(centre[0] - half), float(centre[0] + half), float(centre[1] - half), float(centre[1] + half)]


def make_optimizer(o: NetOptions, params) -> torch.optim.Optimizer:
    """The trainer's optimizer for one network's options (the playground's plain sgd: no momentum)."""
    if o.opt == "momentum":
        return OPTIMIZERS["momentum"](params, o.lr, o.betas, momentum=o.momentum)
    return OPTIMIZERS[o.opt](params, o.lr, (0.0, o.betas[1]) if o.opt == "sgd" else o.betas)


def histogram(pts: torch.Tensor, bounds: list[float], res: int) -> torch.Tensor:
    """Counts [res, res] (row: y, column: x); points outside the bounds count in the border cells."""
    x0, x1, y0, y1 = bounds
    ix = ((pts[:, 0] - x0) / (x1 - x0) * res).floor().clamp(0, res - 1).long()
    iy = ((pts[:, 1] - y0) / (y1 - y0) * res).floor().clamp(0, res - 1).long()
    return torch.bincount(iy * res + ix, minlength=res * res).reshape(res, res).float()


def divergences(real: torch.Tensor, fake: torch.Tensor, bounds: list[float], res: int) -> tuple[float, float]:
    """KL(real || fake) and JS between the smoothed grid histograms (see the module notes)."""
    p = histogram(real, bounds, res).flatten() + SMOOTH
    q = histogram(fake, bounds, res).flatten() + SMOOTH
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    kl = float((p * (p / q).log()).sum())
    js = float(0.5 * (p * (p / m).log()).sum() + 0.5 * (q * (q / m).log()).sum())
    return kl, js


class Toy2D:
    """A 2-D session's models, data and one-step updates (the interface of sessions.ImagesEngine)."""

    mode = "2d"

    def __init__(self, setup: Setup, uploads: dict | None = None):
        self.setup = setup
        self.real = real_points(setup, uploads)
        if not torch.isfinite(self.real).all():
            raise ConfigError("the 2-D points hold NaN or infinite values: give finite x, y numbers")
        self.bounds = _bounds(self.real)
        self.loss = get_loss(setup.loss)
        self.build()

    def build(self) -> None:
        s = self.setup
        torch.manual_seed(s.seed)
        self.G = build_body(s.g_layers, (s.z_dim,), "generator")
        self.D = build_body(s.d_layers, (2,), "discriminator", discriminator=True)
        self.opt_G = make_optimizer(s.g, self.G.parameters())
        self.opt_D = make_optimizer(s.d, self.D.parameters())
        self.gen = torch.Generator().manual_seed(s.seed)
        fixed = torch.Generator().manual_seed(s.seed + 12345)
        self.fixed_z = torch.randn(len(self.real), s.z_dim, generator=fixed)
        self.show_real = self.real[torch.randperm(len(self.real), generator=fixed)[:SHOW_POINTS]]
        axis = torch.linspace(-2, 2, MANIFOLD)
        zy, zx = torch.meshgrid(axis, axis, indexing="ij")
        self.grid_z = torch.zeros(MANIFOLD * MANIFOLD, s.z_dim)
        self.grid_z[:, 0] = zx.flatten()
        if s.z_dim > 1:
            self.grid_z[:, 1] = zy.flatten()
        x0, x1, y0, y1 = self.bounds
        cx = x0 + (torch.arange(RES) + 0.5) * (x1 - x0) / RES
        cy = y0 + (torch.arange(RES) + 0.5) * (y1 - y0) / RES
        gy, gx = torch.meshgrid(cy, cx, indexing="ij")
        self.cells = torch.stack([gx.flatten(), gy.flatten()], 1)
        self.step_count = 0

    @property
    def examples_per_step(self) -> int:
        return self.setup.batch_size * self.setup.d_steps

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.setup.batch_size
        real = self.real[torch.randint(0, len(self.real), (b,), generator=self.gen)]
        return real, torch.randn(b, self.setup.z_dim, generator=self.gen)

    @staticmethod
    def _apply(opt, loss) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for group in opt.param_groups:  # as the trainer: one overflow must not poison the weights
            for p in group["params"]:
                if p.grad is not None:
                    torch.nan_to_num_(p.grad, nan=0.0, posinf=1e5, neginf=-1e5)
        opt.step()

    def _d_step(self, stats: dict) -> None:
        real, z = self._batch()
        with torch.no_grad():
            fake = self.G(z)
        d_real, d_fake = self.D(real), self.D(fake)
        loss = self.loss.d_loss(d_real, d_fake)
        if self.loss.gradient_penalty:
            eps = torch.rand(real.shape[0], 1, generator=self.gen)
            x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(self.D(x_hat).sum(), x_hat, create_graph=True)
            loss = loss + GP_WEIGHT * ((grad.norm(2, dim=1) - 1) ** 2).mean()
        self._apply(self.opt_D, loss)
        read = torch.sigmoid if self.loss.probabilities else (lambda v: v)
        stats.update(loss_d=float(loss.detach()), d_real=float(read(d_real.detach()).mean()),
                     d_fake=float(read(d_fake.detach()).mean()))

    def _g_step(self, stats: dict) -> None:
        _, z = self._batch()
        self.D.requires_grad_(False)
        try:
            loss = self.loss.g_loss(self.D(self.G(z)))
            self._apply(self.opt_G, loss)
        finally:
            self.D.requires_grad_(True)
        stats["loss_g"] = float(loss.detach())
        self.step_count += 1

    def step(self, action: str) -> dict[str, float]:
        stats: dict[str, float] = {}
        self.G.train()
        self.D.train()
        if action in ("train", "step", "step_d"):
            for _ in range(1 if action == "step_d" else self.setup.d_steps):
                self._d_step(stats)
        if action in ("train", "step", "step_g"):
            for _ in range(1 if action == "step_g" else self.setup.g_steps):
                self._g_step(stats)
        return stats

    def render(self) -> tuple[dict[str, Any], dict[str, float], None]:
        G, D = self.G.eval(), self.D.eval()
        try:
            with torch.no_grad():
                start = time.perf_counter()
                p_cells = torch.sigmoid(D(self.cells).float())
                d_s = time.perf_counter() - start
                start = time.perf_counter()
                fake_all = G(self.fixed_z)
                g_s = time.perf_counter() - start
                manifold = G(self.grid_z)
                p_real = torch.sigmoid(D(self.show_real))
            fake = fake_all[:SHOW_POINTS].detach().requires_grad_(True)
            d_fake = D(fake)
            (grad,) = torch.autograd.grad(self.loss.g_loss(d_fake) * len(fake), fake)
            p_fake = torch.sigmoid(d_fake.detach())
        finally:
            G.train()
            D.train()
        kl, js = divergences(self.real, fake_all, self.bounds, RES)
        r = lambda t: [[round(float(v), 4) for v in row] for row in t]
        plane = {"bounds": [round(b, 4) for b in self.bounds], "res": RES, "d": r(p_cells.reshape(RES, RES)),
                 "real": r(self.show_real), "fake": r(fake.detach()),
                 "manifold": [r(row) for row in manifold.reshape(MANIFOLD, MANIFOLD, 2)],
                 "grad": r(torch.cat([fake.detach(), -grad], 1)), "kl": kl, "js": js}
        acc = (float((p_real > 0.5).float().sum()) + float((p_fake < 0.5).float().sum())) / (len(p_real) + len(p_fake))
        timing = {"infer_ms": d_s * 1000, "gen_ms": g_s * 1000, "inferences_per_s": len(self.cells) / max(d_s, 1e-9),
                  "generations_per_s": len(self.fixed_z) / max(g_s, 1e-9), "d_acc": acc}
        return {"plane": plane}, timing, None
