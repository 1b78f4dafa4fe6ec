"""Does the official StyleGAN2 collapse on the bundled MNIST as ganforge's does? Both, side by side.

    python benchmarks/stylegan2_collapse.py --official /tmp/sg2ada --steps 600 --out runs/collapse

Trains an unconditional StyleGAN2 on MNIST padded to 32x32 twice with identical settings (the small
preset's networks and schedule in fp32, no augmentation: channel_base 1024, channel_max 64, 2 mapping
layers, orig D, minibatch-std groups of 4, batch 32, Adam 0.0025 / (0, 0.99), lazy R1 gamma 0.01 every 16,
no style mixing or path-length term, EMA half-life 10 kimg with ramp-up 0.05): once with the official code's
networks and StyleGAN2Loss (driven as its training loop does; the checkout is imported from --official,
see benchmarks/stylegan2_speed.py), once with ganforge's Trainer. Every 100 steps it prints the per-pixel
standard deviation over 64 fixed-latent G_ema samples (real MNIST: about 0.28; a collapsed generator
tends to 0) and writes both grids.
"""
import argparse
import copy
from pathlib import Path

import torch

from ganforge.data import load_dataset
from ganforge.storage.images import grid
from ganforge.train.presets import preset_config
from ganforge.train.regularizers import ema_beta
from ganforge.train.trainer import Trainer
from stylegan2_speed import import_official

BATCH, Z = 32, 64


def config():
    cfg = preset_config("stylegan2-mnist")
    cfg.model.family = "stylegan2"
    cfg.train.precision, cfg.train.channels_last, cfg.train.ada_target = "fp32", False, 0.0
    return cfg


def official_steps(root: str, images: torch.Tensor):
    """Yield (step, G_ema) while training the official networks with the official loss."""
    networks, loss_mod, misc = import_official(root)
    G = networks.Generator(z_dim=Z, c_dim=0, w_dim=64, img_resolution=32, img_channels=1,
                           mapping_kwargs={"num_layers": 2},
                           synthesis_kwargs={"channel_base": 1024, "channel_max": 64}).train().requires_grad_(False)
    D = networks.Discriminator(c_dim=0, img_resolution=32, img_channels=1, architecture="orig", channel_base=1024,
                               channel_max=64, epilogue_kwargs={"mbstd_group_size": 4}).train().requires_grad_(False)
    G_ema = copy.deepcopy(G).eval()
    loss = loss_mod.StyleGAN2Loss(torch.device("cpu"), G.mapping, G.synthesis, D, style_mixing_prob=0.0,
                                  r1_gamma=0.01, pl_weight=0)
    ratio = 16 / 17
    opt_G = torch.optim.Adam(G.parameters(), lr=0.0025, betas=(0.0, 0.99))
    opt_D = torch.optim.Adam(D.parameters(), lr=0.0025 * ratio, betas=(0.0, 0.99 ** ratio))
    phases = [("Gboth", G, opt_G, 1), ("Dmain", D, opt_D, 1), ("Dreg", D, opt_D, 16)]
    no_c = torch.zeros([BATCH, 0])
    step = 0
    while True:
        yield step, G_ema
        real = images[torch.randint(0, len(images), (BATCH,))]
        for name, net, opt, interval in phases:
            if step % interval:
                continue
            opt.zero_grad(set_to_none=True)
            net.requires_grad_(True)
            loss.accumulate_gradients(phase=name, real_img=real, real_c=no_c, gen_z=torch.randn(BATCH, Z),
                                      gen_c=no_c, sync=True, gain=interval)
            net.requires_grad_(False)
            for p in net.parameters():
                if p.grad is not None:
                    misc.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
            opt.step()
        beta = ema_beta(BATCH, (step + 1) * BATCH, 10, 0.05)
        with torch.no_grad():
            for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                p_ema.copy_(p.lerp(p_ema, beta))
            for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                b_ema.copy_(b)
        step += 1


def ganforge_steps(data):
    tr = Trainer(config(), data, device="cpu")
    while True:
        yield tr.step_count, tr.G_ema
        tr.step()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", required=True, help="folder of an NVlabs/stylegan2-ada-pytorch checkout")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--out", default="runs/collapse")
    a = p.parse_args()
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset(config().data)
    z = torch.randn(64, Z, generator=torch.Generator().manual_seed(0))
    for side, steps in (("official", official_steps(a.official, data.images.float() / 127.5 - 1)),
                        ("ganforge", ganforge_steps(data))):
        torch.manual_seed(0)
        for step, G_ema in steps:
            if step % 100 == 0:
                with torch.no_grad():
                    img = G_ema(z, None, noise_mode="const")
                print(f"{side} step {step}: per-pixel std over 64 samples {img.std(0).mean().item():.3f}", flush=True)
                grid(img, nrow=8).save(out / f"{side}-{step:05d}.png")
            if step >= a.steps:
                break


if __name__ == "__main__":
    main()
