"""User data: finding the image files in a folder or .zip and decoding them into one array."""
from __future__ import annotations

import io
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from tqdm import tqdm

from ganforge.data import images as imgs
from ganforge.data.core import IMAGE_EXTENSIONS
from ganforge.errors import DataError, warn

PROGRESS_MIN_FILES = 200  # show a progress bar when decoding more files than this


@dataclass
class FileSource:
    """The candidate image files of one folder or zip, in a fixed (sorted) order."""

    path: Path  # absolute
    is_zip: bool
    rel: list[str] = field(default_factory=list)  # posix paths used for labels and messages
    keys: list[str] = field(default_factory=list)  # absolute file path, or zip member name
    fingerprint: list = field(default_factory=list)  # what the cache key hashes

    def __len__(self) -> int:
        return len(self.rel)


def _wanted(rel: str) -> bool:
    parts = PurePosixPath(rel).parts
    if any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return False
    return PurePosixPath(rel).suffix.lower() in IMAGE_EXTENSIONS


def scan_folder(root: Path) -> FileSource:
    src = FileSource(root, is_zip=False)
    found = []
    seen = {os.path.realpath(root)}
    # Linked folders are followed (a class folder is often a link to where the images are), each real
    # folder once, so a link to a folder above cannot loop.
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        kept = []
        for d in dirnames:
            real = os.path.realpath(os.path.join(dirpath, d))
            if not d.startswith(".") and d != "__MACOSX" and real not in seen:
                seen.add(real)
                kept.append(d)
        dirnames[:] = kept
        for fname in filenames:
            full = Path(dirpath, fname)
            rel = full.relative_to(root).as_posix()
            if _wanted(rel):
                try:
                    st = full.stat()
                except OSError:  # a dangling link or a file removed while scanning
                    continue
                found.append((rel, str(full), st.st_size, st.st_mtime_ns))
    for rel, key, size, mtime in sorted(found):
        src.rel.append(rel)
        src.keys.append(key)
        src.fingerprint.append([rel, size, mtime])
    return src


def unsafe_member(rel: str) -> bool:
    """Whether a zip member's path (backslashes already turned into slashes) points outside the archive: absolute,
    with a drive letter, or climbing with '..'. Such names are never used, not even as labels."""
    return rel.startswith("/") or bool(re.match(r"[A-Za-z]:", rel)) or ".." in rel.split("/")


def _warn_unsafe(path: Path, names: list[str]) -> None:
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    warn(f"skipped {len(names)} zip member{'s' if len(names) > 1 else ''} with unsafe paths in {path.name} "
         f"({shown}): only paths inside the archive are read", stacklevel=3)


def scan_zip(path: Path) -> FileSource:
    src = FileSource(path, is_zip=True)
    try:
        with zipfile.ZipFile(path) as zf:
            members = [(m.filename.replace("\\", "/"), m.filename) for m in zf.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as e:
        raise DataError(f"'{path}' is not a readable .zip archive ({e}): re-create it, or unpack it and "
                        "pass the folder") from e
    unsafe = [name for rel, name in members if unsafe_member(rel)
              and PurePosixPath(rel).suffix.lower() in IMAGE_EXTENSIONS]
    if unsafe:
        _warn_unsafe(path, unsafe)
    members = sorted((rel, name) for rel, name in members if not unsafe_member(rel) and _wanted(rel))
    # A zip made by zipping a folder holds everything under that folder's name: look inside it.
    tops = {PurePosixPath(rel).parts[0] for rel, _ in members}
    if len(tops) == 1 and all(len(PurePosixPath(rel).parts) > 1 for rel, _ in members):
        cut = len(tops.pop()) + 1
        members = [(rel[cut:], name) for rel, name in members]
    src.rel = [rel for rel, _ in members]
    src.keys = [name for _, name in members]
    st = path.stat()
    src.fingerprint = [st.st_size, st.st_mtime_ns]
    return src


def class_of(rel: str) -> str | None:
    """The first-level sub-folder holding ``rel``, or None for a file at the top level."""
    parts = PurePosixPath(rel).parts
    return parts[0] if len(parts) > 1 else None


def why_unlabelled(rels: list[str]) -> str:
    """Why a folder of images gives no class labels, for a message: files beside the class folders, or too
    few class folders ("" when the folder does have two classes or more)."""
    top = [r for r in rels if class_of(r) is None]
    if top and len(top) < len(rels):
        return (f"{len(top)} image(s) lie beside the class sub-folders, not in one (first: {top[0]}): move them "
                "into a class folder or out of the data folder")
    classes = {class_of(r) for r in rels} - {None}
    if len(classes) == 1:
        return f"it has one class sub-folder ({next(iter(classes))}); a conditional model needs two or more"
    return ""


@dataclass
class Decoded:
    images: np.ndarray  # uint8 [N, C, R, R]
    labels: np.ndarray | None  # int64 [N]
    class_names: list[str]
    skipped: int
    skip_message: str  # "" when nothing was skipped


def decode_all(src: FileSource, channels: int | None, fit: str, resolution: int, labels: bool,
               display: str) -> Decoded:
    """Decode every candidate file; unreadable ones are skipped and counted.

    Raises DataError when no file could be read.
    """
    arrays: list[np.ndarray] = []
    rels: list[str] = []
    first_error = ""
    skipped = 0
    zf = zipfile.ZipFile(src.path) if src.is_zip else None
    bar = tqdm(total=len(src), desc="decoding images", unit="img", leave=False,
               disable=None if len(src) > PROGRESS_MIN_FILES else True)
    try:
        for rel, key in zip(src.rel, src.keys):
            bar.update(1)
            try:
                fp = io.BytesIO(zf.read(key)) if zf is not None else key
                img, _ = imgs.decode(fp, channels)
            except Exception as e:  # PIL and zlib raise many types for damaged files
                skipped += 1
                if not first_error:
                    where = f"{display}:{key}" if zf is not None else str(Path(display, rel))
                    first_error = f"{where}: {imgs.describe_error(e)}"
                continue
            arrays.append(imgs.prepare(img, fit, resolution))
            rels.append(rel)
    finally:
        bar.close()
        if zf is not None:
            zf.close()

    if not arrays:
        if skipped:
            raise DataError(f"no readable images found in '{display}': all {skipped} image files failed to "
                            f"decode (first: {first_error})")
        exts = ", ".join(IMAGE_EXTENSIONS)
        raise DataError(f"no images found in '{display}' (looked for {exts}, in sub-folders too)")

    if channels is None and any(a.shape[0] == 3 for a in arrays):
        arrays = [np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a for a in arrays]
    stacked = np.stack(arrays)

    label_arr, class_names = None, []
    classes = [class_of(r) for r in rels]
    if labels and None not in classes and len(set(classes)) >= 2:
        class_names = sorted(set(classes))
        index = {c: i for i, c in enumerate(class_names)}
        label_arr = np.array([index[c] for c in classes], dtype=np.int64)

    message = ""
    if skipped:
        message = (f"skipped {skipped} of {len(src)} files that could not be read as images "
                   f"(first: {first_error})")
    return Decoded(stacked, label_arr, class_names, skipped, message)
