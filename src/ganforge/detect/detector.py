"""A trained detector: spectral (linear model on :mod:`features`), CNN (:mod:`cnn`) or both combined.

Saved as two files beside each other, never a pickle: ``NAME.safetensors`` (the arrays: scaler and
weights of the linear model, the network's state) and ``NAME.json`` (format tag and version, kind, input
size and channels, the JPEG normalisation quality, the calibration and threshold, and how it was trained).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ganforge.detect import features as feats
from ganforge.detect.augment import random_augment
from ganforge.detect.calibrate import Calibration, fit_platt, scores, sigmoid
from ganforge.detect.decode import MIN_SIDE, normalize
from ganforge.errors import CheckpointError, DataError

FORMAT = "ganforge-detector"
FORMAT_VERSION = 1
MAX_SIZE = 1024  # input side: beyond it features and the CNN grow without the traces getting clearer
KINDS = ("spectral", "cnn", "both")
DEFAULT_QUALITY = 75  # JPEG quality every input is normalised to (see decode.py)
CNN_WIDTH = 8
MAX_ENSEMBLE = 16  # CNNs in one detector: each one is trained and run on every image


SPECTRAL_MODES = ("either", "deviation", "linear")


@dataclass
class FeatureModel:
    """One logistic regression on the spectral features: on the features as they are, or (``real_mean`` set) on
    each feature's squared distance from the real images' mean in units of their spread."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    real_mean: np.ndarray | None = None
    real_scale: np.ndarray | None = None

    def inputs(self, f: np.ndarray) -> np.ndarray:
        return f if self.real_mean is None else ((f - self.real_mean) / self.real_scale) ** 2

    def logits(self, f: np.ndarray) -> np.ndarray:
        return ((self.inputs(f) - self.mean) / self.scale) @ self.coef + self.intercept

    def contributions(self, f: np.ndarray) -> np.ndarray:
        return (self.inputs(f) - self.mean) / self.scale * self.coef


@dataclass
class Spectral:
    """The spectral detector: a ``linear`` model ("like the fakes I was shown"), a ``deviation`` model ("unlike
    the real images in this band", which also catches a generator whose fakes are off in the other direction,
    smoother where the training fakes were sharper: a linear model ranks those as more real than real images),
    or ``either``: both, each Platt-calibrated on the held-out split, and the image scores as the more
    suspicious of the two. ``linear`` is the default: it keeps the faintest cues of a known generator, and
    the file-format test holds for it. The deviation model is a model of the real set, so it needs real
    images processed exactly as the images it will score (a real set saved as JPEG and tested on PNGs moves
    it more)."""

    parts: dict[str, FeatureModel]
    part_cals: dict[str, Calibration] = field(default_factory=dict)  # one part alone: identity

    @property
    def mode(self) -> str:
        return "either" if len(self.parts) == 2 else next(iter(self.parts))

    def _cal(self, name: str) -> Calibration:
        return self.part_cals.get(name, Calibration())

    def _calibrated(self, f: np.ndarray) -> np.ndarray:
        """``[parts, N]`` calibrated logits."""
        return np.stack([self._cal(k).a * m.logits(f) + self._cal(k).b for k, m in self.parts.items()])

    def logits(self, f: np.ndarray) -> np.ndarray:
        return self._calibrated(f).max(axis=0)

    def contributions(self, f: np.ndarray) -> np.ndarray:
        """Per image and feature, the push toward "fake" of the part that gave the score."""
        pick = self._calibrated(f).argmax(axis=0)
        out = np.zeros_like(f, dtype=np.float64)
        for j, (name, m) in enumerate(self.parts.items()):
            sel = pick == j
            out[sel] = m.contributions(f[sel]) * self._cal(name).a
        return out


