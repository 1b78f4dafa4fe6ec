"""Evaluation options and metric names (no heavy imports: the CLI's parser reads them)."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import EvalError

# fid, kid, precision/recall, density/coverage, the digit network's inception-like score, its confident
# rate and class shares, and the mean sigmoid(D) of a run's discriminator on real and generated images.
METRICS = ("fid", "kid", "pr", "dc", "is", "digits", "d")
FEATURE_METRICS = {"fid", "kid", "pr", "dc"}


@dataclass
class EvalOptions:
    metrics: tuple[str, ...] | None = None  # None: every metric that applies to these sets
    n: int = 5000  # generated (or fake-folder) images
    seed: int = 0  # latents / fake-folder choice
    batch_size: int | None = None  # None: the extractor's own
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    k_pr: int = 3
    k_dc: int = 5
    real_max: int = 50_000  # real images whose features are used (a seeded random choice when more)
    cache: bool = True
    progress: bool = False  # a progress bar on a terminal (the CLI; not inside training)


def parse_metrics(text: str | None) -> tuple[str, ...] | None:
    """'fid,kid' -> ('fid', 'kid'); 'all' or empty -> None (every metric that applies)."""
    if text is None or text.strip().lower() in ("", "all"):
        return None
    names = tuple(dict.fromkeys(m.strip().lower() for m in text.split(",") if m.strip()))
    bad = [m for m in names if m not in METRICS]
    if bad:
        raise EvalError(f"unknown metric '{bad[0]}': choose from {', '.join(METRICS)} (comma-separated) or all")
    return names
