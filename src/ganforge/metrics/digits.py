"""The built-in digit network: a small CNN trained by ganforge on the bundled MNIST digits.

It labels generated digits for the quality checks (how many samples a classifier is confident about,
and whether every class is produced). Its weights ship with the package (``weights/digit_cnn.safetensors``);
:func:`train_classifier` is how they were made (``benchmarks/train_digit_classifier.py``).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

WEIGHTS = Path(__file__).parent / "weights" / "digit_cnn.safetensors"


class DigitCNN(nn.Module):
    """28x28 gray digits in [-1, 1] -> 10 logits; ``features`` gives a 128-d embedding."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU())
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(128, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(_prepare(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


def _prepare(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 3:
        x = x.mean(dim=1, keepdim=True)
    if x.shape[-1] != 28:
        x = F.interpolate(x, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
    return x


def load_classifier(path: str | Path | None = None) -> DigitCNN:
    from safetensors.torch import load_file

    path = Path(path or WEIGHTS)
    if not path.exists():
        raise FileNotFoundError(f"digit network weights not found at {path}; "
                                "train them with benchmarks/train_digit_classifier.py")
    net = DigitCNN()
    net.load_state_dict(load_file(str(path)))
    return net.eval()


def split_mnist(seed: int = 0, test_fraction: float = 0.2):
    """The bundled MNIST digits, shuffled (the source is sorted by class) and split per class."""
    from ganforge.config import DataConfig
    from ganforge.data import load_dataset

    data = load_dataset(DataConfig(source="mnist", cache=False))
    x = data.images.float() / 127.5 - 1
    y = data.labels
    g = torch.Generator().manual_seed(seed)
    train_idx, test_idx = [], []
    for k in range(10):
        idx = (y == k).nonzero().squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_test = int(len(idx) * test_fraction)
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    tr, te = torch.cat(train_idx), torch.cat(test_idx)
    return (x[tr], y[tr]), (x[te], y[te])


def _shift(x: torch.Tensor, g: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Random translations up to ``max_shift`` px (digits in [-1, 1]; background -1)."""
    b = x.shape[0]
    pad = F.pad(x, (max_shift,) * 4, value=-1.0)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=g)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=g)
    return torch.stack([pad[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28] for i in range(b)])


def train_classifier(epochs: int = 30, seed: int = 0, log=print) -> tuple[DigitCNN, float]:
    """Train on the 80% split with small shifts; return the network and its held-out accuracy."""
    torch.manual_seed(seed)
    (xtr, ytr), (xte, yte) = split_mnist(seed)
    net = DigitCNN()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * ((len(xtr) + 63) // 64))
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), 64):
            idx = perm[i:i + 64]
            loss = F.cross_entropy(net(_shift(xtr[idx], g)), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        acc = accuracy(net, xte, yte)
        log(f"epoch {epoch + 1}/{epochs}: held-out accuracy {acc:.4f}")
    return net.eval(), accuracy(net, xte, yte)


@torch.no_grad()
def predict(net: DigitCNN, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Class probabilities for images in [-1, 1]."""
    net.eval()
    return torch.cat([F.softmax(net(images[i:i + batch_size].float()), dim=1)
                      for i in range(0, len(images), batch_size)])


def accuracy(net: DigitCNN, x: torch.Tensor, y: torch.Tensor) -> float:
    return (predict(net, x).argmax(1) == y).float().mean().item()


def digit_scores(probs: torch.Tensor, threshold: float = 0.9) -> dict:
    """Confident-rate (share of images whose top class has probability > threshold) and the class
    histogram of every image's top class, as shares of all images."""
    conf, label = probs.max(1)
    confident = conf > threshold
    hist = torch.bincount(label, minlength=10).float() / len(label)
    return {"confident_rate": confident.float().mean().item(),
            "class_shares": [round(v, 4) for v in hist.tolist()],
            "min_class_share": hist.min().item(), "max_class_share": hist.max().item()}
