"""Editing directions in a generator's latent space: walk along one and the image thickens, slants or ages.

Three ways to find them (:func:`find_directions`):

* ``sefa`` (Shen & Zhou, 2021): closed form, from the weights alone. The first layers that read the
  latent, stacked as one matrix ``A`` (rows scaled to unit norm, as in the paper's code), move the image
  most along the top eigenvectors of ``AᵀA``. StyleGAN2 in w: the affine (style) weights of the chosen
  layers' convolutions (the last w, read only by the final toRGB, uses that layer's affine); in z (and
  every other family): the first linear layer acting on z.
* ``pca`` (GANSpace, Härkönen et al., 2020): principal components of sampled w (or z), the largest first.
* ``svm`` (InterFaceGAN, Shen et al., 2020): render seeds, score each image (a labels CSV, a built-in
  attribute from :mod:`ganforge.edit.attributes`, or a classifier), fit a linear SVM between the top and the
  bottom ``fraction`` of the scores; the unit normal of its boundary, pointing to higher scores, is the
  direction. ``conditions`` are other attributes fitted the same way and projected out (the paper's
  conditional manipulation), so that thickening does not also slant.

Conditional generators: seed ``s`` draws class ``s mod num_classes`` (or the one class asked for). In w,
where the class moves w itself, latents are centred on their class's mean and the SVM picks the top and
bottom scores within each class, so that a direction changes the attribute, not the class.

A direction file (``.npz``, :meth:`Directions.save`) holds the unit vectors, their names, the standard
deviation of the sampled latents' projection on each (edit strengths are in these units) and the
network's identity: family, z_dim, w_dim, num_ws, a fingerprint of its architecture (its weights' names
and shapes), which :func:`load_directions` checks, so that directions are never applied to a network of
another architecture, and a hash of the weights' values: directions found on other weights of the same
architecture (another run, or this run further trained) are accepted with a warning, since they may no longer
point where their names say.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ganforge.errors import ConfigError, GenerateError, OutputPathError, StyleGANError, warn
from ganforge.generate.sampling import MAX_SEED, generate, latents, truncates_in_w
from ganforge.generate.stylegan import map_to_w, style_layers

METHODS = ("sefa", "pca", "svm")
SPACES = ("z", "w")
FORMAT = "ganforge-directions"
FORMAT_VERSION = 1
STD_SAMPLES = 2000  # latents whose projections give a closed-form direction its unit of strength
DEFAULT_FRACTION = 0.25


@dataclass
class Directions:
    """Unit directions ``vectors [k, dim]`` in ``space`` ('z' or 'w'), named, each with the standard
    deviation ``std`` of the sampled latents along it; ``layers`` are the w layers they were found for
    (and edit by default; None in z). ``values`` are the eigenvalues (sefa), explained variances (pca) or
    training accuracies (svm); ``network`` is the identity of the generator they belong to."""

    vectors: np.ndarray
    names: list[str]
    std: np.ndarray
    space: str
    method: str
    network: dict
    layers: list[int] | None = None
    values: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def index(self, name: str) -> int:
        if name not in self.names:
            raise GenerateError(f"no direction '{name}' in {self.info.get('path', 'these directions')}; "
                                f"it holds: {', '.join(self.names)}")
        return self.names.index(name)

    def vector(self, name: str) -> torch.Tensor:
        return torch.from_numpy(self.vectors[self.index(name)].astype(np.float32))

    def std_of(self, name: str) -> float:
        return float(self.std[self.index(name)])

    def save(self, path: str | Path) -> Path:
        """Write the directions atomically as ``.npz`` (arrays, and the rest as one JSON string)."""
        from ganforge.storage.atomic import atomic_write_with

        path = Path(path)
        if path.suffix.lower() != ".npz":
            raise OutputPathError(f"a directions file is .npz, got {path}")
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "names": self.names, "space": self.space,
                "method": self.method, "layers": self.layers, "network": self.network, "info": self.info}
        arrays = {"vectors": self.vectors.astype(np.float32), "std": self.std.astype(np.float32),
                  "values": (self.values if self.values is not None else np.zeros(len(self.names))).astype(
                      np.float32), "meta": np.array(json.dumps(meta))}
        atomic_write_with(path, lambda f: np.savez(f, **arrays))
        return path


# ----------------------------------------------------------------- the network's identity
def fingerprint(G: nn.Module) -> str:
    """A short hash of the names and shapes of G's weights: equal for networks of one architecture."""
    text = ";".join(f"{k}:{list(v.shape)}" for k, v in sorted(G.state_dict().items()))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def weights_hash(G: nn.Module) -> str:
    """A short hash of G's weight values: equal only for the very same weights."""
    h = hashlib.sha256()
    for k, v in sorted(G.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def is_style_based(G) -> bool:
    return truncates_in_w(G) and hasattr(G, "mapping") and hasattr(G, "synthesis")


def network_identity(G, family: str | None = None, weights: bool = True) -> dict:
    """What a directions file records of its network; ``weights=False`` leaves out the hash of the weight
    values, the one part that reads every weight."""
    style = is_style_based(G)
    return {"family": family or type(G).__name__, "z_dim": int(G.z_dim), "num_classes": int(G.num_classes or 0),
            "w_dim": int(G.w_dim) if style else None, "num_ws": int(G.num_ws) if style else None,
            "fingerprint": fingerprint(G), **({"weights": weights_hash(G)} if weights else {})}


def _describe(net: dict) -> str:
    w = f", w {net['w_dim']} x {net['num_ws']} layers" if net.get("w_dim") else ""
    return f"{net.get('family')}: z {net.get('z_dim')}{w}, architecture fingerprint {net.get('fingerprint')}"


def space_dim(G, space: str) -> int:
    return int(G.w_dim if space == "w" else G.z_dim)


def resolve_space(G, space: str | None, family: str | None = None) -> str:
    """'w' by default for style-based networks, 'z' otherwise; 'w' only where there is a w space."""
    if space is None:
        return "w" if is_style_based(G) else "z"
    if space not in SPACES:
        raise ConfigError(f"space must be z or w, got '{space}'")
    if space == "w" and not is_style_based(G):
        raise StyleGANError(f"w space needs a StyleGAN2 run (family stylegan2); this run is "
                            f"{family or type(G).__name__}: use --space z")
    return space


def resolve_layers(G, space: str, layers: str | Sequence[int] | None, family: str | None = None) -> list[int] | None:
    """The w layers as a sorted list (all of them by default); None in z, where there are no layers."""
    if space == "z":
        if layers is not None:
            what = "these are z-space directions" if is_style_based(G) else f"this run is {family or type(G).__name__}"
            raise StyleGANError(f"--layers picks w layers of a StyleGAN2 run; {what}: drop --layers")
        return None
    if layers is None:
        return list(range(G.num_ws))
    if isinstance(layers, str):
        return style_layers(G, layers)
    out = sorted({int(i) for i in layers})
    bad = [i for i in out if not 0 <= i < G.num_ws]
    if bad or not out:
        raise StyleGANError(f"layer {bad[0] if bad else '(none)'} is out of range: this model has layers "
                            f"0..{G.num_ws - 1}")
    return out


# ----------------------------------------------------------------- SeFa
def style_affines(G) -> dict[int, list[nn.Module]]:
    """w index -> the affine layers that turn that w into styles, in the order the synthesis reads them."""
    out: dict[int, list[nn.Module]] = {}
    w_idx = 0
    for res in G.synthesis.block_resolutions:
        block = getattr(G.synthesis, f"b{res}")
        convs = [getattr(block, n) for n in ("conv0", "conv1") if hasattr(block, n)]
        for j, conv in enumerate(convs):
            out.setdefault(w_idx + j, []).append(conv.affine)
        if hasattr(block, "torgb"):
            out.setdefault(w_idx + len(convs), []).append(block.torgb.affine)
        w_idx += len(convs)
    return out


def first_z_weight(G) -> torch.Tensor:
    """``[out, z_dim]``: the part of the first layer's weight that multiplies z (a linear layer, or a
    transposed convolution reading z as a 1x1 map)."""
    z_dim = G.z_dim
    if is_style_based(G):
        return G.mapping.fc0.weight[:, :z_dim]
    for m in G.modules():
        if isinstance(m, nn.Embedding):
            continue
        w = getattr(m, "weight", None)
        if not isinstance(w, torch.Tensor):
            continue
        if isinstance(m, nn.ConvTranspose2d) and w.shape[0] >= z_dim:
            return w[:z_dim].flatten(1).t()
        if w.ndim == 2 and w.shape[1] >= z_dim:
            return w[:, :z_dim]
    raise ConfigError("SeFa needs a first linear layer acting on z, and this generator has none: "
                      "use --method pca or svm")


def sefa_matrix(G, space: str, layers: list[int] | None) -> torch.Tensor:
    """The matrix ``A`` whose ``AᵀA`` SeFa decomposes: rows are the weights of single output units, each
    scaled to unit norm (which also removes per-layer gains)."""
    with torch.no_grad():
        if space == "w":
            by_layer = style_affines(G)
            chosen = [i for i in layers if i in by_layer]
            convs = [m for i in chosen for m in by_layer[i] if not _is_torgb_affine(G, m)]
            mods = convs or [m for i in chosen for m in by_layer[i]]
            A = torch.cat([m.weight.detach().float() for m in mods])
        else:
            A = first_z_weight(G).detach().float()
        return A / A.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _is_torgb_affine(G, m) -> bool:
    return any(getattr(b, "torgb", None) is not None and b.torgb.affine is m
               for b in (getattr(G.synthesis, f"b{r}") for r in G.synthesis.block_resolutions))


def sefa(G, space: str, layers: list[int] | None, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(top ``k`` unit eigenvectors of AᵀA as rows, their eigenvalues), largest first."""
    A = sefa_matrix(G, space, layers).double()
    values, vectors = torch.linalg.eigh(A.t() @ A)  # ascending
    order = torch.argsort(values, descending=True)[:k]
    return vectors[:, order].t().float(), values[order].float()


# ----------------------------------------------------------------- sampling
def seed_classes(G, seeds: Sequence[int], class_index: int | None) -> torch.Tensor | None:
    """Seed s draws class ``s mod num_classes`` (or ``class_index``); None for unconditional networks."""
    if not G.num_classes:
        if class_index is not None:
            raise GenerateError("this model is unconditional; --class needs a run of a conditional family "
                                "(cdcgan, cstylegan2)")
        return None
    if class_index is not None:
        if not 0 <= class_index < G.num_classes:
            raise GenerateError(f"class {class_index} is out of range: this model has classes "
                                f"0..{G.num_classes - 1}")
        return torch.full((len(seeds),), class_index, dtype=torch.long)
    return torch.as_tensor(list(seeds), dtype=torch.long) % G.num_classes


def seed_z(G, seeds: Sequence[int]) -> torch.Tensor:
    """One z per seed, as ``ganforge generate --n 1 --seed s`` draws it."""
    return torch.cat([latents(G, 1, int(s)) for s in seeds]) if len(seeds) else torch.empty(0, G.z_dim)


def to_space(G, z: torch.Tensor, c: torch.Tensor | None, space: str, batch_size: int = 1024) -> torch.Tensor:
    """Latents ``[n, dim]`` in ``space``: z itself, or the (unmixed) mapped w."""
    if space == "z":
        return z.float()
    return torch.cat([map_to_w(G, z[i:i + batch_size], None if c is None else c[i:i + batch_size])[:, 0].cpu()
                      for i in range(0, len(z), batch_size)])


def class_centred(x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    """``x`` minus its class's mean (the whole mean without classes)."""
    if c is None:
        return x - x.mean(0)
    out = x.clone()
    for k in c.unique():
        m = c == k
        out[m] = x[m] - x[m].mean(0)
    return out


def centre_by_class(G, space: str, c: torch.Tensor | None) -> torch.Tensor | None:
    """The classes to centre on: in w of a conditional network (the class moves w); else None."""
    return c if space == "w" and G.num_classes else None


def projection_std(x: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    return (x.double() @ vectors.double().t()).std(dim=0).float()


# ----------------------------------------------------------------- labels
def read_labels(path: str | Path) -> tuple[list[int], dict[str, np.ndarray]]:
    """A labels CSV: ``seed,score`` rows (more score columns allowed), with an optional header row naming
    the columns (``seed,age,glasses``); without one they are ``score`` (or ``score1``, ``score2``, ...).
    Returns (seeds, column name -> scores)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"labels file {path} is a folder: pass a CSV of seed,score rows (a folder of images "
                          "per label goes to --classifier)")
    if not path.is_file():
        raise ConfigError(f"labels file {path} not found: pass a CSV of seed,score rows")
    data = path.read_bytes()
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # Excel's "Unicode text", PowerShell's default
        raise ConfigError(f"{path} is UTF-16 text: save it as a UTF-8 CSV of seed,score rows")
    if b"\0" in data:
        raise ConfigError(f"{path} is not a text file (it holds NUL bytes): pass a CSV of seed,score rows")
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        text = data[bom:].decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not UTF-8 text (byte {bom + e.start}): save it as a UTF-8 CSV of "
                          "seed,score rows") from e
    rows = [(i, r) for i, r in enumerate(csv.reader(io.StringIO(text, newline="")), start=1)
            if r and any(v.strip() for v in r)]
    if not rows:
        raise ConfigError(f"{path} holds no rows: write one seed,score row per labelled image")
    head_line, first = rows[0]
    header = None
    if not first[0].strip().lstrip("-").isdigit():
        header = [v.strip() for v in first]
        rows = rows[1:]
        if len(header) < 2:
            raise ConfigError(f"{path} row {head_line}: a header needs a seed column and at least one score column")
        if not all(header[1:]):
            raise ConfigError(f"{path} row {head_line}: score column {header[1:].index('') + 2} has no name: "
                              "name every column of the header")
        repeated = sorted({h for h in header[1:] if header[1:].count(h) > 1})
        if repeated:
            raise ConfigError(f"{path} row {head_line}: column {', '.join(repeated)} appears more than once: give "
                              "each score column its own name")
    ncols = len(header) if header else len(first)
    if ncols < 2:
        raise ConfigError(f"{path} row {rows[0][0]}: expected seed,score, got '{','.join(first)}'")
    names = header[1:] if header else (["score"] if ncols == 2 else [f"score{i}" for i in range(1, ncols)])
    seeds: list[int] = []
    values: list[list[float]] = []
    where: dict[int, int] = {}
    for line, row in rows:
        if len(row) != ncols:
            raise ConfigError(f"{path} row {line}: expected {ncols} fields ({','.join(['seed'] + names)}), "
                              f"got {len(row)}")
        try:
            seed = int(row[0])
        except ValueError:
            raise ConfigError(f"{path} row {line}: seed '{row[0].strip()}' is not a whole number") from None
        if not 0 <= seed <= MAX_SEED:
            raise ConfigError(f"{path} row {line}: seed {seed} does not exist: seeds are whole numbers from 0 to "
                              f"{MAX_SEED} (seed s is the image `ganforge generate RUN --n 1 --seed s` draws)")
        if seed in where:
            raise ConfigError(f"{path} row {line}: seed {seed} is labelled twice (first in row {where[seed]})")
        where[seed] = line
        try:
            scores = [float(v) for v in row[1:]]
        except ValueError:
            raise ConfigError(f"{path} row {line}: scores must be numbers, got '{','.join(row[1:])}'") from None
        if not all(np.isfinite(scores)):
            raise ConfigError(f"{path} row {line}: scores must be finite numbers, got '{','.join(row[1:])}'")
        seeds.append(seed)
        values.append(scores)
    if len(seeds) < 4:
        raise ConfigError(f"{path} labels {len(seeds)} seeds; an SVM needs at least 4 (more is better: hundreds)")
    arr = np.asarray(values, dtype=np.float64)
    return seeds, {name: arr[:, j] for j, name in enumerate(names)}


# ----------------------------------------------------------------- SVM
def fit_svm(x: torch.Tensor, scores: np.ndarray, fraction: float = DEFAULT_FRACTION,
            groups: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
    """(unit normal toward higher scores, training accuracy) of a linear SVM between the top and bottom
    ``fraction`` of ``scores`` (within each of ``groups`` when given)."""
    from sklearn.svm import LinearSVC

    if not 0 < fraction <= 0.5:
        raise ConfigError(f"fraction must be in (0, 0.5], got {fraction}")
    scores = np.asarray(scores, dtype=np.float64)
    group_ids = np.zeros(len(scores), int) if groups is None else groups.numpy()
    pick, label = [], []
    for g in np.unique(group_ids):
        idx = np.flatnonzero(group_ids == g)
        n = max(1, int(round(len(idx) * fraction)))
        if len(idx) < 2:
            continue
        order = idx[np.argsort(scores[idx], kind="stable")]
        pick += [order[:n], order[-n:]]
        label += [np.zeros(n), np.ones(n)]
    if not pick:
        raise ConfigError("too few samples to fit a direction: use more seeds (--n)")
    sel, y = np.concatenate(pick), np.concatenate(label)
    if np.ptp(scores[sel]) == 0:
        raise ConfigError("every sample has the same score, so no direction separates them: check the labels "
                          "or the classifier")
    X = x.double().numpy()[sel]
    svm = LinearSVC(C=1.0, dual=False, max_iter=5000).fit(X, y)  # primal: fast for many samples, few dims
    normal = torch.from_numpy(svm.coef_[0].copy()).float()
    return normal / normal.norm().clamp_min(1e-12), float(svm.score(X, y))


def project_out(direction: torch.Tensor, others: Sequence[torch.Tensor]) -> torch.Tensor:
    """``direction`` without its components along ``others`` (InterFaceGAN's conditional manipulation:
    the projection onto the orthogonal complement of their span), at unit norm."""
    if not len(others):
        return direction
    basis, _ = torch.linalg.qr(torch.stack(list(others)).double().t())  # orthonormal columns spanning others
    d = direction.double()
    d = d - basis @ (basis.t() @ d)
    norm = d.norm()
    if norm < 1e-6:
        raise ConfigError("the direction lies in the span of the conditions: nothing is left after projecting "
                          "them out; drop a condition")
    return (d / norm).float()


# ----------------------------------------------------------------- one entry point
Scorer = Callable[[torch.Tensor], np.ndarray]


def find_directions(G, method: str, *, space: str | None = None, layers: str | Sequence[int] | None = None,
                    k: int = 10, n: int = 10000, seed: int = 0, attribute: str | None = None,
                    labels: str | Path | tuple[list[int], dict[str, np.ndarray]] | None = None,
                    classifier: Scorer | None = None, classifier_name: str = "classifier",
                    conditions: Sequence[str] = (), name: str | None = None, fraction: float = DEFAULT_FRACTION,
                    class_index: int | None = None, family: str | None = None, crop: int = 0,
                    batch_size: int = 256, log: Callable[[str], None] | None = None) -> Directions:
    """Find editing directions in ``G``'s z or w space (see the module notes).

    sefa/pca: the top ``k`` directions (``sefa0``.., ``pca0``..); pca samples ``n`` latents. svm: one
    direction fitted on ``n`` seeds from ``seed`` scored by ``attribute`` (a built-in one, or a column of
    ``labels``), ``labels`` (a CSV path or :func:`read_labels`' result; its seeds are used) or
    ``classifier`` (images -> scores), named ``name`` (default: the attribute); with ``conditions`` (built-in
    attributes or label columns) the file also holds ``NAME-plain`` (before projecting them out) and each
    condition's own direction. ``crop`` strips a border the run padded its data with before measuring.
    """
    from ganforge.edit import attributes

    if method not in METHODS:
        raise ConfigError(f"unknown method '{method}'; choose one of {', '.join(METHODS)}")
    space = resolve_space(G, space, family)
    layer_list = resolve_layers(G, space, layers, family)
    if k < 1 or n < 2:
        raise ConfigError(f"need k >= 1 directions and n >= 2 samples, got k={k}, n={n}")
    if method != "svm" and (attribute or labels is not None or classifier is not None or conditions):
        raise ConfigError(f"--attribute, --labels, --classifier and --condition are for --method svm, not {method}")
    info: dict = {"seed": seed}
    dim = space_dim(G, space)

    if method == "sefa":
        vectors, values = sefa(G, space, layer_list, min(k, dim))
        m = min(n, STD_SAMPLES)  # only for the unit of strength: one batch of latents is enough (and fast)
        c = seed_classes(G, range(m), class_index)
        x = to_space(G, latents(G, m, seed), c, space)
        std = projection_std(class_centred(x, centre_by_class(G, space, c)), vectors)
        return Directions(vectors.numpy(), [f"sefa{i}" for i in range(len(vectors))], std.numpy(), space, method,
                          network_identity(G, family), layer_list, values.numpy(), info | {"n": m})

    if method == "pca":
        seeds = list(range(seed, seed + n))
        c = seed_classes(G, seeds, class_index)
        x = class_centred(to_space(G, seed_z(G, seeds), c, space), centre_by_class(G, space, c)).double()
        _, s, vh = torch.linalg.svd(x - x.mean(0), full_matrices=False)
        var = s.square() / (len(x) - 1)
        rank = int((s > s[0] * 1e-6).sum()) if len(s) and s[0] > 0 else 0  # n samples span at most n - 1
        kk = min(k, dim, rank)
        if kk == 0:
            raise ConfigError(f"the {n} sampled latents do not vary: PCA needs --n of at least 2 distinct samples")
        if kk < min(k, dim):
            warn(f"PCA found {kk} direction(s), not {k}: {n} samples span only {rank} dimension(s); pass a larger "
                 "--n for more", stacklevel=2)
        vectors = vh[:kk].float()
        return Directions(vectors.numpy(), [f"pca{i}" for i in range(kk)], var[:kk].sqrt().float().numpy(), space,
                          method, network_identity(G, family), layer_list, (var[:kk] / var.sum()).float().numpy(),
                          info | {"n": n})

    # svm
    sources = sum(v is not None for v in (labels, classifier)) + (attribute is not None and labels is None)
    if sources != 1:
        raise ConfigError("--method svm needs one source of scores: --labels FILE.csv, --attribute NAME or "
                          "--classifier SPEC")
    columns: dict[str, np.ndarray] = {}
    if labels is not None:
        seeds, columns = read_labels(labels) if isinstance(labels, (str, Path)) else labels
        if attribute is not None and attribute not in columns and not attributes.is_attribute(attribute):
            raise ConfigError(f"unknown attribute '{attribute}': the labels have columns {', '.join(columns)}; "
                              f"or choose {attributes.ATTRIBUTE_HELP}")
        target = attribute or next(iter(columns))
    else:
        seeds = list(range(seed, seed + n))
        target = attributes.check_attribute(attribute) if attribute is not None else classifier_name
    for cond in conditions:
        if cond not in columns and not attributes.is_attribute(cond):
            where = f" or a labels column ({', '.join(columns)})" if columns else ""
            raise ConfigError(f"unknown attribute '{cond}' in --condition; choose {attributes.ATTRIBUTE_HELP}{where}")
        if cond == target:
            raise ConfigError(f"--condition {cond} is the attribute itself; condition on other attributes")
    c = seed_classes(G, seeds, class_index)
    z = seed_z(G, seeds)
    images = None

    def scores_of(what: str) -> np.ndarray:
        nonlocal images
        if what in columns:
            return columns[what]
        if images is None:
            if log:
                log(f"rendering {len(seeds)} images to score")
            images = generate(G, z, c, batch_size=batch_size)
        if what == target and classifier is not None:
            return attributes.call_scores(classifier, images, classifier_name)
        return attributes.measure(what, images, crop)

    x = class_centred(to_space(G, z, c, space), centre_by_class(G, space, c))
    main, acc = fit_svm(x, scores_of(target), fraction, c)
    label = name or target
    vecs, names, vals = [main], [label], [acc]
    if conditions:
        others = []
        for cond in conditions:
            d, a = fit_svm(x, scores_of(cond), fraction, c)
            others.append(d)
            names.append(cond)
            vals.append(a)
        vecs = [project_out(main, others), main] + others
        names = [label, f"{label}-plain"] + names[1:]
        vals = [acc] + vals
    vectors = torch.stack(vecs)
    info |= {"n": len(seeds), "scores": target, "conditions": list(conditions), "fraction": fraction}
    return Directions(vectors.numpy(), names, projection_std(x, vectors).numpy(), space, method,
                      network_identity(G, family), layer_list, np.asarray(vals), info)


# ----------------------------------------------------------------- reading a file back
def load_directions(path: str | Path, G=None, family: str | None = None) -> Directions:
    """Read a directions file; with ``G``, check that they were found on a network of its architecture."""
    path = Path(path)
    if not path.is_file():
        raise GenerateError(f"directions file {path} not found: make one with `ganforge directions RUN --out "
                            f"{path.name}`")
    if not zipfile.is_zipfile(path):  # else numpy reads it as a pickle and its refusal suggests unpickling it
        raise GenerateError(f"{path} is not a ganforge directions file (not an .npz archive): make one with "
                            "`ganforge directions RUN --out FILE.npz`")
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            vectors, std, values = f["vectors"], f["std"], f["values"]
    except Exception as e:  # a foreign or damaged file: one line, not a traceback
        raise GenerateError(f"{path} is not a ganforge directions file ({type(e).__name__}: {e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise GenerateError(f"{path} is not a ganforge directions file (no '{FORMAT}' tag)")
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise GenerateError(f"{path} is a damaged directions file (format_version {version!r}): make it again")
    if version > FORMAT_VERSION:
        raise GenerateError(f"{path} was written by a newer ganforge; upgrade ganforge to read it")
    check_contents(path, meta, vectors, std, values)
    dirs = Directions(vectors, list(meta["names"]), std, meta["space"], meta["method"], meta["network"],
                      meta.get("layers"), values, dict(meta.get("info") or {}) | {"path": str(path)})
    if G is not None:
        check_network(dirs, G, family)
    return dirs


def check_contents(path: Path, meta: dict, vectors: np.ndarray, std: np.ndarray, values: np.ndarray) -> None:
    """One line for a file whose parts do not fit together (edited by hand, or damaged)."""
    names, layers, net = meta.get("names"), meta.get("layers"), meta.get("network")

    def bad(what: str):
        raise GenerateError(f"{path} is a damaged directions file ({what}): make it again with ganforge directions")

    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        bad("its names are not a list of strings")
    k = len(names)
    if vectors.ndim != 2 or vectors.shape[0] != k or not np.issubdtype(vectors.dtype, np.floating):
        bad(f"{k} names but vectors of shape {list(vectors.shape)}")
    if std.shape != (k,) or values.shape != (k,) or not np.isfinite(vectors).all() or not np.isfinite(std).all():
        bad("std or values do not match the vectors, or hold non-finite numbers")
    if meta.get("space") not in SPACES or meta.get("method") not in METHODS or not isinstance(net, dict):
        bad("unknown space, method or network")
    if layers is not None:
        num_ws = net.get("num_ws") if isinstance(net.get("num_ws"), int) else None
        whole = isinstance(layers, list) and layers and all(type(i) is int and i >= 0 for i in layers)
        if meta["space"] != "w" or not whole or (num_ws is not None and max(layers) >= num_ws):
            bad(f"layers {str(layers)[:40]} do not fit its network")


def check_network(dirs: Directions, G, family: str | None = None) -> None:
    """One line unless ``dirs`` were found on a network shaped like ``G``."""
    mine, theirs = network_identity(G, family, weights=False), dirs.network
    dim = mine["w_dim"] if dirs.space == "w" else mine["z_dim"]
    same = (dim is not None and dirs.vectors.shape[1] == dim and theirs.get("fingerprint") == mine["fingerprint"]
            and (dirs.space == "z" or theirs.get("num_ws") == mine["num_ws"]))
    where = dirs.info.get("path", "the directions")
    if same:
        if theirs.get("weights") not in (None, weights_hash(G)):  # files made before the hash carry none
            warn(f"{where} was found on other weights of this architecture (another run, or this one at "
                 "another step): its directions may not do what their names say here; find them again with "
                 "`ganforge directions RUN`", stacklevel=3)
        return
    if dim is None:
        have = f"has no {dirs.space} space"
    else:
        have = f"has {dirs.space} of shape {[mine['num_ws'], dim] if dirs.space == 'w' else [dim]}"
    shaped_alike = dim is not None and dirs.vectors.shape[1] == dim
    why = "a generator of another architecture" if shaped_alike else "another network"
    raise GenerateError(f"{where} was made for {why}: directions of "
                        f"shape {list(dirs.vectors.shape)} in {dirs.space} ({_describe(theirs)}), but this run "
                        f"{have} ({_describe(mine)}); find directions for this run with `ganforge directions RUN`")
