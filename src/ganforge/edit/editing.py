"""Applying an editing direction: move a latent along it by a range of strengths and render the strip.

A strength is in units of the direction's standard deviation (the spread of sampled latents along it,
stored in the directions file), so ``-3:3:7`` walks from three standard deviations below the image's own
latent to three above whatever the direction. z-space directions move z (a StyleGAN2 run then maps the
moved z); w-space directions move w only in the chosen layers (default: the layers they were found
for), which keeps, say, the coarse shape while the strokes thicken. ``w`` edits a latent that
``ganforge project`` found for a real photo (its ``projected_w.npz``).
"""
from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ganforge.edit.directions import (
    Directions,
    resolve_layers,
    seed_classes,
    seed_z,
)
from ganforge.errors import GenerateError, StyleGANError
from ganforge.generate.sampling import generate
from ganforge.generate.stylegan import map_to_w, require_stylegan, synthesize
from ganforge.storage.images import VIDEO_SUFFIXES, auto_upscale, check_image_path, check_video_path, grid, save_image
from ganforge.storage.images import save_video as write_video

STRENGTH_HELP = "START:STOP:COUNT (e.g. -3:3:7), a comma list (-2,0,2) or one number"


MAX_STRENGTHS = 256  # frames of one strip: each is a generator pass, and all are held in memory


def parse_strengths(text: str) -> list[float]:
    """``-3:3:7`` (COUNT evenly spaced values from START to STOP), ``-2,0,2`` or ``1.5``."""
    text = str(text).strip()
    try:
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise ValueError
            lo, hi, count = float(parts[0]), float(parts[1]), int(parts[2])
            if count < 1:
                raise ValueError
            # checked before linspace, which would allocate them all (and outside the ValueError net below)
            values = None if count > MAX_STRENGTHS else np.linspace(lo, hi, count).tolist()
        else:
            values = [float(v) for v in text.split(",")]
    except ValueError:
        raise GenerateError(f"strength must be {STRENGTH_HELP}, got '{text}'") from None
    if values is None:
        raise GenerateError(f"strength '{text}' asks for {count} frames: at most {MAX_STRENGTHS} per strip, give "
                            "a smaller COUNT")
    if not values or not all(np.isfinite(values)):
        raise GenerateError(f"strength must be {STRENGTH_HELP}, got '{text}'")
    if len(values) > MAX_STRENGTHS:
        raise GenerateError(f"strength lists {len(values)} values: at most {MAX_STRENGTHS} frames per strip")
    return [round(v, 10) for v in values]


def edit_latent(latent: torch.Tensor, direction: torch.Tensor, strengths: Sequence[float], std: float = 1.0,
                layers: Sequence[int] | None = None) -> torch.Tensor:
    """``latent`` moved by ``strength * std`` along ``direction`` for each strength: ``[S, *latent.shape]``.

    ``latent`` is a z ``[z_dim]`` or per-layer ws ``[num_ws, w_dim]``; for ws only ``layers`` move (all
    of them when None)."""
    s = torch.as_tensor(list(strengths), dtype=torch.float32, device=latent.device)
    step = direction.to(latent.device, torch.float32) * float(std)
    out = latent.float().unsqueeze(0).repeat(len(s), *([1] * latent.dim()))
    if latent.dim() == 1:
        return out + s[:, None] * step
    rows = list(range(latent.shape[0])) if layers is None else list(layers)
    out[:, rows] += s[:, None, None] * step
    return out


