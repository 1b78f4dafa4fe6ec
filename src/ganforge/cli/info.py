"""`ganforge info`, `datasets` and `bench`: what a run, the model families, the data sets and this machine are."""
from __future__ import annotations

import json
from pathlib import Path

from ganforge.cli.common import FMT, add_device, json_object, positive


def families_table() -> str:
    from ganforge import models

    fams = models.families()
    width = max(map(len, fams))
    rows = [f"{name:{width}s}  {desc}" + ("  [needs class labels]" if models.is_conditional(name) else "")
            for name, desc in fams.items()]
    return "model families:\n  " + "\n  ".join(rows)


def _count(net) -> int:
    return sum(p.numel() for p in net.parameters())


def ema_text(t) -> str:
    """The generator EMA that training uses: a half-life in images replaces the per-step decay when set."""
    if t.ema_kimg > 0:
        return f"EMA half-life {t.ema_kimg:g} kimg" + (f", ramp-up {t.ema_rampup:g}" if t.ema_rampup > 0 else "")
    return f"EMA decay {t.ema_decay:g}" if t.ema_decay > 0 else "EMA off"


def describe_run(path: str | Path) -> dict:
    from ganforge.generate.runs import load_run
    from ganforge.storage.checkpoint import CHECKPOINT_NAME
    from ganforge.train.run import read_log

    run = Path(path)
    cfg, G, D = load_run(run)
    run_dir = run if run.is_dir() else run.parent
    records = read_log(run_dir)  # skips a torn last line (a process killed while appending)
    last = records[-1] if records else None
    labels = {"samples.png": "sample grid", "progress.gif": "results over time", CHECKPOINT_NAME: "checkpoint",
              "generated.png": "generated grid"}
    files = {name: str(run_dir / name) for name in labels if (run_dir / name).exists()}
    info = {
        "run": str(run_dir), "family": cfg.model.family, "data": cfg.data.source,
        "image_shape": list(cfg.model.img_shape), "classes": cfg.class_names, "z_dim": cfg.model.z_dim,
        "step": G.step, "steps": cfg.train.steps, "loss": cfg.train.loss,
        "g_params": _count(G), "d_params": _count(D) if D.weights_loaded else None,
        "last_metrics": last, "files": files,
        "config": cfg.to_dict(),
    }
    t = cfg.train
    text = [f"run {run_dir}",
            f"  model    {cfg.model.family}: G {info['g_params']:,} params, "
            + (f"D {info['d_params']:,} params, " if D.weights_loaded else "no D (none in the checkpoint), ")
            + f"z {cfg.model.z_dim}",
            f"  data     {cfg.data.source} at {cfg.model.resolution}x{cfg.model.resolution}, "
            f"{cfg.model.channels} channel(s)" + (f", classes {', '.join(cfg.class_names)}" if cfg.class_names else ""),
            f"  training step {G.step} of {t.steps}; {t.loss} loss, batch {t.batch_size}, lr G {t.g_lr} / D {t.d_lr}, "
            f"{ema_text(t)}, DiffAugment '{t.diffaug}'"]
    if last:
        text.append("  last     " + ", ".join(f"{k} {_number(v)}" for k, v in last.items() if k != "step"))
    for name, p in files.items():
        text.append(f"  {labels[name] + ':':19s}{p}")
    info["text"] = "\n".join(text)
    return info


def _number(v) -> str:
    if v is None:  # logged as null: not finite, the run diverged
        return "not finite (diverged)"
    return f"{v:.4g}" if isinstance(v, (int, float)) else str(v)


def add_info(sub):
    p = sub.add_parser("info", formatter_class=FMT, help="describe a run, or list the model families")
    p.add_argument("run", nargs="?", help="run directory")
    p.add_argument("--families", action="store_true", help="list the model families")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)


def cmd_info(a) -> int:
    if a.families or not a.run:
        print(families_table())
        return 0
    info = describe_run(a.run)
    print(json.dumps(info, indent=2) if a.json else info["text"])
    return 0


def add_datasets(sub):
    p = sub.add_parser("datasets", formatter_class=FMT, help="list the built-in data sets")
    p.set_defaults(func=cmd_datasets)


def cmd_datasets(a) -> int:
    from ganforge.data import builtin_datasets

    for name, desc in builtin_datasets().items():
        print(f"{name:10s} {desc}")
    print("\nOr pass a folder or .zip of images (png, jpg, webp, bmp, gif); sub-folders become class labels.")
    return 0


def add_bench(sub):
    p = sub.add_parser("bench", formatter_class=FMT, help="measure training and generation speed on this device")
    p.add_argument("--family", default="dcgan", help="model family to measure")
    p.add_argument("--data", default="mnist", help="data set")
    p.add_argument("--steps", type=positive, default=40, help="timed training steps per measurement")
    p.add_argument("--batch-size", type=positive, default=64, help="training batch size")
    p.add_argument("--repeats", type=positive, default=3, help="alternating repeats (the best is kept)")
    add_device(p, default="auto")
    p.add_argument("--model-options", type=json_object, default={},
                   help="model options as JSON, e.g. '{\"num_fp16_res\": 2, \"conv_clamp\": 256}' for a StyleGAN2 "
                        "with reduced-precision blocks (its generation is then timed in fp32 and in reduced "
                        "precision)")
    p.add_argument("--gen-images", type=positive, default=5000, help="images generated per generation timing")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_bench)


def cmd_bench(a) -> int:
    from ganforge.train.bench import format_report, run_bench

    report = run_bench(family=a.family, data=a.data, steps=a.steps, batch_size=a.batch_size, repeats=a.repeats,
                       device=a.device, options=a.model_options, gen_images=a.gen_images)
    print(json.dumps(report, indent=2) if a.json else format_report(report))
    return 0
