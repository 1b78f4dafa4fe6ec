"""Evaluate ganforge's detectors (docs/benchmarks.md): digits and colour photos, seen and held-out generators.

    nice python benchmarks/detect_eval.py [--fakes runs/digit-detector] [--out runs/detect-eval] [--skip photos]

Digit domain (fakes from benchmarks/make_digit_detector.py, made first if missing; real = the MNIST and digits
images that the shipped detector never saw):
* seen families: train on every family at the seen stages (the first --train-per-stage fakes of each), test on
  the rest, at the calibrated threshold: AP, balanced accuracy, ECE;
* leave-one-family-out: train on four families, test on the fifth, every family in turn;
* unseen stages: the seen-family detector on fakes of steps it never saw;
* robustness: the seen-family detector on test images (real and fake) re-saved as JPEG 75 and 50, resized to
  0.5x, blurred with sigma 1 and 2.
Colour photos: runs of every family (--photo-families) trained on `photos` at 32 px; detectors trained on
`photos` against fakes of one seed range, tested on `photos-test` (other photographs) against fakes of another:
seen families, leave-one-family-out and robustness as for digits; the fakes of every --photo-steps stage train
and test them, and the seen-family detector also meets fakes of --photo-unseen stages.
``--spectral-mode`` picks the spectral model (linear, deviation, either) for every spectral and combined detector;
``--quality`` and ``--augment`` set the input normalisation and the augmentation as detect-train's options do.
Speed: `detect` (decode + score, from PNG files) in images/s at 28x28 for the spectral and the CNN detector.
Prints one JSON line per result and a Markdown table at the end.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ganforge.detect import detector
from ganforge.detect.augment import perturb
from ganforge.detect.calibrate import scores
from ganforge.detect.cnn import INPUTS
from ganforge.detect.decode import normalize
from make_digit_detector import FAMILIES, decoded, family_config, make_fakes, real_split

PERTURB = (("jpeg", 75), ("jpeg", 50), ("resize", 0.5), ("blur", 1.0), ("blur", 2.0))
ROWS: list[dict] = []


def emit(**row) -> None:
    ROWS.append(row)
    print(json.dumps(row), flush=True)


def score(det, real: np.ndarray, fake: np.ndarray) -> dict:
    x = np.stack([normalize(a, det.quality) for a in np.concatenate([real, fake])])
    y = np.r_[np.zeros(len(real), int), np.ones(len(fake), int)]
    s = scores(det.calibration.prob(det.logits(x)), y, det.threshold)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in s.items()}


def train(kind, real, fake, size, channels, a):
    opts = detector.TrainOptions(kind=kind, cnn_steps=a.cnn_steps, cnn_width=a.cnn_width, cnn_input=a.cnn_input,
                                 cnn_ensemble=a.cnn_ensemble, seed=0, spectral_mode=a.spectral_mode, augment=a.augment)
    return detector.train(real, fake, size, channels, a.quality, opts)


def digits(a) -> None:
    stages = [int(s) for s in a.stages.split(",")]
    unseen = [int(s) for s in a.unseen.split(",")]
    files = make_fakes(Path(a.fakes), stages, unseen, a.n)
    k = a.train_per_stage
    fk = {key: decoded(np.load(p)["images"]) for key, p in files.items()}
    train_f = {f: np.concatenate([fk[f"{f}-{s}"][:k] for s in stages]) for f in FAMILIES}
    test_f = {f: np.concatenate([fk[f"{f}-{s}"][k:] for s in stages]) for f in FAMILIES}
    real_tr = np.concatenate([decoded(real_split(n)[0]) for n in ("mnist", "digits")])
    real_te = np.concatenate([decoded(real_split(n)[1]) for n in ("mnist", "digits")])
    rng = np.random.default_rng(0)
    real_tr = real_tr[rng.permutation(len(real_tr))[:a.real_train]]
    all_train = np.concatenate(list(train_f.values()))
    all_test = np.concatenate(list(test_f.values()))
    for kind in a.kinds.split(","):
        t = time.perf_counter()
        det = train(kind, real_tr, all_train, 28, 1, a)
        emit(domain="digits", kind=kind, test="seen families", train_s=round(time.perf_counter() - t),
             **score(det, real_te, all_test))
        for f in FAMILIES:
            emit(domain="digits", kind=kind, test=f"seen, {f} only", **score(det, real_te, test_f[f]))
        unseen_f = np.concatenate([fk[f"{f}-{s}"] for f in FAMILIES for s in unseen])
        emit(domain="digits", kind=kind, test=f"unseen stages {unseen}", **score(det, real_te, unseen_f))
        for name, value in PERTURB:
            emit(domain="digits", kind=kind, test=f"{name} {value:g}",
                 **score(det, perturb(real_te, name, value), perturb(all_test, name, value)))
        if kind in a.lofo_kinds.split(","):
            for held in FAMILIES:
                rest = np.concatenate([train_f[f] for f in FAMILIES if f != held])
                d = train(kind, real_tr, rest, 28, 1, a)
                emit(domain="digits", kind=kind, test=f"held-out family {held}", **score(d, real_te, test_f[held]))
        speed(det, kind, real_te)


def speed(det, kind: str, images: np.ndarray) -> None:
    from PIL import Image

    from ganforge.detect import scan, sources

    with tempfile.TemporaryDirectory() as tmp:
        for i, a in enumerate(images[:1000]):
            Image.fromarray(a[0]).save(Path(tmp, f"{i:04d}.png"))
        items = sources.items(tmp)
        t = time.perf_counter()
        got = scan.score(det, items)
        seconds = time.perf_counter() - t
    emit(domain="digits", kind=kind, test="speed", images=len(got.names),
         images_per_s=round(len(got.names) / seconds), threads=torch.get_num_threads())


def photos(a) -> None:
    from ganforge.config import DataConfig
    from ganforge.data import load_dataset
    from ganforge.generate.sampling import sample
    from ganforge.storage.atomic import atomic_write_with
    from ganforge.storage.images import to_uint8
    from ganforge.train.run import Run
    from ganforge.train.trainer import Trainer

    res = 32
    real_tr = decoded_rgb(load_dataset(DataConfig(source="photos", resolution=res, labels=False,
                                                  cache=False)).images.numpy(), res)
    real_te = decoded_rgb(load_dataset(DataConfig(source="photos-test", resolution=res, labels=False,
                                                  cache=False)).images.numpy(), res)

    def family_steps(family: str, steps: int) -> int:
        return steps // 2 if family == "stylegan2" else steps  # the protocol trains StyleGAN2 half the steps

    def fakes(family: str, steps: int):
        """(train, test) fakes of ``family`` trained ``steps`` steps on photos; kept, so a rerun reuses them."""
        kept = Path(a.out) / "photo-fakes" / f"{family}-{steps}.npz"
        if kept.exists():
            with np.load(kept) as f:
                return f["train"], f["test"]
        cfg = family_config(family, steps, 0)
        cfg.data = DataConfig(source="photos", resolution=res, channels=3, labels=family == "cdcgan", cache=False)
        t = time.perf_counter()
        tr = Trainer(cfg, load_dataset(cfg.data))
        Run(tr, Path(a.out) / "photo-runs" / f"{family}-{steps}", progress=False).train()
        G = tr.G_ema.eval()
        f_tr = decoded_rgb(to_uint8(sample(G, len(real_tr) // 2, seed=1)).transpose(0, 3, 1, 2), res)
        f_te = decoded_rgb(to_uint8(sample(G, len(real_te) // 2, seed=10 ** 6)).transpose(0, 3, 1, 2), res)
        atomic_write_with(kept, lambda f, a=f_tr, b=f_te: np.savez_compressed(f, train=a, test=b))
        emit(domain="photos", test=f"{family} trained {steps} steps", train_s=round(time.perf_counter() - t))
        return f_tr, f_te

    fakes_tr, fakes_te = [], []
    for family in a.photo_families.split(","):  # each family's fakes of every --photo-steps stage together
        stages = [fakes(family, family_steps(family, int(v))) for v in a.photo_steps.split(",")]
        fakes_tr.append(np.concatenate([f for f, _ in stages]))
        fakes_te.append((family, np.concatenate([f for _, f in stages])))
    all_tr = np.concatenate(fakes_tr)
    all_te = np.concatenate([f for _, f in fakes_te])
    for kind in a.kinds.split(","):
        det = train(kind, real_tr, all_tr, res, 3, a)
        emit(domain="photos", kind=kind, test="photos-test vs new fakes", **score(det, real_te, all_te))
        for family, f in fakes_te:
            emit(domain="photos", kind=kind, test=f"{family} only", **score(det, real_te, f))
        for held, _ in fakes_te:
            rest = np.concatenate([f for fam, f in zip([n for n, _ in fakes_te], fakes_tr) if fam != held])
            d = train(kind, real_tr, rest, res, 3, a)
            emit(domain="photos", kind=kind, test=f"held-out family {held}",
                 **score(d, real_te, dict(fakes_te)[held]))
        for name, value in PERTURB:
            emit(domain="photos", kind=kind, test=f"{name} {value:g}",
                 **score(det, perturb(real_te, name, value), perturb(all_te, name, value)))
        for steps in [int(v) for v in a.photo_unseen.split(",") if v]:  # stages no detector saw
            for family, _ in fakes_te:
                n = family_steps(family, steps)
                emit(domain="photos", kind=kind, test=f"{family} at {n} steps (unseen stage)",
                     **score(det, real_te, fakes(family, n)[1]))


def decoded_rgb(arrays: np.ndarray, size: int) -> np.ndarray:
    from ganforge.detect.decode import decode_array

    return np.stack([decode_array(x, size, 3, 0) for x in arrays])


def table() -> None:
    print("\n| domain | kind | test | AP | ROC AUC | balanced acc. | ECE | images/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in ROWS:
        if "ap" in r or "images_per_s" in r:
            cells = [r.get("ap", ""), r.get("roc_auc", ""), r.get("balanced_accuracy", ""), r.get("ece", ""),
                     r.get("images_per_s", "")]
            print(f"| {r['domain']} | {r.get('kind', '')} | {r['test']} | " + " | ".join(map(str, cells)) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fakes", default="runs/digit-detector", help="make_digit_detector.py's --out")
    p.add_argument("--out", default="runs/detect-eval")
    p.add_argument("--stages", default="40,120,300")
    p.add_argument("--unseen", default="80,200")
    p.add_argument("--n", type=int, default=400, help="fakes per family and stage (as make_digit_detector)")
    p.add_argument("--train-per-stage", type=int, default=300, help="of those, used for training")
    p.add_argument("--real-train", type=int, default=3000, help="real training images (of the unseen split)")
    p.add_argument("--kinds", default="spectral,cnn")
    p.add_argument("--lofo-kinds", default="spectral", help="kinds run leave-one-family-out (each trains 5 times)")
    p.add_argument("--cnn-steps", type=int, default=300)
    p.add_argument("--cnn-width", type=int, default=detector.CNN_WIDTH)
    p.add_argument("--cnn-input", default=INPUTS[0], choices=INPUTS)
    p.add_argument("--cnn-ensemble", type=int, default=1, help="CNNs per detector (detect-train --cnn-ensemble)")
    p.add_argument("--spectral-mode", default="linear", choices=detector.SPECTRAL_MODES,
                   help="the spectral model's mode (ganforge detect-train --spectral-mode)")
    p.add_argument("--quality", type=int, default=detector.DEFAULT_QUALITY,
                   help="JPEG quality of the input normalisation (0: off; detect-train --normalize-quality)")
    p.add_argument("--augment", type=float, default=0.5, help="augmentation probability (detect-train --augment)")
    p.add_argument("--photo-steps", default="1500", help="comma list: steps of each family on photos (StyleGAN2: "
                   "half); with several, every stage's fakes train and test the photo detectors")
    p.add_argument("--photo-unseen", default="500", help="comma list of other step counts (StyleGAN2: half) "
                   "whose fakes test the photo detectors trained on --photo-steps fakes ('': none)")
    p.add_argument("--photo-families", default=",".join(FAMILIES),
                   help=f"comma list of the families trained on photos, of {', '.join(FAMILIES)} (cdcgan: the "
                        "source photograph is the class)")
    p.add_argument("--skip", default="", help="comma list of digits, photos")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    start = time.perf_counter()
    if "digits" not in a.skip:
        digits(a)
    if "photos" not in a.skip:
        photos(a)
    table()
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
