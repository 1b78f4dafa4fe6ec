"""StyleGAN2 sub-commands for the ``ganforge`` command line: ``import-stylegan``, ``style-mix``, ``noise``,
``project``.

``add_parsers(sub)`` registers them on an ``argparse`` sub-parser set; each sets ``func`` to its own
``cmd_*`` function, which returns an exit status and raises ``StyleGANError`` (a ``GenerateError``) with
a one-line message for bad input.
"""
from __future__ import annotations

from pathlib import Path

from ganforge.cli.common import FMT, add_device, add_precision, positive, seed, seeds


def add_parsers(sub) -> None:
    """Add ``import-stylegan``, ``style-mix``, ``noise`` and ``project`` to ``sub`` (from ``add_subparsers()``)."""
    p = sub.add_parser("import-stylegan", formatter_class=FMT, help="turn an official StyleGAN2 .pkl into a run",
                       description="Import a stylegan2-ada-pytorch network pickle (G, G_ema, D) as a ganforge "
                                   "run directory. The pickle is read without running any code from it.")
    p.add_argument("pkl", metavar="NETWORK.pkl", help="official network pickle")
    p.add_argument("--out", help="run directory to create (None: runs/NAME of the pickle)")
    p.set_defaults(func=cmd_import_stylegan)

    p = sub.add_parser("style-mix", formatter_class=FMT, help="StyleGAN2 style-mixing grid",
                       description="Grid of row seeds x column seeds: each cell is the row seed's image with the "
                                   "styles of the chosen layers taken from the column seed.")
    _add_run_args(p)
    p.add_argument("--rows", type=seeds, default="1,2,3", help="row seeds (comma list or a-b ranges)")
    p.add_argument("--cols", type=seeds, default="4,5,6", help="column seeds")
    p.add_argument("--styles", default="coarse", help="layers taken from the column seeds: coarse (4-8 px), "
                                                       "middle (16-32 px), fine (64 px and up) or numbers like 0-3")
    p.add_argument("--out", default="style-mix.png", help="grid image to write")
    p.set_defaults(func=cmd_style_mix)

    p = sub.add_parser("noise", formatter_class=FMT, help="StyleGAN2 stochastic variation of one image",
                       description="Render one seed's image with N draws of the per-pixel noise; writes the "
                                   "variations and a map of their per-pixel standard deviation.")
    _add_run_args(p)
    p.add_argument("--seed", type=seed, default=0, help="latent seed of the image")
    p.add_argument("--n", type=positive, default=8, help="noise draws (at least 2)")
    p.add_argument("--noise-seed", type=int, help="seed of the noise draws (None: --seed)")
    p.add_argument("--out", help="folder for the PNGs (None: RUN/noise)")
    p.set_defaults(func=cmd_noise)

    p = sub.add_parser("project", formatter_class=FMT, help="find the w that makes a StyleGAN2 run draw a photo",
                       description="Project a photo into a StyleGAN2 run's w space (the StyleGAN2 paper's "
                                   "projector): optimise one w and the noise maps until the generator draws the "
                                   "photo. Writes projected_w.npz, proj.png, target.png, compare.png and a video.")
    p.add_argument("image", help="photo to reproduce (centre-cropped to a square, resized to the run's size)")
    p.add_argument("--run", required=True, help="run directory of a stylegan2 / cstylegan2 run (or its checkpoint)")
    p.add_argument("--out", help="folder for the results (None: RUN/projections/IMAGE-NAME)")
    p.add_argument("--steps", type=positive, default=1000, help="optimisation steps")
    p.add_argument("--seed", type=seed, default=0, help="seed of the average-w samples and the noise")
    p.add_argument("--class", dest="class_index", type=int, help="the photo's class (needed by conditional runs)")
    p.add_argument("--features", choices=["auto", "lpips", "d"], default="auto",
                   help="distance: lpips (VGG16 weights; `ganforge weights download vgg16-lpips`), d (the run's "
                        "discriminator) or auto (lpips when "
                        "weights are found, else d)")
    p.add_argument("--vgg", metavar="PATH", help="VGG16 / LPIPS weights (.safetensors or .pt state dict; "
                                                 "None: $GANFORGE_VGG16 or ~/.cache/ganforge/vgg16-lpips.safetensors)")
    p.add_argument("--no-video", action="store_true", help="skip proj.mp4 / proj.gif")
    add_device(p)
    add_precision(p)
    p.set_defaults(func=cmd_project)


def _add_run_args(p) -> None:
    p.add_argument("run", help="run directory of a stylegan2 / cstylegan2 run (or its checkpoint)")
    p.add_argument("--truncation", type=float, default=1.0, help="psi: pull w toward the average w (1 = off)")
    p.add_argument("--class", dest="class_index", type=int, help="class for conditional runs (None: class 0)")
    add_device(p)
    add_precision(p)


