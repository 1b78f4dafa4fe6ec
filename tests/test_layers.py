import pytest
import torch

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models import build, families
from ganforge.models.layers import default_d_layers, default_g_layers, describe


def cfg(**kw):
    base = dict(family="layers", z_dim=16, resolution=28, channels=1, g_width=8, d_width=8)
    base.update(kw)
    return ModelConfig(**base)


def check_shapes(G, D, c, r, n_cls=0):
    z = torch.randn(2, G.z_dim)
    y = torch.tensor([0, 1]) if n_cls else None
    x = G(z, y)
    assert x.shape == (2, c, r, r)
    assert D(x, y).shape == (2,)


def test_registered():
    assert "layers" in families()


@pytest.mark.parametrize("c,r", [(1, 28), (3, 32)])
def test_default_specs(c, r):
    G, D = build(cfg(channels=c, resolution=r))
    check_shapes(G, D, c, r)
    assert default_g_layers((c, r, r), 16)[-1] == {"type": "tanh"}
    assert default_d_layers((c, r, r))[-1] == {"type": "fc", "out": 1}


def test_default_needs_resolution_divisible_by_4():
    with pytest.raises(ConfigError, match="divisible by 4, got 30"):
        build(cfg(resolution=30))


def test_every_layer_type():
    g = [{"type": "fc", "out": 8 * 7 * 7}, {"type": "reshape", "shape": [8, 7, 7]},
         {"type": "batchnorm"}, {"type": "relu"},
         {"type": "upsample"}, {"type": "conv", "out": 8}, {"type": "leakyrelu", "slope": 0.1},
         {"type": "upsample", "scale": 2, "mode": "bilinear"}, {"type": "dropout", "p": 0.1},
         {"type": "conv", "out": 1, "kernel": 5}, {"type": "tanh"}]
    d = [{"type": "conv", "out": 4, "stride": 2}, {"type": "sigmoid"}, {"type": "maxpool"},
         {"type": "avgpool", "size": 7}, {"type": "flatten"}, {"type": "batchnorm"},
         {"type": "fc", "out": 1}]
    G, D = build(cfg(g_layers=g, d_layers=d))
    check_shapes(G, D, 1, 28)
    # deconv (not in the G above) is exercised by the default G; check it alone too
    G, D = build(cfg(resolution=8, g_layers=[{"type": "fc", "out": 16}, {"type": "reshape", "shape": [1, 4, 4]},
                                              {"type": "deconv", "out": 1}],
                     d_layers=[{"type": "flatten"}, {"type": "fc", "out": 1}]))
    check_shapes(G, D, 1, 8)


def test_spectral_norm_builds():
    G, D = build(cfg(spectral_norm=True))
    check_shapes(G, D, 1, 28)


def test_describe():
    rows = describe(default_d_layers((1, 28, 28), width=8), [1, 28, 28])
    assert rows[0] == ("conv 8 k4 s2 p1", [8, 14, 14])
    assert rows[2][1] == [16, 7, 7]
    assert rows[-2] == ("flatten", [16 * 49])
    assert rows[-1] == ("fc 1", [1])
    g = describe(default_g_layers((1, 28, 28), 16, width=8), [16])
    assert [s for _, s in g] == [[16 * 49], [16, 7, 7], [16, 7, 7], [16, 7, 7], [8, 14, 14],
                                 [8, 14, 14], [8, 14, 14], [1, 28, 28], [1, 28, 28]]
    assert g[1][0] == "reshape [16, 7, 7]"


