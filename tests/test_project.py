import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from ganforge import models
from ganforge.cli import main
from ganforge.config import ModelConfig, RunConfig
from ganforge.edit.project import (
    ProjectionResult,
    learning_rate,
    load_target,
    noise_regularizer,
    project,
    save_projection,
    video_frames,
)
from ganforge.errors import GenerateError, StyleGANError
from ganforge.metrics.lpips import LPIPS
from ganforge.storage.checkpoint import module_tensors, save_checkpoint

W_DIM = 16


def tiny_nets(num_classes=0, seed=0):
    torch.manual_seed(seed)
    family = "cstylegan2" if num_classes else "stylegan2"
    G, D = models.build(ModelConfig(family=family, z_dim=W_DIM, resolution=16, channels=1, g_width=W_DIM,
                                    d_width=W_DIM, num_classes=num_classes))
    return G.eval().requires_grad_(False), D.eval().requires_grad_(False)


def drawn_target(G, seed=5, c=None):
    """An image the generator itself draws from a known w."""
    with torch.no_grad():
        w = G.mapping(torch.randn(1, W_DIM, generator=torch.Generator().manual_seed(seed)), c)
        return G.synthesis(w, noise_mode="const")[0]


@pytest.fixture(scope="module")
def nets():
    return tiny_nets()


def snapshot(net):
    return {k: v.clone() for k, v in net.state_dict().items()}, [p.requires_grad for p in net.parameters()]


def unchanged(net, snap):
    state, grads = snap
    return (all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
            and [p.requires_grad for p in net.parameters()] == grads
            and not any(b.requires_grad for b in net.buffers()))


# ----------------------------------------------------------------- the projector
@pytest.mark.parametrize("space", ["discriminator", "lpips"])
def test_projection_gets_close_to_an_image_the_generator_drew(nets, space):
    G, D = nets
    target = drawn_target(G)
    before_g, before_d = snapshot(G), snapshot(D)
    lpips = LPIPS(widths=(8, 16, 32, 32, 32)) if space == "lpips" else None
    calls = []
    result = project(G, target, D=D, lpips=lpips, steps=60, w_avg_samples=1000,
                     progress=lambda *a: calls.append(a))
    assert result.feature_space == space
    assert result.w.shape == (1, G.num_ws, W_DIM) and result.w_steps.shape == (60, W_DIM)
    assert torch.equal(result.w[0], result.w_steps[-1].expand(G.num_ws, -1))  # one w for every layer
    assert result.image.shape == (1, 16, 16) and result.image.abs().max() <= 1.5
    assert len(result.distances) == 60 and [c[:2] for c in calls] == [(i, 60) for i in range(1, 61)]
    first, last = result.distances[0], result.distances[-1]
    # Measured on this setup: last / first = 0.016 (discriminator) and 0.15 (lpips).
    assert last < 0.5 * first and result.final_distance < 0.5 * first
    if space == "lpips":  # LPIPS also brings the pixels closer (a random D's features need not)
        start = G.synthesis(result.w_steps[:1, None].expand(1, G.num_ws, -1), noise_mode="const")[0]
        assert (result.image - target).square().mean() < 0.5 * (start - target).square().mean()
    assert unchanged(G, before_g) and unchanged(D, before_d)  # the caller's networks are untouched
    assert torch.equal(drawn_target(G), target)


def test_projection_is_seeded(nets):
    G, D = nets
    target = drawn_target(G, seed=9)
    a, b = (project(G, target, D=D, steps=4, w_avg_samples=100, seed=3) for _ in range(2))
    c = project(G, target, D=D, steps=4, w_avg_samples=100, seed=4)
    assert torch.equal(a.w_steps, b.w_steps) and a.distances == b.distances
    assert not torch.equal(a.w_steps, c.w_steps)


def test_conditional_generator_needs_a_class():
    G, D = tiny_nets(num_classes=3)
    target = drawn_target(G, c=torch.tensor([1]))
    with pytest.raises(StyleGANError, match=r"class-conditional: pass the target's class with --class N"):
        project(G, target, D=D, steps=2)
    with pytest.raises(StyleGANError, match=r"class 3 is out of range"):
        project(G, target, D=D, steps=2, class_index=3)
    result = project(G, target, D=D, steps=3, class_index=1, w_avg_samples=200)
    assert result.w.shape == (1, G.num_ws, W_DIM)


