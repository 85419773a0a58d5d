"""Test helpers for the installer: model zips, test catalogues and a loopback HTTP server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
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


def entry(kind: str, top_dir: str, url: str, size: int | None, sha256: str | None, **extra: Any) -> dict[str, Any]:
    """Fields of one downloadable catalogue entry."""
    return {"kind": kind, "description": f"test {kind} model", "licence": "Apache-2.0", "url": url,
            "size": size, "sha256": sha256, "top_dir": top_dir, **extra}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 (a free port) while in the block; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
