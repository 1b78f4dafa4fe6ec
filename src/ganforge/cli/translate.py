"""`ganforge translate` and the image-to-image side of `ganforge train` (families pix2pix and srresnet)."""
from __future__ import annotations

import sys
from pathlib import Path

from ganforge.cli.common import FMT, add_device, positive, seed

# The image-to-image families (also ganforge.translate.train.TRANSLATION_FAMILIES; the CLI does not import
# torch to learn them).
TRANSLATION_FAMILIES = ("pix2pix", "srresnet")
TASKS = ("edges", "colorize", "superres", "inpaint", "paired")
# Training defaults that differ from the sampling families' when the option is not given.
TRAIN_DEFAULTS = {"batch_size": 16, "loss": "ns", "ema_decay": 0.0}


def add_translate_args(p) -> None:
    """The `ganforge train` options of the image-to-image families."""
    g = p.add_argument_group("image-to-image (--family pix2pix or srresnet)")
    g.add_argument("--task", choices=TASKS, help="what to learn: edges -> image, colorize (L -> a*b*), superres "
                                                 "(low -> high resolution), inpaint (masked -> image), or paired "
                                                 "(DATA is a folder of A|B images or with A/ and B/; the default "
                                                 "for a folder)")
    g.add_argument("--scale", type=int, choices=[2, 4], help="superres factor (None: 4)")
    g.add_argument("--downsample", choices=["area", "bicubic"], help="how superres makes its low-resolution "
                                                                     "inputs (None: bicubic, antialiased)")
    g.add_argument("--adv-weight", type=float, help="weight of the conditional GAN loss; 0: L1 only (the PSNR "
                                                    "model) (None: 1)")
    g.add_argument("--l1-weight", type=float, help="weight of the reconstruction loss to the target (None: 100)")
    g.add_argument("--recon", choices=["l1", "mse"], help="reconstruction loss: l1 (pix2pix) or mse (SRResNet's, "
                                                         "what PSNR measures) (None: l1)")
    g.add_argument("--rotate", action="store_const", const=True, help="random quarter turns of the training "
                                                                       "pairs (with --xflip all eight orientations)")
    g.add_argument("--crop", type=positive, help="random training crop, the same for A and B (None: the whole "
                                                 "image)")


def train_translation(a, cfg) -> int:
    """`ganforge train` for an image-to-image family: a new run from the options, or --resume."""
    from ganforge.config import RunConfig
    from ganforge.errors import ConfigError
    from ganforge.train.run import Interrupted, check_resumable
    from ganforge.translate.train import prepare_run

    if cfg.model.family not in TRANSLATION_FAMILIES:
        raise ConfigError(f"--task is for the image-to-image families ({', '.join(TRANSLATION_FAMILIES)}), not "
                          f"{cfg.model.family}: add --family pix2pix (or srresnet for superres)")
    if a.resume:
        cfg = RunConfig.load(a.resume)
        check_resumable(a.resume)
    else:
        if a.init:
            raise ConfigError("--init is not supported for image-to-image runs: start fresh or --resume RUN")
        _apply_options(a, cfg)
    quiet = getattr(a, "quiet", False)
    device = a.device if "device" in a.explicit or not a.resume else cfg.train.device
    try:
        run = prepare_run(cfg, run_dir=a.out, resume=a.resume, device=device, progress=not quiet,
                          steps=a.steps if a.resume and "steps" in a.explicit else None)
        with run.handle_signals():
            run.train()
            completed = run.stop_reason is None
            out = run.finish()
    except Interrupted as e:
        print(f"\nganforge train: {e}", file=sys.stderr)
        return e.code
    reason = run.stop_reason
    if reason is not None and not completed:
        print(f"\n{reason}: stopped at step {run.trainer.step_count}; checkpoint saved.\n"
              f"Continue with: ganforge train --resume {run.dir}")
        return 130 if reason == "SIGINT" else 143 if reason == "SIGTERM" else 1
    print(f"\ntrained {run.trainer.step_count} steps ({run.trainer.task.describe()}). Run directory: {run.dir}")
    for label, key in (("input|output|target", "grid"), ("results over time", "gif"), ("checkpoint", "checkpoint")):
        if key in out:
            print(f"  {label + ':':21s}{out[key]}")
    print(f"Next: ganforge translate {run.dir} IMAGE... --out DIR, or ganforge eval {run.dir}")
    return 0


