"""The ``layers`` family: G and D written as JSON lists of layers, like the browser "GAN Playground".

Each layer is ``{"type": ..., **params}``. Shapes are inferred by pure arithmetic before any module is
built, so a bad spec fails with a ``ConfigError`` naming the network, the layer index and its type.

Decisions:

* ``conv`` padding defaults to ``"same"`` = ``(kernel - 1) // 2``: with an odd kernel this keeps the size
  at stride 1 and gives ``ceil(H / stride)`` at stride 2 (``kernel 4, stride 2`` halves too).
* ``fc`` needs a 2-D input ``[B, F]``; add a ``flatten`` layer first (explicit, so ``describe`` shows it).
* Conditioning (``cfg.num_classes > 0``): G's input is ``z`` concatenated with a one-hot class vector,
  ``[B, z_dim + num_classes]``; D adds a projection term ``sum(embed(c) * h)`` to its logit, where ``h``
  is the input to D's last ``fc`` layer (so a conditional D needs one).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models.registry import register

_REQ = object()  # marks a required parameter
PARAMS: dict[str, dict[str, Any]] = {
    "fc": {"out": _REQ},
    "conv": {"out": _REQ, "kernel": 3, "stride": 1, "padding": "same"},
    "deconv": {"out": _REQ, "kernel": 4, "stride": 2, "padding": 1},
    "relu": {}, "leakyrelu": {"slope": 0.2}, "tanh": {}, "sigmoid": {},
    "batchnorm": {}, "maxpool": {"size": 2}, "avgpool": {"size": 2},
    "upsample": {"scale": 2, "mode": "nearest"},
    "reshape": {"shape": _REQ}, "flatten": {}, "dropout": {"p": 0.5},
}
_POSITIVE = {"out", "kernel", "stride", "size", "scale"}
# Upper bounds that keep every layer's parameter count and output size within what torch can index.
_MAX = {"out": 1 << 22, "kernel": 256, "stride": 256, "size": 256, "scale": 256}


def default_g_layers(img_shape, z_dim: int, width: int = 64) -> list[dict[str, Any]]:
    """fc -> [2w, r/4, r/4] -> two stride-2 deconvs up to the image; needs a resolution divisible by 4."""
    c, r, _ = img_shape
    if r % 4:
        raise ConfigError(f"the default `layers` generator needs a resolution divisible by 4, got {r}; "
                          "give your own g_layers")
    q = r // 4
    return [{"type": "fc", "out": 2 * width * q * q}, {"type": "reshape", "shape": [2 * width, q, q]},
            {"type": "batchnorm"}, {"type": "relu"},
            {"type": "deconv", "out": width}, {"type": "batchnorm"}, {"type": "relu"},
            {"type": "deconv", "out": c}, {"type": "tanh"}]


def default_d_layers(img_shape, width: int = 64) -> list[dict[str, Any]]:
    """Two stride-2 convs with leaky ReLU, then one logit."""
    return [{"type": "conv", "out": width, "kernel": 4, "stride": 2}, {"type": "leakyrelu"},
            {"type": "conv", "out": 2 * width, "kernel": 4, "stride": 2}, {"type": "leakyrelu"},
            {"type": "flatten"}, {"type": "fc", "out": 1}]


def _fmt(shape) -> str:
    return "[" + ", ".join(["B", *map(str, shape)]) + "]"


def shown(v: Any, width: int = 60) -> str:
    """A value from the user as a message quotes it: its repr, cut to ``width`` characters."""
    text = repr(v)
    return text if len(text) <= width else text[:width - 3] + "..."


def _check_param(where: str, name: str, v: Any, t: str) -> None:
    is_int = isinstance(v, int) and not isinstance(v, bool)
    is_num = isinstance(v, (int, float)) and not isinstance(v, bool)
    bad = None
    if name in _POSITIVE and not (is_int and 0 < v <= _MAX[name]):
        bad = f"a positive integer up to {_MAX[name]:,}"
    elif name == "padding" and not ((is_int and v >= 0) or (t == "conv" and v == "same")):
        bad = "a non-negative integer" + (' or "same"' if t == "conv" else "")
    elif name == "slope" and not (is_num and v >= 0):
        bad = "a non-negative number"
    elif name == "p" and not (is_num and 0 <= v < 1):
        bad = "a number in [0, 1)"
    elif name == "mode" and v not in ("nearest", "bilinear"):
        bad = '"nearest" or "bilinear"'
    elif name == "shape" and not (isinstance(v, list) and v and
                                  all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in v)):
        bad = "a non-empty list of positive integers (without the batch dimension)"
    if bad:
        raise ConfigError(f"{where}: '{name}' must be {bad}, got {shown(v)}")


def _out_shape(where: str, t: str, p: dict[str, Any], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The output shape (without batch) of one layer, or a ConfigError saying why it cannot apply."""
    if t in ("conv", "deconv", "maxpool", "avgpool", "upsample") and len(shape) != 3:
        raise ConfigError(f"{where} needs a 4-D input [B, C, H, W], got {_fmt(shape)}")
    if t == "fc":
        if len(shape) != 1:
            raise ConfigError(f"{where} needs a 2-D input [B, F], got {_fmt(shape)}; add a flatten layer before it")
        return (p["out"],)
    if t == "batchnorm" and len(shape) not in (1, 2, 3):
        raise ConfigError(f"{where} needs a 2-D, 3-D or 4-D input, got {_fmt(shape)}")
    if t == "flatten":
        return (math.prod(shape),)
    if t == "reshape":
        new = tuple(p["shape"])
        if math.prod(new) != math.prod(shape):
            raise ConfigError(f"{where} cannot reshape {_fmt(shape)} to {_fmt(new)} "
                              f"({math.prod(shape)} != {math.prod(new)} values)")
        return new
    if t not in ("conv", "deconv", "maxpool", "avgpool", "upsample"):
        return shape  # activations, batchnorm, dropout keep the shape
    c, h, w = shape
    if t == "conv":
        k, s, pad = p["kernel"], p["stride"], p["padding"]
        h2, w2 = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
        how = f"kernel {k}, stride {s}, padding {pad}"
    elif t == "deconv":
        k, s, pad = p["kernel"], p["stride"], p["padding"]
        h2, w2 = (h - 1) * s - 2 * pad + k, (w - 1) * s - 2 * pad + k
        how = f"kernel {k}, stride {s}, padding {pad}"
    elif t == "upsample":
        return (c, h * p["scale"], w * p["scale"])
    else:
        h2, w2, how = h // p["size"], w // p["size"], f"size {p['size']}"
    out = (p.get("out", c), h2, w2)
    if h2 <= 0 or w2 <= 0:
        raise ConfigError(f"{where} would output {_fmt(out)}: input {_fmt(shape)} is too small for {how}")
    return out


