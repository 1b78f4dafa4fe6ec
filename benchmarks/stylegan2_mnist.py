"""StyleGAN2's CPU preset against the default recipe on the bundled MNIST, at equal wall-clock.

    python benchmarks/stylegan2_mnist.py --minutes 2                      # preset vs default vs dcgan
    python benchmarks/stylegan2_mnist.py --minutes 2 --recipes preset --set train.batch_size=64

Each recipe trains in-process until ``--minutes`` of wall-clock are spent (start-up, sample grids and
checkpoints included, as a user would see them), then ``--n`` samples of G_ema are scored against the
same 28x28 MNIST with the digit network's features: FID (with the real floor), KID, precision/recall and
the confident rate. The preset trains on MNIST padded to 32x32; its samples lose that 2-pixel border
before scoring, so every recipe meets the identical real statistics. Run it on an otherwise idle machine.
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from ganforge.config import RunConfig
from ganforge.data import load_dataset
from ganforge.metrics.command import real_source
from ganforge.metrics.evaluate import evaluate
from ganforge.metrics.features import get_extractor
from ganforge.metrics.options import EvalOptions, parse_metrics
from ganforge.metrics.sources import GeneratorSource
from ganforge.presets import preset_config
from ganforge.train.run import Run
from ganforge.train.trainer import Trainer

RECIPES = {"preset": lambda: preset_config("stylegan2-mnist"), "default": RunConfig,
           "dcgan": lambda: RunConfig.from_dict({"model": {"family": "dcgan"}})}


class CroppedSource(GeneratorSource):
    """Generated images with the training-time border removed again."""

    def __init__(self, G, pad: int, name: str):
        super().__init__(G, name=name)
        self.pad = pad
        self.resolution -= 2 * pad

    def batches(self, count, batch_size, seed=0):
        p = self.pad
        for x, c in super().batches(count, batch_size, seed):
            yield (x[:, :, p:x.shape[2] - p, p:x.shape[3] - p].contiguous() if p else x), c


def apply_sets(cfg: RunConfig, items: list[str]) -> RunConfig:
    d = cfg.to_dict()
    for item in items:
        key, value = item.split("=", 1)
        section, field = key.split(".")
        try:
            d[section][field] = json.loads(value)
        except json.JSONDecodeError:
            d[section][field] = value
    return RunConfig.from_dict(d)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=2.0)
    p.add_argument("--recipes", default="preset,default,dcgan")
    p.add_argument("--set", nargs="*", default=[], help="section.field=value overrides for the preset")
    p.add_argument("--steps", type=int, default=0, help="stop at this step instead (for tuning at equal steps)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--out", default=None, help="where the runs go (default: a temporary folder)")
    p.add_argument("--json", help="also write the rows to this file")
    a = p.parse_args()

    if a.threads:
        torch.set_num_threads(a.threads)
    out = Path(a.out or tempfile.mkdtemp(prefix="sg2-mnist-"))
    real = real_source("mnist", None, None)
    extractor = get_extractor("digits")
    rows = []
    for name in a.recipes.split(","):
        cfg = RECIPES[name]()
        if name == "preset":
            cfg = apply_sets(cfg, a.set)
        cfg.train.steps = a.steps or 10**9
        torch.manual_seed(0)
        start = time.perf_counter()
        trainer = Trainer(cfg, load_dataset(cfg.data))
        run = Run(trainer, out / name, progress=False)

        def budget(tr, metrics, run=run, start=start):
            if not a.steps and time.perf_counter() - start > a.minutes * 60:
                run.request_stop("budget")

        run.train(callback=budget)
        seconds = time.perf_counter() - start
        G = trainer.G_ema.eval()
        G.img_shape, G.num_classes, G.step = trainer.cfg.model.img_shape, trainer.cfg.model.num_classes, 0
        opts = EvalOptions(metrics=parse_metrics("fid,kid,pr,digits"), n=a.n, progress=False)
        m = evaluate(CroppedSource(G, cfg.data.pad, name), real, extractor, opts)["metrics"]
        row = {"recipe": name, "family": cfg.model.family, "steps": trainer.step_count,
               "images": trainer.step_count * cfg.train.batch_size, "seconds": round(seconds, 1),
               "amp": trainer.precision, **{k: m[k] for k in ("fid", "fid_floor", "kid", "precision",
                                                                    "recall", "confident_rate")}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))
    print(f"\n| recipe | family | steps in {a.minutes:g} min | FID (floor) | KID | precision | recall | confident |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['recipe']} | {r['family']} | {r['steps']:,} | {r['fid']:.1f} ({r['fid_floor']:.1f}) | "
              f"{r['kid']:.0f} | {r['precision']:.3f} | {r['recall']:.3f} | {r['confident_rate']:.3f} |")


if __name__ == "__main__":
    main()
