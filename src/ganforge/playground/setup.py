"""The playground's setup: the JSON a page (and its URL) holds, checked and turned into a RunConfig.

``parse_setup`` fills what a setup leaves out from its mode's preset and rejects a value that cannot work
with one line (a ``ConfigError``; the API answers 400). ``check`` infers every layer's output shape from the
`layers` family's own arithmetic and names the first failing layer of each network, so the page can mark it
before training starts. ``run_config`` gives the RunConfig that the trainer (the same one `ganforge train`
uses) and an exported run are made from.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch

from ganforge.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from ganforge.data import ImageDataset, builtin_datasets, load_dataset
from ganforge.errors import ConfigError
from ganforge.models.layers import PARAMS, build_body, default_d_layers, default_g_layers, layer_shapes, shown
from ganforge.train.losses import LOSSES
from ganforge.train.trainer import NORMALIZE

MODES = ("images", "2d")
DISTRIBUTIONS = ("line", "gaussians", "ring", "disjoint", "drawn")  # or upload:<id>
# The fields each optimizer reads from a network's {"opt", "lr", "betas", "momentum"}.
OPTIMIZER_FIELDS = {"sgd": ["lr"], "momentum": ["lr", "momentum"], "rmsprop": ["lr", "betas"],
                    "adagrad": ["lr"], "adadelta": ["lr"], "adam": ["lr", "betas"]}
MAX_LAYERS = 64
MAX_VALUES = 1 << 22  # values per example in any layer's output: bounds a step's memory before a build
MAX_Z = 1024
MAX_STEPS_PER = 100  # d_steps / g_steps


@dataclass
class NetOptions:
    opt: str = "adam"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    momentum: float = 0.0


@dataclass
class Setup:
    mode: str = "images"
    source: str = "mnist"
    normalize: str = "[-1,1]"
    distribution: str = "ring"
    points: list[list[float]] | None = None
    g_layers: list[dict[str, Any]] = field(default_factory=list)
    d_layers: list[dict[str, Any]] = field(default_factory=list)
    z_dim: int = 64
    conditional: bool = False
    g: NetOptions = field(default_factory=NetOptions)
    d: NetOptions = field(default_factory=NetOptions)
    batch_size: int = 15
    loss: str = "ns"
    d_steps: int = 1
    g_steps: int = 1
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The setup in the page's JSON form."""
        net = lambda o: {"opt": o.opt, "lr": o.lr, "betas": list(o.betas), "momentum": o.momentum}
        return {"mode": self.mode, "data": {"source": self.source, "normalize": self.normalize},
                "data2d": {"distribution": self.distribution, "points": self.points},
                "g_layers": copy.deepcopy(self.g_layers), "d_layers": copy.deepcopy(self.d_layers),
                "z_dim": self.z_dim, "conditional": self.conditional, "g": net(self.g), "d": net(self.d),
                "batch_size": self.batch_size, "loss": self.loss, "d_steps": self.d_steps,
                "g_steps": self.g_steps, "seed": self.seed}


def _net(opt: str, lr: float, betas=(0.5, 0.999), momentum: float = 0.0) -> dict[str, Any]:
    return {"opt": opt, "lr": lr, "betas": list(betas), "momentum": momentum}


def _images(g_layers, d_layers, g, d, z_dim=64, batch_size=64, loss="ns", conditional=False, source="mnist"):
    return {"mode": "images", "data": {"source": source, "normalize": "[-1,1]"},
            "data2d": {"distribution": "ring", "points": None}, "g_layers": g_layers, "d_layers": d_layers,
            "z_dim": z_dim, "conditional": conditional, "g": g, "d": d, "batch_size": batch_size, "loss": loss,
            "d_steps": 1, "g_steps": 1, "seed": 0}


def _mlp(sizes: list[int], out: int, act: str = "relu") -> list[dict[str, Any]]:
    layers: list[dict[str, Any]] = []
    for n in sizes:
        layers += [{"type": "fc", "out": n}, {"type": act}]
    return [*layers, {"type": "fc", "out": out}]


