import io
import json
import math
import os
import pickle
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from ganforge import models
from ganforge.config import DataConfig, ModelConfig
from ganforge.errors import ConfigError
from ganforge.models.stylegan2 import Discriminator, Generator, OfficialStateError, importer, load_official_state, ops
from ganforge.models.stylegan2.layers import MinibatchStdLayer

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "stylegan2-ada"
TOL = 1e-4


# ----------------------------------------------------------------- agreement with the official networks
@pytest.fixture(scope="module")
def official():
    if not (FIXTURES / "tiny.json").exists():
        pytest.skip(f"stylegan2-ada reference fixtures not found at {FIXTURES}")
    meta = json.loads((FIXTURES / "tiny.json").read_text())
    G = load_official_state(Generator(**meta["G_init_kwargs"]), FIXTURES / "tiny_G.npz").eval()
    D = load_official_state(Discriminator(**meta["D_init_kwargs"]), FIXTURES / "tiny_D.npz").eval()
    with np.load(FIXTURES / "tiny_G_reference.npz") as g, np.load(FIXTURES / "tiny_D_reference.npz") as d:
        ref = {k: torch.from_numpy(g[k]) for k in g.files} | {"D." + k: torch.from_numpy(d[k]) for k in d.files}
    assert G.num_ws == meta["num_ws"]
    return G, D, ref


def max_err(a, b):
    assert a.shape == b.shape
    return (a - b).abs().max().item()


@torch.no_grad()
@pytest.mark.parametrize("key,psi", [("ws", 1), ("ws_psi0.7", 0.7)])
def test_mapping_matches_official(official, key, psi):
    G, _, ref = official
    assert max_err(G.mapping(ref["z"], None, truncation_psi=psi), ref[key]) < TOL


@torch.no_grad()
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("key,psi,noise_mode", [("img_const_psi1", 1, "const"), ("img_const_psi0.7", 0.7, "const"),
                                                ("img_none_psi1", 1, "none")])
def test_generator_matches_official(official, key, psi, noise_mode, fused):
    G, _, ref = official
    img = G(ref["z"], None, truncation_psi=psi, noise_mode=noise_mode, fused_modconv=fused)
    assert max_err(img, ref[key]) < TOL


@torch.no_grad()
def test_synthesis_of_mixed_styles_matches_official(official):
    G, _, ref = official
    assert max_err(G.synthesis(ref["ws_mixed"], noise_mode="const"), ref["img_mixed_const"]) < TOL


@torch.no_grad()
def test_discriminator_matches_official(official):
    _, D, ref = official
    assert max_err(D(ref["D.img"], None), ref["D.logits"]) < TOL


def test_random_noise_varies_and_const_noise_does_not(official):
    G, _, ref = official
    with torch.no_grad():
        a, b = (G(ref["z"][:1], None, noise_mode="random") for _ in range(2))
        c, d = (G(ref["z"][:1], None, noise_mode="const") for _ in range(2))
    assert not torch.equal(a, b) and torch.equal(c, d)


