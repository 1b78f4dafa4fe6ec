"""`ganforge directions` and `ganforge edit`: find editing directions in a run's latent space and walk along
them (InterFaceGAN, SeFa, GANSpace)."""
from __future__ import annotations

import re
from pathlib import Path

from ganforge.cli.common import FMT, add_device, add_precision, positive, seed

ATTRIBUTES = "thickness, slant, width, class:K"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "directions", formatter_class=FMT, help="find editing directions (SeFa, PCA, InterFaceGAN SVM)",
        description="Find directions in a run's latent space that change one thing about the image. sefa: closed "
                    "form from the first style/affine weights, no sampling (the top eigenvectors); pca: principal "
                    "components of sampled w or z (GANSpace); svm: render seeds, score them (--labels, "
                    "--attribute or --classifier) and take the normal of a linear SVM between the highest and "
                    "lowest scores (InterFaceGAN); --condition projects other attributes out of it. "
                    "Seed s is the image `ganforge generate RUN --n 1 --seed s` draws (conditional runs: class "
                    "s mod the number of classes, unless --class). Edit with `ganforge edit`.")
    p.add_argument("run", help="run directory (or its checkpoint)")
    p.add_argument("--method", choices=["sefa", "pca", "svm"], default="sefa", help="how to find the directions")
    p.add_argument("--out", help="directions file to write (.npz; None: RUN/directions/NAME.npz, NAME the "
                                 "--name, --attribute or method, where the playground's Explore tab finds it)")
    p.add_argument("--space", choices=["z", "w"], help="latent space (None: w for StyleGAN2 runs, else z)")
    p.add_argument("--layers", help="w layers, e.g. 0-5, coarse, middle, fine (None: all); sefa reads these "
                                    "layers' style weights, and `ganforge edit` moves them by default")
    p.add_argument("--k", type=positive, default=10, help="directions to keep (sefa, pca)")
    p.add_argument("--n", type=positive, default=10000, help="seeds sampled (pca, svm without --labels)")
    p.add_argument("--seed", type=seed, default=0, help="first seed sampled")
    p.add_argument("--labels", metavar="FILE.csv", help="svm: seed,score rows (more score columns and a header "
                                                        "row like seed,age,glasses allowed)")
    p.add_argument("--attribute", help=f"svm: a built-in attribute ({ATTRIBUTES}) or a column of --labels")
    p.add_argument("--classifier", metavar="SPEC",
                   help="svm: module:callable or file.py:callable (images [B, C, H, W] in [-1, 1] -> [B] scores), "
                        "or a folder with one sub-folder of images per label: ganforge trains a logistic "
                        "regression on them and scores the log-odds of --positive")
    p.add_argument("--positive", metavar="LABEL", help="the label a classifier folder scores (None: the last "
                                                       "sub-folder in sorted order)")
    p.add_argument("--condition", metavar="A,B", help="svm: attributes to project out (built-in or --labels "
                                                      "columns), e.g. slant")
    p.add_argument("--name", help="svm: the direction's name (None: the attribute's)")
    p.add_argument("--fraction", type=float, default=0.25, help="svm: share of highest and of lowest scores fitted")
    p.add_argument("--class", dest="class_index", type=int, help="conditional runs: draw every seed as this class")
    p.add_argument("--batch-size", type=positive, default=256, help="images per forward pass")
    add_device(p)
    add_precision(p)
    p.set_defaults(func=cmd_directions)

    p = sub.add_parser(
        "edit", formatter_class=FMT, help="render an edit strip along a direction",
        description="Move one seed's latent (or a photo's, projected with `ganforge project`) along a direction "
                    "from `ganforge directions` and render the images side by side (.png) or as frames "
                    "(.gif, .mp4). Strengths are in standard deviations of the sampled latents along the "
                    "direction.")
    p.add_argument("run", help="run directory (or its checkpoint)")
    p.add_argument("--directions", required=True, metavar="DIRS.npz", help="file from `ganforge directions`")
    p.add_argument("--name", required=True, help="direction to follow, e.g. thickness or sefa0")
    p.add_argument("--seed", type=seed, default=0, help="the image to edit")
    p.add_argument("--strength", default="-3:3:7", help="START:STOP:COUNT, a comma list or one number")
    p.add_argument("--layers", help="w layers to move, e.g. 0-5 (None: the layers the directions were found for)")
    p.add_argument("--w", metavar="projected_w.npz", help="edit this projected w instead of --seed's")
    p.add_argument("--class", dest="class_index", type=int, help="conditional runs: the class drawn (None: seed "
                                                                  "mod the number of classes)")
    p.add_argument("--fps", type=positive, default=4, help="frames per second of a .gif / .mp4")
    p.add_argument("--out", default="edit.png", help="strip to write: .png (side by side), .gif or .mp4")
    add_device(p)
    add_precision(p)
    # argparse reads '-3:3:7' as an unknown option (only plain numbers like -3 pass as values); let every
    # word that starts with a minus and a digit be a value, so `--strength -3:3:7` works without '='.
    p._negative_number_matcher = re.compile(r"^-\.?\d")
    p.set_defaults(func=cmd_edit)