_MNIST = (1, 28, 28)
PRESETS: dict[str, dict[str, Any]] = {
    # The browser GAN Playground's default model, as the issue states it (its D: sgd, its G: adam 0.9/0.999).
    "gan-playground": _images(
        [{"type": "fc", "out": 784}, {"type": "relu"}, {"type": "reshape", "shape": [1, 28, 28]},
         {"type": "conv", "out": 1, "kernel": 3}, {"type": "tanh"}],
        [{"type": "conv", "out": 8, "kernel": 5, "stride": 1, "padding": 2}, {"type": "relu"},
         {"type": "maxpool", "size": 2}, {"type": "flatten"}, {"type": "fc", "out": 1}],
        g=_net("adam", 0.08, (0.9, 0.999)), d=_net("sgd", 0.08), z_dim=100, batch_size=15),
    "mlp-gan": _images(
        [{"type": "fc", "out": 256}, {"type": "leakyrelu"}, {"type": "fc", "out": 784}, {"type": "tanh"},
         {"type": "reshape", "shape": [1, 28, 28]}],
        [{"type": "flatten"}, {"type": "fc", "out": 256}, {"type": "leakyrelu"}, {"type": "fc", "out": 1}],
        g=_net("adam", 2e-4), d=_net("adam", 2e-4)),
    "dcgan": _images(default_g_layers(_MNIST, 64, width=32), default_d_layers(_MNIST, width=32),
                     g=_net("adam", 2e-4), d=_net("adam", 2e-4)),
    # ganforge's default cDCGAN (`ganforge train`: cdcgan, hinge, adam 2e-4 / 0.5, batch 64) as a layer list.
    "cdcgan": _images(
        default_g_layers(_MNIST, 64),
        [{"type": "conv", "out": 64, "kernel": 4, "stride": 2, "padding": 1}, {"type": "leakyrelu"},
         {"type": "conv", "out": 128, "kernel": 4, "stride": 2, "padding": 1}, {"type": "batchnorm"},
         {"type": "leakyrelu"}, {"type": "flatten"}, {"type": "fc", "out": 1}],
        g=_net("adam", 2e-4), d=_net("adam", 2e-4), loss="hinge", conditional=True),
    "toy-2d": {"mode": "2d", "data": {"source": "mnist", "normalize": "[-1,1]"},
               "data2d": {"distribution": "ring", "points": None},
               "g_layers": _mlp([16, 16], 2), "d_layers": _mlp([16, 16], 1), "z_dim": 2, "conditional": False,
               "g": _net("adam", 1e-3), "d": _net("adam", 1e-3), "batch_size": 64, "loss": "ns",
               "d_steps": 1, "g_steps": 1, "seed": 0},
}


def _int(d: dict, key: str, lo: int, hi: int, what: str | None = None) -> int:
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ConfigError(f"{what or key} must be a whole number from {lo} to {hi}, got {shown(v)}")
    return v


def _num(v: Any, name: str, lo: float, hi: float, lo_open: bool = False, hi_open: bool = True) -> float:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        lb, rb = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ConfigError(f"{name} must be a number in {lb}{lo}, {hi}{rb}, got {shown(v)}")
    return float(v)


def _net_options(v: Any, name: str) -> NetOptions:
    if not isinstance(v, dict):
        raise ConfigError(f"{name} must be an object like {{\"opt\": \"adam\", \"lr\": 0.0002}}, got {shown(v)}")
    opt = v.get("opt", "adam")
    if not isinstance(opt, str) or opt not in OPTIMIZER_FIELDS:
        raise ConfigError(f"{name}.opt {shown(opt)} is not an optimizer; choose {', '.join(OPTIMIZER_FIELDS)}")
    lr = _num(v.get("lr", 2e-4), f"{name}.lr", 0, 10, lo_open=True, hi_open=False)
    betas = v.get("betas", [0.5, 0.999])
    if not isinstance(betas, (list, tuple)) or len(betas) != 2:
        raise ConfigError(f"{name}.betas must be two numbers in [0, 1), got {shown(betas)}")
    betas = tuple(_num(b, f"{name}.betas", 0, 1) for b in betas)
    momentum = _num(v.get("momentum", 0.0), f"{name}.momentum", 0, 1)
    return NetOptions(opt, lr, betas, momentum)


