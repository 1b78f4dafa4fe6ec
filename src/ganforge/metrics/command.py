"""What ``ganforge eval`` scores: the sources and extractor named on the command line, then :func:`evaluate`."""
from __future__ import annotations

from ..config import DataConfig
from ..data import load_dataset
from ..data.builtin import BUILTINS
from .errors import EvalError
from .features import default_features, get_extractor
from .options import FEATURE_METRICS, METRICS, EvalOptions
from .sources import DatasetSource, FolderSource, GeneratorSource


def real_source(real: str, resolution: int | None, channels: int | None):
    """A built-in set (loaded whole: it is small) or a folder / .zip (streamed, by default at its images' size)."""
    if real in BUILTINS:
        return DatasetSource(load_dataset(DataConfig(source=real, resolution=resolution, channels=channels)), True)
    return FolderSource(real, resolution, channels)


def run_eval(run: str | None, fake: str | None, real: str | None, opts: EvalOptions, features: str | None = None,
             inception_weights: str | None = None, resolution: int | None = None, channels: int | None = None,
             truncation: float = 1.0, device: str = "cpu") -> dict:
    """Score a run's generator (``run``) or a folder of images (``fake``) against ``real``.

    ``real`` defaults to the run's own training data. Folder images are decoded at the real set's size
    and channel count so both sides reach the extractor alike.
    """
    from .evaluate import evaluate  # SciPy is imported here, not when the CLI starts

    if (run is None) == (fake is None):
        raise EvalError("pass either RUN (a run directory) or --fake DIR (a folder of images), not both or neither")
    D = None
    if run is not None:
        from ..api import load_run

        cfg, G, D = load_run(run, device)
        fake_src = GeneratorSource(G, name=f"{run} (step {G.step})", truncation=truncation)
        if real is None:
            data = load_dataset(cfg.data)
            real_src = DatasetSource(data, cfg.data.source in BUILTINS)
        else:
            real_src = real_source(real, resolution or G.img_shape[1], channels or G.img_shape[0])
    else:
        if real is None:
            raise EvalError("--fake needs --real: a built-in name (mnist, digits) or a folder of real images")
        real_src = real_source(real, resolution, channels)
        fake_src = FolderSource(fake, real_src.resolution, real_src.channels)
    extractor = None
    if opts.metrics is None or FEATURE_METRICS & set(opts.metrics):  # e.g. 'is,digits' need no extractor
        spec = features or default_features(real_src.builtin, real_src.channels, real_src.resolution)
        extractor = get_extractor(spec, inception_weights, device)
    return evaluate(fake_src, real_src, extractor, opts, D=D)


def add_parser(sub) -> None:
    """The `ganforge eval` sub-command."""
    from ..cli import FMT, _positive

    e = EvalOptions()
    p = sub.add_parser("eval", formatter_class=FMT, help="score generated images: FID, KID, precision/recall...",
                       description="Measure how real generated images look, fully offline: a run's samples "
                                   "(RUN) or any folder of images (--fake DIR) against real images.",
                       epilog="--features inception needs the torch-fidelity package (pip install --no-deps "
                              "torch-fidelity) and the FID InceptionV3 weights, pt_inception-2015-12-05-6726825d.pth "
                              "as published by pytorch-fid (or torch-fidelity's weights-inception-2015-12-05-"
                              "6726825d.pth), via --inception-weights, $GANFORGE_INCEPTION_WEIGHTS or the torch hub "
                              "cache (~/.cache/torch/hub/checkpoints). Nothing is downloaded.")
    p.add_argument("run", nargs="?", help="run directory or checkpoint (e.g. RUN/best.safetensors)")
    p.add_argument("--fake", metavar="DIR", help="score this folder / .zip of images instead of a run")
    p.add_argument("--real", help="real images: built-in name or folder / .zip (None: the run's training data)")
    p.add_argument("--metrics", default="all", help=f"comma list of {','.join(METRICS)}, or all (every metric "
                                                    "that applies)")
    p.add_argument("--n", type=_positive, default=e.n, help="generated images (at most all of --fake)")
    p.add_argument("--features", help="digits, inception or module:callable (None: digits for digit-like data, "
                                      "inception otherwise)")
    p.add_argument("--inception-weights", metavar="PATH", help="InceptionV3 weights file (else "
                                                                "$GANFORGE_INCEPTION_WEIGHTS or the torch hub cache)")
    p.add_argument("--seed", type=int, default=e.seed, help="latent seed / choice of --fake images")
    p.add_argument("--truncation", type=float, default=1.0, help="psi for the run's latents (1 = off)")
    p.add_argument("--resolution", type=_positive, help="decode folders at this size (None: the real set's; a real "
                                                        "folder's own image size)")
    p.add_argument("--channels", type=int, choices=[1, 3], help="decode folders as gray or RGB (None: auto)")
    p.add_argument("--batch-size", type=_positive, help="images per forward pass (None: the extractor's)")
    p.add_argument("--kid-subsets", type=_positive, default=e.kid_subsets, help="KID subsets")
    p.add_argument("--kid-subset-size", type=_positive, default=e.kid_subset_size, help="KID subset size")
    p.add_argument("--real-max", type=_positive, default=e.real_max, help="real images used at most")
    p.add_argument("--no-cache", action="store_true", help="recompute the real set's features")
    p.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_eval)


def cmd_eval(a) -> int:
    import json

    from ..train.trainer import resolve_device
    from .options import parse_metrics
    from .report import format_table

    opts = EvalOptions(metrics=parse_metrics(a.metrics), n=a.n, seed=a.seed, batch_size=a.batch_size,
                       kid_subsets=a.kid_subsets, kid_subset_size=a.kid_subset_size, real_max=a.real_max,
                       cache=not a.no_cache, progress=True)
    result = run_eval(a.run, a.fake, a.real, opts, features=a.features, inception_weights=a.inception_weights,
                      resolution=a.resolution, channels=a.channels, truncation=a.truncation,
                      device=str(resolve_device(a.device)))
    print(json.dumps(result, indent=2) if a.json else format_table(result))
    return 0
