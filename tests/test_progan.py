import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import straight_and_resumed
from ganforge import models
from ganforge.cli import main
from ganforge.config import ModelConfig, RunConfig
from ganforge.errors import ConfigError
from ganforge.models.progan import fade_reals, set_stage
from ganforge.storage.checkpoint import load_checkpoint
from ganforge.train.presets import preset_config
from ganforge.train.progan import Schedule, resolve
from ganforge.train.trainer import Trainer

TINY = ["--z-dim", "8", "--g-width", "8", "--d-width", "8", "--batch-size", "8", "--sample-every", "2",
        "--grid-size", "4", "--quiet", "--device", "cpu"]


def nets(resample="nearest", resolution=32):
    torch.manual_seed(0)
    cfg = ModelConfig(family="progan", z_dim=8, resolution=resolution, channels=1, g_width=8, d_width=8,
                      options={"resample": resample})
    G, D = models.build(cfg)
    return G.eval(), D.eval()


def capture(module):
    """Record the output of ``module`` on every call."""
    out = []
    module.register_forward_hook(lambda m, i, o: out.append(o.detach().clone()))
    return out


@pytest.mark.parametrize("resample", ["nearest", "fir"])
@pytest.mark.parametrize("level", [1, 2, 3])
def test_generator_at_alpha_0_is_the_upsampled_lower_resolution_network(resample, level):
    G, _ = nets(resample)
    z = torch.randn(4, 8)
    set_stage(G, level - 1, 1.0)
    lower = G(z, native=True)
    set_stage(G, level, 0.0)
    grown = G(z, native=True)
    assert grown.shape[-1] == 2 * lower.shape[-1] == 4 * 2 ** level
    torch.testing.assert_close(grown, G.resample.up(lower))
    if resample == "nearest":  # what G returns: its image upsampled nearest to the final size
        torch.testing.assert_close(G(z), nearest_to(lower, 32))


def nearest_to(x, size):
    f = size // x.shape[-1]
    return x.repeat_interleave(f, 2).repeat_interleave(f, 3)


@pytest.mark.parametrize("resample", ["nearest", "fir"])
def test_generator_at_alpha_1_is_the_new_block_alone_and_blends_between(resample):
    G, _ = nets(resample)
    z = torch.randn(4, 8)
    new, old = capture(G.to_rgb[2]), capture(G.to_rgb[1])
    set_stage(G, 2, 1.0)
    out = G(z, native=True)
    assert len(old) == 0  # the lower resolution's toRGB is not even run
    torch.testing.assert_close(out, new[-1], rtol=0, atol=0)
    set_stage(G, 2, 0.25)
    mid = G(z, native=True)
    torch.testing.assert_close(mid, 0.75 * G.resample.up(old[-1]) + 0.25 * new[-1])
    with torch.no_grad():
        G.to_rgb[1].weight.add_(1.0)  # the lower toRGB matters in the fade, not after it
    assert not torch.allclose(G(z, native=True), mid)
    set_stage(G, 2, 1.0)
    torch.testing.assert_close(G(z, native=True), out, rtol=0, atol=0)


