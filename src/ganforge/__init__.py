"""ganforge: make, explore and catch GAN-generated images.

    import ganforge
    G = ganforge.load("runs/cdcgan-mnist")        # a run directory or its checkpoint file
    images = ganforge.sample(G, 16, seed=1)       # [16, C, H, W] in [-1, 1]
"""
from __future__ import annotations

__version__ = "0.1.0"

from .api import load, load_run  # noqa: E402
from .generate import sample  # noqa: E402

__all__ = ["load", "load_run", "sample", "__version__"]
