"""Multi-process data parallelism under torchrun (gloo on CPU, NCCL on CUDA).

GAN steps alternate between two networks and use double backward for penalties, which the
DistributedDataParallel wrapper handles poorly; as in the StyleGAN2-ADA training loop, we keep plain
modules and average gradients ourselves with one all-reduce per network and step, and broadcast
buffers (batch-norm statistics) from rank 0 so every rank holds identical networks.
"""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from typing import NoReturn

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_from_env(device_kind: str) -> DistInfo:
    """Join the process group torchrun describes in the environment; single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    return info


def broadcast_module(module: torch.nn.Module) -> None:
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def broadcast_buffers(module: torch.nn.Module) -> None:
    for b in module.buffers():
        dist.broadcast(b.data, src=0)


def average_gradients(params: list[torch.nn.Parameter], world_size: int) -> None:
    """All-reduce the gradients of ``params`` as one flat buffer and divide by the world size."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset: offset + g.numel()].view_as(g))
        offset += g.numel()


def sum_across(value: torch.Tensor) -> torch.Tensor:
    """The sum of ``value`` over all processes (a new tensor; the input is left as it is)."""
    out = value.detach().clone()
    dist.all_reduce(out)
    return out


def mean_across(value: torch.Tensor, world_size: int) -> torch.Tensor:
    return sum_across(value) / world_size


def agree_on(value: str | None, info: DistInfo) -> str:
    """Rank 0's ``value`` on every rank (e.g. the run directory it chose)."""
    if not info.active:
        return value  # type: ignore[return-value]
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown(info: DistInfo, wait: bool = True) -> None:
    """Wait for every rank (rank 0 may still be writing), then close the process group. Exiting with it
    open lets the interpreter tear down gloo's threads under it, which aborts that rank (SIGABRT)."""
    if info.active and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def exit_worker(status: int) -> NoReturn:
    """End a torchrun worker after :func:`shutdown` without the interpreter's teardown.

    Destroying the process group does not stop gloo's worker threads, and one of them may still be
    releasing the last collective (the barrier, which keeps the step's broadcast tensors alive) when
    Python finalises; freeing those tensors needs the GIL, which a thread cannot take during
    finalisation, so the rank aborts with "terminate called without an active exception" (SIGABRT,
    about 1 run in 100 here). Everything is written and closed by now, so skip the teardown."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken pipe: nothing more to say on it
            stream.flush()
    os._exit(status)
