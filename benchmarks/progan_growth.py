"""ProGAN: growing from 4x4 against the same final network trained at full size from the start, at equal
wall-clock, on the bundled MNIST padded to 32x32 or on the colour ``photos`` crops at 64x64.

    python benchmarks/progan_growth.py --seconds 150 --every 15 --seeds 0,1,2 --threads 1
    python benchmarks/progan_growth.py --recipes grow --json grow.json &   # the two side by side, one core each
    python benchmarks/progan_growth.py --recipes full --json full.json
    python benchmarks/progan_growth.py --report grow.json full.json --targets 150,100,70
    python benchmarks/progan_growth.py --data photos --grow-batch 4:128,8:128,16:64 ...   # 64x64 colour

Both recipes are the same ``progan`` network and training settings (WGAN-GP with drift, Adam (0, 0.99) at
0.001, batch ``--batch``): ``grow`` follows the growth schedule (``--stabilise`` and ``--fade`` images per
phase, with ``--grow-batch`` per resolution below the final one), ``full`` starts at the final size
(``train.growth.start``). Every ``--every`` seconds of training clock (the scoring itself is left out of it),
G_ema is scored on ``--n`` samples: on MNIST by FID with the digit network's features (the 2-pixel border
cropped again), on photos by ProGAN's sliced Wasserstein distance (SWD x10^3, the mean over the pyramid levels)
against the training crops, as no feature network for photos ships. The table gives, for each stated score,
the training time at which each seed first reached it (the first scoring at or below it) and the median over
seeds; "-" means not within ``--seconds``. On one thread each run is deterministic for its seed.

The clock: ``--clock cpu`` (the default) counts the process's CPU seconds, which on one thread is the time the
run takes on an idle core, and stays fair on a machine shared with other work (wall-clock there depends on what
else runs at that moment); ``--clock wall`` counts wall-clock seconds, for an otherwise idle machine.
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from ganforge.config import RunConfig
from ganforge.data import load_dataset
from ganforge.metrics.evaluate import evaluate
from ganforge.metrics.features import get_extractor
from ganforge.metrics.options import EvalOptions
from ganforge.metrics.pipeline import real_source
from ganforge.metrics.sources import DatasetSource, GeneratorSource
from ganforge.train.presets import preset_config
from ganforge.train.trainer import Trainer


class CroppedSource(GeneratorSource):
    """Generated 32x32 images with the training-time border removed, to meet 28x28 MNIST."""

    def __init__(self, G, pad: int):
        super().__init__(G, name="progan")
        self.pad = pad
        self.resolution -= 2 * pad

    def batches(self, count, batch_size, seed=0):
        p = self.pad
        for x, c in super().batches(count, batch_size, seed):
            yield x[:, :, p:x.shape[2] - p, p:x.shape[3] - p].contiguous(), c


def base_config(a) -> RunConfig:
    cfg = preset_config("progan")
    if a.data == "photos":
        cfg.data.source, cfg.data.resolution, cfg.data.pad = "photos", a.resolution, 0
        cfg.model.resolution = cfg.model.channels = None  # from the data
    return cfg


def recipe(name: str, a) -> RunConfig:
    cfg = base_config(a)
    cfg.model.g_width = cfg.model.d_width = a.width
    cfg.model.z_dim = a.z_dim
    t = cfg.train
    t.steps, t.batch_size, t.device = 10**9, a.batch, "cpu"
    if a.lr:
        t.g_lr = t.d_lr = a.lr
    final = a.resolution if a.data == "photos" else 32
    batch = {k: int(v) for k, v in (kv.split(":") for kv in a.grow_batch.split(","))} if a.grow_batch else {}
    grow = {"start": a.grow_start, "stabilise": a.stabilise, "fade": a.fade, "penalty_at": a.penalty_at,
            "batch": batch}
    t.growth = grow if name == "grow" else {"start": final}
    return cfg


def score(G, cfg: RunConfig, a, real, extractor) -> float:
    if a.data == "photos":
        opts = EvalOptions(metrics=("swd",), n=a.n, swd_n=a.n, progress=False)
        return evaluate(GeneratorSource(G, name="progan"), real, None, opts)["metrics"]["swd"]
    opts = EvalOptions(metrics=("fid",), n=a.n, progress=False)
    return evaluate(CroppedSource(G, cfg.data.pad), real, extractor, opts)["metrics"]["fid"]


def run_one(name: str, seed: int, a, data, real, extractor) -> list[dict]:
    cfg = recipe(name, a)
    cfg.train.seed = seed
    tr = Trainer(cfg, data)
    clock = time.process_time if a.clock == "cpu" else time.perf_counter
    rows, trained, next_mark = [], 0.0, a.every
    while trained < a.seconds:
        t0 = clock()
        tr.step()
        trained += clock() - t0
        if trained >= next_mark or trained >= a.seconds:
            next_mark += a.every
            value = score(tr.G_ema, cfg, a, real, extractor)
            level, alpha = tr.G_ema.stage()
            row = {"recipe": name, "seed": seed, "seconds": round(trained, 1), "steps": tr.step_count,
                   "kimg": round(tr.growth.images / 1000, 2), "resolution": 4 * 2 ** level, "alpha": alpha,
                   "metric": "swd" if a.data == "photos" else "fid",
                   "score": round(value, 2), "threads": torch.get_num_threads(), "clock": a.clock}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def report(rows: list[dict], targets: list[float], seconds: float) -> None:
    recipes = sorted({r["recipe"] for r in rows}, reverse=True)  # grow first
    seeds = sorted({r["seed"] for r in rows})
    metric = rows[0].get("metric", "fid").upper()
    for r in rows:  # rows written before the photos option named their score "fid"
        r.setdefault("score", r.get("fid"))
    print(f"\n{metric} at each scoring (seconds of training clock, resolution reached, {metric}), one column per seed:")
    print("| recipe | " + " | ".join(f"s{s}" for s in seeds) + " |")
    for name in recipes:
        for i in range(max(len([r for r in rows if r["recipe"] == name and r["seed"] == s]) for s in seeds)):
            cells = []
            for s in seeds:
                own = [r for r in rows if r["recipe"] == name and r["seed"] == s]
                cells.append(f"{own[i]['seconds']:.0f}s {own[i]['resolution']}px {metric} {own[i]['score']:.1f}"
                             if i < len(own) else "")
            print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nTime to reach a {metric} (seconds of training, '-' = not within {seconds:.0f} s):")
    print(f"| {metric} <= | " + " | ".join(f"{n} ({', '.join(f's{s}' for s in seeds)})" for n in recipes)
          + " | median speed-up of grow |")
    print("|---" * (len(recipes) + 2) + "|")
    for target in targets:
        cells, medians = [], {}
        for name in recipes:
            times = []
            for s in seeds:
                hit = [r["seconds"] for r in rows if r["recipe"] == name and r["seed"] == s and r["score"] <= target]
                times.append(hit[0] if hit else None)
            reached = [x for x in times if x is not None]
            medians[name] = statistics.median(reached) if len(reached) == len(times) else None
            cells.append(", ".join("-" if x is None else f"{x:.0f}" for x in times))
        g, f = medians.get("grow"), medians.get("full")
        ratio = f"{f / g:.2f}x" if g and f else (f"> {seconds / g:.2f}x" if g and f is None else "-")
        print(f"| {target:g} | " + " | ".join(cells) + f" | {ratio} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipes", default="grow,full")
    p.add_argument("--data", choices=["mnist", "photos"], default="mnist",
                   help="mnist (padded to 32x32, FID) or photos (colour crops, SWD)")
    p.add_argument("--resolution", type=int, default=64, help="photos: the final size")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--seconds", type=float, default=150, help="training clock per run")
    p.add_argument("--every", type=float, default=15, help="seconds of training between scorings")
    p.add_argument("--width", type=int, default=16, help="g_width = d_width")
    p.add_argument("--z-dim", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, help="both learning rates (default: the preset's)")
    p.add_argument("--penalty-at", default="native", choices=["native", "final"],
                   help="grow: where WGAN-GP's gradient is taken (train.growth penalty_at)")
    p.add_argument("--stabilise", type=int, default=3000, help="grow: images per stabilise phase")
    p.add_argument("--fade", type=int, default=3000, help="grow: images per fade-in phase")
    p.add_argument("--grow-start", type=int, default=4, help="grow: the first resolution")
    p.add_argument("--grow-batch", default="", metavar="RES:B,...",
                   help="grow: batch size per resolution below the final one, e.g. 4:128,8:128 (else --batch)")
    p.add_argument("--n", type=int, default=1000, help="samples per scoring")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=["cpu", "wall"], default="cpu", help="what a second of training is")
    p.add_argument("--targets", "--fids", default="200,150,100,70,50",
                   help="scores (FID, or SWD on photos) for the time-to-reach table")
    p.add_argument("--json", help="write the rows to this file")
    p.add_argument("--report", nargs="+", metavar="JSON", help="only print the tables of these rows files")
    a = p.parse_args()
    targets = [float(f) for f in a.targets.split(",")]
    if a.report:
        rows = [r for f in a.report for r in json.loads(Path(f).read_text())]
        report(rows, targets, max(r["seconds"] for r in rows))
        return
    torch.set_num_threads(a.threads)
    data = load_dataset(base_config(a).data)
    if a.data == "photos":
        real, extractor = DatasetSource(data), None
    else:
        real, extractor = real_source("mnist", None, None), get_extractor("digits")
    rows = []
    for seed in (int(s) for s in a.seeds.split(",")):
        for name in a.recipes.split(","):
            if name not in ("grow", "full"):
                raise SystemExit(f"--recipes: unknown recipe '{name}'; use grow, full")
            rows += run_one(name, seed, a, data, real, extractor)
            if a.json:  # after every run, so that an interrupted benchmark keeps what it measured
                Path(a.json).write_text(json.dumps(rows, indent=2))
    report(rows, targets, a.seconds)


if __name__ == "__main__":
    main()
