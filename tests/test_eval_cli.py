"""`ganforge eval` and `ganforge train --eval-every` end to end, on a tiny run of the 8x8 digits."""
import json

import pytest

from ganforge.cli import main

TINY = ["--family", "cdcgan", "--z-dim", "8", "--g-width", "8", "--d-width", "8", "--batch-size", "8", "--quiet",
        "--device", "cpu"]
FAST = ["--kid-subsets", "5", "--kid-subset-size", "32"]


@pytest.fixture
def run_dir(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "digits", "--steps", "2", "--out", str(out), *TINY]) == 0
    return out


def _json(capsys, argv):
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_run_json_has_every_metric(run_dir, capsys):
    r = _json(capsys, ["eval", str(run_dir), "--n", "48", "--json", *FAST])
    m = r["metrics"]
    assert r["n"] == 48 and r["n_real"] == 1797 and r["features"] == "digits" and r["real"] == "digits"
    for key in ("fid", "fid_floor", "kid", "kid_std", "precision", "recall", "density", "coverage", "is",
                "confident_rate", "class_shares", "d_real", "d_fake"):
        assert key in m, key
    assert m["fid"] > m["fid_floor"] > 0 and m["fid_floor_n"] == 48
    assert 0 <= m["precision"] <= 1 and 0 <= m["coverage"] <= 1 and 1 <= m["is"] <= 10
    assert 0 < m["d_real"] < 1 and 0 < m["d_fake"] < 1 and len(m["class_shares"]) == 10
    assert not r["real_stats_cached"]
    again = _json(capsys, ["eval", str(run_dir), "--n", "48", "--json", "--metrics", "fid,kid", *FAST])
    assert again["real_stats_cached"] and set(again["metrics"]) == {"fid", "fid_floor", "fid_floor_n", "kid",
                                                                    "kid_std"}
    assert again["metrics"]["fid"] == m["fid"]  # same seed, same samples, same real features


def test_eval_table_and_fake_folder_match_the_run(run_dir, tmp_path, capsys):
    assert main(["eval", str(run_dir), "--n", "40", "--metrics", "fid,pr"]) == 0
    table = capsys.readouterr().out
    assert "FID" in table and "floor" in table and "precision" in table and "real vs real" in table
    pngs = tmp_path / "pngs"
    assert main(["generate", str(run_dir), "--n", "40", "--out", str(pngs)]) == 0
    from_run = _json(capsys, ["eval", str(run_dir), "--n", "40", "--metrics", "fid", "--json"])
    from_pngs = _json(capsys, ["eval", "--fake", str(pngs), "--real", "digits", "--metrics", "fid", "--json"])
    # the run's samples are quantised as the PNGs are: the same images, the same FID
    assert from_pngs["n"] == 40 and from_pngs["metrics"]["fid"] == pytest.approx(from_run["metrics"]["fid"])


def test_eval_folder_against_itself_with_user_features(run_dir, tmp_path, monkeypatch, capsys):
    pngs = tmp_path / "pngs"
    assert main(["generate", str(run_dir), "--n", "30", "--out", str(pngs)]) == 0
    (tmp_path / "pixfeats.py").write_text("def pixels(x):\n    return x.flatten(1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    r = _json(capsys, ["eval", "--fake", str(pngs), "--real", str(pngs), "--features", "pixfeats:pixels",
                       "--metrics", "fid,pr,dc", "--json"])
    m = r["metrics"]
    assert r["features"] == "module:pixfeats:pixels" and r["n"] == r["n_real"] == 30
    assert m["fid"] == pytest.approx(0, abs=1e-6) and m["precision"] == m["recall"] == m["coverage"] == 1.0


