"""The task metrics of a translation run, each stated with what exactly was measured.

* super-resolution: PSNR and SSIM (scikit-image) on the luma Y of ITU-R BT.601 as the SR literature uses it
  (``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` for RGB in [0, 1], data range 255; gray images are their own
  luma), with a border of ``scale`` pixels cropped; RGB PSNR with the same border; bicubic beside them;
* colourisation: RGB PSNR, and the ratio of mean Hasler–Süsstrunk colourfulness (output / target); the
  "predict the mean a*b*" baseline (the training set's mean) beside them;
* digits (mnist): the built-in digit network's accuracy on the outputs made from held-out inputs (pix2pix's
  FCN-score idea), and FID against the test targets in that network's features;
* every task: the high-frequency energy ratio, output / target, of the luma's power spectrum in its top octave
  (radial frequency from a quarter to a half cycle per pixel, Hann-windowed); 1 means as much fine detail as
  the targets.

Everything is measured on the run's test split (see :mod:`ganforge.translate.data`), at its native size.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ganforge.errors import EvalError
from ganforge.translate.data import AB_SCALE, Pairs, Task, load_pairs

BATCH = 64


def to_u8(x: torch.Tensor) -> np.ndarray:
    """[-1, 1] [N, C, H, W] -> uint8 [N, H, W, C] (rounded as saved PNGs are)."""
    return ((x.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def y_channel(u8: np.ndarray) -> np.ndarray:
    """BT.601 luma in [16, 235] (float64) of uint8 [N, H, W, 3]; a gray image [N, H, W, 1] as it is."""
    if u8.shape[-1] == 1:
        return u8[..., 0].astype(np.float64)
    x = u8.astype(np.float64) / 255.0
    return 16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]


def crop_border(x: np.ndarray, border: int) -> np.ndarray:
    return x[:, border:-border, border:-border] if border else x


def psnr(out: np.ndarray, target: np.ndarray) -> float:
    """Mean over images of PSNR (scikit-image), data range 255; identical images score infinity."""
    from skimage.metrics import peak_signal_noise_ratio

    with np.errstate(divide="ignore"):
        return float(np.mean([peak_signal_noise_ratio(t.astype(np.float64), o.astype(np.float64), data_range=255)
                              for o, t in zip(out, target)]))


def ssim(out: np.ndarray, target: np.ndarray) -> float:
    """Mean over images of SSIM (scikit-image defaults: 7x7 uniform window), data range 255, one channel."""
    from skimage.metrics import structural_similarity

    return float(np.mean([structural_similarity(t, o, data_range=255) for o, t in zip(out, target)]))


def colourfulness(u8: np.ndarray) -> np.ndarray:
    """Hasler & Süsstrunk (2003) colourfulness of each uint8 RGB image [N, H, W, 3]."""
    x = u8.astype(np.float64)
    rg = x[..., 0] - x[..., 1]
    yb = 0.5 * (x[..., 0] + x[..., 1]) - x[..., 2]
    std = np.sqrt(rg.reshape(len(x), -1).var(1) + yb.reshape(len(x), -1).var(1))
    mean = np.sqrt(rg.reshape(len(x), -1).mean(1) ** 2 + yb.reshape(len(x), -1).mean(1) ** 2)
    return std + 0.3 * mean


def high_frequency_energy(y: np.ndarray) -> float:
    """Summed power of the images' spectra [N, H, W] in the top octave (0.25 to 0.5 cycles per pixel radially),
    mean removed, under a 2-D Hann window (else the jump between opposite borders, which the FFT treats as
    neighbours, shows up as fine detail)."""
    y = y - y.mean(axis=(1, 2), keepdims=True)
    y = y * (np.hanning(y.shape[1])[:, None] * np.hanning(y.shape[2])[None, :])
    power = np.abs(np.fft.fft2(y)) ** 2
    fy = np.fft.fftfreq(y.shape[1])[:, None]
    fx = np.fft.fftfreq(y.shape[2])[None, :]
    r = np.sqrt(fy ** 2 + fx ** 2)
    band = (r >= 0.25) & (r <= 0.5)
    return float(power[:, band].sum())


def hf_ratio(out: np.ndarray, target: np.ndarray) -> float:
    return high_frequency_energy(out) / max(high_frequency_energy(target), 1e-12)


@torch.no_grad()
def outputs(G, task: Task, test: Pairs, seed: int = 0, device: str = "cpu"):
    """(A, raw outputs, raw targets) for the whole test split, inputs made as in training (seeded masks)."""
    gen = torch.Generator().manual_seed(seed)
    a_all, out_all, b_all = [], [], []
    dev = next(G.parameters()).device
    for i in range(0, len(test), BATCH):
        sub = test.subset(list(range(i, min(i + BATCH, len(test)))))
        a, b = task.make(sub.b, sub.a, gen)
        a_all.append(a)
        out_all.append(G(a.to(dev)).float().cpu())
        b_all.append(b)
    return torch.cat(a_all), torch.cat(out_all), torch.cat(b_all)


def entry(name: str, value: float, measured: str) -> dict:
    return {"metric": name, "value": round(float(value), 4), "measured": measured}


def task_metrics(task: Task, a: torch.Tensor, out: torch.Tensor, target: torch.Tensor, test: Pairs,
                 train: Pairs | None = None, label: str = "model") -> list[dict]:
    """The metrics of ``task`` for outputs ``out`` (raw network outputs) against ``target``; see the module notes.
    ``train`` supplies the colourisation baseline's mean a*b*."""
    pic, tgt = to_u8(task.to_image(a, out)), to_u8(task.to_image(a, target))
    data = f"{test.name} test split, {len(test)} images {pic.shape[2]}x{pic.shape[1]}"
    rows: list[dict] = []
    gray = pic.shape[-1] == 1
    luma = "gray value" if gray else "BT.601 luma Y (16-235)"
    if task.name == "superres":
        border = task.scale
        yo, yt = crop_border(y_channel(pic), border), crop_border(y_channel(tgt), border)
        rows += [entry(f"psnr_y[{label}]", psnr(yo, yt), f"PSNR (skimage) on {luma}, {border}-px border cropped, "
                                                         f"{data}"),
                 entry(f"ssim_y[{label}]", ssim(yo, yt), f"SSIM (skimage, 7x7 window) on {luma}, {border}-px border "
                                                         f"cropped, {data}")]
        if not gray:
            rows.append(entry(f"psnr_rgb[{label}]", psnr(crop_border(pic, border), crop_border(tgt, border)),
                              f"PSNR (skimage) on RGB, {border}-px border cropped, {data}"))
    if task.name in ("colorize", "inpaint", "edges", "paired") and not gray:
        rows.append(entry(f"psnr_rgb[{label}]", psnr(pic, tgt), f"PSNR (skimage) on RGB, no border cropped, {data}"))
    if task.name == "colorize":
        ratio = colourfulness(pic).mean() / max(colourfulness(tgt).mean(), 1e-12)
        rows.append(entry(f"colourfulness_ratio[{label}]", ratio, f"mean Hasler-Süsstrunk colourfulness of the "
                                                                  f"outputs / of the targets, {data}"))
    if task.name in ("edges", "superres", "inpaint", "paired") and test.labels is not None and \
            test.name == "mnist" and gray:
        rows += digit_metrics(task.to_image(a, out), task.to_image(a, target), test.labels, label, data)
    rows.append(entry(f"hf_ratio[{label}]", hf_ratio(y_channel(pic), y_channel(tgt)),
                      f"Hann-windowed power-spectrum energy of {luma} in the top octave (0.25-0.5 cycles/px), "
                      f"output / target, "
                      f"{data}"))
    return rows


