"""Atomic file writes: a file holds its old content or the new one, never a mix, also after a power cut."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

_LOG = logging.getLogger(__name__)

PRIVATE = 0o600
"""Mode of every file the appliance writes atomically (the service's state is not for other users)."""


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: some file systems refuse to open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(path: Path, data: bytes, *, mode: int = PRIVATE,
                       owner: tuple[int, int] | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory: written, fsynced,
    renamed over ``path``, and the directory fsynced. ``owner`` (uid, gid) is set before the rename.
    Raises OSError (nothing partial is left behind)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        if owner is not None:
            os.fchown(fd, *owner)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def commit_file(tmp: Path, path: Path) -> None:
    """Put a file that another writer (llama.cpp, the ``gguf`` writer, a copy) has finished under the
    temporary name ``tmp`` in place as ``path``: fsynced, renamed over ``path``, the directory fsynced.
    ``tmp`` must be in ``path``'s directory. Raises OSError."""
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(Path(path).parent)


def write_text_atomic(path: Path, text: str, *, mode: int = PRIVATE, owner: tuple[int, int] | None = None) -> None:
    """``write_bytes_atomic`` of UTF-8 text."""
    write_bytes_atomic(path, text.encode("utf-8"), mode=mode, owner=owner)


def write_json_atomic(path: Path, data: Any, *, mode: int = PRIVATE) -> None:
    """``data`` as indented JSON (no NaN; other objects by ``str``), written atomically."""
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False, default=str) + "\n"
    write_text_atomic(path, text, mode=mode)
