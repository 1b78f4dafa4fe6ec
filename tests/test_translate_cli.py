"""`ganforge train --family pix2pix|srresnet --task ...`, `ganforge translate` and `ganforge eval` on
translation runs, end to end with tiny networks on 16 px digits."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ganforge.cli.app import main
from ganforge.storage.checkpoint import load_checkpoint

TINY = ["--resolution", "16", "--g-width", "4", "--d-width", "4", "--batch-size", "4", "--log-every", "1",
        "--sample-every", "2", "--ckpt-every", "2", "--quiet", "--device", "cpu"]


def _train(tmp_path, name, *args, steps=4):
    out = tmp_path / name
    assert main(["train", "digits", *TINY, "--steps", str(steps), "--out", str(out), *args]) == 0
    return out


@pytest.fixture(scope="module")
def sr_run(tmp_path_factory):
    """A pix2pix x4 super-resolution run (depth 2: 16 px targets from 4 px inputs)."""
    tmp = tmp_path_factory.mktemp("sr")
    return _train(tmp, "sr", "--family", "pix2pix", "--task", "superres", "--scale", "4",
                  "--model-options", '{"depth": 2, "patch": 16}')


def test_train_superres_writes_a_translation_run(sr_run, capsys):
    cfg = json.loads((sr_run / "config.json").read_text())
    o = cfg["model"]["options"]
    assert (cfg["model"]["family"], o["task"], o["scale"], o["adv_weight"], o["l1_weight"]) == \
        ("pix2pix", "superres", 4, 1.0, 100.0)
    assert (o["in_channels"], o["out_channels"], o["upsample"]) == (1, 1, 4)
    assert cfg["train"]["loss"] == "ns" and cfg["train"]["batch_size"] == 4
    tensors, meta = load_checkpoint(sr_run)
    assert meta["step"] == 4
    log = [json.loads(line) for line in (sr_run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4] and all(r["loss_d"] > 0 for r in log)
    assert sorted(p.name for p in (sr_run / "samples").iterdir()) == \
        ["step-000000.png", "step-000002.png", "step-000004.png"]
    from PIL import Image

    with Image.open(sr_run / "samples.png") as im:  # 3 columns: input | output | target
        assert im.width == (3 * (16 + 2) + 2) * 4  # upscaled 4x to be visible


def test_resume_continues_exactly(tmp_path):
    args = ["--family", "srresnet", "--task", "superres", "--scale", "2",
            "--model-options", '{"blocks": 1, "patch": 16}', "--adv-weight", "0.5"]
    straight = _train(tmp_path, "straight", *args, steps=4)
    part = _train(tmp_path, "part", *args, steps=2)
    assert main(["train", "--resume", str(part), "--steps", "4", "--quiet"]) == 0
    a, ma = load_checkpoint(straight)
    b, mb = load_checkpoint(part)
    assert ma["step"] == mb["step"] == 4
    for k in a:
        if k.startswith(("G.", "D.")):
            torch.testing.assert_close(a[k], b[k], msg=k)


def test_adv_weight_zero_is_l1_only(tmp_path):
    run = _train(tmp_path, "psnr", "--family", "srresnet", "--task", "superres", "--scale", "2",
                 "--model-options", '{"blocks": 1, "patch": 16}', "--adv-weight", "0", steps=2)
    tensors, _ = load_checkpoint(run)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert all(r["loss_d"] == 0 and "loss_adv" not in r for r in log)
    assert not any(k.startswith("opt_D.") for k in tensors)  # D never stepped


def test_recon_mse_trains_on_the_squared_error(tmp_path):
    runs = {}
    for recon in ("l1", "mse"):
        runs[recon] = _train(tmp_path, recon, "--family", "srresnet", "--task", "superres", "--scale", "2",
                             "--model-options", '{"blocks": 1, "patch": 16}', "--adv-weight", "0", "--recon", recon,
                             steps=2)
    for recon, run in runs.items():
        assert json.loads((run / "config.json").read_text())["model"]["options"]["recon"] == recon
    logs = {k: [json.loads(line) for line in (r / "log.jsonl").read_text().splitlines()] for k, r in runs.items()}
    assert [len(v) for v in logs.values()] == [2, 2]
    assert all(r["loss_g"] == pytest.approx(100 * r["loss_l1"], rel=1e-5) for r in logs["l1"])
    # the untrained model is bicubic, off by much less than 1: the squared error is below the absolute one
    assert all(r["loss_g"] < 100 * r["loss_l1"] * 0.9 for r in logs["mse"])


@pytest.mark.parametrize("args, message", [
    (["--family", "srresnet", "--task", "edges"], "family srresnet only does --task superres, not edges"),
    (["--family", "dcgan", "--task", "edges"], "--task is for the image-to-image families"),
    (["--family", "pix2pix"], "on built-in 'digits' needs --task"),
    (["--family", "pix2pix", "--task", "colorize"], "--task colorize needs colour images"),
    (["--family", "pix2pix", "--task", "edges"], "16 px training images are too small for the 70x70 PatchGAN"),
])
def test_train_option_errors(tmp_path, capsys, args, message):
    assert main(["train", "digits", *TINY, "--steps", "1", "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ganforge train: error: ") and message in err and "\n" not in err


def _png(path, array):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def test_translate_writes_outputs_grid_and_notes(sr_run, tmp_path, capsys):
    rng = np.random.default_rng(0)
    inputs = tmp_path / "in"
    _png(inputs / "small.png", rng.integers(0, 255, (6, 5), dtype=np.uint8))
    _png(inputs / "colour.png", rng.integers(0, 255, (4, 4, 3), dtype=np.uint8))
    (inputs / "readme.txt").write_text("not an image")
    (inputs / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    assert main(["translate", str(sr_run), str(inputs), "--out", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    from PIL import Image

    with Image.open(out / "small.png") as im:
        assert im.size == (20, 24) and im.mode == "L"  # x4, any size
    assert sorted(p.name for p in out.iterdir()) == ["colour.png", "comparison.png", "small.png"]  # no temp files
    assert f"translated 2 image(s) into {out} (1 input(s) skipped)" in captured.out
    assert "colour.png: colour input converted to gray for this superres x4" in captured.err
    assert "skipped 1 file(s) that are not images: readme.txt" in captured.err
    assert "skipped broken.png: not a readable image (cannot identify image file)" in captured.err


def test_translate_from_target_tiles_a_large_image(sr_run, tmp_path, capsys):
    big = _png(tmp_path / "big.png", np.random.default_rng(1).integers(0, 255, (50, 42), dtype=np.uint8))
    out = tmp_path / "out"
    assert main(["translate", str(sr_run), str(big), "--out", str(out), "--from-target", "--tile", "8",
                 "--overlap", "4", "--quiet"]) == 0
    from PIL import Image

    with Image.open(out / "big.png") as im:
        assert im.size == (40, 48)  # the target cropped to a multiple of 4, its 1/4 input upscaled back
    with Image.open(out / "comparison.png") as im:
        assert im.height == 128 + 4 and im.width == 3 * (round(40 * 128 / 48) + 2) + 2  # input | output | target


def test_translate_never_overwrites_an_input_or_another_output(sr_run, tmp_path, capsys):
    rng = np.random.default_rng(2)
    one, two = tmp_path / "one", tmp_path / "two"
    _png(one / "x.png", rng.integers(0, 255, (4, 4), dtype=np.uint8))
    _png(one / "x.webp", rng.integers(0, 255, (4, 4), dtype=np.uint8))
    _png(one / "comparison.png", rng.integers(0, 255, (4, 4), dtype=np.uint8))
    _png(two / "x.png", rng.integers(0, 255, (8, 8), dtype=np.uint8))
    before = (one / "x.png").read_bytes()
    assert main(["translate", str(sr_run), str(one), str(two), str(one / "x.png"), "--out", str(one),
                 "--quiet"]) == 0  # one/x.png also named on its own: translated once
    assert "translated 4 image(s)" in capsys.readouterr().out
    assert (one / "x.png").read_bytes() == before  # the input folder is the output folder: inputs stay
    names = sorted(p.name for p in one.iterdir())
    assert names == ["comparison-2.png", "comparison-png.png", "comparison.png", "x-2.png", "x-png.png",
                     "x-webp.png", "x.png", "x.webp"]
    from PIL import Image

    with Image.open(one / "x-2.png") as im:  # the second x.png, from folder two: 8x8 input, x4
        assert im.size == (32, 32)


def test_translate_from_a_target_too_small_to_downsample_is_skipped(sr_run, tmp_path, capsys):
    rng = np.random.default_rng(3)
    _png(tmp_path / "in" / "ok.png", rng.integers(0, 255, (8, 8), dtype=np.uint8))
    _png(tmp_path / "in" / "dot.png", rng.integers(0, 255, (1, 1), dtype=np.uint8))
    assert main(["translate", str(sr_run), str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--from-target",
                 "--quiet"]) == 0
    cap = capsys.readouterr()
    assert "skipped dot.png: too small (1x1) to downsample 4x: give targets of at least 4x4 pixels" in cap.err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["comparison.png", "ok.png"]


@pytest.mark.parametrize("args, message", [
    (["--task", "edges"], "was trained for superres x4 (bicubic downsampling), not edges: use a run trained for"),
    (["--tile", "8", "--overlap", "8"], "--overlap (8) must be smaller than --tile (8)"),
    (["--device", "bogus"], "unknown device 'bogus'; use auto, cpu, cuda or mps"),
])
def test_translate_errors(sr_run, tmp_path, capsys, args, message):
    img = _png(tmp_path / "x.png", np.zeros((4, 4), np.uint8))
    assert main(["translate", str(sr_run), str(img), "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ganforge translate: error: ") and message in err
    assert not (tmp_path / "o").exists()


def test_translate_on_device_auto_runs_where_it_can(sr_run, tmp_path, capsys):
    img = _png(tmp_path / "x.png", np.zeros((4, 4), np.uint8))
    assert main(["translate", str(sr_run), str(img), "--out", str(tmp_path / "o"), "--device", "auto",
                 "--quiet"]) == 0
    assert "translated 1 image(s) into" in capsys.readouterr().out and (tmp_path / "o" / "x.png").is_file()


def test_translate_nothing_usable_is_an_error(sr_run, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("x")
    assert main(["translate", str(sr_run), str(tmp_path / "in"), "--out", str(tmp_path / "o")]) == 2
    assert "no images among" in capsys.readouterr().err


def test_gray_input_to_an_rgb_model_is_converted_with_a_note(tmp_path, capsys):
    run = _train(tmp_path, "rgb", "--channels", "3", "--family", "srresnet", "--task", "superres", "--scale", "2",
                 "--model-options", '{"blocks": 1, "patch": 16}', steps=1)
    img = _png(tmp_path / "g.png", np.full((5, 5), 100, np.uint8))
    assert main(["translate", str(run), str(img), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    assert "g.png: gray input converted to RGB (three equal channels) for this RGB model" in capsys.readouterr().err
    from PIL import Image

    with Image.open(tmp_path / "o" / "g.png") as im:
        assert im.mode == "RGB" and im.size == (10, 10)


def test_eval_of_a_translation_run_refuses_the_sampling_options(sr_run, capsys):
    assert main(["eval", str(sr_run), "--real", "digits", "--metrics", "fid", "--n", "20"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("ganforge eval: error: --metrics, --n, --real: not for an image-to-image run, whose eval reports "
                   "its task's metrics on its own test split (it takes --seed, --device and --json)")


def test_eval_reports_the_task_metrics_stating_what_was_measured(sr_run, capsys):
    assert main(["eval", str(sr_run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = {r["metric"]: r for r in result["metrics"]}
    assert {"psnr_y[model]", "ssim_y[model]", "hf_ratio[model]", "psnr_y[bicubic]", "ssim_y[bicubic]"} <= set(rows)
    assert rows["psnr_y[model]"]["measured"] == ("PSNR (skimage) on gray value, 4-px border cropped, digits test "
                                                 "split, 179 images 16x16")
    assert 0 < rows["ssim_y[bicubic]"]["value"] <= 1 and rows["psnr_y[bicubic]"]["value"] > 5
    assert main(["eval", str(sr_run)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].endswith("(step 4, pix2pix, superres x4 (bicubic downsampling)) on digits "
                                         "(test split)")


def test_train_on_a_paired_folder(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for i in range(10):
        _png(tmp_path / "ab" / f"{i}.png", rng.integers(0, 255, (16, 32, 3), dtype=np.uint8))
    out = tmp_path / "run"
    assert main(["train", str(tmp_path / "ab"), "--family", "pix2pix", *TINY, "--steps", "2", "--out", str(out),
                 "--model-options", '{"patch": 16}', "--no-cache"]) == 0
    assert "9 pairs of 3x16x16" in capsys.readouterr().out
    o = json.loads((out / "config.json").read_text())["model"]["options"]
    assert (o["task"], o["in_channels"], o["out_channels"]) == ("paired", 3, 3)
    img = _png(tmp_path / "x.png", np.zeros((8, 8, 3), np.uint8))
    assert main(["translate", str(out), str(img), "--out", str(tmp_path / "o"), "--from-target"]) == 2
    assert "--from-target needs a task that makes its inputs" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["generate", "--n", "2", "--grid"], ["interpolate", "--out"],
                                     ["directions", "--method", "pca", "--n", "20", "--out"]])
def test_sampling_commands_send_an_image_to_image_run_to_translate(sr_run, tmp_path, capsys, command):
    out = tmp_path / {"generate": "x.png", "interpolate": "walk.gif", "directions": "d.npz"}[command[0]]
    assert main([command[0], str(sr_run), *command[1:], str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"ganforge {command[0]}: error: this run's generator turns images into images (an image-to-image "
                   "family), so it has no latents to sample: use `ganforge translate RUN INPUT... --out DIR`")
    assert not out.exists()
