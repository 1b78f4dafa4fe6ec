"""The training loop as a user meets it: stop signals at each stage, checks before the data is read, the
progress output without a terminal, the sample grid's size and a torn log line."""
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ganforge
import ganforge.data
from ganforge.cli import main
from ganforge.train.run import LOG_NAME, read_log

WORKER = Path(__file__).with_name("signal_worker.py")
TINY = ["--z-dim", "8", "--g-width", "8", "--d-width", "8", "--batch-size", "8", "--grid-size", "4",
        "--device", "cpu"]


# ------------------------------------------------------------------ stop signals, in real processes
class Worker:
    """tests/signal_worker.py in its own process; killed if it hangs, so that a broken stop fails the test."""

    def __init__(self, mode: str, at: int, *args: str):
        self.proc = subprocess.Popen([sys.executable, str(WORKER), mode, str(at), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.watchdog = threading.Timer(180, self.proc.kill)
        self.watchdog.start()
        self.out: list[str] = []

    def wait_for(self, line: str) -> None:
        for got in self.proc.stdout:
            self.out.append(got)
            if got.strip() == line:
                return
        raise AssertionError(f"the worker ended before printing {line!r}:\n{self.proc.stderr.read()}")

    def signal(self, sig=signal.SIGINT) -> None:
        self.proc.send_signal(sig)

    def finish(self) -> tuple[int, str, str]:
        stdout, stderr = self.proc.communicate(timeout=180)
        self.watchdog.cancel()
        return self.proc.returncode, "".join(self.out) + stdout, stderr


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


@pytest.mark.parametrize("mode", ["decode", "build"])
def test_sigint_while_preparing_is_one_line_and_leaves_no_run(tmp_path, mode):
    out = tmp_path / "run"
    w = Worker(mode, 0, "digits", "--family", "dcgan", "--out", str(out), *TINY)
    w.wait_for({"decode": "decoding", "build": "building"}[mode])
    w.signal()
    code, _, err = w.finish()
    assert code == 130 and "Traceback" not in err, err
    assert last_line(err) == "ganforge train: interrupted before training started; no run directory was made"
    assert not out.exists()


@pytest.mark.parametrize("mode", ["grid", "eval"])
def test_sigint_while_a_grid_renders_or_fid_runs_stops_at_once_and_resumes(tmp_path, mode):
    out = tmp_path / "run"
    every = ["--sample-every", "2"] if mode == "grid" else ["--eval-every", "2", "--eval-n", "32"]
    w = Worker(mode, 2, "digits", "--family", "dcgan", "--steps", "50", *every, "--out", str(out), *TINY)
    # The grid or FID after step 2, which (as on a large model) does not end by itself.
    w.wait_for({"grid": "rendering", "eval": "evaluating"}[mode])
    w.signal()
    code, stdout, err = w.finish()
    assert code == 130 and "Traceback" not in err, err
    assert "SIGINT: stopped at step 2; checkpoint saved." in stdout
    assert "SIGINT: stopping at the next safe point to save a checkpoint" in err
    assert ganforge.load(out).step == 2
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step-000000.png"]  # the dropped grid is absent
    assert main(["train", "--resume", str(out), "--steps", "4", "--quiet"]) == 0
    assert ganforge.load(out).step == 4


def test_sigterm_during_a_step_finishes_it_then_saves(tmp_path):
    out = tmp_path / "run"
    w = Worker("step-ends", 3, "digits", "--family", "dcgan", "--steps", "50", "--out", str(out), *TINY)
    w.wait_for("stepping")
    w.signal(signal.SIGTERM)
    w.wait_for("stop seen")
    code, stdout, err = w.finish()
    assert code == 143 and "Traceback" not in err, err
    assert "SIGTERM: stopped at step 4; checkpoint saved." in stdout
    assert ganforge.load(out).step == 4


def test_second_sigint_exits_at_once_keeping_the_last_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    w = Worker("step", 3, "digits", "--family", "dcgan", "--steps", "50", "--ckpt-every", "2", "--out", str(out),
               *TINY)
    w.wait_for("stepping")  # step 4, which never ends; the checkpoint of step 2 is on disk
    w.signal()
    w.wait_for("stop seen")
    w.signal()
    code, stdout, err = w.finish()
    assert code == 130 and "Traceback" not in err, err
    assert last_line(err) == (f"ganforge train: interrupted again: exiting without saving; the last checkpoint at "
                              f"{out / 'checkpoint.safetensors'} is intact")
    assert "checkpoint saved" not in stdout
    assert ganforge.load(out).step == 2
    assert main(["train", "--resume", str(out), "--steps", "4", "--quiet"]) == 0
    assert ganforge.load(out).step == 4


def test_second_sigint_before_the_first_save_marks_the_run_as_never_saved(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    w = Worker("step", 1, "digits", "--family", "dcgan", "--steps", "50", "--out", str(out), *TINY)
    w.wait_for("stepping")
    w.signal()
    w.wait_for("stop seen")
    w.signal()
    code, _, err = w.finish()
    assert code == 130 and "Traceback" not in err, err
    assert last_line(err) == (f"ganforge train: interrupted again: exiting without saving; {out} has no checkpoint "
                              "yet (it never saved one), so it cannot be resumed")
    assert not (out / "checkpoint.safetensors").exists()
    monkeypatch.setattr(ganforge.data, "load_dataset", lambda *a, **k: pytest.fail("the data was loaded"))
    capsys.readouterr()
    assert main(["train", "--resume", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"ganforge train: error: {out} never saved a checkpoint (it was stopped before its first one), so it "
        f"cannot be resumed: start it again, e.g. ganforge train --config {out}/config.json\n")


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
    (["--family", "dcgan", "--model-options", '{"nonsense": 3}'], "the dcgan family takes no model options, got "
                                                                  "nonsense: drop --model-options (families with "
                                                                  "options: cstylegan2, pix2pix, progan, srresnet"),
    (["--family", "mlp", "--model-options", '{"width": 3}'], "the mlp family takes no model options, got width"),
    (["--family", "layers", "--g-layers", '[{"type": "zzz"}]'], "generator layer 0: unknown type 'zzz'"),
    (["--family", "layers", "--g-layers", '[{"type": "fc", "out": 5}]'], "generator output is [B, 5]"),
    (["--family", "dcgan", "--resolution", "30"], "got 30"),
    (["--family", "dcgan", "--style-mixing", "0.9"], "style_mixing needs a generator with a mapping network"),
    (["--family", "cdcgan", "--no-labels"], "needs class labels, but they are turned off"),
    (["--family", "dcgan", "--g-lr", "-1"], "g_lr must be a number above 0 and at most 10"),
    (["--family", "dcgan", "--d-lr", "inf"], "d_lr must be a number above 0 and at most 10, got inf"),
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
                                                 ("g_opt", "lbfgs", "unknown g_opt 'lbfgs'"),
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


# ------------------------------------------------------------------ progress without a terminal
def test_progress_without_a_terminal_is_one_plain_line_per_log_step(tmp_path, capsys):
    assert main(["train", "digits", "--family", "dcgan", "--steps", "7", "--log-every", "3", "--sample-every", "100",
                 "--out", str(tmp_path / "run"), *TINY]) == 0
    err = capsys.readouterr().err  # captured: not a TTY
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["3/7", "6/7", "7/7"]  # steps // log_every, then the last
    assert all(" img/s  ETA " in line and "loss D " in line for line in lines)


# ------------------------------------------------------------------ sample grid size
def test_conditional_grid_holds_grid_size_images_one_class_per_column(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "digits", "--family", "cdcgan", "--steps", "2", "--sample-every", "2", "--out", str(out),
                 *TINY[:-4], "--grid-size", "24", "--device", "cpu", "--quiet"]) == 0
    for path in (out / "samples.png", out / "samples" / "step-000002.png"):
        canvas = np.asarray(Image.open(path))[::8, ::8]  # 8 px digits are shown 8 times larger
        tiles = [canvas[2 + y * 10: 10 + y * 10, 2 + x * 10: 10 + x * 10] for y in range(3) for x in range(10)]
        filled = [i for i, t in enumerate(tiles) if (t != 32).any()]  # 32: the empty background
        assert canvas.shape == (32, 102) and filled == list(range(24))


# ------------------------------------------------------------------ log.jsonl appends
def test_a_torn_last_log_line_is_skipped_and_the_next_record_starts_a_new_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "digits", "--family", "dcgan", "--steps", "3", "--log-every", "1", "--out", str(out),
                 *TINY, "--quiet"]) == 0
    with open(out / "log.jsonl", "a") as f:
        f.write('{"step": 4, "loss_d": 0.12')  # a process killed while appending
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["last_metrics"]["step"] == 3
    assert main(["train", "--resume", str(out), "--steps", "5", "--quiet"]) == 0
    lines = (out / "log.jsonl").read_text().splitlines()  # the resume drops the torn line
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4, 5]
    from ganforge.train.run import read_log

    assert [r["step"] for r in read_log(out)] == [1, 2, 3, 4, 5]


