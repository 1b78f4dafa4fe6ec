"""ProGAN (Karras et al., ICLR 2018, "Progressive Growing of GANs for Improved Quality, Stability, and
Variation"): a generator and a discriminator that grow from 4x4 to the final size, one octave at a time.

* G: the latent normalised to unit length, a dense layer to 4x4, then per octave nearest upsampling and two
  3x3 convolutions, each followed by a leaky ReLU and pixelwise feature normalisation; a 1x1 toRGB per
  resolution. Outputs are linear (not squashed), as in the paper and StyleGAN2.
* D: a 1x1 fromRGB per resolution, per octave two 3x3 convolutions and 2x2 average pooling; at 4x4 the
  minibatch standard deviation as an extra channel, a 3x3 convolution and two dense layers.
* Every weight layer has an equalized learning rate: stored at unit scale, multiplied by He's constant at run
  time (StyleGAN2's layers, which do just that, are reused).

Growth: both networks hold the stage as buffers ``level`` (0 is 4x4, ``max_level`` the final size) and
``alpha`` (how far the newest block has faded in: 0 is the lower-resolution network alone, 1 the new block
alone), set by :func:`set_stage` (the trainer does it, see ``ganforge.train.progan``). Being buffers, they are
saved with the weights, so a checkpoint samples at the stage it reached.

``G(z)`` computes the current resolution and returns it upsampled (nearest) to the final size, so sample grids,
metrics and every tool that expects the final size work at any stage and show the growth as it happens;
``G(z, native=True)`` returns the current resolution itself. ``D`` takes images of the final size (or of any
power-of-two size down to the current resolution) and average-pools them to the current resolution.
:func:`fade_reals` gives the real images the same fade as the generated ones.

``cfg.options``: ``channel_base`` (channels at resolution r are ``min(channel_base // r, width)``; default
``64 * width``, so every resolution up to 64 px gets the full width), ``resample`` (``nearest``: the paper's
nearest upsampling and average pooling; ``fir``: StyleGAN2's [1, 3, 3, 1] filter), ``mbstd_group`` (4).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models.registry import register
from ganforge.models.stylegan2 import ops
from ganforge.models.stylegan2.layers import Conv2dLayer, FullyConnectedLayer, MinibatchStdLayer

RESAMPLE = ("nearest", "fir")
FIR_TAPS = (1, 3, 3, 1)
MBSTD_GROUP = 4
OPTIONS = ("channel_base", "resample", "mbstd_group")


def max_level(resolution: int) -> int:
    """The level of the final resolution: 4x4 is level 0, 8x8 level 1, ..."""
    return int(math.log2(resolution)) - 2


def level_resolution(level: int) -> int:
    return 4 * 2 ** level


def pixel_norm(x: torch.Tensor) -> torch.Tensor:
    """Each pixel's feature vector scaled to unit root-mean-square (the paper's eq. 2)."""
    return ops.normalize_2nd_moment(x, dim=1)


def nearest(x: torch.Tensor, size: int) -> torch.Tensor:
    """Nearest-neighbour upsampling to ``size`` (a whole multiple): every pixel becomes a block."""
    factor = size // x.shape[-1]
    return x if factor == 1 else F.interpolate(x, scale_factor=factor, mode="nearest")


def area(x: torch.Tensor, size: int) -> torch.Tensor:
    """Average pooling down to ``size`` (a whole divisor)."""
    factor = x.shape[-1] // size
    return x if factor == 1 else F.avg_pool2d(x, factor)


class _Resample(nn.Module):
    """The 2x up/downsampling of the fade-in skip paths, in the networks' mode."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode
        self.register_buffer("filter", ops.setup_filter(FIR_TAPS), persistent=False)

    def up(self, x: torch.Tensor) -> torch.Tensor:
        return ops.upsample2d(x, self.filter) if self.mode == "fir" else nearest(x, 2 * x.shape[-1])

    def down(self, x: torch.Tensor) -> torch.Tensor:
        return ops.downsample2d(x, self.filter) if self.mode == "fir" else area(x, x.shape[-1] // 2)


class _Growing(nn.Module):
    """What both networks share: the stage buffers."""

    progressive = True

    def _init_stage(self, resolution: int) -> None:
        self.resolution = resolution
        self.max_level = max_level(resolution)
        # A network built from a config is the full one; the trainer sets the stage it trains.
        self.register_buffer("level", torch.tensor(self.max_level, dtype=torch.int64))
        self.register_buffer("alpha", torch.tensor(1.0))

    def stage(self) -> tuple[int, float]:
        return int(self.level), float(self.alpha)


class GBlock(nn.Module):
    """One octave up: 2x upsampling and two 3x3 convolutions, each with pixel norm."""

    def __init__(self, cin: int, cout: int, resample: str):
        super().__init__()
        self.fir = resample == "fir"
        self.conv0 = Conv2dLayer(cin, cout, 3, activation="lrelu", up=2 if self.fir else 1, resample_filter=FIR_TAPS)
        self.conv1 = Conv2dLayer(cout, cout, 3, activation="lrelu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fir:
            x = nearest(x, 2 * x.shape[-1])
        return pixel_norm(self.conv1(pixel_norm(self.conv0(x))))


class DBlock(nn.Module):
    """One octave down: two 3x3 convolutions and 2x downsampling."""

    def __init__(self, cin: int, cout: int, resample: str):
        super().__init__()
        self.fir = resample == "fir"
        self.conv0 = Conv2dLayer(cin, cin, 3, activation="lrelu")
        self.conv1 = Conv2dLayer(cin, cout, 3, activation="lrelu", down=2 if self.fir else 1,
                                 resample_filter=FIR_TAPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.conv0(x))
        return x if self.fir else area(x, x.shape[-1] // 2)


def _channels(base: int, width: int, levels: int) -> list[int]:
    return [max(1, min(base // level_resolution(k), width)) for k in range(levels + 1)]


class ProGenerator(_Growing):
    def __init__(self, z_dim: int, img_shape: tuple[int, int, int], width: int, channel_base: int,
                 resample: str = "nearest"):
        super().__init__()
        c_img, res, _ = img_shape
        self._init_stage(res)
        ch = _channels(channel_base, width, self.max_level)
        self.base_channels = ch[0]
        self.fc = FullyConnectedLayer(z_dim, ch[0] * 16, bias=False)
        self.bias = nn.Parameter(torch.zeros(ch[0]))
        self.conv = Conv2dLayer(ch[0], ch[0], 3, activation="lrelu")
        self.blocks = nn.ModuleList(GBlock(ch[k - 1], ch[k], resample) for k in range(1, self.max_level + 1))
        self.to_rgb = nn.ModuleList(Conv2dLayer(c, c_img, 1) for c in ch)
        self.resample = _Resample(resample)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, native: bool = False) -> torch.Tensor:
        level, alpha = self.stage()
        # The official dense layer's gain sqrt(2)/4; the bias and leaky ReLU come after the reshape to 4x4.
        x = self.fc(pixel_norm(z)) * (math.sqrt(2) / 4)
        x = pixel_norm(F.leaky_relu(x.view(-1, self.base_channels, 4, 4) + self.bias.view(1, -1, 1, 1), 0.2))
        x = pixel_norm(self.conv(x))
        low = None
        for k in range(1, level + 1):
            if k == level and alpha < 1:
                low = self.to_rgb[k - 1](x)  # the lower resolution's image, faded out as alpha grows
            x = self.blocks[k - 1](x)
        img = self.to_rgb[level](x)
        if low is not None:
            img = torch.lerp(self.resample.up(low), img, alpha)
        return img if native else nearest(img, self.resolution)


class ProDiscriminator(_Growing):
    def __init__(self, img_shape: tuple[int, int, int], width: int, channel_base: int, resample: str = "nearest",
                 mbstd_group: int = MBSTD_GROUP):
        super().__init__()
        c_img, res, _ = img_shape
        self._init_stage(res)
        ch = _channels(channel_base, width, self.max_level)
        self.from_rgb = nn.ModuleList(Conv2dLayer(c_img, c, 1, activation="lrelu") for c in ch)
        self.blocks = nn.ModuleList(DBlock(ch[k], ch[k - 1], resample) for k in range(1, self.max_level + 1))
        self.mbstd = MinibatchStdLayer(mbstd_group, 1)
        self.conv = Conv2dLayer(ch[0] + 1, ch[0], 3, activation="lrelu")
        self.fc = FullyConnectedLayer(ch[0] * 16, ch[0], activation="lrelu")
        self.out = FullyConnectedLayer(ch[0], 1)
        self.resample = _Resample(resample)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        level, alpha = self.stage()
        r = level_resolution(level)
        if x.shape[-1] < r or x.shape[-1] % r:
            raise ValueError(f"ProGAN D at {r}x{r} needs images of {r} px or a multiple, got {x.shape[-1]} px")
        x = area(x, r)
        h = self.from_rgb[level](x)
        if level > 0:
            h = self.blocks[level - 1](h)
            if alpha < 1:  # the lower resolution's path on the downsampled image, faded out as alpha grows
                h = torch.lerp(self.from_rgb[level - 1](self.resample.down(x)), h, alpha)
            for k in range(level - 1, 0, -1):
                h = self.blocks[k - 1](h)
        h = self.conv(self.mbstd(h))
        return self.out(self.fc(h.flatten(1))).squeeze(1)


def set_stage(net: nn.Module, level: int, alpha: float) -> None:
    """Put a ProGAN network at ``level`` with the newest block faded in by ``alpha``."""
    if not 0 <= level <= net.max_level:
        raise ValueError(f"level {level} is outside 0..{net.max_level}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    with torch.no_grad():
        net.level.fill_(level)
        net.alpha.fill_(1.0 if level == 0 else alpha)  # 4x4 has nothing to fade from


@torch.no_grad()
def fade_reals(x: torch.Tensor, level: int, alpha: float, resample: str = "nearest") -> torch.Tensor:
    """Real images as D should see them at a stage: average-pooled to the current resolution, blended during a
    fade-in with the lower resolution upsampled the way G upsamples it, and returned at the input's size
    (nearest), as G's images are."""
    size = x.shape[-1]
    y = area(x, level_resolution(level))
    if level > 0 and alpha < 1:
        y = torch.lerp(_Resample(resample).to(x.device).up(area(y, y.shape[-1] // 2)), y, alpha)
    return nearest(y, size)


def _options(cfg: ModelConfig) -> dict:
    options = cfg.options or {}
    if not isinstance(options, dict):
        raise ConfigError("progan model options must be an object, e.g. {\"resample\": \"fir\"}")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"unknown progan model option(s) {', '.join(unknown)}; valid: {', '.join(OPTIONS)}")
    out = {"channel_base": options.get("channel_base", 64 * max(cfg.g_width, cfg.d_width)),
           "resample": options.get("resample", "nearest"), "mbstd_group": options.get("mbstd_group", MBSTD_GROUP)}
    for key in ("channel_base", "mbstd_group"):
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"progan model option {key} must be a positive whole number, got {v!r}")
    if out["resample"] not in RESAMPLE:
        raise ConfigError(f"progan model option resample must be one of {', '.join(RESAMPLE)}, "
                          f"got {out['resample']!r}")
    return out


def check_resolution(res: int) -> None:
    if res < 8 or res & (res - 1):
        raise ConfigError(f"progan needs a power-of-two resolution of at least 8 (e.g. 32, 64), got {res}: "
                          "use --resolution, or --pad 2 to make 28 px MNIST 32 px")


@register("progan", "progressive growing GAN (ProGAN): G and D grow from 4x4 to the final power-of-two size",
          options=True)
def build(cfg: ModelConfig):
    check_resolution(cfg.resolution)
    if cfg.spectral_norm:
        raise ConfigError("progan does not use spectral normalisation (it relies on equalized learning rate and "
                          "WGAN-GP): drop --spectral-norm")
    for name in ("g_width", "d_width"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{name} must be positive, got {getattr(cfg, name)}")
    o = _options(cfg)
    G = ProGenerator(cfg.z_dim, cfg.img_shape, cfg.g_width, o["channel_base"], o["resample"])
    D = ProDiscriminator(cfg.img_shape, cfg.d_width, o["channel_base"], o["resample"], o["mbstd_group"])
    return G, D
