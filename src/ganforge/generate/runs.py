"""Loading trained runs for sampling."""
from __future__ import annotations

from pathlib import Path

import torch

from ganforge import models
from ganforge.config import RunConfig
from ganforge.data.core import to_signed_unit
from ganforge.errors import CheckpointError
from ganforge.models.stylegan2 import set_precision
from ganforge.storage.checkpoint import load_checkpoint, load_module, resolve


def load_run(path: str | Path, device: str = "cpu",
             precision: str = "auto") -> tuple[RunConfig, torch.nn.Module, torch.nn.Module]:
    """(config, G_ema, D) of a run directory or checkpoint file, in eval mode on ``device``.

    ``precision`` (auto, fp32, bf16) is how the networks' reduced-precision blocks (StyleGAN2's
    ``num_fp16_res``) run; 'auto' uses reduced precision only where it is fast (CUDA, CPUs with AMX).
    """
    ckpt = resolve(path)
    tensors, meta = load_checkpoint(ckpt)
    cfg_path = ckpt.parent / "config.json"
    cfg = RunConfig.load(cfg_path) if cfg_path.exists() else RunConfig.from_dict(meta.get("config", {}))
    G, D = models.build(cfg.model)
    prefix = "G_ema" if any(k.startswith("G_ema.") for k in tensors) else "G"
    load_module(G, tensors, prefix, str(ckpt))
    D.weights_loaded = any(k.startswith("D.") for k in tensors)  # False: an imported generator without its D
    if D.weights_loaded:
        load_module(D, tensors, "D", str(ckpt))
    G.class_names = list(cfg.class_names)
    G.step = int(meta.get("step", 0))
    if cfg.data.normalize != "[-1,1]":  # trained on [0,1] or raw pixels: every reader of G expects [-1, 1]
        G.register_forward_hook(lambda module, args, out: to_signed_unit(out, cfg.data.normalize))
    set_precision(G, precision)
    set_precision(D, precision)
    return cfg, G.to(device).eval().requires_grad_(False), D.to(device).eval().requires_grad_(False)


def load(path: str | Path, device: str = "cpu", precision: str = "auto") -> torch.nn.Module:
    """The generator of a run (its EMA weights), ready to sample: ``G(z, c)`` -> images in [-1, 1].

    It carries ``z_dim``, ``num_classes``, ``img_shape``, ``class_names``, ``step`` and ``precision``
    (see :func:`load_run`; change it with ``ganforge.models.stylegan2.set_precision``).
    """
    return load_run(path, device, precision)[1]


__all__ = ["load", "load_run", "CheckpointError"]
