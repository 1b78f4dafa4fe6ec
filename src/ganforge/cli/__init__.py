"""The ``ganforge`` command line, a leaf over the library: one module per command group, options shared
through :mod:`.common`. ``main`` is the console-script entry point."""
from ganforge.cli.app import main

__all__ = ["main"]
