import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge.cli import main

TINY = ["--z-dim", "8", "--g-width", "8", "--d-width", "8", "--batch-size", "8", "--sample-every", "2",
        "--grid-size", "4", "--quiet", "--device", "cpu"]


@pytest.fixture
def run_dir(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "digits", "--family", "cdcgan", "--steps", "3", "--out", str(out), *TINY]) == 0
    return out


def test_train_writes_run_files(run_dir, capsys):
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.json", "checkpoint.safetensors", "samples.png", "progress.gif", "log.jsonl"} <= names
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["model"]["family"] == "cdcgan" and cfg["model"]["resolution"] == 8 and len(cfg["class_names"]) == 10
    grids = sorted(p.name for p in (run_dir / "samples").iterdir())
    assert grids == ["step-000000.png", "step-000002.png", "step-000003.png"]
    assert Image.open(run_dir / "progress.gif").format == "GIF"
    assert (run_dir / "samples.png").read_bytes() == (run_dir / "samples" / grids[-1]).read_bytes()


def test_generate_pngs_decode_with_right_size(run_dir, tmp_path, capsys):
    out = tmp_path / "png"
    assert main(["generate", str(run_dir), "--n", "5", "--out", str(out), "--grid", str(tmp_path / "g.png")]) == 0
    files = sorted(out.glob("*.png"))
    assert len(files) == 5
    for f in files:
        img = Image.open(f)
        assert img.size == (8, 8) and img.mode == "L"
    from ganforge.storage.images import auto_upscale, grid

    # one column per class, but 5 images of a 10-class run make one row of 5, not 10 columns half empty
    assert Image.open(tmp_path / "g.png").size == grid(torch.zeros(5, 1, 8, 8), nrow=5, upscale=auto_upscale(8)).size


def test_same_seed_bit_identical_and_class_option(run_dir, tmp_path):
    for name in ("a", "b"):
        main(["generate", str(run_dir), "--n", "4", "--seed", "3", "--class", "7", "--out", str(tmp_path / name)])
    for i in range(4):
        a = np.asarray(Image.open(tmp_path / "a" / f"sample-{i:05d}.png"))
        b = np.asarray(Image.open(tmp_path / "b" / f"sample-{i:05d}.png"))
        assert np.array_equal(a, b)
    G = ganforge.load(run_dir)
    x7 = ganforge.sample(G, 4, seed=3, class_index=7)
    x2 = ganforge.sample(G, 4, seed=3, class_index=2)
    assert not torch.equal(x7, x2)


def test_interpolate_writes_looping_gif(run_dir, tmp_path):
    out = tmp_path / "loop.gif"
    assert main(["interpolate", str(run_dir), "--out", str(out), "--keys", "3", "--steps", "4"]) == 0
    gif = Image.open(out)
    assert gif.n_frames == 12 and gif.info.get("loop") == 0