def test_user_features_that_fail_are_one_line(run_dir, tmp_path, monkeypatch, capsys):
    pngs = tmp_path / "pngs"
    assert main(["generate", str(run_dir), "--n", "8", "--out", str(pngs)]) == 0
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "badfeats.py").write_text("def nothing():\n    return 0\n")  # takes no images
    capsys.readouterr()
    assert main(["eval", "--fake", str(pngs), "--real", str(pngs), "--features", "badfeats:nothing",
                 "--metrics", "fid"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ganforge eval: error: --features badfeats:nothing failed on a batch of 8 images "
                          "(TypeError: ") and err.endswith("and return [B, D]") and "\n" not in err


def test_train_eval_every_logs_fid_and_keeps_the_best(tmp_path):
    from ganforge.generate.runs import load_run
    from ganforge.train.run import _saved_fid

    out = tmp_path / "run"
    assert main(["train", "digits", "--steps", "3", "--out", str(out), "--eval-every", "2", "--eval-n", "32",
                 *TINY]) == 0
    logged = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    fids = [row for row in logged if "fid" in row]
    assert [row["step"] for row in fids] == [2, 3] and all(row["fid"] > 0 for row in fids)
    assert _saved_fid(out / "best.safetensors") == pytest.approx(min(row["fid"] for row in fids), rel=1e-5)
    cfg, G, D = load_run(out / "best.safetensors")
    assert cfg.train.eval_every == 2 and G.step in (2, 3)


def test_eval_ppl_and_ls_of_a_stylegan2_run(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("GANFORGE_VGG16", raising=False)
    out = tmp_path / "sg"
    unconditional = ["stylegan2" if a == "cdcgan" else a for a in TINY]
    assert main(["train", "digits", "--steps", "2", "--out", str(out), *unconditional]) == 0
    r = _json(capsys, ["eval", str(out), "--metrics", "ppl,ls", "--ppl-n", "64", "--ls-n", "200", "--json"])
    m = r["metrics"]
    assert r["n"] is None and r["features"] is None and "skipped" not in r  # no image set was scored
    assert m["ppl"] > 0 and m["ppl_space"] == "w" and m["ppl_sampling"] == "end" and m["ppl_n"] == 64
    assert m["ppl_distance"] == "digit-features" and m["ppl_kept"] <= 64
    assert m["ls"] >= 1 and m["ls_z"] >= 1 and m["ls_space"] == "w" and m["ls_attributes"] + m["ls_skipped"] == 10
    assert m["ls_n"] == 200 and m["ls_used"] == 100
    full = _json(capsys, ["eval", str(out), "--metrics", "ppl", "--ppl-n", "64", "--ppl-space", "z",
                          "--ppl-sampling", "full", "--json"])["metrics"]
    assert (full["ppl_space"], full["ppl_sampling"]) == ("z", "full") and full["ppl"] != m["ppl"]


def test_eval_ppl_of_a_conditional_dcgan_run(run_dir, capsys):
    r = _json(capsys, ["eval", str(run_dir), "--metrics", "ppl,ls", "--ppl-n", "32", "--json"])
    assert r["metrics"]["ppl_space"] == "z" and r["metrics"]["ppl"] >= 0 and "ls" not in r["metrics"]
    assert "class-conditional" in r["skipped"]["ls"]
    assert main(["eval", str(run_dir), "--metrics", "ppl,ls", "--ppl-n", "32"]) == 0
    table = capsys.readouterr().out
    assert "PPL" in table and "digit-features" in table and "LS" in table and "skipped" in table


@pytest.mark.parametrize("argv, message", [
    (["eval"], "pass either RUN"),
    (["eval", "--fake", "nowhere"], "--fake needs --real"),
    (["eval", "--fake", "nowhere", "--real", "digits"], "not found"),
    (["eval", "RUN_PLACEHOLDER", "--metrics", "fid,sharpness"], "unknown metric 'sharpness'"),
    (["eval", "RUN_PLACEHOLDER", "--features", "inception"], "--inception-weights"),
    (["eval", "--fake", "nowhere", "--metrics", "fid,ppl"], "metric 'ppl' measures a generator"),
    (["eval", "--fake", "nowhere", "--real", "digits", "--metrics", "ls"], "pass RUN instead of --fake"),
    (["eval", "RUN_PLACEHOLDER", "--metrics", "ppl", "--ppl-space", "w"], "--ppl-space z"),
    (["eval", "RUN_PLACEHOLDER", "--metrics", "ppl", "--vgg", "nowhere.safetensors"], "not found"),
    (["eval", "RUN_PLACEHOLDER", "--metrics", "swd", "--n", "1"], "metric 'swd' needs at least 2 images"),
])
def test_eval_errors_are_one_line(run_dir, tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.delenv("GANFORGE_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path))
    argv = [str(run_dir) if a == "RUN_PLACEHOLDER" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ganforge eval: error:") and message in err and "\n" not in err


def test_the_table_prints_kid_times_1000_and_says_so():
    from ganforge.metrics.report import format_table

    result = {"metrics": {"kid": 0.06474484, "kid_std": 0.03289602}, "fake": "run", "real": "digits",
              "features": "digits", "n": 48, "seconds": 1.0}
    line = next(s for s in format_table(result).splitlines() if s.startswith("KID"))
    assert line == "KID x10^3          64.745 ± 32.896   lower is better; mean ± std over subsets"