def test_loading_reports_the_offending_key(official):
    G, _, _ = official
    with np.load(FIXTURES / "tiny_G.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    fresh = Generator(**json.loads((FIXTURES / "tiny.json").read_text())["G_init_kwargs"])
    with pytest.raises(OfficialStateError, match="lack 'mapping.w_avg'"):
        load_official_state(fresh, {k: v for k, v in arrays.items() if k != "mapping.w_avg"})
    with pytest.raises(OfficialStateError, match=r"'synthesis.b4.const' has shape \[64, 2, 2\]"):
        load_official_state(fresh, arrays | {"synthesis.b4.const": np.zeros((64, 2, 2), np.float32)})
    with pytest.raises(OfficialStateError, match="'extra.weight'"):
        load_official_state(fresh, arrays | {"extra.weight": np.zeros(3, np.float32)})


# ----------------------------------------------------------------- ops and layers
def test_fir_upsampling_keeps_a_constant_image_constant():
    f = ops.setup_filter([1, 3, 3, 1])
    x = torch.full((1, 2, 8, 8), 0.75)
    up = ops.upsample2d(x, f)
    assert up.shape == (1, 2, 16, 16)
    assert torch.allclose(up[:, :, 2:-2, 2:-2], torch.full_like(up[:, :, 2:-2, 2:-2], 0.75), atol=1e-6)
    down = ops.downsample2d(x, f)
    assert down.shape == (1, 2, 4, 4)
    assert torch.allclose(down[:, :, 1:-1, 1:-1], torch.full((1, 2, 2, 2), 0.75), atol=1e-6)


def test_conv2d_resample_upsampling_equals_zero_insertion_then_convolution():
    torch.manual_seed(0)
    x, w, f = torch.randn(2, 3, 5, 5), torch.randn(4, 3, 3, 3), ops.setup_filter([1, 3, 3, 1])
    fast = ops.conv2d_resample(x, w, f=f, up=2, padding=1, flip_weight=False)
    # All the padding goes in before the filter: zero-padding the filtered signal would differ at the border.
    slow = ops.upfirdn2d(x, f, up=2, padding=(3, 2, 3, 2), gain=4)
    slow = torch.nn.functional.conv2d(slow, w.flip([2, 3]))
    assert fast.shape == (2, 4, 10, 10) and max_err(fast, slow) < 1e-5


@pytest.mark.parametrize("down", [1, 2])
def test_symmetric_fir_padding_in_the_convolution_equals_padding_first(down):
    # upfirdn2d leaves symmetric zero padding to conv2d; asymmetric or negative padding pads/crops a copy.
    torch.manual_seed(0)
    x, f = torch.randn(2, 3, 8, 8, requires_grad=True), ops.setup_filter([1, 3, 3, 1])
    inside = ops.upfirdn2d(x, f, down=down, padding=2)
    first = ops.upfirdn2d(torch.nn.functional.pad(x, [2, 2, 2, 2]), f, down=down, padding=(0, 0, 0, 0))
    uneven = ops.upfirdn2d(x, f, down=down, padding=(2, 2, 2, 3))[:, :, :inside.shape[2]]
    assert inside.shape == first.shape == (2, 3, 8 // down + 1, 8 // down + 1)
    assert max_err(inside, first) < 1e-6 and max_err(inside, uneven) < 1e-6
    g1, = torch.autograd.grad(inside.square().sum(), x)
    g2, = torch.autograd.grad(first.square().sum(), x)
    assert max_err(g1, g2) < 1e-5


@pytest.mark.parametrize("act,bias", [("lrelu", True), ("lrelu", False), ("linear", True), ("relu", True),
                                      ("linear", False)])
def test_bias_act_gradients_match_the_plain_formula(act, bias):
    # bias_act scales in place where that is safe; gradients (also second order, as R1 needs) must not change.
    torch.manual_seed(0)
    x = torch.randn(2, 4, 3, 3, requires_grad=True)
    b = torch.randn(4, requires_grad=True) if bias else None
    fn = {"lrelu": lambda v: torch.nn.functional.leaky_relu(v, 0.2), "relu": torch.relu, "linear": lambda v: v}[act]
    gain = 1.0 if act == "linear" else math.sqrt(2)
    for g in (gain, 3.0):
        y = ops.bias_act(x, b, act=act, gain=g)
        ref = fn(x + (b.reshape(1, -1, 1, 1) if bias else 0)) * g
        assert max_err(y, ref) < 1e-6
        if bias:
            grad_b = [torch.autograd.grad(v.square().sum(), b, retain_graph=True)[0] for v in (y, ref)]
            assert torch.allclose(*grad_b, rtol=1e-6, atol=1e-5)
        gy, = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        gr, = torch.autograd.grad(ref.square().sum(), x, create_graph=True)
        assert max_err(gy, gr) < 1e-5
        assert max_err(torch.autograd.grad(gy.sum(), x)[0], torch.autograd.grad(gr.sum(), x)[0]) < 1e-5
        with torch.no_grad():  # inference keeps the official operation order, bit for bit
            assert torch.equal(ops.bias_act(x, b, act=act, gain=g), ref)
    if act == "linear" and not bias:
        assert ops.bias_act(x, None, gain=2.0) is not x and torch.equal(x, x.detach())  # input left alone


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "autocast"])
def test_pointwise_conv_in_bfloat16_on_cpu_is_a_matrix_product(layout):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 5)
    w = torch.randn(6, 3, 1, 1)
    ref = torch.nn.functional.conv2d(x, w)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    cast = (lambda t: t) if layout == "autocast" else (lambda t: t.to(torch.bfloat16))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=layout == "autocast"):
        assert ops._bf16_on_cpu(cast(x)) and not ops._bf16_on_cpu(x.double())
        y = ops.conv2d_resample(cast(x), cast(w))
    assert y.dtype == torch.bfloat16 and y.shape == (2, 6, 5, 5)
    assert y.is_contiguous(memory_format=torch.channels_last) == (layout == "channels_last")
    assert max_err(y.float(), ref) < 0.02 * ref.abs().max()
    # float32 keeps the convolution (and with it bit-exact parity with the official networks)
    assert torch.equal(ops.conv2d_resample(x, w), torch.nn.functional.conv2d(x, w))


