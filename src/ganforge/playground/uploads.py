"""Checked uploads for the playground: a .zip or image files -> an ImageDataset, a CSV of x,y -> 2-D points.

``POST /api/uploads`` (multipart: one or more ``file`` parts, form field ``kind`` = ``images`` | ``points``;
for images optionally ``resolution``, ``channels`` and ``fit`` as ``ganforge train`` takes them). Every bad
input is a one-line ``{"error": ...}`` with 400, or 413 when the upload is over ``max_upload_bytes``; nothing
is written to disk: the body is parsed while it streams in (and refused as soon as it passes the limit), zip
members are read in memory with their real decompressed size counted.

Images are decoded the way ``ganforge train`` reads a folder (``ganforge.data.files.decode_all``): the same
conversions (CMYK, 16-bit, palette, alpha onto black), the same skip-and-count of unreadable files, labels
from first-level sub-folder names. Before any pixel is decoded each image's header is read and images over
``max_pixels`` or ``MAX_SIDE`` are skipped; PIL's own decompression-bomb limit is set to ``max_pixels``.

Points are normalised for the 2-D mode: centred on the middle of their bounding box and scaled by one factor
(the larger half-extent), so the cloud keeps its shape and fills [-1, 1] along its longer axis.
"""
from __future__ import annotations

import io
import math
import re
import stat
import threading
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import torch
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from PIL import Image

from ganforge.data.core import DEFAULT_FOLDER_RESOLUTION, FIT_MODES, IMAGE_EXTENSIONS, MIN_RESOLUTION, ImageDataset
from ganforge.data.files import Decoded, FileSource, decode_all, unsafe_member
from ganforge.errors import DataError
from ganforge.playground.security import Limits, require_token

MAX_SIDE = 16384  # longest image side read; a 1 x 16M strip passes max_pixels but is no training image
MAX_RESOLUTION = 128  # the resolution an upload is decoded to: max_images of it must fit in memory
UNZIP_FACTOR = 4  # a zip may unpack to this many times max_upload_bytes (images barely compress)
MAX_RATIO = 200  # larger members compressed beyond this ratio are refused as zip bombs
RATIO_MIN_BYTES = 1 << 20  # small files (icons, flat test images) may compress far better: not checked
MAX_PARTS_SLACK = 16  # form fields besides the files
MAX_FIELD_BYTES = 1024  # a form field's value (kind, resolution, ...)
MAX_UPLOADS = 32  # uploads held at once; the oldest is dropped first
READ_CHUNK = 1 << 20

_PIL_LOCK = threading.Lock()
_ID_LOCK = threading.Lock()


