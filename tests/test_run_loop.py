"""The training loop as a user meets it: start-up."""
import subprocess
import sys
from pathlib import Path

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
