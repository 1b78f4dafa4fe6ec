"""Paired A/B of ganforge's Trainer against the textbook loop that `ganforge bench` times, in one process.

`ganforge bench` keeps the best of a few repeats of each side, which on a shared host moves with the load.
Here the two sides alternate in blocks of --steps steps for --cycles cycles, on the bench's settings (no
augmentation, no EMA, non-saturating loss, fp32 unless --precision says otherwise), and the per-cycle ratio
is reported, so that load hits both sides of each ratio alike.

    python benchmarks/trainer_vs_plain.py [--family dcgan] [--data mnist] [--batch 64] [--cycles 12]
        [--steps 30] [--precision fp32] [--json]
"""
import argparse
import json
import statistics
import time

import torch

from ganforge.config import DataConfig, RunConfig
from ganforge.data import load_dataset
from ganforge.train import bench
from ganforge.train.trainer import Trainer, complete_config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", default="dcgan")
    p.add_argument("--data", default="mnist")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--cycles", type=int, default=12)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"])
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if min(a.batch, a.cycles, a.steps) < 1:
        p.error("--batch, --cycles and --steps must be positive")
    cfg = RunConfig(data=DataConfig(source=a.data))
    cfg.model.family = a.family
    cfg.train.batch_size, cfg.train.diffaug, cfg.train.ema_decay, cfg.train.loss = a.batch, "", 0.0, "ns"
    cfg.train.precision = a.precision
    data = load_dataset(cfg.data)
    full = complete_config(cfg, data)
    trainer = Trainer(cfg, data, device="cpu")
    for _ in range(3):  # warm-up
        trainer.step()
    rows = []
    for cycle in range(a.cycles):
        plain = bench.plain_loop_speed(full, data.images, a.steps, torch.device("cpu"))
        start = time.perf_counter()
        for _ in range(a.steps):
            trainer.step()
        ours = a.steps * a.batch / (time.perf_counter() - start)
        rows.append({"cycle": cycle, "trainer_img_per_s": round(ours, 1), "plain_img_per_s": round(plain, 1),
                     "ratio": round(ours / plain, 3)})
        if not a.json:
            print(f"cycle {cycle}: trainer {ours:.1f} img/s, plain loop {plain:.1f} img/s, ratio {ours / plain:.3f}")
    ratios = [r["ratio"] for r in rows]
    summary = {"family": a.family, "data": a.data, "batch": a.batch, "precision": trainer.precision,
               "threads": torch.get_num_threads(), "median_ratio": statistics.median(ratios),
               "mean_ratio": round(statistics.mean(ratios), 3), "cycles": rows}
    print(json.dumps(summary) if a.json else f"median ratio {summary['median_ratio']:.3f}, "
                                              f"mean {summary['mean_ratio']:.3f} over {a.cycles} cycles")


if __name__ == "__main__":
    from ganforge.errors import GanforgeError

    try:
        main()
    except GanforgeError as e:  # a bad --data or --family: one line, as the CLI says it
        raise SystemExit(f"trainer_vs_plain.py: error: {e}") from None
