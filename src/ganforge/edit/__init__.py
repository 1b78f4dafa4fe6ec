"""Editing what a generator draws: projecting a real photo into its latent space (:mod:`.project`), finding
editing directions (:mod:`.directions`, scored by :mod:`.attributes`) and walking along them
(:mod:`.editing`). It sits above :mod:`ganforge.metrics` because it measures images (LPIPS features, the
digit network).

    from ganforge.edit import find_directions, load_directions, edit_latent, render_strip
    dirs = find_directions(G, "svm", attribute="thickness", conditions=["slant"])
    dirs.save("thickness.npz")
    render_strip(G, load_directions("thickness.npz", G), "thickness", seed=3, out="strip.png")
"""
from __future__ import annotations

# Resolved on first use, so that importing ganforge.edit.project does not load the editing modules.
_LAZY = {"find_directions": "ganforge.edit.directions", "load_directions": "ganforge.edit.directions",
         "Directions": "ganforge.edit.directions", "read_labels": "ganforge.edit.directions",
         "edit_latent": "ganforge.edit.editing", "edit_images": "ganforge.edit.editing",
         "render_strip": "ganforge.edit.editing", "parse_strengths": "ganforge.edit.editing",
         "load_projected_w": "ganforge.edit.editing", "measure": "ganforge.edit.attributes"}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ganforge.edit' has no attribute {name!r}")
