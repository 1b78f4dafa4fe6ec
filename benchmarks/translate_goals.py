"""The goals of ganforge translate (issue 17, point 5), each at a fixed wall-clock training budget on the CPU.

    nice python benchmarks/translate_goals.py --sr-seconds 360 --seconds 120 --out runs/translate-goals \
        [--goals sr,digits,edges,colorize,speed] [--picture docs/img/superres.png]

* sr: 4x super-resolution of held-out ``photos-test`` crops (64 px targets, 16 px inputs): the PSNR model
  (srresnet, L1 only) for --sr-seconds, then the GAN model fine-tuned from it (L1 + conditional GAN) for
  half that, against bicubic; Y-PSNR / SSIM with a 4-px border, and the top-octave energy ratio;
* digits: 7x7 -> 28x28 on the held-out MNIST digits (srresnet, L1 only): digit-network accuracy vs bicubic;
* edges: Canny edges -> MNIST digits with pix2pix, L1 only and L1 + cGAN: accuracy and digit-feature FID;
* colorize: L -> a*b* on photos / photos-test with pix2pix (L1 + cGAN): RGB PSNR vs the mean-a*b* baseline and
  the colourfulness ratio;
* speed: `translate`'s tiled 4x super-resolution of a large image with the sr PSNR model, megapixels of output
  per minute, and how the process's peak memory grows from a small to a large image.

Every run uses one thread (the machine is shared); the budgets are wall-clock, so the step counts printed are
what the budget bought on this machine. Prints the figures as Markdown.
"""
import argparse
import json
import math
import resource
import time
from pathlib import Path

import torch

from ganforge.config import DataConfig, RunConfig
from ganforge.storage.atomic import atomic_write_text
from ganforge.translate.data import Task, load_pairs
from ganforge.translate.metrics import baseline, outputs, task_metrics
from ganforge.translate.train import TranslationTrainer

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--sr-seconds", type=float, default=360.0, help="PSNR-model budget (the GAN gets half)")
p.add_argument("--seconds", type=float, default=120.0, help="budget of each other model")
p.add_argument("--goals", default="sr,digits,edges,colorize,speed")
p.add_argument("--out", default="runs/translate-goals")
p.add_argument("--picture", default=None, help="write bicubic | PSNR model | GAN model | target here")
p.add_argument("--threads", type=int, default=1)
p.add_argument("--seed", type=int, default=0, help="training seed of every model")
p.add_argument("--edges-adv", type=float, default=1.0, help="adversarial weight of the L1 + cGAN edges model")
p.add_argument("--edges-patch", type=int, default=16, help="its PatchGAN's receptive field")
p.add_argument("--edges-steps", type=int, default=0, help="train both edges models this many steps (the "
                                                         "paper's equal-epochs ablation) instead of --seconds each")
p.add_argument("--edges-picture", help="write edges | L1 | L1 + cGAN | target here")
p.add_argument("--sr-every", type=float, default=0, help="score the PSNR model's Y-PSNR every this many seconds")
p.add_argument("--sr-width", type=int, default=32)
p.add_argument("--sr-blocks", type=int, default=6)
p.add_argument("--sr-crop", type=int, default=None, help="random training crop of the 64 px photos (None: whole)")
p.add_argument("--sr-resolution", type=int, default=64, help="training crops' size (the test stays 64)")
p.add_argument("--sr-batch", type=int, default=16)
p.add_argument("--sr-lr", type=float, default=5e-4)
p.add_argument("--sr-recon", default="l1", help="the PSNR model's reconstruction loss: l1 or mse")
p.add_argument("--sr-rotate", action="store_true", help="random quarter turns of the PSNR model's training pairs")
p.add_argument("--sr-decay", action="store_true", help="cosine-decay the PSNR model's learning rate to 0 over its "
                                                      "budget")
a = p.parse_args()
torch.set_num_threads(a.threads)
goals = a.goals.split(",")
out = Path(a.out)
results: dict = {}


def config(family, source, task, resolution=None, **options):
    cfg = RunConfig()
    cfg.data = DataConfig(source=source, resolution=resolution, xflip=source.startswith("photos"), cache=False)
    cfg.model.family = family
    cfg.model.options = {"task": task.name, "scale": task.scale, **options}
    cfg.train.device = "cpu"
    cfg.train.batch_size = 16
    cfg.train.loss = "ns"
    cfg.train.seed = a.seed
    return cfg


