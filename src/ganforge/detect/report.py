"""`ganforge detect --report OUT.html`: one self-contained page (every image inlined as a data URL).

It shows the thumbnails sorted by score with their verdicts, the average log power spectra of the real and
the fake images side by side, the reliability diagram when the labels are known, and a short explanation of
the artefacts that carried the verdicts.
"""
from __future__ import annotations

import base64
import html
import io
from collections import Counter

import numpy as np
from PIL import Image

from ganforge.detect import features as feats

EXPLAIN = {
    "periodic peaks": "periodic peaks in the high-pass residual at 1/2 or 1/4 cycles per pixel: the grid that "
                      "transposed convolutions and nearest-neighbour up-sampling stamp on an image",
    "spectrum": "the shape of the power spectrum: generators put too much or too little energy into some "
                "frequencies, most often the highest ones (too smooth, or a lifted high-frequency tail)",
    "residual DCT": "the distribution of the high-pass residual over 8x8 DCT frequencies (as Frank et al.): "
                    "fine-scale texture that does not match the real images'",
    "pixel statistics": "pixel values: real scans and photos have exact black and white areas and a histogram "
                        "that generators, whose outputs pass through tanh, rarely reproduce",
    "colour": "how the colour channels' fine detail moves together: camera demosaicing couples them in a way "
              "generators do not",
    "CNN activation": "patterns the CNN learnt in the image and its up-sampling residual (NPR); the heatmaps "
                      "show where",
}


def data_url(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def thumb(arr: np.ndarray, scale: int) -> Image.Image:
    pil = Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))
    return pil.resize((arr.shape[-1] * scale, arr.shape[-2] * scale), Image.NEAREST)


def mean_spectrum(images: np.ndarray) -> np.ndarray:
    """Average centred log power spectrum of the high-pass residual, ``[S, S]``."""
    return np.fft.fftshift(feats.power(feats.residual(feats.luma(images))).mean(axis=0))


def spectrum_image(spec: np.ndarray, lo: float, hi: float, scale: int) -> Image.Image:
    v = np.clip((spec - lo) / max(hi - lo, 1e-6), 0, 1)
    rgb = np.stack([v ** 0.8, v ** 1.5, (1 - v) * 0.4 + v ** 3], axis=-1)  # dark blue -> yellow
    pil = Image.fromarray((rgb * 255).astype(np.uint8))
    return pil.resize((spec.shape[1] * scale, spec.shape[0] * scale), Image.NEAREST)


