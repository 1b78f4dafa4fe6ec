import argparse
import json
import pickle
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
import ganforge.generate.sampling
from ganforge import models
from ganforge.cli.stylegan import add_parsers
from ganforge.config import ModelConfig, RunConfig
from ganforge.errors import ConfigError, StyleGANError
from ganforge.generate.sampling import generate, latents, sample
from ganforge.generate.stylegan import BLANK, import_stylegan, interpolate_w, noise_variation, style_layers, style_mix
from ganforge.models.stylegan2 import Discriminator, Generator, importer
from ganforge.storage.checkpoint import module_tensors, save_checkpoint
from ganforge.storage.images import to_uint8
from test_stylegan2 import SMALL_D, SMALL_G, _HiddenInStorage, _RunsCode, official_style_pickle


def official_nets(c_dim=0, seed=0):
    torch.manual_seed(seed)
    g_kwargs, d_kwargs = dict(SMALL_G, c_dim=c_dim), dict(SMALL_D, c_dim=c_dim)
    G, D = Generator(**g_kwargs).eval(), Discriminator(**d_kwargs).eval()
    G.mapping.w_avg.normal_()  # a trained w_avg: truncation must pull toward it, not toward zero
    for p in G.parameters():  # untrained noise strengths are 0; make the noise matter
        if p.ndim == 0:
            p.data.fill_(0.5)
    return G, D, g_kwargs, d_kwargs


def write_pickle(path, monkeypatch, with_g=True, c_dim=0):
    G, D, g_kwargs, d_kwargs = official_nets(c_dim)
    G_ema = Generator(**g_kwargs).eval()
    G_ema.load_state_dict(G.state_dict())
    G_ema.mapping.fc0.weight.data.mul_(1.5)  # G_ema must differ from G, to tell which one gets loaded
    data = {"G_ema": G_ema, "D": D, "augment_pipe": None} | ({"G": G} if with_g else {})
    blob = official_style_pickle(data, {id(G): g_kwargs, id(G_ema): g_kwargs, id(D): d_kwargs}, monkeypatch,
                                 "raise SystemExit('module source was executed')")
    monkeypatch.undo()  # the import must not need torch_utils / dnnlib
    path.write_bytes(blob)
    return G_ema, D


@pytest.fixture
def stylegan_run(tmp_path, monkeypatch):
    G_ema, D = write_pickle(tmp_path / "net.pkl", monkeypatch)
    return import_stylegan(tmp_path / "net.pkl", tmp_path / "run"), G_ema, D


@pytest.fixture
def dcgan_run(tmp_path, tiny_cfg):
    cfg = tiny_cfg
    cfg.model.resolution, cfg.model.d_norm = 8, "batch"  # what a trainer resolves "auto" to
    G, D = models.build(cfg.model)
    save_checkpoint(tmp_path / "dc" / "checkpoint.safetensors", module_tensors(G, "G_ema") | module_tensors(D, "D"),
                    {"step": 0, "config": cfg.to_dict()})
    cfg.save(tmp_path / "dc" / "config.json")
    return tmp_path / "dc"


# ----------------------------------------------------------------- import
@pytest.mark.parametrize("c_dim,with_g", [(0, False), (3, True)])
def test_imported_run_loads_and_matches_the_original(tmp_path, monkeypatch, c_dim, with_g):
    G_ema, D = write_pickle(tmp_path / "net.pkl", monkeypatch, with_g=with_g, c_dim=c_dim)
    run = import_stylegan(tmp_path / "net.pkl", tmp_path / "run")
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["family"] == ("cstylegan2" if c_dim else "stylegan2")
    assert (cfg["model"]["resolution"], cfg["model"]["channels"], cfg["model"]["z_dim"]) == (16, 3, 8)
    assert cfg["model"]["num_classes"] == c_dim and cfg["class_names"] == [str(i) for i in range(c_dim)]
    assert cfg["model"]["options"]["G_kwargs"] == json.loads(json.dumps(dict(SMALL_G, c_dim=c_dim)))
    assert cfg["model"]["options"]["D_kwargs"]["epilogue_kwargs"] == {"mbstd_group_size": 4}
    assert cfg["data"]["source"] == "imported:net.pkl"

    _, G, D2 = ganforge.load_run(run)
    z = torch.randn(3, 8)
    c = torch.tensor([0, 2, 1]) if c_dim else None
    with torch.no_grad():
        want = G_ema(z, c, noise_mode="const")  # the EMA generator is the one that gets loaded
        assert torch.equal(G(z, c, noise_mode="const"), want)
        assert torch.equal(D2(want, c), D(want, c).squeeze(1))
        assert G(z, c).shape == (3, 3, 16, 16)  # ganforge's interface: G(z, c)
    assert G.img_shape == (3, 16, 16) and G.num_classes == c_dim
    with pytest.raises(StyleGANError, match="already holds a run"):
        import_stylegan(tmp_path / "net.pkl", run)