def train_for(cfg, train, test, seconds, init=None, label="", every=0.0, check=None, decay=False, steps=0):
    """Train for ``seconds`` of wall-clock (or ``steps`` steps, when given); every ``every`` seconds call
    ``check(trainer)`` (its time is not counted) and print what it returns; ``decay``: G's learning
    rate follows a cosine to 0 over the budget."""
    tr = TranslationTrainer(cfg, train, test, device="cpu")
    if init is not None:
        tr.G.load_state_dict(init.state_dict())
    took, next_check = 0.0, every
    while (tr.step_count < steps) if steps else (took < seconds):
        if decay:
            for group in tr.opt_G.param_groups:
                group["lr"] = cfg.train.g_lr * 0.5 * (1 + math.cos(math.pi * min(took / seconds, 1.0)))
        start = time.perf_counter()
        m = tr.step()
        took += time.perf_counter() - start
        if every and check is not None and took >= next_check:
            tr.G.eval()
            print(f"{label}: {took:.0f} s, {tr.step_count} steps: {check(tr)}", flush=True)
            tr.G.train()
            next_check += every
    print(f"{label}: {tr.step_count} steps in {took:.0f} s, last L1 {m['loss_l1']:.4f}", flush=True)
    tr.G.eval()
    return tr


def score(tr, task, train, test, label):
    with torch.no_grad():
        x, y, t = outputs(tr.G, task, test)
    return x, y, t, {r["metric"]: r for r in task_metrics(task, x, y, t, test, train, label=label)}


def base_rows(task, x, t, train, test, label):
    return {r["metric"]: r for r in task_metrics(task, x, baseline(task, x, t, train), t, test, train, label=label)}


