"""What a new user reads: one-line warnings and argument errors, help texts with one true default each."""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from ganforge.cli import main
from ganforge.cli.app import build_parser

SRC = Path(__file__).resolve().parents[1] / "src"


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """Every (sub-)sub-command by its words, e.g. 'train' and 'weights list'."""
    found = {}

    def walk(parser, words):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if words and not subs:
            found[" ".join(words)] = parser
        for action in subs:
            for name, sub in action.choices.items():
                walk(sub, [*words, name])

    walk(build_parser(), [])
    return found


# ---- warnings ------------------------------------------------------------------------------------

def test_a_cli_warning_is_one_ganforge_line_on_stderr(tmp_path):
    # A real process: what the user sees is Python's warning display, which pytest replaces in-process.
    folder = tmp_path / "pics"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (10, 10), (60 * i, 0, 0)).save(folder / f"p{i}.png")
    (folder / "broken.png").write_bytes(b"not an image")
    cmd = [sys.executable, "-m", "ganforge", "train", str(folder), "--family", "dcgan", "--resolution", "8",
           "--steps", "1", "--z-dim", "8", "--g-width", "8", "--d-width", "8", "--batch-size", "4",
           "--grid-size", "4", "--quiet", "--device", "cpu", "--out", str(tmp_path / "run")]
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == (f"ganforge: warning: skipped 1 of 5 files that could not be read as images "
                           f"(first: {folder / 'broken.png'}: cannot identify image file)\n")


def test_library_users_can_still_filter_ganforge_warnings(tmp_path):
    import warnings

    from ganforge.config import DataConfig
    from ganforge.data import load_dataset
    from ganforge.errors import GanforgeWarning

    Image.new("RGB", (10, 10)).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"junk")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=GanforgeWarning)
        assert len(load_dataset(DataConfig(str(tmp_path), resolution=8, cache=False))) == 1
    assert rec == []


# ---- argument errors -----------------------------------------------------------------------------

