"""`ganforge bench`'s report: each precision once, and both inference precisions of networks that have them."""
import re

import pytest

import ganforge.devices
import ganforge.train.bench
from ganforge.cli.app import main
from ganforge.train.bench import format_report, run_bench

TINY = dict(family="stylegan2", data="digits", steps=1, batch_size=4, repeats=1, device="cpu", gen_images=4,
            overrides={"g_width": 8, "d_width": 8, "z_dim": 8})


def test_report_on_a_cpu_without_fast_bf16_names_fp32_once_and_times_both_inference_precisions(monkeypatch):
    monkeypatch.setattr(ganforge.devices, "cpu_has_fast_bf16", lambda: False)
    r = run_bench(**TINY, options={"num_fp16_res": 1, "conv_clamp": 256})
    assert r["precision"] == "fp32" and r["generate_auto"] == "fp32"
    assert list(r["generate_precisions"]) == ["fp32", "bf16"]
    assert r["generate_img_per_s"] == r["generate_precisions"]["fp32"]
    lines = format_report(r).splitlines()
    assert [ln.split()[0:2] for ln in lines[1:3]] == [["training", "ganforge"], ["plain", "loop"]]
    assert sum("ganforge (fp32)" in ln for ln in lines) == 1
    assert re.fullmatch(r"  generation \(fp32\) +[\d.]+ img/s   <- auto picks this here: this CPU has no fast "
                        r"bf16 \(no AMX\)", lines[3])
    assert re.fullmatch(r" +\(bf16\) +[\d.]+ img/s", lines[4]) and len(lines) == 5


def test_report_without_reduced_precision_blocks_has_one_generation_line(monkeypatch):
    monkeypatch.setattr(ganforge.devices, "cpu_has_fast_bf16", lambda: False)
    r = run_bench(**TINY)
    assert r["generate_precisions"] is None
    text = format_report(r)
    assert text.count("ganforge (fp32)") == 1
    assert re.search(r"\n  generation +[\d.]+ img/s$", text)


def test_report_where_bf16_is_fast_shows_both_training_precisions_and_auto_on_bf16():
    r = {"family": "stylegan2", "data": "digits", "resolution": 8, "batch_size": 4, "device": "cpu", "threads": 2,
         "torch": "2.x", "precision": "bf16", "train_img_per_s": 20.0, "speedup_vs_plain": 2.0,
         "train_fp32_img_per_s": 15.0, "fp32_speedup_vs_plain": 1.5, "plain_loop_img_per_s": 10.0,
         "generate_img_per_s": 40.0, "generate_precisions": {"fp32": 30.0, "bf16": 40.0}, "generate_auto": "bf16"}
    assert format_report(r).splitlines()[1:] == [
        "  training   ganforge (bf16)     20.0 img/s   ratio 2.00x",
        "             ganforge (fp32)     15.0 img/s   ratio 1.50x",
        "             plain loop (fp32)   10.0 img/s",
        "  generation (fp32)      30.0 img/s",
        "             (bf16)      40.0 img/s   <- auto picks this here: this CPU has fast bf16 (AMX)"]


def test_bench_command_passes_model_options_and_image_count(monkeypatch, capsys):
    got = {}
    monkeypatch.setattr(ganforge.train.bench, "run_bench", lambda **kw: got.update(kw) or {"kw": kw})
    monkeypatch.setattr(ganforge.train.bench, "format_report", lambda r: "REPORT")
    assert main(["bench", "--family", "stylegan2", "--model-options", '{"num_fp16_res": 2}', "--gen-images", "8"]) == 0
    assert got["options"] == {"num_fp16_res": 2} and got["gen_images"] == 8 and got["family"] == "stylegan2"
    assert capsys.readouterr().out == "REPORT\n"


def test_paired_trainer_benchmark_reports_one_ratio_per_cycle(monkeypatch, capsys):
    import json
    import runpy
    import sys
    from pathlib import Path

    import pytest

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "trainer_vs_plain.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--data", "digits", "--batch", "8", "--cycles", "2",
                                      "--steps", "1", "--json"])
    runpy.run_path(str(script), run_name="__main__")
    out = json.loads(capsys.readouterr().out)
    assert [r["cycle"] for r in out["cycles"]] == [0, 1] and out["precision"] == "fp32"
    for r in out["cycles"]:
        assert r["ratio"] == pytest.approx(r["trainer_img_per_s"] / r["plain_img_per_s"], rel=0.01)
    assert out["median_ratio"] > 0


def test_bench_refuses_a_batch_no_step_can_hold_before_loading_anything(monkeypatch, capsys):
    import ganforge.train.bench as bench

    monkeypatch.setattr(bench, "load_dataset", lambda *a, **k: pytest.fail("data loaded first"))
    assert main(["bench", "--batch-size", "100000", "--steps", "1", "--repeats", "1"]) == 2
    assert capsys.readouterr().err.strip() == ("ganforge bench: error: batch size 100000 is more than 4096 per "
                                               "process, beyond what a GAN step can hold in memory: give a smaller "
                                               "--batch-size (or growth batch)")
