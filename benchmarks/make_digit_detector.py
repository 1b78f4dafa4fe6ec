"""Make the detector that ships with ganforge for the bundled digit domain (src/ganforge/detect/weights/digits).

    nice python benchmarks/make_digit_detector.py [--out runs/digit-detector] [--stages 40,120,300]
        [--runs RUN...] [--heldout RUN...]

Trains a small (width-16) generator of every family (mlp, dcgan, cdcgan, layers, progan, stylegan2) on MNIST, samples
fakes at several training stages (and at --unseen stages that the detector never sees, for
benchmarks/detect_eval.py); trains default-size generators (``ganforge train --family F`` defaults, DEFAULT_RECIPES)
and samples them at longer stages; samples more fakes from --runs (e.g. a `make demo` run, a stylegan2-mnist
preset run). Then trains the detector on all those fakes against real MNIST and digits, each real set split by a
fixed seed so that the held-out part stays unseen, and scores it on the fakes of --heldout runs, whose generators it
never saw. The fakes are kept under OUT/fakes as .npz for detect_eval.py.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

FAMILIES = ("mlp", "dcgan", "cdcgan", "layers", "progan", "stylegan2")
WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "ganforge" / "detect" / "weights" / "digits"
REAL_SPLIT_SEED = 1234
REAL_TEST = {"mnist": 1000, "digits": 297}  # held out of the shipped detector's training, for detect_eval.py


def family_config(family: str, steps: int, seed: int):
    from ganforge.config import RunConfig

    cfg = RunConfig()
    cfg.data.source = "mnist"
    cfg.data.cache = False
    cfg.model.family = family
    cfg.model.g_width = cfg.model.d_width = 16
    cfg.model.z_dim = 32
    cfg.train.steps = steps
    cfg.train.batch_size = 32
    cfg.train.seed = seed
    cfg.train.device = "cpu"
    cfg.train.sample_every = cfg.train.ckpt_every = 10 ** 9
    cfg.train.log_every = 50
    cfg.train.ema_decay = 0.95  # a short run: the EMA must follow the generator within a few dozen steps
    if family == "stylegan2":
        cfg.data.pad = 2  # synthesis needs a power-of-two size: 28 + 2 * 2 = 32, as the stylegan2-mnist preset
        cfg.model.options = {"mapping_layers": 2, "channel_base": 256, "mbstd_group": 4}
        cfg.train.batch_size = 8  # its steps cost several times a DCGAN's on a CPU
    if family == "progan":
        from ganforge.train.presets import FAMILY_TRAIN_DEFAULTS

        cfg.data.pad, cfg.data.labels = 2, False  # grows to 32x32, like the progan preset
        for name, value in FAMILY_TRAIN_DEFAULTS["progan"].items():
            setattr(cfg.train, name, value)
        cfg.train.ema_decay = 0.95
        # From 8x8 (as the preset) with phases short enough to reach 32x32 by step 190 of a 32 batch.
        cfg.train.growth = {"start": 8, "stabilise": 1500, "fade": 1500}
    return cfg


def default_config(family: str, steps: int, seed: int):
    """``ganforge train --family FAMILY --steps STEPS --seed SEED`` on MNIST: the family's default size and recipe."""
    from ganforge.config import RunConfig
    from ganforge.train.presets import FAMILY_TRAIN_DEFAULTS

    cfg = RunConfig()
    cfg.data.source = "mnist"
    cfg.data.cache = False
    cfg.model.family = family
    for f, value in FAMILY_TRAIN_DEFAULTS.get(family, {}).items():
        setattr(cfg.train, f, value)
    cfg.train.steps = steps
    cfg.train.seed = seed
    cfg.train.device = "cpu"
    cfg.train.sample_every = cfg.train.ckpt_every = 10 ** 9
    return cfg


# Default-size generators (``ganforge train`` defaults; seed 0 is what ``make demo`` trains for cdcgan), sampled at
# the listed steps: the shipped detector must know the fakes of the models a user actually trains, not only tiny ones.
DEFAULT_RECIPES = {"cdcgan": (300, 1000), "dcgan": (300, 1000), "mlp": (1000,), "layers": (300,)}
RUN_SEED = 20_000  # latent seed of fakes sampled from --runs: disjoint from `ganforge detect`'s default seed 0