class UploadRefused(DataError):
    """An upload that is refused as a whole; ``status`` is the HTTP status to answer (400 or 413)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB" if n >= 1024 * 1024 else f"{n} bytes"


def too_large(limit: int) -> UploadRefused:
    return UploadRefused(f"the upload is larger than the {_mb(limit)} limit: send fewer or smaller files", 413)


# ----------------------------------------------------------------- multipart, parsed while it streams
@dataclass
class Part:
    name: str
    filename: str | None
    data: io.BytesIO = field(default_factory=io.BytesIO)


class MultipartReader:
    """Feeds body chunks to python-multipart and keeps the parts in memory, within ``max_bytes`` in all."""

    def __init__(self, content_type: str, max_bytes: int, max_parts: int):
        from python_multipart.multipart import MultipartParser, parse_options_header

        self._options = parse_options_header
        ctype, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if ctype != b"multipart/form-data" or not boundary:
            raise UploadRefused("send the upload as multipart/form-data with the files in field 'file' "
                                "and the kind (images or points) in field 'kind'")
        self.max_bytes, self.max_parts, self.received = max_bytes, max_parts, 0
        self.parts: list[Part] = []
        self._header_name = self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        callbacks = {"on_part_begin": self._begin, "on_part_data": self._data, "on_header_field": self._hfield,
                     "on_header_value": self._hvalue, "on_header_end": self._hend,
                     "on_headers_finished": self._hdone}
        self._parser = MultipartParser(boundary, callbacks)

    def write(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.max_bytes:
            raise too_large(self.max_bytes)
        try:
            self._parser.write(chunk)
        except UploadRefused:
            raise
        except Exception as e:  # python-multipart raises several types for malformed bodies
            raise UploadRefused(f"the upload is not valid multipart/form-data ({e}): send it as a browser "
                                "form does") from None

    def finish(self) -> None:
        try:
            self._parser.finalize()
        except Exception as e:
            raise UploadRefused(f"the upload ended early ({e}): send it again") from None

    def _begin(self) -> None:
        self._headers = {}

    def _hfield(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _hvalue(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _hend(self) -> None:
        self._headers[self._header_name.strip().lower()] = self._header_value.strip()
        self._header_name = self._header_value = b""

    def _hdone(self) -> None:
        if len(self.parts) >= self.max_parts:
            raise UploadRefused(f"the upload has more than {self.max_parts} parts: send the images as one .zip")
        _, opts = self._options(self._headers.get(b"content-disposition", b""))
        name = opts.get(b"name", b"").decode("utf-8", "replace")
        filename = opts.get(b"filename")
        self.parts.append(Part(name, None if filename is None else filename.decode("utf-8", "replace")))

    def _data(self, data: bytes, start: int, end: int) -> None:
        part = self.parts[-1]
        if part.filename is None and part.data.tell() + end - start > MAX_FIELD_BYTES:
            raise UploadRefused(f"form field '{part.name}' is longer than {MAX_FIELD_BYTES} bytes: "
                                "send files in field 'file'")
        part.data.write(data[start:end])

    def field(self, name: str) -> str | None:
        for p in self.parts:
            if p.name == name and p.filename is None:
                return p.data.getvalue().decode("utf-8", "replace").strip()
        return None

    def files(self) -> list[tuple[str, bytes]]:
        return [(p.filename or "upload", p.data.getvalue()) for p in self.parts if p.name == "file"]


# ----------------------------------------------------------------- images
def _ignored(rel: str) -> bool:
    """Hidden files and macOS resource forks: not counted as skipped, as ``ganforge train`` skips them."""
    return any(p.startswith(".") or p == "__MACOSX" for p in PurePosixPath(rel).parts)


def _is_image_name(rel: str) -> bool:
    return PurePosixPath(rel).suffix.lower() in IMAGE_EXTENSIONS


def _show(name: str, width: int = 80) -> str:
    """A file name as a message shows it: control characters escaped (messages stay one line), long ones cut."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)
    return text if len(text) <= width else text[:width - 3] + "..."


def _check_name(rel: str, zip_name: str | None = None) -> None:
    if unsafe_member(rel) or not rel:
        where = f"zip member '{_show(rel)}' of '{zip_name}'" if zip_name else f"file '{_show(rel)}'"
        raise UploadRefused(f"{where} points outside the upload (an absolute or '..' path): "
                            "re-create it with relative paths only")


