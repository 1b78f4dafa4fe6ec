"""Linear separability (LS; Karras et al. 2019, StyleGAN paper section 4.2), judged by the digit network.

How well a latent space separates the image's attributes with hyperplanes. The paper labels faces with
40 CelebA attribute classifiers; here the built-in digit network labels the digits and each of the 10
classes is one binary attribute (this digit or another). For each attribute a linear SVM is fitted on
the latents to predict the label, and H(Y|X) is measured, where X is the side of the SVM's hyperplane a
sample falls on and Y the network's label: how much of the label the hyperplane leaves unexplained. LS
is ``exp(sum of H(Y|X) over the attributes)``, in nats: 1 when every class is cut off by a hyperplane,
larger the more the classes are tangled. Only the most confidently labelled half of the samples is used.

Latents are standardised per dimension before fitting (an affine map, so what is linearly separable does
not change; it only helps the solver). An attribute with fewer than ``min_positives`` samples on either
side is skipped and counted -- skipping lowers the sum, so compare LS only between runs that skip the same.

Only unconditional generators are measured: for a class-conditional generator the digit is an input, not
something its latent encodes, so the digit labels say nothing about how its latent space is organised
(fixing one class would leave no digit attributes to separate, and a random class would score its noise).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from ganforge.errors import EvalError


def conditional_entropy(y: np.ndarray, x: np.ndarray) -> float:
    """H(Y|X) in nats of two binary arrays, from their empirical joint distribution."""
    y, x = np.asarray(y, bool), np.asarray(x, bool)
    h = 0.0
    for xv in (False, True):
        on_side = x == xv
        p_x = on_side.mean()
        for yv in (False, True):
            p_xy = (on_side & (y == yv)).mean()
            if p_xy > 0:
                h -= p_xy * math.log(p_xy / p_x)
    return float(h)


def linear_separability(latents, labels, confidences, num_classes: int = 10, keep: float = 0.5,
                        min_positives: int = 10, C: float = 1.0, seed: int = 0) -> dict:
    """LS of ``latents`` [N, D] against class ``labels`` [N] (each class one-vs-rest), using the ``keep``
    share of samples with the highest ``confidences`` [N].

    Returns ``{value, entropies (class -> nats), attributes, skipped, n_used}``; ``value`` is None when
    every attribute was skipped.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    X = np.asarray(latents, np.float64).reshape(len(latents), -1)
    labels, conf = np.asarray(labels).reshape(-1), np.asarray(confidences, np.float64).reshape(-1)
    if not (len(X) == len(labels) == len(conf)):
        raise EvalError(f"linear separability: {len(X)} latents, {len(labels)} labels, {len(conf)} confidences")
    if not 0 < keep <= 1:
        raise EvalError(f"linear separability: keep must be in (0, 1], got {keep}")
    order = np.argsort(-conf, kind="stable")[:max(1, int(round(len(X) * keep)))]
    X, labels = X[order], labels[order]
    X = (X - X.mean(0)) / np.maximum(X.std(0), 1e-12)
    entropies: dict[int, float] = {}
    skipped = 0
    for k in range(num_classes):
        y = labels == k
        if min(int(y.sum()), int((~y).sum())) < min_positives:
            skipped += 1
            continue
        svm = LinearSVC(C=C, dual=len(X) < X.shape[1], max_iter=10_000, random_state=seed)  # primal when N > D
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            svm.fit(X, y)
        entropies[k] = conditional_entropy(y, svm.predict(X).astype(bool))
    value = math.exp(sum(entropies.values())) if entropies else None
    return {"value": value, "entropies": entropies, "attributes": len(entropies), "skipped": skipped,
            "n_used": int(len(X))}


@torch.no_grad()
def sample_labelled(G, classifier: torch.nn.Module, n: int, seed: int = 0, batch_size: int = 250,
                    device: str | torch.device = "cpu", truncation: float = 1.0):
    """``n`` samples of ``G``: their z [n, z_dim], w [n, w_dim] (None without a mapping network) and the
    classifier's top class and its probability for each image ([n] each), as NumPy arrays."""
    from ganforge.generate.sampling import latents
    from ganforge.metrics.ppl import has_mapping

    z = latents(G, n, seed, truncation)  # as ganforge generate draws them (z * psi for z-space generators)
    mapping = has_mapping(G)
    kwargs = {"noise_mode": "const"} if getattr(G, "supports_noise_mode", False) else {}
    ws, labels, conf = [], [], []
    for i in range(0, n, batch_size):
        zb = z[i:i + batch_size].to(device)
        if mapping:
            w = G.mapping(zb, None, truncation_psi=truncation)
            img = G.synthesis(w, **kwargs)
            ws.append((w[:, 0] if w.dim() == 3 else w).float().cpu())  # no style mixing: every layer's w agrees
        else:
            img = G(zb, None)
        probs = torch.softmax(classifier(img.float().clamp(-1, 1)), dim=1)
        p, y = probs.max(1)
        labels.append(y.cpu())
        conf.append(p.float().cpu())
    return (z.numpy(), torch.cat(ws).numpy() if ws else None, torch.cat(labels).numpy(),
            torch.cat(conf).numpy())


def generator_separability(G, n: int = 2000, seed: int = 0, batch_size: int = 250,
                           device: str | torch.device = "cpu", truncation: float = 1.0,
                           classifier: torch.nn.Module | None = None) -> dict:
    """LS of an unconditional generator's latents with the digit network's labels.

    ``{value, space, value_z, attributes, skipped, n_used, n}``: ``value`` in w for a generator with a
    mapping network (``value_z`` then gives z for reference), else in z.
    """
    from ganforge.metrics.digits import load_classifier

    if getattr(G, "num_classes", 0):
        raise EvalError("linear separability needs an unconditional generator (the class is an input here)")
    if n < 20:
        raise EvalError(f"linear separability needs more samples: --ls-n {n} is too few (use a few thousand)")
    net = classifier if classifier is not None else load_classifier().to(device)
    net.eval()
    z, w, labels, conf = sample_labelled(G, net, n, seed, batch_size, device, truncation)
    main = linear_separability(w if w is not None else z, labels, conf, seed=seed)
    out = {"value": main["value"], "space": "w" if w is not None else "z", "attributes": main["attributes"],
           "skipped": main["skipped"], "n_used": main["n_used"], "n": int(n)}
    if w is not None:
        out["value_z"] = linear_separability(z, labels, conf, seed=seed)["value"]
    return out
