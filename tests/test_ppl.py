"""Perceptual path length and linear separability: exact values on linear generators, real tiny nets."""
import importlib.util
import math

import numpy as np
import pytest
import torch

from ganforge.errors import EvalError
from ganforge.metrics.ppl import (
    DigitFeatureDistance,
    LPIPSDistance,
    choose_distance,
    path_lengths,
    perceptual_path_length,
    sample_pairs,
    trimmed_mean,
)
from ganforge.metrics.separability import conditional_entropy, generator_separability, linear_separability

HAS_LPIPS = importlib.util.find_spec("ganforge.metrics.lpips") is not None


def mse(x, y):
    """An exact distance: the mean squared pixel difference."""
    return (x - y).square().flatten(1).mean(1)


class Mapping(torch.nn.Module):
    def __init__(self, M):
        super().__init__()
        self.M = torch.nn.Parameter(M)

    def forward(self, z, c=None, truncation_psi=1.0):
        return torch.tanh(z.to(self.M.dtype) @ self.M.T)  # non-linear: PPL in w must not care


class Synthesis(torch.nn.Module):
    def __init__(self, A, shape, ignore_w=False):
        super().__init__()
        self.A, self.shape, self.ignore_w = torch.nn.Parameter(A), shape, ignore_w

    def forward(self, ws, noise_mode="random"):
        img = ws @ self.A.T
        return (torch.zeros_like(img) + self.A.sum(1) if self.ignore_w else img).view(-1, *self.shape)


