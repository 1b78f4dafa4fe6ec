"""ganforge.detect: the one decode path, features, calibration, detectors and their files."""
from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from ganforge.detect import decode
from ganforge.detect.decode import SkipImage, decode_file


def _png(img: Image.Image, fmt: str = "PNG", **kw) -> io.BytesIO:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    buf.seek(0)
    return buf


def _gradient(w: int = 20, h: int = 20) -> np.ndarray:
    return (np.add.outer(np.arange(h), np.arange(w)) * 255 // (w + h)).astype(np.uint8)


# -- decoding and bad input ---------------------------------------------------------------------------------------
def test_gray_and_colour_inputs_reach_the_detector_mode_and_size():
    rgb = Image.fromarray(np.stack([_gradient()] * 3, axis=-1))
    assert decode_file(_png(rgb), 16, 1, 0).shape == (1, 16, 16)
    assert decode_file(_png(Image.fromarray(_gradient())), 16, 3, 0).shape == (3, 16, 16)


def test_cmyk_16bit_palette_alpha_and_animated_are_converted():
    base = Image.fromarray(np.stack([_gradient()] * 3, axis=-1))
    want = decode_file(_png(base), 16, 1, 0)
    cmyk = decode_file(_png(base.convert("CMYK"), "JPEG", quality=100), 16, 1, 0)
    assert np.abs(cmyk.astype(int) - want).max() <= 8  # JPEG in CMYK: close, not exact
    g16 = Image.fromarray(_gradient().astype(np.uint16) * 257)  # 16-bit gray, full range
    assert np.array_equal(decode_file(_png(g16), 16, 1, 0), decode_file(_png(Image.fromarray(_gradient())), 16, 1, 0))
    pal = base.convert("P", palette=Image.ADAPTIVE, colors=256)
    assert decode_file(_png(pal), 16, 3, 0).shape == (3, 16, 16)
    rgba = base.convert("RGBA")
    rgba.putalpha(0)  # fully transparent: black, as the training decoder does
    assert decode_file(_png(rgba), 16, 3, 0).max() == 0
    frames = [Image.fromarray(np.full((20, 20), v, np.uint8)) for v in (200, 10)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    gif.seek(0)
    assert abs(int(decode_file(gif, 16, 1, 0).mean()) - 200) <= 2  # the first frame


@pytest.mark.parametrize("data, reason", [
    (b"not an image at all", "cannot identify image file"),
    (None, "truncated"),
])
def test_non_images_and_truncated_files_are_skipped_with_a_reason(data, reason):
    if data is None:
        whole = _png(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))).getvalue()
        data = whole[: len(whole) // 2]
    with pytest.raises(SkipImage, match=reason):
        decode_file(io.BytesIO(data), 16, 1, 0)


def test_one_pixel_images_are_skipped():
    with pytest.raises(SkipImage, match=r"too small \(1x1\)"):
        decode_file(_png(Image.new("L", (1, 1))), 16, 1, 0)


def test_decompression_bombs_are_refused_before_decoding(monkeypatch):
    monkeypatch.setattr(decode, "MAX_PIXELS", 100 * 100)
    with pytest.raises(SkipImage, match=r"too large \(101x100 = 10,100 pixels.*decompression bomb"):
        decode_file(_png(Image.new("L", (101, 100))), 16, 1, 0)


def test_pil_bomb_error_is_a_skip_too(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # PIL's own check fires first
    with pytest.raises(SkipImage, match="decompression bomb"):
        decode_file(_png(Image.new("L", (20, 20))), 16, 1, 0)


def test_large_images_are_centre_cropped_then_downscaled_whole():
    img = np.zeros((200, 400), np.uint8)
    img[:, 100:300] = 255  # the centre square is white, the sides black
    out = decode_file(_png(Image.fromarray(img)), 16, 1, 0)
    assert out.shape == (1, 16, 16) and out.min() >= 250


def test_jpeg_normalisation_is_the_same_for_files_and_arrays():
    arr = _gradient(16, 16)[None]
    from_file = decode_file(_png(Image.fromarray(arr[0])), 16, 1, 80)
    assert np.array_equal(from_file, decode.decode_array(arr, 16, 1, 80))


def test_a_folder_with_bad_files_reports_each_and_reads_the_rest(tmp_path):
    from ganforge.detect import sources

    Image.fromarray(_gradient()).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"garbage")
    Image.new("L", (1, 1)).save(tmp_path / "tiny.png")
    skipped = []
    x, names = sources.read_all(sources.items(str(tmp_path)), 16, 1, 0, on_skip=lambda n, r: skipped.append((n, r)))
    assert names == [str(tmp_path / "good.png")] and x.shape == (1, 1, 16, 16)
    assert skipped == [(str(tmp_path / "bad.png"), "cannot identify image file"),
                       (str(tmp_path / "tiny.png"), "too small (1x1): a detector needs at least 8x8 pixels")]


# -- tiny labelled sets: digits (Lanczos-upscaled) as real; nearest-upscaled copies with noise as "fakes" -------------
def tiny_sets(n: int = 40, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    d = load_digits().images
    pick = rng.choice(len(d), 2 * n, replace=False)
    base = np.clip(d[pick] * 16, 0, 255).astype(np.uint8)
    lanczos = [np.asarray(Image.fromarray(b).resize((size, size), Image.LANCZOS)) for b in base[:n]]
    nearest = [np.asarray(Image.fromarray(b).resize((size, size), Image.NEAREST)).astype(int) for b in base[n:]]
    fake = [np.clip(x + rng.integers(-6, 7, x.shape), 0, 255).astype(np.uint8) for x in nearest]
    return np.stack(lanczos)[:, None], np.stack(fake)[:, None]


def _det(kind: str = "spectral", n: int = 40, quality: int = 0, **kw):
    from ganforge.detect import detector

    real, fake = tiny_sets(n)
    opts = detector.TrainOptions(kind=kind, augment=0.0, cnn_steps=kw.pop("cnn_steps", 40), **kw)
    return detector.train(real, fake, 16, 1, quality, opts)


def test_feature_layout_matches_the_extracted_features():
    from ganforge.detect import features

    for size, channels in ((16, 1), (28, 1), (16, 3), (8, 1)):
        x = np.random.default_rng(0).integers(0, 256, (3, channels, size, size), dtype=np.uint8)
        assert features.extract(x).shape == (3, len(features.layout(size, channels)))
    assert set(features.layout(28, 3).groups) == {"spectrum", "residual DCT", "periodic peaks", "pixel statistics",
                                                  "colour"}


def test_spectral_detector_separates_and_explains():
    from ganforge.detect.calibrate import scores

    det = _det()
    real, fake = tiny_sets(30, seed=1)
    out = det.predict(np.concatenate([real, fake]))
    p = np.array([o["p_fake"] for o in out])
    s = scores(p, np.r_[np.zeros(30), np.ones(30)], det.threshold)
    assert s["ap"] >= 0.95 and s["balanced_accuracy"] >= 0.9
    assert {o["verdict"] for o in out} == {"real", "fake"}
    fake_ev = [o["evidence"] for o in out[30:] if o["verdict"] == "fake"]
    assert fake_ev and all(e["source"] == "spectral" and e["text"].startswith(e["group"]) for e in fake_ev)
    assert 0 < det.threshold < 1 and det.info["heldout_scores"]["n_real"] == 10


def test_detector_files_round_trip(tmp_path):
    from ganforge.detect import detector

    det = _det()
    st, js = det.save(tmp_path / "d")
    assert (st.name, js.name) == ("d.safetensors", "d.json")
    meta = json.loads(js.read_text())
    assert (meta["format"], meta["format_version"], meta["kind"]) == ("ganforge-detector", 1, "spectral")
    back = detector.load(tmp_path / "d.json")
    x = np.concatenate(tiny_sets(5, seed=2))
    assert [o["p_fake"] for o in back.predict(x)] == [o["p_fake"] for o in det.predict(x)]
    assert back.threshold == det.threshold


def _opposite_fakes(n: int, seed: int, sharpen: bool) -> tuple[np.ndarray, np.ndarray]:
    """Real: digits Lanczos-upscaled to 16 px; fake: the same blurred (too smooth) or with added pixel noise
    (too sharp), two generators whose faults lie on opposite sides of the real images."""
    from PIL import ImageFilter
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    d = load_digits().images
    base = np.clip(d[rng.choice(len(d), 2 * n, replace=False)] * 16, 0, 255).astype(np.uint8)
    up = [Image.fromarray(b).resize((16, 16), Image.LANCZOS) for b in base]
    if sharpen:
        fake = [np.clip(np.asarray(u) + rng.normal(0, 12, (16, 16)), 0, 255).astype(np.uint8) for u in up[n:]]
    else:
        fake = [np.asarray(u.filter(ImageFilter.GaussianBlur(0.8))) for u in up[n:]]
    return np.stack([np.asarray(u) for u in up[:n]])[:, None], np.stack(fake)[:, None]


def test_the_deviation_model_catches_a_generator_that_errs_the_other_way():
    """Trained on too-smooth fakes, tested on too-noisy ones: the linear model ranks them as more real than
    real images, the deviation model (and either, which takes the more suspicious) still finds them."""
    from ganforge.detect import detector
    from ganforge.detect.calibrate import scores

    real, smooth = _opposite_fakes(80, 0, sharpen=False)
    test_real, noisy = _opposite_fakes(60, 1, sharpen=True)
    x, y = np.concatenate([test_real, noisy]), np.r_[np.zeros(60), np.ones(60)]
    ap = {}
    for mode in detector.SPECTRAL_MODES:
        det = detector.train(real, smooth, 16, 1, 0, detector.TrainOptions(augment=0.0, spectral_mode=mode))
        assert det.spectral.mode == mode and sorted(det.spectral.parts) == (
            ["deviation", "linear"] if mode == "either" else [mode])
        ap[mode] = scores(det.calibration.prob(det.logits(x)), y, det.threshold)["ap"]
        seen_x, seen_y = np.concatenate([real, smooth]), np.r_[np.zeros(80), np.ones(80)]
        seen = scores(det.calibration.prob(det.logits(seen_x)), seen_y, det.threshold)["ap"]
        assert seen >= 0.95, (mode, seen)
    assert ap["linear"] < 0.6 and ap["deviation"] >= 0.9 and ap["either"] >= 0.9, ap


def test_an_either_detector_round_trips_and_explains(tmp_path):
    from ganforge.detect import detector

    det = _det(spectral_mode="either")
    det.save(tmp_path / "d")
    meta = json.loads((tmp_path / "d.json").read_text())
    assert meta["spectral"]["mode"] == "either" and sorted(meta["spectral"]["parts"]) == ["deviation", "linear"]
    back = detector.load(tmp_path / "d")
    x = np.concatenate(tiny_sets(5, seed=2))
    assert np.allclose(back.logits(x), det.logits(x)) and back.spectral.mode == "either"
    out = back.predict(x)
    assert all(o["evidence"]["source"] == "spectral" for o in out)
    meta["spectral"]["parts"]["svm"] = {"intercept": 0.0}
    (tmp_path / "d.json").write_text(json.dumps(meta))
    with pytest.raises(Exception) as e:
        detector.load(tmp_path / "d")
    assert "does not match its d.json (unknown spectral parts" in str(e.value) and "\n" not in str(e.value)


def test_an_unknown_spectral_mode_augment_or_size_is_one_line():
    from ganforge.errors import DataError

    with pytest.raises(DataError, match="unknown spectral mode 'svm': choose one of either, deviation, linear"):
        _det(n=8, spectral_mode="svm")
    from ganforge.detect import detector

    real, fake = tiny_sets(8)
    with pytest.raises(DataError, match="augment is the probability of each augmentation, between 0 and 1, got 5"):
        detector.train(real, fake, 16, 1, 0, detector.TrainOptions(augment=5.0))
    with pytest.raises(DataError, match="cannot train a detector: input size 4 is not between 8 and 1024"):
        detector.train(real, fake, 4, 1, 0, detector.TrainOptions())


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(format_version=2), "is detector format version 2, this ganforge reads version 1: upgrade"),
    (lambda m: m.update(format_version=0), "version 0, this ganforge reads version 1: retrain it"),
    (lambda m: m.update(kind="svm"), "is a detector of unknown kind 'svm': expected one of spectral, cnn, both"),
    (lambda m: m.update(kind="cnn"), "does not match its d.json ("),
    (lambda m: m.update(format="other"), "is not a ganforge detector (no 'ganforge-detector' tag)"),
    (lambda m: m.update(format_version="1"), "is detector format version '1', this ganforge reads version 1"),
    (lambda m: m.update(size=0), "does not match its d.json (input size 0 is not between 8 and 1024)"),
    (lambda m: m.update(channels=2), "(2 channels: a detector reads 1 (gray) or 3 (RGB))"),
    (lambda m: m.update(normalize_jpeg_quality=500), "(normalisation quality 500 is not 0 (off) or a JPEG"),
    (lambda m: m.update(format_version=True), "is detector format version True, this ganforge reads version 1"),
    (lambda m: m["calibration"].update(threshold=float("nan")), "(threshold nan is not a probability between 0 and 1)"),
    (lambda m: m["calibration"].update(threshold=5), "(threshold 5.0 is not a probability between 0 and 1)"),
    (lambda m: m["calibration"].pop("a"), "(calibration has no a)"),
    (lambda m: m.update(calibration="platt"), "(a calibration is an object with a, b and threshold, got str)"),
    (lambda m: m.pop("calibration"), "('calibration' is missing)"),
])
def test_a_detector_of_another_version_or_kind_is_one_clear_line(tmp_path, change, message):
    from ganforge.detect import detector
    from ganforge.errors import CheckpointError

    _, js = _det(n=8).save(tmp_path / "d")
    meta = json.loads(js.read_text())
    change(meta)
    js.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=None) as e:
        detector.load(tmp_path / "d")
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_run_checkpoint_is_not_a_detector(tmp_path):
    import torch

    from ganforge.detect import detector
    from ganforge.errors import CheckpointError
    from ganforge.storage.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "run.safetensors", {"G.w": torch.zeros(1)}, {"step": 1})
    with pytest.raises(CheckpointError, match=r"run.safetensors has no run.json beside it"):
        detector.load(tmp_path / "run.safetensors")
    with pytest.raises(CheckpointError, match="no detector at"):
        detector.load(tmp_path / "missing")


