"""The evaluation math against hand-computed and SciPy values, the real-stats cache, and the extractors."""
import importlib.util
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import linalg

from ganforge.errors import EvalError
from ganforge.metrics import prdc
from ganforge.metrics.fid import fid_from_features, frechet_distance, gaussian_stats, real_floor
from ganforge.metrics.kid import kid, mmd2_unbiased
from ganforge.metrics.prdc import density_coverage, knn_radii, precision_recall
from ganforge.metrics.scores import discriminator_mean, inception_score

HAS_FIDELITY = importlib.util.find_spec("torch_fidelity") is not None


def _gaussians(n=400, d=12, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + 1.0
    b = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.7 - 0.5
    return a, b


# ------------------------------------------------------------------ FID
def test_fid_of_a_set_with_itself_is_zero():
    a, _ = _gaussians()
    assert fid_from_features(a, a) == pytest.approx(0.0, abs=1e-6)
    assert fid_from_features(a * 30, a * 30) == pytest.approx(0.0, abs=1e-6)  # feature scale of real nets


def test_fid_matches_direct_scipy_and_an_eigenvalue_route():
    a, b = _gaussians()
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    direct = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    # tr sqrt(S1 S2) = sum of sqrt of the eigenvalues of S1^1/2 S2 S1^1/2 (symmetric: no sqrtm of a product)
    w, v = np.linalg.eigh(s1)
    root1 = v @ np.diag(np.sqrt(w)) @ v.T
    eig = np.linalg.eigvalsh(root1 @ s2 @ root1)
    by_eig = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(eig, 0, None)).sum()
    ours = fid_from_features(a, b)
    assert ours == pytest.approx(direct, rel=1e-9)
    assert ours == pytest.approx(by_eig, rel=1e-7)


def test_fid_of_diagonal_gaussians_by_hand():
    # Commuting covariances: FID = |mu1 - mu2|^2 + sum (sqrt(v1) - sqrt(v2))^2
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(5 + 1 + 0 + 4)


def test_fid_survives_singular_covariances_and_rejects_mismatches():
    rng = np.random.default_rng(1)
    few = rng.normal(size=(5, 16))  # rank 4 covariance in 16-d
    value = fid_from_features(few, rng.normal(size=(5, 16)))
    assert math.isfinite(value) and value > 0
    with pytest.raises(EvalError, match="at least 2"):
        gaussian_stats(few[:1])
    with pytest.raises(EvalError, match="feature sizes differ"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_real_floor_uses_disjoint_halves_at_the_same_n():
    a, _ = _gaussians(n=300)
    value, m = real_floor(a, n=1000)
    assert m == 150 and value > 0
    assert real_floor(a, n=40)[1] == 40
    assert real_floor(a, n=100, seed=3) == real_floor(a, n=100, seed=3)  # seeded halves


# ------------------------------------------------------------------ KID
def test_mmd2_unbiased_by_hand():
    x = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    y = np.array([[0.0, 0.0], [2.0, 1.0], [-1.0, 1.0], [0.5, 0.5]])
    k = lambda u, v: (np.dot(u, v) / 2 + 1) ** 3
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    assert mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_kid_subsets_mean_and_std():
    a, b = _gaussians(n=60, d=4)
    mean, std = kid(a, b, subsets=3, subset_size=1000)  # subsets of all 60: every subset is the full set
    assert mean == pytest.approx(mmd2_unbiased(a, b), rel=1e-5) and std == pytest.approx(0, abs=1e-6)
    rng = np.random.default_rng(0)
    same = kid(rng.normal(size=(400, 8)), rng.normal(size=(400, 8)), subsets=20, subset_size=100)
    shifted = kid(rng.normal(size=(400, 8)), rng.normal(size=(400, 8)) + 1, subsets=20, subset_size=100)
    assert abs(same[0]) < 3 * same[1] + 1e-3 and shifted[0] > 10 * same[1] and same[1] > 0
    with pytest.raises(EvalError, match="at least 2"):
        kid(a[:1], b)


# ------------------------------------------------------------------ precision / recall, density / coverage
REAL = np.array([[0.0], [1.0], [2.0], [3.0]])
FAKE = np.array([[0.1], [0.3], [10.0], [10.4]])


def test_knn_radii_exclude_the_point_itself():
    assert knn_radii(REAL, 1).tolist() == [1, 1, 1, 1]
    assert knn_radii(REAL, 2).tolist() == [2, 1, 1, 2]
    with pytest.raises(EvalError, match="nearest neighbours"):
        knn_radii(REAL, 4)


def test_precision_recall_on_a_constructed_set():
    # real radii (k=1) are all 1: fakes 0.1 and 0.3 are inside, 10 and 10.4 are not -> precision 1/2.
    # fake radii: 0.2, 0.2, 0.4, 0.4: only real 0 lies in a fake ball -> recall 1/4.
    assert precision_recall(REAL, FAKE, k=1) == (0.5, 0.25)
    assert precision_recall(REAL, REAL + 0.01, k=1) == (1.0, 1.0)


def test_density_coverage_on_a_constructed_set():
    # fakes 0.1 and 0.3 each lie in the balls of reals 0 and 1 (radius 1): 4 hits / (k=1 * 4 fakes) = 1.
    # reals 0 and 1 hold a fake, 2 and 3 do not -> coverage 1/2.
    assert density_coverage(REAL, FAKE, k=1) == (1.0, 0.5)
    # fakes == reals: each ball holds its centre and its k neighbours -> density (k+1)/k, coverage 1.
    pts = np.random.default_rng(0).normal(size=(50, 3))
    assert density_coverage(pts, pts, k=5) == (pytest.approx(6 / 5), 1.0)


def test_manifold_metrics_do_not_depend_on_the_chunk_size(monkeypatch):
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(70, 5)), rng.normal(size=(50, 5)) + 0.3
    whole = precision_recall(a, b), density_coverage(a, b)
    monkeypatch.setattr(prdc, "CHUNK", 16)
    assert (precision_recall(a, b), density_coverage(a, b)) == whole


