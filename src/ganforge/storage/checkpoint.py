"""Atomic, pickle-free checkpoints.

A checkpoint is one safetensors file: every tensor (networks, optimizer moments, RNG states) under a
prefix, and everything else (step, optimizer hyperparameters, the run config) as JSON in the header's
metadata. It is written with :mod:`ganforge.storage.atomic`, so a crash while saving leaves the previous
checkpoint intact.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from ganforge.errors import CheckpointError
from ganforge.storage.atomic import atomic_write_bytes

FORMAT = "ganforge-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.safetensors"


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "meta": json.dumps(meta)}
    atomic_write_bytes(path, save(tensors, metadata=header))


def resolve(path: str | Path) -> Path:
    """A run directory or a checkpoint file -> the checkpoint file."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: pass a run directory made by `ganforge train`")
    return path


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint; raise CheckpointError naming the problem for foreign or damaged files."""
    path = resolve(path)
    _refuse_pickle(path)
    try:
        tensors = load_file(str(path))
        with open(path, "rb") as f:
            header = _read_header(f)
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is not a readable ganforge checkpoint (truncated or foreign file: {e})") from e
    md = header.get("__metadata__") or {}
    if md.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not a ganforge checkpoint (no '{FORMAT}' tag)")
    if int(md.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer ganforge; upgrade ganforge to read it")
    return tensors, json.loads(md["meta"])


def _refuse_pickle(path: Path) -> None:
    """An official network pickle passed where a run goes: say how to turn it into one."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError:
        return  # load_file reports it
    if path.suffix == ".pkl" or (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5):  # pickle protocol 2-5
        raise CheckpointError(f"{path} is a pickle, not a ganforge checkpoint: import an official StyleGAN2 "
                              f"network with `ganforge import-stylegan {path} --out RUN`, then pass RUN")


def _read_header(f) -> dict[str, Any]:
    n = int.from_bytes(f.read(8), "little")
    if not 0 < n < 100_000_000:
        raise ValueError("bad header length")
    return json.loads(f.read(n))


def module_tensors(module: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def load_module(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str, source: str = "checkpoint"):
    """Load ``prefix.*`` tensors into ``module``; a clear error when names or shapes differ."""
    want = module.state_dict()
    got = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    if missing or extra:
        what = f"missing {prefix}.{missing[0]}" if missing else f"unexpected {prefix}.{extra[0]}"
        raise CheckpointError(f"{source} does not match the model in config.json ({what}); "
                              "was it made with a different family or size?")
    for k, v in want.items():
        if got[k].shape != v.shape:
            raise CheckpointError(f"{source} does not match the model: {prefix}.{k} has shape "
                                  f"{list(got[k].shape)}, the model expects {list(v.shape)}")
    module.load_state_dict(got)


def optimizer_tensors(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state into tensors (for safetensors) and JSON-able rest."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.{idx}.{name}"] = value
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any], prefix: str):
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            idx, name = key[len(prefix) + 1:].split(".", 1)
            state.setdefault(int(idx), {})[name] = value
    for key, value in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    groups = meta["param_groups"]
    current = opt.param_groups
    for i, g in enumerate(groups):
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        for key in ("foreach", "fused"):  # how to compute, not state: the optimizer as built now decides
            if i < len(current) and key in current[i]:
                g[key] = current[i][key]
    try:
        opt.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"optimizer state in the checkpoint does not fit ({e})") from e
