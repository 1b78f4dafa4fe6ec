"""Turning raw detector logits into probabilities that mean what they say, and measuring how well they do.

Calibration is Platt scaling (a 1-D logistic regression on the held-out split's logits: p = sigmoid(a*s + b));
the threshold is the one that maximises balanced accuracy on that same held-out split, so accuracy at the
threshold follows AP instead of falling far below it as with an uncalibrated 0.5.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ECE_BINS = 15


@dataclass
class Calibration:
    a: float = 1.0
    b: float = 0.0
    threshold: float = 0.5

    def prob(self, logits: np.ndarray) -> np.ndarray:
        return sigmoid(self.a * np.asarray(logits, dtype=np.float64) + self.b)

    def to_dict(self) -> dict:
        return {"method": "platt", "a": self.a, "b": self.b, "threshold": self.threshold}

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        """From a detector's JSON; ValueError (naming the field) for anything that is not a calibration."""
        if not isinstance(d, dict):
            raise ValueError(f"a calibration is an object with a, b and threshold, got {type(d).__name__}")
        missing = [k for k in ("a", "b", "threshold") if k not in d]
        if missing:
            raise ValueError(f"calibration has no {', '.join(missing)}")
        a, b, t = (float(d[k]) for k in ("a", "b", "threshold"))
        if not (np.isfinite(a) and np.isfinite(b)):
            raise ValueError(f"calibration a={a}, b={b} is not finite")
        if not 0 <= t <= 1:  # also false for NaN
            raise ValueError(f"threshold {t} is not a probability between 0 and 1")
        return cls(a, b, t)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def fit_platt(logits: np.ndarray, y: np.ndarray) -> Calibration:
    """Platt scaling of held-out ``logits`` against labels ``y`` (1 = fake), then the threshold."""
    from sklearn.linear_model import LogisticRegression

    s = np.asarray(logits, dtype=np.float64).reshape(-1, 1)
    scale = max(float(np.std(s)), 1e-6)  # fit on a unit scale: separable held-out sets stay well-posed
    lr = LogisticRegression(C=1.0).fit(s / scale, y)
    cal = Calibration(float(lr.coef_[0, 0]) / scale, float(lr.intercept_[0]))
    cal.threshold = best_threshold(cal.prob(logits), y)
    return cal


def best_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """The probability cut that maximises balanced accuracy (midpoint between neighbouring scores; ties -> 0.5)."""
    order = np.unique(p)
    cuts = np.concatenate([[0.5], (order[1:] + order[:-1]) / 2]) if len(order) > 1 else np.array([0.5])
    best = max(cuts, key=lambda t: (round(balanced_accuracy(p, y, t), 12), -abs(t - 0.5)))
    return float(best)


def balanced_accuracy(p: np.ndarray, y: np.ndarray, t: float) -> float:
    pred = p >= t
    tpr = pred[y == 1].mean() if (y == 1).any() else 0.0
    tnr = (~pred[y == 0]).mean() if (y == 0).any() else 0.0
    return float((tpr + tnr) / 2)


def ece(p: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error of p(fake) with ``bins`` equal-width bins."""
    p = np.asarray(p, dtype=np.float64)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.mean() * abs(p[m].mean() - y[m].mean())
    return float(total)


def reliability(p: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> list[tuple[float, float, int]]:
    """(mean predicted p, observed fake share, count) per bin, empty bins left out."""
    idx = np.minimum((np.asarray(p) * bins).astype(int), bins - 1)
    return [(float(p[idx == b].mean()), float(y[idx == b].mean()), int((idx == b).sum()))
            for b in range(bins) if (idx == b).any()]


def scores(p: np.ndarray, y: np.ndarray, threshold: float) -> dict:
    """AP, ROC AUC, accuracy and balanced accuracy at ``threshold``, ECE (15 bins), counts."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    p, y = np.asarray(p, dtype=np.float64), np.asarray(y).astype(int)
    both = len(set(y.tolist())) == 2
    return {"ap": float(average_precision_score(y, p)) if both else float("nan"),
            "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
            "accuracy": float(((p >= threshold) == (y == 1)).mean()),
            "balanced_accuracy": balanced_accuracy(p, y, threshold),
            "ece": ece(p, y), "threshold": float(threshold), "n_real": int((y == 0).sum()),
            "n_fake": int((y == 1).sum())}


def reliability_png(p: np.ndarray, y: np.ndarray, size: int = 320):
    """A reliability diagram as a PIL image: bars of observed fake share per bin against the diagonal."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(img)
    m = 36
    w = size - 2 * m
    x0, y0 = m, size - m

    def pt(px: float, py: float) -> tuple[float, float]:
        return x0 + px * w, y0 - py * w

    d.rectangle([pt(0, 1), pt(1, 0)], outline="black")
    for b in range(ECE_BINS):
        lo, hi = b / ECE_BINS, (b + 1) / ECE_BINS
        sel = (np.minimum((p * ECE_BINS).astype(int), ECE_BINS - 1) == b)
        if sel.any():
            d.rectangle([pt(lo, float(y[sel].mean())), pt(hi, 0)], fill=(90, 130, 200), outline="white")
    d.line([pt(0, 0), pt(1, 1)], fill=(200, 60, 60), width=2)
    for t in (0, 0.5, 1):
        d.text((pt(t, 0)[0] - 6, y0 + 6), f"{t:g}", fill="black")
        d.text((6, pt(0, t)[1] - 6), f"{t:g}", fill="black")
    d.text((m, 8), f"reliability (ECE {ece(p, y):.3f}, {ECE_BINS} bins)", fill="black")
    d.text((m + w // 3, size - 16), "predicted p(fake)", fill="black")
    return img
