"""StyleGAN2 training: lazy R1, path length, style mixing, EMA half-life, ADA, presets and mixed precision."""
import json
import math

import pytest
import torch

from conftest import straight_and_resumed
from ganforge import models
from ganforge.cli import main
from ganforge.config import DataConfig, ModelConfig, RunConfig
from ganforge.data import load_dataset
from ganforge.errors import ConfigError
from ganforge.models.stylegan2 import set_precision
from ganforge.train import regularizers as reg
from ganforge.train.presets import PRESETS, preset_config
from ganforge.train.trainer import Trainer


@pytest.fixture
def sg2_cfg(tiny_cfg):
    """A tiny class-conditional StyleGAN2 on the 8x8 digits with every StyleGAN2 training feature on."""
    cfg = tiny_cfg
    cfg.model.family = "cstylegan2"
    cfg.model.g_width = cfg.model.d_width = 16
    cfg.train.loss = "ns"
    cfg.train.r1_gamma, cfg.train.r1_every = 1.0, 2
    cfg.train.pl_weight, cfg.train.pl_every = 2.0, 2
    cfg.train.style_mixing = 0.9
    cfg.train.ema_kimg, cfg.train.ema_rampup = 0.05, 0.05
    cfg.train.ada_target, cfg.train.ada_interval, cfg.train.ada_kimg = 0.6, 1, 0.5
    cfg.train.precision = "fp32"
    return cfg


def test_lazy_regularisation_retunes_adam():
    lr, betas = reg.lazy_adam(0.0025, (0.0, 0.99), 16)
    assert lr == pytest.approx(0.0025 * 16 / 17)
    assert betas == (0.0, pytest.approx(0.99 ** (16 / 17)))
    assert reg.lazy_adam(0.001, (0.5, 0.9), 1) == (0.001, (0.5, 0.9))


def test_ema_half_life_is_in_images():
    beta = reg.ema_beta(batch_size=32, images_seen=10**6, ema_kimg=10, ema_rampup=0)
    assert beta ** (10_000 / 32) == pytest.approx(0.5)
    # Ramp-up: early on the half-life is a fraction of the images seen, so young averages move quickly.
    early = reg.ema_beta(batch_size=32, images_seen=3200, ema_kimg=10, ema_rampup=0.05)
    assert early ** (3200 * 0.05 / 32) == pytest.approx(0.5)


def test_stylegan2_step_runs_every_regulariser(sg2_cfg, digits):
    tr = Trainer(sg2_cfg, digits)
    assert tr.opt_D.param_groups[0]["lr"] == pytest.approx(sg2_cfg.train.d_lr * 2 / 3)
    assert tr.opt_G.param_groups[0]["betas"][1] == pytest.approx(0.999 ** (2 / 3))
    first = tr.step()  # step 0: both lazy regularisers are due
    assert first["r1"] > 0 and first["pl_penalty"] >= 0
    assert first["pl_mean"] > 0  # the running mean moved off zero
    assert "ada_p" in first
    second = tr.step()
    assert "r1" not in second and "pl_penalty" not in second
    for _ in range(2):
        last = tr.step()
    # D is sure about reals at the start (r_t > 0.6 or not): p moves by exactly one increment per step.
    assert last["ada_p"] == pytest.approx(round(last["ada_p"] / (8 / 500)) * (8 / 500))
    assert all(torch.isfinite(p).all() for p in tr.G.parameters())


def test_a_batch_of_one_takes_the_path_length_penalty_on_one_image(sg2_cfg, digits):
    sg2_cfg.train.batch_size = 1  # below pl_batch_shrink (2): the penalty's batch is still one image
    first = Trainer(sg2_cfg, digits).step()
    assert math.isfinite(first["pl_penalty"]) and first["pl_mean"] > 0


