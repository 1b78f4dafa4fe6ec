"""Where a detector's images come from: files, folders, zips, built-in sets, or ganforge runs (made on the fly).

Every source yields :class:`Item` objects; ``Item.read`` runs the one decode path of :mod:`decode`, so a
file, a zip member, a built-in image and a freshly generated fake are all treated the same way.
"""
from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganforge.data.builtin import BUILTINS
from ganforge.data.files import scan_folder, scan_zip
from ganforge.detect.decode import MAX_FILE_BYTES, MAX_PIXELS, MIN_SIDE, SkipImage, decode_array, decode_file
from ganforge.errors import DataError, warn


@dataclass
class Item:
    name: str  # what messages and outputs call it: a path, ZIP:member, mnist:17, RUN:fake-3
    file: Callable[[], object] | None = None  # -> a path or binary file object
    array: np.ndarray | None = None  # uint8 [C, H, W]

    def read(self, size: int, channels: int, quality: int) -> np.ndarray:
        """uint8 ``[channels, size, size]`` through the decode rule; raises SkipImage with the reason."""
        if self.array is not None:
            return decode_array(self.array, size, channels, quality)
        try:
            fp = self.file()
        except zipfile.BadZipFile as e:
            raise SkipImage(f"damaged zip member ({e})") from e
        return decode_file(fp, size, channels, quality)


def builtin_arrays(name: str) -> np.ndarray:
    """A built-in set at its own size, uint8 ``[N, C, H, W]``."""
    from ganforge.config import DataConfig
    from ganforge.data import load_dataset

    return load_dataset(DataConfig(source=name, labels=False, cache=False)).images.numpy()


def _zip_items(path: Path) -> list[Item]:
    src = scan_zip(path)

    def member(key: str) -> Callable[[], object]:
        def read():
            with zipfile.ZipFile(path) as zf:
                size = zf.getinfo(key).file_size  # from the directory: nothing is inflated yet
                if size > MAX_FILE_BYTES:  # a zip bomb, or a file no detector needs whole
                    raise SkipImage(f"unpacks to {size:,} bytes, over the limit of {MAX_FILE_BYTES:,} bytes: extract "
                                    "and downscale it first")
                with zf.open(key) as f:
                    data = f.read(MAX_FILE_BYTES + 1)  # the directory may lie about the size
                if len(data) > MAX_FILE_BYTES:
                    raise SkipImage(f"unpacks to more than {MAX_FILE_BYTES:,} bytes: extract and downscale it first")
                return io.BytesIO(data)
        return read

    return [Item(f"{path}:{key}", member(key)) for key in src.keys]


def items(spec: str) -> list[Item]:
    """The items of one path (file, folder, .zip) or built-in name, in a fixed order."""
    p = Path(spec)
    if not p.exists() and spec in BUILTINS:
        return [Item(f"{spec}:{i}", array=a) for i, a in enumerate(builtin_arrays(spec))]
    if p.is_dir():
        src = scan_folder(p)
        return [Item(str(Path(spec, rel)), (lambda k=key: k)) for rel, key in zip(src.rel, src.keys)]
    if p.is_file() and zipfile.is_zipfile(p) and p.suffix.lower() == ".zip":
        return _zip_items(p)
    if p.is_file():
        return [Item(spec, (lambda s=spec: s))]
    names = ", ".join(BUILTINS)
    if not p.exists():
        raise DataError(f"{spec} does not exist (and is not a built-in set: {names}): check the path")
    raise DataError(f"'{spec}' is neither a file, a folder, a .zip nor a built-in set ({names})")


def all_items(specs: list[str]) -> list[Item]:
    out: list[Item] = []
    for s in specs:
        out += items(s)
    return out


def read_all(items_: list[Item], size: int, channels: int, quality: int, progress: bool = False,
             on_skip: Callable[[str, str], None] | None = None) -> tuple[np.ndarray, list[str]]:
    """Decode every item; skipped ones are reported one line each (``on_skip(name, reason)``, default: a
    warning) and left out. Returns (uint8 ``[N, C, S, S]``, names of the decoded ones)."""
    from tqdm import tqdm

    arrays, names = [], []
    quiet = True if not progress or len(items_) < 2 else None  # None: tqdm shows the bar on a terminal only
    for it in tqdm(items_, desc="reading images", unit="img", leave=False, disable=quiet):
        try:
            arrays.append(it.read(size, channels, quality))
            names.append(it.name)
        except SkipImage as e:
            (on_skip or _warn_skip)(it.name, str(e))
    empty = np.zeros((0, channels, size, size), np.uint8)
    return (np.stack(arrays) if arrays else empty), names


def _warn_skip(name: str, reason: str) -> None:
    warn(f"skipped {name}: {reason}", stacklevel=3)


def guess_shape(specs: list[str]) -> tuple[int, int]:
    """(size, channels) for a new detector from its real set: a built-in's own, else the first readable image's
    shorter side (at most 256) and whether it has colour."""
    from PIL import Image

    from ganforge.data import images as imgs

    for spec in specs:
        if not Path(spec).exists() and spec in BUILTINS:
            a = builtin_arrays(spec)
            return int(a.shape[-1]), int(a.shape[1])
        for it in items(spec)[:50]:
            try:
                with Image.open(it.file()) as im:
                    (w, h), gray = im.size, imgs.is_gray_mode(im)
            except Exception:  # unreadable: the next one decides
                continue
            if min(w, h) < MIN_SIDE or w * h > MAX_PIXELS:  # decoding will skip it: it must not decide either
                continue
            return min(w, h, 256), 1 if gray else 3
    raise DataError(f"no readable image in {', '.join(specs)} to size the detector from: give --size and --channels")


def generated(run: str, n: int, seed: int = 0, batch_size: int = 256, device: str = "cpu") -> list[Item]:
    """``n`` fakes sampled from a ganforge run (any family, imported StyleGAN networks too) as items."""
    from ganforge.generate.runs import load
    from ganforge.generate.sampling import sample
    from ganforge.storage.images import to_uint8

    G = load(run, device=device)
    imgs = to_uint8(sample(G, n, seed=seed, batch_size=batch_size))  # [N, H, W, C]
    step = getattr(G, "step", 0)
    return [Item(f"{run}@{step}:fake-{i}", array=np.ascontiguousarray(a.transpose(2, 0, 1))) for i, a in
            enumerate(imgs)]
