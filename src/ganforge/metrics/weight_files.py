"""The pretrained weights ganforge can fetch for its metrics, where they come from and where they go.

``ganforge weights download NAME`` fetches a file from its official address into the place its loader
looks (``metrics.inception.find_weights`` / ``metrics.lpips.default_lpips_path``): ganforge's cache
folder ($GANFORGE_CACHE, default ~/.cache/ganforge), or the file an environment variable names. Every
source file is checked against its SHA-256 before anything is written (``storage.download``).

The SHA-256 values below could not be computed here (no internet where this was written). They are the
values that several independent public projects record for these exact files; for the first two they
also agree with the hash prefix that the file name carries (pytorch-fid's ``6726825d`` and torchvision's
``397923af`` are the first 8 hex digits of the file's SHA-256, which torch.hub checks). ``--sha256``
overrides them, should a host ever publish a changed file.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ganforge.errors import EvalError
from ganforge.metrics import inception, lpips
from ganforge.storage.atomic import atomic_path
from ganforge.storage.download import DEFAULT_TIMEOUT, as_url, check_sha256, download, sha256_of

# Stage widths the merged VGG16 + LPIPS file is checked against (the real network's; tests shrink them).
LPIPS_WIDTHS = lpips.VGG16_WIDTHS


@dataclass(frozen=True)
class Source:
    part: str  # the name --url / --sha256 use for it: PART=VALUE
    url: str
    sha256: str
    size: int  # bytes, as published; only shown to the user


@dataclass(frozen=True)
class WeightsFile:
    name: str
    what: str
    filename: str
    env: str  # the environment variable that names the file instead
    sources: tuple[Source, ...]


INCEPTION = WeightsFile(
    "inception", "InceptionV3 for FID and KID (pytorch-fid's converted TF weights)", inception.KNOWN_FILES[0],
    inception.ENV,
    (Source("inception", "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                         "pt_inception-2015-12-05-6726825d.pth",
            "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2", 95_628_359),))
VGG16_LPIPS = WeightsFile(
    "vgg16-lpips", "VGG16 trunk (torchvision) + LPIPS v0.1 linear layers, for PPL and projection",
    lpips.DEFAULT_NAME, lpips.ENV,
    (Source("vgg16", "https://download.pytorch.org/models/vgg16-397923af.pth",
            "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0", 553_433_881),
     # master's copy of lpips/weights/v0.1/vgg.pth, unchanged since v0.1 was published
     Source("lpips", "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth",
            "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868", 7_289)))
FILES = {w.name: w for w in (INCEPTION, VGG16_LPIPS)}

# progress(part, url) -> a context manager yielding a progress(done, total) callback (or None)
Progress = Callable[[str, str], "contextlib.AbstractContextManager[Callable[[int, int | None], None] | None]"]


def get(name: str) -> WeightsFile:
    if name not in FILES:
        raise EvalError(f"unknown weights '{name}': choose {' or '.join(FILES)}")
    return FILES[name]


def lookup_paths(w: WeightsFile) -> list[Path]:
    """Where the loader looks for ``w``, in its order (the environment variable's file alone when set);
    the first is where :func:`fetch` saves it."""
    if os.environ.get(w.env):
        return [inception.download_target() if w is INCEPTION else lpips.default_lpips_target()]
    return inception.candidate_paths() if w is INCEPTION else [lpips.default_lpips_target()]


def found(w: WeightsFile) -> Path | None:
    return next((p for p in lookup_paths(w) if p.is_file()), None)


def parse_overrides(w: WeightsFile, values: list[str] | None, option: str) -> dict[str, str]:
    """``--url`` / ``--sha256`` values, each ``PART=VALUE`` or, for one-file weights, a bare VALUE."""
    parts = [s.part for s in w.sources]
    out: dict[str, str] = {}
    for v in values or []:
        head, sep, rest = v.partition("=")
        if sep and head in parts:
            out[head] = rest
        elif len(parts) == 1:
            out[parts[0]] = v
        else:
            raise EvalError(f"{w.name} is made from {len(parts)} files: say which one {option} is for, "
                            + " or ".join(f"{option} {p}=..." for p in parts))
    return out


def by_hand_hint(w: WeightsFile, source: Source) -> str:
    flag = "--url PATH" if len(w.sources) == 1 else f"--url {source.part}=PATH"
    also = " (or give it to eval with --inception-weights PATH)" if w is INCEPTION else ""
    return f"download {source.url} by hand and pass its path: ganforge weights download {w.name} {flag}{also}"


def fetch(name: str, folder: str | Path | None = None, urls: list[str] | None = None,
          sha256s: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT, force: bool = False,
          progress: Progress | None = None) -> tuple[Path, bool]:
    """Download weights ``name`` (one of ``FILES``) into ``folder`` (None: the first place the loader looks).

    ``urls`` / ``sha256s`` override the official addresses and checksums (``PART=VALUE``, see
    :func:`parse_overrides`); a URL may be a local path. Returns (path, fetched): ``fetched`` is False when
    the loader already finds a file there and ``force`` is off.
    """
    w = get(name)
    url_of, sha_of = parse_overrides(w, urls, "--url"), parse_overrides(w, sha256s, "--sha256")
    for v in sha_of.values():
        check_sha256(v)
    if folder and Path(folder).expanduser().exists() and not Path(folder).expanduser().is_dir():
        raise EvalError(f"--dir {folder} is a file: pass a folder to save the {name} weights in")
    target = Path(folder).expanduser() / w.filename if folder else lookup_paths(w)[0]
    if w.filename.endswith(".safetensors") and target.suffix.lower() != ".safetensors":  # $GANFORGE_VGG16=x.pt
        raise EvalError(f"{target}: the merged {name} weights are a .safetensors file, which the loader reads by "
                        "its suffix: name a .safetensors path, or pass --dir DIR")
    existing = (target if target.is_file() else None) if folder else found(w)
    if existing is not None and not force:
        return existing, False
    sources = [(Source(s.part, as_url(url_of.get(s.part, s.url)), sha_of.get(s.part, s.sha256), s.size),
                s.part in url_of) for s in w.sources]
    if w is INCEPTION:
        _get(w, sources[0][0], target, timeout, progress)
    else:
        _build_vgg16_lpips(w, sources, target, timeout, progress)
    return target, True


def _get(w: WeightsFile, source: Source, dest: Path, timeout: float, progress: Progress | None) -> None:
    with progress(source.part, source.url) if progress else contextlib.nullcontext() as bar:
        download(source.url, dest, source.sha256, timeout=timeout, progress=bar, hint=by_hand_hint(w, source))


def _build_vgg16_lpips(w: WeightsFile, sources: list[tuple[Source, bool]], target: Path, timeout: float,
                       progress: Progress | None) -> None:
    """Fetch the VGG16 trunk and the LPIPS layers beside ``target``, merge them into the one state dict
    that ``metrics.lpips.load_lpips`` reads and write it atomically; the fetched files are removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with _scratch(target.parent) as tmp:
        paths = {}
        for s, overridden in sources:
            local = None if overridden else _hub_copy(s)
            if local is None:
                local = tmp / f"{s.part}.pth"
                _get(w, s, local, timeout, progress)
            paths[s.part] = local
        state = merge_lpips(_load(paths["vgg16"], "the VGG16 trunk"), _load(paths["lpips"], "the LPIPS layers"))
        from safetensors.torch import save_file

        with atomic_path(target) as out:
            save_file(state, str(out))


@contextlib.contextmanager
def _scratch(folder: Path) -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".weights-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _hub_copy(s: Source) -> Path | None:
    """The official file when torch hub's cache already holds it, checked (torchvision leaves VGG16 there)."""
    for folder in dict.fromkeys(p.parent for p in inception.candidate_paths() if p.parent.name == "checkpoints"):
        p = folder / Path(s.url).name
        if p.is_file() and sha256_of(p).startswith(s.sha256):
            return p
    return None


def _load(path: Path, what: str) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors only, never code
    except Exception as e:  # pickle and zip errors alike
        raise EvalError(f"{path} ({what}) is not a readable state dict ({type(e).__name__})") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EvalError(f"{path} ({what}) does not hold a state dict of tensors")
    return state


def merge_lpips(trunk: dict[str, torch.Tensor], lin: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's ``vgg16`` state dict + the lpips package's ``vgg.pth`` -> the state dict of
    :class:`~ganforge.metrics.lpips.LPIPS` with ``lin=True``, checked key by key and shape by shape."""
    state = {k: v for k, v in trunk.items() if k.startswith("features.")}  # drops the classifier head
    state |= {k: v for k, v in lin.items() if k.startswith("lin")}
    state = {k: v.detach().float().contiguous() for k, v in state.items()}
    try:
        lpips.LPIPS(lin=True, widths=LPIPS_WIDTHS).load_state_dict(state)
    except RuntimeError as e:  # missing / unexpected keys, wrong shapes
        detail = " ".join(ln.strip() for ln in str(e).splitlines()[1:2]) or str(e)
        raise EvalError(f"the downloaded files do not make VGG16 LPIPS weights ({detail[:160]})") from e
    return state
