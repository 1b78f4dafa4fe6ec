"""StyleGAN2 generator and discriminator (Karras et al., 2020), as in stylegan2-ada-pytorch.

Constructor arguments, call signatures and parameter/buffer names follow the official networks, so
``Generator(**G_init_kwargs)`` loads an official state dict by name and then computes the same images.
Mixed precision as official: the ``num_fp16_res`` highest resolutions run in float16 on CUDA (bfloat16
elsewhere, where float16 convolutions are slow or missing) and everything else in float32; pair it with
``conv_clamp`` (256 in the official configs). Differences: plain PyTorch ops only, class labels may be
given as indices ``[B]`` as well as one-hot vectors ``[B, c_dim]``, the minibatch-std layer accepts
batch sizes that its group size does not divide, and each reduced-precision block has a ``precision``
('auto', 'fp32' or 'bf16'; set it with :func:`set_precision`): 'auto' runs the block in reduced precision
only where that is fast, on CUDA and on CPUs with AMX (``ganforge.devices.reduced_precision_ok``). On
other CPUs bfloat16 is emulated, far slower than float32, so 'auto' keeps float32 there.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ganforge.devices import PRECISIONS, reduced_precision_ok
from ganforge.errors import ConfigError
from ganforge.models.stylegan2 import ops
from ganforge.models.stylegan2.layers import (
    Conv2dLayer,
    FullyConnectedLayer,
    MinibatchStdLayer,
    SynthesisLayer,
    ToRGBLayer,
    as_class_vector,
    full_precision,
)

ARCHITECTURES = ("orig", "skip", "resnet")


def _check_resolution(res: int) -> int:
    if res < 4 or res & (res - 1):
        raise ValueError(f"StyleGAN2 needs a power-of-two resolution >= 4, got {res}")
    return int(math.log2(res))


def low_precision(device: torch.device) -> torch.dtype:
    """The reduced-precision dtype of ``use_fp16`` blocks on this device."""
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def block_dtype(block: nn.Module, device: torch.device, force_fp32: bool) -> torch.dtype:
    """The dtype a block computes in: reduced precision only for ``use_fp16`` blocks whose ``precision``
    allows it on ``device`` (see :func:`set_precision`), float32 otherwise."""
    if block.use_fp16 and not force_fp32 and reduced_precision_ok(block.precision, device):
        return low_precision(device)
    return torch.float32


def set_precision(net: nn.Module, precision: str) -> nn.Module:
    """Set how the reduced-precision (``num_fp16_res``) blocks of ``net`` and its sub-networks run:
    'auto' (reduced where it is fast: CUDA, CPUs with AMX), 'fp32' or 'bf16' (reduced everywhere, float16
    on CUDA). A network without such blocks is left as it is. Returns ``net``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be auto, fp32 or bf16, got '{precision}'")
    for m in net.modules():
        if isinstance(m, (SynthesisBlock, DiscriminatorBlock)):
            m.precision = precision
    net.precision = precision
    return net


def fp16_resolution(img_resolution: int, num_fp16_res: int) -> int:
    """Blocks at this resolution and above run in reduced precision (never below 8x8)."""
    return max(2 ** (_check_resolution(img_resolution) + 1 - num_fp16_res), 8)


def _check_architecture(arch: str) -> str:
    if arch not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got '{arch}'")
    return arch


class MappingNetwork(nn.Module):
    """z (and class) -> w through an MLP with a 100x lower learning rate; tracks the average w."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, num_layers: int = 8,
                 embed_features: int | None = None, layer_features: int | None = None, activation: str = "lrelu",
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.995):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
        embed_features = (w_dim if embed_features is None else embed_features) if c_dim else 0
        layer_features = w_dim if layer_features is None else layer_features
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(features[i], features[i + 1], activation=activation,
                                                        lr_multiplier=lr_multiplier))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None = None, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, skip_w_avg_update: bool = False) -> torch.Tensor:
        device = (z if z is not None else c).device
        with full_precision(device):  # as official: the mapping always runs in float32
            return self._forward(z, c, truncation_psi, truncation_cutoff, skip_w_avg_update)

    def _forward(self, z, c, truncation_psi, truncation_cutoff, skip_w_avg_update) -> torch.Tensor:
        x = None
        if self.z_dim > 0:
            x = ops.normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            y = ops.normalize_2nd_moment(self.embed(as_class_vector(c, self.c_dim)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if self.w_avg_beta is not None and self.training and not skip_w_avg_update:
            # Running average of w, the centre that truncation pulls towards.
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            if self.w_avg_beta is None:
                raise ValueError("truncation needs w_avg, which this mapping network does not track")
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:  # truncate only the first (coarse) layers
                x = x.clone()
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: (const or conv0 with 2x upsampling), conv1, toRGB."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, architecture: str = "skip", resample_filter=(1, 3, 3, 1),
                 conv_clamp: float | None = None, use_fp16: bool = False, fp16_channels_last: bool = False,
                 **layer_kwargs):
        super().__init__()
        self.in_channels, self.resolution, self.is_last = in_channels, resolution, is_last
        self.use_fp16, self.precision = use_fp16, "auto"
        self.architecture = _check_architecture(architecture)
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter))
        self.num_conv = self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp,
                                    **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter)

    def forward(self, x, img, ws, force_fp32: bool = False, fused_modconv: bool | None = None, **layer_kwargs):
        w_iter = iter(ws.unbind(dim=1))
        dtype = block_dtype(self, ws.device, force_fp32)
        if fused_modconv is None:  # as official: grouped conv at inference, activation scaling in training
            fused_modconv = not self.training and dtype == torch.float32
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
        elif self.architecture == "resnet":
            x = x.to(dtype)
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, gain=math.sqrt(0.5), **layer_kwargs)
            x = y + x
        else:
            x = self.conv0(x.to(dtype), next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
        if img is not None:
            img = ops.upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv).to(torch.float32)
            img = img + y if img is not None else y
        return x, img


class SynthesisNetwork(nn.Module):
    """Per-layer w vectors ``ws [B, num_ws, w_dim]`` -> images; channels = min(channel_base // res, channel_max)."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 0, **block_kwargs):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.block_resolutions = [2 ** i for i in range(2, _check_resolution(img_resolution) + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        low_from = fp16_resolution(img_resolution, num_fp16_res)
        self.num_ws = 0
        for res in self.block_resolutions:
            is_last = res == img_resolution
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim, res, img_channels,
                                   is_last=is_last, use_fp16=num_fp16_res > 0 and res >= low_from, **block_kwargs)
            # Consecutive blocks share a w: a block's toRGB uses the same w as the next block's conv0.
            self.num_ws += block.num_conv + (block.num_torgb if is_last else 0)
            setattr(self, f"b{res}", block)

    def forward(self, ws: torch.Tensor, **block_kwargs) -> torch.Tensor:
        ws = ws.to(torch.float32)
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, block_ws, **block_kwargs)
        return img


