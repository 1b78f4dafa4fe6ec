"""Sampling from a trained generator: seeded latents, classes, truncation and latent-space walks.

Truncation (psi < 1 trades variety for typical-looking images) happens where the model's prior is simple:
z-space generators scale the latent (``latents`` returns ``z * psi``); generators with a mapping network
(``G.supports_w_truncation``, StyleGAN2) pull w toward the average w instead (``generate`` calls
``G(z, c, truncation_psi=psi)``). Pass the same psi to both and every family gets it the right way.

StyleGAN2 generators also add per-pixel noise; sampling uses ``noise_mode='const'`` (the noise fixed in
the network) so that a seed always gives the same image. The official default, 'random', redraws it on
every call, which changes fine details (hair, pores) but not the image as a whole.
"""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from ganforge.errors import GenerateError
from ganforge.storage.images import (
    auto_upscale,
    check_output_dir,
    check_video_path,
    grid,
    save_image,
    save_video,
    to_pil,
    to_uint8,
)

MAX_SEED = 2**32 - 1  # torch's CPU generator keeps only a seed's low 32 bits: larger ones would repeat


def latents(G, n: int, seed: int, truncation: float = 1.0) -> torch.Tensor:
    """``n`` latents from seed ``seed``; the first k are the same whatever ``n`` is.

    Truncation for z-space generators pulls each latent toward the mean of its prior (zero): ``z * psi``.
    For w-space generators z is returned as drawn: pass psi to ``generate`` instead.
    """
    check_truncation(truncation)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise GenerateError(f"seed must be a whole number from 0 to {MAX_SEED} (torch keeps only a seed's low 32 "
                            f"bits, so larger ones would repeat smaller ones), got {str(seed)[:30]}")
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.z_dim, generator=g)
    return z if truncates_in_w(G) else z * truncation


def require_latent_generator(G) -> None:
    """Image-to-image generators (pix2pix, srresnet) take an image, not a latent: say what to run instead."""
    if getattr(G, "image_to_image", False):
        raise GenerateError("this run's generator turns images into images (an image-to-image family), so it has "
                            "no latents to sample: use `ganforge translate RUN INPUT... --out DIR`")


def truncates_in_w(G) -> bool:
    """Whether ``G`` truncates toward its average w itself (StyleGAN2) rather than through z."""
    return bool(getattr(G, "supports_w_truncation", False))


def check_truncation(truncation: float) -> None:
    if not 0.0 <= truncation <= 2.0:
        raise GenerateError(f"truncation must be between 0 and 2 (1 = off), got {truncation}")


def classes(G, n: int, class_index: int | None) -> torch.Tensor | None:
    """Class labels for ``n`` samples: all ``class_index``, or cycling through every class."""
    if not G.num_classes:
        if class_index is not None:
            raise GenerateError("this model is unconditional; --class needs a run of a conditional family "
                                "(cdcgan, cstylegan2) trained on labelled data")
        return None
    if class_index is None:
        return torch.arange(n) % G.num_classes
    if not 0 <= class_index < G.num_classes:
        raise GenerateError(f"class {class_index} is out of range: this model has classes 0..{G.num_classes - 1}")
    return torch.full((n,), class_index, dtype=torch.long)


CENTERS = ("global", "class")
CLASS_CENTER_SAMPLES = 2000  # latents averaged per class; the centre's own noise is then ~1/45 of w's spread


@torch.inference_mode()
def class_w_centers(G, n: int = CLASS_CENTER_SAMPLES, seed: int = 0) -> torch.Tensor:
    """Mean mapped w of each class of a conditional w-space generator: ``[num_classes, w_dim]``."""
    device = next(G.parameters()).device
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    return torch.stack([G.mapping(z, torch.full((n,), k, device=device), truncation_psi=1)[:, 0].mean(0)
                        for k in range(G.num_classes)])


@torch.inference_mode()
def generate(G, z: torch.Tensor, c: torch.Tensor | None = None, batch_size: int = 256, truncation: float = 1.0,
             noise_mode: str = "const", center: str = "global", centers: torch.Tensor | None = None) -> torch.Tensor:
    """Run ``G`` on latents in batches; returns float images in [-1, 1] on the CPU.

    ``truncation`` and ``noise_mode`` reach only generators that support them (see the module notes);
    z-space generators got their truncation from ``latents``. ``center="class"`` truncates a conditional
    w-space generator toward its class's mean w instead of the one average w that the official networks
    track over all classes (at low psi that average draws one class-less image for every label);
    ``centers`` passes those class means in when they are already known (``class_w_centers``).
    """
    require_latent_generator(G)
    check_truncation(truncation)
    if center not in CENTERS:
        raise GenerateError(f"truncation centre must be one of {', '.join(CENTERS)}, got '{center}'")
    kwargs = {}
    if truncates_in_w(G):
        kwargs["truncation_psi"] = truncation
    if getattr(G, "supports_noise_mode", False):
        kwargs["noise_mode"] = noise_mode
    per_class = center == "class" and truncates_in_w(G) and c is not None and truncation != 1
    if per_class and centers is None:
        centers = class_w_centers(G)
    device = next(G.parameters()).device
    out = []
    for i in range(0, z.shape[0], batch_size):
        zb, cb = z[i:i + batch_size].to(device), None if c is None else c[i:i + batch_size].to(device)
        if per_class:
            mid = centers[cb][:, None]
            ws = mid + truncation * (G.mapping(zb, cb, truncation_psi=1) - mid)
            out.append(G.synthesis(ws, noise_mode=noise_mode).float().cpu())
        else:
            out.append(G(zb, cb, **kwargs).float().cpu())
    return torch.cat(out) if out else torch.empty(0, *G.img_shape)


