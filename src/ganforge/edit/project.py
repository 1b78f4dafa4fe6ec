"""Projecting a real image into a StyleGAN2 generator's w space (the StyleGAN2 paper's projector).

:func:`project` looks for the single w (used by every synthesis layer) and the per-layer noise maps that
make ``G.synthesis`` reproduce a target image. It starts from the average w, adds decaying Gaussian noise
to w early on (to explore), follows a warm-up / cosine learning-rate ramp with Adam, keeps the noise maps
normalised and penalises spatial autocorrelation in them so they cannot encode the image themselves.

The distance is LPIPS (:mod:`ganforge.metrics.lpips`, VGG16) when weights are given, else the run's own
discriminator: the unit-normalised outputs of its blocks, compared like LPIPS taps. The caller's networks
are never changed: the projector works on copies.

:func:`load_target` reads the photo, :func:`save_projection` writes ``projected_w.npz`` (as the official
projector does), PNGs and a video of the optimisation.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ganforge.errors import StyleGANError
from ganforge.generate.stylegan import require_stylegan, synthesize
from ganforge.metrics.lpips import LPIPS, normalize_channels
from ganforge.storage.atomic import atomic_write_with
from ganforge.storage.images import auto_upscale, check_output_dir, grid, save_image, save_video, to_pil, to_uint8

MAX_VIDEO_FRAMES = 120
Progress = Callable[[int, int, float], None]  # (steps done, total steps, this step's distance)


class ProjectionResult(NamedTuple):
    w: torch.Tensor  # [1, num_ws, w_dim]: the optimised w, repeated for every layer
    w_steps: torch.Tensor  # [steps, w_dim]: w after each step
    image: torch.Tensor  # [C, H, W] in [-1, 1]: the final w rendered with the optimised noise
    distances: list[float]  # the distance at each step (before that step's update)
    feature_space: str  # 'lpips' or 'discriminator'
    final_distance: float  # distance between ``image`` and the target
    generator: nn.Module  # the generator copy holding the optimised noise maps (renders ``w_steps``)


class SavedProjection(NamedTuple):
    w: Path
    projection: Path
    target: Path
    compare: Path
    video: Path | None


class DiscriminatorFeatures(nn.Module):
    """A discriminator's block outputs as a perceptual space: ``features(x)`` and ``distance_features``
    with LPIPS's reductions (unit length across channels, mean over channels and space, sum over blocks)."""

    def __init__(self, D: nn.Module):
        super().__init__()
        if not hasattr(D, "block_resolutions"):
            raise StyleGANError("projecting with discriminator features needs a StyleGAN2 discriminator "
                                "(blocks b{res}); pass LPIPS weights instead")
        self.D = copy.deepcopy(D).eval().requires_grad_(False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, h, img = [], None, x
        for res in self.D.block_resolutions:
            h, img = getattr(self.D, f"b{res}")(h, img)
            out.append(normalize_channels(h))
        return out

    def distance_features(self, fx: list[torch.Tensor], fy: list[torch.Tensor]) -> torch.Tensor:
        return sum((a - b).square().mean(dim=(1, 2, 3)) for a, b in zip(fx, fy))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.distance_features(self.features(x), self.features(y))


# ----------------------------------------------------------------- helpers
def _img_shape(G) -> tuple[int, int, int]:
    shape = getattr(G, "img_shape", None)
    return tuple(shape) if shape is not None else (G.img_channels, G.img_resolution, G.img_resolution)


def _num_classes(G) -> int:
    return int(getattr(G, "num_classes", None) or getattr(G, "c_dim", 0) or 0)


def _class_label(G, class_index: int | None) -> int | None:
    n = _num_classes(G)
    if n == 0:
        if class_index is not None:
            raise StyleGANError("this model is unconditional: drop --class (class_index)")
        return None
    if class_index is None:
        raise StyleGANError(f"this model is class-conditional: pass the target's class with --class N "
                            f"(class_index, 0..{n - 1})")
    if not 0 <= int(class_index) < n:
        raise StyleGANError(f"class {class_index} is out of range: this model has classes 0..{n - 1}")
    return int(class_index)


def _check_target(G, target: torch.Tensor) -> torch.Tensor:
    if not isinstance(target, torch.Tensor):
        raise StyleGANError("the target must be an image tensor [C, H, W] in [-1, 1] (see load_target)")
    want = _img_shape(G)
    t = target[0] if target.dim() == 4 and target.shape[0] == 1 else target
    if tuple(t.shape) != want:
        raise StyleGANError(f"the target has shape {list(target.shape)} but the generator draws {list(want)} "
                            f"images: load it with load_target(path, {want[0]}, {want[1]})")
    return t.detach().clone().float()


def _w_stats(G, n: int, label: int | None, gen: torch.Generator, device) -> tuple[torch.Tensor, float]:
    """Mean w ``[1, w_dim]`` over ``n`` mapped z's (of class ``label``) and the root mean squared distance
    of those w's to it."""
    ws = []
    for i in range(0, n, 1000):
        b = min(1000, n - i)
        z = torch.randn(b, G.z_dim, generator=gen).to(device)
        c = None if label is None else torch.full((b,), label, dtype=torch.long, device=device)
        ws.append(G.mapping(z, c, skip_w_avg_update=True)[:, 0].float())
    ws = torch.cat(ws)
    w_avg = ws.mean(dim=0, keepdim=True)
    w_std = float((ws - w_avg).square().sum(dim=1).mean().sqrt())
    return w_avg, w_std


def noise_regularizer(noises: list[torch.Tensor]) -> torch.Tensor:
    """Squared autocorrelation at a one-pixel shift (x and y) of each noise map and its 2x average-pooled
    versions down to 8x8: small when the maps hold no spatial structure."""
    reg = 0.0
    for n in noises:
        n = n[None, None]
        while True:
            reg = reg + (n * torch.roll(n, shifts=1, dims=3)).mean().square()
            reg = reg + (n * torch.roll(n, shifts=1, dims=2)).mean().square()
            if n.shape[2] <= 8:
                break
            n = F.avg_pool2d(n, kernel_size=2)
    return reg


def learning_rate(t: float, initial_lr: float, lr_rampdown: float, lr_rampup: float) -> float:
    """The projector's schedule at progress ``t`` in [0, 1): linear warm-up, cosine ramp-down at the end."""
    ramp = min(1.0, (1.0 - t) / lr_rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp = ramp * min(1.0, t / lr_rampup)
    return initial_lr * ramp


# ----------------------------------------------------------------- the projector
def project(G, target: torch.Tensor, *, D=None, lpips: LPIPS | None = None, steps: int = 1000, seed: int = 0,
            class_index: int | None = None, w_avg_samples: int = 10000, initial_lr: float = 0.1,
            lr_rampdown: float = 0.25, lr_rampup: float = 0.05, initial_noise_factor: float = 0.05,
            noise_ramp: float = 0.75, noise_regularize: float = 1e5,
            progress: Progress | None = None) -> ProjectionResult:
    """Find the w (and noise maps) that make ``G`` draw ``target`` ([C, H, W] in [-1, 1]).

    The distance is LPIPS when ``lpips`` is given, else ``D``'s block features. ``progress(step, steps,
    distance)`` is called after every step. Random draws (z's for the average w, initial noise maps, w
    noise) come from ``seed``; the global RNG is not touched. ``G`` and ``D`` are not modified.
    """
    require_stylegan(G, None, "projection")
    if steps < 1:
        raise StyleGANError(f"projection needs at least 1 step, got {steps}")
    if w_avg_samples < 2:
        raise StyleGANError(f"estimating the average w needs at least 2 samples, got {w_avg_samples}")
    label = _class_label(G, class_index)
    target = _check_target(G, target)
    if lpips is not None:
        space, metric = "lpips", lpips
    elif D is not None:
        space, metric = "discriminator", DiscriminatorFeatures(D)
    else:
        raise StyleGANError("projection needs a distance: VGG16 LPIPS weights (--vgg PATH; `ganforge weights "
                            "download vgg16-lpips` fetches them) or a run with a trained discriminator")

    with torch.inference_mode(False), torch.enable_grad():
        G = copy.deepcopy(G).eval().requires_grad_(False)
        device = next(G.parameters()).device
        if space == "discriminator":
            metric = metric.to(device)
        elif next(metric.trunk.parameters()).device != device:  # leave the caller's LPIPS where it is
            metric = copy.deepcopy(metric).to(device)
        gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            w_avg, w_std = _w_stats(G, int(w_avg_samples), label, gen, device)
            target_features = [f.detach() for f in metric.features(target[None].to(device))]

        noises = [buf for name, buf in G.synthesis.named_buffers() if name.endswith("noise_const")]
        with torch.no_grad():
            for buf in noises:
                buf.copy_(torch.randn(buf.shape, generator=gen).to(device))
        for buf in noises:
            buf.requires_grad_(True)
        w_opt = w_avg.clone().requires_grad_(True)  # [1, w_dim]
        optimizer = torch.optim.Adam([w_opt] + noises, betas=(0.9, 0.999), lr=initial_lr)
        w_steps = torch.zeros(steps, G.w_dim, device=device)
        distances: list[float] = []

        for step in range(steps):
            t = step / steps
            noise_scale = w_std * initial_noise_factor * max(0.0, 1.0 - t / noise_ramp) ** 2
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(t, initial_lr, lr_rampdown, lr_rampup)
            w_noise = torch.randn(w_opt.shape, generator=gen).to(device) * noise_scale
            ws = (w_opt + w_noise)[:, None].repeat(1, G.num_ws, 1)
            synth = G.synthesis(ws, noise_mode="const")
            dist = metric.distance_features(metric.features(synth), target_features).sum()
            loss = dist + noise_regularizer(noises) * noise_regularize
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            w_steps[step] = w_opt.detach()[0]
            with torch.no_grad():  # keep the noise maps zero-mean and unit-variance
                for buf in noises:
                    buf -= buf.mean()
                    buf *= buf.square().mean().rsqrt()
            distances.append(float(dist.detach()))
            if progress is not None:
                progress(step + 1, steps, distances[-1])

        for buf in noises:
            buf.requires_grad_(False)
        w = w_steps[-1:, None].repeat(1, G.num_ws, 1)
        with torch.no_grad():
            image = G.synthesis(w, noise_mode="const")
            final = float(metric.distance_features(metric.features(image), target_features).sum())
    return ProjectionResult(w.cpu(), w_steps.cpu(), image[0].float().cpu(), distances, space, final, G)


# ----------------------------------------------------------------- files
def load_target(path: str | Path, channels: int, resolution: int) -> torch.Tensor:
    """A photo as the generator's target: centre-cropped to a square, Lanczos-resized, gray or RGB as
    ``channels`` says; ``[C, H, W]`` float in [-1, 1]."""
    from ganforge.data.images import decode, describe_error, prepare

    p = Path(path)
    if p.is_dir():
        raise StyleGANError(f"{p} is a folder: pass one image file (.png, .jpg, ...) to project")
    if not p.is_file():
        raise StyleGANError(f"{p} not found: pass an image file (.png, .jpg, ...) to project")
    if channels not in (1, 3):
        raise StyleGANError(f"this generator draws {channels}-channel images; a photo gives gray or RGB, so only "
                            "networks with 1 or 3 channels can be projected onto")
    try:
        img, _ = decode(str(p), channels)
        arr = prepare(img, "center-crop", resolution)
    except Exception as e:  # any decode failure of a user's file: one line, not a traceback
        raise StyleGANError(f"cannot read {p} as an image ({describe_error(e)})") from e
    return torch.tensor(arr, dtype=torch.float32) / 127.5 - 1


def _mp4_available() -> bool:
    """imageio and its ffmpeg plugin are both installed (``save_video`` needs them for .mp4)."""
    from importlib.util import find_spec

    return find_spec("imageio") is not None and find_spec("imageio_ffmpeg") is not None


def video_frames(result: ProjectionResult, limit: int = MAX_VIDEO_FRAMES) -> list[int]:
    """The steps a video shows: at most ``limit``, evenly spread, always including the last one."""
    n = result.w_steps.shape[0]
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, min(n, limit))})


