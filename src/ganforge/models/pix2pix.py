"""pix2pix (Isola et al., 2017): a U-Net generator and a PatchGAN discriminator for paired image-to-image
translation.

Unlike the other families these networks map images to images: ``G(a)`` takes a condition image ``a``
``[B, in_channels, H, W]`` in [-1, 1] and returns ``[B, out_channels, H * upsample, W * upsample]`` in [-1, 1];
``D(ab)`` takes the condition and an output stacked on the channel axis and returns one logit per patch,
``[B, 1, h, w]`` (the GAN losses average over patches as over a batch).

Options (``ModelConfig.options``): ``in_channels``, ``out_channels``; ``depth`` (U-Net levels, the input is
padded to a multiple of ``2**depth`` and cropped back, so any size works), ``g_width`` / ``d_width`` from the
model config; ``norm``: ``instance`` (default) or ``batch``; ``dropout`` (probability in the decoder's three
innermost levels, default 0); ``patch``: the discriminator's receptive field, one of 1, 16, 70 (default), 286;
``upsample``: a factor by which the input is first bicubic-upsampled (the pix2pix take on super-resolution).

Normalisation behaves the same in train and eval mode. Instance norm normalises each image by its own
statistics whatever the mode (no running statistics are kept). Batch norm normalises by the batch in training
and by its running statistics in eval mode, so an image's output in eval mode never depends on the other images
of its batch. The reference code's "eval-mode outputs are black/noisy" comes from batch norm trained at batch 1
and its statistics then used at test time; instance norm, the default here, has no such switch.

Dropout is the generator's noise source in the paper. :class:`SwitchableDropout` drops only while training,
or at inference when ``G.stochastic`` is set (``ganforge translate --stochastic``).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models.registry import register

MAX_CHANNELS = 512
# PatchGAN receptive field -> number of stride-2 layers (pix2pix's n_layers_D; 0 is the 1x1 "PixelGAN").
PATCH_LAYERS = {1: 0, 16: 1, 70: 3, 286: 5}


class SwitchableDropout(nn.Module):
    """Dropout that is active in training mode, and in eval mode only when ``stochastic`` is set."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.stochastic = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p <= 0:
            return x
        return F.dropout(x, self.p, training=self.training or self.stochastic)


