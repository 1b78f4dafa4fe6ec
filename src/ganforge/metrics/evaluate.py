"""``evaluate(fake, real, extractor)``: every metric of a generated set against a real one.

One streamed pass over each set feeds the feature extractor, the digit network (for the classifier
scores) and the run's discriminator together; the real set's features come from the stats cache when
they can. Perceptual path length and linear separability (:mod:`.ppl`, :mod:`.separability`) sample the
generator of a :class:`~.sources.GeneratorSource` themselves.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ganforge.errors import EvalError
from ganforge.metrics.digits import digit_scores
from ganforge.metrics.features import DigitFeatures, is_digit_like
from ganforge.metrics.fid import frechet_distance, gaussian_stats, real_floor
from ganforge.metrics.kid import kid
from ganforge.metrics.options import FEATURE_METRICS, GENERATOR_METRICS, METRICS, OPT_IN_METRICS, EvalOptions
from ganforge.metrics.prdc import density_coverage, precision_recall
from ganforge.metrics.scores import discriminator_mean, inception_score
from ganforge.metrics.stats_cache import real_stats

REAL_SEED = 0  # fixed, so the cached real features are reused whatever --seed is


GENERATOR_NAMES = {"ppl": "perceptual path length", "ls": "linear separability"}


def choose_metrics(asked: tuple[str, ...] | None, digit_like: bool, has_d: bool,
                   has_g: bool = False) -> tuple[str, ...]:
    if asked is None:
        return tuple(m for m in METRICS if (m not in ("is", "digits") or digit_like) and (m != "d" or has_d)
                     and m not in OPT_IN_METRICS)
    if "d" in asked and not has_d:
        raise EvalError("metric 'd' (mean D(x), D(G(z))) needs a run: pass RUN instead of --fake")
    for name in GENERATOR_METRICS & set(asked):
        if not has_g:
            raise EvalError(f"metric '{name}' ({GENERATOR_NAMES[name]}) needs a generator, not images: "
                            "pass RUN instead of --fake")
    return asked


@dataclass
class Scan:
    features: np.ndarray | None  # [n, D] float32
    probs: torch.Tensor | None  # digit-network class probabilities [n, 10]
    d: torch.Tensor | None  # sigmoid(D(x)) [n]
    n: int


def scan(source, count: int, batch_size: int, seed: int, extractor=None, digits: DigitFeatures | None = None,
         D: torch.nn.Module | None = None, progress: bool = False) -> Scan:
    """Stream ``count`` images of ``source`` through whichever networks are given, batch by batch."""
    feats, probs, ds, n = [], [], [], 0
    bar = tqdm(total=count, desc=f"scoring {source.name}", unit="img", leave=False, disable=None if progress else True)
    for x, labels in source.batches(count, batch_size, seed):
        n += len(x)
        bar.update(len(x))
        if digits is not None:
            f, p = digits.features_and_probs(x)
            probs.append(p)
            if extractor is digits:  # one forward pass gives both
                feats.append(f.numpy())
        if extractor is not None and extractor is not digits:
            feats.append(extractor(x).numpy())
        if D is not None:
            try:
                ds.append(discriminator_mean(D, x, labels))
            except ValueError as e:  # a conditional D shown unlabelled images
                raise EvalError(f"metric 'd' cannot run here ({e}); leave out --real or the d metric") from e
    bar.close()
    if n == 0:
        raise EvalError(f"no readable images in {source.name}")
    return Scan(np.concatenate(feats).astype(np.float32) if feats else None, torch.cat(probs) if probs else None,
                torch.cat(ds) if ds else None, n)


def evaluate(fake, real, extractor, opts: EvalOptions | None = None, D: torch.nn.Module | None = None) -> dict:
    """Scores of ``fake`` against ``real`` (sources from :mod:`.sources`); returns a JSON-able dict."""
    opts = opts or EvalOptions()
    start = time.perf_counter()
    digit_like = real.builtin or is_digit_like(real.channels, real.resolution)
    G = getattr(fake, "G", None)
    metrics = choose_metrics(opts.metrics, digit_like, D is not None, G is not None)
    scanned = bool(set(metrics) - GENERATOR_METRICS - {"swd"})  # what the one streamed pass measures
    need_feats = bool(FEATURE_METRICS & set(metrics))
    if not need_feats:
        extractor = None
    digits = None
    if {"is", "digits"} & set(metrics):
        digits = extractor if isinstance(extractor, DigitFeatures) else DigitFeatures()
    bs = opts.batch_size or (extractor.batch_size if extractor is not None else 500)
    n_fake = opts.n if fake.size is None else min(opts.n, fake.size)
    if scanned and n_fake < 2:
        raise EvalError(f"need at least 2 images to evaluate, got {n_fake}: raise --n or add images")

    result: dict = {"fake": fake.name, "real": real.name, "features": extractor.name if extractor else None,
                    "n": None, "n_real": None, "metrics": {}}
    stats = None
    if need_feats:
        count = min(real.size, opts.real_max)
        stats = real_stats(real.cache_key(), extractor.key, count, REAL_SEED,
                           lambda: scan(real, count, bs, REAL_SEED, extractor, progress=opts.progress).features,
                           opts.cache)
        result["n_real"], result["real_stats_cached"] = len(stats.features), stats.from_cache
    m = result["metrics"]
    if "swd" in metrics:
        m.update(_swd(fake, real, opts))
    if not scanned:
        _generator_metrics(G, metrics, opts, getattr(fake, "truncation", 1.0), m, result)
        result["seconds"] = round(time.perf_counter() - start, 2)
        return result
    f = scan(fake, n_fake, bs, opts.seed, extractor, digits, D if "d" in metrics else None, opts.progress)
    result["n"] = f.n
    if "fid" in metrics:
        m["fid"] = frechet_distance(stats.mu, stats.sigma, *gaussian_stats(f.features))
        m["fid_floor"], m["fid_floor_n"] = real_floor(stats.features, f.n, seed=REAL_SEED)
    if "kid" in metrics:
        m["kid"], m["kid_std"] = kid(stats.features, f.features, opts.kid_subsets, opts.kid_subset_size, opts.seed)
    if {"pr", "dc"} & set(metrics):
        # Both sets at the same size: the k-NN radii shrink as a set grows.
        size = min(f.n, len(stats.features))
        real_sub = stats.features[np.random.default_rng(REAL_SEED).permutation(len(stats.features))[:size]]
        if "pr" in metrics:
            m["precision"], m["recall"] = precision_recall(real_sub, f.features[:size], opts.k_pr)
        if "dc" in metrics:
            m["density"], m["coverage"] = density_coverage(real_sub, f.features[:size], opts.k_dc)
    if "is" in metrics:
        m["is"] = inception_score(f.probs)
    if "digits" in metrics:
        m.update(digit_scores(f.probs))
    if "d" in metrics:
        real_d = scan(real, min(f.n, real.size), 500, REAL_SEED, D=D).d
        m["d_real"], m["d_fake"] = real_d.mean().item(), f.d.mean().item()
    _generator_metrics(G, metrics, opts, getattr(fake, "truncation", 1.0), m, result)
    result["seconds"] = round(time.perf_counter() - start, 2)
    return result


def _swd(fake, real, opts: EvalOptions) -> dict:
    """ProGAN's sliced Wasserstein distance between ``opts.swd_n`` images of each set (pixels, no features)."""
    from ganforge.metrics.swd import Descriptors, swd

    if fake.resolution != real.resolution or fake.channels != real.channels:
        raise EvalError(f"metric 'swd' compares pixels, so both sets need one shape: fake {fake.channels}x"
                        f"{fake.resolution} px, real {real.channels}x{real.resolution} px; pass --resolution")
    if real.resolution < 7:
        raise EvalError(f"metric 'swd' needs images of at least 7x7 pixels, got {real.resolution}")
    count = min(opts.swd_n, real.size, opts.n if fake.size is None else min(opts.n, fake.size))
    if count < 2:
        raise EvalError(f"metric 'swd' needs at least 2 images of each set, got {count}: raise --n or add images")
    sets = {}
    for name, source, seed in (("real", real, REAL_SEED), ("fake", fake, opts.seed)):
        d = Descriptors(seed=seed)
        bar = tqdm(total=count, desc=f"swd {source.name}", unit="img", leave=False,
                   disable=None if opts.progress else True)
        for x, _ in source.batches(count, opts.batch_size or 250, seed):
            d.add(x)
            bar.update(len(x))
        bar.close()
        sets[name] = d
    return {**swd(sets["real"], sets["fake"], seed=opts.seed), "swd_n": count}


