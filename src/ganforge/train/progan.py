"""ProGAN's growth schedule: which resolution trains, and how far its newest block has faded in, as a
function of the number of real images the discriminator has seen.

As in the paper (and the official ``lod`` schedule): the first resolution (4x4) trains alone ("stabilise") for
``stabilise`` images; then the next one fades in over ``fade`` images (alpha from 0 to 1), stabilises for
``stabilise`` images, the next fades in, ... until the final resolution, which then trains to the end of the run.

``train.growth`` (every key optional; :func:`resolve` writes the values used into the run's config, so that a
resume, or a run with more ``--steps``, keeps them):

* ``start``: the first resolution (4). The final resolution trains the full network from the start, no growth.
* ``stabilise``, ``fade``: images per phase. Default: both equal, sized so that the growth takes the first half
  of the run's images (steps x batch_size x d_steps), at most the paper's 600,000 (a small data set and a short
  CPU run get proportionally short phases).
* ``batch``: ``{resolution: batch size}``, used while that resolution fades in and stabilises; a resolution not
  named uses ``train.batch_size``.
* ``reset_optimizer``: clear both optimizers' moments when a new resolution starts to fade in (true, as the
  official code does: the new layers change what the old ones should do).
* ``penalty_at``: where WGAN-GP's gradient norm is taken. ``native`` (the default): on the images at the
  resolution D works at, so D is held to the same slope (1 per unit of the image it sees) at every stage.
  ``final``: on the images upsampled to the final size, as the official code does; since D average-pools them,
  its slope w.r.t. the native image may then reach the upsampling factor (8 at 4x4 in a 32 px run), and small
  networks trained with short phases collapse to nearly one image while growing (docs/benchmarks.md).

The counter of images seen is in the checkpoint, and the stage follows from it and the schedule, so a run
stopped in the middle of a fade resumes at exactly the same alpha.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ganforge.config import RunConfig
from ganforge.errors import ConfigError
from ganforge.models.progan import area, fade_reals, level_resolution, max_level, set_stage

GROWING_FAMILIES = ("progan",)
PAPER_PHASE_IMAGES = 600_000
KEYS = ("start", "stabilise", "fade", "batch", "reset_optimizer", "penalty_at")
PENALTY_AT = ("native", "final")


@dataclass(frozen=True)
class Stage:
    level: int  # 0 is 4x4
    alpha: float  # how far the newest block is faded in; 1 while stabilising
    resolution: int
    batch: int
    phase: str  # "stabilise" or "fade"


class Schedule:
    def __init__(self, final_resolution: int, start: int = 4, stabilise: int = PAPER_PHASE_IMAGES,
                 fade: int = PAPER_PHASE_IMAGES, batch: dict[int, int] | None = None, default_batch: int = 64):
        self.first, self.last = max_level(start), max_level(final_resolution)
        self.stabilise, self.fade = stabilise, fade
        self.batch, self.default_batch = dict(batch or {}), default_batch

    def _stage(self, level: int, alpha: float, phase: str) -> Stage:
        res = level_resolution(level)
        return Stage(level, alpha, res, self.batch.get(res, self.default_batch), phase)

    def at(self, images: int) -> Stage:
        """The stage after ``images`` real images: the one the next step trains."""
        period = self.stabilise + self.fade
        phase = images // period if period else self.last
        level = self.first + phase
        if level >= self.last:
            return self._stage(self.last, 1.0, "stabilise")
        within = images - phase * period
        if within < self.stabilise:
            return self._stage(level, 1.0, "stabilise")
        return self._stage(level + 1, (within - self.stabilise) / self.fade, "fade")

    def growth_images(self) -> int:
        """Images until the final resolution has faded in completely."""
        return (self.last - self.first) * (self.stabilise + self.fade)


def is_growing(family: str) -> bool:
    return family in GROWING_FAMILIES


def _whole(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = "a positive whole number" if minimum else "0 or a positive whole number"
        raise ConfigError(f"train.growth {name} must be {what}, got {value!r}")
    return value


def resolve(cfg: RunConfig) -> dict[str, Any]:
    """``cfg.train.growth`` checked and completed with the defaults (``cfg.model.resolution`` filled in)."""
    t, res = cfg.train, cfg.model.resolution
    growth = t.growth or {}
    if not isinstance(growth, dict):
        raise ConfigError("train.growth must be an object, e.g. {\"stabilise\": 20000, \"fade\": 20000}")
    if not is_growing(cfg.model.family):
        if growth:
            raise ConfigError(f"train.growth applies to the growing families ({', '.join(GROWING_FAMILIES)}), "
                              f"not {cfg.model.family}: drop it (--growth '{{}}')")
        return {}
    unknown = sorted(set(growth) - set(KEYS))
    if unknown:
        raise ConfigError(f"unknown train.growth option(s) {', '.join(unknown)}; valid: {', '.join(KEYS)}")
    start = _whole(growth.get("start", 4), "start", 1)
    if start < 4 or start & (start - 1) or start > res:
        raise ConfigError(f"train.growth start must be a power of two from 4 to the final resolution {res}, "
                          f"got {start}")
    transitions = max_level(res) - max_level(start)
    total = t.steps * t.batch_size * t.d_steps
    default = min(PAPER_PHASE_IMAGES, max(1, total // (4 * transitions))) if transitions else 0
    stabilise = _whole(growth.get("stabilise", default), "stabilise", 0)
    fade = _whole(growth.get("fade", default), "fade", 0)
    batch_in = growth.get("batch", {})
    if not isinstance(batch_in, dict):
        raise ConfigError("train.growth batch must be an object {resolution: batch size}, e.g. {\"4\": 128}")
    batch = {}
    for key, value in batch_in.items():
        r = int(key) if str(key).isdigit() else -1
        if r < 4 or r & (r - 1) or r > res:
            raise ConfigError(f"train.growth batch names resolution {key!r}: use powers of two from 4 to {res}")
        batch[str(r)] = _whole(value, f"batch for {r}", 1)
    reset = growth.get("reset_optimizer", True)
    if not isinstance(reset, bool):
        raise ConfigError(f"train.growth reset_optimizer must be true or false, got {reset!r}")
    penalty_at = growth.get("penalty_at", "native")
    if penalty_at not in PENALTY_AT:
        raise ConfigError(f"train.growth penalty_at must be one of {', '.join(PENALTY_AT)}, got {penalty_at!r}")
    return {"start": start, "stabilise": stabilise, "fade": fade, "batch": batch, "reset_optimizer": reset,
            "penalty_at": penalty_at}


def schedule(cfg: RunConfig) -> Schedule:
    g = resolve(cfg)
    return Schedule(cfg.model.resolution, g["start"], g["stabilise"], g["fade"],
                    {int(r): b for r, b in g["batch"].items()}, cfg.train.batch_size)


def batch_sizes(cfg: RunConfig) -> list[int]:
    """Every batch size the run uses (each must split over the processes)."""
    s = schedule(cfg)
    return sorted({s.batch.get(level_resolution(k), s.default_batch) for k in range(s.first, s.last + 1)})


class Growth:
    """The trainer's side of the schedule: the images seen, the stage of the networks and the faded reals."""

    def __init__(self, cfg: RunConfig):
        self.schedule = schedule(cfg)
        resolved = resolve(cfg)
        self.reset_optimizer = resolved["reset_optimizer"]
        self.penalty_native = resolved["penalty_at"] == "native"
        self.resample = (cfg.model.options or {}).get("resample", "nearest")
        self.images = 0
        self.stage = self.schedule.at(0)

    def apply(self, nets: list[torch.nn.Module], optimizers: list[torch.optim.Optimizer]) -> Stage:
        """Put ``nets`` at the stage for the images seen so far. A new level clears the optimizers' moments
        (if asked); the level the networks hold tells, so this holds after a resume too."""
        self.stage = s = self.schedule.at(self.images)
        if self.reset_optimizer and int(nets[0].level) != s.level:
            for opt in optimizers:
                opt.state.clear()
        for net in nets:
            set_stage(net, s.level, s.alpha)
        return s

    def reals(self, x: torch.Tensor) -> torch.Tensor:
        return fade_reals(x, self.stage.level, self.stage.alpha, self.resample)

    def penalty_images(self, x: torch.Tensor) -> torch.Tensor:
        """The images WGAN-GP's gradient is taken at (see ``penalty_at``)."""
        return area(x, self.stage.resolution) if self.penalty_native else x

    def advance(self, images: int) -> None:
        self.images += images

    def describe(self) -> dict[str, Any]:
        s = self.stage
        return {"resolution": s.resolution, "alpha": s.alpha, "kimg": self.images / 1000}
