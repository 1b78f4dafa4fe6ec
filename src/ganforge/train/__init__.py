"""Training: the steppable :class:`Trainer` (networks, losses, regularisers, augmentation) and the on-disk
:class:`~ganforge.train.run.Run` loop around it that the CLI drives."""

__all__ = ["Trainer"]


def __getattr__(name: str):
    # Lazy: the CLI reads train.presets while it builds its parser, before torch (which Trainer needs) loads.
    if name == "Trainer":
        from ganforge.train.trainer import Trainer

        return Trainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