def make_fakes(out: Path, stages: list[int], unseen: list[int], n: int, seed: int = 0, families=FAMILIES,
               config=family_config, tag: str = "") -> dict[str, Path]:
    """Train each family once, sampling ``n`` fakes at every stage; returns {'family[tag]-step': npz path}."""
    from ganforge.data import load_dataset
    from ganforge.generate.sampling import sample
    from ganforge.storage.atomic import atomic_write_with
    from ganforge.storage.images import to_uint8
    from ganforge.train.run import Run
    from ganforge.train.trainer import Trainer

    want = sorted(set(stages) | set(unseen))
    files = {}
    for family in families:
        paths = {s: out / "fakes" / f"{family}{tag}-{s}.npz" for s in want}
        files.update({f"{family}{tag}-{s}": p for s, p in paths.items()})
        if all(p.exists() for p in paths.values()):
            continue
        cfg = config(family, max(want), seed)
        trainer = Trainer(cfg, load_dataset(cfg.data, family=family))
        run = Run(trainer, out / "runs" / f"{family}{tag}", progress=False)
        start = time.perf_counter()

        def at_stage(tr, metrics, paths=paths):
            if tr.step_count in paths:
                G = tr.G_ema if getattr(tr, "G_ema", None) is not None else tr.G
                was = G.training
                G.eval()
                imgs = to_uint8(sample(G, n, seed=10_000 + tr.step_count)).transpose(0, 3, 1, 2)
                G.train(was)
                atomic_write_with(paths[tr.step_count], lambda f, imgs=imgs: np.savez_compressed(f, images=imgs))

        run.train(callback=at_stage)
        print(f"{family}{tag}: {max(want)} steps in {time.perf_counter() - start:.0f} s", flush=True)
    return files


def make_default_fakes(out: Path, n: int, recipes: dict | None = None, seed: int = 0) -> dict[str, Path]:
    """Fakes of default-size generators (``DEFAULT_RECIPES``), keys 'family-default-step'."""
    files = {}
    for family, steps in (DEFAULT_RECIPES if recipes is None else recipes).items():
        files.update(make_fakes(out, list(steps), [], n, seed, (family,), default_config, "-default"))
    return files


def run_fakes(out: Path, runs: list[str], n: int, seed: int = RUN_SEED) -> dict[str, Path]:
    """``n`` fakes from each already-trained run (any family), latent seed ``seed``; keys 'run:NAME@STEP'."""
    from ganforge.detect.sources import generated
    from ganforge.storage.atomic import atomic_write_with

    files = {}
    for run in runs:
        path = out / "fakes" / f"run-{Path(run).name}-{seed}-{n}.npz"
        if not path.exists():
            imgs = np.stack([it.array for it in generated(run, n, seed=seed)])
            atomic_write_with(path, lambda f, imgs=imgs: np.savez_compressed(f, images=imgs))
        files[f"run:{run}"] = path
    return files


def real_split(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) of a built-in digit set at its own size, split by a fixed seed."""
    from ganforge.detect.sources import builtin_arrays

    a = builtin_arrays(name)
    idx = np.random.default_rng(REAL_SPLIT_SEED).permutation(len(a))
    k = REAL_TEST[name]
    return a[idx[k:]], a[idx[:k]]


def decoded(arrays: np.ndarray, size: int = 28) -> np.ndarray:
    """The detector's decode path (no normalisation yet: training applies it after augmentation)."""
    from ganforge.detect.decode import decode_array

    return np.stack([decode_array(a, size, 1, 0) for a in arrays])


def load_fakes(files: dict[str, Path], keys: list[str]) -> np.ndarray:
    return np.concatenate([decoded(np.load(files[k])["images"]) for k in keys])