def explanation(results: list[dict], spectra: dict[str, np.ndarray]) -> list[str]:
    fakes = [r["evidence"]["group"] for r in results if r["verdict"] == "fake"]
    lines = []
    for group, n in Counter(fakes).most_common():
        lines.append(f"{n} of {len(fakes)} images called fake were so mostly on {group}: {EXPLAIN.get(group, group)}.")
    if "real" in spectra and "fake" in spectra:
        diff = spectra["fake"] - spectra["real"]
        s = diff.shape[0]
        c = s // 2
        for (dy, dx), where in (((0, c), "1/2 cycles/px horizontally"), ((c, 0), "1/2 cycles/px vertically"),
                                ((c, c), "1/2 cycles/px diagonally")):
            val = diff[(c + dy) % s, (c + dx) % s]
            if val > 1.0:
                lines.append(f"The fakes' mean residual spectrum is {val:.1f} (natural log power) above the real "
                             f"images' at {where}: a periodic up-sampling artefact.")
        hf = feats.azimuthal(np.fft.ifftshift(diff)[None])[0]
        tail = float(hf[-max(1, len(hf) // 4):].mean())
        if abs(tail) > 0.5:
            lines.append(f"In the highest quarter of frequencies the fakes carry {'more' if tail > 0 else 'less'} "
                         f"energy than the real images ({tail:+.1f} natural log power on average).")
    if not lines:
        lines.append("No image was called fake at this threshold.")
    return lines


def render(names: list[str], images: np.ndarray, results: list[dict], threshold: float, labels: np.ndarray,
           metrics: dict | None = None, reliability: Image.Image | None = None, title: str = "ganforge detect",
           detector_text: str = "", max_thumbs: int = 400,
           threshold_text: str = "calibrated on the held-out split") -> str:
    """The report page as a string (write it with storage.atomic)."""
    scale = max(1, 64 // max(1, images.shape[-1]))
    order = sorted(range(len(names)), key=lambda i: -results[i]["p_fake"])
    groups: dict[str, np.ndarray] = {}
    known = labels >= 0
    if known.any():
        for key, v in (("real", 0), ("fake", 1)):
            if (labels == v).any():
                groups[key] = images[labels == v]
    else:
        for key in ("real", "fake"):
            sel = np.array([r["verdict"] == key for r in results], bool)
            if sel.any():
                groups[key] = images[sel]
    spectra = {k: mean_spectrum(v) for k, v in groups.items()}
    if spectra:
        allv = np.concatenate([s.reshape(-1) for s in spectra.values()])
        lo, hi = np.percentile(allv, 1), np.percentile(allv, 99.5)
    how = "by label" if known.any() else "by verdict"
    spec_html = "".join(
        f'<figure><img src="{data_url(spectrum_image(s, lo, hi, max(2, 160 // s.shape[0])))}" alt="{k}">'
        f"<figcaption>{k} ({len(groups[k])} images, {how})</figcaption></figure>" for k, s in spectra.items())
    cards = []
    for i in order[:max_thumbs]:
        r = results[i]
        truth = {0: "real", 1: "fake"}.get(int(labels[i]), "")
        wrong = truth and truth != r["verdict"]
        cls = r["verdict"] + (" wrong" if wrong else "")
        cards.append(f'<div class="card {cls}"><img src="{data_url(thumb(images[i], scale))}">'
                     f'<b>{r["p_fake"]:.3f} {r["verdict"]}</b>'
                     + (f"<small>truth: {truth}</small>" if truth else "")
                     + f'<small title="{html.escape(names[i])}">{html.escape(_short(names[i]))}</small>'
                     f'<small>{html.escape(r["evidence"]["text"])}</small></div>')
    more = f"<p>{len(order) - max_thumbs} more not shown.</p>" if len(order) > max_thumbs else ""
    m_html = ""
    if metrics:
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" if isinstance(v, float)
                       else f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in metrics.items())
        m_html = f"<h2>Scores</h2><table>{rows}</table>"
    rel = (f'<h2>Reliability</h2><img src="{data_url(reliability)}" alt="reliability diagram">'
           if reliability is not None else "")
    expl = "".join(f"<li>{html.escape(t)}</li>" for t in explanation(results, spectra))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 8px; }}
.card {{ width: 150px; border: 2px solid #999; padding: 4px; font-size: 12px; display: flex; flex-direction: column; }}
.card.fake {{ border-color: #c33; }} .card.real {{ border-color: #393; }} .card.wrong {{ background: #fee; }}
.card img {{ image-rendering: pixelated; align-self: center; }}
.card small {{ overflow-wrap: anywhere; color: #555; }}
figure {{ display: inline-block; margin: 0 1em 0 0; }} table td {{ padding: 2px 10px; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{len(names)} images, threshold {threshold:.3f} ({html.escape(threshold_text)}).
{html.escape(detector_text)}</p>
{m_html}
<h2>What gave the fakes away</h2><ul>{expl}</ul>
<h2>Average residual spectra</h2><p>Centred log power spectra of the high-pass residual (centre = low frequencies,
edges = 1/2 cycle per pixel); bright dots away from the centre are periodic artefacts.</p>{spec_html}
{rel}
<h2>Images, most likely fake first</h2><div class="grid">{''.join(cards)}</div>{more}
</body></html>
"""


def _short(name: str, n: int = 60) -> str:
    return name if len(name) <= n else "…" + name[-n + 1:]
