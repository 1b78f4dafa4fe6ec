"""The training loop as a user meets it: start-up and checks before the data is read."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

import ganforge
import ganforge.data
from ganforge.cli import main

WORKER = Path(__file__).with_name("signal_worker.py")
TINY = ["--z-dim", "8", "--g-width", "8", "--d-width", "8", "--batch-size", "8", "--grid-size", "4",
        "--device", "cpu"]


# ------------------------------------------------------------------ start-up
def test_building_the_parser_does_not_import_torch():
    """Ctrl-C while torch loads would otherwise come before main's handlers, as a traceback."""
    code = ("import sys; from ganforge.cli.app import build_parser, explicit_options; build_parser(); "
            "explicit_options(['train', 'digits', '--preset', 'stylegan2-mnist']); "
            "sys.exit(int('torch' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ------------------------------------------------------------------ configuration before data
BAD = [
    (["--family", "nope"], "unknown model family 'nope'"),
    (["--family", "stylegan2", "--model-options", '{"bogus": 1}'], "unknown stylegan2 model option(s) bogus"),
    (["--family", "stylegan2", "--model-options", '{"mapping_layers": 0}'], "mapping_layers must be"),
    (["--family", "layers", "--g-layers", '[{"type": "zzz"}]'], "generator layer 0: unknown type 'zzz'"),
    (["--family", "layers", "--g-layers", '[{"type": "fc", "out": 5}]'], "generator output is [B, 5]"),
    (["--family", "dcgan", "--resolution", "30"], "got 30"),
    (["--family", "dcgan", "--style-mixing", "0.9"], "style_mixing needs a generator with a mapping network"),
    (["--family", "cdcgan", "--no-labels"], "needs class labels, but they are turned off"),
    (["--family", "dcgan", "--g-lr", "-1"], "g_lr must be positive"),
    (["--family", "dcgan", "--diffaug", "blur"], "unknown DiffAugment policy 'blur'"),
    (["--family", "dcgan", "--tensorboard"], "--tensorboard needs the 'tensorboard' package"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_config_errors_come_before_the_data_is_read(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.setattr(ganforge.data, "load_dataset", lambda *a, **k: pytest.fail("the data was loaded"))
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # not installed
    folder = tmp_path / "pics"  # a folder that would fail (it is empty) if it were read
    folder.mkdir()
    assert main(["train", str(folder), *args, "--out", str(tmp_path / "run"), *TINY, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ganforge train: error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("field,value,message", [("loss", "foo", "unknown loss 'foo'"),
                                                 ("g_opt", "adagrad", "unknown g_opt 'adagrad'"),
                                                 ("precision", "fp8", "precision must be auto, fp32 or bf16")])
def test_config_file_errors_come_before_the_data_is_read(tmp_path, monkeypatch, capsys, field, value, message):
    monkeypatch.setattr(ganforge.data, "load_dataset", lambda *a, **k: pytest.fail("the data was loaded"))
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"data": {"source": str(tmp_path / "missing")}, "train": {field: value}}))
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ganforge train: error: ") and message in err, err


def test_a_layer_list_that_fits_the_data_is_not_rejected_by_the_check(tmp_path, capsys):
    """digits' size (8) is not known before loading: the check builds at guessed sizes, which fail here."""
    g = '[{"type": "fc", "out": 64}, {"type": "reshape", "shape": [1, 8, 8]}, {"type": "tanh"}]'
    d = '[{"type": "flatten"}, {"type": "fc", "out": 1}]'
    out = tmp_path / "run"
    assert main(["train", "digits", "--family", "layers", "--g-layers", g, "--d-layers", d, "--steps", "1",
                 "--out", str(out), *TINY, "--quiet"]) == 0
    assert ganforge.load(out).img_shape == (1, 8, 8)