def _is_npy(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(6) == b"\x93NUMPY"


def load_projected_w(path: str | Path, G) -> torch.Tensor:
    """The ``[num_ws, w_dim]`` w of a ``projected_w.npz`` (``ganforge project``), checked against ``G``."""
    path = Path(path)
    if not path.is_file():
        raise StyleGANError(f"{path} not found: pass the projected_w.npz that `ganforge project` wrote")
    if not zipfile.is_zipfile(path) and not _is_npy(path):
        # else numpy takes it for a pickle, and its refusal suggests loading it unsafely
        raise StyleGANError(f"{path} is not an .npz archive: pass the projected_w.npz that `ganforge project` wrote")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):  # a bare .npy array, not an .npz archive
            raise StyleGANError(f"{path} is a single array, not the projected_w.npz (with a 'w' array) that "
                                "`ganforge project` writes")
        with loaded as f:
            if "w" not in f.files:
                raise StyleGANError(f"{path} holds no 'w' array (it has {', '.join(f.files) or 'nothing'}): pass "
                                    "the projected_w.npz that `ganforge project` wrote")
            w = np.asarray(f["w"], dtype=np.float32)
    except StyleGANError:
        raise
    except Exception as e:  # a damaged or foreign file: one line
        raise StyleGANError(f"cannot read {path} as a projected w ({type(e).__name__}: {e})") from e
    if not np.isfinite(w).all():
        raise StyleGANError(f"{path} holds NaN or infinite values: project the photo again")
    want = (G.num_ws, G.w_dim)
    ok = w.shape in ((1, *want), want) or (w.ndim in (1, 2) and w.shape[-1] == G.w_dim and w.size == G.w_dim)
    if not ok:
        raise StyleGANError(f"{path} holds a w of shape {list(w.shape)} but this network needs [1, {want[0]}, "
                            f"{want[1]}] (num_ws x w_dim): project the photo with this run (`ganforge project "
                            f"PHOTO --run RUN`)")
    w = torch.from_numpy(w).reshape(-1, G.w_dim)
    return w.expand(G.num_ws, -1).clone() if w.shape[0] == 1 else w


def edit_images(G, dirs: Directions, name: str, seed: int = 0, strengths: Sequence[float] = (-3, -2, -1, 0, 1, 2, 3),
                layers: str | Sequence[int] | None = None, w: torch.Tensor | None = None,
                class_index: int | None = None, batch_size: int = 64, family: str | None = None) -> torch.Tensor:
    """The images of seed ``seed`` (or of the projected ``w``) edited along direction ``name`` at each
    strength: ``[S, C, H, W]`` in [-1, 1]. A conditional network draws class ``class_index`` (default, as
    when the directions were found: ``seed mod num_classes``)."""
    direction, std = dirs.vector(name), dirs.std_of(name)
    if dirs.space == "z":
        if w is not None:
            raise StyleGANError(f"a projected w is edited in w space, but '{name}' is a z-space direction: find "
                                "directions with `ganforge directions RUN --space w`")
        resolve_layers(G, "z", layers, family)
        z = seed_z(G, [seed])[0]
        zs = edit_latent(z, direction, strengths, std)
        c = seed_classes(G, [seed] * len(zs), class_index)
        return generate(G, zs, c, batch_size=batch_size)
    require_stylegan(G, family, "editing in w space")
    rows = dirs.layers if layers is None else resolve_layers(G, "w", layers, family)
    if w is None:
        w = map_to_w(G, seed_z(G, [seed]), seed_classes(G, [seed], class_index))[0].cpu()
    ws = edit_latent(w.cpu(), direction, strengths, std, rows)
    return synthesize(G, ws.to(next(G.parameters()).device), batch_size=batch_size)


def check_strip_path(out: str | Path, fps: int | None = None) -> Path:
    """An edit strip is a picture (.png, .jpg, .webp, ...) or an animation (.gif, .mp4)."""
    from PIL import Image

    from ganforge.errors import OutputPathError

    out = Path(out)
    if out.suffix.lower() in VIDEO_SUFFIXES:
        return check_video_path(out, fps)
    if out.suffix.lower() not in Image.registered_extensions():
        raise OutputPathError(f"cannot tell the format of {out} from '{out.suffix}': use .png or .jpg for a strip, "
                              ".gif or .mp4 for an animation")
    return check_image_path(out)


def render_strip(G, dirs: Directions, name: str, seed: int = 0,
                 strengths: Sequence[float] = (-3, -2, -1, 0, 1, 2, 3), layers: str | Sequence[int] | None = None,
                 w: torch.Tensor | None = None, class_index: int | None = None, out: str | Path | None = None,
                 fps: int = 4, family: str | None = None) -> torch.Tensor:
    """:func:`edit_images`, written to ``out``: a PNG (or JPG) strip, one image per strength from left to
    right, or a GIF/MP4 with one frame per strength. Returns the images ``[S, C, H, W]``."""
    if out is not None:
        check_strip_path(out, fps)
    images = edit_images(G, dirs, name, seed, strengths, layers, w, class_index, family=family)
    if out is not None:
        up = auto_upscale(images.shape[-1], 64)
        if Path(out).suffix.lower() in VIDEO_SUFFIXES:
            write_video([grid(img[None], nrow=1, pad=0, upscale=up) for img in images], out, fps=fps)
        else:
            save_image(grid(images, nrow=len(images), upscale=up), out)
    return images
