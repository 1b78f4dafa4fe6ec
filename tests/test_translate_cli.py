"""`ganforge train --family pix2pix|srresnet --task ...`, `ganforge translate` and `ganforge eval` on
translation runs, end to end with tiny networks on 16 px digits."""
from __future__ import annotations

import json

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