def test_a_stop_while_the_final_outputs_are_written_still_reports_a_finished_run(tmp_path, monkeypatch, capsys):
    """Every step is done and saved: a Ctrl-C during the final samples.png / GIF skips them, and the run is
    reported as trained (exit 0), not as stopped and to be resumed."""
    import os
    import signal
    import time

    from ganforge.cli import main
    from ganforge.train.run import Run

    def interrupted_finish(self, out):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)  # the handler stops this section at once; reaching the next line fails the test
        raise AssertionError("the stop signal did not end the final outputs")

    monkeypatch.setattr(Run, "_finish", interrupted_finish)
    out = tmp_path / "run"
    code = main(["train", "digits", "--family", "dcgan", "--steps", "2", "--batch-size", "8", "--g-width", "8",
                 "--d-width", "8", "--out", str(out), "--quiet"])
    stdout = capsys.readouterr().out
    assert code == 0, stdout
    assert "trained 2 steps (SIGINT skipped the final samples.png / progress.gif)" in stdout
    assert "--resume" not in stdout and (out / "checkpoint.safetensors").is_file()


def test_progress_gif_holds_every_grid_of_a_short_run(tmp_path, tiny_cfg, digits):
    from ganforge.train.run import Run
    from ganforge.train.trainer import Trainer

    tiny_cfg.train.sample_every = 1  # 5 grids: steps 0 to 4, fewer than the GIF's frame limit
    run = Run(Trainer(tiny_cfg, digits), tmp_path / "run", progress=False)
    run.train()
    run.finish()
    frames = sorted((tmp_path / "run" / "samples").glob("step-*.png"))
    with Image.open(tmp_path / "run" / "progress.gif") as gif:
        assert len(frames) == gif.n_frames == 5
        gif.seek(4)
        last = np.asarray(gif.convert("L"))
    assert np.array_equal(last, np.asarray(Image.open(frames[-1]).convert("L")))