def zip_entries(data: bytes, zip_name: str, limits: Limits, budget: list[int],
                reasons: dict[str, int]) -> list[tuple[str, bytes]]:
    """The image members of a zip held in ``data`` as (path, bytes), read in memory.

    ``budget`` is a one-item list: the decompressed bytes still allowed for the whole upload (shared by
    every zip in it). Refuses unsafe names, symbolic links, too many members, and zip bombs (declared total,
    per-member compression ratio, and the bytes that really come out while reading).
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except Exception as e:  # zipfile raises many types for damaged archives
        reason = " ".join(str(e).split())[:120] or type(e).__name__
        raise UploadRefused(f"'{zip_name}' is not a readable .zip archive ({reason}): re-create it") from None
    max_members = 2 * limits.max_images  # folders and stray files count as members too
    if len(infos) > max_members:
        raise UploadRefused(f"'{zip_name}' has {len(infos)} members, more than the {max_members} allowed: "
                            f"send at most {limits.max_images} images")
    wanted = []
    for info in infos:
        rel = info.filename.replace("\\", "/")
        _check_name(rel, zip_name)
        shown = _show(rel)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UploadRefused(f"zip member '{shown}' of '{zip_name}' is a symbolic link: zip the files "
                                "themselves (without zip -y)")
        if info.is_dir() or _ignored(rel):
            continue
        if not _is_image_name(rel):
            reasons["not an image file"] = reasons.get("not an image file", 0) + 1
            continue
        if info.flag_bits & 0x1:
            raise UploadRefused(f"zip member '{shown}' of '{zip_name}' is encrypted: zip the images without a "
                                "password")
        if info.file_size > RATIO_MIN_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise UploadRefused(f"zip member '{shown}' of '{zip_name}' unpacks to {_mb(info.file_size)}, over "
                                f"{MAX_RATIO} times its packed size (a zip bomb?): send the images themselves")
        wanted.append((rel, shown, info))
    declared = sum(info.file_size for _, _, info in wanted)
    if declared > budget[0]:
        raise UploadRefused(f"'{zip_name}' unpacks to {_mb(declared)}, over the {_mb(budget[0])} left of the "
                            f"limit: send fewer images")
    out = []
    for rel, shown, info in wanted:
        buf = io.BytesIO()
        try:
            with zf.open(info) as fp:
                while chunk := fp.read(READ_CHUNK):
                    budget[0] -= len(chunk)
                    if budget[0] < 0 or buf.tell() + len(chunk) > info.file_size:
                        raise UploadRefused(f"zip member '{shown}' of '{zip_name}' unpacks to more than it declares "
                                            "(a zip bomb?): re-create the zip")
                    buf.write(chunk)
        except UploadRefused:
            raise
        except Exception:  # bad CRC, unsupported compression, damaged data: skipped like an unreadable image
            reasons["unreadable"] = reasons.get("unreadable", 0) + 1
            continue
        out.append((rel, buf.getvalue()))
    return out


def _strip_common_top(entries: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """A zipped (or uploaded) folder holds everything under its own name: look inside it, as scan_zip does."""
    tops = {PurePosixPath(rel).parts[0] for rel, _ in entries}
    if len(tops) == 1 and all(len(PurePosixPath(rel).parts) > 1 for rel, _ in entries):
        cut = len(tops.pop()) + 1
        return [(rel[cut:], data) for rel, data in entries]
    return entries


def _header_problem(data: bytes, max_pixels: int) -> str | None:
    """Why an image is skipped before decoding (None: decode it). Only the header is read here."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    except Image.DecompressionBombError:
        return "too many pixels"
    except Exception:  # PIL raises many types for files that are no images
        return "unreadable"
    if w * h > max_pixels:
        return "too many pixels"
    if max(w, h) > MAX_SIDE:
        return "too large dimensions"
    return None


def _reasons_text(reasons: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items()))


def _decode_checked(entries, limits: Limits, resolution: int, channels: int | None, fit: str, labels: bool,
                    name: str, reasons: dict[str, int]) -> Decoded:
    """Skip images whose header is over the limits, then decode the rest with ganforge train's decode_all."""
    kept = []
    for rel, data in sorted(entries, key=lambda e: e[0]):
        problem = _header_problem(data, limits.max_pixels)
        if problem:
            reasons[problem] = reasons.get(problem, 0) + 1
        else:
            kept.append((rel, data))
    if not kept:
        found = f" ({_reasons_text(reasons)})" if reasons else ""
        exts = ", ".join(IMAGE_EXTENSIONS)
        raise UploadRefused(f"no usable images in the upload{found}: send {exts} files or a .zip of them")
    # decode_all opens each key with PIL, which reads a file object as well as a path
    src = FileSource(Path(name), is_zip=False, rel=[r for r, _ in kept], keys=[io.BytesIO(d) for _, d in kept])
    try:
        return decode_all(src, channels, fit, resolution, labels, name)
    except DataError as e:  # every image failed to decode; file names in it may hold line breaks
        raise UploadRefused(" ".join(str(e).split())) from None


