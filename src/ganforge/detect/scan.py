"""What the two commands do, as library calls: score inputs, evaluate on labelled sets, build a detector."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ganforge.detect import detector as dmod
from ganforge.detect import sources
from ganforge.detect.calibrate import scores
from ganforge.detect.decode import normalize
from ganforge.errors import DataError

WEIGHTS = Path(__file__).resolve().parent / "weights"
DEFAULT_DETECTOR = WEIGHTS / "digits"  # the shipped detector (benchmarks/make_digit_detector.py)


def load_detector(path: str | Path | None) -> dmod.Detector:
    return dmod.load(DEFAULT_DETECTOR if path is None else path)


@dataclass
class Scored:
    """Scored images: names, normalised uint8 images, labels (1 fake, 0 real, -1 unknown), predictions."""

    names: list[str] = field(default_factory=list)
    images: np.ndarray | None = None
    labels: np.ndarray | None = None
    results: list[dict] = field(default_factory=list)

    @property
    def p(self) -> np.ndarray:
        return np.array([r["p_fake"] for r in self.results])


def score(det: dmod.Detector, items: list[sources.Item], label: int = -1, progress: bool = False,
          batch_size: int = 512, on_skip=None) -> Scored:
    """Decode and score ``items``; unreadable ones are reported (``on_skip``) and left out."""
    x, names = sources.read_all(items, det.size, det.channels, det.quality, progress=progress, on_skip=on_skip)
    results = []
    for i in range(0, len(x), batch_size):
        results += det.predict(x[i:i + batch_size])
    return Scored(names, x, np.full(len(x), label, np.int64), results)


def merge(parts: list[Scored]) -> Scored:
    parts = [p for p in parts if p.names]
    if not parts:
        return Scored(images=np.zeros((0,)), labels=np.zeros(0, np.int64))
    return Scored(sum((p.names for p in parts), []), np.concatenate([p.images for p in parts]),
                  np.concatenate([p.labels for p in parts]), sum((p.results for p in parts), []))


def evaluate(det: dmod.Detector, real: Scored, fake: Scored) -> dict:
    """AP, ROC AUC, accuracy and balanced accuracy at the detector's threshold, ECE."""
    if not real.names or not fake.names:
        raise DataError("evaluation needs at least one readable real and one readable fake image")
    p = np.concatenate([real.p, fake.p])
    y = np.r_[np.zeros(len(real.names), int), np.ones(len(fake.names), int)]
    return scores(p, y, det.threshold)


def fake_items(fake: list[str], fake_from: list[str], n_per_run: int, seed: int, device: str = "cpu") -> list:
    out = sources.all_items(fake)
    for i, run in enumerate(fake_from):
        out += sources.generated(run, n_per_run, seed=seed + 1000 * i, device=device)
    return out


def build(real: list[str], fake: list[str], fake_from: list[str], size: int | None, channels: int | None,
          quality: int, opts: dmod.TrainOptions, n_per_run: int = 1000, max_images: int | None = None,
          device: str = "cpu", on_skip=None) -> dmod.Detector:
    """`ganforge detect-train`: read the real set and the fakes (made on the fly from runs), train, calibrate."""
    if not fake and not fake_from:
        raise DataError("give fakes to learn from: --fake DIR and/or --fake-from RUN")
    dmod.check_options(opts)  # before reading any image
    if size is None or channels is None:
        gs, gc = sources.guess_shape(real)
        size, channels = size or gs, channels or gc
    problem = dmod.shape_problem(size, channels, quality)
    if problem:  # before reading any image
        raise DataError(f"cannot train a detector: {problem}: give another --size")
    rng = np.random.default_rng(opts.seed)

    def cap(items: list) -> list:
        if max_images and len(items) > max_images:
            return [items[i] for i in sorted(rng.choice(len(items), max_images, replace=False))]
        return items

    r, _ = sources.read_all(cap(sources.all_items(real)), size, channels, 0, progress=opts.progress, on_skip=on_skip)
    f, _ = sources.read_all(cap(fake_items(fake, fake_from, n_per_run, opts.seed, device)), size, channels, 0,
                            progress=opts.progress, on_skip=on_skip)
    info = {"real": list(real), "fake": list(fake), "fake_from": list(fake_from)}
    return dmod.train(r, f, size, channels, quality, opts, info)


def normalised(images: np.ndarray, quality: int) -> np.ndarray:
    return np.stack([normalize(a, quality) for a in images]) if len(images) else images
