"""Time one StyleGAN2 training step on CPU: ganforge's trainer against the official implementation.

A "step" is one iteration of the official training loop for one minibatch with lazy regularisation:
G main every step, G path-length every 4th, D main every step, D R1 every 16th, then the G EMA update.
Steps are timed in whole 16-step cycles (so every phase appears in its true proportion), alternating
official and ganforge cycle by cycle so that load from other processes hits both sides alike; warm-up
steps are not timed. Reported: s/step and img/s per side (time.perf_counter over the timed cycles), the
speed-up official / ganforge of those means and of each side's fastest cycle (outside load inflates
single cycles, under 2-thread OpenMP many-fold), the official per-phase times and, with --profile, the
top ops. Setting: the stylegan2-ada test fixture (tiny.json: 32x32x3, channel_base 2048, channel_max 64,
2 mapping layers, w_dim 64), batch 32, random images, non-saturating loss, R1 gamma 10, path-length
weight 2 (batch shrink 2), style mixing 0.9, EMA half-life 10 kimg, Adam lr 0.0025 with
betas (0, 0.99) adjusted for the lazy intervals, no augmentation.

  official  an own driver of NVlabs' code doing what training/training_loop.py does per iteration:
            per phase zero_grad, requires_grad on the phase's network, StyleGAN2Loss.accumulate_gradients
            (gain = the phase's interval), nan_to_num of the gradients, Adam step; fresh latents per phase.
            fp32. Off-GPU its bias_act / upfirdn2d take their reference (non-CUDA) paths by themselves.
  ganforge  ganforge.train.trainer.Trainer(cfg, data, device="cpu").step() with the same settings.

The official code is not part of ganforge: clone it and pass its folder (only dnnlib/, torch_utils/ and
training/ are used; `requests`, which dnnlib imports for downloads, is stubbed when missing):

    git clone https://github.com/NVlabs/stylegan2-ada-pytorch /tmp/sg2ada
    git -C /tmp/sg2ada checkout d72cc7d041b42ec8e806021a205ed9349f87c6a4
    python benchmarks/stylegan2_speed.py --official /tmp/sg2ada [--batch 32] [--steps 48] [--warmup 16]
        [--threads 2] [--precision fp32|bf16|auto] [--[no-]channels-last] [--profile] [--json]
"""
import argparse
import copy
import importlib.util
import inspect
import json
import os
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

CYCLE = 16  # the longest lazy-regularisation interval: every phase mix repeats after this many steps
# tiny.json's constructor arguments (../shared/fixtures/stylegan2-ada/), written out so the benchmark runs without it.
G_KWARGS = {"z_dim": 64, "c_dim": 0, "w_dim": 64, "img_resolution": 32, "img_channels": 3,
            "mapping_kwargs": {"num_layers": 2},
            "synthesis_kwargs": {"channel_base": 2048, "channel_max": 64, "num_fp16_res": 0, "conv_clamp": None,
                                 "architecture": "skip"}}
D_KWARGS = {"c_dim": 0, "img_resolution": 32, "img_channels": 3, "architecture": "resnet", "channel_base": 2048,
            "channel_max": 64, "num_fp16_res": 0, "conv_clamp": None, "epilogue_kwargs": {"mbstd_group_size": 4}}
FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "stylegan2-ada"


def fail(msg: str):
    sys.exit(f"stylegan2_speed: {msg}")


def import_official(root: str | None):
    """(networks, loss, misc) modules of the official code at ``root``, or exit with one line saying why."""
    if not root:
        fail("--official PATH is required: a checkout of NVlabs/stylegan2-ada-pytorch at d72cc7d (see --help)")
    path = Path(root).resolve()
    need = ["dnnlib/util.py", "torch_utils/misc.py", "torch_utils/ops/bias_act.py", "training/networks.py",
            "training/loss.py"]
    missing = [n for n in need if not (path / n).is_file()]
    if missing:
        fail(f"{path} is not a stylegan2-ada-pytorch checkout (no {', '.join(missing)})")
    if importlib.util.find_spec("requests") is None:  # dnnlib.util imports it, for URL downloads only
        sys.modules["requests"] = types.ModuleType("requests")
    sys.path.insert(0, str(path))
    try:
        from torch_utils import misc
        from torch_utils.ops import conv2d_gradfix
        from training import loss, networks
    except Exception as e:
        fail(f"cannot import the official code from {path}: {type(e).__name__}: {e}")
    want = {"G_mapping", "G_synthesis", "style_mixing_prob", "pl_batch_shrink", "pl_decay", "pl_weight", "r1_gamma"}
    if not want <= set(inspect.signature(getattr(loss, "StyleGAN2Loss", object).__init__).parameters):
        fail(f"{path}/training/loss.py has no StyleGAN2Loss(device, G_mapping, G_synthesis, D, ...): not that code")
    conv2d_gradfix.enabled = True  # as the official training loop sets it (it only acts on CUDA tensors)
    return networks, loss, misc