def evaluate(det, name: str, fake: np.ndarray) -> dict:
    """The detector's scores on ``fake`` against the held-out real split, at its calibrated threshold."""
    from ganforge.detect.calibrate import scores
    from ganforge.detect.decode import normalize

    real = np.concatenate([decoded(real_split(n)[1]) for n in ("mnist", "digits")])
    x = np.stack([normalize(a, det.quality) for a in np.concatenate([real, fake])])
    y = np.r_[np.zeros(len(real), int), np.ones(len(fake), int)]
    s = scores(det.calibration.prob(det.logits(x)), y, det.threshold)
    return {"test": name, **{k: round(v, 4) if isinstance(v, float) else v for k, v in s.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/digit-detector")
    p.add_argument("--stages", default="40,120,300", help="training steps of the tiny generators whose fakes the "
                   "detector learns from")
    p.add_argument("--unseen", default="80,200", help="stages sampled for detect_eval.py only")
    p.add_argument("--n", type=int, default=400, help="fakes per family and stage")
    p.add_argument("--no-default", action="store_true", help="leave out the default-size generators "
                   "(DEFAULT_RECIPES: `ganforge train --family F` at several stages)")
    p.add_argument("--runs", nargs="*", default=[], metavar="RUN", help="already-trained ganforge runs to sample "
                   "more training fakes from (latent seed --runs-seed)")
    p.add_argument("--runs-n", type=int, default=5000, help="fakes per --runs run")
    p.add_argument("--runs-seed", type=int, default=RUN_SEED)
    p.add_argument("--heldout", nargs="*", default=[], metavar="RUN", help="runs to score the detector on, "
                   "e.g. ones it never trained on (latent seed 0, as `ganforge detect --fake-from`)")
    p.add_argument("--heldout-n", type=int, default=500)
    p.add_argument("--kind", default="both", choices=["spectral", "cnn", "both"])
    p.add_argument("--cnn-steps", type=int, default=48000)
    p.add_argument("--cnn-width", type=int, default=16)
    p.add_argument("--detector-out", default=str(WEIGHTS))
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)

    from ganforge.detect import detector
    from ganforge.detect.sources import generated

    out = Path(a.out)
    stages = [int(s) for s in a.stages.split(",")]
    unseen = [int(s) for s in a.unseen.split(",") if s]
    t0 = time.perf_counter()
    files = make_fakes(out, stages, unseen, a.n)
    keys = [f"{f}-{s}" for f in FAMILIES for s in stages]
    if not a.no_default:
        default = make_default_fakes(out, a.n)
        files.update(default)
        keys += list(default)
    runs = run_fakes(out, a.runs, a.runs_n, a.runs_seed)
    files.update(runs)
    keys += list(runs)
    real = np.concatenate([decoded(real_split(name)[0]) for name in ("mnist", "digits")])
    fake = load_fakes(files, keys)
    t1 = time.perf_counter()
    opts = detector.TrainOptions(kind=a.kind, cnn_steps=a.cnn_steps, cnn_width=a.cnn_width, seed=0, progress=False)
    recipes = "" if a.no_default else "; default-size " + ", ".join(
        f"{f} at steps {list(s)}" for f, s in DEFAULT_RECIPES.items())
    info = {"made_by": "benchmarks/make_digit_detector.py", "real": "mnist and digits, less a held-out split "
            f"(seed {REAL_SPLIT_SEED}: {REAL_TEST})", "fake": f"width-16 {', '.join(FAMILIES)} on MNIST at steps "
            f"{stages}{recipes}" + (f"; runs {[Path(r).name for r in a.runs]} ({a.runs_n} each)" if a.runs else ""),
            "fakes_per_stage": a.n}
    det = detector.train(real, fake, 28, 1, detector.DEFAULT_QUALITY, opts, info)
    det.save(a.detector_out)
    print(json.dumps({"kind": a.kind, "n_real": len(real), "n_fake": len(fake),
                      "heldout": det.info["heldout_scores"], "fakes_s": round(t1 - t0),
                      "detector_s": round(time.perf_counter() - t1)}), flush=True)
    for run in a.heldout:
        imgs = decoded(np.stack([it.array for it in generated(run, a.heldout_n, seed=0)]))
        print(json.dumps(evaluate(det, f"{run}, latent seed 0", imgs)), flush=True)


if __name__ == "__main__":
    main()
