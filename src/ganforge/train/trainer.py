"""The steppable GAN trainer.

``Trainer.step()`` runs one generator step (after ``d_steps`` discriminator steps) and returns its
metrics; ``sample()`` draws images on demand; ``state()`` / ``load_state()`` capture everything that
makes a resumed run continue exactly as an uninterrupted one: weights, EMA, optimizer moments, the
data order and every random-number stream.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any, NamedTuple

import torch

from ganforge import models
from ganforge.config import RunConfig
from ganforge.data import ImageDataset
from ganforge.devices import keep_freed_memory, resolve_channels_last, resolve_device, resolve_precision, tune_cudnn
from ganforge.errors import CheckpointError, ConfigError, warn
from ganforge.models.stylegan2 import set_precision
from ganforge.storage.checkpoint import load_module, load_optimizer, module_tensors, optimizer_tensors
from ganforge.train import distributed as ddp
from ganforge.train import progan
from ganforge.train import regularizers as reg
from ganforge.train.augment.diffaug import diff_augment, parse_policy
from ganforge.train.distributed import DistInfo
from ganforge.train.losses import get_loss, gradient_penalty, r1_penalty


def complete_config(cfg: RunConfig, data: ImageDataset) -> RunConfig:
    """Fill in what comes from the data (size, channels, classes) and resolve 'auto' options."""
    cfg = copy.deepcopy(cfg)
    m = cfg.model
    m.resolution, m.channels = data.resolution, data.channels
    if models.is_conditional(m.family):
        if data.num_classes < 2:
            note = getattr(data, "label_note", "")
            if note:
                raise ConfigError(f"model family '{m.family}' needs class labels, but '{data.name}' gives none: {note}")
            raise ConfigError(f"model family '{m.family}' needs class labels, but data set '{data.name}' has none: "
                              "use a labelled data set (sub-folders per class) or an unconditional family (dcgan)")
        m.num_classes = data.num_classes
    else:
        m.num_classes = 0
    if m.d_norm == "auto":
        m.d_norm = "none" if (m.spectral_norm or cfg.train.loss == "wgan-gp") else "batch"
    cfg.class_names = list(data.class_names) if m.num_classes else []
    cfg.train.growth = progan.resolve(cfg)  # the schedule's defaults depend on the size and the run's length
    # The size before the border, so that loading this config again (resume, eval) gives the same images.
    cfg.data.resolution, cfg.data.channels = data.resolution - 2 * cfg.data.pad, data.channels
    return cfg


MAX_LR = 10.0  # far above any GAN's; past it a typo, and inf overflows the optimizer's float
MAX_GRID = 1024  # images in one sample grid (32 x 32)
MAX_BATCH = 4096  # per process, a sanity bound (BigGAN's whole batch was 2,048): past it, a typo's OOM kill


def validate(t, world_size: int = 1) -> None:
    """Reject hyperparameters that would train nonsense (or a batch that does not split over ``world_size``
    processes), before any work is done."""
    for name in ("steps", "batch_size", "d_steps", "sample_every", "ckpt_every", "log_every", "grid_size",
                 "r1_every", "pl_every", "pl_batch_shrink", "ada_interval"):
        if getattr(t, name) < 1:
            raise ConfigError(f"{name} must be a positive whole number, got {getattr(t, name)}")
    for name in ("g_lr", "d_lr"):
        if not 0 < getattr(t, name) <= MAX_LR:  # NaN fails too; inf or 1e308 would overflow the optimizer
            raise ConfigError(f"{name} must be a number above 0 and at most {MAX_LR:g}, got {getattr(t, name)}")
    if not 0 <= t.ema_decay < 1:
        raise ConfigError(f"ema_decay must be in [0, 1) (0 turns EMA off), got {t.ema_decay}")
    for name in ("r1_gamma", "gp_weight", "drift", "pl_weight", "ema_kimg", "ema_rampup", "ada_target"):
        if not (math.isfinite(getattr(t, name)) and getattr(t, name) >= 0):
            raise ConfigError(f"{name} must be a finite number, 0 or more, got {getattr(t, name)}")
    for name in ("style_mixing", "ada_p", "pl_decay"):
        if not 0 <= getattr(t, name) <= 1:
            raise ConfigError(f"{name} must lie in [0, 1], got {getattr(t, name)}")
    if not (math.isfinite(t.ada_kimg) and t.ada_kimg > 0):
        raise ConfigError(f"ada_kimg must be positive, got {t.ada_kimg}")
    for name in ("g_betas", "d_betas"):
        if not all(0 <= b < 1 for b in getattr(t, name)):
            raise ConfigError(f"{name} must lie in [0, 1), got {list(getattr(t, name))}")
    for name in ("g_momentum", "d_momentum"):
        if not 0 <= getattr(t, name) < 1:
            raise ConfigError(f"{name} must lie in [0, 1), got {getattr(t, name)}")
    if t.grid_size > MAX_GRID:
        raise ConfigError(f"grid_size {t.grid_size} is more than {MAX_GRID} images: a sample grid that large "
                          "takes minutes to render at every sample step and is too big to view; give a smaller "
                          "--grid-size (ganforge generate writes any number of samples after training)")
    if t.batch_size // max(world_size, 1) > MAX_BATCH:  # what one process holds
        per = "" if world_size == 1 else f" ({t.batch_size // world_size} per process)"
        raise ConfigError(f"batch size {t.batch_size}{per} is more than {MAX_BATCH} per process, beyond what a "
                          "GAN step can hold in memory: give a smaller --batch-size (or growth batch)")
    if t.batch_size % world_size:
        raise ConfigError(f"batch size {t.batch_size} does not split over {world_size} processes")


class Batch(NamedTuple):
    """What one step's phases share: the real batch, the latents and the fakes made from them."""
    real: torch.Tensor
    c_real: torch.Tensor | None
    z: torch.Tensor
    c_fake: torch.Tensor | None
    fake: torch.Tensor


