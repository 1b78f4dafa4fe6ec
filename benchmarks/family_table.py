"""Every built-in model family on the bundled MNIST at equal wall-clock, scored by `ganforge eval`.

    python benchmarks/family_table.py --minutes 2 --out runs/family-table [--families mlp,dcgan]

Each family trains with ganforge's defaults (hinge loss, translation DiffAugment, EMA; StyleGAN2 at 32 px
because its synthesis needs a power-of-two size) until the budget is spent, then 5,000 samples are
scored against the real digits with the built-in digit network's features. Prints a Markdown table.
"""
import argparse
import json
import time
from pathlib import Path

from ganforge.config import RunConfig
from ganforge.data import load_dataset
from ganforge.metrics.options import EvalOptions, parse_metrics
from ganforge.metrics.pipeline import run_eval
from ganforge.train.run import Run
from ganforge.train.trainer import Trainer

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--minutes", type=float, default=2.0)
p.add_argument("--families", default="mlp,dcgan,cdcgan,layers,stylegan2")
p.add_argument("--out", default="runs/family-table")
p.add_argument("--n", type=int, default=5000)
a = p.parse_args()

rows = []
for family in a.families.split(","):
    cfg = RunConfig()
    cfg.model.family = family
    cfg.train.steps = 10**9
    cfg.train.sample_every = 10**9
    cfg.train.ckpt_every = 10**9
    if family.startswith("stylegan2") or family.startswith("cstylegan2"):
        cfg.data.resolution = 32
    trainer = Trainer(cfg, load_dataset(cfg.data))
    run = Run(trainer, Path(a.out) / family, progress=False)
    start = time.perf_counter()

    def budget(tr, metrics, run=run, start=start):
        if time.perf_counter() - start > a.minutes * 60:
            run.request_stop("budget")

    run.train(callback=budget)
    seconds = time.perf_counter() - start
    opts = EvalOptions(metrics=parse_metrics("fid,kid,pr,digits"), n=a.n, progress=False)
    m = run_eval(str(run.dir), None, None, opts)["metrics"]
    row = {"family": family, "steps": trainer.step_count, "seconds": round(seconds), **m}
    rows.append(row)
    print(json.dumps(row), flush=True)

print("\n| family | steps in budget | FID (floor) | KID | precision | recall | confident |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for r in rows:
    print(f"| {r['family']} | {r['steps']} | {r['fid']:.1f} ({r['fid_floor']:.1f}) | {r['kid']:.0f} | "
          f"{r['precision']:.3f} | {r['recall']:.3f} | {r['confident_rate']:.3f} |")
