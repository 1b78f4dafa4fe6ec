"""Describing runs and model families for `ganforge info`."""
from __future__ import annotations

import json
from pathlib import Path

from . import models
from .checkpoint import CHECKPOINT_NAME


def families_table() -> str:
    fams = models.families()
    width = max(map(len, fams))
    rows = [f"{name:{width}s}  {desc}" + ("  [needs class labels]" if models.is_conditional(name) else "")
            for name, desc in fams.items()]
    return "model families:\n  " + "\n  ".join(rows)


def _count(net) -> int:
    return sum(p.numel() for p in net.parameters())


def describe_run(path: str | Path) -> dict:
    from .api import load_run

    run = Path(path)
    cfg, G, D = load_run(run)
    run_dir = run if run.is_dir() else run.parent
    last = None
    log = run_dir / "log.jsonl"
    if log.exists():
        lines = log.read_text().strip().splitlines()
        last = json.loads(lines[-1]) if lines else None
    labels = {"samples.png": "sample grid", "progress.gif": "results over time", CHECKPOINT_NAME: "checkpoint",
              "generated.png": "generated grid"}
    files = {name: str(run_dir / name) for name in labels if (run_dir / name).exists()}
    info = {
        "run": str(run_dir), "family": cfg.model.family, "data": cfg.data.source,
        "image_shape": list(cfg.model.img_shape), "classes": cfg.class_names, "z_dim": cfg.model.z_dim,
        "step": G.step, "steps": cfg.train.steps, "loss": cfg.train.loss,
        "g_params": _count(G), "d_params": _count(D), "last_metrics": last, "files": files,
        "config": cfg.to_dict(),
    }
    t = cfg.train
    text = [f"run {run_dir}",
            f"  model    {cfg.model.family}: G {info['g_params']:,} params, D {info['d_params']:,} params, "
            f"z {cfg.model.z_dim}",
            f"  data     {cfg.data.source} at {cfg.model.resolution}x{cfg.model.resolution}, "
            f"{cfg.model.channels} channel(s)" + (f", classes {', '.join(cfg.class_names)}" if cfg.class_names else ""),
            f"  training step {G.step} of {t.steps}; {t.loss} loss, batch {t.batch_size}, lr G {t.g_lr} / D {t.d_lr}, "
            f"EMA {t.ema_decay}, DiffAugment '{t.diffaug}'"]
    if last:
        text.append("  last     " + ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k != "step"))
    for name, p in files.items():
        text.append(f"  {labels[name] + ':':19s}{p}")
    info["text"] = "\n".join(text)
    return info
