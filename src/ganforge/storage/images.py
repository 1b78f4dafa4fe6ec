"""Turning image tensors into files a person can look at: PNGs, grids and animated GIFs."""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganforge.errors import OutputPathError, require
from ganforge.storage.atomic import atomic_path, atomic_write_with

VIDEO_SUFFIXES = (".gif", ".mp4")


MAX_GIF_FPS = 50  # GIF frame times are in hundredths of a second, and browsers slow frames shorter than 0.02 s


def check_video_path(path: str | Path, fps: int | None = None) -> Path:
    """Fail before rendering, not after: the suffix must be .gif, or .mp4 with imageio-ffmpeg installed."""
    path = check_output_file(path)  # a folder of that name, or a file above it: said as such
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise OutputPathError(f"unsupported video format '{suffix}' for {path}: use .gif or .mp4")
    if suffix == ".gif" and fps is not None and fps > MAX_GIF_FPS:
        raise OutputPathError(f"a GIF plays at most {MAX_GIF_FPS} frames per second (browsers slow faster ones "
                              f"down), got --fps {fps}: give --fps {MAX_GIF_FPS} or less, or write .mp4")
    if suffix == ".mp4":
        # Both: imageio alone (scikit-image installs it) has no MP4 writer and would fail after rendering.
        for module in ("imageio", "imageio_ffmpeg"):
            require(module, f"writing {path.name}", "pip install imageio imageio-ffmpeg (ganforge's 'video' "
                                                     "extra); or write a .gif")
    return path


def _check_parents(path: Path) -> None:
    """The nearest existing folder above ``path`` must be a folder, not a file (mkdir would fail late)."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputPathError(f"{parent} is a file, so {path} cannot be made: choose another path")
            if not os.access(parent, os.W_OK | os.X_OK):  # read-only file system or no permission
                raise OutputPathError(f"cannot write in {parent} (read-only or not yours), so {path} cannot be "
                                      "made: choose another path")
            return


def check_output_file(path: str | Path) -> Path:
    """An output file's name must not be a folder's, nor lie below a file (it would fail after all the work)."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{path} is a folder; pass a file name for the output")
    _check_parents(path)
    return path


def check_image_path(path: str | Path) -> Path:
    """The suffix must be an image format Pillow writes (.png, .jpg, .webp, ...)."""
    path = check_output_file(path)
    if path.suffix.lower() not in Image.registered_extensions():
        raise OutputPathError(f"cannot tell the image format of {path} from '{path.suffix}': use .png or .jpg")
    return path


def check_output_dir(path: str | Path, what: str = "the output images") -> Path:
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{path} is a file; pass a folder for {what}")
    _check_parents(path)
    return path


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] float images [B, C, H, W] -> uint8 array [B, H, W, C]."""
    x = ((images.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def to_pil(image_hwc: np.ndarray) -> Image.Image:
    return Image.fromarray(image_hwc[..., 0] if image_hwc.shape[-1] == 1 else image_hwc)


def grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2, upscale: int = 1) -> Image.Image:
    """Tile images in rows of ``nrow`` (default: square-ish) with a ``pad``-pixel dark border."""
    arr = to_uint8(images)
    b, h, w, c = arr.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(b)))
    ncol = math.ceil(b / nrow)
    canvas = np.full((ncol * (h + pad) + pad, nrow * (w + pad) + pad, c), 32, np.uint8)
    for i in range(b):
        y, x = divmod(i, nrow)
        canvas[pad + y * (h + pad): pad + y * (h + pad) + h, pad + x * (w + pad): pad + x * (w + pad) + w] = arr[i]
    img = to_pil(canvas)
    if upscale > 1:
        img = img.resize((img.width * upscale, img.height * upscale), Image.NEAREST)
    return img


def save_image(image: Image.Image, path: str | Path) -> Path:
    """Write a picture atomically, in the format its suffix names (.png, .jpg, ...)."""
    path = check_image_path(path)
    fmt = Image.registered_extensions()[path.suffix.lower()]
    if fmt == "JPEG" and image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    atomic_write_with(path, lambda f: image.save(f, format=fmt))
    return path


def auto_upscale(resolution: int, target: int = 64) -> int:
    """Integer factor that makes tiny images (8 or 28 px) visible in grids."""
    return max(1, target // resolution)


def save_gif(frames: Sequence[Image.Image], path: str | Path, ms_per_frame: int = 100, loop: bool = True,
             hold_last_ms: int | None = None) -> Path:
    """Animated GIF; ``hold_last_ms`` shows the final frame longer. Pillow merges identical
    consecutive frames, so a GIF may hold fewer frames than given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [f.convert("RGB") if f.mode not in ("L", "RGB", "P") else f for f in frames]
    durations = [ms_per_frame] * len(frames)
    if hold_last_ms is not None:
        durations[-1] = hold_last_ms
    atomic_write_with(path, lambda f: frames[0].save(f, format="GIF", save_all=True, append_images=list(frames[1:]),
                                                     duration=durations, loop=0 if loop else 1, optimize=False))
    return path


def save_video(frames: Sequence[Image.Image], path: str | Path, fps: int = 20) -> Path:
    """GIF via Pillow; MP4 via imageio-ffmpeg when it is installed."""
    path = check_video_path(path, fps)
    if path.suffix.lower() == ".gif":
        return save_gif(frames, path, ms_per_frame=round(1000 / fps))
    import imageio.v2 as imageio

    with atomic_path(path) as tmp, imageio.get_writer(tmp, fps=fps, macro_block_size=1) as writer:
        for f in frames:
            writer.append_data(np.asarray(f.convert("RGB")))
    return path
