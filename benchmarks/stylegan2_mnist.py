"""StyleGAN2's CPU preset against the default recipe on the bundled MNIST, at equal wall-clock.

    python benchmarks/stylegan2_mnist.py --minutes 2                      # preset vs default vs dcgan
    python benchmarks/stylegan2_mnist.py --minutes 2 --recipes preset --set train.batch_size=64
    python benchmarks/stylegan2_mnist.py --minutes 2,5,10,20 --recipes preset --threads 1   # a curve
    python benchmarks/stylegan2_mnist.py --score runs/cstylegan2-mnist   # a finished run, scored the same way
    python benchmarks/stylegan2_mnist.py --minutes 10,20 --recipes preset --extra-ema 500,500:0.1   # EMAs

With several ``--minutes`` marks, each recipe is scored at every mark of its own training clock (the time
spent scoring is left out of that clock). Two recipes may then run side by side, one thread each, on a
two-core machine: equal wall-clock with equal cores. ``--continue`` extends such a curve later: each
recipe resumes from its checkpoint under ``--out`` and its clock goes on from where it stopped.

Each recipe trains in-process until ``--minutes`` of wall-clock are spent (start-up, sample grids and
checkpoints included, as a user would see them), then ``--n`` samples of G_ema are scored against the
same 28x28 MNIST with the digit network's features: FID (with the real floor), KID, precision/recall and
the confident rate. ``--extra-ema KIMG[:RAMPUP],...`` keeps further generator averages of the same run
with those half-lives (ramped up like the recipe's own unless RAMPUP is given) and scores them at the same
marks: a paired comparison of EMA settings on one training trajectory, free of run-to-run noise.
On one thread a recipe's training is deterministic for its seed: repeat a run with another ``--seed``.

The preset trains on MNIST padded to 32x32; its samples lose that 2-pixel border
before scoring, so every recipe meets the identical real statistics. Run it on an otherwise idle machine.
"""
import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import torch

from ganforge.config import RunConfig
from ganforge.data import load_dataset
from ganforge.errors import CheckpointError
from ganforge.generate.runs import load_run
from ganforge.metrics.evaluate import evaluate
from ganforge.metrics.features import get_extractor
from ganforge.metrics.options import EvalOptions, parse_metrics
from ganforge.metrics.pipeline import real_source
from ganforge.metrics.sources import GeneratorSource
from ganforge.train.presets import preset_config
from ganforge.train.regularizers import ema_beta, update_average
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


def scores(G, cfg: RunConfig, name: str, real, extractor, n: int) -> dict:
    """FID (with the real floor), KID, precision/recall and confident rate of G's samples, border cropped."""
    opts = EvalOptions(metrics=parse_metrics("fid,kid,pr,digits"), n=n, progress=False)
    m = evaluate(CroppedSource(G, cfg.data.pad, name), real, extractor, opts)["metrics"]
    return {k: m[k] for k in ("fid", "fid_floor", "kid", "precision", "recall", "confident_rate")}


