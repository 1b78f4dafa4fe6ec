"""What ``ganforge eval`` scores: the sources and extractor named on the command line, then :func:`evaluate`."""
from __future__ import annotations

from ..config import DataConfig
from ..data import load_dataset
from ..data.builtin import BUILTINS
from .errors import EvalError
from .features import default_features, get_extractor
from .options import FEATURE_METRICS, GENERATOR_METRICS, METRICS, OPT_IN_METRICS, EvalOptions
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
        asked = [m for m in opts.metrics or () if m in GENERATOR_METRICS]
        if asked:  # before --real is looked at: no real set would make this work
            raise EvalError(f"metric '{asked[0]}' measures a generator, not images: pass RUN instead of --fake")
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
                              "cache (~/.cache/torch/hub/checkpoints). Nothing is downloaded. "
                              "ppl (perceptual path length) and ls (linear separability) measure a run's generator "
                              "and are not part of 'all', being slow: name them in --metrics (at the default --ppl-n "
                              "and --ls-n each renders about as many images as FID's 5,000 samples; on a 2-core CPU "
                              "about a minute for a 32 px StyleGAN2). PPL uses LPIPS with --vgg; "
                              "without it, digit-like images are measured with the digit network's features "
                              "(reported as ppl_distance digit-features, not comparable with published numbers). "
                              "LS labels unconditional digit generators' samples with the digit network.")
    p.add_argument("run", nargs="?", help="run directory or checkpoint (e.g. RUN/best.safetensors)")
    p.add_argument("--fake", metavar="DIR", help="score this folder / .zip of images instead of a run")
    p.add_argument("--real", help="real images: built-in name or folder / .zip (None: the run's training data)")
    p.add_argument("--metrics", default="all", help=f"comma list of {','.join(METRICS)}, or all (every metric "
                                                    f"that applies, except the slow "
                                                    f"{' and '.join(sorted(OPT_IN_METRICS, reverse=True))})")
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
    p.add_argument("--ppl-n", type=_positive, default=e.ppl_n, help="PPL: latent pairs (two images each)")
    p.add_argument("--ppl-space", choices=["z", "w"], help="PPL: interpolate in z (slerp, every family) or w "
                                                          "(lerp, StyleGAN2) (None: w when G has a mapping net)")
    p.add_argument("--ppl-sampling", choices=["end", "full"], default=e.ppl_sampling,
                   help="PPL: path position t = 0 (end, StyleGAN2's) or t ~ U(0, 1) (full, the StyleGAN paper's)")
    p.add_argument("--ppl-epsilon", type=float, default=e.ppl_epsilon, help="PPL: step along the path")
    p.add_argument("--vgg", metavar="PATH", help="LPIPS VGG16 weights for PPL (else $GANFORGE_VGG16 or "
                                                 "vgg16-lpips.safetensors in ganforge's cache folder; without any: "
                                                 "the digit network's features, on digit-like images only)")
    p.add_argument("--ls-n", type=_positive, default=e.ls_n, help="LS: samples labelled by the digit network "
                                                                  "(the most confident half is used)")
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
                       cache=not a.no_cache, progress=True, ppl_n=a.ppl_n, ppl_space=a.ppl_space,
                       ppl_sampling=a.ppl_sampling, ppl_epsilon=a.ppl_epsilon, vgg=a.vgg, ls_n=a.ls_n)
    result = run_eval(a.run, a.fake, a.real, opts, features=a.features, inception_weights=a.inception_weights,
                      resolution=a.resolution, channels=a.channels, truncation=a.truncation,
                      device=str(resolve_device(a.device)))
    print(json.dumps(result, indent=2) if a.json else format_table(result))
    return 0