def load_images(files: list[tuple[str, bytes]], limits: Limits, resolution: int = DEFAULT_FOLDER_RESOLUTION,
                channels: int | None = None, fit: str = "center-crop", labels: bool = True,
                name: str = "upload") -> tuple[ImageDataset, dict]:
    """Uploaded files (a .zip and/or image files, as (filename, bytes)) -> (ImageDataset, stats).

    Raises UploadRefused (a DataError) with a one-line message when the upload cannot be used.
    """
    if not files:
        raise UploadRefused("no files in the upload: send a .zip of images or image files in field 'file'")
    reasons: dict[str, int] = {}
    budget = [UNZIP_FACTOR * limits.max_upload_bytes]
    entries: list[tuple[str, bytes]] = []
    for filename, data in files:
        rel = filename.replace("\\", "/")
        if rel.lower().endswith(".zip") or data[:4] == b"PK\x03\x04":
            entries += zip_entries(data, _show(PurePosixPath(rel).name), limits, budget, reasons)
            continue
        _check_name(rel)
        if _ignored(rel):
            continue
        if not _is_image_name(rel):
            reasons["not an image file"] = reasons.get("not an image file", 0) + 1
            continue
        entries.append((rel, data))
    if len(entries) > limits.max_images:
        raise UploadRefused(f"the upload holds {len(entries)} images, more than the {limits.max_images} allowed: "
                            "send fewer")
    if entries:
        entries = _strip_common_top(entries)
    with _PIL_LOCK:  # PIL's limit is process-wide: lowered only while an upload is read
        before = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = limits.max_pixels
        try:
            with warnings.catch_warnings():
                # PIL warns between its limit and twice that; those images are skipped here anyway
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                decoded = _decode_checked(entries, limits, resolution, channels, fit, labels, name, reasons)
        finally:
            Image.MAX_IMAGE_PIXELS = before
    if decoded.skipped:
        reasons["unreadable"] = reasons.get("unreadable", 0) + decoded.skipped
    label_t = torch.from_numpy(decoded.labels) if decoded.labels is not None else None
    data = ImageDataset(torch.from_numpy(decoded.images), label_t, list(decoded.class_names), name,
                        sum(reasons.values()))
    stats = {"examples": len(data), "shape": list(data.images.shape[1:]), "classes": list(data.class_names),
             "skipped": sum(reasons.values()), "skipped_reasons": dict(sorted(reasons.items()))}
    return data, stats


# ----------------------------------------------------------------- points
_HEADER_WORD = re.compile(r"^[A-Za-z_][\w .-]*$")


