"""The ``stylegan2`` / ``cstylegan2`` families: StyleGAN2 networks behind ganforge's G/D interface.

Sizes from ``ModelConfig`` (the widths name the widest layer, as in the official ``channel_max``):

* ``channel_max = width`` and ``channel_base = 64 * width``: layers are ``width`` wide up to 64 px and
  halve per octave above, so ``width=512`` gives the official config-F values (32768, 512);
* ``w_dim = g_width``, 2 mapping layers (the official small-data / CIFAR setting; FFHQ used 8);
* D: resnet architecture, minibatch-std groups of 4 (smaller or divisor groups for other batch sizes).

``cfg.options`` may change that architecture (the presets use these; see ``ganforge.train.presets``):
``channel_base`` (both networks), ``mapping_layers``, ``mapping_lr`` (the learning-rate multiplier of G's
mapping and D's class mapping; official 0.01), ``w_dim``, ``mbstd_group``, ``mbstd_channels``,
``g_architecture`` / ``d_architecture`` (orig, skip, resnet), ``num_fp16_res`` and ``conv_clamp``.
``{"G_kwargs": {...}, "D_kwargs": {...}}`` (written by ``ganforge import-stylegan``) instead builds the
networks exactly from official constructor arguments; their sizes must agree with ``cfg``.

Official-style calls stay available on the returned nets: ``G.mapping(z, c, truncation_psi=...)``,
``G.synthesis(ws, noise_mode=...)``, ``G(z, c, truncation_psi, truncation_cutoff, noise_mode)`` and
``Discriminator.forward(D, img, c)`` for ``[B, 1]`` logits.
"""
from __future__ import annotations

import torch

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models.registry import register
from ganforge.models.stylegan2.networks import Discriminator, Generator

MAPPING_LAYERS = 2
MAPPING_LR = 0.01  # official: the mapping networks learn 100x slower than the rest
MBSTD_GROUP = 4


class GanforgeDiscriminator(Discriminator):
    """The official discriminator, returning logits ``[B]`` as ganforge's losses expect."""

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        return super().forward(img, c, **kwargs).squeeze(1)