def test_stylegan2_resume_is_bit_identical(tmp_path, sg2_cfg, digits):
    sg2_cfg.train.steps = 4
    straight, resumed = straight_and_resumed(sg2_cfg, digits, tmp_path, stop_at=2)
    a, _ = straight.trainer.state()
    b, _ = resumed.trainer.state()
    for k in a:
        if k.split(".")[0] in ("G", "G_ema", "D", "opt_G", "opt_D", "pl_mean"):
            assert torch.equal(a[k], b[k]), k
    assert straight.trainer.ada.p == resumed.trainer.ada.p


@pytest.mark.parametrize("field", ["style_mixing", "pl_weight"])
def test_mapping_features_need_a_mapping_network(tiny_cfg, digits, field):
    setattr(tiny_cfg.train, field, 0.5)
    with pytest.raises(ConfigError, match="needs a generator with a mapping network"):
        Trainer(tiny_cfg, digits)


@pytest.mark.parametrize("field,value,message", [
    ("r1_every", 0, "r1_every must be a positive"), ("style_mixing", 1.5, "style_mixing must lie in"),
    ("ada_p", -0.1, "ada_p must lie in"), ("ema_kimg", -1, "ema_kimg must be a finite number, 0 or more")])
def test_bad_stylegan2_settings(sg2_cfg, digits, field, value, message):
    setattr(sg2_cfg.train, field, value)
    with pytest.raises(ConfigError, match=message):
        Trainer(sg2_cfg, digits)


def test_path_length_mean_follows_its_decay():
    torch.manual_seed(0)
    G, _ = models.build(ModelConfig(family="stylegan2", z_dim=8, g_width=8, d_width=8, resolution=8, channels=1))
    pl = reg.PathLength(decay=0.5)
    gen = torch.Generator().manual_seed(0)
    penalty = pl.penalty(G, torch.randn(4, 8), None, 0.0, gen)
    assert penalty.requires_grad and penalty.item() >= 0
    first = pl.mean.item()
    assert first > 0
    pl.penalty(G, torch.randn(4, 8), None, 0.0, gen)
    assert pl.mean.item() != first  # keeps moving: 0.5 of the way to each new batch mean


def test_architecture_options_build_the_asked_networks():
    cfg = ModelConfig(family="stylegan2", z_dim=8, g_width=32, d_width=32, resolution=16, channels=1,
                      options={"mapping_layers": 3, "w_dim": 24, "channel_base": 128, "d_architecture": "orig",
                               "mbstd_group": 2})
    G, D = models.build(cfg)
    assert G.mapping.num_layers == 3 and G.w_dim == 24
    assert G.synthesis.b16.conv1.weight.shape[0] == 8  # channel_base 128 / 16 px
    assert not hasattr(D.b16, "skip")  # orig: no residual connection
    assert D.b4.mbstd.group_size == 2
    _, cD = models.build(ModelConfig(family="cstylegan2", resolution=16, channels=1, num_classes=10,
                                     options={"mapping_layers": 3}))
    assert cD.mapping.num_layers == 3  # as official: D's class mapping follows G's mapping depth
    assert G.mapping.fc0.weight_gain == pytest.approx(0.01 / math.sqrt(G.mapping.fc0.weight.shape[1]))
    cG, cD = models.build(ModelConfig(family="cstylegan2", resolution=16, channels=1, num_classes=10,
                                      options={"mapping_lr": 0.1}))
    for fc in (cG.mapping.fc1, cD.mapping.fc1):
        assert fc.weight_gain == pytest.approx(0.1 / math.sqrt(fc.weight.shape[1])) and fc.bias_gain == 0.1
    with pytest.raises(ConfigError, match="mapping_lr must be a number in \\(0, 1\\]"):
        models.build(ModelConfig(family="stylegan2", resolution=16, channels=1, options={"mapping_lr": 0}))
    with pytest.raises(ConfigError, match="mapping_layers must be a positive whole number"):
        models.build(ModelConfig(family="stylegan2", resolution=16, channels=1, options={"mapping_layers": 0}))
    with pytest.raises(ConfigError, match="not both"):
        models.build(ModelConfig(family="stylegan2", resolution=16, channels=1,
                                 options={"mapping_layers": 2, "G_kwargs": {}}))