def test_r1_through_a_bfloat16_rgb_pointwise_conv_survives_the_shape_onednn_dies_on():
    # A subprocess, since the failure is SIGFPE (on CPUs with AMX tiles; elsewhere this passes either way):
    # batch 8 x 256 x 256 = 2^19, 3 -> 64 channels. `ganforge train` reaches it through reduced-precision
    # blocks (num_fp16_res); autocast, which takes the same path here, stands in for them.
    code = """if True:
        import torch
        from ganforge.models.stylegan2 import ops
        torch.manual_seed(0)
        x = torch.randn(8, 3, 256, 256, requires_grad=True)
        w = torch.randn(64, 3, 1, 1, requires_grad=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = ops.conv2d_resample(x, w).float()
        g, = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        g.square().sum().backward()
        print(bool(torch.isfinite(w.grad).all()), w.grad.abs().sum().item() > 0)
    """
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert (proc.returncode, proc.stdout.split()) == (0, ["True", "True"]), proc.stderr[-2000:]


def test_minibatch_std_groups():
    torch.manual_seed(0)
    x = torch.randn(6, 4, 2, 2)
    y = MinibatchStdLayer(group_size=4)(x)  # 6 is not a multiple of 4: groups of 3
    assert y.shape == (6, 5, 2, 2)
    groups = x.reshape(3, 2, 4, 2, 2)  # sample i is in group i % 2
    std = (groups.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=[1, 2, 3])
    assert torch.allclose(y[:, 4, 0, 0], std.repeat(3), atol=1e-6)


# ----------------------------------------------------------------- ganforge family
def build(res=16, classes=0, channels=3, width=16, z_dim=16):
    family = "cstylegan2" if classes else "stylegan2"
    return models.build(ModelConfig(family=family, z_dim=z_dim, resolution=res, channels=channels,
                                    num_classes=classes, g_width=width, d_width=width))


@pytest.mark.parametrize("res,num_ws", [(16, 6), (64, 10)])
def test_family_shapes(res, num_ws):
    G, D = build(res)
    x = G(torch.randn(2, 16))
    assert x.shape == (2, 3, res, res) and torch.isfinite(x).all()
    assert D(x).shape == (2,)
    assert G.num_ws == num_ws and G.mapping(torch.randn(2, 16), None).shape == (2, num_ws, 16)
    assert G.img_shape == (3, res, res) and G.z_dim == 16


def test_family_rejects_unsupported_settings():
    with pytest.raises(ConfigError, match="power-of-two"):
        build(res=28)
    with pytest.raises(ConfigError, match="needs class labels"):
        models.build(ModelConfig(family="cstylegan2", resolution=16, num_classes=0))