def _points(v: Any, max_points: int) -> list[list[float]]:
    if not isinstance(v, list) or not 2 <= len(v) <= max_points:
        raise ConfigError(f"data2d.points must be a list of 2 to {max_points} [x, y] pairs for a drawn "
                          "distribution: draw some points first")
    out = []
    for p in v:
        if not (isinstance(p, (list, tuple)) and len(p) == 2):
            raise ConfigError(f"data2d.points must hold [x, y] pairs, got {shown(p)}")
        out.append([_num(p[0], "a drawn point's x", -1e6, 1e6), _num(p[1], "a drawn point's y", -1e6, 1e6)])
    return out


def parse_setup(obj: Any, max_batch: int = 512, max_points: int = 20_000) -> Setup:
    """A checked :class:`Setup` from the page's JSON; keys left out come from the mode's preset
    (gan-playground for images, toy-2d for 2d). Layer lists are checked by :func:`check`, not here."""
    if not isinstance(obj, dict):
        raise ConfigError(f"the setup must be a JSON object, got {type(obj).__name__}")
    mode = obj.get("mode", "images")
    if not isinstance(mode, str) or mode not in MODES:
        raise ConfigError(f"mode must be 'images' or '2d', got {shown(mode)}")
    base = PRESETS["toy-2d" if mode == "2d" else "gan-playground"]
    s = {**copy.deepcopy(base), **obj}
    for key in ("data", "data2d", "g", "d"):
        if not isinstance(s[key], dict):
            raise ConfigError(f"setup.{key} must be an object, got {shown(s[key])}")
        s[key] = {**base[key], **s[key]}
    src, norm = s["data"]["source"], s["data"]["normalize"]
    if not isinstance(src, str) or not (src in builtin_datasets() or src.startswith("upload:")):
        raise ConfigError(f"data.source must be one of {', '.join(builtin_datasets())} or upload:<id>, "
                          f"got {shown(src)}")
    if not isinstance(norm, str) or norm not in NORMALIZE:
        raise ConfigError(f"data.normalize must be one of {', '.join(NORMALIZE)}, got {shown(norm)}")
    dist, points = s["data2d"]["distribution"], s["data2d"]["points"]
    if not isinstance(dist, str) or not (dist in DISTRIBUTIONS or dist.startswith("upload:")):
        raise ConfigError(f"data2d.distribution must be one of {', '.join(DISTRIBUTIONS)} or upload:<id>, "
                          f"got {shown(dist)}")
    if mode == "2d" and dist == "drawn":
        points = _points(points, max_points)
    else:
        points = None
    for key in ("g_layers", "d_layers"):
        if not isinstance(s[key], list) or not all(isinstance(x, dict) for x in s[key]):
            raise ConfigError(f"{key} must be a list of layer objects like {{\"type\": \"fc\", \"out\": 64}}")
        if len(s[key]) > MAX_LAYERS:
            raise ConfigError(f"{key} has {len(s[key])} layers; at most {MAX_LAYERS} are allowed")
    if not isinstance(s["conditional"], bool):
        raise ConfigError(f"conditional must be true or false, got {shown(s['conditional'])}")
    if s["conditional"] and mode == "2d":
        raise ConfigError("conditional applies to images mode only: 2-D points have no classes")
    if not isinstance(s["loss"], str) or s["loss"] not in LOSSES:
        raise ConfigError(f"loss {shown(s['loss'])} is not one of {', '.join(LOSSES)}")
    batch = s["batch_size"]
    if isinstance(batch, int) and not isinstance(batch, bool) and batch > max_batch:
        raise ConfigError(f"batch_size {shown(batch)} is over this server's limit of {max_batch}: choose a smaller one")
    return Setup(mode=mode, source=src, normalize=norm, distribution=dist, points=points,
                 g_layers=copy.deepcopy(s["g_layers"]), d_layers=copy.deepcopy(s["d_layers"]),
                 z_dim=_int(s, "z_dim", 1, MAX_Z), conditional=s["conditional"],
                 g=_net_options(s["g"], "g"), d=_net_options(s["d"], "d"),
                 batch_size=_int(s, "batch_size", 1, max_batch), loss=s["loss"],
                 d_steps=_int(s, "d_steps", 1, MAX_STEPS_PER), g_steps=_int(s, "g_steps", 1, MAX_STEPS_PER),
                 seed=_int(s, "seed", 0, 2**31 - 1))


