"""Running a translation run on images of any size: tiles with overlap and blended seams.

Both families are fully convolutional, so an image is cut into ``tile`` x ``tile`` input tiles that overlap by
``overlap`` pixels; each tile's output is weighted by a ramp that falls to zero toward the tile's inner edges
across the overlap (zero on its outer quarter, rising over its middle half), and the weighted outputs are
summed and divided by the summed weights. A pixel far from every seam comes from one tile alone; a pixel in an
overlap is the blend of tiles that each had at least a quarter of the overlap of context around it, so when the
generator's reach is within that, srresnet's tiled output (no normalisation) equals the untiled one.
pix2pix's instance norm takes statistics per tile, so its tiles agree only approximately: the ramps hide the
seams. The networks never see more than one tile, so their memory does not grow with the image;
only the output and its weight sum (one float per output pixel) do.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganforge.config import RunConfig
from ganforge.data.core import IMAGE_EXTENSIONS
from ganforge.data.images import first_frame, flatten, is_gray_mode
from ganforge.errors import ConfigError, DataError, GenerateError
from ganforge.storage.images import save_image, to_uint8
from ganforge.translate.data import Task, inpaint_input, rgb_to_lab, to_float
from ganforge.translate.train import TRANSLATION_FAMILIES, comparison, task_of

MAX_GRID_ROWS = 16
GRID_HEIGHT = 128  # each comparison row is scaled to this height


def starts(length: int, tile: int, step: int) -> list[int]:
    """Tile offsets along one axis: every ``step`` pixels, the last one flush with the end."""
    if length <= tile:
        return [0]
    out = list(range(0, length - tile, step))
    return out + [length - tile]


def ramp(length: int, margin: int, fade: int, lead: bool, trail: bool) -> torch.Tensor:
    """1-D tile weights: zero for ``margin`` pixels at a seam side (the pixels that lack context there), then
    rising to 1 over ``fade`` pixels; 1 at a side that is the image's own edge."""
    i = torch.arange(length, dtype=torch.float32) + 0.5
    w = torch.ones(length)
    if lead:
        w = torch.minimum(w, ((i - margin) / max(fade, 1)).clamp(0, 1))
    if trail:
        w = torch.minimum(w, ((length - i - margin) / max(fade, 1)).clamp(0, 1))
    return w


@torch.no_grad()
def tiled(G: Callable[[torch.Tensor], torch.Tensor], a: torch.Tensor, scale: int, tile: int = 256,
          overlap: int = 32, progress: bool = False) -> torch.Tensor:
    """``G(a)`` for one image ``a`` [1, C, H, W] computed tile by tile (see the module notes)."""
    if overlap >= tile:
        raise ConfigError(f"--overlap ({overlap}) must be smaller than --tile ({tile})")
    h, w = a.shape[-2:]
    if h <= tile and w <= tile:
        return G(a)
    ys, xs = starts(h, tile, tile - overlap), starts(w, tile, tile - overlap)
    # Neighbours share >= overlap pixels: each ignores the outer quarter of it and blends over the middle half.
    margin, fade = overlap // 4, max(1, overlap // 2)
    boxes = [(y, x) for y in ys for x in xs]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(boxes), unit="tile", leave=False, dynamic_ncols=True)
    out = weight = None
    try:
        for y, x in boxes:
            th, tw = min(tile, h - y), min(tile, w - x)
            o = G(a[..., y:y + th, x:x + tw]).float().cpu()
            if out is None:
                out = torch.zeros(1, o.shape[1], h * scale, w * scale)
                weight = torch.zeros(1, 1, h * scale, w * scale)
            wy = ramp(th * scale, margin * scale, fade * scale, y > 0, y + th < h)
            wx = ramp(tw * scale, margin * scale, fade * scale, x > 0, x + tw < w)
            wt = (wy[:, None] * wx[None, :])[None, None]
            sy, sx = slice(y * scale, (y + th) * scale), slice(x * scale, (x + tw) * scale)
            out[..., sy, sx] += o * wt
            weight[..., sy, sx] += wt
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return out.div_(weight.clamp_min_(1e-8))  # in place: the output is the one image-sized buffer kept