@dataclass
class Detector:
    kind: str
    size: int
    channels: int
    quality: int = DEFAULT_QUALITY
    calibration: Calibration = field(default_factory=Calibration)
    spectral: Spectral | None = None
    spectral_cal: Calibration | None = None
    net: Any = None  # cnn.DetectorNet
    cnn_cal: Calibration | None = None
    combiner: tuple[float, float, float] | None = None  # w_spectral, w_cnn, bias on the calibrated logits
    info: dict = field(default_factory=dict)

    @property
    def threshold(self) -> float:
        return self.calibration.threshold

    @property
    def members(self) -> int:
        """CNNs in the detector: 0 (spectral), 1, or an ensemble's size."""
        return 0 if self.net is None else len(getattr(self.net, "members", [self.net]))

    # -- scoring ----------------------------------------------------------------------------------------------
    def _parts(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Raw logits of each model on normalised uint8 ``[N, C, S, S]`` images (and spectral features)."""
        out = {}
        if self.spectral is not None:
            out["features"] = feats.extract(x)
            out["spectral"] = self.spectral.logits(out["features"])
        if self.net is not None:
            from ganforge.detect import cnn

            out["cnn"] = cnn.logits(self.net, x)
        return out

    def _combined_logit(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        ws, wc, b = self.combiner
        ls = self.spectral_cal.a * parts["spectral"] + self.spectral_cal.b
        lc = self.cnn_cal.a * parts["cnn"] + self.cnn_cal.b
        return ws * ls + wc * lc + b

    def logits(self, x: np.ndarray) -> np.ndarray:
        """One uncalibrated score per image (calibration.prob turns it into p_fake)."""
        parts = self._parts(x)
        return self._combined_logit(parts) if self.kind == "both" else parts[self.kind]

    def predict(self, x: np.ndarray) -> list[dict]:
        """Per image: p_fake, verdict at the threshold, and the strongest evidence (group, band, text)."""
        parts = self._parts(x)
        logit = self._combined_logit(parts) if self.kind == "both" else parts[self.kind]
        p = self.calibration.prob(logit)
        fake = p >= self.threshold
        ev_s = self._spectral_evidence(parts["features"], fake) if self.spectral is not None else None
        use_cnn = np.zeros(len(x), bool)
        if self.kind == "cnn":
            use_cnn[:] = True
        elif self.kind == "both":  # the model that pushed harder toward the verdict gives the evidence
            ws, wc, _ = self.combiner
            cs = ws * (self.spectral_cal.a * parts["spectral"] + self.spectral_cal.b)
            cc = wc * (self.cnn_cal.a * parts["cnn"] + self.cnn_cal.b)
            use_cnn = (cc > cs) == fake
        ev_c = dict(zip(np.flatnonzero(use_cnn), self._cnn_evidence(x[use_cnn]))) if use_cnn.any() else {}
        return [{"p_fake": float(p[i]), "verdict": "fake" if fake[i] else "real",
                 "evidence": ev_c[i] if use_cnn[i] else ev_s[i]} for i in range(len(x))]

    def _spectral_evidence(self, f: np.ndarray, fake: np.ndarray) -> list[dict]:
        lay = feats.layout(self.size, self.channels)
        keys = [g + (f", {b} band" if b else "") for g, b in zip(lay.groups, lay.bands)]
        names = sorted(set(keys))
        index = np.array([names.index(k) for k in keys])
        contrib = self.spectral.contributions(f)
        sums = np.zeros((len(f), len(names)))
        for j, k in enumerate(index):
            sums[:, k] += contrib[:, j]
        out = []
        for i in range(len(f)):
            k = int(np.argmax(sums[i]) if fake[i] else np.argmin(sums[i]))
            group, _, band = names[k].partition(", ")
            out.append({"source": "spectral", "group": group, "band": band.replace(" band", ""),
                        "text": names[k] + _band_range(band), "weight": float(sums[i, k])})
        return out

    def _cnn_evidence(self, x: np.ndarray) -> list[dict]:
        maps = self.heatmaps_cnn(x)
        out = []
        for m in maps:
            s = m.shape[0]
            y, xx = np.unravel_index(int(np.argmax(m)), m.shape)
            region = (["top", "middle", "bottom"][min(2, 3 * y // s)] + "-"
                      + ["left", "centre", "right"][min(2, 3 * xx // s)])
            out.append({"source": "cnn", "group": "CNN activation", "band": "", "region": region,
                        "text": f"CNN activation, strongest in the {region} of the image"})
        return out

    # -- heatmaps ---------------------------------------------------------------------------------------------
    def heatmaps_cnn(self, x: np.ndarray) -> np.ndarray:
        import torch

        from ganforge.detect import cnn

        self.net.eval()
        with torch.inference_mode():
            return self.net.cam(cnn.as_tensor(x)).numpy()

    def heatmaps(self, x: np.ndarray, evidence: list[dict]) -> np.ndarray:
        """Where the evidence is, ``[N, S, S]`` in 0..1: CAM for CNN evidence, else the spectral band's energy."""
        out = np.zeros((len(x), self.size, self.size))
        cnn_rows = [i for i, e in enumerate(evidence) if e["source"] == "cnn"]
        if cnn_rows:
            out[cnn_rows] = self.heatmaps_cnn(x[cnn_rows])
        for i, e in enumerate(evidence):
            if e["source"] == "spectral":
                lo, hi = next(((lo, hi) for lo, hi, n in feats.BANDS if n == e["band"]), (0.25, 0.71))
                out[i] = feats.band_map(x[i:i + 1], lo, hi, peaks_only=e["group"] == "periodic peaks")[0]
        return out

    # -- files ------------------------------------------------------------------------------------------------
    def meta(self) -> dict:
        m = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": self.kind, "size": self.size,
             "channels": self.channels, "normalize_jpeg_quality": self.quality,
             "calibration": self.calibration.to_dict(), "info": self.info}
        if self.spectral is not None:
            m["spectral"] = {"mode": self.spectral.mode, "features": len(feats.layout(self.size, self.channels)),
                             "calibration": self.spectral_cal.to_dict(),
                             "parts": {k: {"intercept": v.intercept,
                                           **({"calibration": self.spectral.part_cals[k].to_dict()}
                                              if k in self.spectral.part_cals else {})}
                                       for k, v in self.spectral.parts.items()}}
        if self.net is not None:
            m["cnn"] = {"width": self.net.width, "input": self.net.inputs, "members": self.members,
                        "calibration": self.cnn_cal.to_dict()}
        if self.combiner is not None:
            m["combiner"] = list(self.combiner)
        return m

    def save(self, path: str | Path) -> tuple[Path, Path]:
        import torch
        from safetensors.torch import save

        from ganforge.storage.atomic import atomic_write_bytes, atomic_write_text

        st, js = check_detector_paths(path)
        tensors = {}
        if self.spectral is not None:
            for name, part in self.spectral.parts.items():
                for k in PART_ARRAYS[name]:
                    tensors[_part_key(name, k)] = torch.from_numpy(np.asarray(getattr(part, k), np.float64))
        if self.net is not None:
            state = self.net.state_dict()
            tensors.update({f"cnn.{k}": v.detach().cpu().contiguous().clone() for k, v in state.items()})
        meta = json.dumps(self.meta(), indent=2) + "\n"
        atomic_write_bytes(st, save(tensors, metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION),
                                                       "kind": self.kind}))
        try:
            atomic_write_text(js, meta)
        except BaseException:  # never leave weights beside no (or an old) description
            st.unlink(missing_ok=True)
            raise
        return st, js


