"""The package's shape: folders read as the pipeline, lower layers never import higher ones, no import
cycles, no private names imported across modules, one error type caught by the CLI."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "ganforge"

# Lowest first. A module may import its own layer or any lower one; `ganforge` itself (the lazy facade)
# and `ganforge.__main__` sit on top with the CLI.
LAYERS = [
    {"ganforge.errors"},
    {"ganforge.storage", "ganforge.devices", "ganforge.config"},
    {"ganforge.data", "ganforge.models"},
    {"ganforge.generate"},
    {"ganforge.metrics"},
    {"ganforge.edit"},
    {"ganforge.train"},
    {"ganforge.playground", "ganforge.detect", "ganforge.translate"},
    {"ganforge.cli", "ganforge.__main__", "ganforge"},
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PKG.rglob("*.py")}


def layer_of(module: str) -> int:
    for depth in range(module.count(".") + 1, 0, -1):
        head = ".".join(module.split(".")[:depth])
        for i, group in enumerate(LAYERS):
            if head in group:
                return i
    raise AssertionError(f"{module} belongs to no layer: add its folder to LAYERS in {__file__}")


def imports_of(module: str) -> list[tuple[str, int, list[str]]]:
    """(imported ganforge module, line, names) for every import in ``module``, function-local ones included."""
    tree = ast.parse(MODULES[module].read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno, []) for a in node.names if a.name.split(".")[0] == "ganforge"]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}:{node.lineno} uses a relative import; use ganforge.… paths"
            if node.module.split(".")[0] != "ganforge":
                continue
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.append((sub, node.lineno, []) if sub in MODULES else (node.module, node.lineno, [a.name]))
    return found


def test_every_module_has_a_layer_and_imports_only_downward():
    bad = []
    for module in MODULES:
        mine = layer_of(module)
        for target, line, _ in imports_of(module):
            assert target in MODULES, f"{module}:{line} imports {target}, which does not exist"
            if layer_of(target) > mine:
                bad.append(f"{module}:{line} imports {target} (a higher layer)")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    graph = {m: {t for t, _, _ in imports_of(m) if t != m} for m in MODULES}
    # A package's __init__ importing its own submodules is how packages are built, not a cycle.
    for m in graph:
        graph[m] = {t for t in graph[m] if not (MODULES[m].name == "__init__.py" and t.startswith(m + "."))}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str):
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_no_private_name_is_imported_across_modules():
    bad = [f"{m}:{line} imports {target}.{name}" for m in MODULES for target, line, names in imports_of(m)
           for name in names if name.startswith("_") and not name.startswith("__")]
    assert not bad, "\n".join(bad)


def test_every_exception_class_is_a_ganforge_error():
    """One error type: every exception ganforge defines derives from GanforgeError, so the CLI's single
    `except GanforgeError` reports it as one line."""
    import importlib

    from ganforge.errors import GanforgeError

    strays = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name.endswith(("Error", "Pickle")):
                cls = getattr(importlib.import_module(module), node.name)
                if isinstance(cls, type) and issubclass(cls, BaseException) and not issubclass(cls, GanforgeError):
                    strays.append(f"{module}.{node.name}")
    assert not strays, strays


def test_cli_catches_one_error_type_and_shows_tracebacks_for_bugs(monkeypatch, capsys):
    from ganforge.cli import app as cli_main
    from ganforge.errors import GanforgeError

    def boom(a):
        raise GanforgeError("the problem, and what to do")

    parser = cli_main.build_parser
    monkeypatch.setattr(cli_main, "build_parser", lambda: _with_func(parser(), "datasets", boom))
    assert cli_main.main(["datasets"]) == 2
    assert capsys.readouterr().err.strip() == "ganforge datasets: error: the problem, and what to do"

    def bug(a):
        raise KeyError("a bug")

    monkeypatch.setattr(cli_main, "build_parser", lambda: _with_func(parser(), "datasets", bug))
    with pytest.raises(KeyError):
        cli_main.main(["datasets"])


def _with_func(parser, command, func):
    parser._subparsers._group_actions[0].choices[command].set_defaults(func=func)
    return parser


def test_importing_the_cli_does_not_import_torch():
    """The parser is built (and --help, errors, Ctrl-C answered) before torch's import starts."""
    code = "import sys, ganforge.cli; sys.exit(int('torch' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