def test_reduced_precision_blocks_stay_close_to_float32():
    torch.manual_seed(0)
    base = dict(family="stylegan2", z_dim=16, g_width=32, d_width=32, resolution=32, channels=3)
    G32, D32 = models.build(ModelConfig(**base))
    G16, D16 = models.build(ModelConfig(**base, options={"num_fp16_res": 2, "conv_clamp": 256}))
    for net in (G16, D16):  # asked for: 'auto' would be float32 on CPUs without fast bf16
        set_precision(net, "bf16")
    G16.load_state_dict(G32.state_dict())
    D16.load_state_dict(D32.state_dict())
    assert G16.synthesis.b32.use_fp16 and G16.synthesis.b16.use_fp16 and not G16.synthesis.b8.use_fp16
    z = torch.randn(4, 16)
    a, b = G32(z, noise_mode="const"), G16(z, noise_mode="const")
    assert b.dtype == torch.float32 and not torch.equal(a, b)  # really computed in bfloat16
    assert (a - b).abs().max() < 0.05 * a.abs().max()  # bfloat16 on CPU: about 3 significant digits
    assert (D32(a) - D16(a)).abs().max() < 0.05 * D32(a).abs().max() + 1e-3
    x = G16.train()(z)
    D16(x).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in G16.parameters() if p.grad is not None)


def test_pad_makes_mnist_32_pixels():
    data = load_dataset(DataConfig(source="digits", resolution=8, pad=2))
    assert data.images.shape[1:] == (1, 12, 12)
    assert data.images[:, :, :2].max() == 0 and data.images[:, :, :, -2:].max() == 0
    with pytest.raises(ValueError, match="pad must be a whole number"):
        load_dataset(DataConfig(source="digits", pad=-1))


def test_integer_betas_from_json_are_accepted(sg2_cfg, digits):
    d = sg2_cfg.to_dict()
    d["train"]["g_betas"] = [0, 0.99]
    tr = Trainer(RunConfig.from_dict(d), digits)
    assert tr.opt_G.param_groups[0]["betas"][0] == 0.0


def test_presets_are_complete_configs():
    for name in (n for n in PRESETS if n != "progan"):  # progan's preset: tests/test_progan.py
        cfg = RunConfig.from_dict(preset_config(name).to_dict())  # round-trips through JSON-able dicts
        assert cfg.model.family in ("stylegan2", "cstylegan2")
        assert cfg.train.loss == "ns" and cfg.train.r1_every == 16
    paper = preset_config("paper256")
    assert paper.data.resolution == 256 and paper.train.batch_size == 64
    assert paper.model.options["channel_base"] == 16384 and paper.train.ema_kimg == 20
    assert preset_config("stylegan2-mnist").data.pad == 2
    with pytest.raises(ConfigError, match="unknown preset"):
        preset_config("nope")


