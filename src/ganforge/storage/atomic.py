"""The one way ganforge writes a file: readers see the old file or the whole new one, never a part.

The rule, for every file a run, a cache or a command writes: write to a temporary file in the target's own
folder (so the rename cannot cross file systems), flush and fsync it, rename it over the target, then fsync
the folder so the rename itself survives a power cut. A failure at any point leaves the old file as it was
and removes the temporary one.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """``with atomic_open(path) as f: f.write(...)``: the file appears at ``path`` only when the block ends
    without an exception. ``mode`` is ``"wb"`` or ``"w"`` (UTF-8 text)."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'wb' or 'w', got {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
        yield f


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` (same suffix, so writers that go by it pick the right format)
    and renames it over ``path``, after an fsync, when the block succeeds. For writers that want a file name
    rather than a file object, e.g. a video encoder; :func:`atomic_open` is built on it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    except OSError as e:  # named by the path asked for, not the temporary one
        raise _cannot_write(path, e) from e
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; runs and caches are meant to be shared
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        try:
            os.replace(tmp, path)
        except OSError as e:  # e.g. a folder of that name
            raise _cannot_write(path, e) from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _cannot_write(path: Path, e: OSError) -> Exception:
    from ganforge.errors import OutputPathError

    reason = "it is a folder" if path.is_dir() else (e.strerror or type(e).__name__).lower()
    return OutputPathError(f"cannot write {path}: {reason}; choose another path")


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable; a no-op where folders cannot be opened (e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_with(path: str | Path, write: Callable[[IO], None]) -> None:
    """Atomically write the file that ``write(f)`` produces on a binary file object (``np.savez``,
    ``PIL.Image.save(f, format=...)``, ...)."""
    with atomic_open(path, "wb") as f:
        write(f)