def test_info_json(run_dir, capsys):
    capsys.readouterr()
    assert main(["info", str(run_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["family"] == "cdcgan" and info["step"] == 3 and info["g_params"] > 0


def test_errors_are_one_line(run_dir, tmp_path, capsys):
    capsys.readouterr()
    assert main(["generate", str(run_dir), "--class", "10", "--grid", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "ganforge generate: error: class 10 is out of range: this model has classes 0..9"
    assert main(["generate", str(tmp_path / "nope")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "missing"), *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert "not found" in err and "\n" not in err
    (tmp_path / "empty").mkdir()
    assert main(["train", str(tmp_path / "empty"), *TINY]) == 2
    assert "no images" in capsys.readouterr().err
    assert main(["train", "digits", "--family", "dcgan", "--resolution", "30", *TINY]) == 2
    assert "resolution" in capsys.readouterr().err


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--d-lr" in out and "(default: 0.0002)" in out and "(default: cdcgan)" in out


def test_datasets_lists_builtins(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("mnist") and "digits" in out


def test_sigterm_saves_and_resume_continues(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ganforge", "train", "digits", "--family", "dcgan", "--steps", "100000",
           "--out", str(out), "--ckpt-every", "100000", "--log-every", "1", *TINY]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (out / "samples" / "step-000002.png").exists() and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "ganforge train --resume" in stdout
    step = json.loads((out / "log.jsonl").read_text().splitlines()[-1])["step"]
    ckpt_step = ganforge.load(out).step
    assert ckpt_step >= 2 and ckpt_step >= step
    assert main(["train", "--resume", str(out), "--steps", str(ckpt_step + 2), "--quiet"]) == 0
    assert ganforge.load(out).step == ckpt_step + 2


def test_config_file_with_flag_overrides(run_dir, tmp_path):
    out = tmp_path / "again"
    assert main(["train", "--config", str(run_dir / "config.json"), "--steps", "2", "--out", str(out),
                 "--quiet"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["steps"] == 2 and cfg["data"]["source"] == "digits"  # from the file
    assert cfg["model"]["family"] == "cdcgan" and cfg["model"]["g_width"] == 8


def test_train_on_a_folder_with_a_corrupt_file_then_generate_rgb(tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):  # non-square RGB pictures, centre-cropped and resized to 16 px
        Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    (folder / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="skipped 1 of 13"):
        assert main(["train", str(folder), "--family", "dcgan", "--resolution", "16", "--steps", "2",
                     "--out", str(out), *TINY]) == 0
    assert main(["generate", str(out), "--n", "3", "--out", str(tmp_path / "gen")]) == 0
    img = Image.open(tmp_path / "gen" / "sample-00002.png")
    assert img.size == (16, 16) and img.mode == "RGB"


def test_bad_output_paths_are_one_line_errors_before_any_work(run_dir, tmp_path, capsys):
    capsys.readouterr()
    assert main(["interpolate", str(run_dir), "--out", str(tmp_path / "loop.avi")]) == 2
    assert capsys.readouterr().err.strip().startswith("ganforge interpolate: error: unsupported video format '.avi'")
    assert not (tmp_path / "loop.avi").exists()
    assert main(["generate", str(run_dir), "--grid", str(tmp_path / "g.xyz")]) == 2
    assert "cannot tell the image format" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert main(["generate", str(run_dir), "--out", str(tmp_path / "afile")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("is a file; pass a folder for the output images") and "\n" not in err


def test_a_run_folder_that_cannot_be_made_is_refused_before_any_work(run_dir, tmp_path, capsys, monkeypatch):
    import os

    import ganforge.data

    (tmp_path / "afile").write_text("x")
    monkeypatch.setattr(ganforge.data, "load_dataset", lambda *a, **k: pytest.fail("data loaded first"))
    afile, sub = tmp_path / "afile", tmp_path / "afile" / "sub"
    for out, message in ((afile, f"{afile} is a file; pass a folder for the run"),
                         (sub, f"{afile} is a file, so {sub} cannot be made: choose another path")):
        assert main(["train", "digits", "--family", "dcgan", "--out", str(out)]) == 2
        assert capsys.readouterr().err.strip() == f"ganforge train: error: {message}"
    read_only = tmp_path / "ro"
    read_only.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == read_only else real_access(p, mode))
    for argv in (["train", "digits", "--family", "dcgan", "--out", str(read_only / "run")],
                 ["generate", str(run_dir), "--n", "2", "--out", str(read_only / "run")]):
        assert main(argv) == 2
        assert capsys.readouterr().err.strip().endswith(
            f"error: cannot write in {read_only} (read-only or not yours), so {read_only / 'run'} cannot be made: "
            "choose another path")


def test_mp4_without_the_ffmpeg_writer_fails_before_rendering(run_dir, tmp_path, capsys, monkeypatch):
    """imageio without imageio-ffmpeg (scikit-image installs the one without the other) has no MP4 writer."""
    import importlib.machinery
    import types

    import ganforge.generate.sampling as sampling

    imageio = types.ModuleType("imageio")
    imageio.__spec__ = importlib.machinery.ModuleSpec("imageio", None)
    monkeypatch.setitem(sys.modules, "imageio", imageio)
    monkeypatch.setitem(sys.modules, "imageio.v2", imageio)
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # not installed
    monkeypatch.setattr(sampling, "generate", lambda *a, **k: pytest.fail("frames rendered before the check"))
    capsys.readouterr()
    assert main(["interpolate", str(run_dir), "--out", str(tmp_path / "loop.mp4")]) == 2
    assert capsys.readouterr().err == ("ganforge interpolate: error: writing loop.mp4 needs the 'imageio_ffmpeg' "
                                       "package: pip install imageio imageio-ffmpeg (ganforge's 'video' extra); "
                                       "or write a .gif\n")
    assert not (tmp_path / "loop.mp4").exists()


def test_train_offers_every_optimizer_the_trainer_has(tmp_path):
    from ganforge.cli.train import OPTIMIZER_NAMES
    from ganforge.train.trainer import OPTIMIZERS

    assert sorted(OPTIMIZER_NAMES) == sorted(OPTIMIZERS)
    out = tmp_path / "run"
    code = main(["train", "digits", "--family", "mlp", "--steps", "1", "--batch-size", "4", "--g-opt", "momentum",
                 "--g-momentum", "0.5", "--d-opt", "adadelta", "--out", str(out), "--quiet"])
    assert code == 0
    saved = json.loads((out / "config.json").read_text())["train"]
    assert (saved["g_opt"], saved["g_momentum"], saved["d_opt"]) == ("momentum", 0.5, "adadelta")


def test_a_reader_that_stops_early_gets_no_traceback():
    """`ganforge datasets | head -1`: the closed pipe ends the command quietly."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "ganforge", "datasets"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # before the command writes anything
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err and "BrokenPipeError" not in err, err