def _generator_metrics(G, metrics, opts: EvalOptions, truncation: float, m: dict, result: dict) -> None:
    """PPL and LS of ``G`` into ``m``; a metric that does not apply goes to ``result['skipped']`` with why."""
    if not GENERATOR_METRICS & set(metrics):
        return
    device = next(G.parameters()).device
    channels, resolution = G.img_shape[0], G.img_shape[1]
    skipped = result.setdefault("skipped", {})
    if "ppl" in metrics:
        from ganforge.metrics.ppl import check_options, choose_distance, perceptual_path_length

        space = check_options(G, opts.ppl_space, opts.ppl_sampling, opts.ppl_epsilon)  # fail before any work
        distance_fn, why = choose_distance(channels, resolution, opts.vgg, device)
        if distance_fn is None:
            skipped["ppl"] = why
        else:
            r = perceptual_path_length(G, distance_fn, opts.ppl_n, space, opts.ppl_sampling, opts.ppl_epsilon,
                                       batch_size=max(1, (opts.batch_size or 200) // 2), seed=opts.seed,
                                       device=device, truncation=truncation)
            m.update(ppl=r["value"], ppl_space=r["space"], ppl_sampling=r["sampling"], ppl_epsilon=r["epsilon"],
                     ppl_distance=r["distance"], ppl_n=r["n"], ppl_kept=r["n_kept"])
    if "ls" in metrics:
        from ganforge.metrics.separability import generator_separability

        if getattr(G, "num_classes", 0):
            skipped["ls"] = ("the generator is class-conditional: the digit is its input, not something its latent "
                             "encodes, so the digit labels say nothing about its latent space")
        elif not is_digit_like(channels, resolution):
            skipped["ls"] = ("needs digit-like images (1 channel, at most 32 px): the built-in digit network "
                             "labels the samples")
        else:
            r = generator_separability(G, opts.ls_n, seed=opts.seed, batch_size=opts.batch_size or 250,
                                       device=device, truncation=truncation)
            if r["value"] is None:
                skipped["ls"] = (f"every digit class had fewer than 10 of the {r['n_used']} most confidently "
                                 "labelled samples on one side: raise --ls-n")
            else:
                m.update(ls=r["value"], ls_space=r["space"])
                if "value_z" in r:
                    m["ls_z"] = r["value_z"]
                m.update(ls_attributes=r["attributes"], ls_skipped=r["skipped"], ls_n=r["n"], ls_used=r["n_used"])
    if not skipped:
        del result["skipped"]
