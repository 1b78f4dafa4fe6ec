"""Scoring what the user names: a run's generator or a folder of images against a real set, with the
feature extractor that fits them, through :func:`~ganforge.metrics.evaluate.evaluate`."""
from __future__ import annotations

from ganforge.config import DataConfig
from ganforge.data import load_dataset
from ganforge.data.builtin import BUILTINS, DIGIT_SETS
from ganforge.errors import EvalError
from ganforge.metrics.features import default_features, get_extractor
from ganforge.metrics.options import FEATURE_METRICS, GENERATOR_METRICS, EvalOptions
from ganforge.metrics.sources import DatasetSource, FolderSource, GeneratorSource


def real_source(real: str, resolution: int | None, channels: int | None):
    """A built-in set (loaded whole: it is small) or a folder / .zip (streamed, by default at its images' size)."""
    if real in BUILTINS:
        return DatasetSource(load_dataset(DataConfig(source=real, resolution=resolution, channels=channels)),
                             real in DIGIT_SETS)
    return FolderSource(real, resolution, channels)


class NoRealImages:
    """The real side when only generator metrics (PPL, linear separability) run: they compare no real images."""

    builtin, size = False, 0

    def __init__(self, G):
        self.channels, self.resolution = G.img_shape[0], G.img_shape[1]
        self.name = "none (ppl and ls use no real images)"


def run_eval(run: str | None, fake: str | None, real: str | None, opts: EvalOptions, features: str | None = None,
             inception_weights: str | None = None, resolution: int | None = None, channels: int | None = None,
             truncation: float = 1.0, device: str = "cpu", precision: str = "auto") -> dict:
    """Score a run's generator (``run``) or a folder of images (``fake``) against ``real``.

    ``real`` defaults to the run's own training data. Folder images are decoded at the real set's size
    and channel count so both sides reach the extractor alike. ``precision`` is how the generator's
    reduced-precision blocks run (see :func:`ganforge.generate.runs.load_run`).
    """
    from ganforge.metrics.evaluate import evaluate  # SciPy is imported here, not when the CLI starts

    if (run is None) == (fake is None):
        raise EvalError("pass either RUN (a run directory) or --fake DIR (a folder of images), not both or neither")
    D = None
    if run is not None:
        from ganforge.generate.runs import load_run

        cfg, G, D = load_run(run, device, precision)
        fake_src = GeneratorSource(G, name=f"{run} (step {G.step})", truncation=truncation)
        if not D.weights_loaded:  # a discriminator with no trained weights would score noise
            if "d" in (opts.metrics or ()):
                raise EvalError(f"metric 'd' needs the run's discriminator, and {run} holds none (a generator "
                                "imported without D): leave out the d metric")
            D = None
        only_generator = bool(opts.metrics) and set(opts.metrics) <= GENERATOR_METRICS
        if G.img_shape[0] not in (1, 3) and not only_generator:
            raise EvalError(f"{run} draws {G.img_shape[0]}-channel images, and real images are gray or RGB, so no "
                            "metric compares them: only --metrics ppl,ls apply")
        if real is None and only_generator:
            real_src = NoRealImages(G)
        elif real is None and cfg.data.source.startswith("imported:"):
            raise EvalError(f"{run} was imported ({cfg.data.source.split(':', 1)[1]}), so it has no training data "
                            "to compare with: pass --real DIR (or mnist, digits, photos); ppl and ls need none")
        elif real is None:
            data = load_dataset(cfg.data)
            real_src = DatasetSource(data, cfg.data.source in DIGIT_SETS)
        else:
            real_src = real_source(real, resolution or G.img_shape[1], channels or G.img_shape[0])
    else:
        asked = [m for m in opts.metrics or () if m in GENERATOR_METRICS]
        if asked:  # before --real is looked at: no real set would make this work
            raise EvalError(f"metric '{asked[0]}' measures a generator, not images: pass RUN instead of --fake")
        if real is None:
            raise EvalError("--fake needs --real: a built-in name (mnist, digits, photos) or a folder of real images")
        real_src = real_source(real, resolution, channels)
        fake_src = FolderSource(fake, real_src.resolution, real_src.channels)
    extractor = None
    if opts.metrics is None or FEATURE_METRICS & set(opts.metrics):  # e.g. 'is,digits' need no extractor
        spec = features or default_features(real_src.builtin, real_src.channels, real_src.resolution)
        extractor = get_extractor(spec, inception_weights, device)
    return evaluate(fake_src, real_src, extractor, opts, D=D)