def test_conditional_networks_take_indices_or_one_hot():
    G, D = build(classes=5, channels=1)
    G.eval()
    z, c = torch.randn(1, 16).repeat(2, 1), torch.tensor([0, 3])
    one_hot = torch.nn.functional.one_hot(c, 5).float()
    with torch.no_grad():
        a = G(z, c, noise_mode="const")
        assert torch.equal(a, G(z, one_hot, noise_mode="const"))
        assert not torch.allclose(a[0], a[1])
        assert torch.equal(D(a, c), D(a, one_hot)) and D(a, c).shape == (2,)
    with pytest.raises(ValueError, match="class-conditional"):
        G(z)


def test_truncation_and_w_avg_tracking():
    G, _ = build()
    z = torch.randn(4, 16)
    G.train()
    G.mapping(z, None)  # training-mode forwards move w_avg towards the batch mean
    assert G.mapping.w_avg.abs().sum() > 0
    G.eval()
    with torch.no_grad():
        ws = G.mapping(z, None)
        assert torch.allclose(G.mapping(z, None, truncation_psi=0), G.mapping.w_avg.expand_as(ws))
        cut = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
    assert torch.allclose(cut[:, :2], G.mapping.w_avg.lerp(ws[:, :2], 0.5)) and torch.equal(cut[:, 2:], ws[:, 2:])


@pytest.mark.parametrize("family,overrides", [("stylegan2", {"loss": "ns"}),
                                              ("cstylegan2", {"loss": "hinge", "r1_gamma": 1.0})])
def test_trainer_steps(tiny_cfg, family, overrides):
    from ganforge.data import load_dataset
    from ganforge.train.trainer import Trainer

    tiny_cfg.data.resolution = 16
    tiny_cfg.model.family = family
    tiny_cfg.train.batch_size = 6  # not a multiple of the minibatch-std group size
    for k, v in overrides.items():
        setattr(tiny_cfg.train, k, v)
    data = load_dataset(DataConfig(source="digits", resolution=16, cache=False))
    tr = Trainer(tiny_cfg, data)
    before = {k: v.clone() for k, v in tr.G.state_dict().items()}
    metrics = [tr.step() for _ in range(2)]
    assert all(math.isfinite(m["loss_d"]) and math.isfinite(m["loss_g"]) for m in metrics)
    assert any(not torch.equal(before[k], v) for k, v in tr.G.state_dict().items())
    c = torch.tensor([1, 2]) if family == "cstylegan2" else None
    assert tr.sample(torch.randn(2, tiny_cfg.model.z_dim), c).shape == (2, 1, 16, 16)


# ----------------------------------------------------------------- official pickles, read without running code
SMALL_G = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, mapping_kwargs=dict(num_layers=2),
               synthesis_kwargs=dict(channel_base=256, channel_max=16, num_fp16_res=0, conv_clamp=None))
SMALL_D = dict(c_dim=0, img_resolution=16, img_channels=3, architecture="resnet", channel_base=256, channel_max=16,
               block_kwargs={}, mapping_kwargs={}, epilogue_kwargs=dict(mbstd_group_size=4))


def official_style_pickle(data, init_kwargs, monkeypatch, module_src, protocol=4) -> bytes:
    """Pickle ``data`` the way stylegan2-ada-pytorch does: every module as a persistent object."""
    def _reconstruct_persistent_obj(meta):  # the official one would run meta['module_src']
        raise AssertionError("the importer must not call the official reconstructor")

    class EasyDict(dict):
        pass

    fakes = {"torch_utils": types.ModuleType("torch_utils"), "dnnlib": types.ModuleType("dnnlib"),
             "torch_utils.persistence": types.ModuleType("torch_utils.persistence"),
             "dnnlib.util": types.ModuleType("dnnlib.util")}
    for obj, module in ((_reconstruct_persistent_obj, "torch_utils.persistence"), (EasyDict, "dnnlib.util")):
        obj.__module__, obj.__qualname__ = module, obj.__name__
        setattr(fakes[module], obj.__name__, obj)
    for name, mod in fakes.items():
        monkeypatch.setitem(sys.modules, name, mod)

    class OfficialPickler(pickle.Pickler):
        def reducer_override(self, obj):
            if not isinstance(obj, torch.nn.Module):
                return NotImplemented
            state = dict(obj.__dict__, _init_args=(), _init_kwargs=EasyDict(init_kwargs.get(id(obj), {})),
                         weight_gain_np=np.float64(0.125))  # official layers keep numpy scalars
            meta = dict(type="class", version=6, module_src=module_src, class_name=type(obj).__name__, state=state)
            return _reconstruct_persistent_obj, (meta,)

    buf = io.BytesIO()
    OfficialPickler(buf, protocol=protocol).dump(dict(data, training_set_kwargs=EasyDict(resolution=np.int64(16))))
    return buf.getvalue()


