"""`ganforge weights`: list and download the pretrained networks that FID/KID, PPL and projection use."""
from __future__ import annotations

import argparse
import contextlib

from ganforge.cli.common import FMT

NAMES = ("inception", "vgg16-lpips")
BAR_MIN_BYTES = 1 << 20  # smaller files arrive before a progress bar would say anything


def add_parser(sub) -> None:
    p = sub.add_parser("weights", formatter_class=FMT, help="list or download the Inception / VGG16-LPIPS weights",
                       description="The metrics never download anything while they run. This command fetches "
                                   "their standard weights once, from the official addresses, checks each file's "
                                   "SHA-256 and saves it where the metrics look for it.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = actions.add_parser("list", formatter_class=FMT, help="where each weights file is looked for, and whether "
                                                              "it is there")
    ls.set_defaults(func=cmd_list)
    dl = actions.add_parser("download", formatter_class=FMT, help="fetch weights into the cache",
                            description="inception: pytorch-fid's FID InceptionV3 (about 96 MB). vgg16-lpips: "
                                        "torchvision's VGG16 (about 550 MB, only its convolutions are kept) and "
                                        "the lpips package's v0.1 linear layers, merged into one "
                                        "vgg16-lpips.safetensors.")
    dl.add_argument("name", choices=NAMES, help="which weights")
    dl.add_argument("--dir", metavar="DIR", help="save into this folder instead (None: where the metrics look "
                                                 "first; see `ganforge weights list`)")
    dl.add_argument("--url", action="append", metavar="[PART=]URL",
                    help="fetch from here instead of the official address; a local path works too (a file "
                         "downloaded by hand). vgg16-lpips has two parts: vgg16=... and lpips=...")
    dl.add_argument("--sha256", action="append", metavar="[PART=]HEX",
                    help="expected SHA-256 (64 hex digits, or at least the first 8) instead of the built-in one")
    dl.add_argument("--timeout", type=_seconds, default=60.0, help="seconds without data before giving up")
    dl.add_argument("--force", action="store_true", help="download even when a file is already found")
    dl.set_defaults(func=cmd_download)


def _seconds(value: str) -> float:
    try:
        s = float(value)
    except ValueError:
        s = 0.0
    if not s > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {value!r}")
    return s


def cmd_list(a) -> int:
    from ganforge.metrics.weight_files import FILES, lookup_paths

    for w in FILES.values():
        print(f"{w.name}: {w.what}")
        paths = lookup_paths(w)
        for i, p in enumerate(paths):
            state = "present" if p.is_file() else "missing"
            note = f"  (${w.env})" if i == 0 and len(paths) == 1 and _env_set(w.env) else ""
            print(f"  {state:8s}{p}{note}")
        if not any(p.is_file() for p in paths):
            print(f"  get it:  ganforge weights download {w.name}")
    return 0


def _env_set(name: str) -> bool:
    import os

    return bool(os.environ.get(name))


@contextlib.contextmanager
def _progress(part: str, url: str):
    """A byte progress bar for one file, shown on a terminal for files of a megabyte or more."""
    from tqdm.auto import tqdm

    print(f"downloading {url}", flush=True)
    bar = None

    def update(done: int, total: int | None) -> None:
        nonlocal bar
        if bar is None:
            small = total is not None and total < BAR_MIN_BYTES
            bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=part, dynamic_ncols=True,
                       disable=True if small else None)
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()


def cmd_download(a) -> int:
    from ganforge.metrics.weight_files import fetch, get, lookup_paths

    w = get(a.name)
    path, fetched = fetch(a.name, a.dir, a.url, a.sha256, timeout=a.timeout, force=a.force, progress=_progress)
    if not fetched:
        print(f"{a.name} weights already at {path} (--force downloads them again)")
        return 0
    print(f"saved {a.name} weights to {path} (SHA-256 checked)")
    if path not in lookup_paths(w):
        flag = "--inception-weights PATH" if a.name == "inception" else "--vgg PATH"
        print(f"note: the metrics do not look in {path.parent}: pass {flag} or set ${w.env}={path}")
    return 0