@pytest.mark.parametrize("resample", ["nearest", "fir"])
@pytest.mark.parametrize("level", [1, 2, 3])
def test_discriminator_at_alpha_0_is_the_lower_resolution_network(resample, level):
    _, D = nets(resample)
    x = torch.randn(4, 1, 32, 32)
    set_stage(D, level - 1, 1.0)
    lower = D(D.resample.down(torch.nn.functional.avg_pool2d(x, 32 // (4 * 2 ** level))))
    set_stage(D, level, 0.0)
    torch.testing.assert_close(D(x), lower, rtol=1e-5, atol=1e-5)


def test_discriminator_at_alpha_1_ignores_the_lower_path():
    _, D = nets()
    x = torch.randn(4, 1, 32, 32)
    old = capture(D.from_rgb[1])
    set_stage(D, 2, 1.0)
    full = D(x)
    assert len(old) == 0
    set_stage(D, 2, 0.5)
    half = D(x)
    assert len(old) == 1 and not torch.allclose(full, half)
    # D takes the final size or the current one: average pooling is its first step
    set_stage(D, 2, 1.0)
    torch.testing.assert_close(D(torch.nn.functional.avg_pool2d(x, 2)), full, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="needs images of 16 px"):
        D(torch.randn(4, 1, 8, 8))


def test_reals_fade_like_the_generated_images():
    x = torch.randn(2, 1, 32, 32)
    at_8 = torch.nn.functional.avg_pool2d(x, 4)
    torch.testing.assert_close(fade_reals(x, 1, 1.0), nearest_to(at_8, 32))
    at_4 = torch.nn.functional.avg_pool2d(at_8, 2)
    torch.testing.assert_close(fade_reals(x, 1, 0.0), nearest_to(at_4, 32))
    torch.testing.assert_close(fade_reals(x, 1, 0.25), nearest_to(0.75 * nearest_to(at_4, 8) + 0.25 * at_8, 32))
    torch.testing.assert_close(fade_reals(x, 3, 1.0), x)


def test_phase_schedule_gives_resolution_alpha_and_batch_at_images_seen():
    s = Schedule(32, start=4, stabilise=100, fade=50, batch={8: 16}, default_batch=32)
    got = {n: (st.resolution, st.alpha, st.batch, st.phase) for n in
           (0, 99, 100, 125, 149, 150, 249, 250, 300, 400, 449, 450, 10**9) for st in [s.at(n)]}
    assert got == {0: (4, 1.0, 32, "stabilise"), 99: (4, 1.0, 32, "stabilise"), 100: (8, 0.0, 16, "fade"),
                   125: (8, 0.5, 16, "fade"), 149: (8, 0.98, 16, "fade"), 150: (8, 1.0, 16, "stabilise"),
                   249: (8, 1.0, 16, "stabilise"), 250: (16, 0.0, 32, "fade"), 300: (16, 1.0, 32, "stabilise"),
                   400: (32, 0.0, 32, "fade"), 449: (32, 0.98, 32, "fade"), 450: (32, 1.0, 32, "stabilise"),
                   10**9: (32, 1.0, 32, "stabilise")}
    assert s.growth_images() == 450
    assert Schedule(32, start=16, stabilise=10, fade=10).at(0).resolution == 16
    assert {Schedule(32, start=32).at(n).resolution for n in (0, 10**7)} == {32}  # no growth: full size
    assert Schedule(32, stabilise=0, fade=0).at(0).resolution == 32


def test_schedule_defaults_fill_the_first_half_of_the_run_and_are_checked():
    cfg = RunConfig()
    cfg.model.family, cfg.model.resolution = "progan", 32
    cfg.train.steps, cfg.train.batch_size = 1000, 8
    assert resolve(cfg) == {"start": 4, "stabilise": 666, "fade": 666, "batch": {}, "reset_optimizer": True,
                            "penalty_at": "native"}
    cfg.train.steps = 10**7
    assert resolve(cfg)["fade"] == 600_000  # the paper's phase length at most
    cfg.train.growth = {"batch": {8: 4}, "fade": 10}
    assert resolve(cfg)["batch"] == {"8": 4} and resolve(cfg)["fade"] == 10
    for growth, message in [({"stabilise": -1}, "stabilise must be 0 or a positive whole number"),
                            ({"start": 6}, "start must be a power of two from 4 to the final resolution 32"),
                            ({"batch": {"64": 8}}, "batch names resolution '64'"),
                            ({"fade_kimg": 3}, "unknown train.growth option.*fade_kimg"),
                            ({"penalty_at": "full"}, "penalty_at must be one of native, final, got 'full'")]:
        cfg.train.growth = growth
        with pytest.raises(ConfigError, match=message):
            resolve(cfg)
    cfg.model.family = "dcgan"
    with pytest.raises(ConfigError, match="train.growth applies to the growing families"):
        resolve(cfg)


def test_the_gradient_penalty_is_taken_at_the_resolution_d_works_at():
    """D average-pools a final-size image to its stage, so its gradient w.r.t. the upsampled image is the
    native one shrunk by the upsampling factor: a penalty taken there ('final') lets the native slope reach
    that factor. 'native' takes it on the pooled image."""
    from ganforge.models.progan import nearest
    from ganforge.train.progan import Growth

    cfg = RunConfig()
    cfg.model.family, cfg.model.resolution, cfg.data.channels = "progan", 32, 1
    cfg.model.g_width = cfg.model.d_width = 8
    cfg.train.steps, cfg.train.batch_size = 100, 4
    cfg.train.growth = {"start": 8, "stabilise": 10**6}
    _, D = models.build(cfg.model)
    growth = Growth(cfg)
    growth.apply([D], [])
    assert growth.stage.resolution == 8
    x8 = torch.randn(4, 1, 8, 8)
    x32 = nearest(x8, 32).requires_grad_(True)
    (g32,) = torch.autograd.grad(D(x32).sum(), x32)
    native = growth.penalty_images(x32.detach()).requires_grad_(True)
    assert native.shape == (4, 1, 8, 8) and torch.allclose(native, x8)
    (g8,) = torch.autograd.grad(D(native).sum(), native)
    ratio = g8.flatten(1).norm(dim=1) / g32.flatten(1).norm(dim=1)
    assert torch.allclose(ratio, torch.full((4,), 4.0), rtol=1e-4)
    cfg.train.growth["penalty_at"] = "final"
    assert Growth(cfg).penalty_images(x32) is x32


def test_progan_model_errors_are_one_line():
    with pytest.raises(ConfigError, match="power-of-two resolution.*--pad 2"):
        models.build(ModelConfig(family="progan", resolution=28))
    with pytest.raises(ConfigError, match="resample must be one of nearest, fir"):
        models.build(ModelConfig(family="progan", resolution=32, options={"resample": "bilinear"}))


@pytest.fixture
def progan_cfg(tiny_cfg):
    """digits at 8x8: 4x4 for 16 images at batch 8, then 8x8 fades in over 16 images at batch 4."""
    cfg = tiny_cfg
    cfg.model.family = "progan"
    cfg.train.loss, cfg.train.drift = "wgan-gp", 0.001
    cfg.train.steps = 8
    cfg.train.growth = {"stabilise": 16, "fade": 16, "batch": {"8": 4}}
    return cfg


def test_a_growth_batch_too_large_is_refused_before_any_work(progan_cfg, digits):
    progan_cfg.train.growth = {"batch": {"8": 100000}}
    with pytest.raises(ConfigError, match="batch size 100000 is more than 4096"):
        Trainer(progan_cfg, digits)


def test_trainer_follows_the_schedule(progan_cfg, digits):
    tr = Trainer(progan_cfg, digits)
    seen = []
    for _ in range(8):
        m = tr.step()
        seen.append((m["resolution"], m["alpha"], tr.growth.images))
    assert seen == [(4, 1.0, 8), (4, 1.0, 16), (8, 0.0, 20), (8, 0.25, 24), (8, 0.5, 28), (8, 0.75, 32),
                    (8, 1.0, 36), (8, 1.0, 40)]
    assert tr.G_ema.stage() == tr.D.stage() == (1, 1.0)


def test_resume_mid_fade_equals_an_uninterrupted_run(progan_cfg, digits, tmp_path):
    straight, resumed = straight_and_resumed(progan_cfg, digits, tmp_path, stop_at=5)  # alpha 0.75 is next
    meta = load_checkpoint(tmp_path / "interrupted" / "checkpoint.safetensors")[1]
    assert meta["growth_images"] == 40 and meta["step"] == 8
    a, b = straight.trainer, resumed.trainer
    assert a.growth.images == b.growth.images == 40
    for prefix, tensors in (("straight", a.state()[0]), ("resumed", b.state()[0])):
        assert all(torch.isfinite(v).all() for k, v in tensors.items() if v.is_floating_point()), prefix
    ta, tb = a.state()[0], b.state()[0]
    assert set(ta) == set(tb)
    for k in ta:
        if not k.startswith("rng."):
            assert torch.equal(ta[k], tb[k]), k


def test_resumed_checkpoint_mid_fade_holds_the_stage(progan_cfg, digits, tmp_path):
    from ganforge.train.run import Run

    run = Run(Trainer(progan_cfg, digits), tmp_path / "run", progress=False)
    run.train(steps=5)
    tensors, meta = load_checkpoint(tmp_path / "run" / "checkpoint.safetensors")
    assert meta["growth_images"] == 28
    assert int(tensors["G.level"]) == 1 and float(tensors["G.alpha"]) == 0.75
    again = Run.resume(tmp_path / "run", digits, progress=False)
    assert again.trainer.G.stage() == (1, 0.75) and again.trainer.batch_size == 4


def test_drift_adds_its_weight_times_the_mean_squared_real_score(progan_cfg, digits):
    losses = {}
    for drift in (0.0, 100.0):  # large: the difference must stand out of the loss's float32 round-off
        progan_cfg.train.drift = drift
        losses[drift] = Trainer(progan_cfg, digits).step()["loss_d"]
    progan_cfg.train.drift = 0.0
    tr = Trainer(progan_cfg, digits)
    real, _ = tr._real_batch()
    expect = 100.0 * tr.D(real).square().mean().item()
    assert losses[100.0] - losses[0.0] == pytest.approx(expect, rel=1e-4)
    progan_cfg.train.drift = -1.0
    with pytest.raises(ConfigError, match="drift must be a finite number, 0 or more"):
        Trainer(progan_cfg, digits)


def test_preset_progan_is_mnist_at_32_with_the_paper_loss():
    cfg = RunConfig.from_dict(preset_config("progan").to_dict())
    assert (cfg.model.family, cfg.data.source, cfg.data.pad) == ("progan", "mnist", 2)
    assert (cfg.train.loss, cfg.train.drift, cfg.train.g_lr, cfg.train.g_betas) == ("wgan-gp", 0.001, 0.001,
                                                                                    (0.0, 0.99))
    # grown from 8x8: from 4x4 the preset collapsed while 16x16 faded in
    assert cfg.train.growth == {"start": 8, "stabilise": 16000, "fade": 16000, "batch": {"8": 64}}


def blocks_of(tile: np.ndarray, size: int) -> bool:
    """Whether the picture is made of constant ``size`` x ``size`` blocks."""
    h = tile.shape[0] // size
    t = tile[: h * size, : h * size].reshape(h, size, h, size)
    return bool((t == t[:, :1, :, :1]).all())


def test_cli_trains_grows_and_generates(tmp_path):
    out = tmp_path / "run"
    growth = json.dumps({"stabilise": 16, "fade": 16})
    assert main(["train", "digits", "--family", "progan", "--steps", "6", "--growth", growth, "--log-every", "1",
                 "--out", str(out), *TINY]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["loss"] == "wgan-gp" and cfg["train"]["drift"] == 0.001  # the family's defaults
    assert cfg["train"]["growth"] == {"start": 4, "stabilise": 16, "fade": 16, "batch": {}, "reset_optimizer": True,
                                      "penalty_at": "native"}
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [(r["resolution"], r["alpha"]) for r in log] == [(4, 1.0), (4, 1.0), (8, 0.0), (8, 0.5), (8, 1.0),
                                                            (8, 1.0)]
    # the grids show the growth at the final size: 4x4 samples (2-px blocks of 8x8, scaled 8x) first
    first = np.asarray(Image.open(out / "samples" / "step-000000.png"))
    last = np.asarray(Image.open(out / "samples.png"))
    assert first.shape == last.shape
    tile = (2 * 8, 2 * 8 + 64)  # the grid's 2-px border, upscaled 8x, then one 8x8 sample upscaled 8x
    assert blocks_of(first[tile[0]:tile[1], tile[0]:tile[1]], 16)
    assert not blocks_of(last[tile[0]:tile[1], tile[0]:tile[1]], 16)
    with Image.open(out / "progress.gif") as gif:
        assert gif.n_frames == 4 and gif.size == Image.open(out / "samples.png").size
    assert main(["generate", str(out), "--n", "3", "--out", str(tmp_path / "png")]) == 0
    files = sorted((tmp_path / "png").glob("*.png"))
    assert len(files) == 3 and all(Image.open(f).size == (8, 8) for f in files)


def test_cli_loss_stays_selectable(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "digits", "--family", "progan", "--steps", "1", "--loss", "hinge", "--out", str(out),
                 *TINY]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["loss"] == "hinge" and cfg["train"]["drift"] == 0.001 and cfg["train"]["g_lr"] == 0.001


@pytest.mark.parametrize("reset", [True, False])
def test_a_new_level_clears_the_optimizers_moments_if_asked(progan_cfg, digits, reset):
    progan_cfg.train.growth["reset_optimizer"] = reset
    tr = Trainer(progan_cfg, digits)
    tr.step()
    assert len(tr.opt_G.state) and len(tr.opt_D.state)  # 4x4 still: the moments stay
    tr.step()  # 16 images seen: 8x8 starts to fade in
    assert tr.G.stage() == (1, 0.0)
    assert (len(tr.opt_G.state) == 0 and len(tr.opt_D.state) == 0) == reset