def test_unsafe_or_foreign_pickles_are_refused_without_writing(tmp_path):
    sentinel = tmp_path / "pwned"
    cases = {"evil.pkl": pickle.dumps(_RunsCode(f"touch {sentinel}")), "junk.pkl": b"\x80\x04not a pickle",
             "plain.pkl": pickle.dumps({"weights": [1, 2]})}
    errors = {}
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(StyleGANError) as e:
            import_stylegan(tmp_path / name, tmp_path / "run")
        errors[name] = e
        assert "\n" not in str(e.value)
    assert isinstance(errors["evil.pkl"].value, importer.UnsafePickleError)
    assert "refusing to load" in str(errors["evil.pkl"].value)
    assert "not a readable network pickle" in str(errors["junk.pkl"].value)
    assert "holds no StyleGAN2 generator" in str(errors["plain.pkl"].value)
    assert not sentinel.exists() and not (tmp_path / "run").exists()


def test_import_refusals_and_folders_are_one_line_of_ganforge_s_own(tmp_path, capsys):
    from ganforge.cli import main

    sentinel = tmp_path / "pwned"
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"G_ema": _HiddenInStorage(f"touch {sentinel}")}))
    assert main(["import-stylegan", str(tmp_path / "evil.pkl"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ganforge import-stylegan: error: evil.pkl: refused: the file holds a pickle inside a "
                          "tensor's data (it asks for ") and err.endswith("), which ganforge never runs\n")
    assert "weights_only" not in err and not sentinel.exists() and not (tmp_path / "run").exists()

    snapshots = tmp_path / "training-runs"
    snapshots.mkdir()
    assert main(["import-stylegan", str(snapshots)]) == 2
    assert capsys.readouterr().err == (f"ganforge import-stylegan: error: {snapshots} is a folder with no .pkl file "
                                       "in it: pass a network .pkl file, as stylegan2-ada-pytorch writes\n")
    for kimg in ("000200", "000400"):
        (snapshots / f"network-snapshot-{kimg}.pkl").write_bytes(b"")
    assert main(["import-stylegan", str(snapshots)]) == 2
    assert capsys.readouterr().err == (f"ganforge import-stylegan: error: {snapshots} is a folder: pass one network "
                                       f".pkl file in it, e.g. {snapshots / 'network-snapshot-000400.pkl'}\n")


def test_family_options_must_agree_with_the_config():
    options = {"G_kwargs": SMALL_G, "D_kwargs": SMALL_D}
    G, D = models.build(ModelConfig(family="stylegan2", z_dim=8, resolution=16, channels=3, options=options))
    assert G.w_dim == 8 and G.mapping.num_layers == 2 and D.b4.mbstd.group_size == 4
    with pytest.raises(ConfigError, match="G_kwargs.img_resolution is 16 but the config says 32"):
        models.build(ModelConfig(family="stylegan2", z_dim=8, resolution=32, channels=3, options=options))
    with pytest.raises(ConfigError, match="unknown stylegan2 model option"):
        models.build(ModelConfig(family="stylegan2", resolution=16, options={"G_kwarg": {}}))


def test_stylegan3_repository_layout_of_generator_arguments():
    # The stylegan3 repo's StyleGAN2 Generator takes synthesis arguments flat, plus fused_modconv_default.
    flat = {k: v for k, v in SMALL_G.items() if k != "synthesis_kwargs"} | SMALL_G["synthesis_kwargs"]
    obj = importer.PersistentObject("Generator", "", 1, {"_init_args": (), "_init_kwargs": flat |
                                                          {"fused_modconv_default": "inference_only"}})
    assert importer.network_kwargs(obj) == SMALL_G


class _TFNetwork:  # how the TensorFlow repositories' networks pickle: a dnnlib.tflib class with a state
    __module__ = "dnnlib.tflib.network"
    __qualname__ = "Network"


def test_other_network_files_are_named_for_what_they_are(tmp_path, monkeypatch):
    G, D, g_kwargs, d_kwargs = official_nets()
    alias_free = {k: v for k, v in g_kwargs.items() if k != "synthesis_kwargs"} | dict(
        channel_base=256, channel_max=16, num_layers=14, num_critical=2, first_cutoff=2, margin_size=10,
        magnitude_ema_beta=0.999, conv_kernel=3, use_radial_filters=False)  # stylegan3's config T, flat
    (tmp_path / "sg3.pkl").write_bytes(official_style_pickle({"G_ema": G, "D": D}, {id(G): alias_free, id(D): d_kwargs},
                                                             monkeypatch, "x"))
    monkeypatch.undo()
    torch.save(G.state_dict(), tmp_path / "weights.pt")
    tf_net = _TFNetwork.__new__(_TFNetwork)
    tf_net.__dict__.update(name="G", build_module_src="import os")
    for mod in ("dnnlib", "dnnlib.tflib", "dnnlib.tflib.network"):
        monkeypatch.setitem(sys.modules, mod, types.ModuleType(mod))
    sys.modules["dnnlib.tflib.network"].Network = _TFNetwork
    (tmp_path / "tf.pkl").write_bytes(pickle.dumps((tf_net, tf_net, tf_net)))
    monkeypatch.undo()
    expected = {"sg3.pkl": "sg3.pkl: it is a StyleGAN3 (alias-free) generator (first_cutoff=...)",
                "weights.pt": "weights.pt: it is a zip archive, as torch.save writes, not a network pickle",
                "tf.pkl": "tf.pkl: it is a TensorFlow StyleGAN pickle (dnnlib.tflib), which holds code to run: "
                          "convert it with stylegan2-ada-pytorch's legacy.py first"}
    for name, start in expected.items():
        with pytest.raises(StyleGANError) as e:
            import_stylegan(tmp_path / name, tmp_path / "run")
        assert str(e.value).startswith(start) and "\n" not in str(e.value)
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------- truncation in w space
def test_truncation_zero_gives_the_average_w_image(stylegan_run, dcgan_run):
    G = ganforge.load(stylegan_run[0])
    assert torch.equal(latents(G, 4, 1, truncation=0.5), latents(G, 4, 1))  # z is not scaled
    x = sample(G, 4, seed=1, truncation=0)
    w_avg = G.mapping.w_avg.expand(1, G.num_ws, -1)
    with torch.no_grad():
        assert torch.allclose(x, G.synthesis(w_avg, noise_mode="const").expand_as(x), atol=1e-5)
    assert torch.allclose(x, x[:1].expand_as(x), atol=1e-6)  # every seed: the same image
    assert torch.equal(sample(G, 2, seed=5), sample(G, 2, seed=5))  # const noise: reproducible
    assert not torch.allclose(sample(G, 2, seed=5, truncation=0.5), sample(G, 2, seed=5))

    dc = ganforge.load(dcgan_run)  # other families keep scaling z
    assert torch.equal(sample(dc, 3, seed=2, truncation=0.5), generate(dc, latents(dc, 3, 2) * 0.5))


def test_generate_truncation_sweep_from_the_command_line(stylegan_run, dcgan_run, tmp_path, capsys):
    from ganforge.cli import main

    run = stylegan_run[0]
    assert main(["generate", str(run), "--n", "3", "--seed", "4", "--truncation", "1,0.5,0",
                 "--grid", str(tmp_path / "sweep.png"), "--out", str(tmp_path / "pngs")]) == 0
    assert "columns: psi 1, 0.5, 0" in capsys.readouterr().out
    names = sorted(p.name for p in (tmp_path / "pngs").iterdir())
    assert names == [f"psi{p}-{i:05d}.png" for p in ("0", "0.5", "1") for i in range(3)]
    G = ganforge.load(run)
    table = ganforge.generate.sampling.truncation_sweep(G, 3, [1, 0.5, 0], seed=4)
    assert table.shape == (3, 3, *G.img_shape)
    assert torch.equal(table[:, 0], sample(G, 3, seed=4))  # psi 1 column: the plain samples
    assert torch.equal(table[:, 1], sample(G, 3, seed=4, truncation=0.5))
    assert torch.allclose(table[:, 2], table[:1, 2].expand_as(table[:, 2]), atol=1e-6)  # psi 0: the average
    with Image.open(tmp_path / "pngs" / "psi0.5-00001.png") as im:  # seed 1 at psi 0.5, as computed
        saved = np.asarray(im)
    assert np.array_equal(saved, to_uint8(table[1:2, 1])[0].squeeze())
    with Image.open(tmp_path / "sweep.png") as im:  # 3 columns (psi) x 3 rows (seeds)
        assert im.size[0] == im.size[1]

    dc = ganforge.load(dcgan_run)  # z-space families sweep by scaling z
    t = ganforge.generate.sampling.truncation_sweep(dc, 2, [1, 0.3], seed=1)
    assert torch.equal(t[:, 1], sample(dc, 2, seed=1, truncation=0.3))
    assert main(["generate", str(run), "--truncation", "1,3", "--grid", str(tmp_path / "x.png")]) == 2
    assert "truncation must be between 0 and 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["generate", str(run), "--truncation", "1,abc"])
    assert "comma list of numbers" in capsys.readouterr().err


def test_class_centred_truncation_keeps_the_class():
    G = official_nets(c_dim=3)[0]
    G.img_shape, G.num_classes = (G.img_channels, G.img_resolution, G.img_resolution), 3
    z, c = latents(G, 6, seed=0), torch.tensor([0, 0, 1, 1, 2, 2])
    flat = generate(G, z, c, truncation=0)  # official: one average w for all classes
    assert torch.allclose(flat, flat[:1].expand_as(flat), atol=1e-6)
    centred = generate(G, z, c, truncation=0, center="class")
    centers = ganforge.generate.sampling.class_w_centers(G)
    assert centers.shape == (3, G.w_dim)
    with torch.no_grad():
        want = G.synthesis(centers[c][:, None].expand(-1, G.num_ws, -1), noise_mode="const")
    assert torch.allclose(centred, want, atol=1e-5)
    assert torch.allclose(centred[0], centred[1], atol=1e-6) and not torch.allclose(centred[0], centred[2])
    assert torch.equal(generate(G, z, c, center="class"), generate(G, z, c))  # psi 1: nothing to pull
    sweep = ganforge.generate.sampling.truncation_sweep(G, 3, [0.5, 0], seed=2, center="class")  # centres found once
    assert torch.allclose(sweep[:, 0], generate(G, latents(G, 3, 2), torch.arange(3), truncation=0.5,
                                                center="class"), atol=1e-6)
    with pytest.raises(ganforge.errors.GenerateError, match="truncation centre"):
        generate(G, z, c, truncation=0.5, center="mean")


# ----------------------------------------------------------------- tools
def test_style_mix_grid(stylegan_run, tmp_path):
    G = ganforge.load(stylegan_run[0])
    rows, cols = [1, 2], [3, 4, 5]
    assert style_layers(G, "coarse") == [0, 1, 2, 3] and style_layers(G, "middle") == [4, 5]
    assert style_layers(G, "0-1,4") == [0, 1, 4]
    cells = style_mix(G, rows, cols, styles="0-5", out=tmp_path / "mix.png")
    assert cells.shape == (3, 4, 3, 16, 16) and torch.all(cells[0, 0] == BLANK)
    assert torch.allclose(cells[1:, 1:], cells[0:1, 1:].expand(2, -1, -1, -1, -1), atol=1e-6)  # all from column
    assert torch.allclose(cells[1, 0], sample(G, 1, seed=1)[0], atol=1e-5)
    assert torch.allclose(cells[0, 2], sample(G, 1, seed=4)[0], atol=1e-5)
    coarse = style_mix(G, rows, cols, styles="coarse")
    assert not torch.allclose(coarse[1, 1], coarse[0, 1]) and not torch.allclose(coarse[1, 1], coarse[1, 0])
    # 16 px cells, 2 px borders, x4
    assert Image.open(tmp_path / "mix.png").size == (4 * (4 * 18 + 2), 4 * (3 * 18 + 2))
    with pytest.raises(StyleGANError, match="no fine styles"):
        style_layers(G, "fine")
    with pytest.raises(StyleGANError, match=r"style layer 6 is out of range: this model has layers 0\.\.5"):
        style_layers(G, "2-9")


def test_noise_std_map(stylegan_run, tmp_path):
    G = ganforge.load(stylegan_run[0])
    result = noise_variation(G, seed=3, n=4, out_dir=tmp_path / "noise")
    assert result.images.shape == (4, 3, 16, 16) and result.std.shape == (16, 16)
    assert result.std.min() > 0 and result.grid_path.exists() and result.std_path.exists()
    again = noise_variation(G, seed=3, n=4)
    assert torch.equal(again.images, result.images)  # seeded noise draws
    for m in G.modules():
        if hasattr(m, "noise_strength"):
            m.noise_strength.data.zero_()
    assert torch.count_nonzero(noise_variation(G, seed=3, n=4).std) == 0


def test_interpolate_w(stylegan_run, dcgan_run, tmp_path):
    G = ganforge.load(stylegan_run[0])
    path = interpolate_w(G, tmp_path / "walk.gif", keys=2, steps=3, seed=0, truncation=0.7)
    assert Image.open(path).n_frames == 6
    with pytest.raises(StyleGANError, match="needs a StyleGAN2 run"):
        interpolate_w(ganforge.load(dcgan_run), tmp_path / "x.gif")


# ----------------------------------------------------------------- command line
def parse(argv):
    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers())
    return parser.parse_args([str(a) for a in argv])


def test_cli_commands(stylegan_run, tmp_path, monkeypatch, capsys):
    write_pickle(tmp_path / "net2.pkl", monkeypatch)
    a = parse(["import-stylegan", tmp_path / "net2.pkl", "--out", tmp_path / "run2"])
    assert a.func(a) == 0 and RunConfig.load(tmp_path / "run2").model.family == "stylegan2"
    a = parse(["style-mix", tmp_path / "run2", "--rows", "1-2", "--cols", "3,4,5", "--out", tmp_path / "m.png",
               "--styles", "middle", "--truncation", "0.7"])
    assert a.rows == [1, 2] and a.func(a) == 0 and (tmp_path / "m.png").exists()
    a = parse(["noise", tmp_path / "run2", "--seed", "7", "--n", "3"])
    assert a.func(a) == 0 and (tmp_path / "run2" / "noise" / "seed0007-noise-std.png").exists()
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["style-mix", "noise"])
def test_cli_rejects_other_families_in_one_line(dcgan_run, command):
    a = parse([command, dcgan_run])
    with pytest.raises(StyleGANError) as e:
        a.func(a)
    assert str(e.value) == f"{command} needs a StyleGAN2 run (family stylegan2); this run is dcgan"


