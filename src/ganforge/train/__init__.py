"""Training: a steppable :class:`Trainer` that the CLI and the web playground both drive."""
from .trainer import Trainer, TrainError, resolve_device

__all__ = ["Trainer", "TrainError", "resolve_device"]