def digit_metrics(out: torch.Tensor, target: torch.Tensor, labels: torch.Tensor, label: str, data: str) -> list[dict]:
    """Digit-network accuracy of the outputs, and FID to the targets in its 128-d features."""
    from ganforge.metrics.digits import load_classifier
    from ganforge.metrics.fid import fid_from_features

    net = load_classifier()
    with torch.no_grad():
        fo = torch.cat([net.features(out[i:i + 500]) for i in range(0, len(out), 500)])
        ft = torch.cat([net.features(target[i:i + 500]) for i in range(0, len(target), 500)])
        pred = net.head(fo).argmax(1)
    acc = (pred == labels).float().mean().item()
    return [entry(f"digit_accuracy[{label}]", acc, f"built-in digit network's accuracy on the outputs (labels of "
                                                   f"the held-out digits), {data}"),
            entry(f"fid_digits[{label}]", fid_from_features(fo.numpy(), ft.numpy()),
                  f"FID between outputs and test targets in the digit network's 128-d features, {data}")]


def baseline(task: Task, a: torch.Tensor, target: torch.Tensor, train: Pairs | None) -> torch.Tensor | None:
    """The reference the task is usually compared with, as raw outputs: bicubic upsampling for superres, the
    training set's mean a*b* for colorize; None for the others."""
    if task.name == "superres":
        return F.interpolate(a, size=target.shape[-2:], mode="bicubic", align_corners=False).clamp(-1, 1)
    if task.name == "colorize" and train is not None:
        from ganforge.translate.data import rgb_to_lab

        sample = train.b[torch.linspace(0, len(train) - 1, min(512, len(train))).long()]
        mean_ab = (rgb_to_lab(sample)[:, 1:].mean((0, 2, 3)) / AB_SCALE).view(1, 2, 1, 1)
        return mean_ab.expand(len(a), 2, *a.shape[-2:]).contiguous()
    return None


def evaluate_run(run: str | Path, device: str = "cpu", seed: int = 0) -> dict:
    """Every metric of a translation run's task on its test split, with the task's baseline."""
    from ganforge.translate.infer import load_translator

    cfg, task, G = load_translator(run, device)
    train, test = load_pairs(cfg.data, task)
    if len(test) < 2:
        raise EvalError(f"the test split of {cfg.data.source} has {len(test)} image(s): at least 2 are needed; give "
                        "the data a test/ sub-folder beside train/, or 20 or more images (every tenth is held out)")
    a, out, target = outputs(G, task, test, seed, device)
    rows = task_metrics(task, a, out, target, test, train)
    base = baseline(task, a, target, train)
    if base is not None:
        name = "bicubic" if task.name == "superres" else "mean-ab"
        rows += task_metrics(task, a, base, target, test, train, label=name)
    return {"run": str(run), "step": int(getattr(G, "step", 0)), "family": cfg.model.family,
            "task": task.describe(), "data": f"{test.name} (test split)", "metrics": rows}


def format_result(result: dict) -> str:
    lines = [f"{result['run']} (step {result['step']}, {result['family']}, {result['task']}) on {result['data']}"]
    width = max(len(r["metric"]) for r in result["metrics"])
    for r in result["metrics"]:
        lines.append(f"  {r['metric']:<{width}}  {r['value']:>9.4f}  {r['measured']}")
    return "\n".join(lines)

