"""The ``ganforge`` command line: a thin client of the library."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import DataConfig, ModelConfig, RunConfig, TrainConfig

D, M, T = DataConfig(), ModelConfig(), TrainConfig()
FMT = argparse.ArgumentDefaultsHelpFormatter


def _layers_arg(value: str):
    """A JSON list of layers, inline or in a file."""
    text = Path(value).read_text() if Path(value).is_file() else value
    try:
        layers = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not a JSON layer list or a file holding one ({e.msg})") from e
    if not isinstance(layers, list):
        raise argparse.ArgumentTypeError("a layer list must be a JSON array of objects")
    return layers


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {value}")
    return n


def _non_negative(value: str) -> int:
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or a positive whole number, got {value}")
    return n


def _add_train(sub):
    p = sub.add_parser("train", formatter_class=FMT, help="train a GAN on a built-in data set or your images",
                       description="Train a GAN. DATA is a built-in name (see `ganforge datasets`) or a folder / "
                                   ".zip of images (sub-folders become classes).")
    p.add_argument("data", nargs="?", default=D.source, help="data set: built-in name, folder or .zip")
    p.add_argument("--out", default=None, help="run directory (default runs/FAMILY-DATA; -2, -3... if taken)")
    p.add_argument("--resume", metavar="RUN", help="continue RUN from its checkpoint (other options ignored "
                                                    "except --steps and --device)")
    p.add_argument("--config", metavar="JSON", help="start from a config.json of an earlier run; flags override it")
    p.add_argument("--init", metavar="RUN", help="fine-tune: start from RUN's networks (e.g. one made by "
                                                 "import-stylegan), with RUN's model config and fresh optimizers")
    p.add_argument("--preset", help="start from a named recipe; flags override it: " + ", ".join(_preset_names()))
    d = p.add_argument_group("data")
    d.add_argument("--resolution", type=int, default=D.resolution, help="image size (None: native, 64 for folders)")
    d.add_argument("--channels", type=int, choices=[1, 3], default=D.channels, help="1 gray or 3 RGB (None: auto)")
    d.add_argument("--fit", choices=["center-crop", "pad", "stretch"], default=D.fit, help="non-square images")
    d.add_argument("--no-labels", action="store_true", help="ignore class labels / sub-folder names")
    d.add_argument("--xflip", action="store_true", help="random horizontal flips of the real images")
    d.add_argument("--no-cache", action="store_true", help="decode images again instead of using the cache")
    d.add_argument("--pad", type=_non_negative, default=D.pad, help="black border added around each image "
                                                                    "(2 makes 28 px MNIST 32 px)")
    m = p.add_argument_group("model")
    m.add_argument("--family", default=M.family, help="model family (see `ganforge info --families`)")
    m.add_argument("--z-dim", type=_positive, default=M.z_dim, help="latent size")
    m.add_argument("--g-width", type=_positive, default=M.g_width, help="generator base width")
    m.add_argument("--d-width", type=_positive, default=M.d_width, help="discriminator base width")
    m.add_argument("--spectral-norm", action="store_true", help="spectral normalisation on D")
    m.add_argument("--d-norm", choices=["auto", "batch", "none"], default=M.d_norm, help="D normalisation")
    m.add_argument("--g-layers", type=_layers_arg, help="layers family: generator layer list (JSON or file)")
    m.add_argument("--d-layers", type=_layers_arg, help="layers family: discriminator layer list (JSON or file)")
    m.add_argument("--model-options", type=_json_object, help="family options as a JSON object, e.g. stylegan2: "
                                                              "'{\"mapping_layers\": 8, \"channel_base\": 16384}'")
    t = p.add_argument_group("training")
    t.add_argument("--steps", type=_positive, default=T.steps, help="generator steps")
    t.add_argument("--batch-size", type=_positive, default=T.batch_size, help="global batch size")
    t.add_argument("--loss", choices=["ns", "hinge", "lsgan", "wgan-gp"], default=T.loss, help="GAN objective")
    t.add_argument("--g-opt", choices=["adam", "sgd", "rmsprop"], default=T.g_opt, help="generator optimizer")
    t.add_argument("--d-opt", choices=["adam", "sgd", "rmsprop"], default=T.d_opt, help="discriminator optimizer")
    t.add_argument("--g-lr", type=float, default=T.g_lr, help="generator learning rate")
    t.add_argument("--d-lr", type=float, default=T.d_lr, help="discriminator learning rate")
    t.add_argument("--g-betas", type=float, nargs=2, default=T.g_betas, help="generator Adam betas")
    t.add_argument("--d-betas", type=float, nargs=2, default=T.d_betas, help="discriminator Adam betas")
    t.add_argument("--d-steps", type=_positive, default=T.d_steps, help="D steps per G step")
    t.add_argument("--ema-decay", type=float, default=T.ema_decay, help="generator EMA decay (0: off)")
    t.add_argument("--r1-gamma", type=float, default=T.r1_gamma, help="R1 penalty weight (0: off)")
    t.add_argument("--gp-weight", type=float, default=T.gp_weight, help="WGAN-GP penalty weight")
    t.add_argument("--r1-every", type=_positive, default=T.r1_every, help="lazy R1: every N steps (StyleGAN2: 16)")
    t.add_argument("--pl-weight", type=float, default=T.pl_weight, help="path-length regularisation (StyleGAN2: 2)")
    t.add_argument("--pl-every", type=_positive, default=T.pl_every, help="lazy path-length interval")
    t.add_argument("--style-mixing", type=float, default=T.style_mixing, help="style-mixing probability (0.9)")
    t.add_argument("--ema-kimg", type=float, default=T.ema_kimg, help="G EMA half-life in thousands of images "
                                                                      "(> 0 replaces --ema-decay)")
    t.add_argument("--ema-rampup", type=float, default=T.ema_rampup, help="EMA half-life ramp (0.05; 0: off)")
    t.add_argument("--ada-target", type=float, default=T.ada_target, help="adaptive augmentation target for "
                                                                          "E[sign D(real)] (0.6); 0: off")
    t.add_argument("--ada-p", type=float, default=T.ada_p, help="initial (or fixed) augmentation probability")
    t.add_argument("--ada-pipe", default=T.ada_pipe, help="ADA transforms: b blit, g geometric, c colour")
    t.add_argument("--diffaug", default=T.diffaug, help="DiffAugment policy: comma list of translation,cutout,"
                                                        "color; '' for none (measured better on MNIST)")
    t.add_argument("--seed", type=int, default=T.seed, help="random seed (same seed, same run on CPU)")
    t.add_argument("--sample-every", type=_positive, default=T.sample_every, help="steps between sample grids")
    t.add_argument("--ckpt-every", type=_positive, default=T.ckpt_every, help="steps between checkpoints")
    t.add_argument("--log-every", type=_positive, default=T.log_every, help="steps between metric logs")
    t.add_argument("--grid-size", type=_positive, default=T.grid_size, help="images per sample grid")
    t.add_argument("--eval-every", type=_non_negative, default=T.eval_every,
                   help="steps between FID evaluations (logged to log.jsonl; the best is kept as "
                        "best.safetensors); 0: off")
    t.add_argument("--eval-n", type=_positive, default=T.eval_n, help="generated images per --eval-every FID")
    h = p.add_argument_group("hardware and logging")
    h.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default=T.device, help="where to train")
    h.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=T.precision,
                   help="bf16 autocast or fp32; auto: bf16 on CPUs with AMX units (measured faster), else fp32")
    h.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=T.channels_last,
                   help="channels-last memory format; neither flag: on for the StyleGAN2 families on x86 CPUs, "
                        "where it was measured faster, else off")
    h.add_argument("--tensorboard", action="store_true", help="log scalars and grids to RUN/tensorboard")
    h.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def _preset_names() -> list[str]:
    from .presets import PRESETS

    return list(PRESETS)


def _json_object(value: str) -> dict:
    try:
        obj = json.loads(value)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not a JSON object ({e.msg})") from e
    if not isinstance(obj, dict):
        raise argparse.ArgumentTypeError("must be a JSON object like '{\"mapping_layers\": 8}'")
    return obj


def _config_from_args(a) -> RunConfig:
    from .config import ConfigError
    from .presets import preset_config

    if a.config and a.preset:
        raise ConfigError("--config and --preset both give a starting config: use one of them")
    cfg = RunConfig.load(a.config) if a.config else preset_config(a.preset) if a.preset else RunConfig()
    given = a.explicit if (a.config or a.preset) else None

    def put(section, field, value, arg=None):
        if given is None or (arg or field) in given:
            setattr(section, field, value)

    put(cfg.data, "source", a.data, arg="data")
    for f in ("resolution", "channels", "fit", "xflip"):
        put(cfg.data, f, getattr(a, f))
    put(cfg.data, "labels", not a.no_labels, arg="no_labels")
    put(cfg.data, "cache", not a.no_cache, arg="no_cache")
    put(cfg.data, "pad", a.pad)
    for f in ("family", "z_dim", "g_width", "d_width", "spectral_norm", "d_norm", "g_layers", "d_layers"):
        put(cfg.model, f, getattr(a, f))
    if a.model_options is not None:
        cfg.model.options = {**(cfg.model.options or {}), **a.model_options}  # a preset's options stay unless named
    for f in ("steps", "batch_size", "loss", "g_opt", "d_opt", "g_lr", "d_lr", "d_steps", "ema_decay", "r1_gamma",
              "gp_weight", "diffaug", "seed", "sample_every", "ckpt_every", "log_every", "grid_size", "device",
              "precision", "channels_last", "tensorboard", "eval_every", "eval_n", "r1_every", "pl_weight",
              "pl_every", "style_mixing", "ema_kimg", "ema_rampup", "ada_target", "ada_p", "ada_pipe"):
        put(cfg.train, f, getattr(a, f))
    put(cfg.train, "g_betas", tuple(a.g_betas))
    put(cfg.train, "d_betas", tuple(a.d_betas))
    if not cfg.data.source:
        raise ConfigError(f"preset {a.preset} needs DATA: a folder or .zip of your images, e.g. "
                          f"ganforge train ~/faces --preset {a.preset}")
    return cfg


def cmd_train(a) -> int:
    from .presets import GPU_PRESETS
    from .train import distributed
    from .train.trainer import resolve_device

    if a.resume and (a.init or a.preset or a.config):
        from .config import ConfigError

        raise ConfigError("--resume continues a run with its own config: drop --init, --preset and --config")
    if a.resume:
        cfg = RunConfig.load(a.resume)
    else:
        cfg = _config_from_args(a)
    device = resolve_device(a.device if "device" in a.explicit or not a.resume else cfg.train.device)
    dist = distributed.init_from_env(device.type)
    if a.preset in GPU_PRESETS and device.type == "cpu" and dist.is_main:
        print(f"warning: preset {a.preset} is sized for a GPU; on a 2-core CPU paper256 trains at about 1,400 s "
              "per thousand images (docs/benchmarks.md), so the paper's length would take over a year",
              file=sys.stderr)
    try:
        status = _train(a, cfg, device, dist)
    except BaseException:
        distributed.shutdown(dist, wait=False)  # the other ranks may never reach a barrier
        raise
    distributed.shutdown(dist)
    if dist.active:
        distributed.exit_worker(status)
    return status


def _train(a, cfg: RunConfig, device, dist) -> int:
    from .data import load_dataset
    from .train import distributed
    from .train.run import Run, new_run_dir
    from .train.trainer import Trainer, init_weights, set_cpu_threads

    if device.type == "cuda":
        import torch

        device = torch.device("cuda", dist.local_rank)
    else:
        set_cpu_threads(dist)
    data = load_dataset(cfg.data)
    if dist.is_main:
        print(f"data: {data}")
    if a.resume:
        run = Run.resume(a.resume, data, device=device, dist=dist, progress=not a.quiet,
                         steps=a.steps if "steps" in a.explicit else None)
        if dist.is_main:
            print(f"resuming {a.resume} at step {run.trainer.step_count} of {run.trainer.cfg.train.steps}")
    else:
        init = None
        if a.init:
            from .checkpoint import load_checkpoint
            from .config import RunConfig

            init = RunConfig.load(a.init)
            cfg.model = init.model  # the weights fix the architecture
        trainer = Trainer(cfg, data, device=device, dist=dist)
        if init is not None:
            loaded = init_weights(trainer, a.init, load_checkpoint(a.init)[0], init)
            if dist.is_main:
                print(f"initialised {', '.join(loaded)} from {a.init}")
        run_dir = a.out or f"runs/{cfg.model.family}-{Path(cfg.data.source).stem or 'data'}"
        run_dir = distributed.agree_on(str(new_run_dir(run_dir)) if dist.is_main else None, dist)
        run = Run(trainer, run_dir, progress=not a.quiet)
    reason = run.train()
    out = run.finish()
    if not dist.is_main:
        return 0
    if reason != "done":
        print(f"\n{reason}: stopped at step {run.trainer.step_count}; checkpoint saved.\n"
              f"Continue with: ganforge train --resume {run.dir}")
        return 130 if reason == "SIGINT" else 143 if reason == "SIGTERM" else 1
    print(f"\ntrained {run.trainer.step_count} steps. Run directory: {run.dir}")
    for label, key in (("sample grid", "grid"), ("results over time", "gif"), ("checkpoint", "checkpoint")):
        if key in out:
            print(f"  {label + ':':19s}{out[key]}")
    print(f"Next: ganforge generate {run.dir} --n 16 --grid grid.png")
    return 0


def _add_generate(sub):
    p = sub.add_parser("generate", formatter_class=FMT, help="write samples of a trained run as PNGs or a grid")
    p.add_argument("run", help="run directory (or its checkpoint.safetensors)")
    p.add_argument("--n", type=_positive, default=16, help="number of images")
    p.add_argument("--out", help="folder for one PNG per image (default RUN/generated when --grid is not given)")
    p.add_argument("--grid", help="also/instead write one grid image to this file")
    p.add_argument("--seed", type=int, default=0, help="latent seed: same seed, same images")
    p.add_argument("--class", dest="class_index", type=int, help="class index for conditional runs (default: "
                                                                  "cycle through all classes)")
    p.add_argument("--truncation", type=_psi_list, default=[1.0],
                   help="psi: pull latents toward the mean (1 = off); a comma list (e.g. 1,0.7,0.5,0) makes a "
                        "sweep: the same seeds at every psi, one grid row per seed, PNGs named by psi")
    p.add_argument("--truncation-center", choices=["global", "class"], default="global",
                   help="what a conditional StyleGAN2 truncates toward: the one average w it tracks (as the "
                        "official networks) or the mean w of each sample's class (keeps the class at low psi)")
    p.add_argument("--batch-size", type=_positive, default=256, help="images per forward pass")
    p.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    p.set_defaults(func=cmd_generate)


def _psi_list(value: str) -> list[float]:
    try:
        psis = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number or a comma list of numbers, got {value!r}") from None
    if not psis:
        raise argparse.ArgumentTypeError("give at least one psi, e.g. 0.7 or 1,0.7,0.5")
    return psis


def cmd_generate(a) -> int:
    from .api import load
    from .generate import check_truncation, sample, truncation_sweep, write_pngs
    from .images import auto_upscale, check_image_path, check_output_dir, grid
    from .train.trainer import resolve_device

    if a.grid:
        check_image_path(a.grid)
    if a.out:
        check_output_dir(a.out)
    for psi in a.truncation:
        check_truncation(psi)
    G = load(a.run, device=str(resolve_device(a.device)))
    out = a.out or (None if a.grid else str(Path(a.run) / "generated"))
    sweep = len(a.truncation) > 1
    if sweep:  # [n, k] images: row = seed, column = psi
        table = truncation_sweep(G, a.n, a.truncation, seed=a.seed, class_index=a.class_index,
                                 batch_size=a.batch_size, center=a.truncation_center)
        images, nrow = table.flatten(0, 1), len(a.truncation)
    else:
        images = sample(G, a.n, seed=a.seed, class_index=a.class_index, truncation=a.truncation[0],
                        batch_size=a.batch_size, center=a.truncation_center)
        nrow = G.num_classes if G.num_classes and a.class_index is None else None
    if out:
        if sweep:
            count = sum(len(write_pngs(table[:, j], out, prefix=f"psi{psi:g}"))
                        for j, psi in enumerate(a.truncation))
        else:
            count = len(write_pngs(images, out))
        print(f"wrote {count} PNGs to {out}")
    if a.grid:
        grid(images, nrow=nrow, upscale=auto_upscale(images.shape[-1])).save(a.grid)
        cols = f" (columns: psi {', '.join(f'{p:g}' for p in a.truncation)})" if sweep else ""
        print(f"wrote grid {a.grid}{cols}")
    return 0


def _add_interpolate(sub):
    p = sub.add_parser("interpolate", formatter_class=FMT, help="render a looping walk through latent space")
    p.add_argument("run", help="run directory")
    p.add_argument("--out", default="loop.gif", help="output .gif (or .mp4 with imageio-ffmpeg)")
    p.add_argument("--keys", type=_positive, default=4, help="seeded key points in the loop")
    p.add_argument("--steps", type=_positive, default=24, help="frames between key points")
    p.add_argument("--n", type=_positive, default=1, help="independent walks side by side")
    p.add_argument("--seed", type=int, default=0, help="seed of the first walk's key points")
    p.add_argument("--class", dest="class_index", type=int, help="class for conditional runs")
    p.add_argument("--truncation", type=float, default=1.0, help="psi (1 = off)")
    p.add_argument("--fps", type=_positive, default=20, help="frames per second")
    p.add_argument("--space", choices=["z", "w"], default="z", help="interpolate latents z (spherically) or, for "
                                                                     "StyleGAN2 runs, mapped styles w (linearly)")
    p.set_defaults(func=cmd_interpolate)


def cmd_interpolate(a) -> int:
    from .api import load_run
    from .generate import interpolate

    cfg, G, _ = load_run(a.run)
    walk = interpolate
    if a.space == "w":
        from .stylegan_tools import interpolate_w, require_stylegan

        require_stylegan(G, cfg.model.family, "interpolate --space w")
        walk = interpolate_w
    path = walk(G, a.out, keys=a.keys, steps=a.steps, seed=a.seed, class_index=a.class_index,
                truncation=a.truncation, n=a.n, fps=a.fps)
    print(f"wrote {path} ({a.keys * a.steps} frames, loops seamlessly)")
    return 0


def _add_info(sub):
    p = sub.add_parser("info", formatter_class=FMT, help="describe a run, or list the model families")
    p.add_argument("run", nargs="?", help="run directory")
    p.add_argument("--families", action="store_true", help="list the model families")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)


def cmd_info(a) -> int:
    from .info import describe_run, families_table

    if a.families or not a.run:
        print(families_table())
        return 0
    info = describe_run(a.run)
    print(json.dumps(info, indent=2) if a.json else info["text"])
    return 0


def _add_datasets(sub):
    p = sub.add_parser("datasets", formatter_class=FMT, help="list the built-in data sets")
    p.set_defaults(func=cmd_datasets)


def cmd_datasets(a) -> int:
    from .data import builtin_datasets

    for name, desc in builtin_datasets().items():
        print(f"{name:10s} {desc}")
    print("\nOr pass a folder or .zip of images (png, jpg, webp, bmp, gif); sub-folders become class labels.")
    return 0


def _add_bench(sub):
    p = sub.add_parser("bench", formatter_class=FMT, help="measure training and generation speed on this device")
    p.add_argument("--family", default="dcgan", help="model family to measure")
    p.add_argument("--data", default="mnist", help="data set")
    p.add_argument("--steps", type=_positive, default=40, help="timed training steps per measurement")
    p.add_argument("--batch-size", type=_positive, default=64, help="training batch size")
    p.add_argument("--repeats", type=_positive, default=3, help="alternating repeats (the best is kept)")
    p.add_argument("--device", default="auto", help="cpu, cuda, mps or auto")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_bench)


def cmd_bench(a) -> int:
    from .bench import format_report, run_bench

    report = run_bench(family=a.family, data=a.data, steps=a.steps, batch_size=a.batch_size, repeats=a.repeats,
                       device=a.device)
    print(json.dumps(report, indent=2) if a.json else format_report(report))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="ganforge", description="Train, sample and measure GANs.", formatter_class=FMT)
    p.add_argument("--version", action="version", version=f"ganforge {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from .metrics.command import add_parser as _add_eval
    from .stylegan_cli import add_parsers as _add_stylegan

    for add in (_add_train, _add_generate, _add_interpolate, _add_info, _add_datasets, _add_bench, _add_eval,
                _add_stylegan):
        add(sub)
    return p


def _explicit_options(argv: list[str] | None) -> set[str]:
    """Names of the options the user actually typed (so --resume/--config keep the rest)."""
    parser = build_parser()
    for action in parser._subparsers._group_actions[0].choices.values():
        for act in action._actions:
            act.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .data import DataError
    from .generate import GenerateError
    from .images import OutputPathError
    from .metrics.errors import EvalError
    from .train.trainer import TrainError

    args = build_parser().parse_args(argv)
    args.explicit = _explicit_options(argv)
    try:
        return args.func(args)
    except (ConfigError, DataError, CheckpointError, GenerateError, TrainError, EvalError, OutputPathError,
            FileNotFoundError) as e:
        print(f"ganforge {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
