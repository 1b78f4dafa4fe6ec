"""Typed run configuration, serialised to and from ``config.json``.

A run's config holds everything needed to rebuild its networks and continue its training: the data
options, the model family and sizes (filled in from the data), and the training hyperparameters.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganforge.errors import ConfigError

# 2: a finished run's data.resolution is the size before data.pad's border (version 1 stored the size after
# it, so reloading such a run padded twice); from_dict migrates version-1 configs.
CONFIG_VERSION = 2


@dataclass
class DataConfig:
    source: str = "mnist"  # a built-in name (see `ganforge datasets`) or a folder / .zip of images
    resolution: int | None = None  # None: native size for built-ins, 64 for folders
    channels: int | None = None  # 1 or 3; None: 1 for built-ins, auto-detected for folders
    fit: str = "center-crop"  # how non-square images become square: center-crop, pad or stretch
    labels: bool = True  # use class labels (built-in classes, or sub-folder names) when present
    xflip: bool = False  # random horizontal flips during training
    cache: bool = True  # keep a preprocessed uint8 copy so later runs skip decoding
    pad: int = 0  # black border added on every side after resizing (MNIST 28 + 2 * 2 = 32 for StyleGAN2)
    normalize: str = "[-1,1]"  # the real images' scale in training: [-1,1], [0,1] or none (raw 0..255)


@dataclass
class ModelConfig:
    family: str = "cdcgan"
    z_dim: int = 64
    resolution: int = 28  # filled from the data
    channels: int = 1  # filled from the data
    num_classes: int = 0  # filled from the data for conditional families; 0 = unconditional
    g_width: int = 64  # base channel count (dcgan, cdcgan) or hidden width (mlp)
    d_width: int = 64
    spectral_norm: bool = False  # spectral normalisation on every D layer
    d_norm: str = "auto"  # D normalisation: batch, none, or auto (none with spectral norm or WGAN-GP)
    g_layers: list[dict[str, Any]] | None = None  # `layers` family: the generator's layer list
    d_layers: list[dict[str, Any]] | None = None  # `layers` family: the discriminator's layer list
    options: dict[str, Any] = field(default_factory=dict)  # family-specific constructor arguments

    @property
    def img_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.resolution, self.resolution)


@dataclass
class TrainConfig:
    steps: int = 2000  # generator steps (the default recipe: see docs/benchmarks.md)
    batch_size: int = 64  # global batch (split across processes under torchrun)
    loss: str = "hinge"  # ns (non-saturating), hinge, lsgan, wgan-gp
    g_opt: str = "adam"
    d_opt: str = "adam"
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    g_betas: tuple[float, float] = (0.5, 0.999)
    d_betas: tuple[float, float] = (0.5, 0.999)
    g_momentum: float = 0.0  # the "momentum" optimizer's momentum (the others ignore it)
    d_momentum: float = 0.0
    d_steps: int = 1  # discriminator steps per generator step
    ema_decay: float = 0.999  # generator EMA; 0 disables it
    r1_gamma: float = 0.0  # R1 penalty weight on real images; 0 disables it
    r1_every: int = 1  # lazy R1: a separate D step with the penalty every N steps, weighted by N (StyleGAN2: 16)
    pl_weight: float = 0.0  # path-length regularisation weight (StyleGAN2: 2); needs a mapping network
    pl_every: int = 4  # lazy path-length regularisation interval, in G steps
    pl_batch_shrink: int = 2  # the path-length step uses batch_size // pl_batch_shrink latents
    pl_decay: float = 0.01  # speed of the running mean path length that the penalty pulls toward
    style_mixing: float = 0.0  # probability that a batch mixes two latents' styles at a random layer (0.9)
    ema_kimg: float = 0.0  # G EMA half-life in thousands of images; > 0 replaces ema_decay (StyleGAN2: 10)
    ema_rampup: float = 0.0  # > 0: the half-life is at most this fraction of the images seen so far (0.05)
    ada_target: float = 0.0  # adaptive augmentation: target E[sign D(real)] (paper: 0.6); 0 turns ADA off
    ada_pipe: str = "bgc"  # ADA transforms: b (blit), g (geometric), c (colour)
    ada_p: float = 0.0  # initial (or, without ada_target, fixed) augmentation probability
    ada_interval: int = 4  # steps between adjustments of p
    ada_kimg: float = 500  # thousands of images for p to move from 0 to 1
    gp_weight: float = 10.0  # gradient-penalty weight for wgan-gp
    diffaug: str = ""  # DiffAugment: comma list of translation, cutout, color ("" = none; see docs/benchmarks.md)
    seed: int = 0
    sample_every: int = 100  # steps between "results over time" grids
    ckpt_every: int = 500  # steps between checkpoints
    log_every: int = 10  # steps between progress-bar / TensorBoard updates
    device: str = "auto"  # auto, cpu, cuda, mps
    precision: str = "auto"  # fp32, bf16 (autocast), or auto: bf16 on CPUs with AMX units, else fp32
    channels_last: bool | str = "auto"  # true, false, or auto: on for the StyleGAN2 families on x86 CPUs
    tensorboard: bool = False
    grid_size: int = 64  # images in each sample grid
    eval_every: int = 0  # steps between FID evaluations (0: off); the best is kept as best.safetensors
    eval_n: int = 5000  # generated images per evaluation


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    class_names: list[str] = field(default_factory=list)
    version: int = CONFIG_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        if not isinstance(d, dict):
            raise ConfigError("config must be a JSON object")
        cfg = cls(
            data=_build(DataConfig, d.get("data", {}), "data"),
            model=_build(ModelConfig, d.get("model", {}), "model"),
            train=_build(TrainConfig, d.get("train", {}), "train"),
            class_names=list(d.get("class_names", [])),
            version=int(d.get("version", CONFIG_VERSION)),
        )
        data, model = cfg.data, cfg.model
        if cfg.version < 2 and data.pad and data.resolution == model.resolution:
            data.resolution -= 2 * data.pad  # a version-1 run recorded its padded size
        cfg.version = max(cfg.version, CONFIG_VERSION)
        return cfg

    def with_overrides(self, items: list[str]) -> RunConfig:
        """A copy with ``section.field=value`` items applied (value as JSON, else as a plain string)."""
        d = self.to_dict()
        for item in items:
            key, sep, value = item.partition("=")
            section, _, name = key.partition(".")
            if not sep or section not in ("data", "model", "train") or not name:
                raise ConfigError(f"override '{item}' must look like section.field=value, section being "
                                  "data, model or train (e.g. train.batch_size=64)")
            try:
                d[section][name] = json.loads(value)
            except json.JSONDecodeError:
                d[section][name] = value  # a plain string such as fp32
        return RunConfig.from_dict(d)

    def save(self, path: str | Path) -> None:
        from ganforge.storage.atomic import atomic_write_bytes

        atomic_write_bytes(Path(path), self.to_json().encode())

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        if not path.exists():
            raise ConfigError(f"{path} not found: pass a run directory made by `ganforge train`")
        try:
            d = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path} is not valid JSON ({e}); the run's config is damaged") from e
        return cls.from_dict(d)


def _build(cls, values: dict[str, Any], section: str):
    if not isinstance(values, dict):
        raise ConfigError(f"config section '{section}' must be an object")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"unknown {section} option(s) {', '.join(unknown)}; valid: {', '.join(names)}")
    kwargs = {}
    for k, v in values.items():
        if isinstance(v, list) and k.endswith("betas"):
            v = tuple(float(b) for b in v)  # JSON writes 0.0 as 0; Adam wants floats
        kwargs[k] = v
    return cls(**kwargs)
