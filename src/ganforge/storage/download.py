"""Fetching a file over HTTP(S) into place, checked and atomic, with the standard library only.

The bytes go to a temporary file beside the target (``storage.atomic.atomic_path``) while their SHA-256 is
computed; the file is renamed into place only when the transfer is complete (as many bytes as the server
announced) and the checksum matches. Any failure leaves nothing at the target, removes the temporary
file and raises :class:`DownloadError` with one line naming the URL and what to do.
"""
from __future__ import annotations

import hashlib
import http.client
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ganforge.errors import GanforgeError
from ganforge.storage.atomic import atomic_path

CHUNK = 1 << 20
DEFAULT_TIMEOUT = 60.0  # seconds of silence before giving up (per connect or read, not the whole transfer)
_HEX = re.compile(r"^[0-9a-f]{8,64}$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class DownloadError(GanforgeError, OSError):
    """A download that failed: unreachable host, HTTP error, cut-off transfer or wrong checksum."""


def check_sha256(value: str) -> str:
    """A SHA-256 given in full (64 hex digits) or as its leading part (at least 8), lower-cased."""
    v = value.strip().lower()
    if not _HEX.match(v):
        raise DownloadError(f"'{value}' is not a SHA-256: give its 64 hex digits (or at least the first 8)")
    return v


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def as_url(source: str) -> str:
    """``source`` as a URL: a local path (a file fetched by hand) becomes a ``file://`` URL."""
    return source if _SCHEME.match(source) else Path(source).expanduser().resolve().as_uri()


def download(url: str, target: str | Path, sha256: str | None = None, timeout: float = DEFAULT_TIMEOUT,
             progress: Callable[[int, int | None], None] | None = None, hint: str = "") -> str:
    """Fetch ``url`` to ``target`` and return the file's SHA-256.

    ``sha256`` (full, or a leading part of at least 8 hex digits) must match, or nothing is written;
    ``progress(done, total)`` is called after every chunk (``total`` None when the server does not say);
    ``hint`` ends every message about the transfer (e.g. how to get the file by hand).
    """
    want = check_sha256(sha256) if sha256 else None
    tail = f"; {hint}" if hint else ""
    target = Path(target)
    h = hashlib.sha256()
    try:
        with atomic_path(target) as tmp:
            done, total = _fetch(url, tmp, h, timeout, progress, tail)
            if total is not None and done != total:
                raise DownloadError(f"download of {url} stopped after {done:,} of {total:,} bytes: try again{tail}")
            got = h.hexdigest()
            if want and not got.startswith(want):
                raise DownloadError(f"{url} has SHA-256 {got[:16]}..., expected {want[:16]}...: not the published "
                                    f"file (damaged, or changed by the host), so nothing was saved{tail}")
    except DownloadError:
        raise
    except OSError as e:  # the target's folder or the temporary file, not the network
        raise DownloadError(f"cannot write {target}: {e.strerror or e}") from e
    return got


def _fetch(url: str, tmp: Path, h, timeout: float, progress, tail: str) -> tuple[int, int | None]:
    """Stream ``url`` into ``tmp``; returns (bytes received, bytes announced or None)."""
    request = urllib.request.Request(url, headers={"User-Agent": "ganforge"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        raise DownloadError(f"{url} answered HTTP {e.code} {e.reason}{tail}") from e
    except urllib.error.URLError as e:
        reason = e.reason.strerror if isinstance(e.reason, OSError) and e.reason.strerror else e.reason
        raise DownloadError(f"cannot reach {url} ({reason}){tail}") from e
    except TimeoutError as e:
        raise DownloadError(f"cannot reach {url} (no answer in {timeout:g} s){tail}") from e
    except (OSError, http.client.HTTPException, ValueError) as e:  # ValueError: not a URL at all
        raise DownloadError(f"cannot reach {url} ({e}){tail}") from e
    with response, open(tmp, "wb") as f:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        done = 0
        while True:
            try:
                block = response.read(CHUNK)
            except TimeoutError as e:
                raise DownloadError(f"{url} sent nothing for {timeout:g} s after {done:,} bytes{tail}") from e
            except (OSError, http.client.HTTPException) as e:  # reset connection, broken chunked encoding
                raise DownloadError(f"download of {url} broke off after {done:,} bytes ({type(e).__name__}): "
                                    f"try again{tail}") from e
            if not block:
                return done, total
            f.write(block)
            h.update(block)
            done += len(block)
            if progress is not None:
                progress(done, total)
