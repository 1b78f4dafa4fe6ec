"""`ganforge bench`: training and generation speed of a model on this device.

Training is timed twice on the same architecture and data: through ganforge's Trainer, and through a
plain PyTorch loop written the textbook way (the DCGAN tutorial's structure: BCE loss, one fake batch
reused for the G step, D's weight gradients computed in the G step, fp32, default threads). ganforge's
trainer is reported at its default precision and in fp32, so the two sources of its speed stay apart:
bf16 autocast (on CPUs with AMX units) and not computing D's weight gradients during the G step. The two
alternate ``repeats`` times and the best time of each is kept, so background load hurts both alike.

Generation is timed at the precision ``--precision auto`` samples in. A network with reduced-precision
blocks (StyleGAN2's ``num_fp16_res``, e.g. ``--model-options '{"num_fp16_res": 2, "conv_clamp": 256}'``) is
timed in float32 and in the reduced precision (bfloat16 on a CPU, float16 on CUDA) as well, with the one
that 'auto' picks on this device named: reduced only where it is fast (``devices.reduced_precision_ok``).
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from ganforge import models
from ganforge.config import DataConfig, RunConfig
from ganforge.data import load_dataset
from ganforge.devices import reduced_precision_ok, resolve_device, resolve_precision
from ganforge.generate.sampling import latents
from ganforge.models.stylegan2 import set_precision
from ganforge.models.stylegan2.networks import low_precision
from ganforge.train.trainer import Trainer, complete_config, validate


def plain_loop_speed(cfg: RunConfig, images: torch.Tensor, steps: int, device) -> float:
    """img/s of the textbook loop on freshly built copies of the same networks."""
    torch.manual_seed(0)
    G, D = (n.to(device) for n in models.build(cfg.model))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    b = cfg.train.batch_size
    ones, zeros = torch.ones(b, device=device), torch.zeros(b, device=device)

    def one_step(i):
        real = images[(torch.arange(b) + i * b) % len(images)].to(device).float() / 127.5 - 1
        z = torch.randn(b, cfg.model.z_dim, device=device)
        c = torch.randint(0, max(1, cfg.model.num_classes), (b,), device=device) if cfg.model.num_classes else None
        fake = G(z, c)
        opt_d.zero_grad()
        loss_d = F.binary_cross_entropy_with_logits(D(real, c), ones) + \
            F.binary_cross_entropy_with_logits(D(fake.detach(), c), zeros)
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad()
        F.binary_cross_entropy_with_logits(D(fake, c), ones).backward()
        opt_g.step()

    for i in range(3):  # warm-up
        one_step(i)
    _sync(device)
    start = time.perf_counter()
    for i in range(steps):
        one_step(i)
    _sync(device)
    return steps * b / (time.perf_counter() - start)


def _trainer_speed(cfg: RunConfig, data, steps: int, device, precision: str) -> float:
    cfg.train.precision = precision
    tr = Trainer(cfg, data, device=device)
    for _ in range(3):
        tr.step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        tr.step()
    _sync(device)
    return steps * cfg.train.batch_size / (time.perf_counter() - start)


def _generation_speed(G, device, n: int = 5000, batch: int = 1000) -> float:
    G = G.to(device).eval()
    z = latents(G, n, seed=0).to(device)
    c = (torch.arange(n, device=device) % G.num_classes) if G.num_classes else None
    with torch.inference_mode():
        G(z[:batch], None if c is None else c[:batch])
        _sync(device)
        start = time.perf_counter()
        for i in range(0, n, batch):
            G(z[i:i + batch], None if c is None else c[i:i + batch])
        _sync(device)
    return n / (time.perf_counter() - start)


def _has_reduced_blocks(net) -> bool:
    return any(getattr(m, "use_fp16", False) for m in net.modules())


def _generation_speeds(G, device, n: int) -> dict:
    """Sampling img/s at 'auto' and, for networks with reduced-precision blocks, in both precisions."""
    batch = min(n, 1000)
    if not _has_reduced_blocks(G):
        return {"generate_img_per_s": round(_generation_speed(G, device, n, batch), 1), "generate_precisions": None}
    reduced = {torch.bfloat16: "bf16", torch.float16: "fp16"}[low_precision(device)]
    speeds = {}
    for label, precision in (("fp32", "fp32"), (reduced, "bf16")):  # 'bf16' means float16 on CUDA
        speeds[label] = round(_generation_speed(set_precision(G, precision), device, n, batch), 1)
    auto = reduced if reduced_precision_ok("auto", device) else "fp32"
    set_precision(G, "auto")
    return {"generate_img_per_s": speeds[auto], "generate_precisions": speeds, "generate_auto": auto}


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_bench(family: str = "dcgan", data: str = "mnist", steps: int = 40, batch_size: int = 64, repeats: int = 3,
              device: str = "auto", options: dict | None = None, gen_images: int = 5000,
              overrides: dict | None = None) -> dict:
    """Measure training and generation speed; ``options`` are model options (``--model-options``),
    ``overrides`` other ``ModelConfig`` fields (e.g. ``{"g_width": 16}``) and ``gen_images`` the images
    generated per timing."""
    dev = resolve_device(device)
    cfg = RunConfig(data=DataConfig(source=data))
    cfg.model.family = family
    cfg.model.options = dict(options or {})
    for key, value in (overrides or {}).items():
        setattr(cfg.model, key, value)
    cfg.train.batch_size = batch_size
    cfg.train.diffaug = ""  # same work as the plain loop: no augmentation
    cfg.train.ema_decay = 0.0
    cfg.train.loss = "ns"
    validate(cfg.train)  # a batch no GAN step can hold is refused before anything is allocated
    dataset = load_dataset(cfg.data)
    full = complete_config(cfg, dataset)
    precision = resolve_precision("auto", dev)
    ours, ours_fp32, plain = [], [], []
    for _ in range(repeats):
        plain.append(plain_loop_speed(full, dataset.images, steps, dev))
        ours.append(_trainer_speed(cfg, dataset, steps, dev, "auto"))
        if precision != "fp32":
            ours_fp32.append(_trainer_speed(cfg, dataset, steps, dev, "fp32"))
    G, _ = models.build(full.model)
    gen = _generation_speeds(G, dev, gen_images)
    return {
        "device": str(dev), "torch": torch.__version__, "threads": torch.get_num_threads(), "family": family,
        "data": data, "resolution": full.model.resolution, "batch_size": batch_size, "steps": steps,
        "precision": precision, "train_img_per_s": round(max(ours), 1),
        "train_fp32_img_per_s": round(max(ours_fp32 or ours), 1), "plain_loop_img_per_s": round(max(plain), 1),
        "speedup_vs_plain": round(max(ours) / max(plain), 3),
        "fp32_speedup_vs_plain": round(max(ours_fp32 or ours) / max(plain), 3), **gen,
    }


def format_report(r: dict) -> str:
    lines = [f"ganforge bench: {r['family']} on {r['data']} ({r['resolution']}px), batch {r['batch_size']}, "
             f"{r['device']}, {r['threads']} threads, torch {r['torch']}",
             f"  training   ganforge ({r['precision']}) {r['train_img_per_s']:>8.1f} img/s   ratio "
             f"{r['speedup_vs_plain']:.2f}x"]
    if r["precision"] != "fp32":  # else the line above is the fp32 one
        lines.append(f"             ganforge (fp32) {r['train_fp32_img_per_s']:>8.1f} img/s   ratio "
                     f"{r['fp32_speedup_vs_plain']:.2f}x")
    lines.append(f"             plain loop (fp32) {r['plain_loop_img_per_s']:>6.1f} img/s")
    speeds = r.get("generate_precisions")
    if not speeds:
        lines.append(f"  generation {r['generate_img_per_s']:>9.1f} img/s")
        return "\n".join(lines)
    for i, (label, speed) in enumerate(speeds.items()):
        mark = f"   <- auto picks this here: {_why(r['device'], label)}" if label == r["generate_auto"] else ""
        lines.append(f"  {'generation' if i == 0 else '':10s} ({label}) {speed:>9.1f} img/s{mark}")
    return "\n".join(lines)


def _why(device: str, auto: str) -> str:
    if not device.startswith("cpu"):
        return device.split(":")[0].upper()
    return "this CPU has fast bf16 (AMX)" if auto != "fp32" else "this CPU has no fast bf16 (no AMX)"
