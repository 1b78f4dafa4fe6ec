"""Editing what a generator draws: projecting a real photo into its latent space (:mod:`.project`), the
first step of editing a real image. It sits above :mod:`ganforge.metrics` because it measures distances
with LPIPS features."""
