"""Named starting configurations for ``ganforge train --preset NAME`` (flags given beside it override them).

* ``stylegan2-mnist``: a small class-conditional StyleGAN2 for the bundled MNIST, padded to 32x32, on a
  CPU. Batch 16 and R1 gamma 1 (the variant that improved fastest), 24,000 steps (384 thousand images):
  StyleGAN2 collapses early on this small set, then recovers. How it compares with the DCGAN default at
  equal wall-clock is in docs/benchmarks.md.
* ``paper256`` / ``paper512`` / ``paper1024`` / ``stylegan2``: the StyleGAN2-ADA paper's configurations
  for GPUs (minibatch, minibatch-std group, feature maps, learning rate, R1 gamma, EMA half-life, 8
  mapping layers, mixed precision in the 4 highest resolutions with conv clamping at 256, adaptive
  augmentation with target 0.6). Train them on a folder of images at the preset's resolution;
  ``--steps`` defaults to the paper's length (25 M images for paper256/512).
* ``progan``: ProGAN (progressive growing) for the bundled MNIST padded to 32x32 on a CPU: WGAN-GP with the drift
  term, Adam (0, 0.99) at 0.001 as in the paper, growing 8x8 -> 32x32 in the first 1,750 of its 6,000 steps. It starts
  at 8x8, not the paper's 4x4: a 4x4 MNIST digit is a blob, and runs grown from 4x4 with these phases lost
  their variety in the 16x16 fade-in (docs/benchmarks.md, "ProGAN growth").

``FAMILY_TRAIN_DEFAULTS``: the training settings a family gets by default from ``ganforge train --family F``
without a preset or config (flags given beside it still win): ProGAN's are the paper's.
"""
from __future__ import annotations

from collections.abc import Callable

from ganforge.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from ganforge.errors import ConfigError

# Shared by every StyleGAN2 recipe: non-saturating loss, Adam(0, 0.99), lazy R1 every 16 D steps.
_SG2_TRAIN = dict(loss="ns", g_betas=(0.0, 0.99), d_betas=(0.0, 0.99), r1_every=16, diffaug="")


def _stylegan2_mnist() -> RunConfig:
    return RunConfig(
        data=DataConfig(source="mnist", pad=2),
        model=ModelConfig(family="cstylegan2", z_dim=64, g_width=64, d_width=64,
                          options={"mapping_layers": 2, "channel_base": 1024, "d_architecture": "orig",
                                   "mbstd_group": 4}),
        train=TrainConfig(**_SG2_TRAIN, steps=24000, batch_size=16, g_lr=0.0025, d_lr=0.0025, r1_gamma=1.0,
                          pl_weight=0.0, style_mixing=0.0, ema_kimg=10, ema_rampup=0.05, ada_target=0.6,
                          ada_kimg=100, channels_last=True, sample_every=100, ckpt_every=500),
    )


# ProGAN's paper settings (WGAN-GP with epsilon_drift 0.001, Adam lr 0.001 with betas (0, 0.99)).
FAMILY_TRAIN_DEFAULTS: dict[str, dict] = {
    "progan": dict(loss="wgan-gp", drift=0.001, gp_weight=10.0, g_lr=0.001, d_lr=0.001, g_betas=(0.0, 0.99),
                   d_betas=(0.0, 0.99), ema_decay=0.999),
}


def _progan_mnist() -> RunConfig:
    return RunConfig(
        data=DataConfig(source="mnist", pad=2, labels=False),
        model=ModelConfig(family="progan", z_dim=64, g_width=32, d_width=32),
        train=TrainConfig(**FAMILY_TRAIN_DEFAULTS["progan"], steps=6000, batch_size=32,
                          growth={"start": 8, "stabilise": 16000, "fade": 16000, "batch": {"8": 64}},
                          sample_every=100, ckpt_every=500),
    )


def _paper(resolution: int, batch: int, mbstd: int, channel_base: int, lr: float, gamma: float, ema: float,
           kimg: int) -> Callable[[], RunConfig]:
    def make() -> RunConfig:
        return RunConfig(
            data=DataConfig(source="", resolution=resolution, channels=3, labels=False, xflip=False),
            model=ModelConfig(family="stylegan2", z_dim=512, g_width=512, d_width=512,
                              options={"mapping_layers": 8, "w_dim": 512, "channel_base": channel_base,
                                       "mbstd_group": mbstd, "num_fp16_res": 4, "conv_clamp": 256}),
            train=TrainConfig(**_SG2_TRAIN, steps=kimg * 1000 // batch, batch_size=batch, g_lr=lr, d_lr=lr,
                              r1_gamma=gamma, pl_weight=2.0, pl_every=4, pl_batch_shrink=2, style_mixing=0.9,
                              ema_kimg=ema, ema_rampup=0.0, ada_target=0.6, ada_pipe="bgc", device="auto",
                              precision="fp32", sample_every=1000, ckpt_every=5000, log_every=100),
        )
    return make


PRESETS: dict[str, tuple[str, Callable[[], RunConfig]]] = {
    "stylegan2-mnist": ("small class-conditional StyleGAN2 for the bundled MNIST at 32x32 on a CPU (24,000 steps)",
                        _stylegan2_mnist),
    "progan": ("ProGAN for the bundled MNIST at 32x32 on a CPU: grows 8x8 -> 32x32, WGAN-GP with drift",
               _progan_mnist),
    "paper256": ("StyleGAN2-ADA paper config, 256x256 (GPU): batch 64, gamma 1, half the feature maps",
                 _paper(256, 64, 8, 16384, 0.0025, 1.0, 20, 25000)),
    "paper512": ("StyleGAN2-ADA paper config, 512x512 (GPU): batch 64, gamma 0.5",
                 _paper(512, 64, 8, 32768, 0.0025, 0.5, 20, 25000)),
    "paper1024": ("StyleGAN2-ADA paper config, 1024x1024 (GPU): batch 32, gamma 2",
                  _paper(1024, 32, 4, 32768, 0.002, 2.0, 10, 25000)),
    "stylegan2": ("StyleGAN2 config F at any resolution (GPU): batch 32, gamma 10",
                  _paper(1024, 32, 4, 32768, 0.002, 10.0, 10, 25000)),
}


# Configurations sized for GPUs: far too slow on a CPU to train to the paper's length (docs/benchmarks.md).
GPU_PRESETS = ("paper256", "paper512", "paper1024", "stylegan2")


def preset_config(name: str) -> RunConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name][1]()
