import math
import sys

import pytest
import torch

from conftest import straight_and_resumed
from ganforge.errors import ConfigError
from ganforge.train.trainer import Trainer


def weights(trainer):
    tensors, _ = trainer.state()
    return {k: v for k, v in tensors.items() if k.split(".")[0] in ("G", "G_ema", "D", "opt_G", "opt_D")}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_step_reports_metrics(tiny_cfg, digits):
    m = Trainer(tiny_cfg, digits).step()
    assert m["step"] == 1
    assert {"loss_d", "loss_g", "d_real", "d_fake", "img_per_s"} <= m.keys()
    assert 0 <= m["d_real"] <= 1 and math.isfinite(m["loss_g"]) and m["img_per_s"] > 0


@pytest.mark.parametrize("overrides", [
    {"loss": "ns"}, {"loss": "hinge", "r1_gamma": 1.0}, {"loss": "lsgan", "d_steps": 2},
    {"loss": "wgan-gp", "g_opt": "rmsprop", "d_opt": "rmsprop"}, {"loss": "ns", "g_opt": "sgd", "d_opt": "sgd"},
    {"loss": "hinge", "diffaug": "color,translation,cutout", "ema_decay": 0.0}])
def test_losses_and_options_train(tiny_cfg, digits, overrides):
    for k, v in overrides.items():
        setattr(tiny_cfg.train, k, v)
    tr = Trainer(tiny_cfg, digits)
    before = {k: v.clone() for k, v in tr.G.state_dict().items()}
    ms = [tr.step() for _ in range(3)]
    assert all(math.isfinite(m["loss_d"]) and math.isfinite(m["loss_g"]) for m in ms)
    assert any(not torch.equal(before[k], v) for k, v in tr.G.state_dict().items())


def test_wgan_gp_picks_a_discriminator_without_batch_norm(tiny_cfg, digits):
    tiny_cfg.train.loss = "wgan-gp"
    tr = Trainer(tiny_cfg, digits)
    assert tr.cfg.model.d_norm == "none"
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in tr.D.modules())


def test_ema_follows_the_formula(tiny_cfg, digits):
    tiny_cfg.train.ema_decay = 0.5
    tr = Trainer(tiny_cfg, digits)
    ema_before = [p.clone() for p in tr.G_ema.parameters()]
    tr.step()  # step 0: warm-up beta = min(0.5, 1/10) = 0.1
    for e0, e1, p in zip(ema_before, tr.G_ema.parameters(), tr.G.parameters()):
        assert torch.allclose(e1, 0.1 * e0 + 0.9 * p, atol=1e-6)
    for b_ema, b in zip(tr.G_ema.buffers(), tr.G.buffers()):
        assert torch.equal(b_ema, b)


def test_same_seed_same_weights_other_seed_differs(tiny_cfg, digits):
    def run(seed):
        tiny_cfg.train.seed = seed
        tr = Trainer(tiny_cfg, digits)
        for _ in range(3):
            tr.step()
        return weights(tr)

    a, b, c = run(1), run(1), run(2)
    assert_same(a, b)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path, tiny_cfg, digits):
    tiny_cfg.train.steps = 6
    tiny_cfg.train.diffaug = "translation,cutout,color"
    tiny_cfg.data.xflip = True
    straight, resumed = straight_and_resumed(tiny_cfg, digits, tmp_path, stop_at=3)
    assert_same(weights(straight.trainer), weights(resumed.trainer))


def test_class_conditional_training(tiny_cfg, digits):
    tiny_cfg.model.family = "cdcgan"
    tr = Trainer(tiny_cfg, digits)
    assert tr.cfg.model.num_classes == 10 and tr.cfg.class_names[3] == "3"
    tr.step()
    assert tr.sample(torch.randn(2, 8), torch.tensor([1, 2])).shape == (2, 1, 8, 8)


@pytest.mark.parametrize("field,value,message", [
    ("g_opt", "lbfgs", "unknown optimizer 'lbfgs'"), ("d_lr", -1.0, "d_lr must be a number above 0 and at most 10"),
    ("d_lr", float("inf"), "d_lr must be a number above 0 and at most 10, got inf"),
    ("g_lr", 1e308, "g_lr must be a number above 0 and at most 10"),
    ("r1_gamma", float("nan"), "r1_gamma must be a finite number, 0 or more, got nan"),
    ("ada_kimg", float("nan"), "ada_kimg must be positive"),
    ("ema_decay", 1.0, r"ema_decay must be in \[0, 1\)"), ("g_betas", (0.5, 1.5), "g_betas must lie in"),
    ("r1_gamma", -2.0, "r1_gamma must be a finite number, 0 or more"), ("loss", "bce", "unknown loss 'bce'"),
    ("precision", "fp8", "precision must be auto, fp32 or bf16"),
    ("batch_size", 0, "batch_size must be a positive whole number"),
    ("grid_size", 100000, "grid_size 100000 is more than 1024 images"),
    ("batch_size", 100000, "batch size 100000 is more than 4096 per process, beyond what a GAN step")])
