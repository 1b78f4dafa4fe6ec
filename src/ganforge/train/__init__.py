"""Training: the steppable :class:`Trainer` (networks, losses, regularisers, augmentation) and the on-disk
:class:`~ganforge.train.run.Run` loop around it that the CLI drives."""
from ganforge.train.trainer import Trainer

__all__ = ["Trainer"]