@pytest.mark.parametrize("k,s,size", [(3, 1, 28), (5, 1, 28), (3, 2, 14), (4, 2, 14), (5, 2, 14)])
def test_same_padding_rule(k, s, size):
    (_, shape), = describe([{"type": "conv", "out": 2, "kernel": k, "stride": s}], [1, 28, 28])
    assert shape == [2, size, size]
    m = torch.nn.Conv2d(1, 2, k, s, (k - 1) // 2)
    assert list(m(torch.zeros(1, 1, 28, 28)).shape[1:]) == shape


FC1 = [{"type": "flatten"}, {"type": "fc", "out": 1}]
GOOD_G = default_g_layers((1, 28, 28), 16, width=8)


@pytest.mark.parametrize("g,d,msg", [
    ([{"type": "fc", "out": 784}, {"type": "relu"}, {"type": "relu"}, {"type": "conv", "out": 1}], FC1,
     r"generator layer 3 \(conv\) needs a 4-D input \[B, C, H, W\], got \[B, 784\]"),
    (GOOD_G, [{"type": "fc"}], r"discriminator layer 0 \(fc\): missing parameter 'out'"),
    ([{"type": "fc", "out": 4}, {"type": "relu"}, {"type": "convv"}], FC1,
     r"generator layer 2: unknown type 'convv'; valid types: fc, conv, deconv"),
    ([{"type": "fc", "out": 576}, {"type": "reshape", "shape": [1, 24, 24]}], FC1,
     r"generator output is \[B, 1, 24, 24\] but images are \[B, 1, 28, 28\]"),
    (GOOD_G, [{"type": "flatten"}, {"type": "fc", "out": 16}],
     r"discriminator output must be one number per image, got \[B, 16\]"),
    ([{"type": "fc", "out": 100}, {"type": "reshape", "shape": [16, 4, 4]}], FC1,
     r"generator layer 1 \(reshape\) cannot reshape \[B, 100\] to \[B, 16, 4, 4\] \(100 != 256 values\)"),
    (GOOD_G, [{"type": "conv", "out": 4, "kernel": 29, "padding": 0}] + FC1,
     r"discriminator layer 0 \(conv\) would output \[B, 4, 0, 0\]: input \[B, 1, 28, 28\] is too small"),
    (GOOD_G, [{"type": "maxpool", "size": 29}] + FC1,
     r"discriminator layer 0 \(maxpool\) would output \[B, 1, 0, 0\]"),
    (GOOD_G, [{"type": "conv", "out": 0}] + FC1,
     r"discriminator layer 0 \(conv\): 'out' must be a positive integer up to 4,194,304, got 0"),
    (GOOD_G, [{"type": "conv", "out": "8"}] + FC1, r"'out' must be a positive integer up to 4,194,304, got '8'"),
    (GOOD_G, [{"type": "conv", "out": True}] + FC1, r"'out' must be a positive integer up to 4,194,304, got True"),
    (GOOD_G, [{"type": "conv", "out": 4, "padding": -1}] + FC1, r"'padding' must be a non-negative integer"),
    (GOOD_G, [{"type": "dropout", "p": 1.5}] + FC1, r"'p' must be a number in \[0, 1\)"),
    (GOOD_G, [{"type": "upsample", "mode": "cubic"}] + FC1, r"'mode' must be \"nearest\" or \"bilinear\""),
    (GOOD_G, [{"type": "conv", "out": 4, "kernal": 3}] + FC1,
     r"discriminator layer 0 \(conv\): unknown parameter\(s\) 'kernal'; valid: out, kernel, stride, padding"),
    (GOOD_G, [{"type": "fc", "out": 1}],
     r"discriminator layer 0 \(fc\) needs a 2-D input \[B, F\], got \[B, 1, 28, 28\]; add a flatten"),
    (GOOD_G, [{"out": 1}], r"discriminator layer 0: unknown type None"),
    (GOOD_G, ["conv"], r"discriminator layer 0: must be an object"),
    (GOOD_G, {"type": "fc"}, r"discriminator layers must be a list"),
    ([{"type": "fc", "out": 784}, {"type": "reshape", "shape": [1, 28, 0]}], FC1,
     r"generator layer 1 \(reshape\): 'shape' must be a non-empty list of positive integers"),
])
def test_errors(g, d, msg):
    with pytest.raises(ConfigError, match=msg):
        build(cfg(g_layers=g, d_layers=d))


def test_conditional_changes_output():
    torch.manual_seed(0)
    G, D = build(cfg(num_classes=10))
    check_shapes(G, D, 1, 28, n_cls=10)
    G.eval(), D.eval()
    z = torch.randn(1, 16).repeat(2, 1)
    y = torch.tensor([3, 7])
    x = G(z, y)
    assert not torch.allclose(x[0], x[1])
    same = x[:1].repeat(2, 1, 1, 1)
    out = D(same, y)
    assert not torch.allclose(out[0], out[1])
    with pytest.raises(ValueError, match="pass class indices"):
        G(z)


def test_conditional_d_needs_fc():
    d = [{"type": "conv", "out": 1, "kernel": 28, "padding": 0}, {"type": "flatten"}]
    build(cfg(d_layers=d))  # fine unconditionally
    with pytest.raises(ConfigError, match="needs an fc layer"):
        build(cfg(num_classes=10, d_layers=d))
