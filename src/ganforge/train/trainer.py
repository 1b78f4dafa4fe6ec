"""The steppable GAN trainer.

``Trainer.step()`` runs one generator step (after ``d_steps`` discriminator steps) and returns its
metrics; ``sample()`` draws images on demand; ``state()`` / ``load_state()`` capture everything that
makes a resumed run continue exactly as an uninterrupted one: weights, EMA, optimizer moments, the
data order and every random-number stream.
"""
from __future__ import annotations

import copy
import os
import time
from contextlib import nullcontext
from typing import Any

import torch

from .. import models
from ..augment import diff_augment, parse_policy
from ..checkpoint import (CheckpointError, load_module, load_optimizer, module_tensors, optimizer_tensors)
from ..config import ConfigError, RunConfig
from ..data import ImageDataset
from ..losses import get_loss, gradient_penalty, r1_penalty
from . import distributed as ddp
from .distributed import DistInfo


class TrainError(RuntimeError):
    pass


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda asked for, but this PyTorch sees no CUDA GPU; use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise TrainError("--device mps asked for, but MPS is not available here; use --device cpu or auto")
    if name not in ("cpu", "cuda", "mps"):
        raise TrainError(f"unknown device '{name}'; use auto, cpu, cuda or mps")
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' is bf16 autocast only where it was measured faster without hurting quality: CPUs with AMX
    tiles (docs/benchmarks.md). Elsewhere fp32 unless bf16 is asked for."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"precision must be auto, fp32 or bf16, got '{precision}'")
    if precision != "auto":
        return precision
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return "bf16" if device.type == "cpu" and amx else "fp32"


def complete_config(cfg: RunConfig, data: ImageDataset) -> RunConfig:
    """Fill in what comes from the data (size, channels, classes) and resolve 'auto' options."""
    cfg = copy.deepcopy(cfg)
    m = cfg.model
    m.resolution, m.channels = data.resolution, data.channels
    if models.is_conditional(m.family):
        if data.num_classes < 2:
            raise ConfigError(f"model family '{m.family}' needs class labels, but data set '{data.name}' has none: "
                              "use a labelled data set (sub-folders per class) or an unconditional family (dcgan)")
        m.num_classes = data.num_classes
    else:
        m.num_classes = 0
    if m.d_norm == "auto":
        m.d_norm = "none" if (m.spectral_norm or cfg.train.loss == "wgan-gp") else "batch"
    cfg.class_names = list(data.class_names) if m.num_classes else []
    cfg.data.resolution, cfg.data.channels = data.resolution, data.channels
    return cfg


def validate(t) -> None:
    """Reject hyperparameters that would train nonsense, before any work is done."""
    for name in ("steps", "batch_size", "d_steps", "sample_every", "ckpt_every", "log_every", "grid_size"):
        if getattr(t, name) < 1:
            raise ConfigError(f"{name} must be a positive whole number, got {getattr(t, name)}")
    for name in ("g_lr", "d_lr"):
        if not getattr(t, name) > 0:
            raise ConfigError(f"{name} must be positive, got {getattr(t, name)}")
    if not 0 <= t.ema_decay < 1:
        raise ConfigError(f"ema_decay must be in [0, 1) (0 turns EMA off), got {t.ema_decay}")
    for name in ("r1_gamma", "gp_weight"):
        if getattr(t, name) < 0:
            raise ConfigError(f"{name} must not be negative, got {getattr(t, name)}")
    for name in ("g_betas", "d_betas"):
        if not all(0 <= b < 1 for b in getattr(t, name)):
            raise ConfigError(f"{name} must lie in [0, 1), got {list(getattr(t, name))}")


def _optimizer(name: str, params, lr: float, betas) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas)
    if name == "sgd":  # betas[0] is the momentum
        return torch.optim.SGD(params, lr=lr, momentum=betas[0])
    if name == "rmsprop":  # betas[1] is the smoothing constant
        return torch.optim.RMSprop(params, lr=lr, alpha=betas[1])
    raise ConfigError(f"unknown optimizer '{name}'; choose adam, sgd or rmsprop")


