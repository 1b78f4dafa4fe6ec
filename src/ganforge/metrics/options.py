"""Evaluation options and metric names (no heavy imports: the CLI's parser reads them)."""
from __future__ import annotations

from dataclasses import dataclass

from ganforge.errors import EvalError

# fid, kid, precision/recall, density/coverage, the digit network's inception-like score, its confident
# rate and class shares, the mean sigmoid(D) of a run's discriminator on real and generated images, and
# the generator's perceptual path length and linear separability (both need a run's G), and ProGAN's sliced
# Wasserstein distance of Laplacian-pyramid neighbourhoods (no feature network: any images).
METRICS = ("fid", "kid", "pr", "dc", "is", "digits", "d", "ppl", "ls", "swd")
FEATURE_METRICS = {"fid", "kid", "pr", "dc"}
GENERATOR_METRICS = {"ppl", "ls"}  # measured on G itself, not on a set of images
# Not part of 'all': each renders or compares thousands of extra images (tens of seconds for a 32 px
# StyleGAN2 on a CPU at the default sizes), so they run only when named in --metrics.
OPT_IN_METRICS = {"ppl", "ls", "swd"}


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
    ppl_n: int = 2000  # PPL: latent pairs (each renders two images)
    ppl_space: str | None = None  # 'z' or 'w'; None: w for generators with a mapping network, else z
    ppl_sampling: str = "end"  # 'end': t = 0 (StyleGAN2's); 'full': t ~ U(0, 1) (the StyleGAN paper's)
    ppl_epsilon: float = 1e-4
    vgg: str | None = None  # LPIPS VGG16 weights for PPL (None: ganforge.metrics.lpips's default place)
    ls_n: int = 5000  # linear separability: samples (the most confidently labelled half is used)
    swd_n: int = 1000  # SWD: images of each set (128 neighbourhoods per image and pyramid level)


def parse_metrics(text: str | None) -> tuple[str, ...] | None:
    """'fid,kid' -> ('fid', 'kid'); 'all' or empty -> None (every metric that applies)."""
    if text is None or text.strip().lower() in ("", "all"):
        return None
    names = tuple(dict.fromkeys(m.strip().lower() for m in text.split(",") if m.strip()))
    bad = [m for m in names if m not in METRICS]
    if bad:
        raise EvalError(f"unknown metric '{bad[0]}': choose from {', '.join(METRICS)} (comma-separated) or all")
    return names