class InstanceNorm(nn.InstanceNorm2d):
    """Instance norm that leaves a 1x1 map as it is (there are no statistics to take of one pixel)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if x.shape[-1] * x.shape[-2] == 1 else super().forward(x)


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return InstanceNorm(channels, affine=True, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"pix2pix norm must be 'instance', 'batch' or 'none', got '{kind}'")


class UNetGenerator(nn.Module):
    """Encoder of stride-2 4x4 convolutions, decoder of 4x4 transposed convolutions, with each encoder level's
    features concatenated onto the decoder level of the same size (the skip connections)."""

    image_to_image = True  # takes an image, not a latent: ganforge generate refuses it, translate runs it

    def __init__(self, in_channels: int, out_channels: int, width: int = 64, depth: int = 8, norm: str = "instance",
                 dropout: float = 0.0, upsample: int = 1):
        super().__init__()
        if depth < 1:
            raise ConfigError(f"pix2pix depth must be at least 1, got {depth}")
        self.depth, self.upsample, self._stochastic = depth, upsample, False
        ch = [min(width * 2 ** i, MAX_CHANNELS) for i in range(depth)]
        self.down = nn.ModuleList()
        prev = in_channels
        for i, c in enumerate(ch):
            # No norm on the outermost level (pix2pix) nor the innermost, whose map may be 1x1.
            use_norm = 0 < i < depth - 1
            layers = [] if i == 0 else [nn.LeakyReLU(0.2, True)]
            layers += [nn.Conv2d(prev, c, 4, 2, 1, bias=not use_norm or norm == "none")]
            if use_norm:
                layers.append(norm_layer(norm, c))
            self.down.append(nn.Sequential(*layers))
            prev = c
        self.up = nn.ModuleList()
        for i in reversed(range(depth)):
            inner = ch[i] if i == depth - 1 else 2 * ch[i]  # the innermost level has no skip to join
            if i == 0:
                layers = [nn.ReLU(True), nn.ConvTranspose2d(inner, out_channels, 4, 2, 1), nn.Tanh()]
            else:
                layers = [nn.ReLU(True), nn.ConvTranspose2d(inner, ch[i - 1], 4, 2, 1, bias=norm == "none"),
                          norm_layer(norm, ch[i - 1])]
                if dropout > 0 and i >= depth - 3:
                    layers.append(SwitchableDropout(dropout))
            self.up.append(nn.Sequential(*layers))

    @property
    def stochastic(self) -> bool:
        return self._stochastic

    @stochastic.setter
    def stochastic(self, value: bool) -> None:
        self._stochastic = bool(value)
        for m in self.modules():
            if isinstance(m, SwitchableDropout):
                m.stochastic = self._stochastic

    def forward(self, a: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if self.upsample > 1:
            a = F.interpolate(a, scale_factor=self.upsample, mode="bicubic", align_corners=False).clamp(-1, 1)
        h, w = a.shape[-2:]
        m = 2 ** self.depth
        ph, pw = -h % m, -w % m
        if ph or pw:  # any size: reflect-pad to the next multiple and crop back
            mode = "reflect" if ph < h and pw < w else "replicate"
            a = F.pad(a, (0, pw, 0, ph), mode=mode)
        skips = []
        x = a
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        for i, layer in enumerate(self.up):
            if i > 0:
                x = torch.cat([x, skips[-1 - i]], dim=1)
            x = layer(x)
        return x[..., :h, :w]


def patch_layers(receptive_field: int) -> int:
    if receptive_field not in PATCH_LAYERS:
        raise ConfigError(f"PatchGAN receptive field must be one of {', '.join(map(str, PATCH_LAYERS))} "
                          f"(pixels), got {receptive_field}")
    return PATCH_LAYERS[receptive_field]


class PatchDiscriminator(nn.Module):
    """pix2pix's PatchGAN: ``n`` stride-2 4x4 convolutions, one stride-1 4x4 convolution and a stride-1 4x4
    output convolution, so each output logit judges one square patch of the input (see
    :func:`receptive_field`). ``n = 0`` is the 1x1 PixelGAN of three 1x1 convolutions."""

    def __init__(self, in_channels: int, width: int = 64, receptive: int = 70, norm: str = "instance"):
        super().__init__()
        n = patch_layers(receptive)
        if n == 0:
            self.net = nn.Sequential(nn.Conv2d(in_channels, width, 1), nn.LeakyReLU(0.2, True),
                                     nn.Conv2d(width, 2 * width, 1, bias=norm == "none"), norm_layer(norm, 2 * width),
                                     nn.LeakyReLU(0.2, True), nn.Conv2d(2 * width, 1, 1))
            return
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        prev = width
        for i in range(1, n + 1):
            c = min(width * 2 ** min(i, 3), MAX_CHANNELS)
            stride = 2 if i < n else 1
            layers += [nn.Conv2d(prev, c, 4, stride, 1, bias=norm == "none"), norm_layer(norm, c),
                       nn.LeakyReLU(0.2, True)]
            prev = c
        layers.append(nn.Conv2d(prev, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x)


def receptive_field(net: nn.Module) -> int:
    """The side of the input square that one output of a plain stack of convolutions sees, from the kernel
    sizes and strides (back from one output pixel: ``r = (r - 1) * stride + kernel``)."""
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    r = 1
    for m in reversed(convs):
        r = (r - 1) * m.stride[0] + m.kernel_size[0]
    return r


def init_normal(net: nn.Module, std: float = 0.02) -> None:
    """pix2pix initialisation: N(0, 0.02) weights, norm scales N(1, 0.02), zero biases."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


def options(cfg: ModelConfig) -> dict:
    o = dict(cfg.options or {})
    known = {"in_channels", "out_channels", "depth", "norm", "dropout", "patch", "upsample", "task", "scale",
             "adv_weight", "l1_weight", "recon", "crop", "rotate", "blocks", "downsample"}
    unknown = sorted(set(o) - known)
    if unknown:
        raise ConfigError(f"unknown {cfg.family} option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    return o


@register("pix2pix", "image-to-image: U-Net generator + PatchGAN discriminator (ganforge train --task ...)",
          options=True)
def build(cfg: ModelConfig):
    o = options(cfg)
    c_in, c_out = int(o.get("in_channels", cfg.channels)), int(o.get("out_channels", cfg.channels))
    norm = o.get("norm", "instance")
    G = UNetGenerator(c_in, c_out, cfg.g_width, int(o.get("depth", 8)), norm, float(o.get("dropout", 0.0)),
                      int(o.get("upsample", 1)))
    D = PatchDiscriminator(c_in + c_out, cfg.d_width, int(o.get("patch", 70)), norm)
    init_normal(G)
    init_normal(D)
    return G, D
