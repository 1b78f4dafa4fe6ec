"""Files on disk: the one atomic writer, pickle-free checkpoints, and image files (PNGs, grids, GIFs, video)."""
from ganforge.storage.atomic import atomic_open, atomic_path, atomic_write_bytes, atomic_write_text, atomic_write_with

__all__ = ["atomic_open", "atomic_path", "atomic_write_bytes", "atomic_write_text", "atomic_write_with"]
