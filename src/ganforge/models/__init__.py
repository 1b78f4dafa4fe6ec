"""Model families and their registry.

Every family module registers a builder ``build(cfg: ModelConfig) -> (G, D)``. All generators share one
interface so that training, sampling and the CLI never look at the family:

* ``G(z, c=None)`` maps latents ``z`` of shape ``[B, G.z_dim]`` (and class indices ``c`` of shape ``[B]``
  when ``G.num_classes > 0``) to images ``[B, C, H, W]`` in ``[-1, 1]``;
* ``D(x, c=None)`` maps images to real/fake logits of shape ``[B]``.
"""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from ..config import ConfigError, ModelConfig

Builder = Callable[[ModelConfig], "tuple[nn.Module, nn.Module]"]
_REGISTRY: dict[str, tuple[Builder, str, bool]] = {}


def register(name: str, description: str, conditional: bool = False):
    """Decorator: add a family builder under ``name``. ``conditional`` families need class labels."""

    def wrap(fn: Builder) -> Builder:
        _REGISTRY[name] = (fn, description, conditional)
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
    G, D = _REGISTRY[cfg.family][0](cfg)
    for net in (G, D):
        net.z_dim = cfg.z_dim
        net.num_classes = cfg.num_classes
        net.img_shape = cfg.img_shape
    return G, D


def _check(family: str) -> None:
    if family not in _REGISTRY:
        raise ConfigError(f"unknown model family '{family}'; choose one of: {', '.join(sorted(_REGISTRY))}")


# Importing the family modules fills the registry.
from . import cdcgan, dcgan, layers, mlp  # noqa: E402,F401
from . import stylegan2  # noqa: E402,F401