if "sr" in goals or "speed" in goals:
    task = Task("superres", scale=4)
    train, test = load_pairs(DataConfig(source="photos", resolution=64, cache=False), task)
    if a.sr_resolution != 64:  # larger training crops (a --sr-crop window of each): more distinct patches
        train = load_pairs(DataConfig(source="photos", resolution=a.sr_resolution, cache=False), task)[0]
    opts = {"crop": a.sr_crop} if a.sr_crop else {}
    opts["recon"] = a.sr_recon
    if a.sr_rotate:
        opts["rotate"] = True
    cfg = config("srresnet", "photos", task, 64, blocks=a.sr_blocks, adv_weight=0.0, **opts)
    cfg.model.g_width = a.sr_width
    cfg.train.batch_size = a.sr_batch
    cfg.train.g_lr, cfg.train.g_betas = a.sr_lr, (0.9, 0.999)

    seen = train.subset(list(range(0, len(train), max(1, len(train) // 256))))

    def y_psnr(tr):
        got = []
        for part in (test, seen):
            with torch.no_grad():
                x, y, t = outputs(tr.G, task, part)
            base = baseline(task, x, t, None)
            rows = {r["metric"]: r["value"] for r in task_metrics(task, x, y, t, part, None)
                    + task_metrics(task, x, base, t, part, None, label="bicubic")}
            got.append(rows["psnr_y[model]"] - rows["psnr_y[bicubic]"])
        return f"Y-PSNR over bicubic: held-out {got[0]:+.2f} dB, training crops {got[1]:+.2f} dB"

    psnr_tr = train_for(cfg, train, test, a.sr_seconds, label="sr PSNR model", every=a.sr_every, check=y_psnr,
                        decay=a.sr_decay)
    x, y_psnr, t, rows = score(psnr_tr, task, train, test, "psnr-model")
    rows.update(base_rows(task, x, t, train, test, "bicubic"))
    res = {"psnr_steps": psnr_tr.step_count, "psnr_seconds": a.sr_seconds, **rows}
    if "sr" in goals:
        gcfg = config("srresnet", "photos", task, 64, blocks=6, adv_weight=0.1, patch=16)
        gcfg.model.g_width, gcfg.model.d_width = 32, 32
        gcfg.train.g_lr, gcfg.train.d_lr = 1e-4, 1e-4
        gan_tr = train_for(gcfg, train, test, a.sr_seconds / 2, init=psnr_tr.G, label="sr GAN model")
        _, y_gan, _, grows = score(gan_tr, task, train, test, "gan-model")
        res.update(grows)
        res["gan_steps"], res["gan_seconds"] = gan_tr.step_count, a.sr_seconds / 2
        if a.picture:
            from ganforge.storage.images import grid, save_image

            idx = torch.tensor([3, 40, 130, 200])
            bic = baseline(task, x[idx], t[idx], None)
            cols = torch.stack([bic, y_psnr[idx], y_gan[idx], t[idx]], 1).flatten(0, 1)
            save_image(grid(cols, nrow=4, upscale=3), a.picture)
    results["sr"] = res

if "digits" in goals or "edges" in goals:
    mnist = {}
    for name in ("superres", "edges"):
        if name[0] == "s" and "digits" not in goals or name[0] == "e" and "edges" not in goals:
            continue
        task = Task(name, scale=4)
        if "pairs" not in mnist:
            mnist["pairs"] = load_pairs(DataConfig(source="mnist", cache=False), task)
        train, test = mnist["pairs"]
        if name == "superres":
            cfg = config("srresnet", "mnist", task, blocks=4, adv_weight=0.0)
            cfg.model.g_width = 32
            cfg.train.g_lr, cfg.train.g_betas = 5e-4, (0.9, 0.999)
            tr = train_for(cfg, train, test, a.seconds, label="digits 7->28 PSNR model")
            x, _, t, rows = score(tr, task, train, test, "srresnet")
            rows.update(base_rows(task, x, t, train, test, "bicubic"))
            results["digits"] = {"steps": tr.step_count, "seconds": a.seconds, **rows}
        else:
            res, shown = {}, []
            for label, adv in (("l1", 0.0), ("l1+cgan", a.edges_adv)):
                cfg = config("pix2pix", "mnist", task, patch=a.edges_patch, adv_weight=adv)
                cfg.model.g_width, cfg.model.d_width = 16, 16
                tr = train_for(cfg, train, test, a.seconds, label=f"edges->digits {label}", steps=a.edges_steps)
                x, y, t, rows = score(tr, task, train, test, label)
                res.update(rows)
                res[f"steps[{label}]"] = tr.step_count
                shown.append(task.to_image(x[:8], y[:8]))
            results["edges"] = {"seconds": None if a.edges_steps else a.seconds, "adv_weight": a.edges_adv,
                                "patch": a.edges_patch, **res}
            if a.edges_picture:  # rows: edges | L1 | L1 + cGAN | target
                from ganforge.storage.images import grid, save_image

                cols = [task.show_input(x[:8], t.shape[-2:], 1), *shown, task.to_image(x[:8], t[:8])]
                save_image(grid(torch.stack(cols, 1).flatten(0, 1), nrow=len(cols), upscale=3), a.edges_picture)

if "colorize" in goals:
    task = Task("colorize")
    train, test = load_pairs(DataConfig(source="photos", resolution=64, cache=False), task)
    cfg = config("pix2pix", "photos", task, 64, patch=16, adv_weight=1.0)
    cfg.model.g_width, cfg.model.d_width = 16, 16
    tr = train_for(cfg, train, test, a.seconds, label="colorize L1+cGAN")
    x, _, t, rows = score(tr, task, train, test, "pix2pix")
    rows.update(base_rows(task, x, t, train, test, "mean-ab"))
    results["colorize"] = {"steps": tr.step_count, "seconds": a.seconds, **rows}

if "speed" in goals:
    from ganforge.translate.infer import tiled

    G = psnr_tr.G.eval()
    rss = []
    for side in (128, 512, 1024):  # input sides: outputs of 0.26, 4.2 and 16.8 megapixels
        x = torch.rand(1, 3, side, side) * 2 - 1
        start = time.perf_counter()
        with torch.no_grad():
            y = tiled(G, x, 4, tile=128, overlap=16)
        took = time.perf_counter() - start
        rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        mp = y.shape[-1] * y.shape[-2] / 1e6
        results.setdefault("speed", {})[f"{side}px"] = {"output_megapixels": round(mp, 3), "seconds": round(took, 2),
                                                       "megapixels_per_minute": round(mp / took * 60, 2),
                                                       "peak_rss_mib_after": round(rss[-1], 1)}
        del y

out.mkdir(parents=True, exist_ok=True)
atomic_write_text(out / "results.json", json.dumps(results, indent=2))
for goal, res in results.items():
    print(f"\n### {goal}\n")
    print("| figure | value | measured |\n|---|---|---|")
    for k, v in res.items():
        if isinstance(v, dict) and "value" in v:
            print(f"| {k} | {v['value']} | {v['measured']} |")
        else:
            print(f"| {k} | {v} | |")