# The built-ins' (shape, classes) at their native size, so that a check (the page sends one on every edit) needs
# no data loaded; a test compares them with the loaded data.
BUILTIN_SHAPES = {"mnist": ((1, 28, 28), 10), "digits": ((1, 8, 8), 10)}


def data_shape(setup: Setup, uploads: dict | None = None) -> tuple[tuple[int, int, int], int]:
    """(image shape [C, H, W], number of classes) of an images-mode setup's data."""
    if setup.source in BUILTIN_SHAPES:
        return BUILTIN_SHAPES[setup.source]
    data = images_for(setup, uploads)
    return (data.channels, data.resolution, data.resolution), data.num_classes


@lru_cache(maxsize=4)
def builtin_images(name: str) -> ImageDataset:
    """A built-in data set at its native size, loaded once per process (sessions share it read-only)."""
    return load_dataset(DataConfig(source=name, cache=False))


def images_for(setup: Setup, uploads: dict | None = None) -> ImageDataset:
    """The images a setup trains on: a built-in, or an upload held by the server."""
    if setup.source.startswith("upload:"):
        data = (uploads or {}).get(setup.source[len("upload:"):])
        if not isinstance(data, ImageDataset):
            raise ConfigError(f"data.source {setup.source} is not an uploaded image set on this server: "
                              "upload the images again")
        return data
    return builtin_images(setup.source)


def _fmt(shape) -> str:
    return "[" + ", ".join(["B", *map(str, shape)]) + "]"


def _net_check(layers, in_shape, want, net: str, label: str) -> tuple[list[dict], dict | None]:
    """Per-layer shapes of one network and its first error, the end condition (``want``) included."""
    shapes, err = layer_shapes(layers, in_shape, label)
    rows = [{"type": spec.get("type"), "shape": shapes[i] if i < len(shapes) else None}
            for i, spec in enumerate(layers)]
    if err is None:
        big = next((i for i, s in enumerate(shapes) if math.prod(s) > MAX_VALUES), None)
        if big is not None:
            err = (big, f"{label} layer {big} outputs {_fmt(shapes[big])}: over {MAX_VALUES} values per example; "
                        "make it smaller")
            rows[big]["shape"] = None
    if err is None:
        out = tuple(shapes[-1]) if shapes else tuple(in_shape)
        problem = want(out)
        if problem:
            err = (max(0, len(layers) - 1), problem)
    return rows, None if err is None else {"net": net, "index": err[0], "error": err[1]}


def _count(layers, in_shape, discriminator: bool) -> int:
    with torch.device("meta"):  # allocates nothing
        net = build_body(layers, in_shape, discriminator=discriminator)
    return sum(p.numel() for p in net.parameters())


def uploaded_points(name: str, uploads: dict | None):
    """The ``[N, 2]`` tensor of an ``upload:ID`` point set on this server; ConfigError when it is not there."""
    pts = (uploads or {}).get(name[len("upload:"):])
    if not isinstance(pts, torch.Tensor) or pts.dim() != 2 or pts.shape[1] != 2 or len(pts) < 2:
        raise ConfigError(f"data2d.distribution {name} is not an uploaded set of points on this server: "
                          "upload the CSV again")
    return pts