def _plan(layers, in_shape, net: str) -> list[tuple[str, dict[str, Any], tuple, tuple]]:
    """Validate a layer list: [(type, params with defaults, input shape, output shape)] per layer."""
    if not isinstance(layers, list):
        raise ConfigError(f"{net} layers must be a list of objects, got {type(layers).__name__}")
    shape, plan = tuple(in_shape), []
    for i, spec in enumerate(layers):
        t = spec.get("type") if isinstance(spec, dict) else None
        if not isinstance(t, str) or t not in PARAMS:
            what = f"unknown type {shown(t)}" if isinstance(spec, dict) else f"must be an object, got {shown(spec)}"
            raise ConfigError(f"{net} layer {i}: {what}; valid types: {', '.join(PARAMS)}")
        where = f"{net} layer {i} ({t})"
        unknown = sorted(set(spec) - set(PARAMS[t]) - {"type"})
        if unknown:
            valid = ", ".join(PARAMS[t]) or "none"
            raise ConfigError(f"{where}: unknown parameter(s) {', '.join(map(repr, unknown))}; valid: {valid}")
        p = {**PARAMS[t], **{k: v for k, v in spec.items() if k != "type"}}
        for name, v in p.items():
            if v is _REQ:
                raise ConfigError(f"{where}: missing parameter '{name}'")
            _check_param(where, name, v, t)
        if p.get("padding") == "same":
            p["padding"] = (p["kernel"] - 1) // 2
        out = _out_shape(where, t, p, shape)
        plan.append((t, p, shape, out))
        shape = out
    return plan


def _label(t: str, p: dict[str, Any]) -> str:
    if t in ("conv", "deconv"):
        return f"{t} {p['out']} k{p['kernel']} s{p['stride']} p{p['padding']}"
    return " ".join([t, *(str(v) for v in p.values())])


def describe(layers, input_shape, net: str = "network") -> list[tuple[str, list[int]]]:
    """(label, output shape without batch dim) per layer, e.g. ("conv 64 k4 s2 p1", [64, 14, 14]).

    ``input_shape`` has no batch dim either: ``[z_dim + num_classes]`` for G, ``[C, H, W]`` for D."""
    return [(_label(t, p), list(out)) for t, p, _, out in _plan(layers, input_shape, net)]


def layer_shapes(layers, input_shape, net: str = "network") -> tuple[list[list[int]], tuple[int, str] | None]:
    """Each layer's output shape (no batch dim) up to the first layer that fails, and that failure as
    ``(index, message)`` (None when every layer applies), so an editor can mark the offending layer."""
    if not isinstance(layers, list):
        raise ConfigError(f"{net} layers must be a list of objects, got {type(layers).__name__}")
    shapes: list[list[int]] = []
    for i in range(len(layers)):
        try:
            plan = _plan(layers[: i + 1], input_shape, net)
        except ConfigError as e:
            return shapes, (i, str(e))
        shapes.append(list(plan[-1][3]))
    return shapes, None


def build_body(layers, input_shape, net: str = "network", discriminator: bool = False) -> nn.Module:
    """An unconditional network from a layer list over any input shape (e.g. 2-D points): a
    ``LayerDiscriminator`` (one logit per row) when ``discriminator`` is set, else a ``LayerGenerator``."""
    plan = _plan(layers, input_shape, net)
    return LayerDiscriminator(plan, 0, False) if discriminator else LayerGenerator(plan, 0)