def check_detector_paths(path: str | Path) -> tuple[Path, Path]:
    """The two files a detector is saved to, each checked to be writable (before any training)."""
    from ganforge.storage.images import check_output_file

    st, js = detector_paths(path)
    return check_output_file(st), check_output_file(js)


def detector_paths(path: str | Path) -> tuple[Path, Path]:
    """NAME, NAME.safetensors or NAME.json -> (NAME.safetensors, NAME.json)."""
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def shape_problem(size: int, channels: int, quality: int) -> str | None:
    """What is wrong with a detector's input shape and normalisation, or None."""
    if not MIN_SIDE <= size <= MAX_SIZE:
        return f"input size {size} is not between {MIN_SIDE} and {MAX_SIZE}"
    if channels not in (1, 3):
        return f"{channels} channels: a detector reads 1 (gray) or 3 (RGB)"
    if not 0 <= quality <= 100:
        return f"normalisation quality {quality} is not 0 (off) or a JPEG quality 1-100"
    return None


def load(path: str | Path) -> Detector:
    """Read a detector; any file that is not one this ganforge can read is a one-line CheckpointError."""
    if Path(path).is_file() and Path(path).suffix not in (".safetensors", ".json"):
        raise CheckpointError(f"{path} is not a detector: a detector is NAME.safetensors + NAME.json made by "
                              "`ganforge detect-train`")
    st, js = detector_paths(path)
    run = Path(path) if Path(path).is_dir() else st.parent
    if not js.exists() and (run / "config.json").is_file():
        raise CheckpointError(f"{path} is a ganforge training run, not a detector: pass it as `--fake-from "
                              f"{run}`, or make a detector from it with `ganforge detect-train --fake-from {run}`")
    if not st.exists() and not js.exists():
        raise CheckpointError(f"no detector at {path}: make one with `ganforge detect-train`")
    if not js.exists():
        raise CheckpointError(f"{st} has no {js.name} beside it: a detector is the .safetensors and its .json")
    try:
        meta = json.loads(js.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{js} is not readable detector JSON ({e}): retrain with `ganforge detect-train`") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{js} is not a ganforge detector (no '{FORMAT}' tag)")
    version = meta.get("format_version")
    if isinstance(version, bool) or version != FORMAT_VERSION:  # True == 1 in Python
        newer = isinstance(version, int) and version > FORMAT_VERSION
        raise CheckpointError(f"{js} is detector format version {version!r}, this ganforge reads version "
                              f"{FORMAT_VERSION}: " + ("upgrade ganforge" if newer else
                                                       "retrain it with `ganforge detect-train`"))
    kind = meta.get("kind")
    if kind not in KINDS:
        raise CheckpointError(f"{js} is a detector of unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        tensors = load_file(str(st))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{st} is not a readable detector file (truncated or foreign: {e})") from e
    try:
        det = Detector(kind, int(meta["size"]), int(meta["channels"]), int(meta["normalize_jpeg_quality"]),
                       Calibration.from_dict(meta["calibration"]), info=meta.get("info", {}))
        problem = shape_problem(det.size, det.channels, det.quality)
        if problem:
            raise ValueError(problem)
        if kind in ("spectral", "both"):
            det.spectral = _load_spectral(meta["spectral"], tensors, len(feats.layout(det.size, det.channels)))
            det.spectral_cal = Calibration.from_dict(meta["spectral"]["calibration"])
        if kind in ("cnn", "both"):
            from ganforge.detect.cnn import DetectorNet, Ensemble

            shape = (det.channels, int(meta["cnn"]["width"]), meta["cnn"].get("input", "image+npr"))
            n = int(meta["cnn"].get("members", 1))  # made before ensembles: one net
            if not 1 <= n <= MAX_ENSEMBLE:
                raise ValueError(f"{n} CNN members")
            det.net = DetectorNet(*shape) if n == 1 else Ensemble([DetectorNet(*shape) for _ in range(n)])
            state = {k[4:]: v for k, v in tensors.items() if k.startswith("cnn.")}
            det.net.load_state_dict(state)
            det.net.eval()
            det.cnn_cal = Calibration.from_dict(meta["cnn"]["calibration"])
        if kind == "both":
            combiner = meta["combiner"]
            if not isinstance(combiner, list) or len(combiner) != 3:
                raise ValueError("combiner is not [w_spectral, w_cnn, bias]")
            det.combiner = tuple(float(v) for v in combiner)
            if not all(np.isfinite(det.combiner)):
                raise ValueError(f"combiner {list(det.combiner)} is not finite")
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        if isinstance(e, KeyError):  # a field of the JSON or an array of the weights
            reason = f"{e.args[0]!r} is missing"
        else:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{st} does not match its {js.name} ({reason}): retrain with `ganforge detect-train`"
                              ) from e
    return det