def _apply_options(a, cfg) -> None:
    from ganforge.errors import ConfigError

    o = dict(cfg.model.options or {})
    task = a.task or o.get("task")
    if task is None:
        from ganforge.data.builtin import BUILTINS

        if str(cfg.data.source) in BUILTINS:
            raise ConfigError(f"--family {cfg.model.family} on built-in '{cfg.data.source}' needs --task: edges, "
                              "colorize, superres or inpaint")
        task = "paired"
    if cfg.model.family == "srresnet" and task != "superres":
        raise ConfigError(f"family srresnet only does --task superres, not {task}: use --family pix2pix")
    o["task"] = task
    for name in ("scale", "downsample", "adv_weight", "l1_weight", "recon", "crop", "rotate"):
        value = getattr(a, name)
        if value is not None:
            o[name] = value
    o.setdefault("scale", 4)
    cfg.model.options = o
    if not a.config:
        for name, value in TRAIN_DEFAULTS.items():
            if name not in a.explicit:
                setattr(cfg.train, name, value)


# ---------------------------------------------------------------------- ganforge translate
def add_parser(sub) -> None:
    p = sub.add_parser("translate", formatter_class=FMT, help="run an image-to-image model on your images",
                       description="Translate images with a pix2pix / srresnet run: each INPUT (a file or a folder "
                                   "of images) is an input of the run's task (an edge map, a gray photo, a "
                                   "low-resolution image, an image with transparent holes), or, with "
                                   "--from-target, a picture from which the task's input is made first "
                                   "(the comparison grid then shows the target). Images of any size: large ones "
                                   "are processed in overlapping tiles with blended seams, so memory stays flat.")
    p.add_argument("run", help="run directory (or checkpoint) of an image-to-image run")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of them")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the outputs and comparison.png")
    p.add_argument("--from-target", action="store_true", help="INPUTs are targets: make the task's input from "
                                                              "each (edges, L, downsampled, masked) and show the "
                                                              "target in the grid")
    p.add_argument("--task", choices=TASKS, help="check that the run was trained for this task")
    p.add_argument("--stochastic", action="store_true", help="keep the generator's dropout on (pix2pix's noise)")
    p.add_argument("--tile", type=positive, default=256, help="tile side in input pixels")
    p.add_argument("--overlap", type=positive, default=32, help="overlap of neighbouring tiles in input pixels")
    p.add_argument("--seed", type=seed, default=0, help="seed for --stochastic dropout and inpainting masks")
    p.add_argument("--no-grid", action="store_true", help="do not write comparison.png")
    add_device(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_translate)


def cmd_translate(a) -> int:
    from ganforge.devices import resolve_device
    from ganforge.translate.infer import translate_files

    written, grid_path, notes = translate_files(a.run, a.inputs, Path(a.out), from_target=a.from_target,
                                                task=a.task, stochastic=a.stochastic, tile=a.tile,
                                                overlap=a.overlap, seed=a.seed, device=str(resolve_device(a.device)),
                                                progress=not a.quiet, grid=not a.no_grid)
    for note in notes:
        print(f"ganforge translate: note: {note}", file=sys.stderr)
    skipped = sum(note.startswith("skipped ") for note in notes)
    print(f"translated {len(written)} image(s) into {a.out}" + (f" ({skipped} input(s) skipped)" if skipped else ""))
    if grid_path is not None:
        print(f"  comparison grid: {grid_path}")
    return 0


# ---------------------------------------------------------------------- ganforge eval RUN
def is_translation_run(path: str) -> bool:
    """Whether ``path`` (a run directory or its checkpoint) is a pix2pix / srresnet run (read without torch)."""
    import json

    p = Path(path)
    cfg = p / "config.json" if p.is_dir() else p.parent / "config.json"
    try:
        return json.loads(cfg.read_text()).get("model", {}).get("family") in TRANSLATION_FAMILIES
    except (OSError, ValueError, AttributeError):  # no or a damaged config: the ordinary eval path says so
        return False


def eval_translation(a) -> int:
    """`ganforge eval RUN` for an image-to-image run: the task's metrics on its test split."""
    import json

    from ganforge.devices import resolve_device
    from ganforge.errors import ConfigError
    from ganforge.translate.metrics import evaluate_run, format_result

    ignored = sorted(f"--{name.replace('_', '-')}" for name in getattr(a, "explicit", set())
                     if name not in ("run", "seed", "device", "json", "command", "func"))
    if ignored:
        raise ConfigError(f"{', '.join(ignored)}: not for an image-to-image run, whose eval reports its task's "
                          "metrics on its own test split (it takes --seed, --device and --json)")
    result = evaluate_run(a.run, device=str(resolve_device(a.device)), seed=a.seed)
    print(json.dumps(result, indent=2) if a.json else format_result(result))
    return 0