class StepStats(Mapping):
    """A step's statistics. Losses and D's outputs stay tensors on the device until read: reading one
    (``stats["loss_d"]``, ``dict(stats)``) converts it to a float, which waits for the device, so a loop that
    reads them only when it logs does not stall a GPU every step."""

    def __init__(self, values: dict[str, Any]):
        self._values = values

    def __getitem__(self, key: str):
        value = self._values[key]
        if isinstance(value, torch.Tensor):
            value = self._values[key] = value.item()
        return value

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def unread(self) -> list[str]:
        """Names of the statistics still held as device tensors (not read yet)."""
        return [k for k, v in self._values.items() if isinstance(v, torch.Tensor)]

    def __repr__(self) -> str:
        return f"StepStats({dict(self)})"


# name -> builder(params, lr, betas); one pair of numbers per network serves every optimizer. foreach: one
# multi-tensor kernel per update instead of one per parameter (torch does this by default only on CUDA); the
# same formula per element, so the weights are the same (bit for bit on the CPUs measured).
OPTIMIZERS = {
    "adam": lambda params, lr, betas: torch.optim.Adam(params, lr=lr, betas=betas, foreach=True),
    "sgd": lambda params, lr, betas: torch.optim.SGD(params, lr=lr, momentum=betas[0], foreach=True),  # momentum
    "rmsprop": lambda params, lr, betas: torch.optim.RMSprop(params, lr=lr, alpha=betas[1], foreach=True),
    # SGD with its own momentum field (g_momentum / d_momentum), as the browser GAN Playground offers it.
    "momentum": lambda params, lr, betas, momentum=0.0: torch.optim.SGD(params, lr=lr, momentum=momentum,
                                                                        foreach=True),
    "adagrad": lambda params, lr, betas: torch.optim.Adagrad(params, lr=lr, foreach=True),
    "adadelta": lambda params, lr, betas: torch.optim.Adadelta(params, lr=lr, foreach=True),
}
NORMALIZE = ("[-1,1]", "[0,1]", "none")  # data.normalize: the real images' scale (G's output should match it)


