"""Perceptual path length (PPL; Karras et al. 2019, "A Style-Based Generator Architecture for GANs").

How far the image moves, perceptually, for a tiny step along a latent interpolation path. For each of
``n`` pairs of random latents a point ``t`` on the path between them is chosen (``sampling='end'``:
``t = 0``, as StyleGAN2 reports it; ``'full'``: ``t ~ U(0, 1)``, as the StyleGAN paper), the images at
``t`` and ``t + epsilon`` are rendered and ``d(img_t, img_t+eps) / epsilon**2`` is that pair's length.
Pairs outside the 1st..99th percentile are dropped and PPL is the mean of the rest. Lower means the
generator changes smoothly along its latent paths.

Paths run in one of two spaces:

* ``'w'``: linear interpolation of the mapped latents ``w = G.mapping(z, c)``, images from
  ``G.synthesis(w)``. Only generators with a mapping network (StyleGAN2) have a w.
* ``'z'``: spherical interpolation (slerp) of the normalised z. Works for every family. Points on the
  path are put back on the sphere of radius ``sqrt(z_dim)``, where nearly all of a standard normal
  prior's mass lies, so a generator that reads z directly (dcgan) sees latents of a typical size;
  StyleGAN2's mapping normalises z anyway, so there this is the official computation.

A conditional generator draws one random class per pair, shared by both ends. Per-pixel noise is the
network's fixed noise (``noise_mode='const'``): the measurement is deterministic for a seed.

The distance ``d`` is pluggable: any callable ``(x, y) -> [B]`` on float images in [-1, 1]. The paper's
is LPIPS on VGG16 features (:mod:`.lpips`, weights passed as ``--vgg``); without those weights, digit-like
images are measured with the built-in digit network's unit-normalised penultimate features
(:class:`DigitFeatureDistance`) -- a different, smaller-scale number that is labelled as such and must
not be compared with published LPIPS values.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ganforge.errors import EvalError

SPACES = ("z", "w")
SAMPLINGS = ("end", "full")
Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def has_mapping(G) -> bool:
    """Whether ``G`` is a mapping + synthesis generator (StyleGAN2) with a w space to walk in."""
    return hasattr(G, "mapping") and hasattr(G, "synthesis")


def default_space(G) -> str:
    return "w" if has_mapping(G) else "z"


def check_options(G, space: str | None, sampling: str, epsilon: float) -> str:
    """The space to use (``None``: w when G has one, else z); an EvalError for choices that cannot run."""
    space = default_space(G) if space is None else space
    if space not in SPACES:
        raise EvalError(f"PPL space must be z or w, got '{space}'")
    if sampling not in SAMPLINGS:
        raise EvalError(f"PPL sampling must be end or full, got '{sampling}'")
    if space == "w" and not has_mapping(G):
        raise EvalError("PPL in w space needs a generator with a mapping network (stylegan2, cstylegan2); "
                        "use --ppl-space z for this one")
    if not 0 < epsilon < 0.1:
        raise EvalError(f"PPL epsilon must be small and positive (the paper's is 1e-4), got {epsilon}")
    return space


def slerp_unit(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Point at fraction ``t`` ([B, 1]) of the great circle from a to b (rows, normalised first); unit rows."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    cos = (a * b).sum(-1, keepdim=True).clamp(-1, 1)
    angle = torch.acos(cos) * t
    ortho = F.normalize(b - cos * a, dim=-1)  # the direction from a toward b, perpendicular to a
    return F.normalize(a * torch.cos(angle) + ortho * torch.sin(angle), dim=-1)


def sample_pairs(G, n: int, sampling: str = "end", seed: int = 0):
    """The pairs' end latents ``z0, z1`` [n, z_dim], their shared classes ``c`` [n] (None when G is
    unconditional) and positions ``t`` [n, 1], all from ``seed`` on the CPU."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 2, G.z_dim, generator=g)
    t = torch.rand(n, 1, generator=g) if sampling == "full" else torch.zeros(n, 1)
    c = torch.randint(0, G.num_classes, (n,), generator=g) if getattr(G, "num_classes", 0) else None
    return z[:, 0], z[:, 1], c, t


def _synthesis_kwargs(G) -> dict:
    return {"noise_mode": "const"} if getattr(G, "supports_noise_mode", False) else {}