def check_official(networks) -> str:
    """Reproduce the fixture's reference outputs with the official code, when the fixtures are present."""
    if not (FIXTURES / "tiny_G_reference.npz").is_file():
        return "not checked (fixtures not found)"
    G, D = networks.Generator(**G_KWARGS).eval(), networks.Discriminator(**D_KWARGS).eval()
    for net, name in ((G, "tiny_G.npz"), (D, "tiny_D.npz")):
        arrays = np.load(FIXTURES / name)
        net.load_state_dict({k: torch.from_numpy(arrays[k]) for k in arrays.files})
    g_ref, d_ref = np.load(FIXTURES / "tiny_G_reference.npz"), np.load(FIXTURES / "tiny_D_reference.npz")
    with torch.no_grad():
        img = G(torch.from_numpy(g_ref["z"]), None, noise_mode="const").numpy()
        logits = D(torch.from_numpy(d_ref["img"]), None).numpy()
    err = max(np.abs(img - g_ref["img_const_psi1"]).max(), np.abs(logits - d_ref["logits"]).max())
    if err > 1e-4:
        fail(f"the official code does not reproduce the fixture (max error {err:.2e}): not commit d72cc7d")
    return f"reproduces the fixture (max error {err:.1e})"


class Official:
    """What one iteration of the official training loop does, phase by phase."""

    def __init__(self, networks, loss_mod, misc, batch: int):
        self.misc, self.batch = misc, batch
        self.G = networks.Generator(**G_KWARGS).train().requires_grad_(False)
        self.D = networks.Discriminator(**D_KWARGS).train().requires_grad_(False)
        self.G_ema = copy.deepcopy(self.G).eval()
        self.loss = loss_mod.StyleGAN2Loss(torch.device("cpu"), self.G.mapping, self.G.synthesis, self.D,
                                           style_mixing_prob=0.9, r1_gamma=10, pl_batch_shrink=2, pl_decay=0.01,
                                           pl_weight=2)
        self.phases = []
        for name, net, interval in (("G", self.G, 4), ("D", self.D, 16)):
            ratio = interval / (interval + 1)
            opt = torch.optim.Adam(net.parameters(), lr=0.0025 * ratio, betas=(0 ** ratio, 0.99 ** ratio), eps=1e-8)
            self.phases += [(name + "main", net, opt, 1), (name + "reg", net, opt, interval)]
        self.c = torch.zeros([batch, 0])
        self.ema_beta = 0.5 ** (batch / (10 * 1000))
        self.idx = 0
        self.seconds = {name: 0.0 for name, *_ in self.phases} | {"Gema": 0.0}
        self.counts = dict.fromkeys(self.seconds, 0)

    def step(self, real: torch.Tensor) -> None:
        for name, net, opt, interval in self.phases:
            if self.idx % interval:
                continue
            start = time.perf_counter()
            gen_z = torch.randn([self.batch, self.G.z_dim])
            opt.zero_grad(set_to_none=True)
            net.requires_grad_(True)
            self.loss.accumulate_gradients(phase=name, real_img=real, real_c=self.c, gen_z=gen_z, gen_c=self.c,
                                           sync=True, gain=interval)
            net.requires_grad_(False)
            for p in net.parameters():
                if p.grad is not None:
                    self.misc.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
            opt.step()
            self._count(name, start)
        start = time.perf_counter()
        with torch.no_grad():
            for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
                p_ema.copy_(p.lerp(p_ema, self.ema_beta))
            for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
                b_ema.copy_(b)
        self._count("Gema", start)
        self.idx += 1

    def _count(self, name: str, start: float) -> None:
        self.seconds[name] += time.perf_counter() - start
        self.counts[name] += 1


def ganforge_trainer(batch: int, precision: str, images: torch.Tensor, channels_last: bool | str = "auto"):
    from ganforge.config import DataConfig, ModelConfig, RunConfig, TrainConfig
    from ganforge.data import ImageDataset
    from ganforge.train.trainer import Trainer

    cfg = RunConfig(
        data=DataConfig(source="random"),  # unused: the data is passed in
        model=ModelConfig(family="stylegan2", z_dim=64, g_width=64, d_width=64,
                          options={"G_kwargs": copy.deepcopy(G_KWARGS), "D_kwargs": copy.deepcopy(D_KWARGS)}),
        train=TrainConfig(loss="ns", batch_size=batch, g_lr=0.0025, d_lr=0.0025, g_betas=(0.0, 0.99),
                          d_betas=(0.0, 0.99), r1_gamma=10, r1_every=16, pl_weight=2, pl_every=4, pl_batch_shrink=2,
                          style_mixing=0.9, ema_kimg=10, ema_decay=0.999, precision=precision, diffaug="",
                          channels_last=channels_last))
    return Trainer(cfg, ImageDataset(images, None, [], "random"), device="cpu")


