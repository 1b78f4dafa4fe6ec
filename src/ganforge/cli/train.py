"""`ganforge train`: options -> RunConfig -> Trainer inside a Run directory."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ganforge.cli.common import FMT, json_object, layers_arg, non_negative, positive, seed
from ganforge.cli.translate import TRANSLATION_FAMILIES, add_translate_args, train_translation
from ganforge.config import DataConfig, ModelConfig, RunConfig, TrainConfig

D, M, T = DataConfig(), ModelConfig(), TrainConfig()
# train/trainer.py's OPTIMIZERS (not imported: the CLI starts without torch); sgd's momentum is betas[0]
OPTIMIZER_NAMES = ["adam", "sgd", "momentum", "rmsprop", "adagrad", "adadelta"]


def add_parser(sub):
    p = sub.add_parser("train", formatter_class=FMT, help="train a GAN on a built-in data set or your images",
                       description="Train a GAN. DATA is a built-in name (see `ganforge datasets`) or a folder / "
                                   ".zip of images (sub-folders become classes).")
    p.add_argument("data", nargs="?", default=D.source, help="data set: built-in name, folder or .zip")
    p.add_argument("--out", default=None, help="run directory (default runs/FAMILY-DATA; -2, -3... if taken)")
    p.add_argument("--resume", metavar="RUN", help="continue RUN from its checkpoint with its own config: only "
                                                    "DATA (where its data now is), --steps and --device apply")
    p.add_argument("--config", metavar="JSON", help="start from a config.json of an earlier run; flags override it")
    p.add_argument("--init", metavar="RUN", help="fine-tune: start from RUN's networks (e.g. one made by "
                                                 "import-stylegan), with RUN's model config and fresh optimizers")
    p.add_argument("--preset", help="start from a named recipe; flags override it: " + ", ".join(preset_names()))
    d = p.add_argument_group("data")
    d.add_argument("--resolution", type=int, default=D.resolution, help="image size (None: native, 64 for folders)")
    d.add_argument("--channels", type=int, choices=[1, 3], default=D.channels, help="1 gray or 3 RGB (None: auto)")
    d.add_argument("--fit", choices=["center-crop", "pad", "stretch"], default=D.fit, help="non-square images")
    d.add_argument("--no-labels", action="store_true", help="ignore class labels / sub-folder names")
    d.add_argument("--xflip", action="store_true", help="random horizontal flips of the real images")
    d.add_argument("--no-cache", action="store_true", help="decode images again instead of using the cache")
    d.add_argument("--pad", type=non_negative, default=D.pad, help="black border added around each image "
                                                                    "(2 makes 28 px MNIST 32 px)")
    m = p.add_argument_group("model")
    m.add_argument("--family", default=M.family, help="model family (see `ganforge info --families`)")
    m.add_argument("--z-dim", type=positive, default=M.z_dim, help="latent size")
    m.add_argument("--g-width", type=positive, default=M.g_width, help="generator base width")
    m.add_argument("--d-width", type=positive, default=M.d_width, help="discriminator base width")
    m.add_argument("--spectral-norm", action="store_true", help="spectral normalisation on D")
    m.add_argument("--d-norm", choices=["auto", "batch", "none"], default=M.d_norm, help="D normalisation")
    m.add_argument("--g-layers", type=layers_arg, help="layers family: generator layer list (JSON or file)")
    m.add_argument("--d-layers", type=layers_arg, help="layers family: discriminator layer list (JSON or file)")
    m.add_argument("--model-options", type=json_object, help="family options as a JSON object, e.g. stylegan2: "
                                                              "'{\"mapping_layers\": 8, \"channel_base\": 16384}'")
    t = p.add_argument_group("training")
    t.add_argument("--steps", type=positive, default=T.steps, help="generator steps")
    t.add_argument("--batch-size", type=positive, default=T.batch_size, help="global batch size")
    t.add_argument("--loss", choices=["ns", "hinge", "lsgan", "wgan-gp"], default=T.loss, help="GAN objective")
    t.add_argument("--g-opt", choices=OPTIMIZER_NAMES, default=T.g_opt, help="generator optimizer")
    t.add_argument("--d-opt", choices=OPTIMIZER_NAMES, default=T.d_opt, help="discriminator optimizer")
    t.add_argument("--g-lr", type=float, default=T.g_lr, help="generator learning rate")
    t.add_argument("--d-lr", type=float, default=T.d_lr, help="discriminator learning rate")
    t.add_argument("--g-betas", type=float, nargs=2, default=T.g_betas, help="generator Adam betas")
    t.add_argument("--d-betas", type=float, nargs=2, default=T.d_betas, help="discriminator Adam betas")
    t.add_argument("--g-momentum", type=float, default=T.g_momentum, help="generator momentum (--g-opt momentum)")
    t.add_argument("--d-momentum", type=float, default=T.d_momentum, help="discriminator momentum (--d-opt momentum)")
    t.add_argument("--d-steps", type=positive, default=T.d_steps, help="D steps per G step")
    t.add_argument("--ema-decay", type=float, default=T.ema_decay, help="generator EMA decay (0: off)")
    t.add_argument("--r1-gamma", type=float, default=T.r1_gamma, help="R1 penalty weight (0: off)")
    t.add_argument("--gp-weight", type=float, default=T.gp_weight, help="WGAN-GP penalty weight")
    t.add_argument("--drift", type=float, default=T.drift, help="weight of E[D(real)^2] in D's loss (ProGAN: 0.001)")
    t.add_argument("--growth", type=json_object, help="progan growth schedule, e.g. '{\"stabilise\": 20000, "
                                                      "\"fade\": 20000, \"batch\": {\"4\": 64}}' (images per "
                                                      "phase; default: the growth takes the first half of the run)")
    t.add_argument("--r1-every", type=positive, default=T.r1_every, help="lazy R1: every N steps (StyleGAN2: 16)")
    t.add_argument("--pl-weight", type=float, default=T.pl_weight, help="path-length regularisation (StyleGAN2: 2)")
    t.add_argument("--pl-every", type=positive, default=T.pl_every, help="lazy path-length interval")
    t.add_argument("--style-mixing", type=float, default=T.style_mixing,
                   help="style-mixing probability (StyleGAN2: 0.9)")
    t.add_argument("--ema-kimg", type=float, default=T.ema_kimg, help="G EMA half-life in thousands of images "
                                                                      "(> 0 replaces --ema-decay; StyleGAN2: 10)")
    t.add_argument("--ema-rampup", type=float, default=T.ema_rampup,
                   help="EMA half-life ramp (StyleGAN2: 0.05; 0: off)")
    t.add_argument("--ada-target", type=float, default=T.ada_target, help="adaptive augmentation target for "
                                                                          "E[sign D(real)] (paper: 0.6); 0: off")
    t.add_argument("--ada-p", type=float, default=T.ada_p, help="initial (or fixed) augmentation probability")
    t.add_argument("--ada-pipe", default=T.ada_pipe, help="ADA transforms: b blit, g geometric, c colour")
    t.add_argument("--diffaug", default=T.diffaug, help="DiffAugment policy: comma list of translation,cutout,"
                                                        "color, or '' for none (the default: measured better on "
                                                        "MNIST)")
    t.add_argument("--seed", type=seed, default=T.seed, help="random seed (same seed, same run on CPU)")
    t.add_argument("--sample-every", type=positive, default=T.sample_every, help="steps between sample grids")
    t.add_argument("--ckpt-every", type=positive, default=T.ckpt_every, help="steps between checkpoints")
    t.add_argument("--log-every", type=positive, default=T.log_every,
                   help="steps between metric logs (and, when stderr is not a terminal, plain progress lines "
                        "in place of the progress bar)")
    t.add_argument("--grid-size", type=positive, default=T.grid_size,
                   help="images per sample grid (samples.png, RUN/samples/); conditional runs put one class in "
                        "each column, so their last row may be short")
    t.add_argument("--eval-every", type=non_negative, default=T.eval_every,
                   help="steps between FID evaluations (logged to log.jsonl; the best is kept as "
                        "best.safetensors); 0: off")
    t.add_argument("--eval-n", type=positive, default=T.eval_n, help="generated images per --eval-every FID")
    h = p.add_argument_group("hardware and logging")
    h.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default=T.device, help="where to train")
    h.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=T.precision,
                   help="bf16 autocast or fp32; auto: bf16 on CPUs with AMX units (measured faster), else fp32")
    h.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=T.channels_last,
                   help="channels-last memory format; neither flag: on for the StyleGAN2 families on x86 CPUs, "
                        "where it was measured faster, else off")
    h.add_argument("--tensorboard", action="store_true", help="log scalars and grids to RUN/tensorboard")
    h.add_argument("--quiet", action="store_true", help="no progress bar")
    add_translate_args(p)
    p.set_defaults(func=cmd_train)


def preset_names() -> list[str]:
    from ganforge.train.presets import PRESETS

    return list(PRESETS)


def _config_from_args(a) -> RunConfig:
    from ganforge.errors import ConfigError
    from ganforge.train.presets import FAMILY_TRAIN_DEFAULTS, preset_config

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
    for f in ("steps", "batch_size", "loss", "g_opt", "d_opt", "g_lr", "d_lr", "d_steps",
              "g_momentum", "d_momentum", "ema_decay", "r1_gamma",
              "gp_weight", "diffaug", "seed", "sample_every", "ckpt_every", "log_every", "grid_size", "device",
              "precision", "channels_last", "tensorboard", "eval_every", "eval_n", "r1_every", "pl_weight",
              "pl_every", "style_mixing", "ema_kimg", "ema_rampup", "ada_target", "ada_p", "ada_pipe"):
        put(cfg.train, f, getattr(a, f))
    put(cfg.train, "g_betas", tuple(a.g_betas))
    put(cfg.train, "d_betas", tuple(a.d_betas))
    put(cfg.train, "drift", a.drift)
    if a.growth is not None:
        cfg.train.growth = a.growth
    if given is None:  # a family's own defaults where the user named none (a preset or config has its own)
        for f, value in FAMILY_TRAIN_DEFAULTS.get(cfg.model.family, {}).items():
            if f not in a.explicit:
                setattr(cfg.train, f, value)
    if not cfg.data.source:
        raise ConfigError(f"preset {a.preset} needs DATA: a folder or .zip of your images, e.g. "
                          f"ganforge train ~/faces --preset {a.preset}")
    return cfg


RESUME_KEEPS = {"resume", "data", "steps", "device", "quiet", "func", "command", "explicit"}


def _note_ignored(a) -> None:
    """One line naming the flags a resume does not apply: the run goes on with its own config."""
    ignored = sorted(a.explicit - RESUME_KEEPS)
    if ignored:
        from ganforge.errors import warn

        flags = ", ".join("--" + k.replace("_", "-") for k in ignored)
        warn(f"--resume continues {a.resume} with its own config, so {flags} "
             f"{'is' if len(ignored) == 1 else 'are'} ignored (only DATA, --steps and --device apply)")


def cmd_train(a) -> int:
    from ganforge.devices import resolve_device
    from ganforge.train import distributed
    from ganforge.train.presets import GPU_PRESETS
    from ganforge.train.run import Interrupted, check_config, check_resumable, run_dir_of

    if a.resume and (a.init or a.preset or a.config):
        from ganforge.errors import ConfigError

        raise ConfigError("--resume continues a run with its own config: drop --init, --preset and --config")
    if a.resume:
        a.resume = str(run_dir_of(a.resume))  # RUN/config.json or RUN/checkpoint.safetensors name RUN too
        check_resumable(a.resume)  # first: a stray file is named as not a run, not as a damaged config
        cfg = RunConfig.load(a.resume)
        if "data" in a.explicit:  # the run's data folder moved, or the run is resumed from another directory
            cfg.data.source = a.data
        _note_ignored(a)
    else:
        cfg = _config_from_args(a)
        if a.init:
            init_cfg = RunConfig.load(a.init)
            cfg.model = init_cfg.model  # the weights fix the architecture
            if "loss" not in a.explicit and not (a.preset or a.config):
                cfg.train.loss = init_cfg.train.loss  # fine-tune with the objective the network was trained on
    if not a.resume:  # a file, a path under one, or a read-only place: said before the data is decoded
        from ganforge.storage.images import check_output_dir

        check_output_dir(a.out or "runs", "the run")
    if cfg.model.family in TRANSLATION_FAMILIES or getattr(a, "task", None):  # image-to-image: translate/train.py
        return train_translation(a, cfg)
    device = resolve_device(a.device if "device" in a.explicit or not a.resume else cfg.train.device)
    dist = distributed.init_from_env(device.type)
    try:
        # Everything that does not need the data is checked before it is read (decoding can take minutes).
        check_config(cfg, world_size=dist.world_size)
        if a.preset in GPU_PRESETS and device.type == "cpu" and dist.is_main:
            print(f"ganforge: warning: preset {a.preset} is sized for a GPU; on a CPU the paper's length "
                  "takes far longer than anyone waits (measured CPU speed: docs/benchmarks.md)", file=sys.stderr)
        status = _train(a, cfg, device, dist)
    except Interrupted as e:
        distributed.shutdown(dist, wait=False)
        if dist.is_main:
            print(f"\nganforge train: {e}", file=sys.stderr)
        return e.code
    except BaseException:
        distributed.shutdown(dist, wait=False)  # the other ranks may never reach a barrier
        raise
    distributed.shutdown(dist)
    if dist.active:
        distributed.exit_worker(status)
    return status


def _train(a, cfg: RunConfig, device, dist) -> int:
    from ganforge.train.run import Interrupted

    made: list[Path] = []  # the run directory, once this command has made it
    try:
        run = _prepare(a, cfg, device, dist, made)
    except KeyboardInterrupt as e:  # before the run's own signal handling starts: nothing to save yet
        if isinstance(e, Interrupted):
            raise
        if a.resume:
            where = f"{a.resume} is unchanged"
        elif made:
            where = f"{made[0]} holds no checkpoint (it never saved one)"
        else:
            where = "no run directory was made"
        raise Interrupted(f"interrupted before training started; {where}") from None
    with run.handle_signals():
        run.train()
        completed = run.stop_reason is None  # every step done and saved
        out = run.finish()
    if not dist.is_main:
        return 0
    reason = run.stop_reason
    if reason is not None and completed:  # stopped while the final grid / GIF were written: nothing to resume
        print(f"\ntrained {run.trainer.step_count} steps ({reason} skipped the final samples.png / progress.gif). "
              f"Run directory: {run.dir}")
        return 0
    if reason is not None:
        print(f"\n{reason}: stopped at step {run.trainer.step_count}; checkpoint saved.\n"
              f"Continue with: ganforge train --resume {run.dir}")
        return 130 if reason == "SIGINT" else 143 if reason == "SIGTERM" else 1
    print(f"\ntrained {run.trainer.step_count} steps. Run directory: {run.dir}")
    for label, key in (("sample grid", "grid"), ("results over time", "gif"), ("checkpoint", "checkpoint")):
        if key in out:
            print(f"  {label + ':':19s}{out[key]}")
    print(f"Next: ganforge generate {run.dir} --n 16 --grid grid.png")
    return 0


def _prepare(a, cfg: RunConfig, device, dist, made: list[Path]):
    """Data, trainer and run directory: the Run to train."""
    from ganforge.data import load_dataset
    from ganforge.devices import set_cpu_threads
    from ganforge.train import distributed
    from ganforge.train.run import Run, new_run_dir
    from ganforge.train.trainer import Trainer, check_init_fits, init_weights

    if device.type == "cuda":
        import torch

        device = torch.device("cuda", dist.local_rank)
    else:
        set_cpu_threads(dist.world_size)
    data = load_dataset(cfg.data, family=cfg.model.family)
    if dist.is_main:
        print(f"data: {data}")
    if a.resume:
        run = Run.resume(a.resume, data, device=device, dist=dist, progress=not a.quiet,
                         steps=a.steps if "steps" in a.explicit else None,
                         source=a.data if "data" in a.explicit else None)
        done, steps = run.trainer.step_count, run.trainer.cfg.train.steps
        if dist.is_main:
            print(f"resuming {a.resume} at step {done} of {steps}" + (
                f": already done; give --steps above {done} to train further" if done >= steps else ""))
        return run
    if a.init:
        check_init_fits(a.init, RunConfig.load(a.init), data)
    trainer = Trainer(cfg, data, device=device, dist=dist)
    if a.init:
        from ganforge.storage.checkpoint import load_checkpoint

        loaded = init_weights(trainer, a.init, load_checkpoint(a.init)[0], RunConfig.load(a.init))
        if dist.is_main:
            print(f"initialised {', '.join(loaded)} from {a.init}")
    run_dir = a.out or f"runs/{cfg.model.family}-{Path(cfg.data.source).stem or 'data'}"
    run_dir = distributed.agree_on(str(new_run_dir(run_dir)) if dist.is_main else None, dist)
    made.append(Path(run_dir))
    return Run(trainer, run_dir, progress=not a.quiet)