# The arrays of each spectral part; the linear part's keys are those of detectors made before the modes.
PART_ARRAYS = {"linear": ("mean", "scale", "coef"),
               "deviation": ("mean", "scale", "coef", "real_mean", "real_scale")}


def _part_key(name: str, array: str) -> str:
    return f"spectral.{array}" if name == "linear" else f"spectral.{name}.{array}"


def _load_spectral(meta: dict, tensors: dict, n_features: int) -> Spectral:
    if "parts" not in meta:  # made before the modes: one linear model
        meta = {"parts": {"linear": {"intercept": meta["intercept"]}}}
    names = list(meta["parts"])
    if not names or any(n not in PART_ARRAYS for n in names) or len(names) != len(set(names)):
        raise ValueError(f"unknown spectral parts {names}")
    parts, cals = {}, {}
    for name in names:
        arrays = [tensors[_part_key(name, k)].numpy() for k in PART_ARRAYS[name]]
        if any(a.shape != (n_features,) for a in arrays):
            raise ValueError("its spectral weights do not fit its input size")
        m = meta["parts"][name]
        parts[name] = FeatureModel(*arrays[:3], float(m["intercept"]), *arrays[3:])
        if "calibration" in m:
            cals[name] = Calibration.from_dict(m["calibration"])
    return Spectral(parts, cals)