def test_a_diverged_loss_is_logged_as_strict_json_null_with_one_warning(tmp_path, tiny_cfg, digits):
    import json
    import warnings

    from ganforge.errors import GanforgeWarning
    from ganforge.train.run import LOG_NAME, Run, read_log
    from ganforge.train.trainer import Trainer

    run = Run(Trainer(tiny_cfg, digits), tmp_path / "r", progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run._log({"step": 1, "loss_d": 0.5, "loss_g": 1.25})
        run._log({"step": 2, "loss_d": float("nan"), "loss_g": float("inf")})
        run._log({"step": 3, "loss_d": float("nan"), "loss_g": 1.0})
    said = [str(w.message) for w in caught if issubclass(w.category, GanforgeWarning)]
    assert said == ["step 2: loss_d, loss_g not finite: training has diverged (logged as null); stop it and lower "
                    "the learning rates, or resume from an earlier copy of the run"]

    def strict(word):
        raise ValueError(f"{word} is not JSON")

    lines = (tmp_path / "r" / LOG_NAME).read_text().splitlines()
    records = [json.loads(line, parse_constant=strict) for line in lines]
    assert records[1] == {"step": 2, "loss_d": None, "loss_g": None} and records[2]["loss_g"] == 1.0
    assert read_log(tmp_path / "r") == records


def test_resuming_with_fewer_steps_than_done_is_refused_and_a_finished_run_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "digits", "--family", "dcgan", "--steps", "3", "--out", str(out), *TINY, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--steps", "2", "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (f"ganforge train: error: --steps 2 is below the 3 steps {out} has "
                                               "already trained: give --steps above 3 to train further")
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert f"resuming {out} at step 3 of 3: already done; give --steps above 3 to train further" in \
        capsys.readouterr().out


def test_resume_takes_a_run_s_own_files_and_refuses_a_missing_checkpoint_before_loading(tmp_path, capsys,
                                                                                         monkeypatch):
    out = tmp_path / "run"
    assert main(["train", "digits", "--family", "dcgan", "--steps", "2", "--out", str(out), *TINY, "--quiet"]) == 0
    capsys.readouterr()
    for name in ("config.json", "checkpoint.safetensors"):
        assert main(["train", "--resume", str(out / name), "--quiet"]) == 0
        assert f"resuming {out} at step 2 of 2: already done" in capsys.readouterr().out
    import ganforge.data

    def no_data(*args, **kwargs):
        raise AssertionError("data loaded before the checkpoint was checked")

    monkeypatch.setattr(ganforge.data, "load_dataset", no_data)
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "settings.json").write_text((out / "config.json").read_text())
    assert main(["train", "--resume", str(copy / "settings.json"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (f"ganforge train: error: {copy / 'settings.json'} is a file: pass "
                                               "the run directory that holds its config.json and "
                                               "checkpoint.safetensors")


def test_resume_forgets_the_log_and_grids_of_steps_lost_after_the_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "digits", "--family", "dcgan", "--steps", "2", "--out", str(out), *TINY, "--quiet"]) == 0
    before = [r["step"] for r in read_log(out)]
    # what a process killed at step 4, after the checkpoint of step 2, leaves behind
    with open(out / LOG_NAME, "a") as f:
        f.write('{"step": 3, "loss_d": 1.0}\n{"step": 4, "loss_d": 1.0}\n{"step": 4, "lo')
    shutil.copy(out / "samples" / "step-000002.png", out / "samples" / "step-000004.png")
    from ganforge.errors import GanforgeWarning

    with pytest.warns(GanforgeWarning, match=r"was stopped after its last checkpoint \(step 2\): dropped 3 log "
                                             r"record\(s\) and 1 sample grid\(s\)"):
        assert main(["train", "--resume", str(out), "--steps", "3", "--quiet"]) == 0
    steps = [r["step"] for r in read_log(out)]
    assert steps[:len(before)] == before and steps[len(before):] == [3] * (len(steps) - len(before))
    assert steps == sorted(steps) and not (out / "samples" / "step-000004.png").exists()


def test_resume_refuses_class_folders_that_changed(tmp_path, capsys):
    data = tmp_path / "pets"
    rng = np.random.default_rng(0)
    for name in ("cat", "dog", "emu"):
        (data / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(data / name / f"{i}.png")
    out = tmp_path / "run"
    assert main(["train", str(data), "--family", "cdcgan", "--steps", "1", "--out", str(out), *TINY, "--quiet"]) == 0
    (data / "cat").rename(data / "zcat")  # sorts last now: label 0 would mean dog
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--steps", "2", "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (f"ganforge train: error: {out} was trained on 3 classes (cat, dog, "
                                               "emu) but the data now has 3 (dog, emu, zcat): restore the class "
                                               "folders as they were, or start a new run")


def test_resume_takes_a_moved_data_folder_and_names_the_flags_it_ignores(tmp_path, capsys):
    data = tmp_path / "pics"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(data / f"{i}.png")
    out = tmp_path / "run"
    assert main(["train", str(data), "--family", "dcgan", "--steps", "1", "--out", str(out), *TINY, "--quiet"]) == 0
    moved = data.rename(tmp_path / "moved")
    assert main(["train", "--resume", str(out), "--steps", "2", "--quiet"]) == 2
    assert f"data folder '{data}' not found" in capsys.readouterr().err
    from ganforge.errors import GanforgeWarning

    with pytest.warns(GanforgeWarning, match=r"so --batch-size, --g-lr are ignored \(only DATA, --steps and "):
        assert main(["train", str(moved), "--resume", str(out), "--steps", "2", "--batch-size", "3", "--g-lr", "0.1",
                     "--quiet"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["data"]["source"] == str(moved) and cfg["train"]["steps"] == 2 and cfg["train"]["g_lr"] != 0.1


def test_networks_too_big_for_the_machine_are_refused_before_the_data_is_read(tmp_path, monkeypatch, capsys):
    import ganforge.train.run as run_module

    monkeypatch.setattr(ganforge.data, "load_dataset", lambda *a, **k: pytest.fail("the data was loaded"))
    monkeypatch.setattr(run_module, "machine_memory", lambda: 2**30)  # a 1 GiB machine
    assert main(["train", "digits", "--family", "mlp", "--resolution", "256", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r"ganforge train: error: G and D have [\d,]+ million parameters: training them needs over "
                        r"[\d,]+ GiB, more than this machine's 1 GiB; lower --resolution or the network width", err)
    assert not (tmp_path / "r").exists()