KWARG_KEYS = ("G_kwargs", "D_kwargs")
# architecture option -> (type, check, what it must be)
ARCH_OPTIONS = {
    "channel_base": (int, lambda v: v >= 1, "a positive whole number"),
    "mapping_layers": (int, lambda v: v >= 1, "a positive whole number"),
    "mapping_lr": ((int, float), lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "w_dim": (int, lambda v: v >= 1, "a positive whole number"),
    "mbstd_group": (int, lambda v: v >= 1, "a positive whole number"),
    "mbstd_channels": (int, lambda v: v >= 0, "0 or a positive whole number"),
    "g_architecture": (str, lambda v: v in ("orig", "skip", "resnet"), "orig, skip or resnet"),
    "d_architecture": (str, lambda v: v in ("orig", "skip", "resnet"), "orig, skip or resnet"),
    "num_fp16_res": (int, lambda v: v >= 0, "0 or a positive whole number"),
    "conv_clamp": ((int, float, type(None)), lambda v: v is None or v > 0, "a positive number or null"),
}
OPTION_KEYS = KWARG_KEYS + tuple(ARCH_OPTIONS)


def _arch(options: dict) -> dict:
    out = {}
    for key, (kind, ok, what) in ARCH_OPTIONS.items():
        if key in options:
            v = options[key]
            if isinstance(v, bool) or not isinstance(v, kind) or not ok(v):
                raise ConfigError(f"stylegan2 model option {key} must be {what}, got {v!r}")
            out[key] = v
    if out and set(KWARG_KEYS) & set(options):
        raise ConfigError("give either G_kwargs/D_kwargs (exact official arguments) or architecture options, "
                          "not both")
    return out


def build_networks(cfg: ModelConfig) -> tuple[Generator, GanforgeDiscriminator]:
    res = cfg.resolution
    if res < 8 or res & (res - 1):
        raise ConfigError(f"stylegan2 needs a power-of-two resolution of at least 8 (e.g. 16, 32, 64), got {res}; "
                          "train with --resolution set to one")
    if cfg.spectral_norm:
        raise ConfigError("stylegan2 does not use spectral normalisation (it relies on equalized learning "
                          "rate and R1): drop --spectral-norm")
    options = cfg.options or {}
    if not isinstance(options, dict):
        raise ConfigError("model options must be an object, e.g. {\"G_kwargs\": {...}, \"D_kwargs\": {...}}")
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise ConfigError(f"unknown stylegan2 model option(s) {', '.join(unknown)}; valid: {', '.join(OPTION_KEYS)}")
    for name in ("g_width", "d_width"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{name} must be positive, got {getattr(cfg, name)}")
    arch = _arch(options)
    mapping = {"num_layers": arch.get("mapping_layers", MAPPING_LAYERS),
               "lr_multiplier": float(arch.get("mapping_lr", MAPPING_LR))}
    common = {"num_fp16_res": arch.get("num_fp16_res", 0), "conv_clamp": arch.get("conv_clamp")}
    G = _from_kwargs(Generator, cfg, options, "G_kwargs")
    if G is None:
        G = Generator(z_dim=cfg.z_dim, c_dim=cfg.num_classes, w_dim=arch.get("w_dim", cfg.g_width),
                      img_resolution=res, img_channels=cfg.channels,
                      mapping_kwargs=mapping,
                      synthesis_kwargs={"channel_base": arch.get("channel_base", 64 * cfg.g_width),
                                        "channel_max": cfg.g_width,
                                        "architecture": arch.get("g_architecture", "skip"), **common})
    D = _from_kwargs(GanforgeDiscriminator, cfg, options, "D_kwargs")
    if D is None:
        D = GanforgeDiscriminator(c_dim=cfg.num_classes, img_resolution=res, img_channels=cfg.channels,
                                  architecture=arch.get("d_architecture", "resnet"),
                                  channel_base=arch.get("channel_base", 64 * cfg.d_width), channel_max=cfg.d_width,
                                  # as official: the class mapping of D has as many layers as G's mapping
                                  mapping_kwargs=mapping,
                                  epilogue_kwargs={"mbstd_group_size": arch.get("mbstd_group", MBSTD_GROUP),
                                                   "mbstd_num_channels": arch.get("mbstd_channels", 1)},
                                  **common)
    return G, D


def _from_kwargs(cls, cfg: ModelConfig, options: dict, key: str):
    """``cls(**cfg.options[key])``, or None without that option; sizes must agree with the config's."""
    kwargs = options.get(key)
    if kwargs is None:
        return None
    if not isinstance(kwargs, dict):
        raise ConfigError(f"model option {key} must be an object of constructor arguments")
    # The config's fields stay the single source of truth for what the rest of ganforge sees.
    want = {"c_dim": cfg.num_classes, "img_resolution": cfg.resolution, "img_channels": cfg.channels}
    if cls is Generator:
        want["z_dim"] = cfg.z_dim
    for name, value in want.items():
        if kwargs.get(name) != value:
            raise ConfigError(f"model option {key}.{name} is {kwargs.get(name)!r} but the config says {value} "
                              f"(model.{_CONFIG_FIELD[name]}); make them agree")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"cannot build the network from model option {key}: {e}") from e


_CONFIG_FIELD = {"c_dim": "num_classes", "img_resolution": "resolution", "img_channels": "channels", "z_dim": "z_dim"}


@register("stylegan2", "StyleGAN2 (ADA-pytorch networks): style-modulated G, resnet D; power-of-two sizes >= 8",
          options=True)
def build(cfg: ModelConfig):
    return build_networks(cfg)


@register("cstylegan2", "class-conditional StyleGAN2 (class embedding in G's mapping, projection D)",
          conditional=True, options=True)
def build_conditional(cfg: ModelConfig):
    if cfg.num_classes < 2 and not cfg.options:  # imported networks may have any c_dim > 0
        raise ConfigError("cstylegan2 needs class labels: use a labelled built-in (mnist, digits) or a folder "
                          "with one sub-folder per class")
    return build_networks(cfg)