def _band_range(band: str) -> str:
    name = band.replace(" band", "")
    for lo, hi, n in feats.BANDS:
        if n == name:
            return f" ({lo:g}-{min(hi, 0.5):g} cycles/px)"
    return ""


# -- training -----------------------------------------------------------------------------------------------------
@dataclass
class TrainOptions:
    kind: str = "spectral"
    holdout: float = 0.25  # share of each class kept out of fitting, for calibration and the threshold
    augment: float = 0.5  # probability of each augmentation op (0 = off)
    augment_copies: int = 1  # spectral: augmented copies of each training image added to the clean one
    cnn_steps: int = 400
    cnn_batch: int = 32
    cnn_width: int = CNN_WIDTH
    cnn_input: str = "image+npr"  # or "npr": the residual alone (see cnn.DetectorNet)
    cnn_ensemble: int = 1  # CNNs trained, each from its own seed; more than one: a cnn.Ensemble
    C: float = 0.5  # inverse L2 strength of the spectral logistic regression
    spectral_mode: str = "linear"  # see Spectral
    seed: int = 0
    progress: bool = False


def split(n: int, holdout: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    idx = rng.permutation(n)
    k = max(1, int(round(n * holdout))) if n > 1 else 0
    return idx[k:], idx[:k]


def check_options(opts: TrainOptions) -> None:
    """Training options that would fail or mean nothing, as one-line DataErrors (before any image is read)."""
    from ganforge.detect.cnn import INPUTS

    if opts.kind not in KINDS:
        raise DataError(f"unknown detector kind {opts.kind!r}: choose one of {', '.join(KINDS)}")
    if not 0 <= opts.augment <= 1:
        raise DataError(f"augment is the probability of each augmentation, between 0 and 1, got {opts.augment}")
    if opts.cnn_input not in INPUTS:
        raise DataError(f"unknown CNN input {opts.cnn_input!r}: choose one of {', '.join(INPUTS)}")
    if not 1 <= opts.cnn_ensemble <= MAX_ENSEMBLE:
        raise DataError(f"a CNN ensemble has 1 to {MAX_ENSEMBLE} members, got {opts.cnn_ensemble}")


def train(real: np.ndarray, fake: np.ndarray, size: int, channels: int, quality: int = DEFAULT_QUALITY,
          opts: TrainOptions | None = None, info: dict | None = None) -> Detector:
    """Fit a detector on decoded, not yet normalised uint8 ``[N, C, S, S]`` real and fake images."""
    opts = opts or TrainOptions()
    check_options(opts)
    for name, arr in (("real", real), ("fake", fake)):
        if len(arr) < 4:
            raise DataError(f"{len(arr)} {name} images is too few to train and calibrate a detector: give at "
                            "least 4 of each (a few dozen for a useful one)")
    problem = shape_problem(size, channels, quality)
    if problem:
        raise DataError(f"cannot train a detector: {problem}")
    rng = np.random.default_rng(opts.seed)
    x = np.concatenate([real, fake])
    y = np.concatenate([np.zeros(len(real), np.int64), np.ones(len(fake), np.int64)])
    fr, hr = split(len(real), opts.holdout, rng)
    ff, hf = split(len(fake), opts.holdout, rng)
    fit_idx = np.concatenate([fr, len(real) + ff])
    held_idx = np.concatenate([hr, len(real) + hf])
    norm = lambda arr: np.stack([normalize(a, quality) for a in arr])
    held_x = norm(x[held_idx])
    det = Detector(opts.kind, size, channels, quality, info=dict(info or {}))

    if opts.kind in ("spectral", "both"):
        copies = [norm(x[fit_idx])]
        for _ in range(opts.augment_copies if opts.augment > 0 else 0):
            copies.append(norm(np.stack([random_augment(a, rng, opts.augment) for a in x[fit_idx]])))
        fx = np.concatenate([feats.extract(c) for c in copies])
        fy = np.tile(y[fit_idx], len(copies))
        held_f = feats.extract(held_x)
        det.spectral = fit_spectral(fx, fy, opts.C, opts.spectral_mode)
        if len(det.spectral.parts) > 1:  # put the parts on one scale before taking the larger
            det.spectral.part_cals = {k: fit_platt(m.logits(held_f), y[held_idx])
                                      for k, m in det.spectral.parts.items()}
        det.spectral_cal = fit_platt(det.spectral.logits(held_f), y[held_idx])
    if opts.kind in ("cnn", "both"):
        import torch

        from ganforge.detect import cnn

        pool_x, pool_y = x[fit_idx], y[fit_idx]

        def batch(step: int):
            pick = rng.integers(0, len(pool_x), size=opts.cnn_batch)
            imgs = [random_augment(a, rng, opts.augment) if opts.augment > 0 else a for a in pool_x[pick]]
            return norm(np.stack(imgs)), pool_y[pick]

        members = []
        for k in range(opts.cnn_ensemble):  # member k: seed + k, and the batches the shared rng draws next
            torch.manual_seed(opts.seed + k)
            net = cnn.DetectorNet(channels, opts.cnn_width, opts.cnn_input)
            desc = "training CNN detector" + (f" {k + 1}/{opts.cnn_ensemble}" if opts.cnn_ensemble > 1 else "")
            members.append(cnn.train(net, batch, opts.cnn_steps, progress=opts.progress, desc=desc))
        if len(members) == 1:
            det.net = members[0]
        else:
            det.net = cnn.Ensemble(members)
            cals = [fit_platt(cnn.logits(m, held_x), y[held_idx]) for m in members]
            det.net.scale[:] = torch.tensor([c.a for c in cals], dtype=torch.float64)
            det.net.shift[:] = torch.tensor([c.b for c in cals], dtype=torch.float64)
        det.cnn_cal = fit_platt(cnn.logits(det.net, held_x), y[held_idx])
    parts = det._parts(held_x)
    if opts.kind == "both":
        from sklearn.linear_model import LogisticRegression

        ls = det.spectral_cal.a * parts["spectral"] + det.spectral_cal.b
        lc = det.cnn_cal.a * parts["cnn"] + det.cnn_cal.b
        lr = LogisticRegression(C=1.0).fit(np.stack([ls, lc], axis=1), y[held_idx])
        det.combiner = (float(lr.coef_[0, 0]), float(lr.coef_[0, 1]), float(lr.intercept_[0]))
        det.calibration = Calibration(1.0, 0.0)
        from ganforge.detect.calibrate import best_threshold

        det.calibration.threshold = best_threshold(sigmoid(det._combined_logit(parts)), y[held_idx])
    else:
        det.calibration = det.spectral_cal if opts.kind == "spectral" else det.cnn_cal
    p = det.calibration.prob(det._combined_logit(parts) if opts.kind == "both" else parts[opts.kind])
    det.info.update({"n_real": int(len(real)), "n_fake": int(len(fake)), "holdout": opts.holdout,
                     "augment": opts.augment, "seed": opts.seed,
                     "heldout_scores": scores(p, y[held_idx], det.threshold)})
    return det


def _spread(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, scale = f.mean(axis=0), f.std(axis=0)
    scale[scale < 1e-9] = 1.0
    return mean, scale


def fit_feature_model(f: np.ndarray, y: np.ndarray, C: float, deviation: bool) -> FeatureModel:
    """Features ``f`` of real (``y`` 0) and fake (1) images -> one logistic regression (see FeatureModel)."""
    from sklearn.linear_model import LogisticRegression

    n = f.shape[1]
    model = FeatureModel(np.zeros(n), np.ones(n), np.zeros(n), 0.0, *(_spread(f[y == 0]) if deviation else ()))
    inputs = model.inputs(f)
    model.mean, model.scale = _spread(inputs)
    lr = LogisticRegression(C=C, max_iter=3000).fit((inputs - model.mean) / model.scale, y)
    model.coef, model.intercept = lr.coef_[0].astype(np.float64), float(lr.intercept_[0])
    return model


def fit_spectral(f: np.ndarray, y: np.ndarray, C: float, mode: str = "linear") -> Spectral:
    """The spectral model's parts for ``mode``; with two parts their calibrations are fit by the caller."""
    if mode not in SPECTRAL_MODES:
        raise DataError(f"unknown spectral mode {mode!r}: choose one of {', '.join(SPECTRAL_MODES)}")
    names = ("linear", "deviation") if mode == "either" else (mode,)
    return Spectral({k: fit_feature_model(f, y, C, k == "deviation") for k in names})
