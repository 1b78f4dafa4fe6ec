"""Low-level StyleGAN2 operations in plain PyTorch (no custom CUDA kernels).

These follow the semantics of the official stylegan2-ada-pytorch reference ops closely enough that a
network built on them reproduces the official outputs to float32 round-off:

* ``upfirdn2d``: upsample by zero insertion, pad (or crop), convolve with a 2-D FIR filter, downsample;
* ``bias_act``: bias, activation and gain (leaky ReLU carries a gain of sqrt(2));
* ``conv2d_resample``: a convolution fused with FIR up/downsampling, with the same operation order
  and padding as the official code (the order matters at the 1e-6 level, the padding at every level);
* ``modulated_conv2d``: the StyleGAN2 style-modulated, demodulated convolution.

Padding is always given as ``(pad_x0, pad_x1, pad_y0, pad_y1)`` (left, right, top, bottom).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

Padding = tuple[int, int, int, int]


def setup_filter(taps=(1, 3, 3, 1), normalize: bool = True) -> torch.Tensor:
    """The 2-D resampling filter: outer product of the 1-D taps, normalised to sum 1."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    if f.ndim == 1:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    return f


def _pad4(padding) -> Padding:
    if isinstance(padding, int):
        return (padding,) * 4
    if len(padding) == 2:  # (px, py)
        return (padding[0], padding[0], padding[1], padding[1])
    return tuple(padding)


