"""Make the detector that ships with ganforge for the bundled digit domain (src/ganforge/detect/weights/digits).

    nice python benchmarks/make_digit_detector.py [--out runs/digit-detector] [--stages 40,120,300]

Trains a small generator of every family (mlp, dcgan, cdcgan, layers, stylegan2) on MNIST, samples fakes at
several training stages (and at --unseen stages that the detector never sees, for benchmarks/detect_eval.py),
then trains the detector on those fakes against real MNIST and digits, each real set split by a fixed seed so
that the held-out part stays unseen. The fakes are kept under OUT/fakes as .npz for detect_eval.py.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

FAMILIES = ("mlp", "dcgan", "cdcgan", "layers", "stylegan2")
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
    return cfg


def make_fakes(out: Path, stages: list[int], unseen: list[int], n: int, seed: int = 0) -> dict[str, Path]:
    """Train each family once, sampling ``n`` fakes at every stage; returns {'family-step': npz path}."""
    from ganforge.data import load_dataset
    from ganforge.generate.sampling import sample
    from ganforge.storage.atomic import atomic_write_with
    from ganforge.storage.images import to_uint8
    from ganforge.train.run import Run
    from ganforge.train.trainer import Trainer

    want = sorted(set(stages) | set(unseen))
    files = {}
    for family in FAMILIES:
        paths = {s: out / "fakes" / f"{family}-{s}.npz" for s in want}
        files.update({f"{family}-{s}": p for s, p in paths.items()})
        if all(p.exists() for p in paths.values()):
            continue
        cfg = family_config(family, max(want), seed)
        trainer = Trainer(cfg, load_dataset(cfg.data))
        run = Run(trainer, out / "runs" / family, progress=False)
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
        print(f"{family}: {max(want)} steps in {time.perf_counter() - start:.0f} s", flush=True)
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/digit-detector")
    p.add_argument("--stages", default="40,120,300", help="training steps whose fakes the detector learns from")
    p.add_argument("--unseen", default="80,200", help="stages sampled for detect_eval.py only")
    p.add_argument("--n", type=int, default=400, help="fakes per family and stage")
    p.add_argument("--kind", default="both", choices=["spectral", "cnn", "both"])
    p.add_argument("--cnn-steps", type=int, default=300)
    p.add_argument("--detector-out", default=str(WEIGHTS))
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)

    from ganforge.detect import detector

    out = Path(a.out)
    stages = [int(s) for s in a.stages.split(",")]
    unseen = [int(s) for s in a.unseen.split(",") if s]
    t0 = time.perf_counter()
    files = make_fakes(out, stages, unseen, a.n)
    real = np.concatenate([decoded(real_split(name)[0]) for name in ("mnist", "digits")])
    fake = load_fakes(files, [f"{f}-{s}" for f in FAMILIES for s in stages])
    t1 = time.perf_counter()
    opts = detector.TrainOptions(kind=a.kind, cnn_steps=a.cnn_steps, seed=0, progress=False)
    info = {"made_by": "benchmarks/make_digit_detector.py", "real": "mnist and digits, less a held-out split "
            f"(seed {REAL_SPLIT_SEED}: {REAL_TEST})", "fake": f"{', '.join(FAMILIES)} on MNIST at steps {stages}",
            "fakes_per_stage": a.n}
    det = detector.train(real, fake, 28, 1, detector.DEFAULT_QUALITY, opts, info)
    det.save(a.detector_out)
    print(json.dumps({"kind": a.kind, "n_real": len(real), "n_fake": len(fake),
                      "heldout": det.info["heldout_scores"], "fakes_s": round(t1 - t0),
                      "detector_s": round(time.perf_counter() - t1)}), flush=True)


if __name__ == "__main__":
    main()
