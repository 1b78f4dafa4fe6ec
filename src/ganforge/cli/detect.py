"""`ganforge detect` (is this image a GAN fake?) and `ganforge detect-train` (a detector for your generator)."""
from __future__ import annotations

import sys

from ganforge.cli.common import FMT, add_device, positive, seed

KINDS = ("spectral", "cnn", "both")


def add_parser(sub) -> None:
    p = sub.add_parser("detect", formatter_class=FMT, help="tell real images from GAN fakes, with a calibrated p_fake",
                       description="Score images, folders and .zip files: per image the probability that it is "
                                   "synthetic (calibrated on the detector's held-out split), the verdict at the "
                                   "detector's threshold, and the strongest evidence (feature group and frequency "
                                   "band, or the CNN's region). With --real and --fake (or --fake-from) it reports "
                                   "AP, ROC AUC, accuracy and balanced accuracy at the threshold, and ECE.",
                       epilog="Without --detector the shipped digit detector is used (trained by "
                              "benchmarks/make_digit_detector.py on fakes of every ganforge family: small models, "
                              "default-size ones and the stylegan2-mnist preset, trained from a few dozen to 2,000 "
                              "steps, against MNIST and digits, 28x28 gray): it is meant for the bundled digit "
                              "domain only; for other "
                              "images build one with `ganforge detect-train`. Every image goes through one decode "
                              "path: first frame, gray or RGB as the detector wants, centre square, Lanczos to its "
                              "size, then a JPEG round trip at the detector's normalisation quality; unreadable "
                              "files, images under 8 px and decompression bombs are skipped with one line each.")
    p.add_argument("paths", nargs="*", default=None, metavar="PATH", help="images, folders or .zip files to score")
    p.add_argument("--detector", metavar="PATH", help="a detector made by `ganforge detect-train` (NAME, "
                                                      "NAME.safetensors or NAME.json; None: the shipped digit one)")
    p.add_argument("--threshold", type=float, help="p_fake at or above which an image is called fake (None: the "
                                                    "detector's calibrated threshold)")
    p.add_argument("--json", action="store_true", help="one JSON object per line: path, p_fake, verdict, evidence "
                                                        "(with --real/--fake also label, then one last "
                                                        "{\"evaluation\": ...} line)")
    p.add_argument("--heatmap", metavar="DIR", help="write where the evidence is, one PNG per image (image | map)")
    p.add_argument("--real", nargs="+", metavar="SRC", help="labelled real images (folder, .zip, built-in name): "
                                                             "evaluate the detector")
    p.add_argument("--fake", nargs="+", metavar="SRC", help="labelled fake images (folder, .zip)")
    p.add_argument("--fake-from", nargs="+", metavar="RUN", help="ganforge runs to sample labelled fakes from")
    p.add_argument("--n", type=positive, default=500, help="fakes sampled per --fake-from run")
    p.add_argument("--seed", type=seed, default=0, help="seed of the --fake-from latents")
    p.add_argument("--reliability", metavar="PNG", help="write the reliability diagram (with --real/--fake)")
    p.add_argument("--report", metavar="OUT.html", help="write a self-contained HTML report")
    add_device(p)
    p.set_defaults(func=cmd_detect)

    t = sub.add_parser("detect-train", formatter_class=FMT, help="build a detector for your own generator",
                       description="Train a real-vs-fake detector: spectral (azimuthal power spectrum and DCT "
                                   "statistics of the high-pass residual, logistic regression; works from a few "
                                   "dozen images), cnn (a small residual network on the image and its NPR "
                                   "up-sampling residual) or both (a logistic regression on the two calibrated "
                                   "scores). Training images are augmented (blur, JPEG, resize, crop) real and "
                                   "fake alike; a held-out split calibrates the probabilities (Platt scaling) "
                                   "and sets the threshold. Saved as NAME.safetensors + NAME.json, never a pickle.")
    t.add_argument("--real", nargs="+", required=True, metavar="SRC", help="real images: folders, .zip files or "
                                                                            "built-in names (mnist, digits, photos)")
    t.add_argument("--fake", nargs="+", metavar="SRC", help="fake images: folders or .zip files")
    t.add_argument("--fake-from", nargs="+", metavar="RUN",
                   help="ganforge runs (any family, imported StyleGAN networks too) to sample fakes from on the fly")
    t.add_argument("--out", required=True, metavar="DETECTOR", help="where to save (NAME -> NAME.safetensors "
                                                                     "and NAME.json)")
    t.add_argument("--kind", choices=KINDS, default="spectral", help="detector kind")
    t.add_argument("--spectral-mode", choices=["linear", "deviation", "either"], default="linear",
                   help="spectral model: linear (like the training fakes), deviation (unlike the real images; "
                        "carries over to generators it never saw) or either (both; the more suspicious wins)")
    t.add_argument("--n", type=positive, default=1000, help="fakes sampled per --fake-from run")
    t.add_argument("--max-images", type=positive, help="use at most this many images of each class (None: all)")
    t.add_argument("--size", type=positive, help="input size (None: the real set's own, at most 256)")
    t.add_argument("--channels", type=int, choices=[1, 3], help="1 gray or 3 RGB (None: from the real set)")
    t.add_argument("--normalize-quality", type=int, default=75, metavar="Q",
                   help="JPEG quality every input is round-tripped at, so that real JPEGs and fake PNGs look "
                        "alike (0: off; real sets saved below this quality still carry a cue)")
    t.add_argument("--holdout", type=float, default=0.25, help="share of each class held out for calibration")
    t.add_argument("--augment", type=float, default=0.5, help="probability of each augmentation (0: none)")
    t.add_argument("--cnn-steps", type=positive, default=400, help="CNN training steps")
    t.add_argument("--cnn-width", type=positive, default=8, help="CNN channels in its first stage (then x2, x4); "
                   "wider sees more but trains and scores slower")
    t.add_argument("--cnn-input", choices=["image+npr", "npr"], default="image+npr",
                   help="what the CNN sees: the image beside its up-sampling (NPR) residual, or the residual "
                        "alone, which cannot learn a generator's colours or content and so tends to carry over "
                        "better to generators it never saw")
    t.add_argument("--cnn-ensemble", type=positive, default=1, metavar="N",
                   help="train N CNNs, each from its own seed, and score with the mean of their calibrated "
                        "logits: steadier on generators none of them saw, N times slower to train and score")
    t.add_argument("--seed", type=seed, default=0, help="split, augmentation and latent seed")
    add_device(t)
    t.set_defaults(func=cmd_train)