def test_bad_settings_are_config_errors(tiny_cfg, digits, field, value, message):
    setattr(tiny_cfg.train, field, value)
    with pytest.raises(ConfigError, match=message):
        Trainer(tiny_cfg, digits)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt exists on Linux only")
def test_cpu_training_keeps_freed_memory_with_glibc():
    import ctypes

    from ganforge.devices import keep_freed_memory

    if not hasattr(ctypes.CDLL("libc.so.6"), "mallopt"):
        pytest.skip("not glibc")
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True  # idempotent


def test_cudnn_autotuner_is_turned_on_for_cuda_only(monkeypatch):
    from ganforge.devices import tune_cudnn

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)  # restored after the test
    assert tune_cudnn(torch.device("cpu")) is False and torch.backends.cudnn.benchmark is False
    assert tune_cudnn(torch.device("cuda")) is True and torch.backends.cudnn.benchmark is True


def test_config_overrides_parse_json_or_plain_strings():
    from ganforge.config import RunConfig

    cfg = RunConfig().with_overrides(["train.batch_size=16", "train.precision=fp32", "model.options={\"a\": 1}",
                                      "train.g_betas=[0, 0.99]"])
    assert (cfg.train.batch_size, cfg.train.precision, cfg.model.options) == (16, "fp32", {"a": 1})
    assert cfg.train.g_betas == (0.0, 0.99) and RunConfig().train.batch_size == 64  # the original is untouched
    for bad in ("train.batch_size", "batch_size=3", "optim.lr=1"):
        with pytest.raises(ConfigError, match="section.field=value"):
            RunConfig().with_overrides([bad])
    with pytest.raises(ConfigError, match="nonsense"):
        RunConfig().with_overrides(["train.nonsense=1"])


def test_step_statistics_stay_on_the_device_until_read(tiny_cfg, digits):
    """No .item() per step: a GPU is not stalled by a loop that reads the statistics only when it logs."""
    stats = Trainer(tiny_cfg, digits).step()
    assert set(stats.unread()) >= {"loss_d", "loss_g", "d_real", "d_fake"}
    loss_d = stats["loss_d"]
    assert isinstance(loss_d, float) and "loss_d" not in stats.unread()
    values = dict(stats)
    assert stats.unread() == [] and values["loss_d"] == loss_d
    assert all(isinstance(v, (int, float)) for v in values.values())
    assert 0 < values["d_real"] < 1 and 0 < values["d_fake"] < 1  # probabilities for the ns loss


@pytest.mark.parametrize("opt", ["adam", "sgd", "rmsprop"])
def test_multi_tensor_optimizers_give_the_per_parameter_loop_s_weights(tiny_cfg, digits, opt, monkeypatch):
    """The trainer's optimizers run as one multi-tensor update (foreach); the weights must be those of
    torch's per-parameter loop (the same formula per element; other kernels, so compared to float rounding)."""
    from ganforge.train import trainer as trainer_module

    tiny_cfg.train.g_opt = tiny_cfg.train.d_opt = opt
    fast = Trainer(tiny_cfg, digits)
    for _ in range(3):
        fast.step()
    loop = {
        "adam": lambda params, lr, betas: torch.optim.Adam(params, lr=lr, betas=betas, foreach=False),
        "sgd": lambda params, lr, betas: torch.optim.SGD(params, lr=lr, momentum=betas[0], foreach=False),
        "rmsprop": lambda params, lr, betas: torch.optim.RMSprop(params, lr=lr, alpha=betas[1], foreach=False),
    }
    monkeypatch.setattr(trainer_module, "OPTIMIZERS", loop)
    slow = Trainer(tiny_cfg, digits)
    for _ in range(3):
        slow.step()
    for a, b in zip([*fast.G.parameters(), *fast.D.parameters()], [*slow.G.parameters(), *slow.D.parameters()]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_the_batch_bound_is_per_process():
    from ganforge.config import TrainConfig
    from ganforge.train.trainer import validate

    validate(TrainConfig(batch_size=8192), world_size=8)  # 1,024 per process: fine
    with pytest.raises(ConfigError, match=r"batch size 65536 \(8192 per process\) is more than 4096 per process"):
        validate(TrainConfig(batch_size=65536), world_size=8)
