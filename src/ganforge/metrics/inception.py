"""InceptionV3 pool features (2048-d), the standard FID network, from the torch-fidelity package.

torch-fidelity's InceptionV3 module needs only torch, but the package's ``__init__`` imports torchvision
(for its other extractors). On CPU machines install it with ``pip install --no-deps torch-fidelity``
(torchvision from PyPI would pull a CUDA torch); :func:`_fidelity_module` then loads the module without
running that ``__init__``. The weights are never downloaded while scoring: pass a file, or fetch it into
ganforge's cache once with ``ganforge weights download inception``.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import types
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F

from ganforge.data import default_cache_dir
from ganforge.errors import EvalError
from ganforge.storage.torchload import RefusedPickleError, load_tensors

SIZE = 299
ENV = "GANFORGE_INCEPTION_WEIGHTS"
# Both FID packages publish the same converted TF graph weights under these names.
KNOWN_FILES = ("pt_inception-2015-12-05-6726825d.pth", "weights-inception-2015-12-05-6726825d.pth")
INSTALL_HINT = "pip install --no-deps torch-fidelity (--no-deps: torchvision would pull a CUDA torch)"
DOWNLOAD_HINT = "run `ganforge weights download inception`"


def candidate_paths() -> list[Path]:
    """Where ``ganforge weights download inception`` puts the weights (ganforge's cache folder), then where
    pytorch-fid, torch-fidelity and torchmetrics leave them (torch hub's checkpoint folder)."""
    dirs = [Path(torch.hub.get_dir()) / "checkpoints", Path.home() / ".cache" / "torch" / "hub" / "checkpoints"]
    return [default_cache_dir() / KNOWN_FILES[0]] + [d / name for d in dict.fromkeys(dirs) for name in KNOWN_FILES]


def find_weights(path: str | Path | None = None) -> Path:
    """The weights file: ``path``, else $GANFORGE_INCEPTION_WEIGHTS, else a known cache location."""
    given = path or os.environ.get(ENV)
    if given:
        p = Path(given).expanduser()
        if not p.is_file():
            raise EvalError(f"InceptionV3 weights file {p} not found: pass an existing {KNOWN_FILES[0]} to "
                            f"--inception-weights or ${ENV}, or {DOWNLOAD_HINT} to fetch it to {download_target()}")
        return p
    for p in candidate_paths():
        if p.is_file():
            return p
    raise EvalError(f"InceptionV3 weights not found: {DOWNLOAD_HINT} to fetch {KNOWN_FILES[0]} to "
                    f"{download_target()}, or pass --inception-weights PATH (or set ${ENV}), or use --features "
                    "digits")


def download_target() -> Path:
    """Where ``ganforge weights download inception`` saves the weights: the file $GANFORGE_INCEPTION_WEIGHTS
    names, else the first of :func:`candidate_paths`."""
    env = os.environ.get(ENV)
    return Path(env).expanduser() if env else candidate_paths()[0]


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from safetensors or a plain torch file, never unpickling arbitrary objects."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = load_tensors(path, "the file holds pickled objects other than tensors")
    except RefusedPickleError as e:
        raise EvalError(f"{path}: {e}: use {KNOWN_FILES[0]} as published by pytorch-fid") from None
    except Exception as e:  # pickle, zip and safetensors errors alike
        raise EvalError(f"{path} is not a readable InceptionV3 weights file ({type(e).__name__}): "
                        f"use {KNOWN_FILES[0]} as published by pytorch-fid") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EvalError(f"{path} does not hold a state dict of tensors: use {KNOWN_FILES[0]}")
    return state


def _fidelity_module():
    """torch_fidelity.feature_extractor_inceptionv3, imported without torchvision when that is absent."""
    name = "torch_fidelity.feature_extractor_inceptionv3"
    spec = importlib.util.find_spec("torch_fidelity")
    if spec is None:
        raise EvalError(f"InceptionV3 features need the torch-fidelity package: {INSTALL_HINT}")
    if name in sys.modules or importlib.util.find_spec("torchvision") is not None:
        return importlib.import_module(name)
    # A bare package object stands in for torch_fidelity so its __init__ (which imports torchvision)
    # does not run; the stand-in is removed afterwards so later imports behave as usual.
    before = set(sys.modules)
    pkg = types.ModuleType("torch_fidelity")
    pkg.__path__, pkg.__spec__ = list(spec.submodule_search_locations), spec
    sys.modules["torch_fidelity"] = pkg
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise EvalError(f"torch-fidelity's InceptionV3 module did not import ({e}): {INSTALL_HINT}") from e
    finally:
        for key in set(sys.modules) - before:
            if key.startswith("torch_fidelity"):
                del sys.modules[key]


def build_network(state: dict[str, torch.Tensor] | None) -> torch.nn.Module:
    """torch-fidelity's FID InceptionV3 returning the 2048-d pool features; ``state`` None keeps the random
    init (tests). Its constructor would download weights or torch.load them without weights_only, so the
    state we loaded safely is handed to it in place of its loader."""
    mod = _fidelity_module()
    if not hasattr(mod, "load_state_dict_from_url"):
        raise EvalError("this torch-fidelity version is not supported: "
                        "pip install --no-deps 'torch-fidelity>=0.4,<0.5'")

    class _Inception(mod.FeatureExtractorInceptionV3):
        def load_state_dict(self, sd, strict=True, assign=False):
            return None if sd is None else super().load_state_dict(sd, strict=strict, assign=assign)

    try:
        with mock.patch.object(mod, "load_state_dict_from_url", lambda *a, **k: state):
            return _Inception("inception-v3-compat", ["2048"])
    except RuntimeError as e:  # load_state_dict's key / shape mismatch
        first = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise EvalError(f"the weights do not fit torch-fidelity's InceptionV3 ({first[:120]}): "
                        f"use {KNOWN_FILES[0]}") from e


def to_input(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [B, C, H, W] -> uint8 [B, 3, 299, 299], resized as clean-fid does: from uint8, bicubic with
    antialiasing (PIL-like), no aliasing when shrinking. The result is rounded back to uint8 because the
    package's network takes uint8 (its own resize is then the identity)."""
    x = images_u8
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (SIZE, SIZE):
        x = F.interpolate(x.float(), size=(SIZE, SIZE), mode="bicubic", antialias=True, align_corners=False)
        x = x.round().clamp(0, 255).to(torch.uint8)
    return x.contiguous()


class InceptionFeatures:
    """Callable extractor: uint8 images -> [B, 2048] float32 pool features."""

    name, batch_size = "inception", 50

    def __init__(self, weights: str | Path | None = None, random_init: bool = False, device: str = "cpu"):
        if random_init:  # for tests: no weights ship with ganforge
            self.net, self.key = build_network(None), "inception:random-init"
            for m in self.net.modules():  # the default init shrinks activations to ~1e-8 over 90 layers
                if isinstance(m, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        else:
            path = find_weights(weights)
            self.net = build_network(load_state(path))
            st = path.stat()  # path, size and mtime: not a 100 MB hash on every run
            stamp = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
            self.key = "inception:" + hashlib.sha256(stamp.encode()).hexdigest()[:16]
        self.device = torch.device(device)
        self.net.to(self.device)

    @torch.inference_mode()
    def __call__(self, images_u8: torch.Tensor) -> torch.Tensor:
        (feats,) = self.net(to_input(images_u8).to(self.device))
        return feats.float().cpu()
