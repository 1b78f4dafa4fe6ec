"""Quality of a training recipe on the bundled MNIST, against wall-clock time.

Trains in-process for ``--minutes`` and, every ``--eval-every`` steps (evaluation time excluded from the
budget), labels ``--n`` samples of G_ema with the built-in digit network: the share labelled with
confidence > 0.9 and the class shares. The recipe's target: >= 90% confident, every class 6-14%, in 5 minutes.

    python benchmarks/quality.py --minutes 5                       # the default recipe
    python benchmarks/quality.py --set train.loss=ns model.family=dcgan --json out.json
    python benchmarks/quality.py --run runs/demo       # score a finished run (e.g. the one `make demo` made)
"""
import argparse
import json
import time

import torch

from ganforge.config import RunConfig
from ganforge.data import load_dataset
from ganforge.generate.sampling import latents
from ganforge.metrics.digits import digit_scores, load_classifier, predict, split_mnist
from ganforge.train.trainer import Trainer


def evaluate(tr: Trainer, clf, n: int) -> dict:
    z = latents(tr.G, n, seed=123)
    c = torch.arange(n) % tr.cfg.model.num_classes if tr.cfg.model.num_classes else None
    imgs = torch.cat([tr.sample(z[i:i + 1000], None if c is None else c[i:i + 1000]) for i in range(0, n, 1000)])
    return digit_scores(predict(clf, imgs))


def score_run(run: str, n: int) -> None:
    import ganforge
    from ganforge.generate.sampling import sample

    G = ganforge.load(run)
    r = digit_scores(predict(load_classifier(), sample(G, n, seed=123)))
    print(f"{run} (step {G.step}): {n} samples, confident {r['confident_rate']:.4f}, "
          f"class shares {r['min_class_share']:.3f}..{r['max_class_share']:.3f} {r['class_shares']}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--max-steps", type=int, default=10**9, help="stop here even if time is left")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--set", nargs="*", default=[], help="config overrides section.field=value")
    p.add_argument("--json", help="write the curve here")
    p.add_argument("--run", help="only score this finished run's generator (5,000 seeded samples)")
    a = p.parse_args()
    if a.run:
        return score_run(a.run, a.n)
    cfg = RunConfig().with_overrides(a.set)
    cfg.train.steps = 10**9
    clf = load_classifier()
    (_, _), (xte, _) = split_mnist()
    real = digit_scores(predict(clf, xte))
    print(f"real held-out digits: confident {real['confident_rate']:.3f}")
    t0 = time.perf_counter()
    data = load_dataset(cfg.data)
    tr = Trainer(cfg, data)
    print(json.dumps(tr.cfg.to_dict()["train"]))
    curve, trained = [], 0.0
    while trained < a.minutes * 60 and tr.step_count < a.max_steps:
        s = time.perf_counter()
        for _ in range(a.eval_every):
            tr.step()
            if trained + time.perf_counter() - s > a.minutes * 60:
                break
        trained += time.perf_counter() - s
        r = evaluate(tr, clf, a.n)
        r.update(step=tr.step_count, train_seconds=round(trained, 1))
        curve.append(r)
        print(f"step {r['step']:5d}  {r['train_seconds']:6.1f}s  confident {r['confident_rate']:.3f}  "
              f"class shares {r['min_class_share']:.3f}..{r['max_class_share']:.3f}", flush=True)
    out = {"config": tr.cfg.to_dict(), "real": real, "curve": curve, "wall_seconds": time.perf_counter() - t0}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