@pytest.mark.parametrize("protocol", [2, 4])
def test_importer_rebuilds_networks_from_an_official_style_pickle(tmp_path, monkeypatch, protocol):
    torch.manual_seed(0)
    G, D = Generator(**SMALL_G).eval(), Discriminator(**SMALL_D).eval()
    G.mapping.w_avg.normal_()
    sentinel = tmp_path / "pwned"
    src = f"open({str(sentinel)!r}, 'w').write('module source was executed')"
    blob = official_style_pickle({"G_ema": G, "D": D, "augment_pipe": None},
                                 {id(G): SMALL_G, id(D): SMALL_D}, monkeypatch, src, protocol)
    monkeypatch.undo()  # the importer must work without torch_utils / dnnlib around
    nets = importer.import_networks(io.BytesIO(blob))
    raw = importer.load_pickle(io.BytesIO(blob))
    assert raw["training_set_kwargs"].resolution == 16 and raw["G_ema"].module_src == src
    assert raw["G_ema"].init_kwargs == SMALL_G
    z = torch.randn(3, 8)
    with torch.no_grad():
        img = G(z, None, truncation_psi=0.5, noise_mode="const")
        assert torch.equal(nets["G_ema"](z, None, truncation_psi=0.5, noise_mode="const"), img)
        assert torch.equal(nets["D"](img, None), D(img, None))
    assert not sentinel.exists()


class _RunsCode:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("payload", [_RunsCode, lambda cmd: {"G_ema": {"_modules": [_RunsCode(cmd)]}}])
def test_importer_refuses_pickles_that_run_code(tmp_path, payload):
    sentinel = tmp_path / "pwned"
    blob = pickle.dumps(payload(f"touch {sentinel}"))
    with pytest.raises(importer.UnsafePickleError, match=r"refusing to load '(os|posix|nt)\.system'"):
        importer.import_networks(io.BytesIO(blob))
    for name in ("eval", "exec", "getattr", "__import__"):
        with pytest.raises(importer.UnsafePickleError, match=f"builtins.{name}"):
            importer.load_pickle(io.BytesIO(b"cbuiltins\n" + name.encode() + b"\n(S'1'\ntR."))
    assert not sentinel.exists()


class _HiddenInStorage:
    """Pickles as the official tensor-storage call with bytes that are a torch file holding code."""

    def __init__(self, command):
        buf = io.BytesIO()
        torch.save(_RunsCode(command), buf)
        self.data = buf.getvalue()

    def __reduce__(self):
        return torch.storage._load_from_bytes, (self.data,)


def test_importer_refuses_a_pickle_hidden_in_tensor_data_in_its_own_words(tmp_path):
    sentinel = tmp_path / "pwned"
    blob = pickle.dumps({"G_ema": _HiddenInStorage(f"touch {sentinel}")})
    with pytest.raises(importer.UnsafePickleError) as e:
        importer.load_pickle(io.BytesIO(blob))
    # the name asked for is as torch's refusal spells it (here posix.system)
    assert re.fullmatch(r"refused: the file holds a pickle inside a tensor's data \(it asks for [\w.]*system\), "
                        "which ganforge never runs", str(e.value))
    assert e.value.__cause__ is None and e.value.__suppress_context__  # torch's advice is not chained on
    assert not sentinel.exists()
