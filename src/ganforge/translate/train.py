"""The paired training loop: a conditional GAN with an L1 term (pix2pix), or L1 alone (``adv_weight`` 0: the
PSNR model of super-resolution).

Per step, for a batch of pairs (A, B) cropped and flipped alike: the generator makes ``G(A)``; the
discriminator sees the condition stacked with an image, ``D([A↑, B])`` against ``D([A↑, G(A)])`` (``A↑`` is
A resized to B's size, bicubic, for super-resolution), under any ganforge loss (train/losses.py); the generator
minimises ``adv_weight * loss_G + l1_weight * |G(A) - B|`` (``recon`` "mse": the squared error instead, as
SRResNet was trained). With ``adv_weight`` 0 the discriminator is never run. Colourisation predicts a*b*
from L, so its L1 term is on a*b*.

The run directory is that of the other families (train/run.py's :class:`~ganforge.train.run.Run` does the
signals, checkpoints, log.jsonl and results over time): ``samples/step-N.png`` shows fixed held-out pairs as
rows of input | output | target, ``progress.gif`` those over time. The translation settings live in the
config's ``model.options`` (task, scale, downsample, adv_weight, l1_weight, recon, crop, rotate), so a run's
config.json says everything needed to rebuild, resume, translate and evaluate it.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ganforge import models
from ganforge.config import RunConfig
from ganforge.devices import resolve_device
from ganforge.errors import CheckpointError, ConfigError
from ganforge.storage.checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
)
from ganforge.storage.images import auto_upscale, grid, save_image
from ganforge.train.distributed import DistInfo
from ganforge.train.losses import get_loss
from ganforge.train.run import Run, check_resumable, run_dir_of
from ganforge.train.trainer import OPTIMIZERS, load_loop_state, loop_state, validate
from ganforge.translate.data import Pairs, Task, crop_flip, load_pairs

TRANSLATION_FAMILIES = ("pix2pix", "srresnet")
GRID_PAIRS = 8  # held-out pairs shown in each results-over-time grid
DEFAULTS = {"adv_weight": 1.0, "l1_weight": 100.0}
RECON_LOSSES = ("l1", "mse")


def task_of(cfg: RunConfig) -> Task:
    o = cfg.model.options or {}
    if "task" not in o:
        raise ConfigError(f"run of family {cfg.model.family} has no task in its config (model.options.task)")
    return Task(o["task"], int(o.get("scale", 4)), o.get("downsample", "bicubic"))


def weights_of(cfg: RunConfig) -> tuple[float, float]:
    o = cfg.model.options or {}
    adv, l1 = float(o.get("adv_weight", DEFAULTS["adv_weight"])), float(o.get("l1_weight", DEFAULTS["l1_weight"]))
    if adv < 0 or l1 < 0 or adv == l1 == 0:
        raise ConfigError(f"--adv-weight and --l1-weight must not be negative nor both 0, got {adv} and {l1}")
    return adv, l1


def check_translation_config(cfg: RunConfig) -> Task:
    """Reject what cannot train before the data is read."""
    t, m = cfg.train, cfg.model
    if m.family not in TRANSLATION_FAMILIES:
        raise ConfigError(f"family {m.family} is not an image-to-image family ({', '.join(TRANSLATION_FAMILIES)})")
    task = task_of(cfg)
    if m.family == "srresnet" and task.name != "superres":
        raise ConfigError(f"family srresnet only does --task superres, not {task.name}: use --family pix2pix")
    validate(t)
    get_loss(t.loss)
    for name in ("g_opt", "d_opt"):
        if getattr(t, name) not in OPTIMIZERS:
            raise ConfigError(f"unknown {name} '{getattr(t, name)}'; choose {', '.join(OPTIMIZERS)}")
    if t.eval_every:
        raise ConfigError("--eval-every (FID while training) is for the sampling families; "
                          "score a translation run with `ganforge eval RUN` afterwards")
    weights_of(cfg)
    recon = (m.options or {}).get("recon", "l1")
    if recon not in RECON_LOSSES:
        raise ConfigError(f"unknown reconstruction loss '{recon}': choose {' or '.join(RECON_LOSSES)}")
    if not isinstance((m.options or {}).get("rotate", False), bool):
        raise ConfigError(f"model option rotate must be true or false, got {m.options['rotate']!r}")
    crop = (m.options or {}).get("crop")
    if crop is not None and (isinstance(crop, bool) or not isinstance(crop, int) or crop < 8):
        raise ConfigError(f"--crop must be a whole number of pixels >= 8, got {crop!r}")
    return task


def complete_translation_config(cfg: RunConfig, train: Pairs) -> RunConfig:
    """Fill in the sizes from the data: target channels, crop size, the networks' channels."""
    cfg = copy.deepcopy(cfg)
    task = task_of(cfg)
    m, o = cfg.model, dict(cfg.model.options or {})
    c = train.channels
    if task.name == "colorize" and c != 3:
        raise ConfigError(f"--task colorize needs colour images, but {train.name} is gray: use colour data "
                          "(e.g. photos) or --channels 3 for a folder of colour images")
    crop = o.get("crop") or train.resolution
    if crop > train.resolution:
        raise ConfigError(f"--crop {crop} is larger than the images ({train.resolution} px): lower it or raise "
                          "--resolution")
    if task.name == "superres" and crop % task.scale:
        raise ConfigError(f"crop {crop} px is not a multiple of --scale {task.scale}: choose a --resolution "
                          "(or --crop) divisible by it")
    o.update(task=task.name, scale=task.scale, downsample=task.downsample, in_channels=task.in_channels(c),
             out_channels=task.out_channels(c))
    if task.name == "paired" and train.a is not None:
        o["in_channels"] = int(train.a.shape[1])
    if m.family == "pix2pix" and task.name == "superres":
        o["upsample"] = task.scale
    if m.family == "pix2pix":
        o.setdefault("depth", min(8, max(1, crop.bit_length() - 1)))  # down to 1x1 at the crop size, 8 at most
    for k, v in DEFAULTS.items():
        o.setdefault(k, v)
    m.options, m.channels, m.resolution, m.num_classes = o, c, crop, 0
    cfg.class_names = []
    _check_patch(cfg, crop)
    cfg.data.resolution, cfg.data.channels = train.resolution, c
    return cfg