def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up: int = 1, down: int = 1, padding=0,
              flip_filter: bool = False, gain: float = 1.0) -> torch.Tensor:
    """Upsample (zero insertion), pad, FIR-filter and downsample a batch of images ``[N, C, H, W]``.

    ``gain`` scales the filter; upsampling by ``up`` needs ``gain=up**2`` to keep the signal level,
    because zero insertion leaves only one in ``up**2`` pixels non-zero.
    """
    n, c, h, w = x.shape
    if f is None:
        f = torch.ones(1, 1, dtype=x.dtype, device=x.device)
    px0, px1, py0, py1 = _pad4(padding)

    if up > 1:  # zero insertion: each pixel is followed by up-1 zeros along both axes
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)

    # Positive padding adds zeros, negative padding crops. Symmetric zero padding is left to the
    # convolution below, which is cheaper than padding a copy (and differentiating through it).
    conv_pad = (py0, px0) if px0 == px1 >= 0 and py0 == py1 >= 0 else (0, 0)
    if conv_pad == (0, 0):
        x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
        x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]

    # conv2d correlates; flipping the filter makes it a true convolution (unless asked not to).
    f = f.to(x.dtype) * (gain ** (f.ndim / 2))
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    weight = f[None, None].repeat(c, 1, 1, 1)
    # Striding the convolution computes only the kept pixels (the same values as filtering, then slicing).
    return F.conv2d(x, weight, groups=c, stride=down, padding=conv_pad)


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2, gain: float = 1.0) -> torch.Tensor:
    """FIR upsampling by ``up``; keeps the size-``up`` output aligned with the input."""
    fw = f.shape[-1]
    pad = ((fw + up - 1) // 2, (fw - up) // 2)
    return upfirdn2d(x, f, up=up, padding=(pad[0], pad[1], pad[0], pad[1]), gain=gain * up * up)


def downsample2d(x: torch.Tensor, f: torch.Tensor, down: int = 2, gain: float = 1.0) -> torch.Tensor:
    """FIR downsampling by ``down``."""
    fw = f.shape[-1]
    pad = ((fw - down + 1) // 2, (fw - down) // 2)
    return upfirdn2d(x, f, down=down, padding=(pad[0], pad[1], pad[0], pad[1]), gain=gain)


# name -> (function, default gain)
ACTIVATIONS = {
    "linear": (lambda x: x, 1.0),
    "lrelu": (lambda x: F.leaky_relu(x, 0.2), math.sqrt(2)),
    "relu": (F.relu, math.sqrt(2)),
}


def bias_act(x: torch.Tensor, b: torch.Tensor | None = None, act: str = "linear", gain: float | None = None,
             clamp: float | None = None) -> torch.Tensor:
    """Add a per-channel bias (dimension 1), apply the activation, scale by its gain, optionally clamp."""
    fn, default_gain = ACTIVATIONS[act]
    gain = default_gain if gain is None else gain
    bias = None if b is None else b.reshape([1, -1] + [1] * (x.ndim - 2))
    if act == "lrelu" and bias is not None and gain > 0 and torch.is_grad_enabled():
        # lrelu(x + b) * gain == lrelu(gain * x + gain * b) for gain > 0: bias and gain in one pass, then the
        # activation in place on that fresh tensor (its backward reads the output, which nothing changes later).
        # Two passes instead of three (a measurable share of a CPU training step); the round-off differs from the
        # official order by ~1 ulp, so inference (no grad) keeps the official order and reproduces its images
        # bit for bit.
        x = F.leaky_relu_(torch.add(bias * gain, x, alpha=gain), 0.2)
    else:
        # Scaling in place saves writing a fresh tensor. It is safe where x will be a tensor made here that no
        # backward reads: the bias sum, or a leaky ReLU's output (its backward reads the input). Not a ReLU's
        # output, which its backward reads, and never the caller's own tensor.
        fresh = act == "lrelu" or (bias is not None and act == "linear")
        if bias is not None:
            x = x + bias
        x = fn(x)
        if gain != 1:
            x = x.mul_(gain) if fresh else x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def _conv(x, w, stride=1, padding=0, groups=1, transpose=False, flip_weight=True):
    """conv2d / conv_transpose2d; ``flip_weight=False`` flips the kernel (true convolution)."""
    if not flip_weight:
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    if w.shape[2:] == (1, 1) and stride == 1 and not any(_pad4(padding)) and groups == 1 and _bf16_on_cpu(x):
        return _pointwise_conv(x, w)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def _bf16_on_cpu(x: torch.Tensor) -> bool:
    """Whether a convolution of ``x`` runs in bfloat16 on the CPU (its own dtype, or autocast's)."""
    if x.device.type != "cpu":
        return False
    autocast = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    return x.dtype == torch.bfloat16 or (autocast and x.dtype in (torch.float32, torch.float16))  # what autocast casts


def _pointwise_conv(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution as the matrix product it is, in ``x``'s memory format.

    Used for bfloat16 on CPUs: there oneDNN (torch 2.13) dies with SIGFPE on the double backward of a
    1x1 convolution from 3 channels to 48 or more when batch x height x width is 2^19 (an RGB
    fromRGB layer under R1 at 256x256 with batch 8, 128x128 with batch 32, ...), because autograd
    computes that weight gradient as a convolution whose kernel covers the whole image. A matrix product
    differentiates into matrix products, which do not take that path."""
    n, c, h, wd = x.shape
    w2 = w.reshape(w.shape[0], c)
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return (x.permute(0, 2, 3, 1) @ w2.t()).permute(0, 3, 1, 2)
    return (w2 @ x.reshape(n, c, h * wd)).reshape(n, -1, h, wd)


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None, up: int = 1, down: int = 1,
                    padding=0, groups: int = 1, flip_weight: bool = True, flip_filter: bool = False) -> torch.Tensor:
    """2-D convolution with optional FIR upsampling (before) or downsampling (after).

    Picks the same execution path as the official implementation for each case, since the paths differ
    in where the (linear, but not bit-identical) operations happen.
    """
    out_ch, in_per_group, kh, kw = w.shape
    fw = f.shape[-1] if f is not None else 1
    fh = f.shape[-2] if f is not None else 1
    px0, px1, py0, py1 = _pad4(padding)
    # Extra padding so that the FIR filter's support fits around the resampled signal.
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    pad = (px0, px1, py0, py1)

    if kw == 1 and kh == 1 and down > 1 and up == 1:  # 1x1 conv: downsample first (cheaper)
        x = upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:  # 1x1 conv: convolve first, then upsample
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=pad, gain=up ** 2, flip_filter=flip_filter)
    if down > 1 and up == 1:  # filter, then strided convolution
        x = upfirdn2d(x, f, padding=pad, flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if up > 1:  # transposed strided convolution, then filter
        if groups == 1:
            w = w.transpose(0, 1)
        else:  # swap in/out channels within each group
            w = w.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2)
            w = w.reshape(groups * in_per_group, out_ch // groups, kh, kw)
        px0, px1 = px0 - (kw - 1), px1 - (kw - up)
        py0, py1 = py0 - (kh - 1), py1 - (kh - up)
        # Let the transposed conv do the part of the (negative) padding it can, as a crop.
        pxt, pyt = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
        x = _conv(x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight)
        x = upfirdn2d(x, f, padding=(px0 + pxt, px1 - pxt, py0 + pyt, py1 - pyt), gain=up ** 2,
                      flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x
    if up == 1 and down == 1 and px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)
    # General case (asymmetric padding): pad explicitly, then convolve.
    x = upfirdn2d(x, None, padding=pad, flip_filter=flip_filter)
    x = _conv(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale each vector to unit root-mean-square."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, noise: torch.Tensor | None = None,
                     up: int = 1, padding: int = 0, resample_filter: torch.Tensor | None = None,
                     demodulate: bool = True, flip_weight: bool = True, fused: bool = True) -> torch.Tensor:
    """Convolve each sample with ``weight`` scaled per input channel by its ``styles`` [B, in_ch].

    Demodulation rescales each output channel back to unit expected variance. ``fused=True`` builds one
    weight per sample and runs a grouped convolution; ``fused=False`` scales the activations before and
    after a shared convolution instead (same result, different memory/speed trade-off).
    """
    batch = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape
    if x.dtype == torch.float16 and demodulate:
        # float16 would overflow on large styles: pre-scale both (demodulation cancels the scale again).
        weight = weight * (1 / math.sqrt(in_ch * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    w = dcoefs = None
    with torch.autocast(x.device.type, enabled=False):  # see layers.full_precision
        weight, styles = weight.float(), styles.float()
        if fused:
            w = weight.unsqueeze(0) * styles.reshape(batch, 1, -1, 1, 1)  # [B, out, in, kh, kw]
        if demodulate and fused:
            dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [B, out]
        elif demodulate:  # the same sum as a matrix product, without a per-sample weight tensor
            dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()

    if not fused:
        x = x * styles.to(x.dtype).reshape(batch, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, padding=padding,
                            flip_weight=flip_weight)
        if demodulate and noise is not None:  # one pass instead of two, as the official fma
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(batch, -1, 1, 1))
        if demodulate:
            x = x * dcoefs.to(x.dtype).reshape(batch, -1, 1, 1)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x

    if demodulate:
        w = w * dcoefs.reshape(batch, -1, 1, 1, 1)
    # Fold the batch into channels so one grouped convolution applies each sample's own weight.
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_ch, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, padding=padding, groups=batch,
                        flip_weight=flip_weight)
    x = x.reshape(batch, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x
