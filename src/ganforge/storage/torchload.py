"""Reading plain torch files (``.pt`` / ``.pth`` state dicts, a tensor's raw storage bytes) without running code.

``torch.load(weights_only=True)`` refuses pickled objects other than tensors, but its message advises re-running
with ``weights_only=False``, which would run whatever the file asks for. :func:`load_tensors` is the one place
ganforge calls it: a refusal becomes one line of ganforge's own that never suggests that.
"""
from __future__ import annotations

import pickle
import re
from typing import IO

import torch

from ganforge.errors import CheckpointError


class RefusedPickleError(CheckpointError, pickle.UnpicklingError):
    """A torch file holds a pickled object other than tensors, which ganforge never loads (it could run code)."""


def load_tensors(source: str | IO[bytes], holds: str, error: type[Exception] = RefusedPickleError):
    """``torch.load(source, weights_only=True)`` on the CPU.

    When torch refuses an object, raises ``error`` with ``refused: HOLDS (it asks for NAME), which ganforge never
    runs``; ``holds`` says where the object was, e.g. "the file holds pickled objects other than tensors".
    Other failures (a damaged or foreign file) are raised as torch raises them, for the caller to word.
    """
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only load failed" not in str(e).lower():
            raise
        found = re.search(r"GLOBAL (\S+)", str(e))
        asks = f" (it asks for {found.group(1)})" if found else ""
        raise error(f"refused: {holds}{asks}, which ganforge never runs") from None