def test_calibration_ece_threshold_and_reliability_diagram():
    from ganforge.detect import calibrate

    p = np.array([0.1, 0.1, 0.9, 0.9])
    y = np.array([0, 1, 1, 1])
    # bin of 0.1: mean p 0.1, observed 0.5 -> 0.4 gap; bin of 0.9: observed 1.0 -> 0.1 gap; half the images each
    assert calibrate.ece(p, y) == pytest.approx(0.5 * 0.4 + 0.5 * 0.1)
    # the cut that separates best, midway between neighbours; among equally good cuts the one nearest 0.5
    assert calibrate.best_threshold(np.array([0.2, 0.55, 0.6, 0.7]), np.array([0, 0, 1, 1])) == pytest.approx(0.575)
    assert calibrate.best_threshold(np.array([0.2, 0.3, 0.6, 0.7]), np.array([0, 0, 1, 1])) == 0.5
    s = calibrate.scores(np.array([0.2, 0.3, 0.6, 0.7]), np.array([0, 0, 1, 1]), 0.45)
    assert (s["ap"], s["roc_auc"], s["accuracy"], s["balanced_accuracy"]) == (1.0, 1.0, 1.0, 1.0)
    cal = calibrate.fit_platt(np.r_[np.linspace(-3, 1, 20), np.linspace(-1, 3, 20)], np.r_[np.zeros(20), np.ones(20)])
    assert cal.a > 0 and cal.prob(np.array([10.0]))[0] > 0.9
    assert calibrate.reliability_png(p, y).size == (320, 320)