def test_a_generator_imported_without_d_is_not_scored_with_a_random_d(tmp_path, monkeypatch, capsys):
    from ganforge.cli import main

    G, _, g_kwargs, _ = official_nets()
    (tmp_path / "g.pkl").write_bytes(official_style_pickle({"G_ema": G}, {id(G): g_kwargs}, monkeypatch, "x"))
    monkeypatch.undo()
    run = import_stylegan(tmp_path / "g.pkl", tmp_path / "run")
    assert main(["eval", str(run), "--metrics", "d", "--real", "digits", "--n", "8"]) == 2
    assert capsys.readouterr().err.strip() == (f"ganforge eval: error: metric 'd' needs the run's discriminator, and "
                                               f"{run} holds none (a generator imported without D): leave out the d "
                                               "metric")
    assert main(["eval", str(run), "--metrics", "fid", "--n", "8"]) == 2
    assert "was imported (g.pkl), so it has no training data to compare with: pass --real" in capsys.readouterr().err
    assert main(["info", str(run)]) == 0
    assert "no D (none in the checkpoint)" in capsys.readouterr().out
    assert main(["generate", str(run / "checkpoint.safetensors"), "--n", "2"]) == 0  # default out: RUN/generated
    assert sorted(p.name for p in (run / "generated").iterdir()) == ["sample-00000.png", "sample-00001.png"]


