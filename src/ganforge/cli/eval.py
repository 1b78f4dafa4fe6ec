"""`ganforge eval`: FID, KID, precision/recall and the rest, for a run or a folder of images."""
from __future__ import annotations

from ganforge.cli.common import FMT, add_device, add_precision, positive, seed
from ganforge.metrics.options import METRICS, OPT_IN_METRICS, EvalOptions


def add_parser(sub) -> None:
    """The `ganforge eval` sub-command."""
    e = EvalOptions()
    p = sub.add_parser("eval", formatter_class=FMT, help="score generated images: FID, KID, precision/recall...",
                       description="Measure how real generated images look, fully offline: a run's samples "
                                   "(RUN) or any folder of images (--fake DIR) against real images.",
                       epilog="--features inception needs the torch-fidelity package (pip install --no-deps "
                              "torch-fidelity) and the FID InceptionV3 weights, pt_inception-2015-12-05-6726825d.pth "
                              "as published by pytorch-fid (or torch-fidelity's weights-inception-2015-12-05-"
                              "6726825d.pth), via --inception-weights, $GANFORGE_INCEPTION_WEIGHTS or the torch hub "
                              "cache (~/.cache/torch/hub/checkpoints); `ganforge weights download inception` "
                              "fetches them into ganforge's cache. Nothing is downloaded while scoring. "
                              "ppl (perceptual path length) and ls (linear separability) measure a run's generator "
                              "and are not part of 'all', being slow: name them in --metrics (at the default --ppl-n "
                              "and --ls-n each renders about as many images as FID's 5,000 samples). "
                              "PPL uses LPIPS with --vgg; "
                              "without it, digit-like images are measured with the digit network's features "
                              "(reported as ppl_distance digit-features, not comparable with published numbers). "
                              "LS labels unconditional digit generators' samples with the digit network. "
                              "swd (ProGAN's sliced Wasserstein distance, x10^3 per Laplacian-pyramid level and "
                              "their mean) compares pixel neighbourhoods, needs no feature network or weights "
                              "and is opt-in too (--swd-n images of each set). "
                              "The table prints KID x 10^3, as papers do; --json gives kid and kid_std unscaled.")
    p.add_argument("run", nargs="?", help="run directory or checkpoint (e.g. RUN/best.safetensors)")
    p.add_argument("--fake", metavar="DIR", help="score this folder / .zip of images instead of a run")
    p.add_argument("--real", help="real images: built-in name or folder / .zip (None: the run's training data)")
    p.add_argument("--metrics", default="all", help=f"comma list of {','.join(METRICS)}, or all (every metric "
                                                    f"that applies, except the slow "
                                                    f"{', '.join(sorted(OPT_IN_METRICS))})")
    p.add_argument("--n", type=positive, default=e.n, help="generated images (at most all of --fake)")
    p.add_argument("--features", help="digits, inception or module:callable (None: digits for digit-like data, "
                                      "inception otherwise)")
    p.add_argument("--inception-weights", metavar="PATH", help="InceptionV3 weights file (else "
                                                                "$GANFORGE_INCEPTION_WEIGHTS, ganforge's cache or the "
                                                                "torch hub cache; `ganforge weights download "
                                                                "inception` fetches it)")
    p.add_argument("--seed", type=seed, default=e.seed, help="latent seed / choice of --fake images")
    p.add_argument("--truncation", type=float, default=1.0, help="psi for the run's latents (1 = off)")
    p.add_argument("--resolution", type=positive, help="decode folders at this size (None: the real set's; a real "
                                                        "folder's own image size)")
    p.add_argument("--channels", type=int, choices=[1, 3], help="decode folders as gray or RGB (None: auto)")
    p.add_argument("--batch-size", type=positive, help="images per forward pass (None: the extractor's)")
    p.add_argument("--kid-subsets", type=positive, default=e.kid_subsets, help="KID subsets")
    p.add_argument("--kid-subset-size", type=positive, default=e.kid_subset_size, help="KID subset size")
    p.add_argument("--real-max", type=positive, default=e.real_max, help="real images used at most")
    p.add_argument("--ppl-n", type=positive, default=e.ppl_n, help="PPL: latent pairs (two images each)")
    p.add_argument("--ppl-space", choices=["z", "w"], help="PPL: interpolate in z (slerp, every family) or w "
                                                          "(lerp, StyleGAN2) (None: w when G has a mapping net)")
    p.add_argument("--ppl-sampling", choices=["end", "full"], default=e.ppl_sampling,
                   help="PPL: path position t = 0 (end, StyleGAN2's) or t ~ U(0, 1) (full, the StyleGAN paper's)")
    p.add_argument("--ppl-epsilon", type=float, default=e.ppl_epsilon, help="PPL: step along the path")
    p.add_argument("--vgg", metavar="PATH", help="LPIPS VGG16 weights for PPL (else $GANFORGE_VGG16 or "
                                                 "vgg16-lpips.safetensors in ganforge's cache folder; without any: "
                                                 "the digit network's features, on digit-like images only)")
    p.add_argument("--ls-n", type=positive, default=e.ls_n, help="LS: samples labelled by the digit network "
                                                                  "(the most confident half is used)")
    p.add_argument("--swd-n", type=positive, default=e.swd_n, help="SWD: images of each set")
    p.add_argument("--no-cache", action="store_true", help="recompute the real set's features")
    add_device(p)
    add_precision(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_eval)


def cmd_eval(a) -> int:
    import json

    from ganforge.cli.translate import eval_translation, is_translation_run

    if a.run and a.fake is None and is_translation_run(a.run):  # image-to-image: translate/metrics.py
        return eval_translation(a)
    from ganforge.devices import resolve_device
    from ganforge.metrics.options import parse_metrics
    from ganforge.metrics.pipeline import run_eval
    from ganforge.metrics.report import format_table

    opts = EvalOptions(metrics=parse_metrics(a.metrics), n=a.n, seed=a.seed, batch_size=a.batch_size,
                       kid_subsets=a.kid_subsets, kid_subset_size=a.kid_subset_size, real_max=a.real_max,
                       cache=not a.no_cache, progress=True, ppl_n=a.ppl_n, ppl_space=a.ppl_space,
                       ppl_sampling=a.ppl_sampling, ppl_epsilon=a.ppl_epsilon, vgg=a.vgg, ls_n=a.ls_n,
                       swd_n=a.swd_n)
    result = run_eval(a.run, a.fake, a.real, opts, features=a.features, inception_weights=a.inception_weights,
                      resolution=a.resolution, channels=a.channels, truncation=a.truncation,
                      device=str(resolve_device(a.device)), precision=a.precision)
    print(json.dumps(result, indent=2) if a.json else format_table(result))
    return 0