def test_augmentations_keep_size_and_change_pixels():
    from ganforge.detect import augment

    x = tiny_sets(2)[0]
    for name, value in (("jpeg", 50), ("resize", 0.5), ("blur", 2.0)):
        y = augment.perturb(x, name, value)
        assert y.shape == x.shape and y.dtype == np.uint8 and not np.array_equal(x, y)
    rng = np.random.default_rng(0)
    assert augment.random_augment(x[0], rng, p=1.0).shape == (1, 16, 16)


@pytest.mark.parametrize("combiner, message", [
    ([1.0, 2.0], "(combiner is not [w_spectral, w_cnn, bias])"),
    ([1.0, 2.0, 3.0, 4.0], "(combiner is not [w_spectral, w_cnn, bias])"),
    ("1,2,3", "(combiner is not [w_spectral, w_cnn, bias])"),
    ([1.0, "x", 3.0], "does not match its both.json ("),
])
def test_a_combined_detector_with_a_bad_combiner_is_refused_at_load(tmp_path, combiner, message):
    from ganforge.detect import detector
    from ganforge.errors import CheckpointError

    _, js = _det("both", n=16, cnn_steps=5).save(tmp_path / "both")
    meta = json.loads(js.read_text())
    meta["combiner"] = combiner
    js.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError) as e:
        detector.load(tmp_path / "both")
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_training_run_is_named_as_such_when_given_as_a_detector(tmp_path):
    from ganforge.detect import detector
    from ganforge.errors import CheckpointError

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "checkpoint.safetensors").write_bytes(b"")
    for path in (run, run / "checkpoint.safetensors"):
        with pytest.raises(CheckpointError, match=r"is a ganforge training run, not a detector: pass it as "
                                                  r"`--fake-from .*run`"):
            detector.load(path)


