"""The CNN detector: a small residual network on the image and its NPR-style up-sampling residual.

NPR (Tan et al., CVPR 2024): generators up-sample, so neighbouring pixels of a fake are correlated in a way
that ``x - up(down(x))`` (2x nearest down, then nearest up) exposes; the network sees that residual beside
the image. Its last feature maps, weighted by the linear head, are the class-activation map of --heatmap.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def npr(x: torch.Tensor) -> torch.Tensor:
    """``x - up(down(x))`` with 2x nearest sampling (odd sizes: the last row/column is its own block)."""
    h, w = x.shape[-2:]
    down = x[..., ::2, ::2]
    up = down.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)[..., :h, :w]
    return x - up


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.skip = None if stride == 1 and cin == cout else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + (x if self.skip is None else self.skip(x)))


INPUTS = ("image+npr", "npr")


class DetectorNet(nn.Module):
    """Residual net -> one logit (fake > 0). ``width`` is the first stage's channels (then x2, x4); ``inputs``
    is what it sees: the image beside its NPR residual, or the residual alone (as the NPR paper: it cannot
    learn a generator's colours or content, only its up-sampling traces, which carries over to other
    generators better)."""

    def __init__(self, channels: int, width: int = 8, inputs: str = "image+npr"):
        super().__init__()
        if inputs not in INPUTS:
            raise ValueError(f"unknown CNN input {inputs!r}: choose one of {', '.join(INPUTS)}")
        self.inputs = inputs
        cin = channels * (2 if inputs == "image+npr" else 1)
        self.stem = nn.Sequential(nn.Conv2d(cin, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU())
        # the stem sees every pixel (the NPR residual lives at single-pixel scale); the blocks then halve twice
        self.blocks = nn.Sequential(Block(width, 2 * width, 2), Block(2 * width, 4 * width, 2))
        self.head = nn.Linear(4 * width, 1)

    @property
    def width(self) -> int:
        return int(self.stem[0].out_channels)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = x * 2 - 1  # uint8/255 -> [-1, 1]
        r = npr(x) * 4
        return self.blocks(self.stem(r if self.inputs == "npr" else torch.cat([x, r], dim=1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3))).squeeze(1)

    def cam(self, x: torch.Tensor) -> torch.Tensor:
        """Class-activation maps ``[N, S, S]`` in 0..1: where the evidence for 'fake' is."""
        f = self.features(x)
        m = torch.einsum("nchw,c->nhw", f, self.head.weight[0]).clamp(min=0)[:, None]
        m = F.interpolate(m, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        return m / (m.flatten(1).amax(1)[:, None, None] + 1e-8)


class Ensemble(nn.Module):
    """Several DetectorNets of one shape, each from its own initialisation and batch order; the score is the
    mean of their Platt-calibrated logits (``scale``, ``shift`` per member, fit on the held-out split). How well
    one net carries over to a generator it never saw depends a lot on its seed; the mean of a few depends on it
    less, at the cost of training and scoring each member."""

    def __init__(self, members: list[DetectorNet]):
        super().__init__()
        if len(members) < 2 or len({(m.width, m.inputs, m.stem[0].in_channels) for m in members}) != 1:
            raise ValueError("an ensemble needs two or more CNNs of one width, input and channel count")
        self.members = nn.ModuleList(members)
        self.register_buffer("scale", torch.ones(len(members), dtype=torch.float64))
        self.register_buffer("shift", torch.zeros(len(members), dtype=torch.float64))

    @property
    def width(self) -> int:
        return self.members[0].width

    @property
    def inputs(self) -> str:
        return self.members[0].inputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raw = torch.stack([m(x).double() for m in self.members])
        return (raw * self.scale[:, None] + self.shift[:, None]).mean(0)

    def cam(self, x: torch.Tensor) -> torch.Tensor:
        """The members' maps, each weighted by its calibration slope, then scaled to 0..1 again."""
        w = self.scale.clamp(min=0).float()
        m = torch.einsum("knhw,k->nhw", torch.stack([net.cam(x) for net in self.members]), w)
        return m / (m.flatten(1).amax(1)[:, None, None] + 1e-8)


def as_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).float() / 255.0


@torch.inference_mode()
def logits(net: DetectorNet | Ensemble, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    net.eval()
    out = [net(as_tensor(images[i:i + batch_size])).double().numpy() for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros(0)


def train(net: DetectorNet, make_batch, steps: int, lr: float = 2e-3, progress: bool = False,
          desc: str = "training CNN detector") -> DetectorNet:
    """Adam on binary cross-entropy; ``make_batch(step)`` returns (uint8 images, labels) already augmented."""
    from tqdm import tqdm

    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1))
    net.train()
    for step in tqdm(range(steps), desc=desc, unit="step", leave=False, disable=not progress):
        x, y = make_batch(step)
        loss = F.binary_cross_entropy_with_logits(net(as_tensor(x)), torch.from_numpy(y).float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    return net
