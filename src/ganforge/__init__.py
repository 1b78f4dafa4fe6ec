"""ganforge: make, explore and catch GAN-generated images.

    import ganforge
    G = ganforge.load("runs/cdcgan-mnist")        # a run directory or its checkpoint file
    images = ganforge.sample(G, 16, seed=1)       # [16, C, H, W] in [-1, 1]

The package's folders are its pipeline, each importing only those before it: ``data`` and ``models``, then
``generate``, ``metrics``, ``edit`` and ``train``, with ``cli`` as a leaf on top; ``errors``, ``config``,
``devices`` and ``storage`` serve them all (tests/test_layout.py holds the order).
"""
from __future__ import annotations

__version__ = "0.1.0"

# Resolved on first use, so that `import ganforge` (and so the CLI's start) does not wait for torch.
_LAZY = {"load": "ganforge.generate.runs", "load_run": "ganforge.generate.runs", "sample": "ganforge.generate.sampling"}

__all__ = ["load", "load_run", "sample", "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ganforge' has no attribute {name!r}")