def _check_patch(cfg: RunConfig, crop: int) -> None:
    """The discriminator must fit the crop: a dry run on the meta device (nothing allocated)."""
    m = cfg.model
    with torch.device("meta"):
        _, D = models.build(m)
        try:
            D(torch.empty(1, m.options["in_channels"] + m.options["out_channels"], crop, crop))
        except RuntimeError as e:
            patch = m.options.get("patch", 70)
            raise ConfigError(f"{crop} px training images are too small for the {patch}x{patch} PatchGAN "
                              "discriminator: pick a smaller patch, e.g. --model-options '{\"patch\": 16}', or "
                              "larger images (--resolution / --crop)") from e


def condition(a: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A at B's size, for the discriminator (bicubic where A is smaller)."""
    if a.shape[-2:] == size:
        return a
    return F.interpolate(a, size=size, mode="bicubic", align_corners=False).clamp(-1, 1)


class TranslationTrainer:
    """One step = one discriminator update (unless ``adv_weight`` is 0) and one generator update. Offers what
    :class:`~ganforge.train.run.Run` uses of a trainer: ``cfg``, ``dist``, ``data``, ``G``, ``device``,
    ``step_count``, ``step()``, ``state()`` and ``load_state()``."""

    def __init__(self, cfg: RunConfig, train: Pairs, test: Pairs, device: str | torch.device | None = None):
        self.cfg = cfg = complete_translation_config(cfg, train)
        self.task = task_of(cfg)
        self.adv_weight, self.l1_weight = weights_of(cfg)
        self.recon = (cfg.model.options or {}).get("recon", "l1")
        self.rotate = bool((cfg.model.options or {}).get("rotate", False))
        t = cfg.train
        self.device = device if isinstance(device, torch.device) else resolve_device(device or t.device)
        self.dist = DistInfo()
        self.data, self.test = train, test
        self.loss = get_loss(t.loss)
        torch.manual_seed(t.seed)
        self.G, self.D = (net.to(self.device) for net in models.build(cfg.model))
        self.G_ema = self.G  # no EMA: pix2pix and SRResNet use the trained weights themselves
        self.opt_G = OPTIMIZERS[t.g_opt](self.G.parameters(), t.g_lr, t.g_betas)
        self.opt_D = OPTIMIZERS[t.d_opt](self.D.parameters(), t.d_lr, t.d_betas)
        self.data_gen = torch.Generator().manual_seed(t.seed)
        self.noise_gen = torch.Generator().manual_seed(t.seed * 7919 + 1)
        self.perm = torch.randperm(len(train), generator=self.data_gen)
        self.pos = 0
        self.step_count = 0
        self.crop = cfg.model.resolution

    def _indices(self) -> torch.Tensor:
        need, parts = self.cfg.train.batch_size, []
        while need:
            if self.pos >= len(self.perm):
                self.perm, self.pos = torch.randperm(len(self.data), generator=self.data_gen), 0
            take = min(need, len(self.perm) - self.pos)
            parts.append(self.perm[self.pos:self.pos + take])
            self.pos += take
            need -= take
        return torch.cat(parts)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next (A, B) network tensors: cropped and flipped alike, then the task's input made."""
        idx = self._indices()
        a_u8 = None if self.data.a is None else self.data.a[idx]
        a_u8, b_u8 = crop_flip([a_u8, self.data.b[idx]], self.crop, self.cfg.data.xflip, self.noise_gen,
                               self.rotate)
        a, b = self.task.make(b_u8, a_u8, self.noise_gen)
        return a.to(self.device), b.to(self.device)

    def step(self) -> dict[str, Any]:
        start = time.perf_counter()
        a, b = self.batch()
        self.G.train()
        fake = self.G(a)
        stats: dict[str, Any] = {}
        cond = condition(a, b.shape[-2:]) if self.adv_weight > 0 else None
        if self.adv_weight > 0:
            self.D.train()
            real_logits = self.D(torch.cat([cond, b], 1))
            fake_logits = self.D(torch.cat([cond, fake.detach()], 1))
            loss_d = self.loss.d_loss(real_logits, fake_logits)
            self.opt_D.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_D.step()
            stats["loss_d"] = loss_d.item()
            squash = torch.sigmoid if self.loss.probabilities else (lambda x: x)
            stats["d_real"] = squash(real_logits.detach()).mean().item()
            stats["d_fake"] = squash(fake_logits.detach()).mean().item()
        else:
            stats.update(loss_d=0.0, d_real=0.0, d_fake=0.0)
        if self.recon == "l1":
            l1 = (fake - b).abs().mean()
            loss_g = self.l1_weight * l1
        else:  # the L1 distance is still logged, without a graph
            l1 = (fake.detach() - b).abs().mean()
            loss_g = self.l1_weight * F.mse_loss(fake, b)
        if self.adv_weight > 0:
            self.D.requires_grad_(False)
            adv = self.loss.g_loss(self.D(torch.cat([cond, fake], 1)))
            self.D.requires_grad_(True)
            loss_g = loss_g + self.adv_weight * adv
            stats["loss_adv"] = adv.item()
        self.opt_G.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_G.step()
        self.step_count += 1
        seconds = time.perf_counter() - start
        stats.update(step=self.step_count, loss_g=loss_g.item(), loss_l1=l1.item(), seconds=seconds,
                     img_per_s=b.shape[0] / seconds if seconds > 0 else 0.0)
        return stats

    @torch.no_grad()
    def translate(self, a: torch.Tensor) -> torch.Tensor:
        """Generator outputs for network inputs ``a``, in eval mode, on the CPU."""
        was = self.G.training
        self.G.eval()
        try:
            return self.G(a.to(self.device)).float().cpu()
        finally:
            self.G.train(was)

    # ------------------------------------------------------------------ state
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return loop_state(self, (("G", self.G), ("D", self.D)), 1)

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any], source: str = "checkpoint") -> None:
        try:
            load_loop_state(self, tensors, meta, (("G", self.G), ("D", self.D)), source)
        except KeyError as e:
            raise CheckpointError(f"{source} lacks {e}: it is not a full training checkpoint") from e
        if len(self.perm) != len(self.data):
            raise CheckpointError(f"{source} was trained on {len(self.perm)} pairs but the data now has "
                                  f"{len(self.data)}; resume with the same data")