def test_ppl_of_an_imported_run_needs_no_real_images(stylegan_run):
    from ganforge.metrics.options import EvalOptions
    from ganforge.metrics.pipeline import run_eval

    run, _, _ = stylegan_run
    opts = EvalOptions(metrics=("ppl",), ppl_n=4, batch_size=4)
    result = run_eval(str(run), None, None, opts)
    assert result["real"] == "none (ppl and ls use no real images)" and result["n_real"] is None
    # the score needs the LPIPS VGG weights; where they are not installed the metric says so instead
    assert result["metrics"].get("ppl", 0) > 0 or "LPIPS" in result["skipped"]["ppl"]


def test_a_pickle_whose_generators_are_none_holds_no_generator(tmp_path):
    (tmp_path / "nones.pkl").write_bytes(pickle.dumps({"G": None, "G_ema": None, "D": None}))
    with pytest.raises(StyleGANError, match="holds no StyleGAN2 generator"):
        import_stylegan(tmp_path / "nones.pkl", tmp_path / "run")


def test_init_from_an_imported_run_names_the_size_to_train_at_and_keeps_its_loss(stylegan_run, tmp_path, capsys):
    from ganforge.cli import main

    run, _, _ = stylegan_run
    assert main(["train", "digits", "--init", str(run), "--steps", "1", "--out", str(tmp_path / "a")]) == 2
    assert capsys.readouterr().err.strip() == (f"ganforge train: error: --init {run} draws resolution 16 but this "
                                               "data gives 8: train with --resolution 16")
    assert main(["train", "digits", "--init", str(run), "--resolution", "16", "--channels", "3", "--steps", "1",
                 "--batch-size", "4", "--grid-size", "4", "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert json.loads((tmp_path / "b" / "config.json").read_text())["train"]["loss"] == "ns"  # the importer's


def test_style_names_offered_are_the_ones_the_model_has_and_gifs_cap_their_fps(stylegan_run, tmp_path, capsys):
    from ganforge.cli import main
    from ganforge.errors import OutputPathError
    from ganforge.storage.images import check_video_path

    G = Generator(**dict(SMALL_G, img_resolution=8))
    with pytest.raises(StyleGANError) as e:
        style_layers(G, "middle")
    assert str(e.value) == "a 8x8 model has no middle styles (16x16 and up); use coarse or layer numbers 0-3"
    with pytest.raises(OutputPathError, match="a GIF plays at most 50 frames per second"):
        check_video_path(tmp_path / "a.gif", 60)
    assert check_video_path(tmp_path / "a.gif", 50) == tmp_path / "a.gif"
    run, _, _ = stylegan_run
    assert main(["interpolate", str(run), "--fps", "1000", "--out", str(tmp_path / "walk.gif")]) == 2
    assert "give --fps 50 or less, or write .mp4" in capsys.readouterr().err
    assert not (tmp_path / "walk.gif").exists()


def test_a_four_channel_network_is_compared_with_no_real_images(tmp_path, monkeypatch, capsys):
    from ganforge.cli import main

    torch.manual_seed(0)
    g_kwargs = dict(SMALL_G, img_channels=4)
    G = Generator(**g_kwargs).eval()
    (tmp_path / "g4.pkl").write_bytes(official_style_pickle({"G_ema": G}, {id(G): g_kwargs}, monkeypatch, "x"))
    monkeypatch.undo()
    run = import_stylegan(tmp_path / "g4.pkl", tmp_path / "run")
    assert main(["eval", str(run), "--metrics", "swd", "--real", "photos", "--n", "8"]) == 2
    assert capsys.readouterr().err.strip() == (f"ganforge eval: error: {run} draws 4-channel images, and real images "
                                               "are gray or RGB, so no metric compares them: only --metrics ppl,ls "
                                               "apply")