def test_gpu_presets_warn_on_a_cpu(tmp_path, capsys):
    # The warning comes before any data is read, so a missing folder ends the run right after it.
    assert main(["train", str(tmp_path / "missing"), "--preset", "paper256", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "warning: preset paper256 is sized for a GPU" in err and "not found" in err
    assert main(["train", str(tmp_path / "missing"), "--preset", "stylegan2-mnist", "--device", "cpu"]) == 2
    assert "warning" not in capsys.readouterr().err


def test_cli_preset_trains_and_flags_override(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "digits", "--preset", "stylegan2-mnist", "--resolution", "12", "--steps", "2",
                 "--g-width", "8", "--d-width", "8", "--batch-size", "8", "--out", str(out), "--quiet"])
    assert code == 0
    cfg = RunConfig.load(out)
    assert cfg.model.family == "cstylegan2" and cfg.data.pad == 2 and cfg.model.resolution == 16  # 12 + 2 * 2
    assert cfg.data.resolution == 12  # before the border: loading the config again must not pad twice
    assert cfg.model.g_width == 8 and cfg.train.r1_every == 16 and cfg.train.batch_size == 8
    assert load_dataset(cfg.data).resolution == 16
    assert main(["train", "--resume", str(out), "--steps", "3", "--quiet"]) == 0
    assert "resuming" in capsys.readouterr().out
    # A run saved by version 1 recorded the padded size; loading it migrates the config.
    old = cfg.to_dict() | {"version": 1}
    old["data"]["resolution"] = 16
    migrated = RunConfig.from_dict(old)
    assert (migrated.data.resolution, migrated.version) == (12, 2)
    assert main(["train", "--preset", "paper256", "--steps", "1"]) == 2
    assert "preset paper256 needs DATA" in capsys.readouterr().err


def test_half_life_ema_moves_by_the_formula(sg2_cfg, digits):
    sg2_cfg.train.ada_target = 0.0
    sg2_cfg.train.ema_rampup = 0.0
    tr = Trainer(sg2_cfg, digits)
    before = {k: v.clone() for k, v in tr.G_ema.state_dict().items()}
    tr.step()
    beta = 0.5 ** (8 / 50)  # batch 8, half-life 0.05 kimg = 50 images
    name = "mapping.fc0.weight"
    expect = before[name] * beta + tr.G.state_dict()[name] * (1 - beta)
    assert torch.allclose(tr.G_ema.state_dict()[name], expect, atol=1e-6)
    assert math.isclose(beta ** (50 / 8), 0.5)


def test_init_fine_tunes_from_another_runs_networks(tmp_path, capsys):
    base = ["digits", "--resolution", "16", "--family", "stylegan2", "--g-width", "8", "--d-width", "8",
            "--z-dim", "8", "--batch-size", "8", "--loss", "ns", "--quiet"]
    assert main(["train", *base, "--steps", "1", "--out", str(tmp_path / "a")]) == 0
    a = load_dataset(DataConfig(source="digits", resolution=16))
    from ganforge.storage.checkpoint import load_checkpoint
    from ganforge.train.trainer import init_weights

    cfg = RunConfig.load(tmp_path / "a")
    cfg.train.seed = 7  # a different initialisation, overwritten by the weights of run a
    tr = Trainer(cfg, a)
    tensors, _ = load_checkpoint(tmp_path / "a")
    assert init_weights(tr, str(tmp_path / "a"), tensors, cfg) == ["D", "G", "G_ema"]
    assert torch.equal(tr.G.mapping.fc0.weight, tensors["G.mapping.fc0.weight"])
    assert torch.equal(tr.D.b4.out.weight, tensors["D.b4.out.weight"])
    # From the command line; the model comes from the init run even when other sizes are asked for.
    assert main(["train", "digits", "--resolution", "16", "--init", str(tmp_path / "a"), "--steps", "1",
                 "--batch-size", "8", "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert "initialised D, G, G_ema from" in capsys.readouterr().out
    assert RunConfig.load(tmp_path / "b").model.g_width == 8
    assert main(["train", "digits", "--resolution", "8", "--init", str(tmp_path / "a"), "--steps", "1"]) == 2
    assert "draws resolution 16 but this data gives 8: train with --resolution 16" in capsys.readouterr().err


def test_channels_last_auto_is_on_for_stylegan2_on_x86_cpus_only(monkeypatch, sg2_cfg, digits, tmp_path):
    from ganforge.devices import resolve_channels_last

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    assert resolve_channels_last("auto", "stylegan2", cpu) and resolve_channels_last("auto", "cstylegan2", cpu)
    assert not resolve_channels_last("auto", "cdcgan", cpu)
    assert not resolve_channels_last("auto", "stylegan2", cuda)
    assert resolve_channels_last(True, "mlp", cuda) and not resolve_channels_last(False, "stylegan2", cpu)
    monkeypatch.setattr("platform.machine", lambda: "arm64")
    assert not resolve_channels_last("auto", "stylegan2", cpu)
    with pytest.raises(ConfigError, match="channels_last must be true, false or auto, got 'yes'"):
        resolve_channels_last("yes", "stylegan2", cpu)

    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    assert sg2_cfg.train.channels_last == "auto"  # the default
    conv = "synthesis.b8.conv0.weight"
    assert Trainer(sg2_cfg, digits).G.get_parameter(conv).is_contiguous(memory_format=torch.channels_last)
    sg2_cfg.train.channels_last = False
    assert Trainer(sg2_cfg, digits).G.get_parameter(conv).is_contiguous()
    # The command line: neither flag leaves auto in the run's config, --no-channels-last turns it off.
    base = ["train", "digits", "--resolution", "8", "--family", "stylegan2", "--g-width", "8", "--d-width", "8",
            "--batch-size", "8", "--loss", "ns", "--steps", "1", "--quiet"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--no-channels-last", "--out", str(tmp_path / "b")]) == 0
    assert main(["train", "--preset", "stylegan2-mnist", "digits", "--resolution", "4", "--g-width", "8",
                 "--d-width", "8", "--batch-size", "8", "--steps", "1", "--no-channels-last", "--quiet",
                 "--out", str(tmp_path / "c")]) == 0
    assert [RunConfig.load(tmp_path / r).train.channels_last for r in "abc"] == ["auto", False, False]


def _load_kimg_benchmark():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "stylegan2_kimg.py"
    spec = importlib.util.spec_from_file_location("stylegan2_kimg", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kimg_benchmark_times_whole_cycles_of_a_shrunk_preset(capsys):
    bench = _load_kimg_benchmark()
    options = '{"mapping_layers": 2, "w_dim": 16, "channel_base": 256, "mbstd_group": 4, "num_fp16_res": 1, ' \
              '"conv_clamp": 256}'
    out = bench.main(["--device", "cpu", "--resolution", "16", "--batch", "4", "--steps", "16", "--warmup", "0",
                      "--set", "model.z_dim=16", "--set", f"model.options={options}", "--json"])
    assert json.loads(capsys.readouterr().out) == out
    assert (out["resolution"], out["batch"], out["timed_kimg"], out["fp16_blocks"]) == (16, 4, 0.064, [16])
    assert len(out["cycle_seconds"]) == 1
    assert out["s_per_kimg"] == pytest.approx(out["cycle_seconds"][0] / 0.064, rel=0.01)
    assert out["published_s_per_kimg"] is None  # a changed preset is not the paper's configuration
    assert out["ada_p"] is not None and out["device_type"] == "cpu"
    with pytest.raises(SystemExit, match="--steps must be a positive multiple of 16"):
        bench.main(["--steps", "20"])
    with pytest.raises(SystemExit, match="unknown preset"):
        bench.main(["--preset", "nope"])
    with pytest.raises(SystemExit, match="--batch must be a positive whole number, got 0"):
        bench.main(["--batch", "0"])  # not silently the preset's 64
    with pytest.raises(SystemExit, match="stylegan2_kimg: .*no-such-folder"):
        bench.main(["--data", "no-such-folder", "--device", "cpu"])


def test_training_precision_fp32_keeps_the_blocks_reduced_on_cuda(monkeypatch):
    """The paper presets say precision fp32 (no autocast); on CUDA their num_fp16_res blocks must still run
    in float16 as in the official code; only an explicit bf16 forces the blocks."""
    from ganforge.models.stylegan2.networks import block_dtype

    data = load_dataset(DataConfig(source="digits", resolution=16, cache=False))
    cfg = RunConfig()
    cfg.model.family = "stylegan2"
    cfg.model.options = {"num_fp16_res": 1, "conv_clamp": 256, "mapping_layers": 2}
    cfg.train.batch_size, cfg.train.precision = 4, "fp32"
    tr = Trainer(cfg, data, device="cpu")
    block = tr.G.synthesis.b16
    assert block.use_fp16 and block.precision == "auto"
    assert block_dtype(block, torch.device("cuda"), False) == torch.float16
    monkeypatch.setattr("ganforge.devices.cpu_has_fast_bf16", lambda: False)
    assert block_dtype(block, torch.device("cpu"), False) == torch.float32
    cfg.train.precision = "bf16"
    assert Trainer(cfg, data, device="cpu").G.synthesis.b16.precision == "bf16"