# ------------------------------------------------------------------ classifier and discriminator scores
def test_inception_score_extremes_and_a_hand_value():
    assert inception_score(torch.eye(10).repeat(3, 1)) == pytest.approx(10.0, rel=1e-6)
    assert inception_score(torch.full((7, 10), 0.1)) == pytest.approx(1.0)
    p = torch.tensor([[0.9, 0.1], [0.5, 0.5]])
    py = p.mean(0)
    kl = (p * (p / py).log()).sum(1).mean().item()
    assert inception_score(p) == pytest.approx(math.exp(kl), rel=1e-6)


def test_discriminator_mean_is_the_sigmoid_of_d_on_scaled_images():
    class D(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, x, c=None):
            return x.mean((1, 2, 3)) * self.w + (0 if c is None else c.float())

    x = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1)
    assert discriminator_mean(D(), x, None).tolist() == pytest.approx([torch.sigmoid(torch.tensor(-1.0)).item(),
                                                                       torch.sigmoid(torch.tensor(1.0)).item()])


# ------------------------------------------------------------------ real-statistics cache
def _write_pngs(folder, n, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), "L").save(folder / f"{i}.png")


def test_real_stats_cache_invalidates_when_data_or_extractor_change(tmp_path):
    from ganforge.metrics.sources import FolderSource
    from ganforge.metrics.stats_cache import real_stats

    folder = tmp_path / "real"
    _write_pngs(folder, 6)
    calls = []

    def stats(extractor_key="ex1"):
        src = FolderSource(folder, resolution=8)

        def compute():
            calls.append(1)
            return np.concatenate([x.flatten(1).float().numpy() for x, _ in src.batches(6, 4)])

        return real_stats(src.cache_key(), extractor_key, 6, 0, compute)

    first = stats()
    assert not first.from_cache and first.features.shape == (6, 64) and len(calls) == 1
    again = stats()
    assert again.from_cache and np.array_equal(again.features, first.features) and len(calls) == 1
    stats(extractor_key="ex2")  # another network: new entry
    assert len(calls) == 2
    Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(folder / "0.png")  # changed file
    os.utime(folder / "0.png", ns=(1, 1))
    changed = stats()
    assert not changed.from_cache and len(calls) == 3 and not np.array_equal(changed.features, first.features)
    _write_pngs(folder / "more", 1, seed=5)  # an added file
    assert not stats().from_cache and len(calls) == 4