class LinearStyleG(torch.nn.Module):
    """mapping: w = tanh(M z); synthesis: image = A w (so d/eps^2 = mean((A (w1 - w0))^2) at every t)."""

    num_classes, supports_noise_mode = 0, True

    def __init__(self, z_dim=6, w_dim=5, shape=(1, 3, 4), dtype=torch.float64, ignore_w=False, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.z_dim, self.img_shape = z_dim, shape
        self.mapping = Mapping(torch.randn(w_dim, z_dim, generator=g, dtype=dtype))
        self.synthesis = Synthesis(torch.randn(math.prod(shape), w_dim, generator=g, dtype=dtype), shape, ignore_w)

    def forward(self, z, c=None, truncation_psi=1.0, noise_mode="random"):
        return self.synthesis(self.mapping(z, c), noise_mode=noise_mode)


class LinearZG(torch.nn.Module):
    """No mapping network: image = A z (+ a large per-class offset when conditional)."""

    def __init__(self, z_dim=7, shape=(1, 2, 5), num_classes=0):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.z_dim, self.img_shape, self.num_classes = z_dim, shape, num_classes
        self.A = torch.nn.Parameter(torch.randn(math.prod(shape), z_dim, generator=g, dtype=torch.float64))
        self.offsets = torch.nn.Parameter(100 * torch.randn(max(num_classes, 1), math.prod(shape), generator=g,
                                                            dtype=torch.float64))

    def forward(self, z, c=None):
        img = z @ self.A.T
        if c is not None:
            img = img + self.offsets[c]
        return img.view(-1, *self.img_shape)


# ------------------------------------------------------------------ PPL
@pytest.mark.parametrize("sampling", ["end", "full"])
def test_ppl_in_w_of_a_linear_synthesis_is_exact(sampling):
    G = LinearStyleG()
    n = 300
    lengths = path_lengths(G, mse, n=n, space="w", sampling=sampling, batch_size=64, seed=3)
    z0, z1, _, t = sample_pairs(G, n, sampling, seed=3)
    with torch.no_grad():
        expected = ((G.mapping(z1) - G.mapping(z0)) @ G.synthesis.A.T).square().mean(1).numpy()
    assert (t == 0).all() == (sampling == "end")
    np.testing.assert_allclose(lengths, expected, rtol=1e-3)
    r = perceptual_path_length(G, mse, n=n, space="w", sampling=sampling, batch_size=64, seed=3)
    lo, hi = np.percentile(expected, 1, method="lower"), np.percentile(expected, 99, method="higher")
    inside = expected[(expected >= lo) & (expected <= hi)]
    assert r["value"] == pytest.approx(inside.mean(), rel=1e-3) and r["n_kept"] == len(inside) < n
    assert (r["space"], r["sampling"], r["n"], r["epsilon"]) == ("w", sampling, n, 1e-4)


def test_ppl_in_float32_stays_close():
    G = LinearStyleG(dtype=torch.float32)
    lengths = path_lengths(G, mse, n=100, space="w", seed=0)
    z0, z1, _, _ = sample_pairs(G, 100, "end", seed=0)
    with torch.no_grad():
        expected = ((G.mapping(z1) - G.mapping(z0)) @ G.synthesis.A.T).square().mean(1).double().numpy()
    np.testing.assert_allclose(lengths, expected, rtol=2e-2)


@pytest.mark.parametrize("num_classes", [0, 3])
def test_ppl_in_z_follows_the_great_circle(num_classes):
    # image = A z on the sphere of radius sqrt(D): at t = 0 the path moves along the unit tangent o toward
    # z1 at speed sqrt(D) * angle, so d/eps^2 = mean((A o)^2) * D * angle^2. Conditional: both ends share
    # the class, or the huge class offsets would dominate.
    G = LinearZG(num_classes=num_classes)
    n = 50
    lengths = path_lengths(G, mse, n=n, space="z", sampling="end", seed=1)
    z0, z1, c, _ = sample_pairs(G, n, "end", seed=1)
    assert (c is None) == (num_classes == 0)
    a, b = torch.nn.functional.normalize(z0.double(), dim=1), torch.nn.functional.normalize(z1.double(), dim=1)
    cos = (a * b).sum(1, keepdim=True)
    angle = torch.acos(cos)
    o = torch.nn.functional.normalize(b - cos * a, dim=1)
    expected = ((o @ G.A.detach().T).square().mean(1) * G.z_dim * angle.squeeze(1) ** 2).numpy()
    np.testing.assert_allclose(lengths, expected, rtol=1e-3)


def test_ppl_of_a_generator_that_ignores_its_latent_is_zero():
    G = LinearStyleG(ignore_w=True)
    for space in ("w", "z"):
        r = perceptual_path_length(G, mse, n=40, space=space, sampling="full")
        assert r["value"] == 0.0


def test_ppl_is_deterministic_in_the_seed_and_checks_its_options():
    G = LinearStyleG()
    first = perceptual_path_length(G, mse, n=60, seed=5, sampling="full")
    assert perceptual_path_length(G, mse, n=60, seed=5, sampling="full") == first  # same computation: exact
    # Another batch size is another kernel schedule: the same value up to float rounding, not bit for bit.
    other = perceptual_path_length(G, mse, n=60, seed=5, sampling="full", batch_size=7)
    assert other.keys() == first.keys()
    for key, value in first.items():
        if isinstance(value, float):
            assert other[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
        else:
            assert other[key] == value, key
    assert perceptual_path_length(G, mse, n=60, seed=6, sampling="full")["value"] != first["value"]
    assert first["space"] == "w" and first["distance"] == "custom"  # w is the default with a mapping network
    assert perceptual_path_length(LinearZG(), mse, n=4)["space"] == "z"
    with pytest.raises(EvalError, match="mapping network"):
        perceptual_path_length(LinearZG(), mse, n=4, space="w")
    for kwargs, msg in (({"sampling": "middle"}, "end or full"), ({"space": "x"}, "z or w"),
                        ({"epsilon": 0.0}, "epsilon")):
        with pytest.raises(EvalError, match=msg):
            perceptual_path_length(G, mse, n=4, **kwargs)
    with pytest.raises(EvalError, match="values for"):
        perceptual_path_length(G, lambda x, y: torch.zeros(1), n=4)


def test_trimmed_mean_drops_the_outer_percentiles():
    lengths = np.concatenate([np.full(5, -1e6), np.ones(990), np.full(5, 1e6)])
    assert trimmed_mean(lengths) == (1.0, 990)
    # the bounds are values of the data (lower / higher) and inclusive, as in the official code
    assert trimmed_mean(np.arange(100.0)) == (49.5, 100)


def _tiny_stylegan2(classes=0, channels=1, res=16):
    from ganforge import models
    from ganforge.config import ModelConfig

    family = "cstylegan2" if classes else "stylegan2"
    G, _ = models.build(ModelConfig(family=family, z_dim=8, resolution=res, channels=channels, g_width=8,
                                    d_width=8, num_classes=classes))
    return G.eval().requires_grad_(False)


def test_ppl_of_a_tiny_stylegan2_with_digit_features():
    G = _tiny_stylegan2()
    dist = DigitFeatureDistance()
    for space, sampling in (("w", "end"), ("z", "full")):
        r = perceptual_path_length(G, dist, n=24, space=space, sampling=sampling, batch_size=12)
        assert math.isfinite(r["value"]) and r["value"] > 0 and r["distance"] == "digit-features"
    Gc = _tiny_stylegan2(classes=4)
    assert perceptual_path_length(Gc, dist, n=8)["value"] > 0


@pytest.mark.skipif(not HAS_LPIPS, reason="ganforge.metrics.lpips is not in this tree")
def test_ppl_with_an_lpips_network():
    from ganforge.metrics.lpips import LPIPS

    G = _tiny_stylegan2()
    r = perceptual_path_length(G, LPIPSDistance(LPIPS(widths=(4, 4, 4, 4, 4))), n=6, batch_size=3)
    assert math.isfinite(r["value"]) and r["value"] > 0 and r["distance"] == "lpips-vgg16"


def test_choose_distance(tmp_path, monkeypatch):
    monkeypatch.delenv("GANFORGE_VGG16", raising=False)
    fn, why = choose_distance(1, 28, None)
    assert isinstance(fn, DigitFeatureDistance) and why is None
    fn, why = choose_distance(3, 32, None)
    assert fn is None and "--vgg" in why
    if not HAS_LPIPS:
        with pytest.raises(EvalError, match="--vgg"):
            choose_distance(3, 32, str(tmp_path / "vgg.safetensors"))
        return
    from ganforge.metrics import lpips

    with pytest.raises(EvalError) as e:
        choose_distance(3, 32, str(tmp_path / "vgg.safetensors"))
    assert "not found" in str(e.value) and "\n" not in str(e.value)
    monkeypatch.setattr(lpips, "load_lpips", lambda path, device="cpu": lpips.LPIPS(widths=(2, 2, 2, 2, 2)))
    fn, why = choose_distance(3, 32, "any.safetensors")
    assert isinstance(fn, LPIPSDistance) and why is None
    fn, _ = choose_distance(1, 16, "any.safetensors")  # weights win over the digit features
    assert isinstance(fn, LPIPSDistance)


# ------------------------------------------------------------------ linear separability
def test_conditional_entropy_by_hand():
    y = np.array([1, 1, 0, 0])
    assert conditional_entropy(y, y) == 0.0
    assert conditional_entropy(y, 1 - y) == 0.0  # the side's sign does not matter
    assert conditional_entropy(y, np.ones(4)) == pytest.approx(math.log(2))
    # x = [1, 1, 1, 0]: H(Y|X=1) = H(2/3, 1/3) with weight 3/4, X=0 is pure
    h = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert conditional_entropy(y, np.array([1, 1, 1, 0])) == pytest.approx(0.75 * h)


def test_linear_separability_of_linear_and_random_labels():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1200, 8))
    u = rng.normal(size=8)
    conf = rng.uniform(0.5, 1, size=1200)
    linear = linear_separability(X, (X @ u > 0).astype(int), conf)
    assert linear["attributes"] == 2 and linear["skipped"] == 8 and linear["n_used"] == 600
    assert linear["value"] == pytest.approx(1.0, abs=0.1)
    random = linear_separability(X, rng.integers(0, 2, size=1200), conf)
    assert random["attributes"] == 2 and random["value"] > 3  # about exp(2 ln 2) = 4
    ten = linear_separability(X, rng.integers(0, 10, size=1200), conf)
    assert ten["attributes"] == 10 and ten["skipped"] == 0 and ten["value"] > 10  # about exp(10 H(0.1)) = 26
    assert linear_separability(X[:30], np.zeros(30, int), conf[:30])["value"] is None  # all skipped


def test_linear_separability_uses_the_confident_half():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(1000, 5))
    labels = (X[:, 0] + X[:, 1] > 0).astype(int)
    conf = np.full(1000, 0.99)
    noisy = rng.permutation(1000)[:500]
    labels[noisy] = rng.integers(0, 2, size=500)
    conf[noisy] = 0.3
    assert linear_separability(X, labels, conf)["value"] == pytest.approx(1.0, abs=0.1)
    assert linear_separability(X, labels, conf, keep=1.0)["value"] > 1.5
    with pytest.raises(EvalError, match="labels"):
        linear_separability(X, labels[:10], conf)


def test_generator_separability_of_a_tiny_stylegan2():
    G = _tiny_stylegan2()
    r = generator_separability(G, n=120, batch_size=60)
    assert r["space"] == "w" and r["attributes"] + r["skipped"] == 10 and r["n_used"] == 60 and r["n"] == 120
    assert r["value"] is None or (r["value"] >= 1 and r["value_z"] >= 1)
    with pytest.raises(EvalError, match="unconditional"):
        generator_separability(_tiny_stylegan2(classes=3), n=100)