class _Skipper:
    """Reports each unreadable input on one line of stderr and counts them."""

    def __init__(self, command: str):
        self.command, self.count = command, 0

    def __call__(self, name: str, reason: str) -> None:
        self.count += 1
        print(f"ganforge {self.command}: skipped {name}: {reason}", file=sys.stderr)

    def summary(self) -> str:
        return f"{self.count} unreadable file{'s' if self.count != 1 else ''} skipped" if self.count else ""


def _device(a) -> str:
    from ganforge.devices import resolve_device

    return str(resolve_device(a.device))


def cmd_train(a) -> int:
    from ganforge.detect.detector import TrainOptions, check_detector_paths
    from ganforge.detect.scan import build
    from ganforge.errors import ConfigError

    if not 0 < a.holdout < 1:
        raise ConfigError(f"--holdout must be between 0 and 1, got {a.holdout}")
    if not 0 <= a.normalize_quality <= 100:
        raise ConfigError(f"--normalize-quality must be 0 (off) or a JPEG quality 1-100, got {a.normalize_quality}")
    check_detector_paths(a.out)  # before any image is read or any step trained
    opts = TrainOptions(kind=a.kind, holdout=a.holdout, augment=a.augment, cnn_steps=a.cnn_steps, seed=a.seed,
                        cnn_width=a.cnn_width, cnn_input=a.cnn_input, cnn_ensemble=a.cnn_ensemble,
                        spectral_mode=a.spectral_mode, progress=True)
    skipped = _Skipper("detect-train")
    det = build(a.real, a.fake or [], a.fake_from or [], a.size, a.channels, a.normalize_quality, opts, n_per_run=a.n,
                max_images=a.max_images, device=_device(a), on_skip=skipped)
    st, js = det.save(a.out)
    s = det.info["heldout_scores"]
    nets = f" ({det.members} CNNs)" if det.members > 1 else ""
    print(f"{a.kind} detector{nets}, {det.size}x{det.size}x{det.channels}, trained on {det.info['n_real']} real and "
          f"{det.info['n_fake']} fake images" + (f" ({skipped.summary()})" if skipped.count else ""))
    print(f"held-out split: AP {s['ap']:.4f}, ROC AUC {s['roc_auc']:.4f}, balanced accuracy "
          f"{s['balanced_accuracy']:.4f} at threshold {det.threshold:.3f}, ECE {s['ece']:.4f}")
    print(f"saved {st} and {js}")
    return 0


