"""Seconds per thousand training images (s/kimg) of a StyleGAN2 preset on this device.

s/kimg is the figure the StyleGAN2-ADA code logs and its README tabulates: wall-clock time of whole
training iterations (every phase, lazy regularisation, adaptive augmentation and the G EMA update
included) divided by thousands of real images shown to D. Published for the `paper256` configuration on
one GPU: 21.6 on a V100 and 12.5 on an A100 (issue #4). Here ganforge's Trainer runs the preset as
`ganforge train --preset NAME` would, on random images (the step's cost does not depend on the pixels) or
on your own folder/zip with --data; steps are timed in whole 16-step cycles (the R1 interval), so every
phase counts in its true proportion, after untimed warm-up steps (cuDNN's autotuner runs then).

    python benchmarks/stylegan2_kimg.py --preset paper256                    # on the GPU, if there is one
    python benchmarks/stylegan2_kimg.py --preset paper256 --data ~/ffhq256.zip --steps 128 --json

Smaller settings (for a CPU smoke run, or to see how the time scales) go through --resolution, --batch and
--set section.field=JSON, as with `ganforge train --set`.
"""
import argparse
import json
import os
import platform
import sys
import time

import torch

CYCLE = 16
PUBLISHED = {"paper256": {"V100": 21.6, "A100": 12.5}}  # s/kimg, one GPU, StyleGAN2-ADA (issue #4)


def fail(msg: str):
    sys.exit(f"stylegan2_kimg: {msg}")


def build(a):
    """(config, data set) for the run: the preset with the command's changes applied."""
    from ganforge.data import ImageDataset, load_dataset
    from ganforge.train.presets import preset_config

    cfg = preset_config(a.preset).with_overrides(a.set)
    if a.resolution is not None:
        cfg.data.resolution = a.resolution
    if a.batch is not None:
        cfg.train.batch_size = a.batch
    cfg.train.precision = a.precision
    if a.data:
        cfg.data.source = a.data
        return cfg, load_dataset(cfg.data)
    res = cfg.data.resolution
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (max(4 * cfg.train.batch_size, 64), cfg.data.channels, res, res),
                           dtype=torch.uint8, generator=gen)
    cfg.data.source = "random"
    return cfg, ImageDataset(images, None, [], "random")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def measure(a) -> dict:
    from ganforge.train.trainer import Trainer

    if a.threads is not None:
        torch.set_num_threads(a.threads)
    cfg, data = build(a)
    trainer = Trainer(cfg, data, device=a.device)
    device = trainer.device
    for _ in range(a.warmup):
        trainer.step()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    cycles = []
    for _ in range(a.steps // CYCLE):
        start = time.perf_counter()
        for _ in range(CYCLE):
            trainer.step()
        sync(device)
        cycles.append(time.perf_counter() - start)
    batch = cfg.train.batch_size
    kimg = a.steps * batch / 1000
    out = {
        "preset": a.preset, "device": device_name(device), "device_type": device.type,
        "torch": torch.__version__, "resolution": trainer.cfg.model.resolution, "batch": batch,
        "precision": trainer.precision, "fp16_blocks": _reduced_precision_blocks(trainer.G),
        "channels_last": trainer.channels_last, "ada_p": round(trainer.ada.p, 4) if trainer.ada else None,
        "warmup_steps": a.warmup, "timed_steps": a.steps, "timed_kimg": kimg,
        "s_per_kimg": round(sum(cycles) / kimg, 3), "images_per_second": round(1000 * kimg / sum(cycles), 1),
        "cycle_seconds": [round(c, 3) for c in cycles],
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        if device.type == "cuda" else None,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    out["published_s_per_kimg"] = PUBLISHED.get(a.preset) if _is_preset_as_published(a) else None
    return out


def _reduced_precision_blocks(G) -> list[int]:
    blocks = getattr(getattr(G, "synthesis", None), "block_resolutions", [])
    return [r for r in blocks if getattr(G.synthesis, f"b{r}").use_fp16]


def _is_preset_as_published(a) -> bool:
    """Only the unchanged preset is comparable with the paper's figure."""
    return not a.set and a.resolution is None and a.batch is None and a.precision == "fp32"


def report(out: dict) -> str:
    lines = [f"{out['preset']} on {out['device']} (torch {out['torch']}): {out['resolution']}x{out['resolution']}, "
             f"batch {out['batch']}, precision {out['precision']}, reduced-precision blocks "
             f"{out['fp16_blocks'] or 'none'}, {'channels-last' if out['channels_last'] else 'NCHW'}",
             f"  {out['timed_steps']} timed steps ({out['timed_kimg']:.2f} kimg) after {out['warmup_steps']} "
             f"warm-up: {out['s_per_kimg']:.2f} s/kimg, {out['images_per_second']:.1f} img/s",
             f"  cycles of {CYCLE} steps: {', '.join(f'{c:.2f}' for c in out['cycle_seconds'])} s"]
    if out["peak_gpu_memory_gib"] is not None:
        lines.append(f"  peak GPU memory: {out['peak_gpu_memory_gib']:.2f} GiB")
    if out["published_s_per_kimg"]:
        lines.append("  published (StyleGAN2-ADA, one GPU): " +
                     ", ".join(f"{k} {v} s/kimg" for k, v in out["published_s_per_kimg"].items()))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="paper256", help="a StyleGAN2 preset of `ganforge train --preset`")
    p.add_argument("--device", default="auto", help="cuda, cpu, mps or auto (cuda when there is one)")
    p.add_argument("--data", help="folder or .zip of images at the preset's resolution (default: random images)")
    p.add_argument("--steps", type=int, default=64, help=f"timed steps, a multiple of {CYCLE}")
    p.add_argument("--warmup", type=int, default=16, help="untimed steps first")
    p.add_argument("--resolution", type=int, help="change the preset's resolution")
    p.add_argument("--batch", type=int, help="change the preset's batch size")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                   help="autocast on top of the preset's mixed-precision blocks (the paper's figure: fp32)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE", help="config change")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    a = p.parse_args(argv)
    if a.steps < CYCLE or a.steps % CYCLE or a.warmup < 0:
        fail(f"--steps must be a positive multiple of {CYCLE} and --warmup at least 0")
    for name in ("resolution", "batch", "threads"):
        if getattr(a, name) is not None and getattr(a, name) < 1:
            fail(f"--{name} must be a positive whole number, got {getattr(a, name)}")
    from ganforge.errors import ConfigError, DataError, TrainError

    try:
        out = measure(a)
    except (ConfigError, DataError, TrainError) as e:
        fail(str(e))
    print(json.dumps(out) if a.json else report(out))
    return out


if __name__ == "__main__":
    main()