def test_an_argument_error_is_two_lines_and_status_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--steps", "0"])
    assert e.value.code == 2
    assert capsys.readouterr().err == ("ganforge train: error: argument --steps: must be a positive whole number, "
                                       "got 0\nsee `ganforge train --help`\n")


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_every_subcommand_reports_argument_errors_in_two_lines(command, capsys):
    needed = []  # the command's required arguments, so the unknown option is the only error
    for action in subcommands()[command]._actions:
        if not action.option_strings and action.nargs in (None, "+"):
            needed.append(sorted(action.choices)[0] if action.choices else "x")
        elif action.required:
            needed += [action.option_strings[0], "x"]
    with pytest.raises(SystemExit) as e:
        main([*command.split(), *needed, "--no-such-option"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "usage:" not in err
    assert err.splitlines() == [f"ganforge {command}: error: unrecognized arguments: --no-such-option",
                                f"see `ganforge {command} --help`"]


# ---- help texts ----------------------------------------------------------------------------------

def _numbers_equal(text: str, value) -> bool:
    try:
        return float(text) == float(value)
    except (TypeError, ValueError):
        return False


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_help_shows_at_most_one_default_and_it_is_the_real_one(command):
    parser = subcommands()[command]
    assert f"usage: ganforge {command}" in parser.format_help()  # the whole page renders
    formatter = parser._get_formatter()  # and each option's help, as that page shows it
    problems = []
    for action in parser._actions:
        if action.help in (None, argparse.SUPPRESS):
            continue
        text = " ".join(formatter._expand_help(action).split())
        name = "/".join(action.option_strings) or action.dest
        if text.lower().count("default") > 1:
            problems.append(f"{name}: two defaults in {text!r}")
        shown = re.search(r"\(default: ([^)]*)\)$", text)
        if shown and action.default is not None and not isinstance(action.default, (list, tuple)) \
                and str(action.default) != shown.group(1):
            problems.append(f"{name}: shows default {shown.group(1)} but it is {action.default!r}")
        # A bare "(0.9)" or "(0.05; ...)" reads as the default: it must be the default (label advice instead,
        # e.g. "(StyleGAN2: 0.9)"). "(0: off)" says what a value means and is fine.
        for number in re.findall(r"\((-?\d+(?:\.\d+)?)(?=[);])", text):
            if not _numbers_equal(number, action.default):
                problems.append(f"{name}: '({number}' reads as the default but it is {action.default!r}: {text!r}")
    assert not problems, "\n".join(problems)


def test_list_defaults_are_shown_as_typed():
    helps = {a.dest: a for a in subcommands()["train"]._actions}
    formatter = subcommands()["train"]._get_formatter()
    assert formatter._expand_help(helps["g_betas"]).endswith("(default: 0.5 0.999)")
    gen = subcommands()["generate"]
    truncation = next(a for a in gen._actions if a.dest == "truncation")
    assert gen._get_formatter()._expand_help(truncation).endswith("(default: 1.0)")
    assert formatter._expand_help(helps["r1_gamma"]).endswith("(0: off) (default: 0.0)")  # a zero default is a default


# ---- what a training run says and what `info` shows -----------------------------------------------

TINY = ["--z-dim", "8", "--g-width", "8", "--d-width", "8", "--batch-size", "4", "--grid-size", "4", "--quiet",
        "--device", "cpu", "--resolution", "8"]


def test_a_run_on_class_folders_with_an_unconditional_family_notes_it_once(tmp_path):
    from ganforge.errors import GanforgeWarning

    for name in ("cat", "dog", "owl"):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (10, 10), (40 * i, 0, 0)).save(tmp_path / "pics" / name / f"{i}.png")
    with pytest.warns(GanforgeWarning) as rec:
        assert main(["train", str(tmp_path / "pics"), "--family", "dcgan", "--steps", "2",
                     "--out", str(tmp_path / "run"), *TINY]) == 0
    assert [str(w.message) for w in rec] == [
        "data has 3 classes (sub-folders) but family dcgan is unconditional: labels ignored; use cdcgan to use "
        "them, or --no-labels to silence this"]


def test_info_shows_the_ema_in_force(tmp_path):
    from ganforge.cli.info import describe_run, ema_text
    from ganforge.config import TrainConfig

    out = tmp_path / "run"
    assert main(["train", "digits", "--family", "dcgan", "--steps", "1", "--ema-kimg", "10", "--ema-rampup", "0.05",
                 "--out", str(out), *TINY]) == 0
    assert ", EMA half-life 10 kimg, ramp-up 0.05, DiffAugment" in describe_run(out)["text"]
    assert ema_text(TrainConfig(ema_kimg=10)) == "EMA half-life 10 kimg"
    assert ema_text(TrainConfig()) == "EMA decay 0.999"
    assert ema_text(TrainConfig(ema_decay=0.0)) == "EMA off"


def test_every_seed_option_takes_0_to_2_32_minus_1_and_says_why():
    # torch's CPU generator keeps a seed's low 32 bits: seed 2**32 would draw seed 0's images.
    import torch

    from ganforge.errors import GenerateError
    from ganforge.generate.sampling import latents

    G = torch.nn.Module()
    G.z_dim = 4
    assert torch.equal(latents(G, 2, 2**32 - 1), latents(G, 2, 2**32 - 1))
    for bad in (-1, 2**32, 2**64):
        with pytest.raises(GenerateError, match="seed must be a whole number from 0 to 4294967295"):
            latents(G, 1, bad)
    with_seed = {words: p for words, p in subcommands().items()
                 if any("--seed" in a.option_strings for a in p._actions)}
    assert {"generate", "train", "noise", "edit", "detect-train"} <= set(with_seed)
    for words, parser in with_seed.items():
        action = next(a for a in parser._actions if "--seed" in a.option_strings)
        for bad in ("-1", "4294967296", "18446744073709551616"):
            with pytest.raises(argparse.ArgumentTypeError, match="from 0 to 4294967295"):
                action.type(bad)
        assert action.type("4294967295") == 2**32 - 1, words
    rows = next(a for a in subcommands()["style-mix"]._actions if "--rows" in a.option_strings)
    with pytest.raises(argparse.ArgumentTypeError, match="seeds go from 0 to 4294967295"):
        rows.type("1,18446744073709551616")