class Trainer:
    def __init__(self, cfg: RunConfig, data: ImageDataset, device: str | torch.device | None = None,
                 dist: DistInfo | None = None):
        self.cfg = cfg = complete_config(cfg, data)
        t = cfg.train
        self.dist = dist or DistInfo()
        self.device = resolve_device(device or t.device) if not isinstance(device, torch.device) else device
        validate(t)
        if t.batch_size % self.dist.world_size:
            raise ConfigError(f"batch size {t.batch_size} does not split over {self.dist.world_size} processes")
        self.local_batch = t.batch_size // self.dist.world_size
        self.loss = get_loss(t.loss)
        self.aug = parse_policy(t.diffaug)
        self.data = data

        torch.manual_seed(t.seed)  # identical initial weights on every rank
        self.G, self.D = (net.to(self.device) for net in models.build(cfg.model))
        if t.channels_last:
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.opt_G = _optimizer(t.g_opt, self.G.parameters(), t.g_lr, t.g_betas)
        self.opt_D = _optimizer(t.d_opt, self.D.parameters(), t.d_lr, t.d_betas)
        if self.dist.active:
            for net in (self.G, self.D, self.G_ema):
                ddp.broadcast_module(net)

        # Separate streams: the data order must agree across ranks, latents and augmentation must not.
        self.data_gen = torch.Generator().manual_seed(t.seed)
        self.noise_gen = torch.Generator().manual_seed(t.seed * 7919 + 1 + self.dist.rank)
        self.images = data.images.to(self.device) if self.device.type != "cpu" and data.images.numel() < 2**30 \
            else data.images
        self.labels = None if data.labels is None or not cfg.model.num_classes else data.labels.to(self.images.device)
        self.perm = torch.randperm(len(data), generator=self.data_gen)
        self.pos = 0
        self.step_count = 0
        self.precision = resolve_precision(t.precision, self.device)
        self._autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16) if self.precision == "bf16"
                          else nullcontext())

    # ----------------------------------------------------------------- data and latents
    def _next_indices(self) -> torch.Tensor:
        """This rank's share of the next global batch, walking an epoch-wise random order."""
        need, parts = self.cfg.train.batch_size, []
        while need:
            if self.pos >= len(self.perm):
                self.perm, self.pos = torch.randperm(len(self.data), generator=self.data_gen), 0
            take = min(need, len(self.perm) - self.pos)
            parts.append(self.perm[self.pos: self.pos + take])
            self.pos += take
            need -= take
        idx = torch.cat(parts)
        r, b = self.dist.rank, self.local_batch
        return idx[r * b: (r + 1) * b]

    def _real_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = self._next_indices().to(self.images.device)
        x = self.images[idx].to(self.device, torch.float32) / 127.5 - 1
        if self.cfg.data.xflip:
            flip = (torch.rand(x.shape[0], generator=self.noise_gen) < 0.5).to(self.device)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        if self.cfg.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        c = None if self.labels is None else self.labels[idx].to(self.device)
        return x, c

    def _latents(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        z = torch.randn(self.local_batch, self.cfg.model.z_dim, generator=self.noise_gen).to(self.device)
        c = None
        if self.cfg.model.num_classes:
            c = torch.randint(0, self.cfg.model.num_classes, (self.local_batch,), generator=self.noise_gen)
            c = c.to(self.device)
        return z, c

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.aug, self.noise_gen) if self.aug else x

    def _apply(self, opt: torch.optim.Optimizer, net: torch.nn.Module, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.dist.active:
            ddp.average_gradients(list(net.parameters()), self.dist.world_size)
        opt.step()

    # ----------------------------------------------------------------- one step
    def step(self) -> dict[str, float]:
        """One generator update after ``d_steps`` discriminator updates; returns the step's metrics."""
        t, start = self.cfg.train, time.perf_counter()
        G, D = self.G, self.D
        G.train()
        D.train()
        for i in range(t.d_steps):
            real, c_real = self._real_batch()
            z, c_fake = self._latents()
            last = i == t.d_steps - 1
            with self._autocast:
                # On the last D step the fakes keep their graph so the G step can reuse them.
                with torch.no_grad() if not last else nullcontext():
                    fake = G(z, c_fake)
                d_real = D(self._augment(real), c_real).float()
                d_fake = D(self._augment(fake.detach()), c_fake).float()
                loss_d = self.loss.d_loss(d_real, d_fake)
            if self.loss.gradient_penalty:
                loss_d = loss_d + t.gp_weight * gradient_penalty(D, real, fake.detach(), c_real, self.noise_gen)
            if t.r1_gamma > 0:
                loss_d = loss_d + t.r1_gamma / 2 * r1_penalty(D, self._augment(real), c_real)
            self._apply(self.opt_D, D, loss_d)

        D.requires_grad_(False)  # the G step needs gradients w.r.t. images only, not D's weights
        with self._autocast:
            d_gen = D(self._augment(fake), c_fake).float()
            loss_g = self.loss.g_loss(d_gen)
        self._apply(self.opt_G, G, loss_g)
        D.requires_grad_(True)

        if self.dist.active:
            ddp.broadcast_buffers(G)
            ddp.broadcast_buffers(D)
        self._update_ema()
        self.step_count += 1
        seconds = time.perf_counter() - start
        read = torch.sigmoid if self.loss.probabilities else (lambda v: v)
        return {"step": self.step_count, "loss_d": loss_d.item(), "loss_g": loss_g.item(),
                "d_real": read(d_real.detach()).mean().item(), "d_fake": read(d_fake.detach()).mean().item(),
                "img_per_s": t.batch_size * t.d_steps / seconds, "seconds": seconds}

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.cfg.train.ema_decay
        # Warm-up: a young run's average should not be dominated by its random initial weights.
        beta = min(decay, (1 + self.step_count) / (10 + self.step_count)) if decay > 0 else 0.0
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            if beta == 0.0:
                p_ema.copy_(p)
            else:
                p_ema.lerp_(p, 1 - beta)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    # ----------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(self, z: torch.Tensor, c: torch.Tensor | None = None, ema: bool = True) -> torch.Tensor:
        G = self.G_ema if ema else self.G
        was_training = G.training
        G.eval()
        # Fixed noise too where the family has per-pixel noise, so grids over time change only by training.
        kwargs = {"noise_mode": "const"} if getattr(G, "supports_noise_mode", False) else {}
        try:
            return G(z.to(self.device), None if c is None else c.to(self.device), **kwargs).float().cpu()
        finally:
            G.train(was_training)

    # ----------------------------------------------------------------- state
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors: dict[str, torch.Tensor] = {}
        for prefix, net in (("G", self.G), ("G_ema", self.G_ema), ("D", self.D)):
            tensors.update(module_tensors(net, prefix))
        tg, mg = optimizer_tensors(self.opt_G, "opt_G")
        td, md = optimizer_tensors(self.opt_D, "opt_D")
        tensors.update(tg)
        tensors.update(td)
        tensors["rng.global"] = torch.get_rng_state()
        tensors["rng.data"] = self.data_gen.get_state()
        tensors["rng.noise"] = self.noise_gen.get_state()
        tensors["data.perm"] = self.perm
        meta = {"step": self.step_count, "data_pos": self.pos, "opt_G": mg, "opt_D": md,
                "config": self.cfg.to_dict(), "world_size": self.dist.world_size}
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any], source: str = "checkpoint"):
        try:
            for prefix, net in (("G", self.G), ("G_ema", self.G_ema), ("D", self.D)):
                load_module(net, tensors, prefix, source)
            load_optimizer(self.opt_G, tensors, meta["opt_G"], "opt_G")
            load_optimizer(self.opt_D, tensors, meta["opt_D"], "opt_D")
            torch.set_rng_state(tensors["rng.global"])
            self.data_gen.set_state(tensors["rng.data"])
            self.noise_gen.set_state(tensors["rng.noise"])
            self.perm, self.pos, self.step_count = tensors["data.perm"].long(), int(meta["data_pos"]), int(meta["step"])
        except KeyError as e:
            raise CheckpointError(f"{source} lacks {e}: it is not a full training checkpoint") from e
        if len(self.perm) != len(self.data):
            raise CheckpointError(f"{source} was trained on {len(self.perm)} images but the data now has "
                                  f"{len(self.data)}; resume with the same data")
        if meta.get("world_size", 1) != self.dist.world_size and self.dist.is_main:
            import warnings

            warnings.warn("resuming with a different number of processes: training continues, "
                          "but not bit-identically to an uninterrupted run", stacklevel=2)


def set_cpu_threads(dist: DistInfo) -> int:
    """Share the cores between local processes: torch defaults to all of them in each."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", dist.world_size))
    n = max(1, cores // max(1, local))
    torch.set_num_threads(n)
    return n