class Generator(nn.Module):
    """Mapping + synthesis. ``G(z, c)`` works both as the official call and as ganforge's ``G(z, c=None)``."""

    # Tell ganforge.generate to truncate toward w_avg (G(z, c, truncation_psi=psi)) instead of scaling z,
    # and that G takes noise_mode ('random' for training, 'const' for reproducible samples).
    supports_w_truncation = True
    supports_noise_mode = True

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: dict | None = None, synthesis_kwargs: dict | None = None):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, **(synthesis_kwargs or {}))
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, num_ws=self.num_ws, **(mapping_kwargs or {}))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, **synthesis_kwargs) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, **synthesis_kwargs)


class DiscriminatorBlock(nn.Module):
    """One resolution of D: (fromRGB), conv0, conv1 with 2x downsampling, and a 1x1 skip in resnet mode."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, resolution: int, img_channels: int,
                 architecture: str = "resnet", activation: str = "lrelu", resample_filter=(1, 3, 3, 1),
                 conv_clamp: float | None = None, use_fp16: bool = False, **_unused):
        super().__init__()
        self.in_channels, self.resolution, self.use_fp16 = in_channels, resolution, use_fp16
        self.precision = "auto"
        self.architecture = _check_architecture(architecture)
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter))
        conv = dict(activation=activation, conv_clamp=conv_clamp)
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, **conv)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, **conv)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, down=2, resample_filter=resample_filter, **conv)
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2,
                                    resample_filter=resample_filter)

    def forward(self, x, img, force_fp32: bool = False):
        device = (img if img is not None else x).device
        dtype = block_dtype(self, device, force_fp32)
        x = x.to(dtype) if x is not None else None
        if self.in_channels == 0 or self.architecture == "skip":
            img = img.to(dtype)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = ops.downsample2d(img, self.resample_filter) if self.architecture == "skip" else None
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))  # sqrt(0.5) keeps the sum's variance unchanged
            x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
            x = y + x
        else:
            x = self.conv1(self.conv0(x))
        return x, img


class DiscriminatorEpilogue(nn.Module):
    """The 4x4 head: minibatch std, conv, fc, output (projected onto the class embedding when conditional)."""

    def __init__(self, in_channels: int, cmap_dim: int, resolution: int, img_channels: int,
                 architecture: str = "resnet", mbstd_group_size: int | None = 4, mbstd_num_channels: int = 1,
                 activation: str = "lrelu", conv_clamp: float | None = None):
        super().__init__()
        self.cmap_dim, self.architecture = cmap_dim, _check_architecture(architecture)
        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, 1, activation=activation)
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, activation=activation,
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x, img, cmap):
        if self.architecture == "skip":
            x = x + self.fromrgb(img)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.out(self.fc(self.conv(x).flatten(1)))
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x


class Discriminator(nn.Module):
    """Official-style D: ``D(img, c)`` -> logits ``[B, 1]``."""

    def __init__(self, c_dim: int, img_resolution: int, img_channels: int, architecture: str = "resnet",
                 channel_base: int = 32768, channel_max: int = 512, num_fp16_res: int = 0,
                 conv_clamp: float | None = None, cmap_dim: int | None = None, block_kwargs: dict | None = None,
                 mapping_kwargs: dict | None = None, epilogue_kwargs: dict | None = None):
        super().__init__()
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        log2 = _check_resolution(img_resolution)
        self.block_resolutions = [2 ** i for i in range(log2, 2, -1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        cmap_dim = (channels[4] if cmap_dim is None else cmap_dim) if c_dim else 0
        common = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        low_from = fp16_resolution(img_resolution, num_fp16_res)
        for res in self.block_resolutions:
            in_channels = channels[res] if res < img_resolution else 0
            block = DiscriminatorBlock(in_channels, channels[res], channels[res // 2], res,
                                       use_fp16=num_fp16_res > 0 and res >= low_from,
                                       **(block_kwargs or {}), **common)
            setattr(self, f"b{res}", block)
        if c_dim > 0:
            self.mapping = MappingNetwork(0, c_dim, cmap_dim, num_ws=None, w_avg_beta=None,
                                          **(mapping_kwargs or {}))
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim, 4, **(epilogue_kwargs or {}), **common)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None, force_fp32: bool = False,
                **_unused) -> torch.Tensor:
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, force_fp32=force_fp32)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        # The epilogue always runs in float32 (as official).
        return self.b4(x.float(), None if img is None else img.float(), cmap)