def test_bad_inputs_raise_one_line_errors(nets, tiny_cfg):
    G, D = nets
    target = drawn_target(G)
    cases = [(dict(steps=0), "at least 1 step"),
             (dict(target=torch.zeros(3, 16, 16)), r"shape \[3, 16, 16\] but the generator draws \[1, 16, 16\]"),
             (dict(target=torch.zeros(1, 32, 32)), "load_target"),
             (dict(D=None), "needs a distance"),
             (dict(class_index=0), "unconditional")]
    for kwargs, match in cases:
        args = dict(target=target, D=D, steps=2) | kwargs
        with pytest.raises(StyleGANError, match=match) as e:
            project(G, args.pop("target"), **args)
        assert "\n" not in str(e.value) and isinstance(e.value, GenerateError)
    tiny_cfg.model.d_norm = "batch"  # what a trainer resolves "auto" to
    dcgan, dcgan_d = models.build(tiny_cfg.model)
    with pytest.raises(StyleGANError, match="projection needs a StyleGAN2 run"):
        project(dcgan, torch.zeros(dcgan.img_shape), D=dcgan_d, steps=2)


def test_schedule_and_noise_regularizer():
    assert learning_rate(0.0, 0.1, 0.25, 0.05) == 0  # warm-up from zero
    assert learning_rate(0.5, 0.1, 0.25, 0.05) == pytest.approx(0.1)
    assert learning_rate(0.875, 0.1, 0.25, 0.05) == pytest.approx(0.05)  # half-way down the cosine
    smooth = torch.ones(16, 16)
    noisy = torch.randn(16, 16, generator=torch.Generator().manual_seed(0))
    # constant map: autocorrelation 1 at 16x16 and at 8x8, in x and y
    assert noise_regularizer([smooth]) == pytest.approx(4.0)
    assert noise_regularizer([noisy]) < 0.05 and noise_regularizer([torch.ones(4, 4)]) == pytest.approx(2.0)


# ----------------------------------------------------------------- files
def test_load_target(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, 10:30] = 255  # the centre square is white, the sides black
    Image.fromarray(arr).save(tmp_path / "wide.png")
    gray = load_target(tmp_path / "wide.png", 1, 16)
    assert gray.shape == (1, 16, 16) and gray.dtype == torch.float32
    assert torch.allclose(gray, torch.ones(1, 16, 16), atol=0.02)  # centre-cropped: no black sides
    assert load_target(tmp_path / "wide.png", 3, 8).shape == (3, 8, 8)
    (tmp_path / "junk.png").write_bytes(b"not an image")
    for name, match in (("missing.png", "not found"), ("junk.png", "cannot read .*junk.png as an image")):
        with pytest.raises(StyleGANError, match=match) as e:
            load_target(tmp_path / name, 1, 16)
        assert "\n" not in str(e.value)


def test_save_projection(nets, tmp_path):
    G, D = nets
    target = drawn_target(G)
    result = project(G, target, D=D, steps=6, w_avg_samples=100)
    saved = save_projection(result, target, tmp_path / "out")
    with np.load(saved.w) as f:
        assert list(f) == ["w"] and f["w"].shape == (1, G.num_ws, W_DIM) and f["w"].dtype == np.float32
        assert np.array_equal(f["w"], result.w.numpy())
    assert Image.open(saved.projection).size == (16, 16) and Image.open(saved.target).size == (16, 16)
    assert Image.open(saved.compare).size == (4 * (2 * 18 + 2), 4 * 20)  # two 16 px cells, 2 px borders, x4
    expected = np.asarray(Image.open(saved.target), dtype=np.float32) / 127.5 - 1
    assert np.abs(expected - target[0].numpy()).max() < 0.01
    assert saved.video.suffix in (".mp4", ".gif") and saved.video.exists()
    if saved.video.suffix == ".gif":
        gif = Image.open(saved.video)
        assert 1 < gif.n_frames <= 6 and gif.size == (8 * (2 * 18 + 2), 8 * 20)
    no_video = save_projection(result, target, tmp_path / "out2", video=False)
    assert no_video.video is None and not {"proj.gif", "proj.mp4"} & {
        p.name for p in (tmp_path / "out2").iterdir()}
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        save_projection(result, target, tmp_path / "file")


def test_video_keeps_at_most_120_frames(nets):
    fake = ProjectionResult(None, torch.zeros(1000, W_DIM), None, [], "lpips", 0.0, None)
    frames = video_frames(fake)
    assert len(frames) <= 120 and frames[0] == 0 and frames[-1] == 999
    assert video_frames(fake._replace(w_steps=torch.zeros(7, W_DIM))) == list(range(7))