def top_ops(fn, n: int = 10) -> list[dict]:
    """The ops with the most self CPU time over one cycle of ``fn``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(CYCLE):
            fn()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return [{"op": e.key, "calls": e.count, "self_ms_per_step": round(e.self_cpu_time_total / 1e3 / CYCLE, 2),
             "share": round(e.self_cpu_time_total / total, 3)} for e in events[:n]]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", help="folder of an NVlabs/stylegan2-ada-pytorch checkout (commit d72cc7d)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=48, help=f"timed steps per side, a multiple of {CYCLE}")
    p.add_argument("--warmup", type=int, default=16, help="untimed steps per side first")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"], help="ganforge's (official: fp32)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default="auto",
                   help="ganforge's memory format; neither flag: ganforge's default (auto: channels-last on x86)")
    p.add_argument("--profile", action="store_true", help="also list the top ops of each side (torch.profiler)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    a = p.parse_args()
    if a.steps < CYCLE or a.steps % CYCLE or a.warmup < 0 or a.batch < 4:
        fail(f"--steps must be a positive multiple of {CYCLE}, --warmup >= 0 and --batch >= 4")
    networks, loss_mod, misc = import_official(a.official)
    torch.set_num_threads(a.threads)
    check = check_official(networks)

    torch.manual_seed(0)
    images = torch.randint(0, 256, (8 * a.batch, 3, 32, 32), dtype=torch.uint8)
    real_set = images.float() / 127.5 - 1
    official = Official(networks, loss_mod, misc, a.batch)
    trainer = ganforge_trainer(a.batch, a.precision, images, a.channels_last)
    sides = {"official": lambda: official.step(real_set[torch.randint(len(real_set), (a.batch,))]),
             "ganforge": trainer.step}

    load_before = os.getloadavg()
    for fn in sides.values():
        for _ in range(a.warmup):
            fn()
    official.seconds, official.counts = dict.fromkeys(official.seconds, 0.0), dict.fromkeys(official.counts, 0)
    cycles = {name: [] for name in sides}
    for _ in range(a.steps // CYCLE):
        for name, fn in sides.items():
            start = time.perf_counter()
            for _ in range(CYCLE):
                fn()
            cycles[name].append(time.perf_counter() - start)
    load_after = os.getloadavg()

    per_step = {name: sum(c) / a.steps for name, c in cycles.items()}
    out = {
        "config": {"batch": a.batch, "steps": a.steps, "warmup": a.warmup, "threads": torch.get_num_threads(),
                   "ganforge_precision": trainer.precision, "channels_last": trainer.channels_last,
                   "torch": torch.__version__},
        "official_code": check,
        "load_avg_1m": [round(load_before[0], 2), round(load_after[0], 2)],
        "seconds_per_step": {k: round(v, 4) for k, v in per_step.items()},
        "images_per_second": {k: round(a.batch / v, 1) for k, v in per_step.items()},
        "cycle_seconds": {k: [round(s, 2) for s in c] for k, c in cycles.items()},
        "speedup": round(per_step["official"] / per_step["ganforge"], 2),
        # The fastest cycle of each side: robust to bursts of outside load, which slow 2-thread OpenMP a lot.
        "speedup_best_cycle": round(min(cycles["official"]) / min(cycles["ganforge"]), 2),
        "cycle_spread": {k: round(max(c) / min(c), 2) for k, c in cycles.items()},
        "official_phases": {k: {"ms_per_run": round(1e3 * official.seconds[k] / max(n, 1), 1), "runs": n,
                                "ms_per_step": round(1e3 * official.seconds[k] / a.steps, 1)}
                            for k, n in official.counts.items()},
    }
    if a.profile:
        out["top_ops"] = {name: top_ops(fn) for name, fn in sides.items()}
    if a.json:
        print(json.dumps(out))
        return
    c = out["config"]
    print(f"StyleGAN2 training step, fixture config, batch {c['batch']}, {c['threads']} threads, torch {c['torch']}; "
          f"{a.steps} timed steps per side after {a.warmup} warm-up; ganforge precision {c['ganforge_precision']}, "
          f"{'channels-last' if c['channels_last'] else 'NCHW'}")
    print(f"official code: {check}; load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    for name in sides:
        print(f"  {name:9s} {per_step[name]:.3f} s/step  {a.batch / per_step[name]:7.1f} img/s   "
              f"cycles of {CYCLE}: {', '.join(f'{s:.1f}' for s in cycles[name])} s")
    print(f"  speed-up (official / ganforge): {out['speedup']:.2f}x mean, "
          f"{out['speedup_best_cycle']:.2f}x best cycle against best cycle")
    if max(out["cycle_spread"].values()) > 1.3:
        print(f"  warning: cycle times vary up to {max(out['cycle_spread'].values()):.1f}x: other processes were "
              "competing for the CPU; rerun when it is idle (or with --threads 1)")
    phases = out["official_phases"].items()
    print("  official phases: " + ", ".join(
        f"{k} {v['ms_per_run']:.0f} ms x{v['runs']} ({v['ms_per_step']:.0f} ms/step)" for k, v in phases))
    for name, ops in out.get("top_ops", {}).items():
        print(f"  top ops, {name} (self CPU ms per step, share):")
        for o in ops:
            print(f"    {o['op'][:40]:40s} {o['self_ms_per_step']:8.1f}  {o['share']:5.1%}  "
                  f"({o['calls']} calls per {CYCLE} steps)")


if __name__ == "__main__":
    main()
