import os

import pytest
import torch
from safetensors.torch import save_file

from ganforge.errors import EvalError
from ganforge.metrics.lpips import LPIPS, LPIPSWeightsError, default_lpips_path, load_lpips, normalize_channels

CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]


class _RunsCode:
    """Unpickling this would run a shell command."""

    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return os.system, (self.cmd,)


@pytest.fixture(scope="module")
def vgg_state():
    """A randomly initialised VGG16 trunk with torchvision's key names, and random LPIPS weights."""
    torch.manual_seed(0)
    trunk = LPIPS().state_dict()
    lin = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate((64, 128, 256, 512, 512))}
    return trunk, lin


@pytest.fixture(scope="module")
def weights(vgg_state, tmp_path_factory):
    trunk, lin = vgg_state
    d = tmp_path_factory.mktemp("vgg")
    save_file(trunk, str(d / "vgg16.safetensors"))
    save_file(trunk | lin, str(d / "vgg16-lpips.safetensors"))
    return d / "vgg16.safetensors", d / "vgg16-lpips.safetensors"


def images(seed, n=2, c=3, size=16):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_layout_matches_torchvision_vgg16_features():
    keys = LPIPS().state_dict()
    assert sorted({int(k.split(".")[1]) for k in keys}) == CONV_INDICES
    assert keys["features.28.weight"].shape == (512, 512, 3, 3) and keys["features.0.weight"].shape == (64, 3, 3, 3)
    assert set(LPIPS(lin=True).state_dict()) - set(keys) == {f"lin{k}.model.1.weight" for k in range(5)}
    taps = LPIPS().features(images(0, size=64))
    assert [tuple(t.shape[1:]) for t in taps] == [(64, 64, 64), (128, 32, 32), (256, 16, 16), (512, 8, 8),
                                                   (512, 4, 4)]
    assert torch.allclose(taps[2].norm(dim=1), torch.ones(2, 16, 16), atol=1e-4)  # unit length across channels


@pytest.mark.parametrize("with_lin", [False, True])
def test_loaded_distance_properties(weights, vgg_state, with_lin):
    net = load_lpips(weights[with_lin])
    assert net.has_lin == with_lin and not net.training
    assert not any(p.requires_grad for p in net.parameters())
    want = vgg_state[0] | (vgg_state[1] if with_lin else {})
    assert all(torch.equal(net.state_dict()[k], v) for k, v in want.items())
    x, y = images(1), images(2)
    d = net(x, y)
    assert d.shape == (2,) and torch.all(d > 0)
    assert torch.equal(net(x, x), torch.zeros(2))
    assert torch.allclose(net(y, x), d, rtol=1e-5)
    gray = net(images(1, c=1), images(2, c=1))  # 1-channel images are repeated to 3
    assert gray.shape == (2,) and torch.allclose(gray, net(images(1, c=1).expand(-1, 3, -1, -1),
                                                           images(2, c=1).expand(-1, 3, -1, -1)))
    # Gradients reach the inputs (the projector needs them) though the network itself is frozen.
    x.requires_grad_(True)
    net(x, y).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())


def test_without_lin_weights_channels_weigh_equally(vgg_state):
    plain = LPIPS()
    plain.load_state_dict(vgg_state[0])
    fx, fy = plain.features(images(3)), plain.features(images(4))
    want = sum((a - b).square().mean(dim=(1, 2, 3)) for a, b in zip(fx, fy))
    assert torch.allclose(plain.distance_features(fx, fy), want)
    weighted = LPIPS(lin=True)  # fresh lin weights are 1/C: the same distance
    weighted.load_state_dict(vgg_state[0], strict=False)
    assert torch.allclose(weighted(images(3), images(4)), plain(images(3), images(4)), rtol=1e-5)


def test_resizing_of_small_and_large_images():
    net = LPIPS(widths=(4, 4, 4, 4, 4))
    assert net.features(images(0, size=16))[0].shape[-1] == 64  # under 32 px: upsampled to 64
    assert net.features(images(0, n=1, size=300))[0].shape[-1] == 256  # over 256 px: area-downsampled
    assert net.features(images(0, n=1, size=48))[0].shape[-1] == 48
    x = normalize_channels(torch.zeros(1, 3, 2, 2))
    assert torch.equal(x, torch.zeros(1, 3, 2, 2))  # eps: no division by zero


def test_pt_files_and_other_key_layouts(vgg_state, tmp_path):
    trunk, lin = vgg_state
    torchvision_style = trunk | {"classifier.0.weight": torch.zeros(2, 2)}  # a full vgg16 state dict
    torch.save(torchvision_style, tmp_path / "vgg16.pth")
    assert not load_lpips(tmp_path / "vgg16.pth").has_lin
    # The lpips package's own model: trunk under net.sliceK.N (torchvision's numbering kept).
    slices = {f"net.slice{1 + sum(int(k.split('.')[1]) > b for b in (3, 8, 15, 22))}.{k[len('features.'):]}": v
              for k, v in trunk.items()}
    torch.save(slices | lin | {"scaling_layer.shift": torch.zeros(1, 3, 1, 1)}, tmp_path / "lpips.pt")
    net = load_lpips(tmp_path / "lpips.pt")
    assert net.has_lin and torch.equal(net.state_dict()["features.17.weight"], trunk["features.17.weight"])


def test_bad_weights_files_raise_one_line_errors(vgg_state, tmp_path):
    trunk, lin = vgg_state
    sentinel = tmp_path / "pwned"
    torch.save({"weights": _RunsCode(f"touch {sentinel}")}, tmp_path / "evil.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    save_file({"foo.weight": torch.zeros(3)}, str(tmp_path / "other.safetensors"))
    save_file(trunk | {"features.0.weight": torch.zeros(64, 1, 3, 3)}, str(tmp_path / "shape.safetensors"))
    save_file(trunk | {"lin0.model.1.weight": lin["lin0.model.1.weight"]}, str(tmp_path / "somelin.safetensors"))
    (tmp_path / "vgg.h5").write_bytes(b"x")
    cases = {"missing.safetensors": "not found",
             "evil.pt": r"refused: the file holds pickled objects other than tensors \(it asks for .*system\), which "
                        "ganforge never runs",
             "junk.safetensors": "not a readable state dict", "other.safetensors": "missing 'features.0.weight'",
             "shape.safetensors": r"'features.0.weight' has shape \[64, 1, 3, 3\], VGG16 needs \[64, 3, 3, 3\]",
             "somelin.safetensors": "lin0..lin4", "vgg.h5": "unknown weights format"}
    for name, match in cases.items():
        with pytest.raises(LPIPSWeightsError, match=match) as e:
            load_lpips(tmp_path / name)
        msg = str(e.value)
        assert name in msg and "\n" not in msg and "pass a .safetensors" in msg  # says what to pass instead
        assert "weights_only" not in msg  # never the advice to load it with code execution on
        assert isinstance(e.value, ValueError) and isinstance(e.value, EvalError)
    assert not sentinel.exists()


def test_default_path(tmp_path, monkeypatch):
    monkeypatch.delenv("GANFORGE_VGG16", raising=False)
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    assert default_lpips_path() is None
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "vgg16-lpips.safetensors").write_bytes(b"")
    assert default_lpips_path() == tmp_path / "cache" / "vgg16-lpips.safetensors"
    monkeypatch.setenv("GANFORGE_VGG16", str(tmp_path / "mine.pt"))
    assert default_lpips_path() == tmp_path / "mine.pt"
