"""The README's Python blocks run as written, in order, in a folder where its commands have made the run
they name (``runs/cdcgan-mnist``, trained here for a few steps)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)


def test_the_readme_has_python_blocks_and_two_setup_commands_first():
    text = README.read_text()
    assert len(python_blocks(text)) >= 2
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert lines[0] == "# ganforge"
    first_block = text[text.index("```bash\n") + 8:]
    commands = first_block[:first_block.index("```")].strip().splitlines()
    assert [c.split("#")[0].strip() for c in commands] == ["make demo", "make test"]
    assert text.index("```bash") < text.index("## ")  # the commands come before the tour


def test_every_python_block_of_the_readme_runs(tmp_path, monkeypatch):
    from ganforge.cli import main

    monkeypatch.chdir(tmp_path)
    # The run the README's blocks load, made as its tour makes it (default family and data), but short.
    assert main(["train", "--out", "runs/cdcgan-mnist", "--steps", "2", "--sample-every", "2", "--quiet"]) == 0
    namespace: dict = {}
    for i, block in enumerate(python_blocks(README.read_text())):
        try:
            exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
        except Exception as e:  # name the block, so a failure says which one broke
            pytest.fail(f"README python block {i + 1} fails: {type(e).__name__}: {e}\n{block}")
    x = namespace["x"]
    assert x.shape == (16, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    images = namespace["images"]
    assert isinstance(images, torch.Tensor) and images.shape == (10, 1, 28, 28)
    assert namespace["stats"]["step"] == 1