def _load(a):
    from ganforge.devices import resolve_device
    from ganforge.generate.runs import load_run
    from ganforge.generate.sampling import require_latent_generator

    cfg, G, _ = load_run(a.run, device=str(resolve_device(a.device)), precision=a.precision)
    require_latent_generator(G)  # an image-to-image run has no latent space to find or follow directions in
    return cfg, G


def _csv(text: str | None) -> list[str]:
    return [v.strip() for v in (text or "").split(",") if v.strip()]


def cmd_directions(a) -> int:
    import time

    from ganforge.edit.attributes import scorer
    from ganforge.edit.directions import find_directions
    from ganforge.errors import ConfigError, OutputPathError

    if a.out is None:
        run = Path(a.run) if Path(a.run).is_dir() else Path(a.run).parent
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", a.name or a.attribute or a.method).strip("._") or a.method
        a.out = str(run / "directions" / f"{stem}.npz")
    if Path(a.out).suffix.lower() != ".npz":
        raise OutputPathError(f"--out must name a .npz file, got {a.out}")
    if a.method != "svm":
        given = [f"--{n}" for n in ("labels", "attribute", "classifier", "condition", "positive")
                 if getattr(a, n) is not None] + (["--fraction"] if "fraction" in a.explicit else [])
        if given:
            raise ConfigError(f"{', '.join(given)} are for --method svm, not {a.method}")
    elif not 0 < a.fraction <= 0.5:  # before any image is rendered
        raise ConfigError(f"--fraction is the share of highest and of lowest scores fitted, in (0, 0.5], got "
                          f"{a.fraction}")
    cfg, G = _load(a)
    classifier, classifier_name = None, "classifier"
    if a.classifier:
        if a.attribute is not None and not a.labels:
            raise ConfigError("give either --attribute or --classifier as the score, not both")
        classifier, classifier_name = scorer(a.classifier, G.img_shape[0], G.img_shape[-1], a.positive)
        if hasattr(classifier, "train_accuracy"):
            counts = ", ".join(f"{k} {v}" for k, v in classifier.counts.items())
            print(f"classifier: logistic regression on {a.classifier} ({counts}), scoring '{classifier.positive}', "
                  f"training accuracy {classifier.train_accuracy:.3f}")
    elif a.positive:
        raise ConfigError("--positive names a label of a --classifier folder")
    start = time.perf_counter()
    dirs = find_directions(G, a.method, space=a.space, layers=a.layers, k=a.k, n=a.n, seed=a.seed,
                           attribute=a.attribute, labels=a.labels, classifier=classifier,
                           classifier_name=classifier_name, conditions=_csv(a.condition), name=a.name,
                           fraction=a.fraction, class_index=a.class_index, family=cfg.model.family,
                           crop=cfg.data.pad, batch_size=a.batch_size, log=print)
    took = time.perf_counter() - start
    dirs.save(a.out)
    layers = "" if dirs.layers is None else f", layers {_ranges(dirs.layers)}"
    what = {"sefa": "eigenvalue", "pca": "explained variance", "svm": "training accuracy"}[dirs.method]
    print(f"wrote {a.out}: {len(dirs.names)} {dirs.method} direction(s) in {dirs.space}{layers} "
          f"({took:.2f} s)")
    for name, value, std in zip(dirs.names, dirs.values, dirs.std):
        print(f"  {name}: {what} {value:.4g}, std {std:.4g}")
    print(f"Next: ganforge edit {a.run} --directions {a.out} --name {dirs.names[0]} --seed 0 --out edit.png")
    return 0


def _ranges(layers: list[int]) -> str:
    parts, start = [], None
    for i, v in enumerate(layers):
        if start is None:
            start = v
        if i + 1 == len(layers) or layers[i + 1] != v + 1:
            parts.append(f"{start}" if start == v else f"{start}-{v}")
            start = None
    return ",".join(parts)


def cmd_edit(a) -> int:
    from ganforge.edit.directions import load_directions
    from ganforge.edit.editing import check_strip_path, load_projected_w, parse_strengths, render_strip
    from ganforge.errors import ConfigError
    from ganforge.generate.stylegan import require_stylegan

    strengths = parse_strengths(a.strength)
    check_strip_path(a.out, a.fps)
    cfg, G = _load(a)
    dirs = load_directions(a.directions, G, family=cfg.model.family)
    dirs.index(a.name)
    w = None
    if a.w:
        if "seed" in a.explicit:
            raise ConfigError("--seed picks a sampled image and --w a projected one: give one of them")
        require_stylegan(G, cfg.model.family, "edit --w")
        w = load_projected_w(a.w, G)
    images = render_strip(G, dirs, a.name, seed=a.seed, strengths=strengths, layers=a.layers, w=w,
                          class_index=a.class_index, out=a.out, fps=a.fps, family=cfg.model.family)
    source = f"the projected w {a.w}" if a.w else f"seed {a.seed}"
    print(f"wrote {a.out}: {len(images)} images of {source} along '{a.name}', strength "
          f"{', '.join(f'{s:g}' for s in strengths)} (x std {dirs.std_of(a.name):.3g})")
    return 0