@torch.no_grad()
def path_lengths(G, distance_fn: Distance, n: int = 2000, space: str | None = None, sampling: str = "end",
                 epsilon: float = 1e-4, batch_size: int = 100, seed: int = 0, device: str | torch.device = "cpu",
                 truncation: float = 1.0) -> np.ndarray:
    """``d(img_t, img_t+eps) / eps**2`` of each of ``n`` pairs from :func:`sample_pairs`, in that order.

    ``truncation`` (psi < 1) is applied as ``ganforge generate`` applies it: toward the average w for
    generators with a mapping network, by shrinking the z sphere's radius for the others.
    """
    space = check_options(G, space, sampling, epsilon)
    if n < 1:
        raise EvalError(f"PPL needs at least 1 pair, got {n}")
    z0, z1, c, t = sample_pairs(G, n, sampling, seed)
    kwargs = _synthesis_kwargs(G)
    mapping = has_mapping(G)
    radius = math.sqrt(G.z_dim) * (1.0 if mapping else truncation)
    dtype = next((p.dtype for p in G.parameters() if p.is_floating_point()), torch.float32)
    out = []
    for i in range(0, n, batch_size):
        cb = None if c is None else c[i:i + batch_size].to(device)
        if space == "w":
            ends = torch.cat([z0[i:i + batch_size], z1[i:i + batch_size]]).to(device)
            w = G.mapping(ends, None if cb is None else torch.cat([cb, cb]), truncation_psi=truncation)
            w0, w1 = w.chunk(2)
            tw = t[i:i + batch_size].to(device, w.dtype).view(-1, *([1] * (w.dim() - 1)))
            ws = torch.cat([w0 + (w1 - w0) * tw, w0 + (w1 - w0) * (tw + epsilon)])
            img = G.synthesis(ws, **kwargs)
        else:
            # float64 on the CPU (MPS has none): the two points differ by only ~epsilon
            a64, b64, t64 = (v[i:i + batch_size].double() for v in (z0, z1, t))
            zt = torch.cat([slerp_unit(a64, b64, t64), slerp_unit(a64, b64, t64 + epsilon)]) * radius
            zt = zt.to(device, dtype)
            cc = None if cb is None else torch.cat([cb, cb])
            img = G(zt, cc, truncation_psi=truncation, **kwargs) if mapping else G(zt, cc)
        x0, x1 = img.chunk(2)
        d = torch.as_tensor(distance_fn(x0, x1)).reshape(-1)
        if d.shape[0] != x0.shape[0]:
            raise EvalError(f"the PPL distance returned {d.shape[0]} values for {x0.shape[0]} image pairs")
        out.append((d.double() / epsilon ** 2).cpu())
    return torch.cat(out).numpy()


def trimmed_mean(lengths: np.ndarray) -> tuple[float, int]:
    """Mean of the lengths within the 1st..99th percentile (inclusive, as the official code) and their count."""
    lo = np.percentile(lengths, 1, method="lower")
    hi = np.percentile(lengths, 99, method="higher")
    kept = lengths[(lengths >= lo) & (lengths <= hi)]
    return float(kept.mean()), int(len(kept))


def perceptual_path_length(G, distance_fn: Distance, n: int = 2000, space: str | None = None,
                           sampling: str = "end", epsilon: float = 1e-4, batch_size: int = 100, seed: int = 0,
                           device: str | torch.device = "cpu", truncation: float = 1.0,
                           distance: str | None = None) -> dict:
    """PPL of ``G`` with ``distance_fn``: ``{value, n_kept, n, space, sampling, epsilon, distance}``.

    ``distance`` names the distance in the result (default: the callable's ``name`` attribute).
    """
    space = check_options(G, space, sampling, epsilon)
    lengths = path_lengths(G, distance_fn, n, space, sampling, epsilon, batch_size, seed, device, truncation)
    if not np.isfinite(lengths).all():
        raise EvalError("PPL: the distance gave non-finite values (does the generator output NaN?)")
    value, kept = trimmed_mean(lengths)
    return {"value": value, "n_kept": kept, "n": int(n), "space": space, "sampling": sampling,
            "epsilon": epsilon, "distance": distance or getattr(distance_fn, "name", "custom")}


class DigitFeatureDistance:
    """Squared L2 distance of the digit network's unit-normalised 128-d penultimate features.

    A stand-in for LPIPS on small gray images when no VGG16 weights are at hand: like LPIPS it compares
    unit-normalised deep features, but with one small network trained on MNIST, so its numbers are on
    their own scale.
    """

    name = "digit-features"

    def __init__(self, device: str | torch.device = "cpu"):
        from ganforge.metrics.digits import load_classifier

        self.net = load_classifier().to(device)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        f = F.normalize(self.net.features(torch.cat([x, y]).float()), dim=1)
        fx, fy = f.chunk(2)
        return (fx - fy).square().sum(1)


class LPIPSDistance:
    """LPIPS (VGG16) distance from :mod:`.lpips`, on float images in [-1, 1]."""

    name = "lpips-vgg16"

    def __init__(self, net: torch.nn.Module):
        self.net = net

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(x.float(), y.float()).reshape(-1)


def choose_distance(channels: int, resolution: int, vgg: str | None, device: str | torch.device = "cpu"):
    """``(distance_fn, None)`` for these images, or ``(None, why PPL is skipped)``.

    LPIPS when VGG16 weights are given (``vgg``) or found where :mod:`.lpips` looks for them; else the
    digit network's features for digit-like images; else nothing.
    """
    from ganforge.metrics.features import is_digit_like

    try:
        from ganforge.metrics import lpips
    except ImportError as e:
        if vgg is not None:
            raise EvalError(f"--vgg needs ganforge.metrics.lpips, which cannot be imported ({e})") from e
        lpips = None
    path = vgg if vgg is not None else (lpips.default_lpips_path() if lpips is not None else None)
    if path is not None:
        try:
            return LPIPSDistance(lpips.load_lpips(path, device=str(device))), None
        except EvalError:  # LPIPSWeightsError: a one-line message naming the file
            raise
        except (ValueError, OSError) as e:
            raise EvalError(f"cannot load the LPIPS weights {path}: {e}".replace("\n", " ")) from e
    if is_digit_like(channels, resolution):
        return DigitFeatureDistance(device), None
    return None, ("needs LPIPS: run `ganforge weights download vgg16-lpips` or pass --vgg PATH (VGG16 LPIPS "
                  "weights); without them only digit-like images "
                  "(1 channel, at most 32 px) are measured, with the digit network's features")
