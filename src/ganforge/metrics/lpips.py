"""LPIPS-style perceptual distance on a VGG16 trunk, in plain torch (no torchvision needed).

The distance between images ``x`` and ``y`` (``[B, C, H, W]`` in [-1, 1]; gray images are repeated to
three channels) follows Zhang et al. (2018): shift and scale the input as LPIPS does, take VGG16
features after relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3, unit-normalise each feature vector
across channels, square the differences, combine the channels with the learned LPIPS weights (or take
their mean when there are none), average over space and sum over the five taps. Images under 32 px are
upsampled to 64 px first (VGG's four poolings need room); images over 256 px are area-downsampled to
256 px, as the StyleGAN2 projector does.

Weights are never downloaded while measuring (``ganforge weights download vgg16-lpips`` fetches and merges
them into ganforge's cache once): :func:`load_lpips` reads a local state dict with torchvision's
``vgg16().features`` names (``features.{N}.weight`` / ``.bias``) and, optionally, the public lpips
package's linear layers (``lin{k}.model.1.weight``, shape ``[1, C_k, 1, 1]``). To use the trunk and the
lpips weights together, merge both state dicts into one file, e.g.::

    from safetensors.torch import save_file
    trunk = {k: v for k, v in torch.load("vgg16-397923af.pth", weights_only=True).items()
             if k.startswith("features.")}
    save_file(trunk | torch.load("lpips/weights/v0.1/vgg.pth", weights_only=True), "vgg16-lpips.safetensors")
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganforge.errors import EvalError
from ganforge.storage.torchload import RefusedPickleError, load_tensors

ENV = "GANFORGE_VGG16"
DEFAULT_NAME = "vgg16-lpips.safetensors"
VGG16_WIDTHS = (64, 128, 256, 512, 512)  # output channels of the five stages
STAGE_CONVS = (2, 2, 3, 3, 3)  # 3x3 convolutions per stage
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10
MIN_SIZE, UPSAMPLE_TO, MAX_SIZE = 32, 64, 256
DOWNLOAD_HINT = "run `ganforge weights download vgg16-lpips`"
WANTED = ("pass a .safetensors (or .pt/.pth) state dict of torchvision's vgg16 with 'features.N' keys, "
          "optionally with the lpips package's 'linK.model.1.weight' keys")


class LPIPSWeightsError(EvalError):
    """A VGG16 / LPIPS weights file that is missing or does not hold the expected tensors."""


class _Lin(nn.Module):
    """One tap's channel weights, laid out as the lpips package's ``NetLinLayer`` (``model.1.weight``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))
        nn.init.constant_(self.model[1].weight, 1.0 / channels)  # untrained: the same as the channel mean