def load_translator(run: str | Path, device: str = "cpu", task: str | None = None):
    """(config, task, G in eval mode) of a translation run; a clear error for other runs or the wrong task."""
    from ganforge.generate.runs import load_run
    from ganforge.storage.checkpoint import resolve

    ckpt = resolve(run)
    cfg = RunConfig.load(ckpt.parent)
    if cfg.model.family not in TRANSLATION_FAMILIES:
        raise GenerateError(f"{run} is a {cfg.model.family} run, not an image-to-image one "
                            f"({', '.join(TRANSLATION_FAMILIES)}): sample it with ganforge generate")
    t = task_of(cfg)
    if task is not None and task != t.name:
        raise GenerateError(f"{run} was trained for {t.describe()}, not {task}: use a run trained for {task} "
                            f"(ganforge train --family pix2pix --task {task} ...)")
    _, G, _ = load_run(ckpt, device)
    return cfg, t, G


def image_files(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """The image files named or inside the folders named (sorted, not recursive), and notes on the rest."""
    files, notes = [], []
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_dir():
            found = [f for f in sorted(p.iterdir()) if f.is_file() and not f.name.startswith(".")]
            files += [f for f in found if f.suffix.lower() in IMAGE_EXTENSIONS]
            others = [f.name for f in found if f.suffix.lower() not in IMAGE_EXTENSIONS]
            if others:
                notes.append(f"{p}: skipped {len(others)} file(s) that are not images: {', '.join(others[:8])}")
        elif p.is_file() and p.suffix.lower() == ".zip":
            notes.append(f"skipped {p.name}: translate reads image files and folders, not .zip archives: unzip it "
                         "first")
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"{item}: no such file or folder")
    unique: dict[Path, Path] = {}
    for f in files:  # a file named twice (or as itself and inside its folder) is translated once
        unique.setdefault(f.resolve(), f)
    return list(unique.values()), notes


def output_names(files: list[Path], out: Path, grid: bool = True) -> tuple[dict[Path, Path], Path | None]:
    """``out/STEM.png`` for each input and ``out/comparison.png`` for the grid (when ``grid``), each made
    unique (``STEM-EXT``, then ``STEM-2``...) and never an input's own path: translating into the input
    folder must not overwrite the user's images. Names are compared case-folded: on macOS and Windows X.png
    and x.png are one file."""
    inputs = {str(f.resolve()).casefold() for f in files}
    taken: set[str] = set()

    def claim(stem: str, *first: str) -> Path:
        for name in (*first, *(f"{stem}-{k}.png" for k in range(2, 2 * len(files) + 3))):
            if name.casefold() not in taken and str((out / name).resolve()).casefold() not in inputs:
                taken.add(name.casefold())
                return out / name
        raise AssertionError("more candidate names than files and inputs")  # cannot happen: see the range

    grid_path = claim("comparison", "comparison.png") if grid else None
    dests = {f: claim(f.stem, f"{f.stem}.png", f"{f.stem}-{f.suffix.lstrip('.').lower()}.png") for f in files}
    return dests, grid_path


def read_input(path: Path, task: Task, cfg: RunConfig, from_target: bool,
               gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None, list[str]]:
    """(A, target or None, notes) network tensors for one file; DataError when it cannot be used."""
    try:
        img = first_frame(path)  # upright and first frame, as training's decoding reads files
    except Exception as e:
        from ganforge.data.images import describe_error

        raise DataError(f"{path.name}: not a readable image ({describe_error(e)})") from e
    notes: list[str] = []
    channels = cfg.model.channels
    gray = is_gray_mode(img)
    alpha = None
    if task.name == "inpaint" and not from_target:
        if "A" not in img.getbands() and "transparency" not in img.info:
            raise DataError(f"{path.name}: inpainting fills transparent pixels, and this image has none: give an "
                            "RGBA image whose holes are transparent, or pass --from-target to mask it at random")
        alpha = np.asarray(img.convert("RGBA"))[..., 3]
    if from_target or task.name in ("superres", "inpaint"):
        want = channels
    elif task.name == "edges":
        want = 1
    elif task.name == "colorize":
        want = 3  # gray or colour, L is taken from the RGB picture below
    else:
        want = int(cfg.model.options.get("in_channels", channels))
    if want == 1:
        if not gray:
            notes.append(f"{path.name}: colour input converted to gray for this {task.describe()} model")
        img = flatten(img, True)  # 16-bit and float gray scaled to 8 bits as in training, not clipped
    else:
        if gray and task.name != "colorize":
            notes.append(f"{path.name}: gray input converted to RGB (three equal channels) for this RGB model")
        img = flatten(img, False)
    arr = np.asarray(img)
    u8 = torch.from_numpy((arr[None, None] if arr.ndim == 2 else arr.transpose(2, 0, 1)[None]).copy())
    if from_target:
        if task.name == "superres":
            h, w = u8.shape[-2:]
            if min(h, w) < task.scale:
                raise DataError(f"{path.name}: too small ({w}x{h}) to downsample {task.scale}x: give targets of "
                                f"at least {task.scale}x{task.scale} pixels")
            u8 = u8[..., :h - h % task.scale, :w - w % task.scale]
        a, b = task.make(u8, None, gen)
        return a, b, notes
    if task.name == "edges":
        return to_float(u8), None, notes
    if task.name == "colorize":
        if not gray:
            notes.append(f"{path.name}: colour input: only its lightness (CIE L) is used")
        return rgb_to_lab(u8)[:, :1] / 50.0 - 1, None, notes
    if task.name == "inpaint":
        mask = torch.from_numpy((alpha == 0).astype(np.float32))[None, None]
        return inpaint_input(to_float(u8), mask), None, notes
    return to_float(u8), None, notes


