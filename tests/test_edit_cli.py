"""`ganforge directions` and `ganforge edit` from the command line, and their one-line answers to bad input."""
import numpy as np
import pytest
import torch
from PIL import Image

from ganforge import models
from ganforge.cli import main
from ganforge.config import ModelConfig, RunConfig
from ganforge.edit import load_directions
from ganforge.edit.directions import seed_z
from ganforge.generate.runs import load
from ganforge.storage.checkpoint import module_tensors, save_checkpoint

TINY = ["--z-dim", "8", "--g-width", "8", "--d-width", "8", "--batch-size", "8", "--sample-every", "2",
        "--grid-size", "4", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def cdc_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "cdc"
    assert main(["train", "digits", "--family", "cdcgan", "--steps", "3", "--out", str(out), *TINY]) == 0
    return out


@pytest.fixture(scope="module")
def sg_run(tmp_path_factory):
    """A tiny StyleGAN2 run (untrained: the tools only need its shapes and a fixed mapping)."""
    torch.manual_seed(0)
    cfg = RunConfig()
    cfg.data.source = "digits"
    cfg.model = ModelConfig(family="stylegan2", z_dim=16, resolution=16, channels=1, g_width=16, d_width=16)
    G, D = models.build(cfg.model)
    out = tmp_path_factory.mktemp("runs") / "sg"
    save_checkpoint(out / "checkpoint.safetensors", module_tensors(G, "G_ema") | module_tensors(D, "D"),
                    {"step": 0, "config": cfg.to_dict()})
    cfg.save(out / "config.json")
    return out


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_sefa_then_edit_strip(sg_run, tmp_path, capsys):
    out = tmp_path / "sefa.npz"
    assert main(["directions", str(sg_run), "--method", "sefa", "--layers", "0-3", "--k", "4", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}: 4 sefa direction(s) in w, layers 0-3" in text and "sefa3: eigenvalue" in text
    dirs = load_directions(out)
    assert dirs.names == ["sefa0", "sefa1", "sefa2", "sefa3"] and dirs.network["family"] == "stylegan2"
    strip = tmp_path / "strip.png"
    # `--strength -2:2:5` without '=': the value starts with a minus and must not be read as an option
    assert main(["edit", str(sg_run), "--directions", str(out), "--name", "sefa1", "--seed", "4", "--strength",
                 "-2:2:5", "--out", str(strip)]) == 0
    assert "5 images of seed 4 along 'sefa1', strength -2, -1, 0, 1, 2" in capsys.readouterr().out
    assert Image.open(strip).size == (5 * 72 + 8, 80)  # 16 px images shown 4x, 2 px (x4) borders
    assert main(["edit", str(sg_run), "--directions", str(out), "--name", "sefa0", "--layers", "4-5",
                 "--out", str(tmp_path / "strip.gif")]) == 0
    assert Image.open(tmp_path / "strip.gif").n_frames == 7


def test_thickness_direction_with_a_condition(cdc_run, tmp_path, capsys):
    out = tmp_path / "thick.npz"
    assert main(["directions", str(cdc_run), "--method", "svm", "--attribute", "thickness", "--condition", "slant",
                 "--n", "200", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "rendering 200 images to score" in text and "thickness-plain: training accuracy" in text
    dirs = load_directions(out, load(cdc_run), family="cdcgan")
    assert dirs.names == ["thickness", "thickness-plain", "slant"] and dirs.space == "z"
    assert abs(float(np.dot(dirs.vectors[0], dirs.vectors[2]))) < 1e-5
    assert main(["edit", str(cdc_run), "--directions", str(out), "--name", "thickness", "--strength", "-1,1",
                 "--class", "3", "--out", str(tmp_path / "t.png")]) == 0


def test_labels_and_classifiers(cdc_run, tmp_path, capsys, monkeypatch):
    G = load(cdc_run)
    u = torch.nn.functional.normalize(torch.arange(8.0) - 3.5, dim=0)
    scores = (seed_z(G, range(300)) @ u).tolist()
    labels = tmp_path / "labels.csv"
    labels.write_text("seed,smile\n" + "".join(f"{s},{v}\n" for s, v in enumerate(scores)))
    out = tmp_path / "smile.npz"
    assert main(["directions", str(cdc_run), "--method", "svm", "--labels", str(labels), "--out", str(out)]) == 0
    dirs = load_directions(out)
    assert dirs.names == ["smile"] and float(np.dot(dirs.vectors[0], u.numpy())) > 0.9
    capsys.readouterr()

    (tmp_path / "myscores.py").write_text("def brightness(images):\n    return images.mean(dim=(1, 2, 3))\n")
    assert main(["directions", str(cdc_run), "--method", "svm", "--classifier",
                 f"{tmp_path / 'myscores.py'}:brightness", "--n", "60", "--out", str(out)]) == 0
    assert load_directions(out).names == ["brightness"]
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["directions", str(cdc_run), "--method", "svm", "--classifier", "myscores:brightness", "--n", "60",
                 "--name", "light", "--out", str(out)]) == 0
    assert load_directions(out).names == ["light"]

    for label, level in (("dark", 30), ("light", 220)):
        (tmp_path / "photos" / label).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((8, 8), level + i, np.uint8)).save(tmp_path / "photos" / label / f"{i}.png")
    capsys.readouterr()
    assert main(["directions", str(cdc_run), "--method", "svm", "--classifier", str(tmp_path / "photos"),
                 "--positive", "dark", "--n", "60", "--out", str(out)]) == 0
    assert f"logistic regression on {tmp_path / 'photos'} (dark 4, light 4), scoring 'dark'" in capsys.readouterr().out
    assert load_directions(out).names == ["dark"]


# ----------------------------------------------------------------- bad input: one line each
@pytest.fixture(scope="module")
def files(cdc_run, sg_run, tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    assert main(["directions", str(cdc_run), "--method", "sefa", "--k", "3", "--out", str(d / "cdc.npz")]) == 0
    assert main(["directions", str(sg_run), "--method", "sefa", "--k", "3", "--out", str(d / "sg.npz")]) == 0
    (d / "bad_rows.csv").write_text("seed,score\n0,1\n1,2\n2,3,4\n3,1\n")
    (d / "bad_seed.csv").write_text("0,1\n1,2\n-3,1\n3,1\n")
    np.savez(d / "w_small.npz", w=np.zeros((1, 4, 16), np.float32))
    return d


def bad_cases(cdc_run, sg_run, d):
    cdc, sg = str(cdc_run), str(sg_run)
    edit_sg = ["edit", sg, "--directions", str(d / "sg.npz"), "--name", "sefa0", "--out", str(d / "x.png")]
    return [
        (["edit", sg, "--directions", str(d / "cdc.npz"), "--name", "sefa0", "--out", str(d / "x.png")],
         f"ganforge edit: error: {d / 'cdc.npz'} was made for another network: directions of shape [3, 8] in z "
         "(cdcgan: z 8, architecture fingerprint "),
        (["edit", sg, "--directions", str(d / "cdc.npz"), "--name", "sefa0", "--out", str(d / "x.png")],
         "but this run has z of shape [16] (stylegan2: z 16, w 16 x 6 layers, architecture fingerprint "),
        (["edit", sg, "--directions", str(d / "sg.npz"), "--name", "age", "--out", str(d / "x.png")],
         f"ganforge edit: error: no direction 'age' in {d / 'sg.npz'}; it holds: sefa0, sefa1, sefa2"),
        (["directions", cdc, "--method", "svm", "--attribute", "boldness", "--out", str(d / "y.npz")],
         "ganforge directions: error: unknown attribute 'boldness'; choose thickness, slant, width or class:K"),
        (["directions", cdc, "--method", "svm", "--attribute", "width", "--condition", "tilt", "--out",
          str(d / "y.npz")], "ganforge directions: error: unknown attribute 'tilt' in --condition"),
        (["directions", cdc, "--method", "svm", "--labels", str(d / "bad_rows.csv"), "--out", str(d / "y.npz")],
         f"ganforge directions: error: {d / 'bad_rows.csv'} row 4: expected 2 fields (seed,score), got 3"),
        (["directions", cdc, "--method", "svm", "--labels", str(d / "bad_seed.csv"), "--out", str(d / "y.npz")],
         f"ganforge directions: error: {d / 'bad_seed.csv'} row 3: seed -3 does not exist: seeds are whole numbers "
         "from 0 to 4294967295"),
        (["directions", cdc, "--method", "svm", "--labels", str(d / "none.csv"), "--out", str(d / "y.npz")],
         f"ganforge directions: error: labels file {d / 'none.csv'} not found"),
        (["directions", sg, "--method", "sefa", "--layers", "0-9", "--out", str(d / "y.npz")],
         "ganforge directions: error: style layer 6 is out of range: this model has layers 0..5"),
        (edit_sg + ["--layers", "7"],
         "ganforge edit: error: style layer 7 is out of range: this model has layers 0..5"),
        (["directions", cdc, "--method", "sefa", "--layers", "0-2", "--out", str(d / "y.npz")],
         "ganforge directions: error: --layers picks w layers of a StyleGAN2 run; this run is cdcgan: drop --layers"),
        (edit_sg + ["--w", str(d / "w_small.npz")],
         f"ganforge edit: error: {d / 'w_small.npz'} holds a w of shape [1, 4, 16] but this network needs "
         "[1, 6, 16] (num_ws x w_dim)"),
        (edit_sg + ["--strength", "-3:3"],
         "ganforge edit: error: strength must be START:STOP:COUNT (e.g. -3:3:7), a comma list (-2,0,2) or one "
         "number, got '-3:3'"),
        (["directions", cdc, "--method", "sefa", "--out", str(d / "y.json")],
         "ganforge directions: error: --out must name a .npz file, got"),
        (["directions", cdc, "--method", "pca", "--attribute", "slant", "--out", str(d / "y.npz")],
         "ganforge directions: error: --attribute are for --method svm, not pca"),
        (["directions", cdc, "--method", "pca", "--space", "w", "--out", str(d / "y.npz")],
         "ganforge directions: error: w space needs a StyleGAN2 run (family stylegan2); this run is cdcgan"),
        (["directions", cdc, "--method", "svm", "--out", str(d / "y.npz")],
         "ganforge directions: error: --method svm needs one source of scores"),
        (["directions", cdc, "--method", "svm", "--classifier", "no_such_module_x:f", "--out", str(d / "y.npz")],
         "ganforge directions: error: --classifier 'no_such_module_x:f': cannot import no_such_module_x"),
        (["edit", cdc, "--directions", str(d / "cdc.npz"), "--name", "sefa0", "--w", str(d / "w_small.npz"),
          "--out", str(d / "x.png")], "ganforge edit: error: edit --w needs a StyleGAN2 run (family stylegan2); "
                                      "this run is cdcgan"),
        (["edit", cdc, "--directions", str(d / "missing.npz"), "--name", "sefa0", "--out", str(d / "x.png")],
         f"ganforge edit: error: directions file {d / 'missing.npz'} not found"),
        (edit_sg + ["--w", str(d / "w_small.npz"), "--seed", "5"],
         "ganforge edit: error: --seed picks a sampled image and --w a projected one: give one of them"),
        (["directions", cdc, "--method", "svm", "--attribute", "width", "--fraction", "0.6", "--out", str(d / "y.npz")],
         "ganforge directions: error: --fraction is the share of highest and of lowest scores fitted, in (0, 0.5], "
         "got 0.6"),
        (["directions", cdc, "--method", "pca", "--fraction", "0.2", "--out", str(d / "y.npz")],
         "ganforge directions: error: --fraction are for --method svm, not pca"),
        (edit_sg[:-1] + [str(d / "x.txt")], f"ganforge edit: error: cannot tell the format of {d / 'x.txt'} from "
                                           "'.txt': use .png or .jpg for a strip, .gif or .mp4 for an animation"),
    ]


def test_bad_input_is_one_line(cdc_run, sg_run, files, capsys):
    for argv, message in bad_cases(cdc_run, sg_run, files):
        assert main(argv) == 2, argv
        err = error_line(capsys)
        assert message in err, (argv, err)
    assert not (files / "y.npz").exists() and not (files / "x.png").exists()


def test_directions_go_to_the_runs_directions_folder_by_default(sg_run, capsys):
    """Without --out they land where the playground's Explore tab looks for named directions."""
    out = sg_run / "directions" / "pca.npz"
    try:
        assert main(["directions", str(sg_run / "checkpoint.safetensors"), "--method", "pca", "--k", "2",
                     "--n", "200"]) == 0  # a checkpoint file names its run folder too
        assert f"wrote {out}: 2 pca direction(s) in w" in capsys.readouterr().out
        assert load_directions(out).names == ["pca0", "pca1"]
        from ganforge.playground.explore import Explorer

        assert [d["key"] for d in Explorer(sg_run).info()["named"]] == ["directions/pca.npz:pca0",
                                                                       "directions/pca.npz:pca1"]
    finally:
        out.unlink(missing_ok=True)  # the run is shared by the module's other tests