def grid_pairs(task: Task, test: Pairs, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed held-out (A, B) of the results-over-time grids (the same masks every time for inpaint)."""
    idx = torch.linspace(0, len(test) - 1, min(n, len(test))).round().long().unique()
    sub = test.subset(idx)
    return task.make(sub.b, sub.a, torch.Generator().manual_seed(seed))


def comparison(task: Task, a: torch.Tensor, out: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """Rows of input | output (| target) pictures in [-1, 1], for grid()."""
    pic = task.to_image(a, out)
    tgt = None if target is None else task.to_image(a, target)
    cols = [task.show_input(a, pic.shape[-2:], pic.shape[1]), pic] + ([] if tgt is None else [tgt])
    return torch.stack(cols, 1).flatten(0, 1)


class TranslationRun(Run):
    """A :class:`~ganforge.train.run.Run` whose grids are input | output | target rows of held-out pairs."""

    def __init__(self, trainer: TranslationTrainer, run_dir: str | Path, progress: bool = True):
        super().__init__(trainer, run_dir, progress)
        self.grid_a, self.grid_b = grid_pairs(trainer.task, trainer.test, GRID_PAIRS, trainer.cfg.train.seed)

    @classmethod
    def resume(cls, run_dir: str | Path, train: Pairs, test: Pairs, device=None, progress: bool = True,
               steps: int | None = None) -> TranslationRun:
        run_dir = run_dir_of(run_dir)
        cfg = RunConfig.load(run_dir)
        if steps is not None:
            cfg.train.steps = steps
        tensors, meta = load_checkpoint(check_resumable(run_dir))
        trainer = TranslationTrainer(cfg, train, test, device=device)
        trainer.load_state(tensors, meta, source=str(run_dir / CHECKPOINT_NAME))
        return cls(trainer, run_dir, progress)

    def write_grid(self) -> Path | None:
        tr = self.trainer
        out = torch.cat([tr.translate(self.grid_a[i:i + GRID_PAIRS]) for i in range(0, len(self.grid_a), GRID_PAIRS)])
        images = comparison(tr.task, self.grid_a, out, self.grid_b)
        path = self.dir / "samples" / f"step-{tr.step_count:06d}.png"
        path.parent.mkdir(exist_ok=True)
        self.last_grid = grid(images, nrow=3, upscale=auto_upscale(images.shape[-1]))
        save_image(self.last_grid, path)
        return path


def prepare_run(cfg: RunConfig, run_dir: str | Path | None = None, resume: str | Path | None = None,
                device=None, progress: bool = True, steps: int | None = None, log=print) -> TranslationRun:
    """Data, trainer and run directory for a new run (``run_dir``) or a resumed one (``resume``)."""
    from ganforge.train.run import new_run_dir

    task = check_translation_config(cfg)
    train, test = load_pairs(cfg.data, task)
    log(f"data: {train} (train), {test} (test); task {task.describe()}")
    if resume is not None:
        run = TranslationRun.resume(resume, train, test, device=device, progress=progress, steps=steps)
        log(f"resuming {resume} at step {run.trainer.step_count} of {run.trainer.cfg.train.steps}")
        return run
    trainer = TranslationTrainer(cfg, train, test, device=device)
    stem = Path(str(cfg.data.source)).stem or "data"
    base = run_dir or f"runs/{cfg.model.family}-{task.name}-{stem}"
    return TranslationRun(trainer, new_run_dir(base), progress)
