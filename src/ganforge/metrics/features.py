"""Feature extractors: images -> one vector per image, for FID, KID and the manifold metrics.

Every extractor is a callable taking a uint8 batch ``[B, C, H, W]`` and returning float32 ``[B, D]``, with
``name``, ``key`` (changes whenever the network does: it keys the real-statistics cache) and
``batch_size``. :func:`get_extractor` builds one from a ``--features`` value.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from ganforge.errors import EvalError
from ganforge.metrics.digits import WEIGHTS, load_classifier

FEATURE_CHOICES = "digits, inception or module:callable (e.g. mypkg.feats:embed)"


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    return images_u8.float() / 127.5 - 1


def is_digit_like(channels: int, resolution: int) -> bool:
    """Small gray images: the built-in digit network is the sensible judge (it was trained on 28x28)."""
    return channels == 1 and resolution <= 32


class DigitFeatures:
    """The built-in digit network's 128-d penultimate layer; ``probs`` gives its class probabilities."""

    name, batch_size = "digits", 500

    def __init__(self, device: str = "cpu"):
        self.device = torch.device(device)
        # channels-last convolutions are faster on CPU (docs/benchmarks.md), with the same features to 1e-5.
        self.net = load_classifier().to(self.device, memory_format=torch.channels_last)
        self.key = "digits:" + hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()[:16]

    @torch.inference_mode()
    def features_and_probs(self, images_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = to_float(images_u8).to(self.device).contiguous(memory_format=torch.channels_last)
        feats = self.net.features(x)
        return feats.float().cpu(), F.softmax(self.net.head(feats), dim=1).float().cpu()

    def __call__(self, images_u8: torch.Tensor) -> torch.Tensor:
        return self.features_and_probs(images_u8)[0]


class CallableFeatures:
    """A user callable ``module:function`` taking float images in [-1, 1] and returning [B, D]."""

    batch_size = 250

    def __init__(self, spec: str):
        mod_name, _, attr = spec.partition(":")
        if not mod_name or not attr:
            raise EvalError(f"--features {spec!r} is not module:callable: use {FEATURE_CHOICES}")
        try:
            module = importlib.import_module(mod_name)
        except ImportError as e:
            raise EvalError(f"--features: cannot import module '{mod_name}' ({e}): is it on PYTHONPATH?") from e
        fn: Callable | None = module
        for part in attr.split("."):
            fn = getattr(fn, part, None)
        if not callable(fn):
            raise EvalError(f"--features: '{mod_name}' has no callable '{attr}'")
        self.fn, self.name = fn, f"module:{spec}"
        # Key on the module file's size and mtime too, so editing the extractor invalidates cached stats.
        try:
            src = Path(inspect.getfile(module))
            stamp = f"{src.resolve()}|{src.stat().st_size}|{src.stat().st_mtime_ns}"
        except (TypeError, OSError):
            stamp = ""
        self.key = f"module:{spec}:" + hashlib.sha256(stamp.encode()).hexdigest()[:16]

    @torch.inference_mode()
    def __call__(self, images_u8: torch.Tensor) -> torch.Tensor:
        try:
            out = torch.as_tensor(self.fn(to_float(images_u8)))
        except Exception as e:  # the user's code: one line that says whose call failed, not a traceback
            first = str(e).splitlines()[0] if str(e) else ""
            raise EvalError(f"--features {self.name[7:]} failed on a batch of {images_u8.shape[0]} images "
                            f"({type(e).__name__}: {first}): it must take float images [B, C, H, W] in [-1, 1] "
                            "and return [B, D]") from e
        if out.dim() != 2 or out.shape[0] != images_u8.shape[0]:
            raise EvalError(f"--features {self.name[7:]} returned shape {tuple(out.shape)} for "
                            f"{images_u8.shape[0]} images: it must return [B, D]")
        return out.detach().float().cpu()


def default_features(builtin: bool, channels: int, resolution: int) -> str:
    """digits for the built-in data and digit-like images, inception otherwise."""
    return "digits" if builtin or is_digit_like(channels, resolution) else "inception"


def get_extractor(spec: str, inception_weights: str | None = None, device: str = "cpu"):
    if spec == "digits":
        return DigitFeatures(device)
    if spec == "inception":
        from ganforge.metrics.inception import InceptionFeatures

        return InceptionFeatures(inception_weights, device=device)
    if ":" in spec:
        return CallableFeatures(spec)
    raise EvalError(f"unknown --features {spec!r}: use {FEATURE_CHOICES}")