def _optimizer(name: str, params, lr: float, betas, momentum: float = 0.0) -> torch.optim.Optimizer:
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer '{name}'; choose {', '.join(OPTIMIZERS)}")
    if name == "momentum":  # the one builder with a third number
        return OPTIMIZERS[name](params, lr, betas, momentum=momentum)
    return OPTIMIZERS[name](params, lr, betas)


class Trainer:
    def __init__(self, cfg: RunConfig, data: ImageDataset, device: str | torch.device | None = None,
                 dist: DistInfo | None = None):
        self.cfg = cfg = complete_config(cfg, data)
        t = cfg.train
        self.dist = dist or DistInfo()
        self.device = resolve_device(device or t.device) if not isinstance(device, torch.device) else device
        validate(t, self.dist.world_size)
        if self.device.type == "cpu":
            keep_freed_memory()
        tune_cudnn(self.device)
        self.batch_size = t.batch_size  # the global batch now (ProGAN changes it per resolution)
        self.local_batch = t.batch_size // self.dist.world_size
        if cfg.data.normalize not in NORMALIZE:
            raise ConfigError(f"data.normalize must be one of {', '.join(NORMALIZE)}, got {cfg.data.normalize!r}")
        self.loss = get_loss(t.loss)
        self.aug = parse_policy(t.diffaug)
        self.data = data

        torch.manual_seed(t.seed)  # identical initial weights on every rank
        self.G, self.D = (net.to(self.device) for net in models.build(cfg.model))
        self.channels_last = resolve_channels_last(t.channels_last, cfg.model.family, self.device)
        if self.channels_last:
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        if t.style_mixing > 0:
            reg.require_mapping(self.G, cfg.model.family, "style_mixing")
        if t.pl_weight > 0:
            reg.require_mapping(self.G, cfg.model.family, "pl_weight (path-length regularisation)")
        self.lazy_r1 = t.r1_gamma > 0 and t.r1_every > 1
        self.lazy_pl = t.pl_weight > 0
        # Lazy regularisation adds steps to one network's optimizer: retune Adam as StyleGAN2 does.
        g_lr, g_betas = reg.lazy_adam(t.g_lr, t.g_betas, t.pl_every if self.lazy_pl and t.g_opt == "adam" else 1)
        d_lr, d_betas = reg.lazy_adam(t.d_lr, t.d_betas, t.r1_every if self.lazy_r1 and t.d_opt == "adam" else 1)
        self.opt_G = _optimizer(t.g_opt, self.G.parameters(), g_lr, g_betas, t.g_momentum)
        self.opt_D = _optimizer(t.d_opt, self.D.parameters(), d_lr, d_betas, t.d_momentum)
        self.path_length = reg.PathLength(t.pl_decay)
        self.ada = self.ada_control = None
        if t.ada_target > 0 or t.ada_p > 0:
            from ganforge.train.augment.ada import AdaController, AdaptiveAugment

            self.ada = AdaptiveAugment(t.ada_pipe, p=t.ada_p)
            if t.ada_target > 0:
                self.ada_control = AdaController(t.ada_target, t.ada_interval, t.ada_kimg)
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
        # num_fp16_res blocks: train.precision is about autocast, and 'fp32' there (the paper presets') must not
        # take the blocks' float16 away on CUDA; so only an explicit bf16 forces them, else they follow 'auto'
        # (float16 on CUDA, bfloat16 on CPUs with fast bf16, float32 on other CPUs).
        for net in (self.G, self.D, self.G_ema):
            set_precision(net, "bf16" if t.precision == "bf16" else "auto")
        self._autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16) if self.precision == "bf16"
                          else nullcontext())
        self.growth = None
        if progan.is_growing(cfg.model.family):
            for b in progan.batch_sizes(cfg):
                validate(dataclasses.replace(t, batch_size=b), self.dist.world_size)
            self.growth = progan.Growth(cfg)
            self._grow()

    def _grow(self) -> None:
        """ProGAN: networks, optimizers and batch size at the stage for the images seen so far."""
        stage = self.growth.apply([self.G, self.D, self.G_ema], [self.opt_G, self.opt_D])
        self.batch_size, self.local_batch = stage.batch, stage.batch // self.dist.world_size

    # ----------------------------------------------------------------- data and latents
    def _next_indices(self) -> torch.Tensor:
        """This rank's share of the next global batch, walking an epoch-wise random order."""
        need, parts = self.batch_size, []
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
        x = self.images[idx].to(self.device, torch.float32)
        norm = self.cfg.data.normalize
        x = x / 127.5 - 1 if norm == "[-1,1]" else x / 255 if norm == "[0,1]" else x
        if self.cfg.data.xflip:
            flip = (torch.rand(x.shape[0], generator=self.noise_gen) < 0.5).to(self.device)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        if self.growth is not None:
            x = self.growth.reals(x)  # at the current resolution, faded in as G's images are
        if self.channels_last:
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
        """What D sees: DiffAugment and/or ADA, both differentiable (also twice, for R1)."""
        if self.aug:
            x = diff_augment(x, self.aug, self.noise_gen)
        if self.ada is not None:
            x = self.ada(x, self.noise_gen)
        return x

    def _generate(self, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        mixing = self.cfg.train.style_mixing
        if mixing > 0:
            return self.G.synthesis(reg.mapped_ws(self.G, z, c, mixing, self.noise_gen))
        return self.G(z, c)

    def _apply(self, opt: torch.optim.Optimizer, net: torch.nn.Module, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in net.parameters() if p.grad is not None]
        if self.dist.active:
            ddp.average_gradients(list(net.parameters()), self.dist.world_size)
        # As the official trainer: one overflow must not poison the weights (and Adam's moments) for good.
        for p in params:
            torch.nan_to_num_(p.grad, nan=0.0, posinf=1e5, neginf=-1e5)
        opt.step()

    def _reduce_mean(self, value: torch.Tensor) -> torch.Tensor:
        return ddp.mean_across(value, self.dist.world_size) if self.dist.active else value

    # ----------------------------------------------------------------- one step
    def step(self) -> StepStats:
        """One generator update after ``d_steps`` discriminator updates, in the official loss's phases:
        D main, D regulariser (lazy R1), G main, G regulariser (lazy path length). Returns the step's
        statistics, read from the device only when looked at."""
        t, start = self.cfg.train, time.perf_counter()
        self.G.train()
        self.D.train()
        stats: dict[str, Any] = {}
        for i in range(t.d_steps):
            batch = self._d_main(keep_fake_graph=i == t.d_steps - 1, stats=stats)
        if self.lazy_r1 and self.step_count % t.r1_every == 0:
            self._d_reg(batch, stats)
        self.D.requires_grad_(False)  # the G phases need gradients w.r.t. images only, not D's weights
        try:
            self._g_main(batch, stats)
            if self.lazy_pl and self.step_count % t.pl_every == 0:
                self._g_reg(batch, stats)
        finally:
            self.D.requires_grad_(True)
        if self.growth is not None:
            stats["resolution"], stats["alpha"] = self.growth.stage.resolution, self.growth.stage.alpha
        batch = self.batch_size
        self._end_step(stats)
        seconds = time.perf_counter() - start
        return StepStats({"step": self.step_count, **stats, "img_per_s": batch * t.d_steps / seconds,
                          "seconds": seconds})

    def step_d(self) -> StepStats:
        """One discriminator update alone (the playground's "D only" step): no G update, no EMA update, and
        the step count (which counts G updates) stays. Lazy regularisers are not run."""
        start = time.perf_counter()
        self.G.train()
        self.D.train()
        stats: dict[str, Any] = {}
        self._d_main(keep_fake_graph=False, stats=stats)
        return StepStats({"step": self.step_count, **stats, "seconds": time.perf_counter() - start})

    def step_g(self) -> StepStats:
        """One generator update alone on fresh latents (the playground's "G only" step); it counts as a step
        and updates the EMA. Lazy regularisers are not run."""
        start = time.perf_counter()
        self.G.train()
        self.D.train()
        stats: dict[str, Any] = {}
        z, c = self._latents()
        with self._autocast:
            fake = self._generate(z, c)
        self.D.requires_grad_(False)
        try:
            self._g_main(Batch(fake, None, z, c, fake), stats)
        finally:
            self.D.requires_grad_(True)
        self._end_step(stats)
        return StepStats({"step": self.step_count, **stats, "seconds": time.perf_counter() - start})

    def _d_main(self, keep_fake_graph: bool, stats: dict) -> Batch:
        """D's main phase: real up, fake down (with the non-lazy R1 or WGAN-GP penalty). On the last D step
        the fakes keep their graph so that G's main phase reuses them."""
        t, D = self.cfg.train, self.D
        real, c_real = self._real_batch()
        z, c_fake = self._latents()
        with self._autocast:
            with nullcontext() if keep_fake_graph else torch.no_grad():
                fake = self._generate(z, c_fake)
            d_real = D(self._augment(real), c_real).float()
            d_fake = D(self._augment(fake.detach()), c_fake).float()
            loss_d = self.loss.d_loss(d_real, d_fake)
        if self.loss.gradient_penalty:
            gp_real, gp_fake = real, fake.detach()
            if self.growth is not None:
                gp_real, gp_fake = self.growth.penalty_images(gp_real), self.growth.penalty_images(gp_fake)
            loss_d = loss_d + t.gp_weight * gradient_penalty(D, gp_real, gp_fake, c_real, self.noise_gen)
        if t.r1_gamma > 0 and not self.lazy_r1:
            loss_d = loss_d + t.r1_gamma / 2 * r1_penalty(self._d_augmented, real, c_real)
        if t.drift > 0:  # ProGAN's epsilon_drift: keeps the critic's outputs from drifting away from 0
            loss_d = loss_d + t.drift * d_real.square().mean()
        self._apply(self.opt_D, D, loss_d)
        if self.ada_control is not None:
            self.ada_control.observe(d_real.detach())
        read = torch.sigmoid if self.loss.probabilities else (lambda v: v)
        stats["loss_d"] = loss_d.detach()
        stats["d_real"], stats["d_fake"] = read(d_real.detach()).mean(), read(d_fake.detach()).mean()
        return Batch(real, c_real, z, c_fake, fake)

    def _d_reg(self, batch: Batch, stats: dict) -> None:
        """Lazy R1 (StyleGAN2): its own D step every r1_every steps, weighted by the interval."""
        t = self.cfg.train
        r1 = r1_penalty(self._d_augmented, batch.real, batch.c_real)
        self._apply(self.opt_D, self.D, r1 * (t.r1_gamma / 2 * t.r1_every))
        stats["r1"] = r1.detach()

    def _g_main(self, batch: Batch, stats: dict) -> None:
        """G's main phase: make D call the fakes of the last D step real."""
        with self._autocast:
            d_gen = self.D(self._augment(batch.fake), batch.c_fake).float()
            loss_g = self.loss.g_loss(d_gen)
        self._apply(self.opt_G, self.G, loss_g)
        stats["loss_g"] = loss_g.detach()

    def _g_reg(self, batch: Batch, stats: dict) -> None:
        """Lazy path-length regularisation (StyleGAN2) on a shrunk batch, weighted by the interval."""
        t = self.cfg.train
        n = max(1, self.local_batch // t.pl_batch_shrink)
        c = None if batch.c_fake is None else batch.c_fake[:n]
        pl = self.path_length.penalty(self.G, batch.z[:n], c, t.style_mixing, self.noise_gen, self._reduce_mean)
        self._apply(self.opt_G, self.G, pl * (t.pl_weight * t.pl_every))
        stats["pl_penalty"], stats["pl_mean"] = pl.detach(), self.path_length.mean.detach()

    def _end_step(self, stats: dict) -> None:
        """After the updates: ADA's p, buffers shared across ranks, the generator average, the step count."""
        t = self.cfg.train
        if self.ada_control is not None:
            if self.dist.active:
                self.ada_control.set_sums(ddp.sum_across(self.ada_control.sums()))
            self.ada_control.update(self.ada, self.batch_size * t.d_steps)
        if self.ada is not None:
            stats["ada_p"] = self.ada.p
        if self.dist.active:
            ddp.broadcast_buffers(self.G)
            ddp.broadcast_buffers(self.D)
        self._update_ema()
        self.step_count += 1
        if self.growth is not None:
            self.growth.advance(self.batch_size * t.d_steps)
            self._grow()

    def _d_augmented(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """D behind the augmentation, so that R1's gradient is taken w.r.t. the un-augmented image."""
        return self.D(self._augment(x), c)

    @torch.no_grad()
    def _update_ema(self) -> None:
        t = self.cfg.train
        if t.ema_kimg > 0:  # StyleGAN2: a half-life in images, independent of the batch size
            beta = reg.ema_beta(self.batch_size, (self.step_count + 1) * self.batch_size * t.d_steps, t.ema_kimg,
                                t.ema_rampup)
        else:
            decay = t.ema_decay
            # Warm-up: a young run's average should not be dominated by its random initial weights.
            beta = min(decay, (1 + self.step_count) / (10 + self.step_count)) if decay > 0 else 0.0
        reg.update_average(self.G_ema, self.G, beta)

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
        tensors, meta = loop_state(self, (("G", self.G), ("G_ema", self.G_ema), ("D", self.D)), self.dist.world_size)
        tensors["pl_mean"] = self.path_length.mean.detach().cpu().reshape([])
        if self.ada is not None:
            meta["ada_p"] = self.ada.p
        if self.ada_control is not None:
            meta["ada_control"] = self.ada_control.state_dict()
        if self.growth is not None:
            meta["growth_images"] = self.growth.images
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any], source: str = "checkpoint"):
        try:
            load_loop_state(self, tensors, meta, (("G", self.G), ("G_ema", self.G_ema), ("D", self.D)), source)
            if "pl_mean" in tensors:  # absent in checkpoints from before path-length regularisation
                self.path_length.mean = tensors["pl_mean"].to(self.device, torch.float32)
            if self.ada is not None and "ada_p" in meta:
                self.ada.p = float(meta["ada_p"])
            if self.ada_control is not None and "ada_control" in meta:
                self.ada_control.load_state_dict(meta["ada_control"])
            if self.growth is not None:
                self.growth.images = int(meta["growth_images"])
                self._grow()
        except KeyError as e:
            raise CheckpointError(f"{source} lacks {e}: it is not a full training checkpoint") from e
        if len(self.perm) != len(self.data):
            raise CheckpointError(f"{source} was trained on {len(self.perm)} images but the data now has "
                                  f"{len(self.data)}; resume with the same data")
        if meta.get("world_size", 1) != self.dist.world_size and self.dist.is_main:
            warn("resuming with a different number of processes: training continues, "
                 "but not bit-identically to an uninterrupted run", stacklevel=2)


def loop_state(t, nets, world_size: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """What every trainer's checkpoint holds: the networks (``(prefix, module)`` pairs), both optimizers, the
    random streams (global, data order, noise), the data order and position, the step and the config. ``t``
    has ``opt_G``, ``opt_D``, ``data_gen``, ``noise_gen``, ``perm``, ``pos``, ``step_count`` and ``cfg``."""
    tensors: dict[str, torch.Tensor] = {}
    for prefix, net in nets:
        tensors.update(module_tensors(net, prefix))
    meta: dict[str, Any] = {"step": t.step_count, "data_pos": t.pos}
    for name in ("opt_G", "opt_D"):
        opt_tensors, meta[name] = optimizer_tensors(getattr(t, name), name)
        tensors.update(opt_tensors)
    tensors["rng.global"] = torch.get_rng_state()
    tensors["rng.data"] = t.data_gen.get_state()
    tensors["rng.noise"] = t.noise_gen.get_state()
    tensors["data.perm"] = t.perm
    meta.update(config=t.cfg.to_dict(), world_size=world_size)
    return tensors, meta


def load_loop_state(t, tensors: dict[str, torch.Tensor], meta: dict[str, Any], nets, source: str) -> None:
    """Restore what :func:`loop_state` saved into ``t``; a missing entry raises KeyError for the caller to
    name."""
    for prefix, net in nets:
        load_module(net, tensors, prefix, source)
    for name in ("opt_G", "opt_D"):
        load_optimizer(getattr(t, name), tensors, meta[name], name)
    torch.set_rng_state(tensors["rng.global"])
    t.data_gen.set_state(tensors["rng.data"])
    t.noise_gen.set_state(tensors["rng.noise"])
    t.perm, t.pos, t.step_count = tensors["data.perm"].long(), int(meta["data_pos"]), int(meta["step"])


def check_init_fits(run: str, init_cfg: RunConfig, data: ImageDataset) -> None:
    """The data must give the image size, channels and classes of the --init run's networks."""
    want = init_cfg.model
    pad = init_cfg.data.pad if isinstance(init_cfg.data.pad, int) else 0
    gives = {"resolution": data.resolution, "channels": data.channels,
             "num_classes": data.num_classes if want.num_classes else 0}
    fixes = {"resolution": f"--resolution {want.resolution - 2 * pad}" + (f" --pad {pad}" if pad else ""),
             "channels": f"--channels {want.channels}", "num_classes": f"a data set with {want.num_classes} classes"}
    for name, value in gives.items():
        if value != getattr(want, name):
            raise ConfigError(f"--init {run} draws {name.replace('num_', '')} {getattr(want, name)} but this data "
                              f"gives {value}: train with {fixes[name]}")


def init_weights(trainer: Trainer, run: str, tensors: dict[str, torch.Tensor], init_cfg: RunConfig) -> list[str]:
    """Start ``trainer`` from another run's networks (fine-tuning, e.g. an imported official pickle): G and
    G_ema (either stands in for the other), and D when the run has one. Returns the networks loaded."""
    m, want = trainer.cfg.model, init_cfg.model
    for name in ("resolution", "channels", "num_classes"):
        if getattr(m, name) != getattr(want, name):
            raise ConfigError(f"--init {run} has {name} {getattr(want, name)} but this data gives "
                              f"{getattr(m, name)}: make the data match (e.g. --resolution {want.resolution})")
    has = {p for p in ("G", "G_ema", "D") if any(k.startswith(p + ".") for k in tensors)}
    if not has & {"G", "G_ema"}:
        raise CheckpointError(f"--init {run} holds no generator weights")
    load_module(trainer.G, tensors, "G" if "G" in has else "G_ema", run)
    load_module(trainer.G_ema, tensors, "G_ema" if "G_ema" in has else "G", run)
    if "D" in has:
        load_module(trainer.D, tensors, "D", run)
    if trainer.growth is not None:
        trainer._grow()  # the stage of this run's schedule, not the one the other run reached
    if trainer.dist.active:
        for net in (trainer.G, trainer.D, trainer.G_ema):
            ddp.broadcast_module(net)
    return sorted(has | {"G", "G_ema"})