def test_a_detector_is_never_saved_as_half_a_pair(tmp_path, monkeypatch):
    from ganforge.errors import OutputPathError

    det = _det(n=8)
    (tmp_path / "d.json").mkdir()  # the description cannot be written there
    with pytest.raises(OutputPathError, match=r"d.json is a folder; pass a file name"):
        det.save(tmp_path / "d")
    assert not (tmp_path / "d.safetensors").exists()
    # a failure while writing the description removes the weights just written
    import ganforge.storage.atomic as atomic

    def fail(path, text):
        raise OSError("disk full")

    monkeypatch.setattr(atomic, "atomic_write_text", fail)
    with pytest.raises(OSError, match="disk full"):
        det.save(tmp_path / "e")
    assert not (tmp_path / "e.safetensors").exists() and not (tmp_path / "e.json").exists()


def test_cnn_and_combined_detectors_train_save_and_map(tmp_path):
    from ganforge.detect import detector

    det = _det("both", n=24, cnn_steps=30)
    x = np.concatenate(tiny_sets(4, seed=3))
    out = det.predict(x)
    assert len(det.combiner) == 3 and all(0 <= o["p_fake"] <= 1 for o in out)
    maps = det.heatmaps(x, [o["evidence"] for o in out])
    assert maps.shape == (8, 16, 16) and maps.min() >= 0 and maps.max() <= 1 + 1e-6
    det.save(tmp_path / "both")
    back = detector.load(tmp_path / "both")
    assert [o["p_fake"] for o in back.predict(x)] == pytest.approx([o["p_fake"] for o in out], abs=1e-6)
    cnn_only = _det("cnn", n=16, cnn_steps=10)
    ev = cnn_only.predict(x)[0]["evidence"]
    assert ev["source"] == "cnn" and ev["text"].startswith("CNN activation, strongest in the ")


