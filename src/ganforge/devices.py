"""Where and how tensors are computed: device, precision, memory format and CPU tuning.

Each 'auto' choice here follows a measurement recorded in docs/benchmarks.md, not a guess; the figures
live there, not in this file.
"""
from __future__ import annotations

import ctypes
import os
import platform
import sys

import torch

from ganforge.errors import ConfigError, TrainError

PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA, else MPS, else CPU; an explicit device that is not there is a one-line error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda asked for, but this PyTorch sees no CUDA GPU; use --device cpu or auto")
    if name == "mps" and not _mps_available():
        raise TrainError("--device mps asked for, but MPS is not available here; use --device cpu or auto")
    if name not in ("cpu", "cuda", "mps"):
        raise TrainError(f"unknown device '{name}'; use auto, cpu, cuda or mps")
    return torch.device(name)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has AMX tiles, the units that make bfloat16 matrix work faster than float32. Without
    them (AVX2, or AVX-512 alone) oneDNN emulates bf16 and is far slower than float32."""
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' is bf16 only where it was measured faster without hurting quality: CPUs with AMX tiles. Elsewhere
    fp32 unless bf16 is asked for."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be auto, fp32 or bf16, got '{precision}'")
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"


def reduced_precision_ok(precision: str, device: torch.device) -> bool:
    """Whether a network's own reduced-precision blocks (StyleGAN2's num_fp16_res) should run as such for
    inference: always on CUDA (float16, as the official code), on a CPU only where bf16 is fast, and never
    under ``precision='fp32'``."""
    resolved = resolve_precision(precision, device) if device.type == "cpu" else precision
    if resolved == "fp32":
        return False
    return device.type == "cuda" or resolved == "bf16"


def resolve_channels_last(value: bool | str, family: str, device: torch.device) -> bool:
    """'auto' is channels-last where it was measured faster: the StyleGAN2 families on x86 CPUs, whose oneDNN
    convolutions then skip a layout conversion around every call. No gain was measured for the small DCGANs."""
    if isinstance(value, bool):
        return value
    if value != "auto":
        raise ConfigError(f"channels_last must be true, false or auto, got {value!r}")
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
    return device.type == "cpu" and x86 and family in ("stylegan2", "cstylegan2")


def tune_cudnn(device: torch.device) -> bool:
    """On CUDA let cuDNN time its convolution algorithms once per input shape and keep the fastest, as the
    official StyleGAN2-ADA loop does: a GAN step repeats the same shapes, so the search pays for itself
    within a few steps. Returns whether it was turned on."""
    if device.type != "cuda":
        return False
    torch.backends.cudnn.benchmark = True
    return True


_ALLOCATOR_TUNED = False


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks of up to 32 MB instead of handing them back to the OS.

    A training step frees and reallocates the same few-megabyte activations hundreds of times; handed back,
    each returns as fresh pages that fault in on first touch. Process-wide, Linux/glibc only; elsewhere it
    does nothing.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED or not sys.platform.startswith("linux"):
        return _ALLOCATOR_TUNED
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameter numbers
        _ALLOCATOR_TUNED = bool(libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        pass
    return _ALLOCATOR_TUNED


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def set_cpu_threads(local_processes: int = 1) -> int:
    """Share this machine's cores between its ``local_processes`` (torch defaults to all cores in each);
    ``$LOCAL_WORLD_SIZE`` (set by torchrun) overrides it. Returns the threads this process uses."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", local_processes))
    n = max(1, available_cores() // max(1, local))
    torch.set_num_threads(n)
    return n
