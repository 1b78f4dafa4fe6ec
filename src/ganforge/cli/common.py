"""What the command modules share: the parser and help formatter, argument types and common options."""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import warnings
from pathlib import Path


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows '(default: X)' once: not for options without a default (None, or a flag's False) or whose help
    already says it. A list default is shown as it is typed: ``0.5 0.999`` for two values, ``1,0.7`` for a list."""

    def _get_help_string(self, action):
        text = action.help or ""
        # identity, not ==: a default of 0 or 0.0 is a real value and is shown ("0.0 in (False,)" would hide it)
        no_default = action.default is None or action.default is False or action.default is argparse.SUPPRESS
        shown = action.option_strings or action.nargs in ("?", "*")  # as argparse: no default for a required positional
        if no_default or not shown or "default" in text or "(None:" in text:
            return text
        value = action.default
        if isinstance(value, (list, tuple)):
            value = (" " if action.nargs not in (None, "?") else ",").join(map(str, value))
        return f"{text} (default: {str(value).replace('%', '%%')})"


FMT = HelpFormatter


class Parser(argparse.ArgumentParser):
    """An argument error is one line and a pointer to --help, not the whole usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\nsee `{self.prog} --help`\n")

    def parse_args(self, args=None, namespace=None):
        # argparse reports a sub-command's unknown options from the top parser ("ganforge: error: ..."); the
        # sub-command's own parser says it, so the line names the command and its --help.
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self._deepest(parsed).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def _deepest(self, parsed) -> argparse.ArgumentParser:
        """The innermost sub-command parser that ``parsed`` went through (``ganforge weights list``)."""
        for a in self._actions:
            if isinstance(a, argparse._SubParsersAction) and getattr(parsed, a.dest, None) in a.choices:
                sub = a.choices[getattr(parsed, a.dest)]
                return sub._deepest(parsed) if isinstance(sub, Parser) else sub
        return self


def positive(value: str) -> int:
    n = _int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {value}")
    return n


def non_negative(value: str) -> int:
    n = _int(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or a positive whole number, got {value}")
    return n


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {value!r}") from None


def _json_arg(text: str, kind: type, not_json: str, wrong_kind: str):
    """``text`` parsed as JSON of type ``kind``; the two messages say what was expected."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"{not_json} ({e.msg})") from e
    if not isinstance(value, kind):
        raise argparse.ArgumentTypeError(wrong_kind)
    return value


def layers_arg(value: str) -> list:
    """A JSON list of layers, inline or in a file."""
    text = Path(value).read_text() if Path(value).is_file() else value
    return _json_arg(text, list, "not a JSON layer list or a file holding one",
                     "a layer list must be a JSON array of objects")


def json_object(value: str) -> dict:
    return _json_arg(value, dict, "not a JSON object", "must be a JSON object of names and values, "
                     "'{\"name\": value, ...}' (see the option's help for its names)")


def psi_list(value: str) -> list[float]:
    try:
        psis = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number or a comma list of numbers, got {value!r}") from None
    if not psis:
        raise argparse.ArgumentTypeError("give at least one psi, e.g. 0.7 or 1,0.7,0.5")
    return psis


def seed(value: str) -> int:
    """One seed, 0 to MAX_SEED (see ganforge.generate.sampling)."""
    from ganforge.generate.sampling import MAX_SEED

    try:
        v = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to {MAX_SEED}, got '{value}'") from None
    if not 0 <= v <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to {MAX_SEED} (larger seeds would repeat "
                                         f"smaller ones), got {value[:30]}")
    return v


def seeds(value: str) -> list[int]:
    """Comma list of seeds and seed ranges: ``1,2,3`` or ``0-4,10``."""
    try:
        seeds = []
        for part in value.split(","):
            lo, sep, hi = part.strip().partition("-")
            seeds.extend(range(int(lo), int(hi if sep else lo) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds like 1,2,3 or 0-4, got '{value}'") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"no seeds in '{value}'")
    from ganforge.generate.sampling import MAX_SEED

    if max(seeds) > MAX_SEED:
        raise argparse.ArgumentTypeError(f"seeds go from 0 to {MAX_SEED} (larger ones would repeat smaller ones), "
                                         f"got {max(seeds)}")
    return seeds


def add_device(p, default: str = "cpu") -> None:
    p.add_argument("--device", default=default, help="cpu, cuda, mps or auto")


def add_precision(p) -> None:
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="reduced-precision blocks of a network (StyleGAN2's num_fp16_res): auto runs them in "
                        "reduced precision on CUDA and on CPUs with fast bf16 (AMX), else in fp32")


def print_error(command: str, message: str) -> None:
    print(f"ganforge {command}: error: {message}", file=sys.stderr)


@contextlib.contextmanager
def one_line_warnings():
    """While the command runs, print ganforge's own warnings as ``ganforge: warning: MESSAGE`` (no source path or
    code line); other packages' warnings keep Python's format. Filters still apply: this changes only the text."""
    from ganforge.errors import GanforgeWarning

    original = warnings.formatwarning

    def formatwarning(message, category, filename, lineno, line=None):
        if issubclass(category, GanforgeWarning):
            return f"ganforge: warning: {message}\n"
        return original(message, category, filename, lineno, line)

    warnings.formatwarning = formatwarning
    try:
        yield
    finally:
        warnings.formatwarning = original
