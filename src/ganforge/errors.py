"""The one error type of ganforge.

Every expected failure (bad input, a missing file, an option that does not fit) raises a subclass of
:class:`GanforgeError` with a one-line message that names the problem and what to do. The CLI catches
``GanforgeError`` once and prints ``ganforge CMD: error: MESSAGE``; anything else is a bug and keeps its
traceback. The subclasses let a caller tell the stages apart; they also derive from ``ValueError`` (or
``RuntimeError``) as before, so existing ``except ValueError`` code keeps working.

Warnings (something was skipped or ignored, and the work goes on) are raised with :func:`warn` as a
:class:`GanforgeWarning`: library users filter them like any warning, and the CLI prints each as one line,
``ganforge: warning: MESSAGE``.
"""
from __future__ import annotations


class GanforgeError(Exception):
    """A failure with a message meant for the user."""


class ConfigError(GanforgeError, ValueError):
    """A configuration or option that cannot work."""


class DataError(GanforgeError, ValueError):
    """A data set that is missing, empty or unreadable."""


class CheckpointError(GanforgeError, ValueError):
    """A checkpoint that is missing, foreign, damaged or does not fit the model."""


class OutputPathError(GanforgeError, ValueError):
    """An output path that cannot be written as asked (format, or a file where a folder is needed)."""


class GenerateError(GanforgeError, ValueError):
    """Sampling options that do not fit the model (class out of range, bad truncation, ...)."""


class StyleGANError(GenerateError):
    """A StyleGAN-only tool used on another network, or a StyleGAN option out of range."""


class TrainError(GanforgeError, RuntimeError):
    """Training that cannot start or go on here (device unavailable, ...)."""


class EvalError(GanforgeError, ValueError):
    """An evaluation that cannot run as asked; the message says what to do instead."""


class DependencyError(GanforgeError, ImportError):
    """An optional package that the asked-for feature needs is not installed."""


class GanforgeWarning(UserWarning):
    """Something was skipped or ignored and the work went on; the message says what and what to do."""


def warn(message: str, stacklevel: int = 1) -> None:
    """Issue ``message`` as a :class:`GanforgeWarning`; ``stacklevel`` counts from the caller, as in warnings.warn."""
    import warnings

    warnings.warn(message, GanforgeWarning, stacklevel=stacklevel + 1)


def require(module: str, feature: str, install: str) -> None:
    """Raise DependencyError unless ``module`` imports: checked before any work starts."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise DependencyError(f"{feature} needs the '{module}' package: {install}")


__all__ = ["GanforgeError", "ConfigError", "DataError", "CheckpointError", "OutputPathError", "GenerateError",
           "StyleGANError", "TrainError", "EvalError", "DependencyError", "GanforgeWarning", "require", "warn"]
