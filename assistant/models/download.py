"""Resumable HTTP download into a ``.part`` file, hashing as it goes and noting the hash the server states."""

from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from assistant import __version__
from assistant.errors import InstallError

_LOG = logging.getLogger(__name__)

TIMEOUT_S = 30.0
"""Network timeout for connecting and for each read (s)."""
CHUNK = 1 << 18
"""Bytes read per step (256 KiB)."""
Progress = Callable[[int, "int | None"], None]
"""Called as ``progress(bytes_done, bytes_total_or_None)`` while a file is read."""

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_RANGE = re.compile(r"^bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)$")
_HASH_HEADERS = ("X-Linked-ETag", "ETag")


@dataclass(frozen=True)
class Fetched:
    """A complete download, still in its ``.part`` file."""

    path: Path
    size: int
    """Bytes in the file."""
    sha256: str
    """SHA-256 of the whole file (hex)."""
    server_sha256: str | None
    """SHA-256 the server stated for the file (Hugging Face sends it as the ETag of LFS files)."""
    resumed_from: int
    """Bytes that were already in the ``.part`` file and were not fetched again (0: a fresh download)."""


def sha256_from_headers(headers: Message | None) -> str | None:
    """The SHA-256 a response states in ``X-Linked-ETag`` or ``ETag`` (a 64-hex value), else None.

    A 40-hex ETag (a git blob id, what Hugging Face sends for small non-LFS files) is not a SHA-256.
    """
    if headers is None:
        return None
    for name in _HASH_HEADERS:
        raw = headers.get(name)
        if raw:
            value = raw.strip().removeprefix("W/").strip('"').lower()
            if _SHA256.match(value):
                return value
    return None


class _RedirectHeaders(urllib.request.HTTPRedirectHandler):
    """Follows redirects like urllib does and remembers the headers of each redirect response."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Message] = []

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: http.client.HTTPMessage, newurl: str) -> urllib.request.Request | None:
        self.seen.append(headers)
        return super().redirect_request(req, fp, code, msg, headers, newurl)

    def stated_sha256(self, final: Message | None) -> str | None:
        for headers in [*self.seen, final]:
            found = sha256_from_headers(headers)
            if found:
                return found
        return None


def _content_range(headers: Message) -> tuple[int | None, int | None]:
    """(first byte, total size) from a Content-Range header; None where absent or ``*``."""
    match = _CONTENT_RANGE.match((headers.get("Content-Range") or "").strip())
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(3)) if match.group(3) != "*" else None
    return start, total


def _hash_file(path: Path) -> Any:
    """The running SHA-256 of what is already on disk (a resumed download goes on hashing from there)."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256")


def fetch(url: str, part: Path, *, expected_size: int | None, hint: str, progress: Progress | None = None,
          timeout: float = TIMEOUT_S) -> Fetched:
    """Download ``url`` into ``part``, resuming from the bytes already there.

    An existing ``part`` is continued with ``Range: bytes=N-``: a 206 reply is appended, a server
    that ignores the range (200) makes the download start again, and 416 means the part is
    already whole (or is not a prefix of this file, and is discarded). An interruption keeps the
    part and raises InstallError saying so; the next call resumes it. ``hint`` ends every error
    message (what to do without network).
    """
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if expected_size is not None and have > expected_size:
        _LOG.warning("%s is larger than the expected %d bytes; starting again", part, expected_size)
        part.unlink()
        have = 0
    for attempt in range(2):
        result = _attempt(url, part, have, expected_size, hint, progress, timeout)
        if result is not None:
            return result
        part.unlink(missing_ok=True)  # the part was not a prefix of this file
        have = 0
    raise InstallError(f"the server at {url} keeps refusing the byte range of {part.name}; {hint}")


def _attempt(url: str, part: Path, have: int, expected: int | None, hint: str, progress: Progress | None,
             timeout: float) -> Fetched | None:
    headers = {"User-Agent": f"assistant/{__version__}", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    redirects = _RedirectHeaders()
    opener = urllib.request.build_opener(redirects)
    host = urlsplit(url).netloc
    try:
        resp = opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and have:
            _, total = _content_range(exc.headers)
            if total == have or (total is None and expected == have):
                _LOG.info("%s is already complete (%d bytes)", part.name, have)
                return Fetched(part, have, _hash_file(part).hexdigest(), redirects.stated_sha256(exc.headers), have)
            _LOG.warning("the server refused resuming %s at byte %d (its size is %s); starting again",
                         part.name, have, total)
            return None
        if exc.code == 404:
            raise InstallError(f"{url} answered HTTP 404 Not Found: the pinned URL may have moved or its "
                               f"revision been removed; {hint}") from exc
        raise InstallError(f"cannot download {url}: HTTP {exc.code} {exc.reason}; {hint}") from exc
    except urllib.error.URLError as exc:
        raise InstallError(f"cannot reach {host} ({exc.reason}); {hint}") from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise InstallError(f"cannot download {url}: {exc}; {hint}") from exc
    with resp:
        status = resp.status
        start, total = _content_range(resp.headers)
        if have and status == 206 and start != have:
            _LOG.warning("the server resumed %s at byte %s instead of %d; starting again", part.name, start, have)
            return None
        if have and status != 206:
            _LOG.warning("the server ignored the byte range for %s (HTTP %d); starting again from byte 0",
                         part.name, status)
            have = 0
        if status == 206:
            h = _hash_file(part)
        else:
            h = hashlib.sha256()
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else expected
        if have:
            _LOG.info("resuming %s at byte %d of %s", part.name, have, total)
        done = _copy_into(resp, part, have, h, total, progress, url, hint)
        return Fetched(part, done, h.hexdigest(), redirects.stated_sha256(resp.headers), have)


def _copy_into(resp: IO[bytes], part: Path, have: int, h: Any, total: int | None, progress: Progress | None,
               url: str, hint: str) -> int:
    """Append the body to ``part`` (or write it afresh when ``have`` is 0); returns the bytes in the file."""
    done = have
    kept = f"the partial file {part} is kept: run the same command again to resume"
    try:
        with part.open("ab" if have else "wb") as out:
            try:
                if progress:
                    progress(done, total)
                while block := resp.read(CHUNK):
                    out.write(block)
                    h.update(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
            except http.client.IncompleteRead as exc:
                out.write(exc.partial)
                h.update(exc.partial)
                done += len(exc.partial)
                raise InstallError(f"the download of {url} was cut after {done} of {total} bytes; {kept}") from exc
            except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
                raise InstallError(f"the download of {url} stopped after {done} of {total} bytes ({exc}); "
                                   f"{kept}") from exc
            finally:
                out.flush()
                os.fsync(out.fileno())
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise InstallError(f"the disk is full: {part} stopped at {done} bytes of {total}; free some space and "
                               "run the same command again to resume") from exc
        raise InstallError(f"cannot write {part}: {exc}") from exc
    if total is not None and done < total:
        raise InstallError(f"the download of {url} ended after {done} of {total} bytes; {kept}")
    return done