def translate_files(run: str | Path, inputs: list[str], out: Path, from_target: bool = False,
                    task: str | None = None, stochastic: bool = False, tile: int = 256, overlap: int = 32,
                    seed: int = 0, device: str = "cpu", progress: bool = True,
                    grid: bool = True) -> tuple[list[Path], Path | None, list[str]]:
    """Translate every image of ``inputs`` into ``out/NAME.png``; with ``grid`` also ``out/comparison.png``
    (rows of input | output (| target)); names repeat no other output and no input (see output_names).
    Returns the files written, the grid and notes (skipped files, converted channels). Each file
    is written atomically; inputs that cannot be read are skipped with a note."""
    from ganforge.storage.images import check_output_dir

    if overlap >= tile:
        raise ConfigError(f"--overlap ({overlap}) must be smaller than --tile ({tile})")
    check_output_dir(out)
    cfg, t, G = load_translator(run, device, task)
    if from_target and t.name == "paired":
        raise ConfigError(f"--from-target needs a task that makes its inputs (edges, colorize, superres, inpaint); "
                          f"{run} was trained on paired data: pass its A images")
    G.stochastic = stochastic
    torch.manual_seed(seed)
    files, notes = image_files(inputs)
    if not files:
        raise DataError(f"no images among {', '.join(inputs)}: pass image files ({', '.join(IMAGE_EXTENSIONS)}) or "
                        "folders of them")
    dests, grid_dest = output_names(files, out, grid)
    gen = torch.Generator().manual_seed(seed)
    scale = int(getattr(G, "upsample", 1))
    written, rows = [], []
    dev = next(G.parameters()).device
    for path in files:
        try:
            a, target, more = read_input(path, t, cfg, from_target, gen)
        except DataError as e:
            notes.append(f"skipped {e}")
            continue
        notes += more
        raw = tiled(lambda x: G(x.to(dev)).float().cpu(), a, scale, tile, overlap, progress)
        picture = t.to_image(a, raw)
        target_pic = None if target is None else t.to_image(a, target)
        dest = dests[path]
        save_image(Image.fromarray(_hwc(picture)), dest)
        written.append(dest)
        if grid and len(rows) < MAX_GRID_ROWS:
            rows.append(_row(t, a, raw, target))
        del picture, target_pic
    grid_path = None
    if rows:
        grid_path = save_image(_stack(rows), grid_dest)
    if not written:
        raise DataError(f"none of the {len(files)} input(s) could be translated: {'; '.join(notes)}")
    return written, grid_path, notes


def _hwc(x: torch.Tensor) -> np.ndarray:
    arr = to_uint8(x)[0]
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def _row(task: Task, a: torch.Tensor, raw: torch.Tensor, target: torch.Tensor | None) -> Image.Image:
    """One comparison row, input | output (| target), scaled to GRID_HEIGHT."""
    panels = comparison(task, a, raw, target)
    h, w = panels.shape[-2:]
    size = (max(1, round(w * GRID_HEIGHT / h)), GRID_HEIGHT)
    images = [Image.fromarray(_hwc(p[None])).convert("RGB").resize(size, Image.BICUBIC) for p in panels]
    row = Image.new("RGB", (len(images) * (size[0] + 2) + 2, GRID_HEIGHT + 4), (32, 32, 32))
    for i, im in enumerate(images):
        row.paste(im, (2 + i * (size[0] + 2), 2))
    return row


def _stack(rows: list[Image.Image]) -> Image.Image:
    width = max(r.width for r in rows)
    canvas = Image.new("RGB", (width, sum(r.height for r in rows)), (32, 32, 32))
    y = 0
    for r in rows:
        canvas.paste(r, (0, y))
        y += r.height
    return canvas
