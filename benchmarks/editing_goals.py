"""The editing goals on the StyleGAN2 MNIST preset and on the cDCGAN default (issue: latent-space editing).

    python benchmarks/editing_goals.py                                   # trains two short runs first
    python benchmarks/editing_goals.py --run stylegan2=runs/cstylegan2-mnist --run cdcgan=runs/cdcgan-mnist

For each run:

* the thickness direction (``find_directions(G, "svm", attribute="thickness", conditions=["slant"])`` on
  ``--n-fit`` seeds) is applied to ``--seeds`` other seeds at strengths -2..2 (``--strengths`` values, in
  standard deviations); per seed, Spearman's rho between strength and the measured thickness, and the
  median over seeds (goal: >= 0.9);
* the share of edited images (strength != 0) whose digit-network class equals that of the unedited image
  (goal: >= 95% within +-2 std);
* slant change: the slant at +2 std minus that at -2 std, for the conditional direction (thickness with
  slant projected out) over that of the plain one (goal: <= 0.5); both the direction's own effect (the
  signed change averaged over seeds, then its size) and the mean size of the change per seed, which also
  holds what no linear direction removes (a stroke that thickens unevenly moves its ink's moments);
* SeFa time: wall-clock (and process CPU time) of ``find_directions(G, "sefa")``, the median of five
  calls after one warm-up (goal: < 1 s on the StyleGAN2 preset).

Without ``--run`` the runs are trained first, short: the ``stylegan2-mnist`` preset for ``--sg-steps``
steps and the default recipe (cdcgan) for ``--cdc-steps``. Both runs' data are the bundled MNIST; the
preset's 2-pixel padding is removed before measuring. Prints one JSON object per run and a summary table.
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from ganforge.edit import attributes
from ganforge.edit.directions import find_directions
from ganforge.edit.editing import edit_images
from ganforge.generate.runs import load_run


def train(kind: str, steps: int, out: Path) -> Path:
    from ganforge.config import RunConfig
    from ganforge.data import load_dataset
    from ganforge.train.presets import preset_config
    from ganforge.train.run import Run
    from ganforge.train.trainer import Trainer

    cfg = preset_config("stylegan2-mnist") if kind == "stylegan2" else RunConfig()
    cfg.train.steps = steps
    start = time.perf_counter()
    data = load_dataset(cfg.data, family=cfg.model.family)
    Run(Trainer(cfg, data), out, progress=False).train()
    print(f"trained {kind} for {steps} steps in {time.perf_counter() - start:.0f} s: {out}", flush=True)
    return out


def measure_run(kind: str, run: Path, a) -> dict:
    cfg, G, _ = load_run(run, precision="fp32")
    pad = cfg.data.pad
    strengths = np.linspace(-2, 2, a.strengths).tolist()
    zero = strengths.index(0.0) if 0.0 in strengths else None

    sefa_wall, sefa_cpu = [], []
    for _ in range(6):
        start, cpu = time.perf_counter(), time.process_time()
        find_directions(G, "sefa", family=cfg.model.family)
        sefa_wall.append(time.perf_counter() - start)
        sefa_cpu.append(time.process_time() - cpu)
    sefa_s, sefa_cpu_s = statistics.median(sefa_wall[1:]), statistics.median(sefa_cpu[1:])

    start = time.perf_counter()
    dirs = find_directions(G, "svm", attribute="thickness", conditions=["slant"], n=a.n_fit, seed=0,
                           family=cfg.model.family, crop=pad)
    fit_s = time.perf_counter() - start
    result = {"run": str(run), "family": cfg.model.family, "step": G.step, "space": dirs.space,
              "n_fit": a.n_fit, "seeds": a.seeds, "strengths": strengths, "sefa_s": round(sefa_s, 4),
              "sefa_cpu_s": round(sefa_cpu_s, 4),
              "svm_fit_s": round(fit_s, 1), "svm_accuracy": dict(zip(dirs.names, np.round(dirs.values, 3).tolist())),
              "cos_conditional_plain": round(float(np.dot(dirs.vectors[0], dirs.vectors[1])), 3)}
    seeds = range(a.first_seed, a.first_seed + a.seeds)
    for name in ("thickness-plain", "thickness"):
        rhos, kept, slant_delta, thick_delta = [], [], [], []
        for s in seeds:
            imgs = edit_images(G, dirs, name, seed=s, strengths=strengths)
            thick = attributes.thickness(imgs, pad)
            slant = attributes.slant(imgs, pad)
            cls = attributes.class_probs(imgs, pad).argmax(1)
            rho = spearmanr(strengths, thick).statistic
            rhos.append(0.0 if np.isnan(rho) else float(rho))
            ref = cls[zero] if zero is not None else cls[len(cls) // 2]
            kept += [bool(c == ref) for i, c in enumerate(cls) if i != zero]
            slant_delta.append(float(slant[-1] - slant[0]))  # from -2 to +2 std
            thick_delta.append(float(thick[-1] - thick[0]))
        key = "plain" if name.endswith("plain") else "conditional"
        result[key] = {"median_spearman": round(float(np.median(rhos)), 3),
                       "share_rho_ge_0.9": round(float(np.mean(np.asarray(rhos) >= 0.9)), 3),
                       "class_kept": round(float(np.mean(kept)), 4),
                       # the direction's own effect (signed, averaged over seeds) and its size per seed
                       "slant_change": round(abs(float(np.mean(slant_delta))), 4),
                       "slant_change_per_seed": round(float(np.mean(np.abs(slant_delta))), 4),
                       "thickness_change": round(float(np.mean(thick_delta)), 3)}
    for key in ("slant_change", "slant_change_per_seed"):
        plain = result["plain"][key]
        result[f"{key}_ratio"] = round(result["conditional"][key] / plain, 3) if plain > 0 else float("nan")
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", default=[], metavar="KIND=PATH",
                   help="an existing run: stylegan2=PATH (the preset) or cdcgan=PATH (the default); the other "
                        "kind is trained unless --only")
    p.add_argument("--only", choices=["stylegan2", "cdcgan"], help="measure one kind only")
    p.add_argument("--sg-steps", type=int, default=3000, help="steps of the preset when trained here")
    p.add_argument("--cdc-steps", type=int, default=2000, help="steps of the default recipe when trained here")
    p.add_argument("--out", default="runs/editing-goals", help="folder for runs trained here")
    p.add_argument("--n-fit", type=int, default=2000, help="seeds scored to fit the directions")
    p.add_argument("--seeds", type=int, default=100, help="seeds edited")
    p.add_argument("--first-seed", type=int, default=100000, help="first edited seed (apart from the fitted ones)")
    p.add_argument("--strengths", type=int, default=9, help="strengths from -2 to 2 std")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    runs = {}
    for spec in a.run:
        kind, _, path = spec.partition("=")
        if kind not in ("stylegan2", "cdcgan") or not path:
            p.error(f"--run takes stylegan2=PATH or cdcgan=PATH, got {spec}")
        runs[kind] = Path(path)
    kinds = [a.only] if a.only else ["stylegan2", "cdcgan"]
    for kind in kinds:
        if kind not in runs:
            runs[kind] = train(kind, a.sg_steps if kind == "stylegan2" else a.cdc_steps, Path(a.out) / kind)
    results = []
    for kind in kinds:
        start = time.perf_counter()
        r = measure_run(kind, runs[kind], a)
        r["measure_s"] = round(time.perf_counter() - start, 1)
        print(json.dumps(r), flush=True)
        results.append(r)
    print("\n| run | step | median Spearman rho (plain / conditional) | class kept within +-2 std (plain / "
          "conditional) | slant change, conditional / plain (mean effect; per seed) | SeFa wall (CPU) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['family']} | {r['step']:,} | {r['plain']['median_spearman']:.3f} / "
              f"{r['conditional']['median_spearman']:.3f} | {r['plain']['class_kept']:.1%} / "
              f"{r['conditional']['class_kept']:.1%} | {r['slant_change_ratio']:.2f}; "
              f"{r['slant_change_per_seed_ratio']:.2f} | {r['sefa_s'] * 1000:.0f} ms "
              f"({r['sefa_cpu_s'] * 1000:.0f} ms) |")


if __name__ == "__main__":
    main()