def check(setup: Setup, uploads: dict | None = None) -> dict[str, Any]:
    """The /api/check answer: each layer's output shape (no batch dim), parameter counts, and the first
    failing layer of each network as {"net", "index", "error"}."""
    if setup.mode == "2d":
        g_in, img, classes = (setup.z_dim,), (2,), 0
        if setup.distribution.startswith("upload:"):  # as images mode checks its upload: a session would refuse it
            uploaded_points(setup.distribution, uploads)
    else:
        img, classes = data_shape(setup, uploads)
        classes = classes if setup.conditional else 0
        if setup.conditional and classes < 2:
            raise ConfigError(f"conditional needs class labels, but data set {setup.source} has none: "
                              "turn conditional off or upload images in one sub-folder per class")
        g_in = (setup.z_dim + classes,)
    need_g = lambda out: None if out == img else (
        f"generator output is {_fmt(out)} but {'points' if setup.mode == '2d' else 'images'} are {_fmt(img)}: "
        f"end G with a layer that gives {_fmt(img)}")

    def need_d(out):
        if math.prod(out) != 1:
            return f"discriminator output must be one number per example, got {_fmt(out)}: end D with fc 1"
        if classes and not any(isinstance(x, dict) and x.get("type") == "fc" for x in setup.d_layers):
            return "a class-conditional discriminator needs an fc layer (its input meets the class embedding)"
        return None

    g_rows, g_err = _net_check(setup.g_layers, g_in, need_g, "g", "generator")
    d_rows, d_err = _net_check(setup.d_layers, img, need_d, "d", "discriminator")
    params = {"g": None if g_err else _count(setup.g_layers, g_in, False),
              "d": None if d_err else _count(setup.d_layers, img, True)}
    if params["d"] is not None and classes:  # the projection's class embedding, sized by the last fc's input
        last_fc = max(i for i, x in enumerate(setup.d_layers) if x.get("type") == "fc")
        params["d"] += classes * math.prod(d_rows[last_fc - 1]["shape"] if last_fc else img)
    errors = [e for e in (g_err, d_err) if e]
    return {"ok": not errors, "g": g_rows, "d": d_rows, "params": params, "errors": errors,
            "input": {"g": list(g_in), "d": list(img)}}


def run_config(setup: Setup, steps: int = 2000) -> RunConfig:
    """The RunConfig of an images-mode setup: the `layers` family (`clayers` when conditional) with the
    setup's layers and hyperparameters, everything else as `ganforge train` has it. The trainer's "sgd" reads
    its momentum from betas[0], so the playground's plain sgd passes 0 there."""
    def opt(o: NetOptions) -> tuple[str, tuple[float, float], float]:
        betas = (0.0, o.betas[1]) if o.opt == "sgd" else o.betas
        return o.opt, betas, o.momentum if o.opt == "momentum" else 0.0

    (g_opt, g_betas, g_mom), (d_opt, d_betas, d_mom) = opt(setup.g), opt(setup.d)
    return RunConfig(
        data=DataConfig(source=setup.source, normalize=setup.normalize),
        model=ModelConfig(family="clayers" if setup.conditional else "layers", z_dim=setup.z_dim,
                          g_layers=copy.deepcopy(setup.g_layers), d_layers=copy.deepcopy(setup.d_layers)),
        train=TrainConfig(steps=steps, batch_size=setup.batch_size, loss=setup.loss, g_opt=g_opt, d_opt=d_opt,
                          g_lr=setup.g.lr, d_lr=setup.d.lr, g_betas=g_betas, d_betas=d_betas, g_momentum=g_mom,
                          d_momentum=d_mom, d_steps=setup.d_steps, seed=setup.seed))


def meta_info() -> dict[str, Any]:
    """What /api/meta tells the page about setups: layer types with their defaults (null: required),
    optimizers with the fields each reads, losses, data sets, distributions, presets."""
    layer_types = {t: {k: (None if not isinstance(v, (int, float, str, list)) else v) for k, v in p.items()}
                   for t, p in PARAMS.items()}
    return {"layer_types": layer_types, "optimizers": OPTIMIZER_FIELDS, "losses": list(LOSSES),
            "datasets": builtin_datasets(), "distributions": list(DISTRIBUTIONS), "normalize": list(NORMALIZE),
            "presets": copy.deepcopy(PRESETS)}
