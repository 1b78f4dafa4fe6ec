"""Load weights stored under the official stylegan2-ada-pytorch state-dict names."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ganforge.errors import CheckpointError


class OfficialStateError(CheckpointError):
    """Official weights that do not fit the network (a missing, unexpected or mis-shaped key)."""


def _as_dict(source) -> dict[str, torch.Tensor]:
    if isinstance(source, (str, Path)):
        with np.load(source, allow_pickle=False) as npz:  # never unpickle from a weights file
            return {k: torch.from_numpy(np.array(npz[k])) for k in npz.files}
    if isinstance(source, np.lib.npyio.NpzFile):
        return {k: torch.from_numpy(np.array(source[k])) for k in source.files}
    if isinstance(source, Mapping):
        return {k: v if isinstance(v, torch.Tensor) else torch.from_numpy(np.asarray(v)) for k, v in source.items()}
    raise TypeError(f"expected an .npz path, an NpzFile or a dict of arrays, got {type(source).__name__}")


@torch.no_grad()
def load_official_state(net: nn.Module, source, strict: bool = True) -> nn.Module:
    """Copy arrays keyed by official names (``mapping.fc0.weight``, ``b4.fc.weight``, ...) into ``net``.

    ``source`` is an ``.npz`` path, an open ``NpzFile`` or a dict of numpy arrays / tensors. With
    ``strict`` every key of ``net`` must be present and no other key may be; shapes must always agree.
    Values are cast to each parameter's dtype and device. Returns ``net``.
    """
    got = _as_dict(source)
    want = net.state_dict()
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    if strict and missing:
        raise OfficialStateError(f"official weights lack '{missing[0]}' ({len(missing)} key(s) missing); "
                                 f"was the network built with the same constructor arguments?")
    if strict and extra:
        raise OfficialStateError(f"official weights have '{extra[0]}', which this network does not "
                                 f"({len(extra)} unexpected key(s)); was it built with the same arguments?")
    for k, v in got.items():
        if k in want and tuple(v.shape) != tuple(want[k].shape):
            raise OfficialStateError(f"official weight '{k}' has shape {list(v.shape)}, "
                                     f"the network expects {list(want[k].shape)}")
    for k, target in want.items():
        if k in got:
            target.copy_(got[k].to(device=target.device, dtype=target.dtype))
    return net
