"""FID during training (``--eval-every``): the same computation as ``ganforge eval RUN --metrics fid``."""
from __future__ import annotations

import torch

from ganforge.data import ImageDataset
from ganforge.data.builtin import DIGIT_SETS
from ganforge.metrics.evaluate import EvalOptions, evaluate
from ganforge.metrics.features import default_features, get_extractor
from ganforge.metrics.sources import DatasetSource, GeneratorSource


class FidTracker:
    """Scores a generator against the training data; built once so the real features are reused."""

    def __init__(self, data: ImageDataset, n: int = 5000, features: str | None = None,
                 inception_weights: str | None = None, device: str = "cpu"):
        builtin = data.name in DIGIT_SETS
        spec = features or default_features(builtin, data.channels, data.resolution)
        self.extractor = get_extractor(spec, inception_weights, device)  # fails now, not mid-training
        self.real = DatasetSource(data, builtin)
        self.opts = EvalOptions(metrics=("fid",), n=n)

    def __call__(self, G: torch.nn.Module) -> dict:
        """{'fid': .., 'fid_floor': .., 'fid_floor_n': ..} of ``G`` (put in eval mode while sampling)."""
        was_training = G.training
        G.eval()
        try:
            return evaluate(GeneratorSource(G), self.real, self.extractor, self.opts)["metrics"]
        finally:
            G.train(was_training)
