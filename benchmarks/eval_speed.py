"""Time a 5,000-sample FID against the bundled MNIST with the built-in digit network (goal: <= 20 s on 2 cores).

Generation, feature extraction and the FID (with its real-vs-real floor) are timed together, first with
the real features computed ("cold") and then read from the stats cache ("warm"). Without --run the
generator is an untrained default cdcgan: the same network, so the same speed, as a trained one.

    python benchmarks/eval_speed.py                 # untrained default generator
    python benchmarks/eval_speed.py --run runs/demo --n 5000
"""
import argparse
import os
import tempfile
import time

import torch


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", help="a trained run directory (default: an untrained default cdcgan)")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--repeats", type=int, default=2, help="warm repeats (the best is reported)")
    a = p.parse_args()
    os.environ["GANFORGE_CACHE"] = tempfile.mkdtemp(prefix="ganforge-eval-bench-")  # start cold

    from ganforge import models
    from ganforge.config import DataConfig, RunConfig
    from ganforge.data import load_dataset
    from ganforge.metrics.evaluate import EvalOptions, evaluate
    from ganforge.metrics.features import DigitFeatures
    from ganforge.metrics.sources import DatasetSource, GeneratorSource
    from ganforge.train.trainer import complete_config

    t0 = time.perf_counter()
    data = load_dataset(DataConfig(source="mnist"))
    load_s = time.perf_counter() - t0
    if a.run:
        from ganforge.generate.runs import load

        G = load(a.run)
    else:
        torch.manual_seed(0)
        G = models.build(complete_config(RunConfig(), data).model)[0].eval()
    real, extractor = DatasetSource(data, builtin=True), DigitFeatures()
    opts = EvalOptions(metrics=("fid",), n=a.n)

    def timed():
        start = time.perf_counter()
        r = evaluate(GeneratorSource(G), real, extractor, opts)
        return time.perf_counter() - start, r["metrics"]

    cold, m = timed()
    warm = min(timed()[0] for _ in range(a.repeats))
    print(f"torch threads: {torch.get_num_threads()}, n={a.n}, MNIST load {load_s:.1f} s (once per process)")
    print(f"FID {m['fid']:.3f} (real-vs-real floor {m['fid_floor']:.3f} at n={m['fid_floor_n']})")
    print(f"cold (real features computed): {cold:.2f} s")
    print(f"warm (real features cached):   {warm:.2f} s")


if __name__ == "__main__":
    main()
