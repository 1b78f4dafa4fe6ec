"""Conditional image-to-image GANs: paired data and tasks (data), the paired training loop (train), tiled
inference (infer) and the task metrics (metrics). The families are ``pix2pix`` and ``srresnet``."""