def cmd_detect(a) -> int:
    import json

    import numpy as np

    from ganforge.detect import scan, sources
    from ganforge.detect.calibrate import reliability_png
    from ganforge.errors import ConfigError

    if (a.fake or a.fake_from) and not a.real:
        raise ConfigError("--fake/--fake-from evaluate the detector and need --real as well")
    if a.real and not (a.fake or a.fake_from):
        raise ConfigError("--real evaluates the detector and needs --fake DIR or --fake-from RUN as well")
    if not a.paths and not a.real:
        raise ConfigError("give images to score (PATH...), or --real and --fake to evaluate a detector")
    if a.reliability and not a.real:
        raise ConfigError("--reliability needs labelled images: --real and --fake")
    from ganforge.storage.images import check_image_path, check_output_dir, check_output_file

    # every output checked before any image is scored
    if a.report:
        check_output_file(a.report)
    if a.heatmap:
        check_output_dir(a.heatmap)
    if a.reliability:
        check_image_path(a.reliability)
    det = scan.load_detector(a.detector)
    if a.threshold is not None:
        if not 0 <= a.threshold <= 1:
            raise ConfigError(f"--threshold is a probability between 0 and 1, got {a.threshold}")
        det.calibration.threshold = a.threshold
    parts = []
    skipped = _Skipper("detect")
    given = "given" if a.threshold is not None else "calibrated on the held-out split"
    if a.paths:
        parts.append(scan.score(det, sources.all_items(a.paths), -1, progress=True, on_skip=skipped))
        got = parts[0]
        if not got.names:
            from ganforge.errors import DataError

            raise DataError(f"no readable images among {', '.join(a.paths)}: pass image files, folders or .zip "
                            "files of them")
        if not a.json:
            print(f"{len(got.names)} images" + (f" ({skipped.summary()})" if skipped.count else "")
                  + f", threshold {det.threshold:.3f} ({given})")
        for name, r in zip(got.names, got.results):
            if a.json:
                print(json.dumps({"path": name, **r, "threshold": det.threshold}))
            else:
                print(f"{name}  p_fake {r['p_fake']:.3f}  {r['verdict']}  ({r['evidence']['text']})")
    metrics = None
    rel = None
    if a.real:
        before = skipped.count
        real = scan.score(det, sources.all_items(a.real), 0, progress=True, on_skip=skipped)
        fake = scan.score(det, scan.fake_items(a.fake or [], a.fake_from or [], a.n, a.seed, _device(a)), 1,
                          progress=True, on_skip=skipped)
        metrics = scan.evaluate(det, real, fake)
        metrics["skipped"] = skipped.count - before
        parts += [real, fake]
        p = np.concatenate([real.p, fake.p])
        y = np.r_[np.zeros(len(real.names), int), np.ones(len(fake.names), int)]
        rel = reliability_png(p, y)
        if a.json:  # the labelled images one per line too (with their label), then the figures
            for part, label in ((real, "real"), (fake, "fake")):
                for name, r in zip(part.names, part.results):
                    print(json.dumps({"path": name, **r, "threshold": det.threshold, "label": label}))
            print(json.dumps({"evaluation": metrics}))
        else:
            print(f"{metrics['n_real']} real, {metrics['n_fake']} fake"
                  + (f" ({metrics['skipped']} unreadable skipped)" if metrics["skipped"] else "")
                  + f": AP {metrics['ap']:.4f}, ROC AUC "
                  f"{metrics['roc_auc']:.4f}, accuracy {metrics['accuracy']:.4f}, balanced accuracy "
                  f"{metrics['balanced_accuracy']:.4f} at threshold {metrics['threshold']:.3f} ({given}), "
                  f"ECE {metrics['ece']:.4f} (15 bins)")
        if a.reliability:
            from ganforge.storage.images import save_image

            save_image(rel, a.reliability)
    everything = scan.merge(parts)
    if a.heatmap and everything.names:
        _heatmaps(det, everything, a.heatmap)
    if a.report:
        from ganforge.detect.report import render
        from ganforge.storage.atomic import atomic_write_text

        page = render(everything.names, everything.images, everything.results, det.threshold, everything.labels,
                      metrics, rel, detector_text=f"Detector: {a.detector or 'the shipped digit detector'} "
                                                  f"({det.kind}).",
                      threshold_text=given)
        atomic_write_text(a.report, page)
    return 0


def _heatmaps(det, scored, out_dir) -> None:
    import re
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from ganforge.storage.images import check_output_dir, save_image

    out = check_output_dir(out_dir)
    maps = det.heatmaps(scored.images, [r["evidence"] for r in scored.results])
    scale = max(1, 128 // det.size)
    for i, (name, img, m) in enumerate(zip(scored.names, scored.images, maps)):
        pil = Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)).convert("RGB")
        heat = np.zeros((*m.shape, 3), np.uint8)
        heat[..., 0] = (m * 255).astype(np.uint8)
        heat[..., 1] = (m ** 2 * 200).astype(np.uint8)
        overlay = Image.blend(pil, Image.fromarray(heat), 0.6)
        both = Image.new("RGB", (2 * det.size, det.size))
        both.paste(pil, (0, 0))
        both.paste(overlay, (det.size, 0))
        both = both.resize((both.width * scale, both.height * scale), Image.NEAREST)
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name.replace(":", "/")).stem)[:60] or "image"
        save_image(both, Path(out, f"{i:05d}-{stem}.png"))
