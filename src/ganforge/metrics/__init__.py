"""Measuring generated images: FID, KID, precision/recall, density/coverage and classifier scores.

:func:`ganforge.metrics.evaluate.evaluate` scores image sources (:mod:`.sources`) with a feature
extractor (:mod:`.features`: the built-in digit network, InceptionV3 from :mod:`.inception`, or your own
callable); ``ganforge eval`` (cli/eval.py) drives it through :mod:`.pipeline`. The math lives in :mod:`.fid`,
:mod:`.kid`, :mod:`.prdc` and :mod:`.scores`; :mod:`.digits` is the built-in digit network. Nothing heavy
is imported here, so the CLI's parser stays quick to build.
"""
from ganforge.errors import EvalError

__all__ = ["EvalError"]
