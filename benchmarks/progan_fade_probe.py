"""Which network's fade-in makes a grown ProGAN collapse (docs/benchmarks.md, "ProGAN growth").

    python benchmarks/progan_fade_probe.py none|g|d|both [--steps 450] [--every 150] [--growth JSON]

Trains the ``progan`` preset from 8x8 with 4,000-image phases and one batch size (or ``--growth``), with the
named network patched to ignore its fade (alpha read as 1: the new block alone, at once), and prints every
``--every`` steps the stage and G's pixel standard deviation across 256 fixed latents (a collapsed generator
draws nearly the same image for every latent, so this falls). ``none`` is the run as ganforge trains it.
"""
import argparse
import json

import torch

from ganforge.data import load_dataset
from ganforge.models import progan
from ganforge.train.presets import preset_config
from ganforge.train.trainer import Trainer

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("which", choices=["none", "g", "d", "both"], help="the network whose fade is switched off")
p.add_argument("--steps", type=int, default=450)
p.add_argument("--every", type=int, default=150, help="steps between measurements")
p.add_argument("--growth", default='{"start": 8, "stabilise": 4000, "fade": 4000, "batch": {}}',
               help="train.growth as JSON")
p.add_argument("--threads", type=int, default=1)
a = p.parse_args()
torch.set_num_threads(a.threads)
if a.which in ("d", "both"):
    progan.ProDiscriminator.stage = lambda self: (int(self.level), 1.0)
if a.which in ("g", "both"):
    progan.ProGenerator.stage = lambda self: (int(self.level), 1.0)
cfg = preset_config("progan")
cfg.train.steps, cfg.train.device = a.steps, "cpu"
cfg.train.growth = json.loads(a.growth)
tr = Trainer(cfg, load_dataset(cfg.data))
z = torch.randn(256, cfg.model.z_dim, generator=torch.Generator().manual_seed(0))
for step in range(1, a.steps + 1):
    tr.step()
    if step % a.every == 0 or step == a.steps:
        with torch.no_grad():
            tr.G.eval()
            x = tr.G(z)
            tr.G.train()
        s = tr.growth.stage
        print(f"{a.which}: step {step}, {s.resolution} px, alpha {s.alpha:.2f}, pixel std across samples "
              f"{x.std(0).mean().item():.3f}", flush=True)