def test_report_is_self_contained():
    from ganforge.detect.calibrate import reliability_png
    from ganforge.detect.report import render

    det = _det()
    real, fake = tiny_sets(6, seed=4)
    x = np.concatenate([real, fake])
    out = det.predict(x)
    labels = np.r_[np.zeros(6, int), np.ones(6, int)]
    page = render([f"img{i}" for i in range(12)], x, out, det.threshold, labels, {"ap": 1.0},
                  reliability_png(np.array([o["p_fake"] for o in out]), labels))
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) == 12 + 2 + 1 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "http" not in page and "What gave the fakes away" in page
    scores_shown = [float(v) for v in re.findall(r"<b>([0-9.]+) (?:real|fake)</b>", page)]
    assert scores_shown == sorted(scores_shown, reverse=True)


# -- no shortcut cues: the container format of the training sets must not move the AP --------------------------------
def _cue_sets(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Real: digits Lanczos-upscaled to 16 px; fake: the same made slightly too smooth (a weak, real signal)."""
    from PIL import ImageFilter
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    d = load_digits().images
    base = np.clip(d[rng.choice(len(d), 2 * n, replace=False)] * 16, 0, 255).astype(np.uint8)
    up = [Image.fromarray(b).resize((16, 16), Image.LANCZOS) for b in base]
    return (np.stack([np.asarray(u) for u in up[:n]]),
            np.stack([np.asarray(u.filter(ImageFilter.GaussianBlur(0.4))) for u in up[n:]]))


def _as_files(arrs: np.ndarray, fmt: str) -> np.ndarray:
    """Each image saved as PNG or JPEG (PIL's default quality 75) and read back through the decode path."""
    return np.stack([decode_file(_png(Image.fromarray(a), fmt), 16, 1, 0) for a in arrs])


@pytest.mark.parametrize("quality", [75, 0])
def test_the_file_format_is_no_cue(quality):
    """Detectors trained on format-matched sets (A), real JPEG + fake PNG (B) and the reverse (C) score a
    format-matched test set (both PNG, then both JPEG) within 0.02 AP of each other once inputs are normalised;
    without the normalisation (quality 0) B is fooled, which shows the test can fail."""
    from ganforge.detect import detector
    from ganforge.detect.calibrate import scores

    real, fake = _cue_sets(80, 0)
    test_real, test_fake = _cue_sets(60, 1)
    y = np.r_[np.zeros(60), np.ones(60)]
    ap = {}
    for name, rf, ff in (("A", "PNG", "PNG"), ("B", "JPEG", "PNG"), ("C", "PNG", "JPEG")):
        det = detector.train(_as_files(real, rf), _as_files(fake, ff), 16, 1, quality,
                             detector.TrainOptions(augment=0.0))
        for fmt in ("PNG", "JPEG"):
            x = np.stack([decode.normalize(a, quality) for a in _as_files(np.concatenate([test_real, test_fake]), fmt)])
            ap[name, fmt] = scores(det.calibration.prob(det.logits(x)), y, det.threshold)["ap"]
    if quality:
        assert ap["A", "PNG"] >= 0.9
        moved = {k: round(abs(v - ap["A", k[1]]), 3) for k, v in ap.items()}
        assert max(moved.values()) <= 0.02, moved
    else:
        assert ap["A", "PNG"] - ap["B", "PNG"] > 0.02, ap


def test_a_file_that_is_no_detector_is_named_as_such(tmp_path):
    from ganforge.detect.detector import load
    from ganforge.errors import CheckpointError

    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(CheckpointError) as e:
        load(notes)
    assert str(e.value) == (f"{notes} is not a detector: a detector is NAME.safetensors + NAME.json made by "
                            "`ganforge detect-train`")
    with pytest.raises(CheckpointError, match=r"^no detector at .*missing: make one with `ganforge detect-train`$"):
        load(tmp_path / "missing")


@pytest.mark.parametrize("size", [9, 27])
def test_odd_sizes_train_save_and_load(tmp_path, size):
    """No 2x/4x grid frequency exists at an odd size: the spectral features simply have no peak group."""
    from ganforge.detect import detector, features

    assert features._peaks(size) == []
    real, fake = tiny_sets(24, size=size)
    det = detector.train(real, fake, size, 1, 0, detector.TrainOptions(kind="both", augment=0.0, cnn_steps=5))
    det.save(tmp_path / "odd")
    back = detector.load(tmp_path / "odd")
    assert back.size == size and np.allclose(back.logits(real[:4]), det.logits(real[:4]))


def test_an_npr_only_cnn_ignores_flat_brightness_and_round_trips(tmp_path):
    """The residual x - up(down(x)) of x + c equals that of x: a residual-only CNN cannot use brightness."""
    from ganforge.detect import detector
    from ganforge.errors import DataError

    real, fake = tiny_sets(24)
    opts = detector.TrainOptions(kind="cnn", augment=0.0, cnn_steps=10, cnn_input="npr")
    det = detector.train(real, fake, 16, 1, 0, opts)
    det.save(tmp_path / "npr")
    back = detector.load(tmp_path / "npr")
    assert back.net.inputs == "npr" and back.net.stem[0].in_channels == 1
    x = np.clip(real[:6].astype(int) // 2 + 40, 0, 255).astype(np.uint8)  # mid-range: no clipping below
    assert np.allclose(back.logits(x), back.logits(x + 30), atol=1e-4)
    both = detector.train(real, fake, 16, 1, 0, detector.TrainOptions(kind="cnn", augment=0.0, cnn_steps=10))
    assert both.net.stem[0].in_channels == 2 and not np.allclose(both.logits(x), both.logits(x + 30), atol=1e-4)
    with pytest.raises(DataError, match="unknown CNN input 'rgb': choose one of image\\+npr, npr"):
        detector.train(real, fake, 16, 1, 0, detector.TrainOptions(kind="cnn", cnn_input="rgb"))


def test_a_cnn_ensemble_scores_the_mean_of_its_calibrated_members_and_round_trips(tmp_path):
    from ganforge.detect import cnn, detector
    from ganforge.errors import CheckpointError, DataError

    real, fake = tiny_sets(24)
    opts = detector.TrainOptions(kind="cnn", augment=0.0, cnn_steps=8, cnn_width=4, cnn_ensemble=3)
    det = detector.train(real, fake, 16, 1, 0, opts)
    assert det.members == 3 and isinstance(det.net, cnn.Ensemble)
    x = np.concatenate([real[:4], fake[:4]])
    one = [cnn.logits(m, x) for m in det.net.members]
    assert not np.allclose(one[0], one[1])  # members start from different seeds
    a, b = det.net.scale.numpy(), det.net.shift.numpy()
    want = np.mean([a[k] * one[k] + b[k] for k in range(3)], axis=0)
    assert np.allclose(det.logits(x), want, atol=1e-6)
    assert det.heatmaps_cnn(x).shape == (8, 16, 16) and det.heatmaps_cnn(x).max() <= 1
    det.save(tmp_path / "ens")
    meta = json.loads((tmp_path / "ens.json").read_text())
    assert meta["cnn"]["members"] == 3 and meta["cnn"]["width"] == 4
    back = detector.load(tmp_path / "ens")
    assert back.members == 3 and np.allclose(back.logits(x), det.logits(x), atol=1e-6)
    single = detector.train(real, fake, 16, 1, 0, detector.TrainOptions(kind="cnn", augment=0.0, cnn_steps=8))
    assert single.members == 1 and not isinstance(single.net, cnn.Ensemble)
    # a file whose member count does not match its weights is refused in one line
    meta["cnn"]["members"] = 2
    (tmp_path / "ens.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"does not match its ens.json .*retrain with `ganforge detect-train`$"):
        detector.load(tmp_path / "ens")
    with pytest.raises(DataError, match="a CNN ensemble has 1 to 16 members, got 0"):
        detector.train(real, fake, 16, 1, 0, detector.TrainOptions(kind="cnn", cnn_ensemble=0))
    with pytest.raises(ValueError, match="two or more CNNs of one width"):
        cnn.Ensemble([cnn.DetectorNet(1, 4), cnn.DetectorNet(1, 8)])
