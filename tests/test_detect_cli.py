"""`ganforge detect` and `ganforge detect-train` end to end, on tiny folders and tiny runs."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from ganforge.cli import main
from test_detect import tiny_sets


def _write(folder, images, fmt="png", **kw):
    folder.mkdir(parents=True, exist_ok=True)
    for i, a in enumerate(images):
        Image.fromarray(a[0]).save(folder / f"{i:03d}.{fmt}", **kw)
    return folder


@pytest.fixture
def sets(tmp_path):
    real, fake = tiny_sets(24)
    test_real, test_fake = tiny_sets(8, seed=5)
    return (_write(tmp_path / "real", real), _write(tmp_path / "fake", fake),
            _write(tmp_path / "test-real", test_real), _write(tmp_path / "test-fake", test_fake))


@pytest.fixture
def spectral(tmp_path, sets, capsys):
    real, fake, _, _ = sets
    assert main(["detect-train", "--real", str(real), "--fake", str(fake), "--out", str(tmp_path / "det"),
                 "--augment", "0"]) == 0
    out = capsys.readouterr().out
    assert "spectral detector, 16x16x1, trained on 24 real and 24 fake images" in out
    assert re.search(r"held-out split: AP [0-9.]+, ROC AUC [0-9.]+, balanced accuracy [0-9.]+ at threshold "
                     r"[0-9.]+, ECE [0-9.]+", out)
    return tmp_path / "det"


def test_detect_prints_p_fake_verdict_and_evidence(spectral, sets, capsys):
    _, _, test_real, test_fake = sets
    assert main(["detect", str(test_fake / "000.png"), str(test_real / "000.png"), "--detector", str(spectral)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"2 images, threshold [0-9.]+ \(calibrated on the held-out split\)", lines[0])
    fake_line, real_line = lines[1:]
    assert re.fullmatch(rf"{re.escape(str(test_fake / '000.png'))}  p_fake [0-9.]+  fake  \(.+\)", fake_line)
    assert re.fullmatch(rf"{re.escape(str(test_real / '000.png'))}  p_fake [0-9.]+  real  \(.+\)", real_line)


@pytest.mark.parametrize("option, message", [
    ("--report", "is a folder; pass a file name for the output"),
    ("--heatmap", "is a file; pass a folder for the output images"),
    ("--reliability", "is a folder; pass a file name for the output"),
    ("--report-below-a-file", "is a file, so"),
    ("--heatmap-below-a-file", "is a file, so"),
])
def test_detect_outputs_are_checked_before_any_scoring(spectral, sets, tmp_path, capsys, option, message):
    real, fake, test_real, _ = sets
    target = tmp_path / ("file.txt" if option == "--heatmap" else "folder")
    target.write_text("x") if option == "--heatmap" else target.mkdir()
    if option.endswith("-below-a-file"):
        option = option.removesuffix("-below-a-file")
        (tmp_path / "afile").write_text("x")
        target = tmp_path / "afile" / "sub" / "out.html"
    args = ["--real", str(test_real), "--fake", str(fake)] if option == "--reliability" else [str(test_real)]
    assert main(["detect", *args, "--detector", str(spectral), option, str(target)]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and message in cap.err and len(cap.err.strip().splitlines()) == 1


def test_detect_with_nothing_readable_is_an_error(spectral, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    assert main(["detect", str(tmp_path / "empty"), "--detector", str(spectral)]) == 2
    assert "no readable images among" in capsys.readouterr().err


def test_detect_json_lines_and_bad_files_in_a_folder(spectral, sets, capsys):
    _, _, _, test_fake = sets
    (test_fake / "broken.png").write_bytes(b"\x89PNG not really")
    Image.new("L", (1, 1)).save(test_fake / "dot.png")
    assert main(["detect", str(test_fake), "--detector", str(spectral), "--json"]) == 0
    cap = capsys.readouterr()
    rows = [json.loads(line) for line in cap.out.splitlines()]
    assert len(rows) == 8 and {"path", "p_fake", "verdict", "evidence"} <= set(rows[0])
    assert sum(r["verdict"] == "fake" for r in rows) >= 7
    assert f"skipped {test_fake / 'broken.png'}: cannot identify image file" in cap.err
    assert f"skipped {test_fake / 'dot.png'}: too small (1x1)" in cap.err


def test_detect_evaluates_with_real_and_fake(spectral, sets, tmp_path, capsys):
    _, _, test_real, test_fake = sets
    rel, rep, heat = tmp_path / "rel.png", tmp_path / "r.html", tmp_path / "heat"
    assert main(["detect", "--detector", str(spectral), "--real", str(test_real), "--fake", str(test_fake),
                 "--reliability", str(rel), "--report", str(rep), "--heatmap", str(heat)]) == 0
    out = capsys.readouterr().out
    m = re.search(r"8 real, 8 fake: AP ([0-9.]+), ROC AUC [0-9.]+, accuracy [0-9.]+, balanced accuracy ([0-9.]+) "
                  r"at threshold [0-9.]+ \(calibrated on the held-out split\), ECE [0-9.]+ \(15 bins\)", out)
    assert m and float(m.group(1)) >= 0.9
    assert Image.open(rel).size == (320, 320)
    page = rep.read_text()
    assert page.count('class="card') == 16 and "Reliability" in page and 'src="http' not in page
    maps = sorted(heat.iterdir())
    assert len(maps) == 16 and Image.open(maps[0]).size == (2 * 16 * 8, 16 * 8)


@pytest.mark.parametrize("argv, message", [
    (["detect", "x.png", "--detector", "nowhere"], "no detector at nowhere: make one with `ganforge detect-train`"),
    (["detect", "--real", "digits"], "--real evaluates the detector and needs --fake DIR or --fake-from RUN as well"),
    (["detect"], "give images to score (PATH...), or --real and --fake to evaluate a detector"),
    (["detect-train", "--real", "digits", "--out", "d"], "give fakes to learn from: --fake DIR and/or --fake-from RUN"),
])
def test_detect_errors_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == f"ganforge {argv[0]}: error: {message}"


def test_detect_train_from_runs_made_on_the_fly(tmp_path, tiny_cfg, digits, capsys):
    from ganforge.train.run import Run
    from ganforge.train.trainer import Trainer

    runs = []
    for family in ("dcgan", "mlp"):
        cfg = tiny_cfg
        cfg.model.family = family
        cfg.train.steps = 2
        Run(Trainer(cfg, digits), tmp_path / family, progress=False).train()
        runs.append(str(tmp_path / family))
    assert main(["detect-train", "--real", "digits", "--max-images", "40", "--fake-from", *runs, "--n", "20",
                 "--out", str(tmp_path / "d"), "--augment", "0"]) == 0
    assert "trained on 40 real and 40 fake images" in capsys.readouterr().out
    meta = json.loads((tmp_path / "d.json").read_text())
    assert meta["size"] == 8 and meta["info"]["fake_from"] == runs
    assert main(["detect", "--detector", str(tmp_path / "d"), "--real", "digits", "--fake-from", runs[0],
                 "--n", "16", "--json"]) == 0
    ev = json.loads(capsys.readouterr().out.splitlines()[-1])["evaluation"]
    assert ev["n_real"] == 1797 and ev["n_fake"] == 16 and ev["ap"] > 0.5


def test_the_shipped_digit_detector_is_the_default(tmp_path, capsys):
    from ganforge.detect import scan
    from ganforge.detect.sources import builtin_arrays

    det = scan.load_detector(None)
    assert (det.kind, det.size, det.channels) == ("both", 28, 1)
    assert sum(f.stat().st_size for f in scan.WEIGHTS.iterdir()) < 3_000_000
    # MNIST images the shipped detector never saw (benchmarks/make_digit_detector.py holds them out by seed)
    mnist = builtin_arrays("mnist")
    held = np.random.default_rng(1234).permutation(len(mnist))[:10]
    folder = _write(tmp_path / "mnist", mnist[held])
    assert main(["detect", str(folder), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 10 and sum(r["verdict"] == "real" for r in rows) >= 9


def test_detect_help_names_the_default_detector(capsys):
    with pytest.raises(SystemExit):
        main(["detect", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Without --detector the shipped digit detector is used" in text


def test_cnn_detector_heatmaps_from_the_cli(sets, tmp_path, capsys):
    real, fake, test_real, _ = sets
    Image.new("L", (1, 1)).save(real / "dot.png")
    assert main(["detect-train", "--kind", "cnn", "--cnn-steps", "5", "--cnn-width", "4", "--real", str(real),
                 "--fake", str(fake), "--out", str(tmp_path / "cnn")]) == 0
    assert json.loads((tmp_path / "cnn.json").read_text())["cnn"]["width"] == 4
    cap = capsys.readouterr()
    assert f"ganforge detect-train: skipped {real / 'dot.png'}: too small (1x1)" in cap.err
    assert "cnn detector, 16x16x1" in cap.out
    assert main(["detect", str(test_real), "--detector", str(tmp_path / "cnn"), "--heatmap", str(tmp_path / "h"),
                 "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all(r["evidence"]["source"] == "cnn" for r in rows)
    assert len(list((tmp_path / "h").glob("*.png"))) == 8


def test_detect_train_builds_a_cnn_ensemble(sets, tmp_path, capsys):
    real, fake, test_real, test_fake = sets
    assert main(["detect-train", "--kind", "cnn", "--cnn-steps", "5", "--cnn-width", "4", "--cnn-ensemble", "2",
                 "--real", str(real), "--fake", str(fake), "--out", str(tmp_path / "ens")]) == 0
    assert "cnn detector (2 CNNs), 16x16x1" in capsys.readouterr().out
    assert json.loads((tmp_path / "ens.json").read_text())["cnn"]["members"] == 2
    assert main(["detect", str(test_fake), "--detector", str(tmp_path / "ens"), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 8 and all(r["evidence"]["source"] == "cnn" and 0 <= r["p_fake"] <= 1 for r in rows)
    assert main(["detect-train", "--kind", "cnn", "--cnn-ensemble", "17", "--real", str(real), "--fake", str(fake),
                 "--out", str(tmp_path / "big")]) == 2
    assert "a CNN ensemble has 1 to 16 members, got 17" in capsys.readouterr().err
    assert not (tmp_path / "big.json").exists()


def test_detect_train_takes_the_spectral_mode(tmp_path, sets, capsys):
    real, fake, test_real, test_fake = sets
    assert main(["detect-train", "--real", str(real), "--fake", str(fake), "--out", str(tmp_path / "dev"),
                 "--augment", "0", "--spectral-mode", "either"]) == 0
    meta = json.loads((tmp_path / "dev.json").read_text())
    assert meta["spectral"]["mode"] == "either" and set(meta["spectral"]["parts"]) == {"deviation", "linear"}
    capsys.readouterr()
    assert main(["detect", str(test_fake), "--detector", str(tmp_path / "dev"), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 8 and all(0 <= r["p_fake"] <= 1 and r["verdict"] in ("real", "fake") for r in rows)


def test_detect_train_refuses_a_bad_augment_before_reading(sets, tmp_path, capsys):
    real, fake, _, _ = sets
    assert main(["detect-train", "--real", str(real), "--fake", str(fake), "--out", str(tmp_path / "d"),
                 "--augment", "5"]) == 2
    err = capsys.readouterr().err
    assert "augment is the probability of each augmentation, between 0 and 1, got 5" in err
    assert not (tmp_path / "d.json").exists()


def test_skipped_files_are_counted_and_labelled_images_are_json_lines(spectral, sets, tmp_path, capsys):
    _, _, test_real, test_fake = sets
    (test_fake / "broken.png").write_bytes(b"\x89PNG not really")
    (test_fake / "notes.png").write_text("not an image")
    assert main(["detect", str(test_fake), "--detector", str(spectral)]) == 0
    assert re.match(r"8 images \(2 unreadable files skipped\), threshold ", capsys.readouterr().out)
    assert main(["detect", "--detector", str(spectral), "--real", str(test_real), "--fake", str(test_fake),
                 "--json", "--threshold", "0.5"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r.get("label") for r in rows[:-1]] == ["real"] * 8 + ["fake"] * 8
    assert all({"path", "p_fake", "verdict"} <= set(r) and r["threshold"] == 0.5 for r in rows[:-1])
    assert rows[-1]["evaluation"]["skipped"] == 2 and rows[-1]["evaluation"]["n_fake"] == 8


def test_a_given_threshold_is_called_given_in_the_report(spectral, sets, tmp_path, capsys):
    _, _, _, test_fake = sets
    assert main(["detect", str(test_fake), "--detector", str(spectral), "--threshold", "0.9",
                 "--report", str(tmp_path / "r.html")]) == 0
    assert "threshold 0.900 (given)" in capsys.readouterr().out
    page = (tmp_path / "r.html").read_text()
    assert "threshold 0.900 (given)" in page and "held-out split" not in page.split("<h2>")[0]


def test_a_missing_path_is_named_as_missing(spectral, sets, capsys):
    _, _, test_real, _ = sets
    assert main(["detect", "nothere.png", str(test_real), "--detector", str(spectral)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ganforge detect: error: nothere.png does not exist (and is not a built-in set: ")
    assert "\n" not in err


def test_detect_train_sizes_from_a_readable_image_and_checks_out_first(sets, tmp_path, capsys):
    real, fake, _, _ = sets
    odd = tmp_path / "odd-real"
    odd.mkdir()
    Image.new("L", (1, 1)).save(odd / "000-dot.png")  # sorts first; decoding skips it, so must the sizing
    Image.new("L", (5, 100)).save(odd / "001-thin.png")
    for f in sorted(real.iterdir()):
        (odd / f"n{f.name}").write_bytes(f.read_bytes())
    (tmp_path / "d.json").mkdir()
    assert main(["detect-train", "--real", str(odd), "--fake", str(fake), "--out", str(tmp_path / "d"),
                 "--augment", "0"]) == 2
    cap = capsys.readouterr()
    assert cap.err.strip() == f"ganforge detect-train: error: {tmp_path / 'd.json'} is a folder; pass a file name " \
                              "for the output"
    assert "skipped" not in cap.err and not (tmp_path / "d.safetensors").exists()
    assert main(["detect-train", "--real", str(odd), "--fake", str(fake), "--out", str(tmp_path / "e"),
                 "--augment", "0"]) == 0
    cap = capsys.readouterr()
    assert "spectral detector, 16x16x1, trained on 24 real and 24 fake images (2 unreadable files skipped)" in cap.out
    assert cap.err.count("skipped") == 2


def test_a_zip_member_that_unpacks_too_large_is_skipped(spectral, sets, tmp_path, capsys, monkeypatch):
    import zipfile

    from ganforge.detect import sources

    _, _, _, test_fake = sets
    z = tmp_path / "fakes.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(test_fake.iterdir())[:3]:
            zf.write(f, f.name)
        zf.writestr("bomb.png", (test_fake / "000.png").read_bytes() + bytes(200_000))
    monkeypatch.setattr(sources, "MAX_FILE_BYTES", 100_000)
    assert main(["detect", str(z), "--detector", str(spectral)]) == 0
    cap = capsys.readouterr()
    assert cap.out.startswith("3 images (1 unreadable file skipped)")
    assert f"skipped {z}:bomb.png: unpacks to 200," in cap.err and "over the limit of 100,000 bytes" in cap.err