# ----------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A stylegan2 run trained for two steps through ganforge's own Run API."""
    from ganforge.data import load_dataset
    from ganforge.train.run import Run
    from ganforge.train.trainer import Trainer

    cfg = RunConfig()
    cfg.data.source, cfg.data.resolution, cfg.data.cache = "digits", 16, False
    cfg.model.family, cfg.model.z_dim, cfg.model.g_width, cfg.model.d_width = "stylegan2", 16, 16, 16
    cfg.train.batch_size, cfg.train.steps, cfg.train.device = 4, 2, "cpu"
    out = tmp_path_factory.mktemp("runs") / "sg"
    assert Run(Trainer(cfg, load_dataset(cfg.data)), out, progress=False).train() == "done"
    img = out.parent / "photo.png"
    Image.fromarray((np.arange(24 * 24).reshape(24, 24) % 255).astype(np.uint8)).save(img)
    return out, img


def test_cli_project_with_the_discriminator(trained_run, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GANFORGE_VGG16", raising=False)
    run, img = trained_run
    assert main(["project", str(img), "--run", str(run), "--steps", "5"]) == 0
    out = capsys.readouterr().out
    folder = run / "projections" / "photo"
    assert "the run's discriminator (no VGG16 LPIPS weights found" in out
    assert f"wrote {folder}" in out and "final distance" in out and "(discriminator)" in out
    names = {p.name for p in folder.iterdir()}
    assert {"projected_w.npz", "proj.png", "target.png", "compare.png"} <= names
    assert names & {"proj.gif", "proj.mp4"}
    with np.load(folder / "projected_w.npz") as f:
        assert f["w"].shape[0] == 1 and f["w"].shape[2] == 16


def test_cli_project_with_lpips(trained_run, tmp_path, capsys):
    run, img = trained_run
    save_file(LPIPS().state_dict(), str(tmp_path / "vgg16.safetensors"))  # random VGG16, real sizes
    assert main(["project", str(img), "--run", str(run), "--steps", "3", "--vgg", str(tmp_path / "vgg16.safetensors"),
                 "--out", str(tmp_path / "p"), "--no-video"]) == 0
    out = capsys.readouterr().out
    assert "features: LPIPS" in out and "(lpips)" in out
    assert (tmp_path / "p" / "proj.png").exists() and not (tmp_path / "p" / "proj.gif").exists()


def test_cli_project_errors(trained_run, tmp_path, tiny_cfg, capsys, monkeypatch):
    monkeypatch.delenv("GANFORGE_VGG16", raising=False)
    run, img = trained_run
    tiny_cfg.model.resolution, tiny_cfg.model.d_norm = 8, "batch"
    G, D = models.build(tiny_cfg.model)
    save_checkpoint(tmp_path / "dc" / "checkpoint.safetensors", module_tensors(G, "G_ema") | module_tensors(D, "D"),
                    {"step": 0, "config": tiny_cfg.to_dict()})
    tiny_cfg.save(tmp_path / "dc" / "config.json")
    sg_cfg = RunConfig.load(run / "config.json")  # the same stylegan2 run without its discriminator
    sg_G, _ = models.build(sg_cfg.model)
    save_checkpoint(tmp_path / "noD" / "checkpoint.safetensors", module_tensors(sg_G, "G_ema"),
                    {"step": 0, "config": sg_cfg.to_dict()})
    sg_cfg.save(tmp_path / "noD" / "config.json")
    cases = [(["project", str(tmp_path / "nope.png"), "--run", str(run)], "nope.png not found"),
             (["project", str(img), "--run", str(tmp_path / "dc")],
              "project needs a StyleGAN2 run (family stylegan2); this run is dcgan"),
             (["project", str(img), "--run", str(run), "--features", "lpips"], "needs VGG16 LPIPS weights"),
             (["project", str(img), "--run", str(run), "--vgg", str(tmp_path / "none.safetensors")],
              "none.safetensors not found"),
             (["project", str(img), "--run", str(tmp_path / "noD")], "holds no discriminator"),
             (["project", str(img), "--run", str(run), "--class", "1"], "unconditional")]
    for argv, message in cases:
        assert main(argv + ["--steps", "2"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("ganforge project: error: ") and message in err and err.count("\n") == 1
    assert not (run / "projections" / "nope").exists()


def test_load_target_names_a_folder_and_a_network_no_photo_fits(tmp_path):
    from ganforge.edit.project import load_target
    from ganforge.errors import StyleGANError

    with pytest.raises(StyleGANError, match=f"^{tmp_path} is a folder: pass one image file"):
        load_target(tmp_path, 3, 16)
    photo = tmp_path / "p.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(photo)
    with pytest.raises(StyleGANError, match="this generator draws 4-channel images; a photo gives gray or RGB"):
        load_target(photo, 4, 16)
    assert load_target(photo, 3, 16).shape == (3, 16, 16)