def _load_stylegan(a, command: str):
    from ganforge.devices import resolve_device
    from ganforge.generate.runs import load_run
    from ganforge.generate.stylegan import require_stylegan

    cfg, G, _ = load_run(a.run, device=str(resolve_device(a.device)), precision=a.precision)
    require_stylegan(G, cfg.model.family, command)
    return G


def cmd_import_stylegan(a) -> int:
    from ganforge.generate.stylegan import import_stylegan

    out = Path(a.out) if a.out else Path("runs") / Path(a.pkl).stem
    run = import_stylegan(a.pkl, out)
    print(f"imported {a.pkl} into {run}\nNext: ganforge generate {run} --n 16 --grid grid.png --truncation 0.7")
    return 0


def cmd_style_mix(a) -> int:
    from ganforge.generate.stylegan import style_mix

    G = _load_stylegan(a, "style-mix")
    cells = style_mix(G, a.rows, a.cols, styles=a.styles, truncation=a.truncation, class_index=a.class_index,
                      out=a.out)
    print(f"wrote {a.out} ({cells.shape[0]} x {cells.shape[1]} cells, styles {a.styles} from the column seeds)")
    return 0


def cmd_noise(a) -> int:
    from ganforge.generate.stylegan import noise_variation

    G = _load_stylegan(a, "noise")
    out = a.out or str(Path(a.run if Path(a.run).is_dir() else Path(a.run).parent) / "noise")
    result = noise_variation(G, a.seed, n=a.n, out_dir=out, truncation=a.truncation, class_index=a.class_index,
                             noise_seed=a.noise_seed)
    print(f"wrote {result.grid_path} ({a.n} noise draws) and {result.std_path} "
          f"(per-pixel standard deviation, max {result.std.max().item():.3f})")
    return 0


def _run_has_d(run: str) -> bool:
    """Whether the run's checkpoint holds discriminator weights (imported generators may come without)."""
    from safetensors import safe_open

    from ganforge.storage.checkpoint import resolve

    with safe_open(str(resolve(run)), framework="pt") as f:
        return any(k.startswith("D.") for k in f.keys())  # noqa: SIM118 (a safe_open handle, not a dict)


def _projection_metric(a, D, device: str):
    """(LPIPS or None, D or None, a line saying which distance is used) for ``--features``/``--vgg``."""
    from ganforge.errors import StyleGANError
    from ganforge.metrics.lpips import DOWNLOAD_HINT, ENV, default_lpips_path, load_lpips

    if a.features == "d" and a.vgg:
        raise StyleGANError("--vgg is for --features lpips or auto; drop it to use the discriminator")
    vgg = a.vgg or (default_lpips_path() if a.features != "d" else None)
    if a.features == "lpips" and vgg is None:
        raise StyleGANError(f"--features lpips needs VGG16 LPIPS weights: {DOWNLOAD_HINT}, or pass --vgg PATH "
                            f"or set ${ENV}, or use --features d")
    if vgg is not None:
        return load_lpips(vgg, device), None, f"features: LPIPS (VGG16 weights {vgg})"
    if not _run_has_d(a.run):
        raise StyleGANError(f"{a.run} holds no discriminator to compare features with: {DOWNLOAD_HINT} for "
                            f"VGG16 LPIPS weights, or pass them with --vgg PATH (or ${ENV})")
    why = f" (no VGG16 LPIPS weights found: {DOWNLOAD_HINT} or pass --vgg PATH for LPIPS)" \
        if a.features == "auto" else ""
    return None, D, f"features: the run's discriminator{why}"


def cmd_project(a) -> int:
    from tqdm.auto import tqdm

    from ganforge.devices import resolve_device
    from ganforge.edit.project import load_target, project, save_projection
    from ganforge.generate.runs import load_run
    from ganforge.generate.stylegan import require_stylegan
    from ganforge.storage.images import check_output_dir

    device = str(resolve_device(a.device))
    cfg, G, D = load_run(a.run, device=device, precision=a.precision)
    require_stylegan(G, cfg.model.family, "project")
    run_dir = Path(a.run if Path(a.run).is_dir() else Path(a.run).parent)
    out = check_output_dir(a.out or run_dir / "projections" / Path(a.image).stem)
    channels, res = G.img_shape[0], G.img_shape[-1]
    target = load_target(a.image, channels, res)
    lpips, d, line = _projection_metric(a, D, device)
    print(line)
    with tqdm(total=a.steps, unit="step", dynamic_ncols=True, disable=None) as bar:
        def progress(step, total, dist):
            bar.update(1)
            if step % 10 == 0 or step == total:
                bar.set_postfix(dist=f"{dist:.4f}")

        result = project(G, target, D=d, lpips=lpips, steps=a.steps, seed=a.seed, class_index=a.class_index,
                         progress=progress)
    saved = save_projection(result, target, out, video=not a.no_video)
    names = ", ".join(p.name for p in saved if p is not None)
    print(f"wrote {out}: {names}\nfinal distance {result.final_distance:.4f} ({result.feature_space}) after "
          f"{a.steps} steps (first step {result.distances[0]:.4f})")
    return 0