def test_dataset_key_follows_the_pixels(digits):
    from ganforge.data import ImageDataset
    from ganforge.metrics.sources import DatasetSource

    key = DatasetSource(digits).cache_key()
    images = digits.images.clone()
    assert DatasetSource(ImageDataset(images, None, [], "digits")).cache_key() == key
    images[0, 0, 0, 0] ^= 1
    assert DatasetSource(ImageDataset(images, None, [], "digits")).cache_key() != key


# ------------------------------------------------------------------ extractors
def test_digit_features_are_the_128d_penultimate_layer(digits):
    from ganforge.metrics.digits import load_classifier, predict
    from ganforge.metrics.features import DigitFeatures

    ex = DigitFeatures()
    x = digits.images[:6]
    feats, probs = ex.features_and_probs(x)
    net = load_classifier()
    with torch.no_grad():
        ref = net.features(x.float() / 127.5 - 1)
    assert feats.shape == (6, 128) and torch.allclose(feats, ref, atol=1e-4)
    assert torch.allclose(probs, predict(net, x.float() / 127.5 - 1), atol=1e-5)


def test_user_callable_features(tmp_path, monkeypatch):
    from ganforge.metrics.features import get_extractor

    (tmp_path / "myfeats.py").write_text("def embed(x):\n    return x.flatten(1)[:, :5] * 2\n"
                                         "def bad(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ex = get_extractor("myfeats:embed")
    x = torch.tensor([[[[0, 255]]]], dtype=torch.uint8)
    assert ex(x).tolist() == [[-2.0, 2.0]] and ex.key.startswith("module:myfeats:embed")
    with pytest.raises(EvalError, match=r"must return \[B, D\]"):
        get_extractor("myfeats:bad")(x)
    for spec, msg in (("nosuchmod:fn", "cannot import"), ("myfeats:nope", "no callable"), ("vgg", "unknown")):
        with pytest.raises(EvalError, match=msg):
            get_extractor(spec)


def test_missing_inception_weights_is_a_one_line_hint(tmp_path, monkeypatch):
    from ganforge.metrics.inception import find_weights

    monkeypatch.delenv("GANFORGE_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(EvalError) as e:
        find_weights()
    assert "--inception-weights" in str(e.value) and "GANFORGE_INCEPTION_WEIGHTS" in str(e.value)
    assert "\n" not in str(e.value)
    ckpt = tmp_path / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x")
    assert find_weights() == ckpt


@pytest.mark.skipif(not HAS_FIDELITY, reason="torch-fidelity not installed (pip install --no-deps torch-fidelity)")
def test_inception_pipeline_on_a_random_init_network(tmp_path):
    from ganforge.metrics.inception import InceptionFeatures, load_state, to_input

    gray = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    x = to_input(gray)
    assert x.dtype == torch.uint8 and x.shape == (2, 3, 299, 299)
    # clean-fid order: uint8 in, bicubic (antialiased) resize in float, then back to whole levels
    ref = torch.nn.functional.interpolate(gray.float(), size=(299, 299), mode="bicubic", antialias=True)
    assert torch.equal(x[:, :1], ref.round().clamp(0, 255).to(torch.uint8))
    assert torch.equal(to_input(x), x)  # already 299: untouched

    ex = InceptionFeatures(random_init=True)
    feats = ex(gray)
    assert feats.shape == (2, 2048) and feats.dtype == torch.float32 and feats.std() > 1e-3
    assert torch.allclose(ex(x), feats)  # the package's own resize is the identity at 299
    shifted = (gray.int() + 1).clamp(0, 255).to(torch.uint8)  # one uint8 level changes the features
    assert not torch.allclose(ex(shifted), feats)

    path = tmp_path / "w.pth"  # a state dict file round-trips through the weights_only loader
    torch.save(ex.net.state_dict(), path)
    ex2 = InceptionFeatures(weights=path)
    assert torch.allclose(ex2(gray), feats, atol=1e-5) and ex2.key.startswith("inception:")
    torch.save({"fc.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(EvalError, match="do not fit"):
        InceptionFeatures(weights=tmp_path / "other.pth")
    torch.save({"evil": object()}, tmp_path / "bad.pth")
    with pytest.raises(EvalError, match=r"bad.pth: refused: the file holds pickled objects other than tensors "
                                        r"\(it asks for (builtins\.)?object\), which ganforge never runs: use pt_"):
        load_state(tmp_path / "bad.pth")
