"""Measuring generated images. See :mod:`ganforge.metrics.digits` for the built-in digit network."""