class LPIPS(nn.Module):
    """VGG16 perceptual distance: ``forward(x, y) -> [B]``; ``features(x)`` gives the normalised taps.

    ``lin`` adds learned per-channel weights (``lin0``..``lin4``); ``widths`` changes the five stage widths
    (for tests and experiments: weights files must have VGG16's own widths).
    """

    def __init__(self, lin: bool = False, widths: tuple[int, ...] = VGG16_WIDTHS):
        super().__init__()
        if len(widths) != len(STAGE_CONVS):
            raise ValueError(f"VGG16 has {len(STAGE_CONVS)} stages, got {len(widths)} widths")
        self.widths, self.has_lin = tuple(int(w) for w in widths), bool(lin)
        layers: list[nn.Module] = []
        taps, channels = [], 3
        for stage, (width, n) in enumerate(zip(self.widths, STAGE_CONVS)):
            if stage:
                layers.append(nn.MaxPool2d(2, 2))
            for _ in range(n):
                layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
                channels = width
            taps.append(len(layers) - 1)  # the stage's last ReLU: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
        self.taps = tuple(taps)
        # Registered as "features" so state-dict keys read features.{N}.* with torchvision's numbering; the
        # name is shadowed by the features() method, so the trunk is reached through ``self.trunk``.
        self.features = nn.Sequential(*layers)
        if lin:
            for k, width in enumerate(self.widths):
                setattr(self, f"lin{k}", _Lin(width))
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True):  # a fixed metric: dropout stays off
        return super().train(False)

    @property
    def trunk(self) -> nn.Sequential:
        """The VGG16 convolution trunk (torchvision's ``vgg16().features`` up to relu5_3)."""
        return self._modules["features"]

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"LPIPS takes images [B, 1 or 3, H, W], got shape {tuple(x.shape)}")
        x = x.to(self.shift.dtype)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h, w = x.shape[-2:]
        if min(h, w) < MIN_SIZE:
            x = F.interpolate(x, size=(UPSAMPLE_TO, UPSAMPLE_TO), mode="bilinear", align_corners=False)
        elif max(h, w) > MAX_SIZE:
            x = F.interpolate(x, size=(MAX_SIZE, MAX_SIZE), mode="area")
        return (x - self.shift) / self.scale

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five taps of images ``x``, each unit-normalised across channels: ``[B, C_k, H_k, W_k]``."""
        h = self._prepare(x)
        out, taps = [], set(self.taps)
        for i, layer in enumerate(self.trunk):
            h = layer(h)
            if i in taps:
                out.append(normalize_channels(h))
                if len(out) == len(taps):
                    break
        return out

    def distance_features(self, fx: list[torch.Tensor], fy: list[torch.Tensor]) -> torch.Tensor:
        """The distance ``[B]`` between two images' :meth:`features` (``fy`` may have batch size 1)."""
        total = 0
        for k, (a, b) in enumerate(zip(fx, fy)):
            d = (a - b).square()
            d = getattr(self, f"lin{k}").model(d) if self.has_lin else d.mean(dim=1, keepdim=True)
            total = total + d.mean(dim=(1, 2, 3))
        return total

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape:
            raise ValueError(f"LPIPS compares images of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        f = self.features(torch.cat([x, y]))
        n = x.shape[0]
        return self.distance_features([t[:n] for t in f], [t[n:] for t in f])


def normalize_channels(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Each feature vector (over dim 1) scaled to unit length."""
    return x / (x.square().sum(dim=1, keepdim=True).sqrt() + eps)


# ----------------------------------------------------------------- weights
def default_lpips_path() -> Path | None:
    """$GANFORGE_VGG16 when set, else ``vgg16-lpips.safetensors`` in ganforge's cache folder
    ($GANFORGE_CACHE, default ~/.cache/ganforge) when it exists, else None."""
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser()
    from ganforge.data import default_cache_dir

    path = default_cache_dir() / DEFAULT_NAME
    return path if path.is_file() else None


def default_lpips_target() -> Path:
    """Where :func:`default_lpips_path` looks first: $GANFORGE_VGG16, else ganforge's cache folder."""
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser()
    from ganforge.data import default_cache_dir

    return default_cache_dir() / DEFAULT_NAME


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        elif path.suffix.lower() in (".pt", ".pth"):
            state = load_tensors(path, "the file holds pickled objects other than tensors")  # never code
        else:
            raise LPIPSWeightsError(f"{path}: unknown weights format '{path.suffix}': {WANTED}")
    except LPIPSWeightsError:
        raise
    except RefusedPickleError as e:
        raise LPIPSWeightsError(f"{path}: {e}: {WANTED}") from None
    except Exception as e:  # pickle, zip and safetensors errors alike
        raise LPIPSWeightsError(f"{path} is not a readable state dict of tensors ({type(e).__name__}): "
                                f"{WANTED}") from e
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise LPIPSWeightsError(f"{path} does not hold a state dict of tensors: {WANTED}")
    return state


_SLICE_KEY = re.compile(r"^net\.slice\d\.(\d+)\.(weight|bias)$")  # the lpips package's own full model
_IGNORED = ("classifier.", "scaling_layer.")  # torchvision's head; lpips's fixed input scaling


def _canonical(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in state.items():
        if k.startswith(_IGNORED):
            continue
        m = _SLICE_KEY.match(k)
        out[f"features.{m.group(1)}.{m.group(2)}" if m else k] = v
    return out


def load_lpips(path: str | Path, device: str | torch.device = "cpu") -> LPIPS:
    """An :class:`LPIPS` with VGG16 (and, when the file has them, LPIPS linear) weights from a local file.

    ``.safetensors`` is preferred; ``.pt`` / ``.pth`` are read with ``torch.load(weights_only=True)``.
    Raises :class:`LPIPSWeightsError` (one line, naming the file) for a missing file, foreign content,
    missing or unexpected keys and wrong shapes.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise LPIPSWeightsError(f"VGG16 weights file {p} not found: {DOWNLOAD_HINT} to fetch them to "
                                f"{default_lpips_target()}, or {WANTED} (--vgg PATH or ${ENV})")
    state = _canonical(_read_state(p))
    lin_keys = sorted(k for k in state if k.startswith("lin"))
    model = LPIPS(lin=bool(lin_keys))
    want = model.state_dict()
    missing = sorted(set(want) - set(state), key=_key_order)
    extra = sorted(set(state) - set(want))
    if missing or extra:
        what = f"missing '{missing[0]}'" if missing else f"unexpected key '{extra[0]}'"
        more = len(missing or extra) - 1
        what += f" and {more} more" if more else ""
        if missing and lin_keys and missing[0].startswith("lin"):
            what += " (the LPIPS weights need all of lin0..lin4)"
        raise LPIPSWeightsError(f"{p} is not a VGG16 state dict ({what}): {WANTED}")
    for k, v in want.items():
        if state[k].shape != v.shape:
            raise LPIPSWeightsError(f"{p}: '{k}' has shape {list(state[k].shape)}, VGG16 needs {list(v.shape)}: "
                                    f"{WANTED}")
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.to(device).eval().requires_grad_(False)


def _key_order(key: str):
    parts = key.split(".")
    return (parts[0], int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1, parts[-1] != "weight", key)
