"""The family registry: each family module registers a builder ``build(cfg) -> (G, D)`` here."""
from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError

Builder = Callable[[ModelConfig], "tuple[nn.Module, nn.Module]"]
_REGISTRY: dict[str, tuple[Builder, str, bool]] = {}
_TAKES_OPTIONS: set[str] = set()


def register(name: str, description: str, conditional: bool = False, options: bool = False):
    """Decorator: add a family builder under ``name``. ``conditional`` families need class labels;
    ``options`` families read ``cfg.options`` and check its keys themselves; any other refuses options, so
    that a misspelt option is never ignored in silence."""

    def wrap(fn: Builder) -> Builder:
        _REGISTRY[name] = (fn, description, conditional)
        if options:
            _TAKES_OPTIONS.add(name)
        return fn

    return wrap


def families() -> dict[str, str]:
    """Family name -> one-line description."""
    return {name: desc for name, (_, desc, _) in sorted(_REGISTRY.items())}


def is_conditional(family: str) -> bool:
    _check(family)
    return _REGISTRY[family][2]


def build(cfg: ModelConfig) -> tuple[nn.Module, nn.Module]:
    """Build (generator, discriminator) for ``cfg``; both carry the shared attributes."""
    _check(cfg.family)
    if cfg.options and cfg.family not in _TAKES_OPTIONS:
        raise ConfigError(f"the {cfg.family} family takes no model options, got {', '.join(map(str, cfg.options))}: "
                          f"drop --model-options (families with options: {', '.join(sorted(_TAKES_OPTIONS))})")
    G, D = _REGISTRY[cfg.family][0](cfg)
    for net in (G, D):
        net.z_dim = cfg.z_dim
        net.num_classes = cfg.num_classes
        net.img_shape = cfg.img_shape
    return G, D


def _check(family: str) -> None:
    if family not in _REGISTRY:
        raise ConfigError(f"unknown model family '{family}'; choose one of: {', '.join(sorted(_REGISTRY))}")
