"""The ``ganforge`` command: builds the parser from the command modules and runs one command.

Expected failures are :class:`~ganforge.errors.GanforgeError` and are printed as one line; Ctrl-C is one
line too. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import sys

from ganforge.cli import detect, generate, info, playground, stylegan, train, translate, weights
from ganforge.cli import edit as edit_cmd
from ganforge.cli import eval as eval_cmd
from ganforge.cli.common import FMT, Parser, one_line_warnings, print_error


def build_parser() -> argparse.ArgumentParser:
    from ganforge import __version__

    p = Parser(prog="ganforge", description="Train, sample and measure GANs.", formatter_class=FMT)
    p.add_argument("--version", action="version", version=f"ganforge {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (train.add_parser, generate.add_generate, generate.add_interpolate, info.add_info,
                info.add_datasets, info.add_bench, eval_cmd.add_parser, stylegan.add_parsers, weights.add_parser,
                translate.add_parser, edit_cmd.add_parser, detect.add_parser, playground.add_parser):
        add(sub)
    return p


def explicit_options(argv: list[str] | None) -> set[str]:
    """Names of the options the user actually typed (so --resume/--config keep the rest)."""
    parser = build_parser()
    for action in parser._subparsers._group_actions[0].choices.values():
        for act in action._actions:
            act.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    from ganforge.errors import GanforgeError

    args = build_parser().parse_args(argv)
    args.explicit = explicit_options(argv)
    try:
        with one_line_warnings():
            code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, where it is handled, not at interpreter exit
        return code
    except GanforgeError as e:
        print_error(args.command, str(e))
        return 2
    except FileNotFoundError as e:  # a path the user named that is not there
        print_error(args.command, f"{e.filename or e}: no such file or folder")
        return 2
    except KeyboardInterrupt:
        print(f"\nganforge {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `ganforge ... | head`: the reader has what it wanted
        import os

        # Python would report the pipe again when it flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # what a shell reports for a command stopped by SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