def save_projection(result: ProjectionResult, target: torch.Tensor, out_dir: str | Path, video: bool = True,
                    fps: int = 10) -> SavedProjection:
    """Write ``projected_w.npz`` (key ``w``, float32 ``[1, num_ws, w_dim]``), ``proj.png``, ``target.png``,
    ``compare.png`` (target | projection) and, with ``video``, ``proj.mp4`` (``proj.gif`` without
    imageio-ffmpeg): target | image at each shown step, at most 120 frames."""
    out = check_output_dir(out_dir)
    target = target[0] if target.dim() == 4 else target
    target = target.detach().float().cpu()
    video_path = (out / "proj.mp4" if _mp4_available() else out / "proj.gif") if video else None
    out.mkdir(parents=True, exist_ok=True)
    paths = SavedProjection(out / "projected_w.npz", out / "proj.png", out / "target.png", out / "compare.png",
                            video_path)
    w = result.w.detach().cpu().numpy().astype(np.float32)
    atomic_write_with(paths.w, lambda f: np.savez(f, w=w))
    save_image(to_pil(to_uint8(result.image[None])[0]), paths.projection)
    save_image(to_pil(to_uint8(target[None])[0]), paths.target)
    pair = torch.stack([target, result.image])
    save_image(grid(pair, nrow=2, upscale=auto_upscale(pair.shape[-1])), paths.compare)
    if video_path is not None:
        G = result.generator
        idx = video_frames(result)
        w = result.w_steps[idx].to(next(G.parameters()).device)
        imgs = synthesize(G, w[:, None].repeat(1, G.num_ws, 1), noise_mode="const")
        up = auto_upscale(imgs.shape[-1], 128)
        frames = [grid(torch.stack([target, img]), nrow=2, upscale=up) for img in imgs]
        save_video(frames, video_path, fps=fps)
    return paths
