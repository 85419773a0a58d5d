"""Test helpers for the installer: model zips, test catalogues and a loopback HTTP server with Range support."""

from __future__ import annotations

import hashlib
import http.server
import re
import socket
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


def zip_folder(src: Path, archive: Path, top_dir: str) -> Path:
    """Zip the files of ``src`` under the single folder ``top_dir`` (stored, no compression: fast)."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in sorted(src.rglob("*")):
            if path.is_file():
                zf.write(path, f"{top_dir}/{path.relative_to(src).as_posix()}")
    return archive


def sha256_of(path: Path) -> str:
    """SHA-256 (hex) of a file."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def write_catalogue(path: Path, **entries: dict[str, Any]) -> Path:
    """A catalogue YAML with the given entries (name -> fields)."""
    path.write_text(yaml.safe_dump({"models": entries}, allow_unicode=True), encoding="utf-8")
    return path


def entry(kind: str, top_dir: str, url: str | None, size: int | None, sha256: str | None, **extra: Any) -> dict[str, Any]:
    """Fields of a one-file downloadable catalogue entry."""
    return {"kind": kind, "description": f"test {kind} model", "licence": "Apache-2.0", "top_dir": top_dir,
            "files": [{"url": url, "size": size, "sha256": sha256}], **extra}


@dataclass
class Request:
    """One request the loopback server answered."""

    method: str
    path: str
    range: str | None
    status: int
    sent: int
    """Body bytes written."""


@dataclass
class Loopback:
    """A file server on 127.0.0.1 with the behaviours a download must survive.

    Files in ``folder`` are served at ``/NAME``; ``/r/NAME`` answers 302 to ``/NAME`` with
    ``X-Linked-ETag`` set from ``stated`` (as Hugging Face does for large files). Byte ranges
    ``bytes=N-`` are honoured with 206 (416 past the end) unless ``ignore_range``. ``cut_after``
    makes the next response announce the whole length, send that many body bytes and drop the
    connection.
    """

    folder: Path
    url: str = ""
    requests: list[Request] = field(default_factory=list)
    cut_after: int | None = None
    ignore_range: bool = False
    stated: dict[str, str] = field(default_factory=dict)
    """File name -> the SHA-256 the redirect states for it."""
    etags: dict[str, str] = field(default_factory=dict)
    """File name -> an ETag value sent with the file itself."""
    cache: dict[Path, tuple[int, bytes]] = field(default_factory=dict)
    """Bytes already read, by path (with the file's mtime), so that big files are read once."""

    def body_bytes(self, name: str) -> int:
        """Body bytes sent for ``/NAME`` over all requests."""
        return sum(r.sent for r in self.requests if r.path == f"/{name}")


def _handler(state: Loopback) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            rng = self.headers.get("Range")
            record = Request("GET", self.path, rng, 0, 0)
            state.requests.append(record)  # before answering: the list keeps the order the client saw
            if self.path.startswith("/r/"):
                name = self.path[3:]
                self.send_response(302)
                self.send_header("Location", f"/{name}")
                if name in state.stated:
                    self.send_header("X-Linked-ETag", f'"{state.stated[name]}"')
                self.send_header("Content-Length", "0")
                record.status = 302
                self.end_headers()
                return
            path = state.folder / self.path.lstrip("/")
            if "/" in self.path.lstrip("/") or not path.is_file():
                record.status = 404
                self.send_error(404)
                return
            mtime = path.stat().st_mtime_ns
            cached = state.cache.get(path)
            if cached is None or cached[0] != mtime:
                cached = state.cache[path] = (mtime, path.read_bytes())
            data = cached[1]
            start, status = 0, 200
            match = re.match(r"bytes=(\d+)-$", rng or "")
            if match and not state.ignore_range:
                start = int(match.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    record.status = 416
                    self.end_headers()
                    return
                status = 206
            body = data[start:]
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            if path.name in state.etags:
                self.send_header("ETag", f'"{state.etags[path.name]}"')
            self.end_headers()
            cut, state.cut_after = state.cut_after, None
            sent = body if cut is None else body[:cut]
            record.status, record.sent = status, len(sent)
            try:
                self.wfile.write(sent)
                self.wfile.flush()
            except OSError:
                pass
            if cut is not None:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    return Handler


@contextmanager
def serve(folder: Path) -> Iterator[Loopback]:
    """Serve ``folder`` on 127.0.0.1 (a free port) while in the block; yields the server's state."""
    state = Loopback(folder)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def unused_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for 'no network' errors)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