class ExtraEma:
    """A second average of the trainer's G with another half-life, updated after every step."""

    def __init__(self, trainer: Trainer, spec: str):
        kimg, _, rampup = spec.partition(":")
        try:
            self.kimg, self.rampup = float(kimg), float(rampup) if rampup else trainer.cfg.train.ema_rampup
        except ValueError:
            raise SystemExit(f"--extra-ema: '{spec}' is not KIMG or KIMG:RAMPUP (e.g. 500 or 500:0.1)") from None
        if self.kimg <= 0 or self.rampup < 0:
            raise SystemExit(f"--extra-ema: '{spec}' needs KIMG > 0 and RAMPUP >= 0 (e.g. 500 or 500:0.1)")
        self.label = f"ema{self.kimg:g}" + (f"r{self.rampup:g}" if rampup else "")
        self.G = copy.deepcopy(trainer.G).eval().requires_grad_(False)

    def update(self, tr: Trainer) -> None:
        t = tr.cfg.train
        update_average(self.G, tr.G, ema_beta(t.batch_size, tr.step_count * t.batch_size * t.d_steps,
                                              self.kimg, self.rampup))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", default="2", help="training-clock marks at which to score, e.g. 2,5,10")
    p.add_argument("--recipes", default="preset,default,dcgan")
    p.add_argument("--set", nargs="*", default=[], help="section.field=value overrides for the preset")
    p.add_argument("--steps", type=int, default=0, help="stop at this step instead (for tuning at equal steps)")
    p.add_argument("--seed", type=int, default=0,
                   help="training seed of every recipe (one thread and one seed give one trajectory: vary it "
                        "for independent runs)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--out", default=None, help="where the runs go (default: a temporary folder)")
    p.add_argument("--json", help="also write the rows to this file")
    p.add_argument("--continue", dest="cont", action="store_true",
                   help="resume each recipe's run under --out and go on to later --minutes marks")
    p.add_argument("--extra-ema", default="", metavar="KIMG[:RAMPUP],...",
                   help="also score further G averages with these half-lives in thousands of images")
    p.add_argument("--score", metavar="RUN", help="only score this finished run (its G_ema), then stop")
    a = p.parse_args()

    if a.extra_ema and a.cont:
        raise SystemExit("--extra-ema cannot --continue: its average is not saved; run the marks in one go")
    if a.threads:
        torch.set_num_threads(a.threads)
    out = Path(a.out or tempfile.mkdtemp(prefix="sg2-mnist-"))
    real = real_source("mnist", None, None)
    extractor = get_extractor("digits")
    rows = []
    if a.score:
        try:
            cfg, G, _ = load_run(a.score)
        except (CheckpointError, OSError) as e:
            raise SystemExit(f"--score: {e}") from None
        print(json.dumps({"run": a.score, "family": cfg.model.family, "steps": G.step,
                          **scores(G, cfg, a.score, real, extractor, a.n)}))
        return
    for name in a.recipes.split(","):
        cfg = RECIPES[name]()
        if name == "preset":
            cfg = cfg.with_overrides(a.set)
        cfg.train.steps, cfg.train.seed = a.steps or 10**9, a.seed
        torch.manual_seed(0)
        marks = sorted(float(m) * 60 for m in a.minutes.split(","))
        clock = {"start": time.perf_counter(), "paused": 0.0}
        clock_file = out / name / "bench_clock.json"
        if a.cont:  # the clock goes on from the seconds trained so far
            if not clock_file.exists():
                raise SystemExit(f"--continue: no {clock_file}; run without --continue first")
            clock["start"] -= json.loads(clock_file.read_text())["seconds"]
            run = Run.resume(out / name, load_dataset(cfg.data), progress=False, steps=cfg.train.steps)
            trainer = run.trainer
        else:
            trainer = Trainer(cfg, load_dataset(cfg.data))
            run = Run(trainer, out / name, progress=False)
        extras = [ExtraEma(trainer, spec) for spec in a.extra_ema.split(",") if spec]

        def score(tr, cfg=cfg, name=name, extras=extras, clock=clock):
            seconds = time.perf_counter() - clock["start"] - clock["paused"]
            averages = [(name, tr.G_ema)] + [(f"{name}+{e.label}", e.G) for e in extras]
            for label, G in averages:
                G.eval()
                G.img_shape, G.num_classes, G.step = tr.cfg.model.img_shape, tr.cfg.model.num_classes, 0
                m = scores(G, cfg, label, real, extractor, a.n)
                G.train()
                row = {"recipe": label, "family": cfg.model.family, "seed": cfg.train.seed,
                       "steps": tr.step_count,
                       "images": tr.step_count * cfg.train.batch_size, "seconds": round(seconds, 1),
                       "threads": torch.get_num_threads(), "amp": tr.precision, **m}
                rows.append(row)
                print(json.dumps(row), flush=True)

        def budget(tr, metrics, run=run, marks=marks, extras=extras, clock=clock, score=score):
            for e in extras:
                e.update(tr)
            elapsed = time.perf_counter() - clock["start"] - clock["paused"]
            if a.steps or not marks or elapsed < marks[0]:
                return
            t0 = time.perf_counter()
            score(tr)
            clock["paused"] += time.perf_counter() - t0
            marks.pop(0)
            if not marks:
                run.request_stop("budget")

        run.train(callback=budget)
        clock_file.write_text(json.dumps(
            {"seconds": time.perf_counter() - clock["start"] - clock["paused"], "steps": trainer.step_count}))
        if a.steps:
            score(trainer)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))
    print("\n| recipe | family | minutes | steps | FID (floor) | KID | precision | recall | confident |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['recipe']} | {r['family']} | {r['seconds'] / 60:.1f} | {r['steps']:,} | "
              f"{r['fid']:.1f} ({r['fid_floor']:.1f}) | "
              f"{r['kid']:.0f} | {r['precision']:.3f} | {r['recall']:.3f} | {r['confident_rate']:.3f} |")


if __name__ == "__main__":
    main()