def sample(G, n: int, seed: int = 0, class_index: int | None = None, truncation: float = 1.0,
           batch_size: int = 256, center: str = "global") -> torch.Tensor:
    return generate(G, latents(G, n, seed, truncation), classes(G, n, class_index), batch_size, truncation,
                    center=center)


def truncation_sweep(G, n: int, psis: list[float], seed: int = 0, class_index: int | None = None,
                     batch_size: int = 256, center: str = "global") -> torch.Tensor:
    """The same ``n`` seeds (and classes) at every psi in ``psis``: ``[n, len(psis), C, H, W]``.

    Row i is one latent pulled from itself (psi 1) toward the average (psi 0) in the paper's figure; for
    z-space generators psi scales z instead (see the module notes).
    """
    if not psis:
        raise GenerateError("a truncation sweep needs at least one psi")
    for psi in psis:
        check_truncation(psi)
    z, c = latents(G, n, seed), classes(G, n, class_index)
    # the class means do not depend on psi: estimate them once for the whole sweep
    centers = class_w_centers(G) if center == "class" and truncates_in_w(G) and c is not None else None
    rows = [generate(G, z if truncates_in_w(G) else z * psi, c, batch_size, psi, center=center, centers=centers)
            for psi in psis]
    return torch.stack(rows, dim=1)


def write_pngs(images: torch.Tensor, out_dir: str | Path, prefix: str = "sample") -> list[Path]:
    out_dir = check_output_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, arr in enumerate(to_uint8(images)):
        p = out_dir / f"{prefix}-{i:05d}.png"
        save_image(to_pil(arr), p)
        paths.append(p)
    return paths


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between latent rows ``a`` and ``b`` (falls back to lerp when parallel)."""
    an, bn = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((an * bn).sum(-1, keepdim=True).clamp(-1, 1))
    so = torch.sin(omega)
    lerp = (1 - t) * a + t * b
    out = (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b
    return torch.where(so.abs() < 1e-6, lerp, out)


def check_walk(keys: int, steps: int) -> None:
    if keys < 2 or steps < 1:
        raise GenerateError("an interpolation needs at least 2 key points and 1 step between them")


def render_walk(imgs: torch.Tensor, out: str | Path, fps: int) -> Path:
    """Frames of ``n`` walks side by side ([frames, n, C, H, W] in [-1, 1]) to a GIF/MP4."""
    n, res = imgs.shape[1], imgs.shape[-1]
    up = auto_upscale(res, 128)
    frames: list[Image.Image] = [grid(f, nrow=n, pad=0 if n == 1 else 2, upscale=up) for f in imgs]
    return save_video(frames, out, fps=fps)


def interpolation_latents(G, keys: int, steps: int, seed: int, truncation: float = 1.0) -> torch.Tensor:
    """A closed loop through ``keys`` seeded key latents with ``steps`` frames between each pair."""
    require_latent_generator(G)
    check_walk(keys, steps)
    k = latents(G, keys, seed, truncation)
    frames = [slerp(k[i], k[(i + 1) % keys], s / steps) for i in range(keys) for s in range(steps)]
    return torch.stack(frames)


def interpolate(G, out: str | Path, keys: int = 4, steps: int = 24, seed: int = 0, class_index: int | None = None,
                truncation: float = 1.0, n: int = 1, fps: int = 20) -> Path:
    """Render a looping latent walk to a GIF/MP4; ``n`` > 1 shows n independent walks side by side."""
    check_video_path(out, fps)
    walks = [interpolation_latents(G, keys, steps, seed + j, truncation) for j in range(n)]
    z = torch.stack(walks, dim=1).reshape(-1, G.z_dim)  # frame-major: n images per frame
    c = classes(G, z.shape[0], class_index)
    if c is not None and class_index is None:
        c = (torch.arange(z.shape[0]) % n) % G.num_classes
    return render_walk(generate(G, z, c, truncation=truncation).view(-1, n, *G.img_shape), out, fps)