class _Reshape(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)


def _module(t: str, p: dict[str, Any], shape: tuple) -> nn.Module:
    make = {
        "fc": lambda: nn.Linear(shape[0], p["out"]),
        "conv": lambda: nn.Conv2d(shape[0], p["out"], p["kernel"], p["stride"], p["padding"]),
        "deconv": lambda: nn.ConvTranspose2d(shape[0], p["out"], p["kernel"], p["stride"], p["padding"]),
        "batchnorm": lambda: nn.BatchNorm2d(shape[0]) if len(shape) == 3 else nn.BatchNorm1d(shape[0]),
        "maxpool": lambda: nn.MaxPool2d(p["size"]), "avgpool": lambda: nn.AvgPool2d(p["size"]),
        "upsample": lambda: nn.Upsample(scale_factor=p["scale"], mode=p["mode"]),
        "reshape": lambda: _Reshape(p["shape"]), "flatten": nn.Flatten, "dropout": lambda: nn.Dropout(p["p"]),
        "relu": nn.ReLU, "leakyrelu": lambda: nn.LeakyReLU(p["slope"]), "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
    }
    return make[t]()


class LayerGenerator(nn.Module):
    def __init__(self, plan, num_classes: int):
        super().__init__()
        self.n_cls = num_classes
        self.body = nn.Sequential(*[_module(t, p, s) for t, p, s, _ in plan])

    def forward(self, z, c=None):
        if self.n_cls:
            if c is None:
                raise ValueError("this generator is class-conditional: pass class indices c")
            z = torch.cat([z, F.one_hot(c.long(), self.n_cls).to(z.dtype)], dim=1)
        return self.body(z)


class LayerDiscriminator(nn.Module):
    def __init__(self, plan, num_classes: int, spectral_norm: bool):
        super().__init__()
        self.n_cls = num_classes
        mods = [_module(t, p, s) for t, p, s, _ in plan]
        if spectral_norm:  # honour cfg.spectral_norm on every weight layer of D
            mods = [nn.utils.parametrizations.spectral_norm(m)
                    if isinstance(m, (nn.Linear, nn.Conv2d)) else m for m in mods]
        self.body = nn.ModuleList(mods)
        # Projection discriminator: the class embedding is dotted with the input of the last fc layer.
        self.proj_at = max((i for i, (t, *_) in enumerate(plan) if t == "fc"), default=None)
        self.embed = None
        if num_classes:
            feats = plan[self.proj_at][2][0]
            self.embed = nn.Embedding(num_classes, feats)
            nn.init.normal_(self.embed.weight, std=feats ** -0.5)  # keeps the term O(|h|) at init

    def forward(self, x, c=None):
        h = None
        for i, m in enumerate(self.body):
            if i == self.proj_at:
                h = x
            x = m(x)
        out = x.reshape(x.shape[0])
        if self.embed is not None:
            if c is None:
                raise ValueError("this discriminator is class-conditional: pass class indices c")
            out = out + (self.embed(c.long()) * h).sum(dim=1)
        return out


@register("layers", "generator and discriminator from JSON layer lists (GAN Playground style)")
def build(cfg: ModelConfig) -> tuple[nn.Module, nn.Module]:
    g_layers = cfg.g_layers if cfg.g_layers is not None else default_g_layers(cfg.img_shape, cfg.z_dim, cfg.g_width)
    d_layers = cfg.d_layers if cfg.d_layers is not None else default_d_layers(cfg.img_shape, cfg.d_width)
    g_plan = _plan(g_layers, (cfg.z_dim + cfg.num_classes,), "generator")
    g_out = g_plan[-1][3] if g_plan else (cfg.z_dim + cfg.num_classes,)
    if tuple(g_out) != tuple(cfg.img_shape):
        raise ConfigError(f"generator output is {_fmt(g_out)} but images are {_fmt(cfg.img_shape)}")
    d_plan = _plan(d_layers, cfg.img_shape, "discriminator")
    d_out = d_plan[-1][3] if d_plan else tuple(cfg.img_shape)
    if math.prod(d_out) != 1:
        raise ConfigError(f"discriminator output must be one number per image, got {_fmt(d_out)}")
    if cfg.num_classes and not any(t == "fc" for t, *_ in d_plan):
        raise ConfigError("a class-conditional `layers` discriminator needs an fc layer "
                          "(its input is projected onto the class embedding)")
    return LayerGenerator(g_plan, cfg.num_classes), LayerDiscriminator(d_plan, cfg.num_classes, cfg.spectral_norm)


# The same networks conditioned on the class (G's one-hot input, D's projection): a conditional family, so that
# the trainer fills num_classes from the data and `ganforge generate --class` applies.
register("clayers", "class-conditional `layers` family (one-hot class input to G, projection D)",
         conditional=True)(build)