def parse_points(data: bytes, max_points: int) -> tuple[torch.Tensor, dict]:
    """A CSV of x,y (comma or whitespace separated, an optional header line, # comments) -> normalised
    float32 points ``[N, 2]`` and stats. See the module notes for the normalisation."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UploadRefused("the points file is not UTF-8 text: send a CSV of x,y numbers, one point a line") from None
    rows: list[tuple[float, float]] = []
    seen_data = False
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        fields = [f.strip() for f in s.split(",")] if "," in s else s.split()
        shown = s if len(s) <= 40 else s[:37] + "..."
        if not seen_data and len(fields) == 2 and all(_HEADER_WORD.match(f) for f in fields) \
                and not any(_number(f) is not None for f in fields):
            seen_data = True  # a header: only as the first line with content
            continue
        seen_data = True
        if len(fields) != 2:
            raise UploadRefused(f"line {lineno} of the points file ('{shown}') has {len(fields)} values: "
                                "write two numbers x,y per line")
        xy = [_number(f) for f in fields]
        if None in xy:
            raise UploadRefused(f"line {lineno} of the points file ('{shown}') is not two numbers: "
                                "write x,y with plain numbers")
        if not all(math.isfinite(v) for v in xy):
            raise UploadRefused(f"line {lineno} of the points file ('{shown}') is not finite: "
                                "use numbers, not inf or nan")
        rows.append((xy[0], xy[1]))
        if len(rows) > max_points:
            raise UploadRefused(f"the points file has more than {max_points} points: send fewer")
    if len(rows) < 2:
        raise UploadRefused(f"the points file has {len(rows)} point{'s' if len(rows) != 1 else ''}: "
                            "send at least 2 lines of x,y")
    pts = torch.tensor(rows, dtype=torch.float64)
    lo, hi = pts.min(0).values, pts.max(0).values
    center = (lo + hi) / 2
    half = float((hi - lo).max()) / 2
    if not math.isfinite(half) or not torch.isfinite(center).all():
        raise UploadRefused("the points spread over a range too large to compute with (beyond 1e308): "
                            "rescale them to ordinary sizes")
    if half == 0:
        raise UploadRefused("all points are the same: send points that spread out")
    out = ((pts - center) / half).to(torch.float32)
    return out, {"examples": len(rows), "center": center.tolist(), "scale": half}


def _number(text: str) -> float | None:
    try:
        return float(text) if "_" not in text else None  # float() takes 1_000; a CSV should not
    except ValueError:
        return None


# ----------------------------------------------------------------- the router
def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _int_field(value: str | None, name: str, default: int | None, lo: int, hi: int) -> int | None:
    if value in (None, "", "auto"):
        return default
    if not re.fullmatch(r"\d{1,6}", value) or not lo <= int(value) <= hi:
        raise UploadRefused(f"form field '{name}' must be a whole number from {lo} to {hi}, got '{value[:20]}'")
    return int(value)


def store(uploads: dict, item) -> str:
    """Put ``item`` in ``uploads`` under a new id ``u<n>``, dropping the oldest beyond MAX_UPLOADS."""
    with _ID_LOCK:
        numbers = [int(k[1:]) for k in uploads if re.fullmatch(r"u\d+", str(k))]
        uid = f"u{max(numbers, default=0) + 1}"
        uploads[uid] = item
        while len(uploads) > MAX_UPLOADS:
            uploads.pop(next(iter(uploads)))
    return uid


def make_router() -> APIRouter:
    router = APIRouter(dependencies=[Depends(require_token)])

    @router.post("/api/uploads", status_code=201)
    async def upload(request: Request):
        limits: Limits = request.app.state.limits
        try:
            length = request.headers.get("content-length")
            if length and length.isdigit() and int(length) > limits.max_upload_bytes:
                raise too_large(limits.max_upload_bytes)  # refused before reading a byte
            reader = MultipartReader(request.headers.get("content-type", ""), limits.max_upload_bytes,
                                     limits.max_images + MAX_PARTS_SLACK)
            async for chunk in request.stream():
                reader.write(chunk)
            reader.finish()
            kind = reader.field("kind") or ""
            files = reader.files()
            if kind == "points":
                if len(files) != 1:
                    raise UploadRefused(f"points come as one CSV file in field 'file', got {len(files)} files")
                item, stats = await run_in_threadpool(parse_points, files[0][1], limits.max_points)
            elif kind == "images":
                resolution = _int_field(reader.field("resolution"), "resolution", DEFAULT_FOLDER_RESOLUTION,
                                        MIN_RESOLUTION, MAX_RESOLUTION)
                channels = _int_field(reader.field("channels"), "channels", None, 1, 3)
                if channels == 2:
                    raise UploadRefused("form field 'channels' must be 1 (gray), 3 (RGB) or auto, got '2'")
                fit = reader.field("fit") or "center-crop"
                if fit not in FIT_MODES:
                    raise UploadRefused(f"form field 'fit' must be one of {', '.join(FIT_MODES)}, got '{fit[:20]}'")
                item, stats = await run_in_threadpool(load_images, files, limits, resolution, channels, fit)
            else:
                raise UploadRefused(f"form field 'kind' must be images or points, got '{kind[:20]}'")
        except UploadRefused as e:
            return _error(str(e), e.status)
        uploads = request.app.state.uploads
        uid = store(uploads, item)
        if isinstance(item, ImageDataset):
            item.name = f"upload:{uid}"
        return JSONResponse({"id": uid, "kind": kind, "stats": stats}, status_code=201)

    return router
